//! Dispatch of `unary.wgsl` and `binary.wgsl`.

use bytemuck::{Pod, Zeroable};

pub(crate) use super::device::u32_of;
use super::{Commands, GpuDevice, View};
use crate::delegate::elementwise::{MAX_RANK, check_len};
use crate::delegate::{Binary, Broadcast, Unary};
use crate::error::{Error, Result};

const WG: usize = 256;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct UnaryParams {
    len: u32,
    op: u32,
    a: f32,
    b: f32,
}

/// Eight u32, as `array<vec4<u32>, 2>`.
pub(crate) fn dims(what: &str, v: &[usize]) -> Result<[u32; MAX_RANK]> {
    let mut out = [0u32; MAX_RANK];
    for (o, &x) in out.iter_mut().zip(v) {
        *o = u32::try_from(x).map_err(|_| Error::Invalid(format!("{what}: {x} does not fit 32-bit indices")))?;
    }
    Ok(out)
}

/// `out[i] = f(x[i]·a + b)` on the GPU, in windows of at most one storage binding.
pub async fn unary(dev: &GpuDevice, op: Unary, x: &[f32], a: f32, b: f32) -> Result<Vec<f32>> {
    let window = (dev.device.limits().max_storage_buffer_binding_size as usize / 4).max(1);
    let mut out = Vec::with_capacity(x.len());
    for x in x.chunks(window) {
        let params = UnaryParams { len: u32_of("unary", x.len())?, op: op as u32, a, b };
        let groups = dev.grid("unary", x.len(), WG)?;
        out.extend(dev.run(&kinema_shaders::UNARY, &[], &[x], x.len(), &params, groups).await?);
    }
    Ok(out)
}

/// Records `out = f(x·a + b)` over device views.
pub async fn encode_unary(
    dev: &GpuDevice,
    cmds: &mut Commands<'_>,
    op: Unary,
    a: f32,
    b: f32,
    x: View<'_>,
    out: View<'_>,
) -> Result<()> {
    let params = UnaryParams { len: u32_of("unary", x.len)?, op: op as u32, a, b };
    let pipeline = dev.pipeline(&kinema_shaders::UNARY, &[]).await?;
    cmds.dispatch_views(&pipeline, &[x, out], &params, dev.grid("unary", x.len, WG)?);
    Ok(())
}

/// Records `out = f(a, b)` with broadcasting over device views.
pub async fn encode_binary(
    dev: &GpuDevice,
    cmds: &mut Commands<'_>,
    op: Binary,
    (a, a_shape): (View<'_>, &[usize]),
    (b, b_shape): (View<'_>, &[usize]),
    out: View<'_>,
) -> Result<()> {
    let params = binary_params(op, a_shape, b_shape)?;
    let pipeline = dev.pipeline(&kinema_shaders::BINARY, &[]).await?;
    cmds.dispatch_views(&pipeline, &[a, b, out], &params, dev.grid("binary", params.len as usize, WG)?);
    Ok(())
}

fn binary_params(op: Binary, a_shape: &[usize], b_shape: &[usize]) -> Result<BinaryParams> {
    let bc = Broadcast::new(a_shape, b_shape)?;
    Ok(BinaryParams {
        len: u32_of("binary", bc.len())?,
        op: op as u32,
        rank: bc.shape.len() as u32,
        _pad: 0,
        shape: dims("binary", &bc.shape)?,
        a_strides: dims("binary", &bc.a_strides)?,
        b_strides: dims("binary", &bc.b_strides)?,
    })
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct BinaryParams {
    len: u32,
    op: u32,
    rank: u32,
    _pad: u32,
    shape: [u32; MAX_RANK],
    a_strides: [u32; MAX_RANK],
    b_strides: [u32; MAX_RANK],
}

/// `out = f(a, b)` over the broadcast of their shapes, on the GPU.
pub async fn binary(
    dev: &GpuDevice,
    op: Binary,
    a: &[f32],
    a_shape: &[usize],
    b: &[f32],
    b_shape: &[usize],
) -> Result<Vec<f32>> {
    check_len("binary a", a_shape, a.len())?;
    check_len("binary b", b_shape, b.len())?;
    let params = binary_params(op, a_shape, b_shape)?;
    let len = params.len as usize;
    let groups = dev.grid("binary", len, WG)?;
    dev.run(&kinema_shaders::BINARY, &[], &[a, b], len, &params, groups).await
}
