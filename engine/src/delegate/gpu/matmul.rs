//! Dispatch of the matmul kernels: `matmul.wgsl` (tiled through workgroup
//! memory, for real GPUs) or `matmul_sg8.wgsl` (for adapters with 8-wide
//! subgroups, i.e. CPU rasterisers), chosen per adapter by [`Config::for_device`].

use bytemuck::{Pod, Zeroable};

use super::GpuDevice;
use super::device::{Commands, View, u32_of};
use crate::delegate::{Matmul, Operand};
use crate::error::{Error, Result};

/// The kernel's `Params` uniform, field for field.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    m: u32,
    n: u32,
    k: u32,
    batch: u32,
    a_batch: u32,
    a_row: u32,
    a_col: u32,
    b_batch: u32,
    b_row: u32,
    b_col: u32,
    has_bias: u32,
    activation: u32,
}

/// Tile configuration (the kernel's `override` constants).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tiles {
    pub wg_m: u32,
    pub wg_n: u32,
    pub bk: u32,
}

impl Tiles {
    /// Register block per thread, fixed in the kernel.
    pub const TM: u32 = 4;
    pub const TN: u32 = 4;

    /// 16 × 16 threads of 4 × 4 outputs, K in steps of 16: 256 invocations and
    /// 8 KiB of workgroup memory, inside WebGPU's default limits.
    pub const DEFAULT: Tiles = Tiles { wg_m: 16, wg_n: 16, bk: 16 };

    /// Threads per workgroup.
    pub fn invocations(&self) -> u32 {
        self.wg_m * self.wg_n
    }

    /// Bytes of workgroup memory: the A and B tiles, `BK × (BM + BN)` f32.
    pub fn workgroup_bytes(&self) -> u32 {
        4 * self.bk * (self.wg_m * Tiles::TM + self.wg_n * Tiles::TN)
    }

    /// Refuses a configuration the device cannot run. (wgpu does not check
    /// workgroup sizes that come from `override` values against the limits.)
    pub fn check(&self, limits: &wgpu::Limits) -> Result<()> {
        let fits = self.wg_m > 0
            && self.wg_n > 0
            && self.bk > 0
            && self.invocations() <= limits.max_compute_invocations_per_workgroup
            && self.wg_n <= limits.max_compute_workgroup_size_x
            && self.wg_m <= limits.max_compute_workgroup_size_y
            && self.workgroup_bytes() <= limits.max_compute_workgroup_storage_size;
        if fits {
            Ok(())
        } else {
            Err(Error::Gpu(format!(
                "matmul tiles {self:?} ({} invocations, {} bytes of workgroup memory) exceed the device's limits \
                 ({} invocations, {} bytes)",
                self.invocations(),
                self.workgroup_bytes(),
                limits.max_compute_invocations_per_workgroup,
                limits.max_compute_workgroup_storage_size
            )))
        }
    }

    fn overrides(&self) -> [(&'static str, f64); 3] {
        [("WG_M", self.wg_m as f64), ("WG_N", self.wg_n as f64), ("BK", self.bk as f64)]
    }
}

/// Which matmul kernel, with which tiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Config {
    /// `matmul.wgsl`.
    Tiled(Tiles),
    /// `matmul_sg8.wgsl` with `wg_rows` subgroups per workgroup (each 16 rows × 64 columns).
    Subgroups8 { wg_rows: u32 },
}

impl Config {
    /// The configuration the tuning table gives this adapter.
    pub fn for_device(dev: &GpuDevice) -> Config {
        super::tuning::matmul(dev)
    }

    /// Output block per workgroup, (rows, columns).
    fn block(&self) -> (u32, u32) {
        match *self {
            Config::Tiled(t) => (t.wg_m * Tiles::TM, t.wg_n * Tiles::TN),
            Config::Subgroups8 { wg_rows } => (16 * wg_rows, 64),
        }
    }

    fn check(&self, dev: &GpuDevice) -> Result<()> {
        match *self {
            Config::Tiled(t) => t.check(&dev.device.limits()),
            Config::Subgroups8 { wg_rows } => {
                let limits = dev.device.limits();
                if wg_rows == 0 || 8 * wg_rows > limits.max_compute_invocations_per_workgroup {
                    return Err(Error::Gpu(format!("matmul {self:?} exceeds the device's limits")));
                }
                Ok(())
            }
        }
    }

    /// The kernel and its `override` values for `spec` (B in f16 when `b_f16`).
    fn kernel(&self, spec: &Matmul, b_f16: bool) -> (&'static kinema_shaders::Kernel, Vec<(&'static str, f64)>) {
        let flag = |b: bool| if b { 1.0 } else { 0.0 };
        match *self {
            Config::Tiled(t) => {
                let mut overrides = t.overrides().to_vec();
                overrides.push(("B_F16", flag(b_f16)));
                (&kinema_shaders::MATMUL, overrides)
            }
            Config::Subgroups8 { wg_rows } => {
                let (ab, ar, ac) = spec.a_strides();
                let (bb, br, bc) = spec.b_strides();
                let contiguous = ac == 1 && bc == 1 && [ab, ar, bb, br].iter().all(|s| s % 4 == 0);
                let overrides =
                    vec![("WG_ROWS", wg_rows as f64), ("CONTIGUOUS", flag(contiguous)), ("B_F16", flag(b_f16))];
                (&kinema_shaders::MATMUL_SG8, overrides)
            }
        }
    }
}

