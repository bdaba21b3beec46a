//! Dispatch of the attention kernels: `attention.wgsl` (keys and values
//! streamed through workgroup memory, for real GPUs) or `attention_sg8.wgsl`
//! (shared by subgroupBroadcast, for 8-wide subgroups); one workgroup per
//! block of queries of one (batch, head).

use bytemuck::{Pod, Zeroable};

use super::{Commands, GpuDevice, View};
use crate::delegate::Attention;
use crate::error::{Error, Result};

/// The kernel's `Params` uniform, field for field.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    q_len: u32,
    kv_len: u32,
    head_dim: u32,
    heads: u32,
    scale: f32,
    causal: u32,
    has_mask: u32,
    mask_per_batch: u32,
}

/// Queries per workgroup.
const BQ: u32 = 64;

/// Keys per tile for `d4` vec4 per row: K and V tiles fill at most `bytes`
/// of workgroup memory, between 1 and 64 keys.
fn keys_per_tile(d4: u32, bytes: u32) -> u32 {
    (bytes / (2 * d4 * 16)).clamp(1, 64)
}

/// Which attention kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// `attention.wgsl`, 64 queries per workgroup.
    Tiled,
    /// `attention_sg8.wgsl`, 8 queries per subgroup, `wg_rows` subgroups per workgroup.
    Subgroups8 { wg_rows: u32 },
}

impl Variant {
    /// The variant the tuning table gives this adapter.
    pub fn for_device(dev: &GpuDevice) -> Variant {
        super::tuning::attention(dev)
    }

    /// The kernel file and its configuration, as `kinema inspect` and
    /// `--profile` name them.
    pub fn describe(&self) -> String {
        match *self {
            Variant::Tiled => format!("attention.wgsl ({BQ} queries per workgroup)"),
            Variant::Subgroups8 { wg_rows } => format!("attention_sg8.wgsl ({wg_rows} subgroups per workgroup)"),
        }
    }
}

/// `out = softmax(q·kᵀ · scale + mask) · v` on the GPU; see [`Attention`].
/// By the tuned kernel of its shape class ([`super::tuning::attention_for`]).
pub async fn attention(
    dev: &GpuDevice,
    spec: &Attention,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    mask: Option<&[f32]>,
) -> Result<Vec<f32>> {
    attention_with(dev, super::tuning::attention_for(dev, spec), spec, q, k, v, mask).await
}

/// [`attention`] with a given kernel.
pub async fn attention_with(
    dev: &GpuDevice,
    variant: Variant,
    spec: &Attention,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    mask: Option<&[f32]>,
) -> Result<Vec<f32>> {
    let len = spec.check(q.len(), k.len(), v.len(), mask.map(<[f32]>::len))?;
    let bufs = [dev.upload("attention.q", q), dev.upload("attention.k", k), dev.upload("attention.v", v)];
    let mask_buf = dev.upload("attention.mask", mask.unwrap_or(&[]));
    let out = dev.output("attention.out", len);
    let mut commands = dev.commands();
    let views = [View::whole(&bufs[0], q.len()), View::whole(&bufs[1], k.len()), View::whole(&bufs[2], v.len())];
    let mask_view = mask.map(|m| View::whole(&mask_buf, m.len()));
    encode_attention(dev, &mut commands, variant, spec, views, mask_view, View::whole(&out, len)).await?;
    commands.submit();
    let result = if len == 0 { Ok(Vec::new()) } else { dev.read(&out, len).await };
    dev.recycle(bufs.into_iter().chain([mask_buf, out]));
    result
}

