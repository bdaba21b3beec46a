//! Copy plans on the GPU: one fill and one `copy.wgsl` dispatch per region,
//! all in one submission.

use bytemuck::{Pod, Zeroable};

use super::GpuDevice;
use super::elementwise::{dims, u32_of};
use crate::delegate::CopyPlan;
use crate::delegate::elementwise::MAX_RANK;
use crate::error::Result;

const WG: usize = 256;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct CopyParams {
    len: u32,
    rank: u32,
    x_offset: u32,
    out_offset: u32,
    shape: [u32; MAX_RANK],
    x_strides: [u32; MAX_RANK],
    out_strides: [u32; MAX_RANK],
    div: [u32; MAX_RANK],
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct FillParams {
    len: u32,
    value: f32,
}

/// Runs `plan` over `inputs` on the GPU.
pub async fn copy(dev: &GpuDevice, plan: &CopyPlan, inputs: &[&[f32]]) -> Result<Vec<f32>> {
    let lens: Vec<usize> = inputs.iter().map(|x| x.len()).collect();
    let len = plan.check(&lens)?;
    u32_of("copy", len)?;
    for (i, x) in inputs.iter().enumerate() {
        u32_of("copy", x.len())?;
        dev.check_binding(&format!("copy input {i}"), x.len() * 4)?;
    }
    dev.check_binding("copy output", len * 4)?;
    if len == 0 {
        return Ok(Vec::new());
    }
    let copy = dev.pipeline(&kinema_shaders::COPY, &[]).await?;
    let buffers: Vec<wgpu::Buffer> = inputs.iter().map(|x| dev.upload("copy.x", x)).collect();
    let out = dev.output("copy.out", len);
    let mut commands = dev.commands();
    // Keep every uniform alive until the submission.
    let mut uniforms = Vec::new();
    if let Some(value) = plan.fill {
        let fill = dev.pipeline(&kinema_shaders::FILL, &[]).await?;
        uniforms.push(dev.uniform("fill.params", &FillParams { len: len as u32, value }));
        commands.dispatch(&fill, &[&out, uniforms.last().unwrap()], dev.grid("fill", len, WG)?);
    }
    for r in plan.regions.iter().filter(|r| !r.is_empty()) {
        let params = CopyParams {
            len: u32_of("copy", r.len())?,
            rank: r.shape.len() as u32,
            x_offset: u32_of("copy", r.x_offset)?,
            out_offset: u32_of("copy", r.out_offset)?,
            shape: dims("copy", &r.shape)?,
            x_strides: dims("copy", &r.x_strides)?,
            out_strides: dims("copy", &r.out_strides)?,
            div: dims("copy", &r.div)?,
        };
        uniforms.push(dev.uniform("copy.params", &params));
        commands.dispatch(&copy, &[&buffers[r.input], &out, uniforms.last().unwrap()], dev.grid("copy", r.len(), WG)?);
    }
    commands.submit();
    let result = dev.read(&out, len).await;
    dev.recycle(buffers.into_iter().chain([out]));
    result
}