/// `out = act(op(A) · op(B) + bias)` on the GPU, B in f32 or f16; see [`Matmul`].
pub async fn matmul<'b>(
    dev: &GpuDevice,
    spec: &Matmul,
    a: &[f32],
    b: impl Into<Operand<'b>>,
    bias: Option<&[f32]>,
) -> Result<Vec<f32>> {
    matmul_with(dev, Config::for_device(dev), spec, a, b, bias).await
}

/// [`matmul`] with a given kernel configuration.
pub async fn matmul_with<'b>(
    dev: &GpuDevice,
    config: Config,
    spec: &Matmul,
    a: &[f32],
    b: impl Into<Operand<'b>>,
    bias: Option<&[f32]>,
) -> Result<Vec<f32>> {
    let b = b.into();
    let len = spec.check(a.len(), b.len(), bias.map(<[f32]>::len))?;
    config.check(dev)?;
    // Over one binding? Bind A and out in windows of whole rows (B stays whole).
    let max = dev.device.limits().max_storage_buffer_binding_size as usize / 4;
    if (a.len() > max || len > max) && !spec.trans_a {
        let rows = max / spec.k.max(spec.n).max(1);
        if rows == 0 {
            return Err(Error::Gpu(format!("matmul {spec:?}: one row exceeds the device's storage binding limit")));
        }
        let mut out = Vec::with_capacity(len);
        let b_batch = spec.k * spec.n;
        for batch in 0..spec.batch {
            let b = b.slice(batch * b_batch..(batch + 1) * b_batch);
            for r0 in (0..spec.m).step_by(rows) {
                let sub = Matmul { batch: 1, m: rows.min(spec.m - r0), ..*spec };
                let a = &a[(batch * spec.m + r0) * spec.k..][..sub.m * spec.k];
                out.extend(matmul_once(dev, config, &sub, a, b, bias).await?);
            }
        }
        return Ok(out);
    }
    matmul_once(dev, config, spec, a, b, bias).await
}

/// One dispatch of the whole product (every operand within one binding).
async fn matmul_once(
    dev: &GpuDevice,
    config: Config,
    spec: &Matmul,
    a: &[f32],
    b: Operand<'_>,
    bias: Option<&[f32]>,
) -> Result<Vec<f32>> {
    let len = spec.check(a.len(), b.len(), bias.map(<[f32]>::len))?;
    let b_f16 = matches!(b, Operand::F16(_));
    let a_buf = dev.upload("matmul.a", a);
    let b_buf = dev.upload_bytes("matmul.b", b.bytes());
    let bias_buf = dev.upload("matmul.bias", bias.unwrap_or(&[]));
    let out = dev.output("matmul.out", len);
    let mut commands = dev.commands();
    let b_view = View::whole(&b_buf, if b_f16 { b.len().div_ceil(2) } else { b.len() });
    let bias_view = bias.map(|x| View::whole(&bias_buf, x.len()));
    encode_matmul(
        dev,
        &mut commands,
        config,
        spec,
        View::whole(&a_buf, a.len()),
        (b_view, b_f16),
        bias_view,
        View::whole(&out, len),
    )
    .await?;
    commands.submit();
    let result = dev.read(&out, len).await;
    dev.recycle([a_buf, b_buf, bias_buf, out]);
    result
}

/// Records `out = act(op(A) · op(B) + bias)` over device views; B holds f16
/// pairs when its flag is set.
#[allow(clippy::too_many_arguments)]
pub async fn encode_matmul(
    dev: &GpuDevice,
    cmds: &mut Commands<'_>,
    config: Config,
    spec: &Matmul,
    a: View<'_>,
    (b, b_f16): (View<'_>, bool),
    bias: Option<View<'_>>,
    out: View<'_>,
) -> Result<()> {
    let len = spec.check(spec.batch * spec.m * spec.k, spec.batch * spec.k * spec.n, None)?;
    config.check(dev)?;
    // Every index the kernel computes must fit in u32.
    for (what, n) in [("A", spec.batch * spec.m * spec.k), ("B", spec.batch * spec.k * spec.n), ("out", len)] {
        u32_of(what, n)?;
        dev.check_binding(&format!("matmul {spec:?}: {what}"), n * 4)?;
    }
    let (ab, ar, ac) = spec.a_strides();
    let (bb, br, bc) = spec.b_strides();
    let params = Params {
        m: u32_of("m", spec.m)?,
        n: u32_of("n", spec.n)?,
        k: u32_of("k", spec.k)?,
        batch: u32_of("batch", spec.batch)?,
        a_batch: u32_of("A stride", ab)?,
        a_row: ar as u32,
        a_col: ac as u32,
        b_batch: u32_of("B stride", bb)?,
        b_row: br as u32,
        b_col: bc as u32,
        has_bias: bias.is_some() as u32,
        activation: spec.activation.code(),
    };
    let (rows, cols) = config.block();
    let groups = dev.check_groups(
        &format!("matmul {spec:?}"),
        [spec.n.div_ceil(cols as usize), spec.m.div_ceil(rows as usize), spec.batch],
    )?;
    if len == 0 {
        return Ok(());
    }
    let (kernel, overrides) = config.kernel(spec, b_f16);
    let pipeline = dev.pipeline(kernel, &overrides).await?;
    // Without a bias, A stands in for it (never read).
    cmds.dispatch_views(&pipeline, &[a, b, bias.unwrap_or(a), out], &params, groups);
    Ok(())
}