/// Records attention over device views.
pub async fn encode_attention(
    dev: &GpuDevice,
    cmds: &mut Commands<'_>,
    variant: Variant,
    spec: &Attention,
    [q, k, v]: [View<'_>; 3],
    mask: Option<View<'_>>,
    out: View<'_>,
) -> Result<()> {
    let len = spec.check(q.len, k.len, v.len, mask.map(|m| m.len))?;
    // Over one binding? Bind (batch, head) pairs in windows — whole batches when
    // the mask is per batch, so each window takes its batches' masks.
    let per_batch_mask = mask.is_some() && spec.mask_per_batch;
    let unit = if per_batch_mask { spec.heads } else { 1 };
    let (ql, kl) = (spec.q_len * spec.head_dim, spec.kv_len * spec.head_dim);
    let mask_len = if per_batch_mask { spec.q_len * spec.kv_len } else { 0 };
    let units = (spec.batch * spec.heads).checked_div(unit).unwrap_or(0);
    let windows = dev.row_windows(&format!("attention {spec:?}"), units, &[unit * ql, unit * kl, mask_len], 1)?;
    if windows.len() > 1 {
        for (u0, n) in windows {
            let (b0, sub) = if per_batch_mask {
                (u0, Attention { batch: n, ..*spec })
            } else {
                (0, Attention { batch: n, heads: 1, mask_per_batch: false, ..*spec })
            };
            let (bh0, bhs) = (u0 * unit, n * unit);
            let views = [q.slice(bh0 * ql, bhs * ql), k.slice(bh0 * kl, bhs * kl), v.slice(bh0 * kl, bhs * kl)];
            let mask = mask.map(|m| if per_batch_mask { m.slice(b0 * mask_len, n * mask_len) } else { m });
            Box::pin(encode_attention(dev, cmds, variant, &sub, views, mask, out.slice(bh0 * ql, bhs * ql))).await?;
        }
        return Ok(());
    }
    let limits = dev.device.limits();
    for (what, n) in [("q", q.len), ("k", k.len), ("mask", mask.map_or(0, |m| m.len))] {
        if u32::try_from(n).is_err() {
            return Err(Error::Invalid(format!("attention {spec:?}: {what} does not fit 32-bit indices")));
        }
        dev.check_binding(&format!("attention {spec:?}: {what}"), n * 4)?;
    }
    let u = |n: usize| u32::try_from(n).map_err(|_| Error::Invalid(format!("attention {spec:?}: {n} is too large")));
    let params = Params {
        q_len: u(spec.q_len)?,
        kv_len: u(spec.kv_len)?,
        head_dim: u(spec.head_dim)?,
        heads: u(spec.heads)?,
        scale: spec.scale,
        causal: spec.causal as u32,
        has_mask: mask.is_some() as u32,
        mask_per_batch: spec.mask_per_batch as u32,
    };
    let d4 = spec.head_dim.div_ceil(4) as u32;
    let too_big = || Error::Gpu(format!("attention {spec:?}: the kernel exceeds the device's limits"));
    let (kernel, overrides, per_group) = match variant {
        Variant::Tiled => {
            let bk = keys_per_tile(d4, limits.max_compute_workgroup_storage_size.min(16 * 1024));
            if BQ > limits.max_compute_invocations_per_workgroup
                || 2 * bk * d4 * 16 > limits.max_compute_workgroup_storage_size
            {
                return Err(too_big());
            }
            let overrides = vec![("BQ", BQ as f64), ("D4", d4 as f64), ("BK", bk as f64)];
            (&kinema_shaders::ATTENTION, overrides, BQ)
        }
        Variant::Subgroups8 { wg_rows } => {
            if wg_rows == 0 || 8 * wg_rows > limits.max_compute_invocations_per_workgroup {
                return Err(too_big());
            }
            let overrides = vec![("WG_ROWS", wg_rows as f64), ("D4", d4 as f64)];
            (&kinema_shaders::ATTENTION_SG8, overrides, 8 * wg_rows)
        }
    };
    let groups = dev.check_groups(
        &format!("attention {spec:?}"),
        [spec.q_len.div_ceil(per_group as usize), spec.batch * spec.heads, 1],
    )?;
    if len == 0 {
        return Ok(());
    }
    let pipeline = dev.pipeline(kernel, &overrides).await?;
    // Without a mask, q stands in for it (never read).
    cmds.dispatch_views(&pipeline, &[q, k, v, mask.unwrap_or(q), out], &params, groups);
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn tiles_fit_16_kib() {
        assert_eq!(super::keys_per_tile(32, 16384), 16); // head_dim 128
        assert_eq!(super::keys_per_tile(16, 16384), 32); // head_dim 64
        assert_eq!(super::keys_per_tile(1, 16384), 64);
    }
}
