//! Dispatch of the conv3d kernels: `conv3d.wgsl` (tiled through workgroup
//! memory) or `conv3d_sg8.wgsl` (8-wide subgroups), chosen per adapter, and
//! `conv3d_narrow.wgsl` on every adapter for convs with few output channels.
//! Both read the weights prepacked as `[groups][k][c_out_g]` ([`prepack`]).

use bytemuck::{Pod, Zeroable};

use super::matmul::{Config, Tiles};
use super::{Commands, GpuDevice, View};
use crate::delegate::{Activation, Conv3d};
use crate::error::{Error, Result};

/// Which kernel computes a conv.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kernel {
    /// An implicit GEMM over channels × positions, with the matmul's
    /// configuration (the same tiling; `Direct` stands for `Tiled`).
    Gemm(Config),
    /// `conv3d_narrow.wgsl`: 4 positions × 4 channels per invocation, for
    /// convs with few output channels (≤ `kinema_shaders::CONV3D_NARROW_CHANNELS`
    /// is where [`super::tuning::conv`] picks it; it is correct for any).
    Narrow,
}

impl Kernel {
    /// The kernel file and its configuration, as `kinema inspect` and
    /// `--profile` name them.
    pub fn describe(&self) -> String {
        match *self {
            Kernel::Narrow => format!("conv3d_narrow.wgsl ({NARROW_WG} threads)"),
            Kernel::Gemm(Config::Subgroups8 { wg_rows }) => {
                format!("conv3d_sg8.wgsl ({wg_rows} subgroups per workgroup)")
            }
            Kernel::Gemm(gemm) => {
                let t = gemm.conv_tiles();
                format!("conv3d.wgsl ({} × {} threads, BK {})", t.wg_m, t.wg_n, t.bk)
            }
        }
    }
}

/// The narrow kernel's workgroup size.
const NARROW_WG: usize = 64;

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
    w_row: u32,
    dd: u32,
    dh: u32,
    dw: u32,
    w_off: u32,
    x_off: u32,
    out_off: u32,
    bias_off: u32,
    accumulate: u32,
}

/// One dispatch's share of a conv: `(first, count)` of batches, of groups,
/// and of the input and output channels within a group.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Window {
    batches: (usize, usize),
    groups: (usize, usize),
    c_in: (usize, usize),
    c_out: (usize, usize),
}

/// Splits a conv whose input, weights or output are over one storage binding
/// into dispatches that each bind less (from an aligned start, a vec4 short of
/// the limit): one batch and as many whole groups as fit, or, when one group is
/// over a binding, ranges of its output channels and of its input channels,
/// the later input ranges adding to what the earlier ones wrote. One window
/// when everything fits.
fn windows(dev: &GpuDevice, spec: &Conv3d) -> Result<Vec<Window>> {
    let max = dev.binding_floats();
    let align = dev.binding_align();
    let (n, groups, cig, cog) = (spec.batch, spec.groups, spec.c_in_g(), spec.c_out_g());
    let taps: usize = spec.kernel.iter().product();
    let (volume, positions): (usize, usize) = (spec.input.iter().product(), spec.positions());
    let whole = Window { batches: (0, n), groups: (0, groups), c_in: (0, cig), c_out: (0, cog) };
    // Floats of one group of one batch in x, w and out.
    let per_group = [cig * volume, spec.k() * cog, cog * positions];
    let fits = |count: usize, per: usize| count.checked_mul(per).is_some_and(|v| v <= max);
    if fits(n * groups, per_group[0]) && fits(groups, per_group[1]) && fits(n * groups, per_group[2]) {
        return Ok(vec![whole]);
    }
    let room = max.saturating_sub(align);
    let each = per_group.iter().map(|&v| room / v.max(1)).min().unwrap_or(0).min(groups);
    let mut out = Vec::new();
    if each > 0 {
        for b in 0..n {
            for g in (0..groups).step_by(each) {
                out.push(Window { batches: (b, 1), groups: (g, each.min(groups - g)), ..whole });
            }
        }
        return Ok(out);
    }
    let c_in_step = (room / volume.max(1)).min(room / (taps * cog).max(1)).min(cig);
    let mut c_out_step = (room / positions.max(1)).min(cog);
    if c_out_step >= 4 {
        // Window starts on whole vec4s of a weight row.
        c_out_step -= c_out_step % 4;
    }
    if c_in_step == 0 || c_out_step == 0 {
        return Err(Error::Gpu(format!(
            "conv3d {spec:?}: one channel ({volume} input or {positions} output floats, or {} weights) exceeds the \
             device's storage binding limit",
            taps * cog
        )));
    }
    for b in 0..n {
        for g in 0..groups {
            for co in (0..cog).step_by(c_out_step) {
                for ci in (0..cig).step_by(c_in_step) {
                    out.push(Window {
                        batches: (b, 1),
                        groups: (g, 1),
                        c_in: (ci, c_in_step.min(cig - ci)),
                        c_out: (co, c_out_step.min(cog - co)),
                    });
                }
            }
        }
    }
    Ok(out)
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
    conv3d_with(dev, super::tuning::conv_for(dev, spec), spec, x, w, bias).await
}

