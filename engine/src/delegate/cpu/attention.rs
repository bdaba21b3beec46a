//! Attention on the host, flash-style: per (batch, head) and block of
//! [`BQ`] queries, walk the keys [`BK`] at a time; scores of one block come from
//! a `matrixmultiply` sgemm, an online softmax keeps each row's running max
//! and sum, and `P · V` accumulates into the block's output with a second
//! sgemm. No `q_len × kv_len` matrix is ever held: memory per thread is
//! `BQ × (BK + head_dim)` floats.
//!
//! In wasm32 the blocks go through our sgemm's packed layouts ([`Route`]):
//! the query block is packed once for all key blocks, and the scores are
//! written straight in the layout `P · V` reads, where the softmax sees each
//! strip's four rows side by side — its max, exp and sum run four rows per
//! vector, and the scores are never packed a second time.

use super::activation::{MulAdd, Unfused, exp, exp_by};
use super::gemm::blocked::{KC, MR, Panels, ROUTE, Route, sgemm_into_packed_a, sgemm_packed};
use super::{gemm, parallel};
use crate::Result;
use crate::delegate::Attention;

/// Queries per block (each key block is packed once per query block, so
/// larger blocks pack less; 128 × 256 scores stay in L2).
const BQ: usize = 128;
/// Keys per block (within one packed panel, so a strip of scores is one run).
const BK: usize = 256;
const _: () = assert!(BK <= KC);

/// `out = softmax(q·kᵀ · scale + mask) · v`; see [`Attention`].
pub fn attention(spec: &Attention, q: &[f32], k: &[f32], v: &[f32], mask: Option<&[f32]>) -> Result<Vec<f32>> {
    let mut out = vec![0f32; spec.check(q.len(), k.len(), v.len(), mask.map(<[f32]>::len))?];
    attention_by(ROUTE, spec, [q, k, v], mask, &mut out)?;
    Ok(out)
}

/// [`attention`] into `out`, which must hold exactly the output (whatever it
/// held before is overwritten, never read).
pub fn attention_into(spec: &Attention, [q, k, v]: [&[f32]; 3], mask: Option<&[f32]>, out: &mut [f32]) -> Result<()> {
    attention_by(ROUTE, spec, [q, k, v], mask, out)
}

fn attention_by(
    route: Route,
    spec: &Attention,
    [q, k, v]: [&[f32]; 3],
    mask: Option<&[f32]>,
    out: &mut [f32],
) -> Result<()> {
    let len = spec.check(q.len(), k.len(), v.len(), mask.map(<[f32]>::len))?;
    super::check_out("attention", out, len)?;
    if len == 0 {
        return Ok(());
    }
    let d = spec.head_dim;
    let mut work = Vec::new();
    for (bh, o) in out.chunks_exact_mut(spec.q_len * d).enumerate() {
        for (i, block) in o.chunks_mut(BQ * d).enumerate() {
            work.push((bh, i * BQ, block));
        }
    }
    parallel::for_each_share(work, parallel::threads_for(spec.macs()), |share| {
        let mut scratch = Scratch::default();
        for (bh, q0, block) in share {
            let views = Views::new(spec, [q, k, v], mask, bh, q0, block.len() / d);
            scratch.reset(views.rows);
            match route {
                Route::Strided => query_block(spec, &views, block, &mut scratch),
                Route::Packed => query_block_packed(spec, &views, block, &mut scratch),
            }
            normalise(block, &scratch.sum, d);
        }
    });
    Ok(())
}

/// A thread's reusable buffers.
#[derive(Default)]
struct Scratch {
    scores: Vec<f32>,
    max: Vec<f32>,
    sum: Vec<f32>,
    /// The packed route's: query block, key block, value block, and each row's
    /// rescale for the current key block.
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    rescale: Vec<f32>,
}

impl Scratch {
    /// Fresh running max, sum and rescale for `rows` queries.
    fn reset(&mut self, rows: usize) {
        for (buf, fill) in [(&mut self.max, f32::NEG_INFINITY), (&mut self.sum, 0.0), (&mut self.rescale, 1.0)] {
            buf.clear();
            buf.resize(rows, fill);
        }
    }
}

/// What one query block reads: its `rows` queries from `q0`, its (batch ×
/// head)'s keys and values, and its rows of the mask.
struct Views<'a> {
    q: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
    mask: Option<&'a [f32]>,
    q0: usize,
    rows: usize,
}

