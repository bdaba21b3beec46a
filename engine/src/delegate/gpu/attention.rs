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
    /// The score matrix in blocks: per block of (batch, head) units or of
    /// at most `rows` query rows of one, `S = q·kᵀ` by a matmul kernel,
    /// `attention_scores.wgsl`'s softmax of S in place, then `S·v` by a matmul
    /// kernel — each matmul by the tuning table's choice for its shape. At
    /// most [`SCORES_BUDGET`] scores are held at once.
    Scores { rows: u32 },
}

/// Floats of scores the [`Variant::Scores`] kernel holds at once (64 MiB),
/// or fewer where one storage binding holds fewer.
pub const SCORES_BUDGET: usize = 16 << 20;

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
            Variant::Scores { rows } => {
                format!("attention_scores.wgsl (blocks of up to {rows} query rows, between two matmuls)")
            }
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
    if let Variant::Scores { rows } = variant {
        if len == 0 {
            return Ok(());
        }
        return encode_scores(dev, cmds, spec, rows as usize, [q, k, v], mask, out).await;
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
        Variant::Scores { .. } => unreachable!("recorded above"),
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

/// `attention_scores.wgsl`'s `Params`, field for field.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ScoresParams {
    rows: u32,
    kv_len: u32,
    q_len: u32,
    rows_per_unit: u32,
    row0: u32,
    unit0: u32,
    heads: u32,
    scale: f32,
    causal: u32,
    has_mask: u32,
    mask_per_batch: u32,
}

/// One block of [`Variant::Scores`]: `units` (batch, head) units from `unit0`,
/// query rows `row0 .. row0 + rows` of each.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Block {
    unit0: usize,
    units: usize,
    row0: usize,
    rows: usize,
}

/// The blocks of [`Variant::Scores`] with at most `budget` scores and
/// `max_rows` query rows of a unit each: whole units, as many as fit, when
/// one unit's scores fit both; else one unit at a time in blocks of query
/// rows (a multiple of 64 rows where more fit).
fn blocks(spec: &Attention, max_rows: usize, budget: usize) -> Option<Vec<Block>> {
    let units = spec.batch * spec.heads;
    let per_unit = spec.q_len.checked_mul(spec.kv_len)?;
    if per_unit <= budget && spec.q_len <= max_rows {
        let g = (budget / per_unit.max(1)).clamp(1, units.max(1));
        let list =
            (0..units).step_by(g).map(|u0| Block { unit0: u0, units: g.min(units - u0), row0: 0, rows: spec.q_len });
        return Some(list.collect());
    }
    let fit = (budget / spec.kv_len.max(1)).min(max_rows);
    let rows = if fit >= 64 { fit / 64 * 64 } else { fit };
    if rows == 0 {
        return None;
    }
    let per: Vec<_> = (0..spec.q_len).step_by(rows).map(|r0| (r0, rows.min(spec.q_len - r0))).collect();
    Some(
        (0..units)
            .flat_map(|u| per.iter().map(move |&(row0, rows)| Block { unit0: u, units: 1, row0, rows }))
            .collect(),
    )
}

/// Records [`Variant::Scores`] over views that fit their bindings.
async fn encode_scores(
    dev: &GpuDevice,
    cmds: &mut Commands<'_>,
    spec: &Attention,
    max_rows: usize,
    [q, k, v]: [View<'_>; 3],
    mask: Option<View<'_>>,
    out: View<'_>,
) -> Result<()> {
    use super::matmul::{BStore, encode_matmul_at};
    use crate::delegate::Matmul;
    let blocks = blocks(spec, max_rows, SCORES_BUDGET.min(dev.binding_floats())).ok_or_else(|| {
        Error::Gpu(format!(
            "attention {spec:?}: one row of {} scores exceeds the device's storage binding",
            spec.kv_len
        ))
    })?;
    let largest = blocks.iter().map(|b| b.units * b.rows * spec.kv_len).max().unwrap_or(0);
    let scores = cmds.temporary("attention.scores", largest);
    let softmax =
        dev.pipeline(&kinema_shaders::ATTENTION_SCORES, &[("WG", super::norm::row_wg(spec.kv_len) as f64)]).await?;
    let (d, ql, kl) = (spec.head_dim, spec.q_len * spec.head_dim, spec.kv_len * spec.head_dim);
    let u = |what: &str, n: usize| super::device::u32_of(&format!("attention {spec:?}: {what}"), n);
    for b in blocks {
        let s = View::whole(&scores, b.units * b.rows * spec.kv_len);
        let qk = Matmul { trans_b: true, ..Matmul::new(b.units, b.rows, spec.kv_len, d) };
        let (q_at, kv_at) = (b.unit0 * ql + b.row0 * d, b.unit0 * kl);
        let config = super::tuning::matmul_for(dev, &qk);
        encode_matmul_at(dev, cmds, config, &qk, q, (k, BStore::F32), None, s, [q_at, kv_at, 0]).await?;
        let params = ScoresParams {
            rows: u("rows", b.units * b.rows)?,
            kv_len: u("kv_len", spec.kv_len)?,
            q_len: u("q_len", spec.q_len)?,
            rows_per_unit: u("rows", b.rows)?,
            row0: u("rows", b.row0)?,
            unit0: u("units", b.unit0)?,
            heads: u("heads", spec.heads)?,
            scale: spec.scale,
            causal: spec.causal as u32,
            has_mask: mask.is_some() as u32,
            mask_per_batch: spec.mask_per_batch as u32,
        };
        // Without a mask, q stands in for it (never read).
        let grid = dev.grid(&format!("attention {spec:?}"), b.units * b.rows, 1)?;
        cmds.dispatch_views(&softmax, &[s, mask.unwrap_or(q)], &params, grid);
        let pv = Matmul::new(b.units, b.rows, d, spec.kv_len);
        let config = super::tuning::matmul_for(dev, &pv);
        encode_matmul_at(dev, cmds, config, &pv, s, (v, BStore::F32), None, out, [0, kv_at, q_at]).await?;
    }
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

    #[test]
    fn score_blocks_cover_every_row_once_within_the_budget() {
        use super::{Attention, Block, blocks};
        // Whole units, as many as fit.
        let spec = Attention::new(2, 3, 10, 20, 8);
        let b = blocks(&spec, 10, 450).unwrap();
        assert_eq!(b, [0, 2, 4].map(|u| Block { unit0: u, units: 2, row0: 0, rows: 10 }));
        // Rows of one unit: multiples of 64 where more than 64 fit.
        let spec = Attention::new(1, 2, 300, 1000, 8);
        let b = blocks(&spec, 1000, 130_000).unwrap();
        assert_eq!(b.len(), 6);
        assert_eq!((b[0].rows, b[1].row0, b[1].rows, b[2].unit0), (128, 128, 128, 0));
        assert_eq!((b[2].row0, b[2].rows, b[3].unit0), (256, 44, 1));
        assert!(b.iter().all(|b| b.units * b.rows * spec.kv_len <= 130_000));
        // Fewer than 64 rows fit: as many as fit; none: no blocks.
        assert_eq!(blocks(&Attention::new(1, 1, 5, 1000, 8), 64, 3000).unwrap().len(), 2);
        assert!(blocks(&Attention::new(1, 1, 5, 1000, 8), 64, 999).is_none());
        // At most `max_rows` rows of a unit, however many scores would fit.
        let b = blocks(&Attention::new(1, 2, 10, 20, 8), 4, 1 << 20).unwrap();
        assert_eq!(b.len(), 6);
        assert_eq!(b[2], Block { unit0: 0, units: 1, row0: 8, rows: 2 });
    }
}
