//! Dispatch of the conv3d kernels: `conv3d.wgsl` (tiled through workgroup
//! memory) or `conv3d_sg8.wgsl` (8-wide subgroups), chosen per adapter.
//! Both read the weights prepacked as `[groups][k][c_out_g]` ([`prepack`]).

use bytemuck::{Pod, Zeroable};

use super::matmul::{Config, Tiles};
use super::{Commands, GpuDevice, View};
use crate::delegate::Conv3d;
use crate::error::{Error, Result};

/// The kernels' `Params` uniform, field for field (conv_common.wgsl).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    c_in_g: u32,
    c_out_g: u32,
    groups: u32,
    c_out: u32,
    d: u32,
    h: u32,
    w: u32,
    k: u32,
    od: u32,
    oh: u32,
    ow: u32,
    positions: u32,
    kd: u32,
    kh: u32,
    kw: u32,
    has_bias: u32,
    sd: u32,
    sh: u32,
    sw: u32,
    activation: u32,
    pd: u32,
    ph: u32,
    pw: u32,
    _pad0: u32,
    dd: u32,
    dh: u32,
    dw: u32,
    _pad1: u32,
}

/// PyTorch's `[c_out, c_in/groups, kd, kh, kw]` weights as the kernels read
/// them, `[groups][k][c_out_g]`: done once per weight, as engines prepack.
pub fn prepack(spec: &Conv3d, w: &[f32]) -> Vec<f32> {
    let (k, cog) = (spec.k(), spec.c_out_g());
    let mut packed = vec![0f32; w.len()];
    for g in 0..spec.groups {
        for c in 0..cog {
            for (kk, &v) in w[(g * cog + c) * k..][..k].iter().enumerate() {
                packed[(g * k + kk) * cog + c] = v;
            }
        }
    }
    packed
}

fn u32_of(spec: &Conv3d, v: usize) -> Result<u32> {
    super::device::u32_of(&format!("conv3d {spec:?}"), v)
}

/// `out = act(conv3d(x, w) + bias)` on the GPU, weights in PyTorch's layout; see [`Conv3d`].
pub async fn conv3d(dev: &GpuDevice, spec: &Conv3d, x: &[f32], w: &[f32], bias: Option<&[f32]>) -> Result<Vec<f32>> {
    conv3d_with(dev, Config::for_device(dev), spec, x, w, bias).await
}

/// [`conv3d`] with a given kernel configuration (the matmul's: the same
/// tiling, over channels × positions).
pub async fn conv3d_with(
    dev: &GpuDevice,
    config: Config,
    spec: &Conv3d,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
) -> Result<Vec<f32>> {
    let len = spec.check(x.len(), w.len(), bias.map(<[f32]>::len))?;
    let x_buf = dev.upload("conv3d.x", x);
    let w_buf = dev.upload("conv3d.w", &prepack(spec, w));
    let bias_buf = dev.upload("conv3d.bias", bias.unwrap_or(&[]));
    let out = dev.output("conv3d.out", len);
    let mut commands = dev.commands();
    let views = [View::whole(&x_buf, x.len()), View::whole(&w_buf, w.len())];
    let bias_view = bias.map(|b| View::whole(&bias_buf, b.len()));
    encode_conv3d(dev, &mut commands, config, spec, views, bias_view, View::whole(&out, len)).await?;
    commands.submit();
    let result = dev.read(&out, len).await;
    dev.recycle([x_buf, w_buf, bias_buf, out]);
    result
}

/// Records the conv over device views; `w` must hold the [`prepack`]ed weights.
pub async fn encode_conv3d(
    dev: &GpuDevice,
    cmds: &mut Commands<'_>,
    config: Config,
    spec: &Conv3d,
    [x, w]: [View<'_>; 2],
    bias: Option<View<'_>>,
    out: View<'_>,
) -> Result<()> {
    let len = spec.check(x.len, w.len, bias.map(|b| b.len))?;
    for (what, n) in [("x", x.len), ("w", w.len), ("out", len)] {
        u32_of(spec, n)?;
        dev.check_binding(&format!("conv3d {spec:?}: {what}"), n * 4)?;
    }
    let [d, h, wd] = spec.input;
    let [od, oh, ow] = spec.output();
    let u = |v: usize| u32_of(spec, v);
    let params = Params {
        c_in_g: u(spec.c_in_g())?,
        c_out_g: u(spec.c_out_g())?,
        groups: u(spec.groups)?,
        c_out: u(spec.c_out)?,
        d: u(d)?,
        h: u(h)?,
        w: u(wd)?,
        k: u(spec.k())?,
        od: u(od)?,
        oh: u(oh)?,
        ow: u(ow)?,
        positions: u(spec.positions())?,
        kd: u(spec.kernel[0])?,
        kh: u(spec.kernel[1])?,
        kw: u(spec.kernel[2])?,
        has_bias: bias.is_some() as u32,
        sd: u(spec.stride[0])?,
        sh: u(spec.stride[1])?,
        sw: u(spec.stride[2])?,
        activation: spec.activation.code(),
        pd: u(spec.padding[0][0])?,
        ph: u(spec.padding[1][0])?,
        pw: u(spec.padding[2][0])?,
        _pad0: 0,
        dd: u(spec.dilation[0])?,
        dh: u(spec.dilation[1])?,
        dw: u(spec.dilation[2])?,
        _pad1: 0,
    };
    let (kernel, overrides, groups) = match config {
        Config::Tiled(t) => {
            t.check(&dev.device.limits())?;
            let (bm, bn) = (t.wg_m * Tiles::TM, t.wg_n * Tiles::TN);
            let groups = [spec.positions().div_ceil(bn as usize), spec.c_out_g().div_ceil(bm as usize)];
            let overrides = vec![("WG_M", t.wg_m as f64), ("WG_N", t.wg_n as f64), ("BK", t.bk as f64)];
            (&kinema_shaders::CONV3D, overrides, groups)
        }
        Config::Subgroups8 { wg_rows } => {
            if wg_rows == 0 || 8 * wg_rows > dev.device.limits().max_compute_invocations_per_workgroup {
                return Err(Error::Gpu(format!("conv3d {config:?} exceeds the device's limits")));
            }
            let contiguous = if spec.c_out_g().is_multiple_of(4) { 1.0 } else { 0.0 };
            let overrides = vec![("WG_ROWS", wg_rows as f64), ("CONTIGUOUS", contiguous)];
            let groups = [spec.c_out_g().div_ceil(64), spec.positions().div_ceil(16 * wg_rows as usize)];
            (&kinema_shaders::CONV3D_SG8, overrides, groups)
        }
    };
    let groups = dev.check_groups(&format!("conv3d {spec:?}"), [groups[0], groups[1], spec.batch * spec.groups])?;
    if len == 0 {
        return Ok(());
    }
    let pipeline = dev.pipeline(kernel, &overrides).await?;
    // Without a bias, x stands in for it (never read).
    cmds.dispatch_views(&pipeline, &[x, w, bias.unwrap_or(x), out], &params, groups);
    Ok(())
}