impl<'a> Views<'a> {
    fn new(
        spec: &Attention,
        [q, k, v]: [&'a [f32]; 3],
        mask: Option<&'a [f32]>,
        bh: usize,
        q0: usize,
        rows: usize,
    ) -> Self {
        let d = spec.head_dim;
        let mask = mask.map(|m| {
            let batch = if spec.mask_per_batch { bh / spec.heads } else { 0 };
            &m[(batch * spec.q_len + q0) * spec.kv_len..][..rows * spec.kv_len]
        });
        Views {
            q: &q[(bh * spec.q_len + q0) * d..][..rows * d],
            k: &k[bh * spec.kv_len * d..][..spec.kv_len * d],
            v: &v[bh * spec.kv_len * d..][..spec.kv_len * d],
            mask,
            q0,
            rows,
        }
    }
}

/// Each output row divided by its softmax sum (zeros for a row that saw no key).
fn normalise(out: &mut [f32], sums: &[f32], d: usize) {
    for (row, &sum) in out.chunks_exact_mut(d).zip(sums) {
        let inv = if sum > 0.0 { 1.0 / sum } else { 0.0 };
        row.iter_mut().for_each(|o| *o *= inv);
    }
}

/// A query block's unnormalised output into `out` (those rows of the
/// output), its softmax sums into `s.sum` (reset by the caller).
fn query_block(spec: &Attention, views: &Views, out: &mut [f32], s: &mut Scratch) {
    let (d, rows) = (spec.head_dim, views.rows);
    let (q, k, v) = (views.q, views.k, views.v);
    out.fill(0.0);
    for k0 in (0..spec.kv_len).step_by(BK) {
        let cols = BK.min(spec.kv_len - k0);
        s.scores.clear();
        s.scores.resize(rows * cols, 0.0);
        // SAFETY: q is rows × d, k[k0..] read as d × cols (column stride d),
        // scores is rows × cols; all in bounds by the slicing above.
        unsafe {
            gemm::sgemm(
                rows,
                d,
                cols,
                spec.scale,
                q.as_ptr(),
                d as isize,
                1,
                k.as_ptr().add(k0 * d),
                1,
                d as isize,
                0.0,
                s.scores.as_mut_ptr(),
                cols as isize,
                1,
            );
        }
        let rows_of = RowsOf { spec, views, k0, cols };
        rows_of.softmax(&mut s.scores, &mut s.max, &mut s.sum, out);
        // SAFETY: scores is rows × cols, v[k0..] is cols × d, out is rows × d.
        unsafe {
            gemm::sgemm(
                rows,
                cols,
                d,
                1.0,
                s.scores.as_ptr(),
                cols as isize,
                1,
                v.as_ptr().add(k0 * d),
                d as isize,
                1,
                1.0,
                out.as_mut_ptr(),
                d as isize,
                1,
            );
        }
    }
}

/// [`query_block`] through the packed layouts (see the module's note).
fn query_block_packed(spec: &Attention, views: &Views, out: &mut [f32], s: &mut Scratch) {
    let (d, rows, q0) = (spec.head_dim, views.rows, views.q0);
    let (q, k, v, mask) = (views.q, views.k, views.v, views.mask);
    out.fill(0.0);
    let shift = spec.kv_len as isize - spec.q_len as isize;
    // SAFETY: the query block is rows × d, row-major.
    unsafe { Panels::a(rows, d).pack(&mut s.q, q.as_ptr(), d as isize, 1) };
    for k0 in (0..spec.kv_len).step_by(BK) {
        let cols = BK.min(spec.kv_len - k0);
        // Kᵀ's block (d × cols): key j's element p at k[(k0 + j)·d + p].
        // SAFETY: keys k0 .. k0 + cols are inside k.
        unsafe { Panels::b(d, cols).pack(&mut s.k, k.as_ptr().add(k0 * d), d as isize, 1) };
        let layout = Panels::a(rows, cols);
        s.scores.resize(layout.len(), 0.0);
        sgemm_into_packed_a(rows, d, cols, spec.scale, &s.q, &s.k, &mut s.scores);
        if let Some(m) = mask {
            for r in 0..rows {
                for (j, m) in m[r * spec.kv_len + k0..][..cols].iter().enumerate() {
                    s.scores[layout.index(j, r)] += m;
                }
            }
        }
        if spec.causal {
            for r in 0..rows {
                let first_hidden = ((q0 + r) as isize + shift + 1 - k0 as isize).clamp(0, cols as isize) as usize;
                for j in first_hidden..cols {
                    s.scores[layout.index(j, r)] = f32::NEG_INFINITY;
                }
            }
        }
        // One strip of MR rows at a time, element (j, lane) at j·MR + lane.
        for (is, strip) in s.scores[..layout.len()].chunks_exact_mut(cols * MR).enumerate() {
            let lanes = MR.min(rows - is * MR);
            let mut block_max = [f32::NEG_INFINITY; MR];
            for x in strip.chunks_exact(MR) {
                for (m, &x) in block_max.iter_mut().zip(x) {
                    *m = if x > *m { x } else { *m };
                }
            }
            // Each row's shift: its new running max, or 0 while it sees nothing
            // (its scores are all −∞, whose exp is 0 either way). Padding lanes: 0.
            let mut shifts = [0f32; MR];
            for l in 0..lanes {
                let r = is * MR + l;
                let new_max = s.max[r].max(block_max[l]);
                if new_max > f32::NEG_INFINITY {
                    s.rescale[r] = exp(s.max[r] - new_max);
                    (s.max[r], shifts[l]) = (new_max, new_max);
                }
            }
            let mut sums = [0f32; MR];
            for x in strip.chunks_exact_mut(MR) {
                for ((x, sum), shift) in x.iter_mut().zip(&mut sums).zip(shifts) {
                    *x = exp(*x - shift);
                    *sum += *x;
                }
            }
            for (l, sum) in sums.into_iter().enumerate().take(lanes) {
                let r = is * MR + l;
                s.sum[r] = s.sum[r] * s.rescale[r] + sum;
            }
        }
        for (row, rescale) in out.chunks_exact_mut(d).zip(&mut s.rescale) {
            if *rescale != 1.0 {
                row.iter_mut().for_each(|o| *o *= *rescale);
                *rescale = 1.0;
            }
        }
        // SAFETY: values k0 .. k0 + cols are inside v, each d long.
        unsafe { Panels::b(cols, d).pack(&mut s.v, v.as_ptr().add(k0 * d), 1, d as isize) };
        // SAFETY: out is rows × d, row-major.
        unsafe { sgemm_packed(rows, cols, d, 1.0, &s.scores, &s.v, 1.0, out.as_mut_ptr(), d as isize, 1) };
    }
}

/// One key block's scores of a query block, row-major (`cols` per row): the
/// online softmax's step over them.
struct RowsOf<'a> {
    spec: &'a Attention,
    views: &'a Views<'a>,
    k0: usize,
    cols: usize,
}

