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

/// Records `out = f(a, b)` with broadcasting over device views. Values over
/// one storage binding are bound in windows along the outermost axis longer
/// than 1: the output's rows, and each operand's where it has that axis (an
/// operand broadcast along it is bound whole in every window).
pub async fn encode_binary(
    dev: &GpuDevice,
    cmds: &mut Commands<'_>,
    op: Binary,
    (a, a_shape): (View<'_>, &[usize]),
    (b, b_shape): (View<'_>, &[usize]),
    out: View<'_>,
) -> Result<()> {
    let bc = Broadcast::new(a_shape, b_shape)?;
    if bc.is_empty() {
        return Ok(());
    }
    let pipeline = dev.pipeline(&kinema_shaders::BINARY, &[]).await?;
    // The axes before `axis` are all 1, so a window of its rows is contiguous
    // in the output and in every operand that has the axis.
    let axis = bc.shape.iter().position(|&d| d > 1).unwrap_or(0);
    let rows = bc.shape.get(axis).copied().unwrap_or(1);
    let row = |strides: &[usize]| strides.get(axis).copied().unwrap_or(0);
    let out_row = bc.len() / rows;
    let (a_row, b_row) = (row(&bc.a_strides), row(&bc.b_strides));
    let windows = dev.row_windows("binary", rows, &[out_row, a_row, b_row], 1)?;
    fn window(v: View<'_>, per_row: usize, r0: usize, n: usize) -> View<'_> {
        match per_row {
            0 => v,
            _ => v.slice(r0 * per_row, n * per_row),
        }
    }
    for (r0, n) in windows {
        let (av, bv, ov) = (window(a, a_row, r0, n), window(b, b_row, r0, n), window(out, out_row, r0, n));
        for (what, v) in [("binary a", av), ("binary b", bv)] {
            dev.check_binding(what, v.len * 4)?;
        }
        let mut shape = bc.shape.clone();
        if let Some(d) = shape.get_mut(axis) {
            *d = n;
        }
        let params = BinaryParams {
            len: u32_of("binary", ov.len)?,
            op: op as u32,
            rank: bc.shape.len() as u32,
            _pad: 0,
            shape: dims("binary", &shape)?,
            a_strides: dims("binary", &bc.a_strides)?,
            b_strides: dims("binary", &bc.b_strides)?,
        };
        cmds.dispatch_views(&pipeline, &[av, bv, ov], &params, dev.grid("binary", ov.len, WG)?);
    }
    Ok(())
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

/// `out = f(a, b)` over the broadcast of their shapes, on the GPU (in
/// windows when over one storage binding, see [`encode_binary`]).
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
    let len = Broadcast::new(a_shape, b_shape)?.len();
    u32_of("binary", len)?;
    if len == 0 {
        return Ok(Vec::new());
    }
    let bufs = [dev.upload("binary.a", a), dev.upload("binary.b", b)];
    let out = dev.output("binary.out", len);
    let mut cmds = dev.commands();
    let (av, bv) = (View::whole(&bufs[0], a.len()), View::whole(&bufs[1], b.len()));
    encode_binary(dev, &mut cmds, op, (av, a_shape), (bv, b_shape), View::whole(&out, len)).await?;
    cmds.submit();
    let result = dev.read(&out, len).await;
    dev.recycle(bufs.into_iter().chain([out]));
    result
}
