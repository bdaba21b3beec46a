//! Copy plans on the GPU: one fill and one `copy.wgsl` dispatch per region,
//! all in one submission.

use bytemuck::{Pod, Zeroable};

use super::elementwise::{dims, u32_of};
use super::{Commands, GpuDevice, View};
use crate::delegate::CopyPlan;
use crate::delegate::elementwise::MAX_RANK;
use crate::delegate::layout::Region;
use crate::error::{Error, Result};

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

/// Runs `plan` over `inputs` on the GPU (in windows when over one binding,
/// see [`encode_copy`]).
pub async fn copy(dev: &GpuDevice, plan: &CopyPlan, inputs: &[&[f32]]) -> Result<Vec<f32>> {
    let lens: Vec<usize> = inputs.iter().map(|x| x.len()).collect();
    let len = plan.check(&lens)?;
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

/// Records `plan` (a fill, then one copy dispatch per region) over device
/// views. Where a region reads or writes more than one storage binding holds,
/// it is split — along the axis that spreads the offending side most, at a
/// multiple of that axis's upsampling factor — until each piece's input and
/// output spans fit; each piece binds just its spans (from an aligned start).
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
    // Whole vec4s per binding; starts on the offset alignment.
    let max = dev.binding_floats();
    let align = dev.binding_align();
    if let Some(value) = plan.fill {
        let fill = dev.pipeline(&kinema_shaders::FILL, &[]).await?;
        let step = (max / align * align).max(align).min(len);
        for start in (0..len).step_by(step) {
            let n = step.min(len - start);
            let view = out.slice(start, n);
            cmds.dispatch_views(&fill, &[view], &FillParams { len: n as u32, value }, dev.grid("fill", n, WG)?);
        }
    }
    let copy = dev.pipeline(&kinema_shaders::COPY, &[]).await?;
    let mut pending: Vec<Region> = plan.regions.iter().filter(|r| !r.is_empty()).cloned().collect();
    while let Some(r) = pending.pop() {
        // The span each side touches, and how much each axis contributes to it.
        let x_reach: Vec<usize> = (0..r.shape.len()).map(|d| (r.shape[d] - 1) / r.div[d] * r.x_strides[d]).collect();
        let o_reach: Vec<usize> = (0..r.shape.len()).map(|d| (r.shape[d] - 1) * r.out_strides[d]).collect();
        let (x_start, o_start) = (r.x_offset / align * align, r.out_offset / align * align);
        let x_span = r.x_offset - x_start + x_reach.iter().sum::<usize>() + 1;
        let o_span = r.out_offset - o_start + o_reach.iter().sum::<usize>() + 1;
        if x_span <= max && o_span <= max {
            let params = CopyParams {
                len: u32_of("copy", r.len())?,
                rank: r.shape.len() as u32,
                x_offset: u32_of("copy", r.x_offset - x_start)?,
                out_offset: u32_of("copy", r.out_offset - o_start)?,
                shape: dims("copy", &r.shape)?,
                x_strides: dims("copy", &r.x_strides)?,
                out_strides: dims("copy", &r.out_strides)?,
                div: dims("copy", &r.div)?,
            };
            let x = inputs[r.input];
            let (xv, ov) = (x.slice(x_start, x_span.min(x.len - x_start)), out.slice(o_start, o_span));
            cmds.dispatch_views(&copy, &[xv, ov], &params, dev.grid("copy", r.len(), WG)?);
            continue;
        }
        let reach = if x_span > max { &x_reach } else { &o_reach };
        // The axis that spreads that side most and can be cut (at a multiple of its factor).
        let cut = (0..r.shape.len())
            .filter(|&d| r.shape[d] / 2 / r.div[d] > 0)
            .max_by_key(|&d| reach[d])
            .filter(|&d| reach[d] > 0);
        let Some(d) = cut else {
            return Err(Error::Gpu(format!(
                "copy region {:?}: {} input / {} output floats exceed the device's storage binding limit",
                r.shape, x_span, o_span
            )));
        };
        let h = r.shape[d] / 2 / r.div[d] * r.div[d];
        let mut first = r.clone();
        first.shape[d] = h;
        let mut second = r;
        second.shape[d] -= h;
        second.x_offset += h / second.div[d] * second.x_strides[d];
        second.out_offset += h * second.out_strides[d];
        pending.push(first);
        pending.push(second);
    }
    Ok(())
}
