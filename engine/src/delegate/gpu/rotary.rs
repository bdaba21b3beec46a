//! Dispatch of `rotary.wgsl`.

use bytemuck::{Pod, Zeroable};

use super::GpuDevice;
use super::elementwise::u32_of;
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

/// Rotary embedding on the GPU; see [`Rotary`].
pub async fn rotary(dev: &GpuDevice, spec: &Rotary, x: &[f32], cos: &[f32], sin: &[f32]) -> Result<Vec<f32>> {
    let len = spec.check(x.len(), cos.len(), sin.len())?;
    let params = Params {
        pairs: u32_of("rotary", len / 2)?,
        len: u32_of("rotary", spec.len)?,
        inner: u32_of("rotary", spec.inner)?,
        dim: u32_of("rotary", spec.dim)?,
        interleaved: spec.interleaved as u32,
    };
    let grid = dev.grid("rotary", len / 2, 256)?;
    dev.run(&kinema_shaders::ROTARY, &[], &[x, cos, sin], len, &params, grid).await
}
