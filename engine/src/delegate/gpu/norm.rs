//! Dispatch of `norm.wgsl`, `softmax.wgsl` and `reduce.wgsl`.

use bytemuck::{Pod, Zeroable};

use super::elementwise::u32_of;
use super::{Commands, GpuDevice, View};
use crate::delegate::{Norm, NormKind, Reduce, Softmax};
use crate::error::Result;

/// Threads per workgroup for `reduce.wgsl`.
const WG: usize = 256;

/// Threads per workgroup for norm and softmax, one workgroup per row of `n`:
/// about four values per thread, 32 to 256 threads. A 128-value row (a Wan
/// head's rms norm, a small model's layer norm) then takes 32 threads and five
/// barrier rounds, not 256 threads half idle and eight rounds (the embedded
/// model's norms ran ~6× faster on lavapipe, where every barrier switches all
/// of a workgroup's invocations).
pub(super) fn row_wg(n: usize) -> usize {
    (n / 4).next_power_of_two().clamp(32, 256)
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct NormParams {
    rows: u32,
    n: u32,
    kind: u32,
    affine: u32,
    eps: f32,
    groups: u32,
    spatial: u32,
    has_bias: u32,
}

/// layer_norm / rms_norm / group_norm on the GPU; see [`Norm`].
pub async fn norm(dev: &GpuDevice, spec: &Norm, x: &[f32], w: Option<&[f32]>, b: Option<&[f32]>) -> Result<Vec<f32>> {
    let len = spec.check(x.len(), w.map(<[f32]>::len), b.map(<[f32]>::len))?;
    if len == 0 {
        return Ok(Vec::new());
    }
    let bufs =
        [dev.upload("norm.x", x), dev.upload("norm.w", w.unwrap_or(&[])), dev.upload("norm.b", b.unwrap_or(&[]))];
    let out = dev.output("norm.out", len);
    let mut cmds = dev.commands();
    let (wv, bv) = (w.map(|w| View::whole(&bufs[1], w.len())), b.map(|b| View::whole(&bufs[2], b.len())));
    encode_norm(dev, &mut cmds, spec, View::whole(&bufs[0], len), wv, bv, View::whole(&out, len)).await?;
    cmds.submit();
    let result = dev.read(&out, len).await;
    dev.recycle(bufs.into_iter().chain([out]));
    result
}

/// Records a norm over device views (`w`, `b` optional); rows are bound in
/// windows when x is over one storage binding (group norms by whole groups).
pub async fn encode_norm(
    dev: &GpuDevice,
    cmds: &mut Commands<'_>,
    spec: &Norm,
    x: View<'_>,
    w: Option<View<'_>>,
    b: Option<View<'_>>,
    out: View<'_>,
) -> Result<()> {
    spec.check(x.len, w.map(|v| v.len), b.map(|v| v.len))?;
    let groups = match spec.kind {
        NormKind::Group { groups, .. } => groups,
        _ => 1,
    };
    let pipeline = dev.pipeline(&kinema_shaders::NORM, &[("WG", row_wg(spec.n) as f64)]).await?;
    for (r0, rows) in dev.row_windows(&format!("norm {spec:?}"), spec.rows, &[spec.n], groups)? {
        let sub = Norm { rows, ..*spec };
        let params = norm_params(&sub, w.is_some(), b.is_some())?;
        let (x, out) = (x.slice(r0 * spec.n, rows * spec.n), out.slice(r0 * spec.n, rows * spec.n));
        // Absent parameters bind x in their place (never read).
        cmds.dispatch_views(&pipeline, &[x, w.unwrap_or(x), b.unwrap_or(x), out], &params, dev.grid("norm", rows, 1)?);
    }
    Ok(())
}

fn norm_params(spec: &Norm, affine: bool, bias: bool) -> Result<NormParams> {
    let (groups, spatial) = match spec.kind {
        NormKind::Group { groups, spatial } => (groups, spatial),
        _ => (1, 1),
    };
    Ok(NormParams {
        rows: u32_of("norm", spec.rows)?,
        n: u32_of("norm", spec.n)?,
        kind: spec.code(),
        affine: affine as u32,
        eps: spec.eps,
        groups: u32_of("norm", groups)?,
        spatial: u32_of("norm", spatial)?,
        has_bias: bias as u32,
    })
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct SoftmaxParams {
    rows: u32,
    n: u32,
}

/// Records a softmax over device views.
pub async fn encode_softmax(
    dev: &GpuDevice,
    cmds: &mut Commands<'_>,
    spec: &Softmax,
    x: View<'_>,
    out: View<'_>,
) -> Result<()> {
    spec.check(x.len)?;
    let pipeline = dev.pipeline(&kinema_shaders::SOFTMAX, &[("WG", row_wg(spec.n) as f64)]).await?;
    for (r0, rows) in dev.row_windows(&format!("softmax {spec:?}"), spec.rows, &[spec.n], 1)? {
        let params = SoftmaxParams { rows: u32_of("softmax", rows)?, n: u32_of("softmax", spec.n)? };
        let (x, out) = (x.slice(r0 * spec.n, rows * spec.n), out.slice(r0 * spec.n, rows * spec.n));
        cmds.dispatch_views(&pipeline, &[x, out], &params, dev.grid("softmax", rows, 1)?);
    }
    Ok(())
}

/// Records a reduction over device views, in windows of whole outer rows
/// when x or out is over one storage binding.
pub async fn encode_reduce(
    dev: &GpuDevice,
    cmds: &mut Commands<'_>,
    spec: &Reduce,
    x: View<'_>,
    out: View<'_>,
) -> Result<()> {
    spec.check(x.len)?;
    let pipeline = dev.pipeline(&kinema_shaders::REDUCE, &[]).await?;
    let (row_x, row_out) = (spec.axis * spec.inner, spec.inner);
    for (r0, rows) in dev.row_windows(&format!("reduce {spec:?}"), spec.outer, &[row_x, row_out], 1)? {
        let params = ReduceParams {
            outer: u32_of("reduce", rows)?,
            axis: u32_of("reduce", spec.axis)?,
            inner: u32_of("reduce", spec.inner)?,
            op: spec.op as u32,
        };
        let (xv, ov) = (x.slice(r0 * row_x, rows * row_x), out.slice(r0 * row_out, rows * row_out));
        cmds.dispatch_views(&pipeline, &[xv, ov], &params, dev.grid("reduce", rows * row_out, WG)?);
    }
    Ok(())
}

/// Softmax over the last axis on the GPU.
pub async fn softmax(dev: &GpuDevice, spec: &Softmax, x: &[f32]) -> Result<Vec<f32>> {
    let len = spec.check(x.len())?;
    if len == 0 {
        return Ok(Vec::new());
    }
    let xb = dev.upload("softmax.x", x);
    let out = dev.output("softmax.out", len);
    let mut cmds = dev.commands();
    encode_softmax(dev, &mut cmds, spec, View::whole(&xb, len), View::whole(&out, len)).await?;
    cmds.submit();
    let result = dev.read(&out, len).await;
    dev.recycle([xb, out]);
    result
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ReduceParams {
    outer: u32,
    axis: u32,
    inner: u32,
    op: u32,
}

/// Reduction over one axis on the GPU; see [`Reduce`].
pub async fn reduce(dev: &GpuDevice, spec: &Reduce, x: &[f32]) -> Result<Vec<f32>> {
    let len = spec.check(x.len())?;
    u32_of("reduce", x.len())?;
    if len == 0 {
        return Ok(Vec::new());
    }
    let xb = dev.upload("reduce.x", x);
    let out = dev.output("reduce.out", len);
    let mut cmds = dev.commands();
    encode_reduce(dev, &mut cmds, spec, View::whole(&xb, x.len()), View::whole(&out, len)).await?;
    cmds.submit();
    let result = dev.read(&out, len).await;
    dev.recycle([xb, out]);
    result
}