impl RowsOf<'_> {
    /// Adds the mask, hides what the causal mask hides, brings each row's
    /// running max and sum (and its output so far) to the block's max, and
    /// leaves `e^(score − max)` in the scores, for `P · V`. Compiled for the
    /// widest vectors the CPU has (AVX-512, AVX2), portably otherwise.
    fn softmax(&self, scores: &mut [f32], max: &mut [f32], sum: &mut [f32], out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has AVX-512F, checked just above.
                return unsafe { self.softmax_avx512(scores, max, sum, out) };
            }
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                // SAFETY: the CPU has AVX2 and FMA, checked just above.
                return unsafe { self.softmax_avx2(scores, max, sum, out) };
            }
        }
        self.softmax_portable(scores, max, sum, out)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn softmax_avx512(&self, scores: &mut [f32], max: &mut [f32], sum: &mut [f32], out: &mut [f32]) {
        self.softmax_by::<super::activation::Fused>(scores, max, sum, out)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn softmax_avx2(&self, scores: &mut [f32], max: &mut [f32], sum: &mut [f32], out: &mut [f32]) {
        self.softmax_by::<super::activation::Fused>(scores, max, sum, out)
    }

    fn softmax_portable(&self, scores: &mut [f32], max: &mut [f32], sum: &mut [f32], out: &mut [f32]) {
        self.softmax_by::<Unfused>(scores, max, sum, out)
    }

    /// The softmax with `exp`'s multiply-adds by `M` (fused where the caller has FMA).
    #[inline(always)]
    fn softmax_by<M: MulAdd>(&self, scores: &mut [f32], max: &mut [f32], sum: &mut [f32], out: &mut [f32]) {
        let (spec, views, k0, cols) = (self.spec, self.views, self.k0, self.cols);
        let d = spec.head_dim;
        let shift = spec.kv_len as isize - spec.q_len as isize;
        for (r, row) in scores.chunks_exact_mut(cols).enumerate() {
            if let Some(m) = views.mask {
                row.iter_mut().zip(&m[r * spec.kv_len + k0..][..cols]).for_each(|(x, m)| *x += m);
            }
            if spec.causal {
                let last = (views.q0 + r) as isize + shift; // the last key this query sees
                let first_hidden = (last + 1 - k0 as isize).clamp(0, cols as isize) as usize;
                row[first_hidden..].fill(f32::NEG_INFINITY);
            }
            // Online softmax: rescale what came before to the new running max.
            let new_max = max[r].max(row_max(row));
            if new_max == f32::NEG_INFINITY {
                row.fill(0.0); // nothing visible yet
                continue;
            }
            let rescale = exp_by::<M>(max[r] - new_max);
            max[r] = new_max;
            sum[r] = sum[r] * rescale + exp_shifted::<M>(row, new_max);
            out[r * d..][..d].iter_mut().for_each(|o| *o *= rescale);
        }
    }
}

