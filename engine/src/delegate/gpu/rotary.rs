//! Dispatch of `rotary.wgsl`.

use bytemuck::{Pod, Zeroable};

use super::elementwise::u32_of;
use super::{Commands, GpuDevice, View};
use crate::delegate::Rotary;
use crate::error::Result;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    pairs: u32,
    len: u32,
    inner: u32,
    dim: u32,
    interleaved: u32,
    row0: u32,
}

/// Records a rotary embedding over device views, in windows of whole rows
/// (`dim` values) when x is over one storage binding.
pub async fn encode_rotary(
    dev: &GpuDevice,
    cmds: &mut Commands<'_>,
    spec: &Rotary,
    [x, cos, sin]: [View<'_>; 3],
    out: View<'_>,
) -> Result<()> {
    let len = spec.check(x.len, cos.len, sin.len)?;
    let pipeline = dev.pipeline(&kinema_shaders::ROTARY, &[]).await?;
    let dim = spec.dim.max(1);
    for (r0, rows) in dev.row_windows(&format!("rotary {spec:?}"), len / dim, &[dim], 1)? {
        let params = Params { row0: u32_of("rotary", r0)?, ..params(spec, rows * dim)? };
        let (xv, ov) = (x.slice(r0 * dim, rows * dim), out.slice(r0 * dim, rows * dim));
        cmds.dispatch_views(&pipeline, &[xv, cos, sin, ov], &params, dev.grid("rotary", rows * dim / 2, 256)?);
    }
    Ok(())
}

fn params(spec: &Rotary, len: usize) -> Result<Params> {
    Ok(Params {
        pairs: u32_of("rotary", len / 2)?,
        len: u32_of("rotary", spec.len)?,
        inner: u32_of("rotary", spec.inner)?,
        dim: u32_of("rotary", spec.dim)?,
        interleaved: spec.interleaved as u32,
        row0: 0,
    })
}

/// Rotary embedding on the GPU; see [`Rotary`].
pub async fn rotary(dev: &GpuDevice, spec: &Rotary, x: &[f32], cos: &[f32], sin: &[f32]) -> Result<Vec<f32>> {
    let len = spec.check(x.len(), cos.len(), sin.len())?;
    if len == 0 {
        return Ok(Vec::new());
    }
    let bufs = [dev.upload("rotary.x", x), dev.upload("rotary.cos", cos), dev.upload("rotary.sin", sin)];
    let out = dev.output("rotary.out", len);
    let mut cmds = dev.commands();
    let views = [View::whole(&bufs[0], len), View::whole(&bufs[1], cos.len()), View::whole(&bufs[2], sin.len())];
    encode_rotary(dev, &mut cmds, spec, views, View::whole(&out, len)).await?;
    cmds.submit();
    let result = dev.read(&out, len).await;
    dev.recycle(bufs.into_iter().chain([out]));
    result
}
