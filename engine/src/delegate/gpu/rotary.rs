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
}

/// Records a rotary embedding over device views.
pub async fn encode_rotary(
    dev: &GpuDevice,
    cmds: &mut Commands<'_>,
    spec: &Rotary,
    [x, cos, sin]: [View<'_>; 3],
    out: View<'_>,
) -> Result<()> {
    let len = spec.check(x.len, cos.len, sin.len)?;
    let params = params(spec, len)?;
    let pipeline = dev.pipeline(&kinema_shaders::ROTARY, &[]).await?;
    cmds.dispatch_views(&pipeline, &[x, cos, sin, out], &params, dev.grid("rotary", len / 2, 256)?);
    Ok(())
}

fn params(spec: &Rotary, len: usize) -> Result<Params> {
    Ok(Params {
        pairs: u32_of("rotary", len / 2)?,
        len: u32_of("rotary", spec.len)?,
        inner: u32_of("rotary", spec.inner)?,
        dim: u32_of("rotary", spec.dim)?,
        interleaved: spec.interleaved as u32,
    })
}

/// Rotary embedding on the GPU; see [`Rotary`].
pub async fn rotary(dev: &GpuDevice, spec: &Rotary, x: &[f32], cos: &[f32], sin: &[f32]) -> Result<Vec<f32>> {
    let len = spec.check(x.len(), cos.len(), sin.len())?;
    let params = params(spec, len)?;
    let grid = dev.grid("rotary", len / 2, 256)?;
    dev.run(&kinema_shaders::ROTARY, &[], &[x, cos, sin], len, &params, grid).await
}