/// The largest value of a row (−∞ for none), over sixteen running maxima so
/// the loop vectorises.
#[inline(always)]
fn row_max(row: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 16];
    let mut chunks = row.chunks_exact(16);
    for c in &mut chunks {
        acc.iter_mut().zip(c).for_each(|(a, &v)| *a = if v > *a { v } else { *a });
    }
    let rest = chunks.remainder().iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    acc.iter().fold(rest, |a, &b| a.max(b))
}

/// `row[i] = e^(row[i] − shift)`; returns their sum (sixteen partial sums, so
/// the adds vectorise too).
#[inline(always)]
fn exp_shifted<M: MulAdd>(row: &mut [f32], shift: f32) -> f32 {
    row.iter_mut().for_each(|x| *x = exp_by::<M>(*x - shift));
    let mut acc = [0f32; 16];
    let mut chunks = row.chunks_exact(16);
    for c in &mut chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    acc.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition: the whole score matrix, in f64.
    fn direct(spec: &Attention, q: &[f32], k: &[f32], v: &[f32], mask: Option<&[f32]>) -> Vec<f32> {
        let d = spec.head_dim;
        let mut out = vec![0f32; q.len()];
        for bh in 0..spec.batch * spec.heads {
            for i in 0..spec.q_len {
                let qi = &q[(bh * spec.q_len + i) * d..][..d];
                let mut scores: Vec<f64> = (0..spec.kv_len)
                    .map(|j| {
                        let kj = &k[(bh * spec.kv_len + j) * d..][..d];
                        let mut s = qi.iter().zip(kj).map(|(a, b)| *a as f64 * *b as f64).sum::<f64>();
                        s *= spec.scale as f64;
                        if let Some(m) = mask {
                            let b = if spec.mask_per_batch { bh / spec.heads } else { 0 };
                            s += m[(b * spec.q_len + i) * spec.kv_len + j] as f64;
                        }
                        if spec.causal && j as isize > i as isize + spec.kv_len as isize - spec.q_len as isize {
                            s = f64::NEG_INFINITY;
                        }
                        s
                    })
                    .collect();
                let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                if max == f64::NEG_INFINITY {
                    continue;
                }
                scores.iter_mut().for_each(|s| *s = (*s - max).exp());
                let sum: f64 = scores.iter().sum();
                for c in 0..d {
                    let o: f64 =
                        scores.iter().enumerate().map(|(j, p)| p * v[(bh * spec.kv_len + j) * d + c] as f64).sum();
                    out[(bh * spec.q_len + i) * d + c] = (o / sum) as f32;
                }
            }
        }
        out
    }

    #[test]
    fn matches_the_definition() {
        let specs = [
            Attention::new(1, 1, 1, 1, 1),
            Attention::new(2, 3, 7, 33, 16),
            Attention { causal: true, ..Attention::new(1, 2, 70, 300, 8) },
            Attention { mask_per_batch: true, ..Attention::new(2, 2, 65, 257, 128) },
            Attention { causal: true, ..Attention::new(1, 1, 5, 3, 4) }, // the first queries see nothing
        ];
        for (i, spec) in specs.iter().enumerate() {
            let qn = spec.batch * spec.heads * spec.q_len * spec.head_dim;
            let kn = spec.batch * spec.heads * spec.kv_len * spec.head_dim;
            let r = |n, s| crate::random::uniform(n, s);
            let (q, k, v) = (r(qn, i as u64), r(kn, 10 + i as u64), r(kn, 20 + i as u64));
            let mask = (i == 3).then(|| {
                let mut m = r(spec.mask_len(), 30);
                m[5] = f32::NEG_INFINITY;
                m
            });
            let want = direct(spec, &q, &k, &v, mask.as_deref());
            for route in [Route::Strided, Route::Packed] {
                // Into NaNs: every output is written, none read.
                let mut got = vec![f32::NAN; want.len()];
                attention_by(route, spec, [&q, &k, &v], mask.as_deref(), &mut got).unwrap();
                let err = got.iter().zip(&want).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
                assert!(err < 1e-5, "{route:?} {spec:?}: {err}");
            }
        }
    }
}
