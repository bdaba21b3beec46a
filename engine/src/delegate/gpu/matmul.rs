//! Dispatch of `matmul.wgsl`: one workgroup per BM × BN output tile per batch.

use bytemuck::{Pod, Zeroable};

use super::GpuDevice;
use crate::delegate::Matmul;
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

fn u32_of(what: &str, v: usize) -> Result<u32> {
    u32::try_from(v)
        .map_err(|_| Error::Invalid(format!("matmul: {what} = {v} does not fit the kernel's 32-bit indices")))
}

/// `out = act(op(A) · op(B) + bias)` on the GPU; see [`Matmul`].
pub async fn matmul(dev: &GpuDevice, spec: &Matmul, a: &[f32], b: &[f32], bias: Option<&[f32]>) -> Result<Vec<f32>> {
    matmul_with(dev, Tiles::DEFAULT, spec, a, b, bias).await
}

/// [`matmul`] with a given tile configuration.
pub async fn matmul_with(
    dev: &GpuDevice,
    tiles: Tiles,
    spec: &Matmul,
    a: &[f32],
    b: &[f32],
    bias: Option<&[f32]>,
) -> Result<Vec<f32>> {
    let len = spec.check(a.len(), b.len(), bias.map(<[f32]>::len))?;
    tiles.check(&dev.device.limits())?;
    // Every index the kernel computes must fit in u32.
    for (what, n) in [("A", a.len()), ("B", b.len()), ("out", len)] {
        u32_of(what, n)?;
    }
    let max_binding = dev.device.limits().max_storage_buffer_binding_size as usize;
    if [a.len(), b.len(), len].iter().any(|&n| n * 4 > max_binding) {
        return Err(Error::Gpu(format!(
            "matmul {spec:?}: an operand exceeds the device's {max_binding}-byte storage binding limit"
        )));
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
    let groups = [
        spec.n.div_ceil((tiles.wg_n * Tiles::TN) as usize),
        spec.m.div_ceil((tiles.wg_m * Tiles::TM) as usize),
        spec.batch,
    ];
    let max_groups = dev.device.limits().max_compute_workgroups_per_dimension as usize;
    if groups.iter().any(|&g| g > max_groups) {
        return Err(Error::Gpu(format!(
            "matmul {spec:?}: needs {groups:?} workgroups, over the limit of {max_groups}"
        )));
    }
    if len == 0 {
        return Ok(Vec::new());
    }

    let pipeline = dev.pipeline(&kinema_shaders::MATMUL, &tiles.overrides()).await?;
    let a_buf = dev.upload("matmul.a", a);
    let b_buf = dev.upload("matmul.b", b);
    let bias_buf = dev.upload("matmul.bias", bias.unwrap_or(&[]));
    let out = dev.output("matmul.out", len);
    let params_buf = wgpu::util::DeviceExt::create_buffer_init(
        &dev.device,
        &wgpu::util::BufferInitDescriptor {
            label: Some("matmul.params"),
            contents: bytemuck::bytes_of(&params),
            usage: wgpu::BufferUsages::UNIFORM,
        },
    );
    let bind = dev.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("matmul"),
        layout: &pipeline.get_bind_group_layout(0),
        entries: &[
            wgpu::BindGroupEntry { binding: 0, resource: a_buf.as_entire_binding() },
            wgpu::BindGroupEntry { binding: 1, resource: b_buf.as_entire_binding() },
            wgpu::BindGroupEntry { binding: 2, resource: bias_buf.as_entire_binding() },
            wgpu::BindGroupEntry { binding: 3, resource: out.as_entire_binding() },
            wgpu::BindGroupEntry { binding: 4, resource: params_buf.as_entire_binding() },
        ],
    });
    let mut encoder = dev.device.create_command_encoder(&Default::default());
    {
        let mut pass = encoder.begin_compute_pass(&Default::default());
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bind, &[]);
        pass.dispatch_workgroups(groups[0] as u32, groups[1] as u32, groups[2] as u32);
    }
    dev.queue.submit([encoder.finish()]);
    dev.read(&out, len).await
}
