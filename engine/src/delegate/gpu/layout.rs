//! Copy plans on the GPU: one fill and one `copy.wgsl` dispatch per region,
//! all in one submission.

use bytemuck::{Pod, Zeroable};

use super::elementwise::{dims, u32_of};
use super::{Commands, GpuDevice, View};
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
    for (i, x) in inputs.iter().enumerate() {
        dev.check_binding(&format!("copy input {i}"), x.len() * 4)?;
    }
    dev.check_binding("copy output", len * 4)?;
    if len == 0 {
        return Ok(Vec::new());
    }
    let buffers: Vec<wgpu::Buffer> = inputs.iter().map(|x| dev.upload("copy.x", x)).collect();
    let out = dev.output("copy.out", len);
    let views: Vec<View> = buffers.iter().zip(inputs).map(|(b, x)| View::whole(b, x.len())).collect();
    let mut commands = dev.commands();
    encode_copy(dev, &mut commands, plan, &views, View::whole(&out, len)).await?;
    commands.submit();
    let result = dev.read(&out, len).await;
    dev.recycle(buffers.into_iter().chain([out]));
    result
}

/// Records `plan` (a fill, then one copy dispatch per region) over device views.
pub async fn encode_copy(
    dev: &GpuDevice,
    cmds: &mut Commands<'_>,
    plan: &CopyPlan,
    inputs: &[View<'_>],
    out: View<'_>,
) -> Result<()> {
    let lens: Vec<usize> = inputs.iter().map(|x| x.len).collect();
    let len = plan.check(&lens)?;
    u32_of("copy", len)?;
    for x in inputs {
        u32_of("copy", x.len)?;
    }
    if len == 0 {
        return Ok(());
    }
    if let Some(value) = plan.fill {
        let fill = dev.pipeline(&kinema_shaders::FILL, &[]).await?;
        cmds.dispatch_views(&fill, &[out], &FillParams { len: len as u32, value }, dev.grid("fill", len, WG)?);
    }
    let copy = dev.pipeline(&kinema_shaders::COPY, &[]).await?;
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
        cmds.dispatch_views(&copy, &[inputs[r.input], out], &params, dev.grid("copy", r.len(), WG)?);
    }
    Ok(())
}