/// [`conv3d`] with a given kernel.
pub async fn conv3d_with(
    dev: &GpuDevice,
    kernel: Kernel,
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
    encode_conv3d(dev, &mut commands, kernel, spec, views, bias_view, View::whole(&out, len)).await?;
    commands.submit();
    let result = dev.read(&out, len).await;
    dev.recycle([x_buf, w_buf, bias_buf, out]);
    result
}

/// Records the conv over device views; `w` must hold the [`prepack`]ed
/// weights. A conv over one storage binding is dispatched in windows
/// ([`windows`]), each bound from an aligned start.
pub async fn encode_conv3d<'a>(
    dev: &GpuDevice,
    cmds: &mut Commands<'_>,
    kernel: Kernel,
    spec: &Conv3d,
    [x, w]: [View<'a>; 2],
    bias: Option<View<'a>>,
    out: View<'a>,
) -> Result<()> {
    let len = spec.check(x.len, w.len, bias.map(|b| b.len))?;
    let limits = dev.device.limits();
    let align = dev.binding_align();
    let [d, h, wd] = spec.input;
    let [od, oh, ow] = spec.output();
    let (groups, cig, cog, k) = (spec.groups, spec.c_in_g(), spec.c_out_g(), spec.k());
    let taps: usize = spec.kernel.iter().product();
    let (volume, positions): (usize, usize) = (spec.input.iter().product(), spec.positions());
    let u = |v: usize| u32_of(spec, v);
    let too_big = || Error::Gpu(format!("conv3d {kernel:?} exceeds the device's limits"));
    match kernel {
        Kernel::Gemm(c @ Config::Subgroups8 { .. }) => c.check_limits(&limits).map_err(|_| too_big())?,
        // The tiled kernel with the configuration's tiles (conv3d has no direct or blocked kernel).
        Kernel::Gemm(c) => c.conv_tiles().check(&limits)?,
        Kernel::Narrow => {
            if NARROW_WG > limits.max_compute_invocations_per_workgroup as usize {
                return Err(too_big());
            }
        }
    }
    if len == 0 {
        return Ok(());
    }
    // `len` values of `v` from `start`, bound from the aligned start before it.
    let bind = |v: View<'a>, what: &str, start: usize, len: usize| -> Result<(View<'a>, u32)> {
        let from = start / align * align;
        let view = v.slice(from, start - from + len);
        dev.check_binding(&format!("conv3d {spec:?}: {what}"), view.len * 4)?;
        Ok((view, u(start - from)?))
    };
    for win in windows(dev, spec)? {
        let ((b0, nb), (g0, ng), (ci0, nci), (co0, nco)) = (win.batches, win.groups, win.c_in, win.c_out);
        let (xv, x_off) = bind(x, "x", ((b0 * groups + g0) * cig + ci0) * volume, nb * ng * nci * volume)?;
        let (ov, out_off) = bind(out, "out", ((b0 * groups + g0) * cog + co0) * positions, nb * ng * nco * positions)?;
        let w_len = if nci == cig && nco == cog { ng * k * cog } else { (nci * taps - 1) * cog + nco };
        let (wv, w_off) = bind(w, "w", (g0 * k + ci0 * taps) * cog + co0, w_len)?;
        let (bv, bias_off) = match bias {
            Some(b) => bind(b, "bias", g0 * cog + co0, ng * nco)?,
            None => (xv, 0),
        };
        let last = ci0 + nci == cig;
        let params = Params {
            c_in_g: u(nci)?,
            c_out_g: u(nco)?,
            groups: u(ng)?,
            c_out: u(ng * nco)?,
            d: u(d)?,
            h: u(h)?,
            w: u(wd)?,
            k: u(nci * taps)?,
            od: u(od)?,
            oh: u(oh)?,
            ow: u(ow)?,
            positions: u(positions)?,
            kd: u(spec.kernel[0])?,
            kh: u(spec.kernel[1])?,
            kw: u(spec.kernel[2])?,
            has_bias: (bias.is_some() && ci0 == 0) as u32,
            sd: u(spec.stride[0])?,
            sh: u(spec.stride[1])?,
            sw: u(spec.stride[2])?,
            activation: if last { spec.activation.code() } else { Activation::None.code() },
            pd: u(spec.padding[0][0])?,
            ph: u(spec.padding[1][0])?,
            pw: u(spec.padding[2][0])?,
            w_row: u(cog)?,
            dd: u(spec.dilation[0])?,
            dh: u(spec.dilation[1])?,
            dw: u(spec.dilation[2])?,
            w_off,
            x_off,
            out_off,
            bias_off,
            accumulate: (ci0 > 0) as u32,
        };
        let (shader, overrides, grid) = match kernel {
            Kernel::Narrow => (
                &kinema_shaders::CONV3D_NARROW,
                vec![("WG", NARROW_WG as f64)],
                [positions.div_ceil(4 * NARROW_WG), nco.div_ceil(4)],
            ),
            Kernel::Gemm(
                gemm @ (Config::Tiled(_)
                | Config::Blocked(_)
                | Config::Direct { .. }
                | Config::Subgroups { .. }
                | Config::F16(_)
                | Config::SplitK { .. }),
            ) => {
                let t = gemm.conv_tiles();
                let (bm, bn) = (t.wg_m * Tiles::TM, t.wg_n * Tiles::TN);
                let grid = [positions.div_ceil(bn as usize), nco.div_ceil(bm as usize)];
                let overrides = vec![("WG_M", t.wg_m as f64), ("WG_N", t.wg_n as f64), ("BK", t.bk as f64)];
                (&kinema_shaders::CONV3D, overrides, grid)
            }
            Kernel::Gemm(Config::Subgroups8 { wg_rows }) => {
                let contiguous = cog.is_multiple_of(4) && w_off.is_multiple_of(4);
                let overrides = vec![("WG_ROWS", wg_rows as f64), ("CONTIGUOUS", if contiguous { 1.0 } else { 0.0 })];
                (&kinema_shaders::CONV3D_SG8, overrides, [nco.div_ceil(64), positions.div_ceil(16 * wg_rows as usize)])
            }
        };
        let grid = dev.check_groups(&format!("conv3d {spec:?}"), [grid[0], grid[1], nb * ng])?;
        let pipeline = dev.pipeline(shader, &overrides).await?;
        // Without a bias, x stands in for it (never read).
        cmds.dispatch_views(&pipeline, &[xv, wv, bv, ov], &params, grid);
    }
    Ok(())
}
