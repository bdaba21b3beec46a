//! Matmul on the host: `matrixmultiply`'s packed, SIMD sgemm reads A and B
//! through strides (so transposes are free); the output is cut into blocks of
//! rows × columns ([`cut`]), one per thread, along whichever side packs least;
//! the epilogue adds the bias and applies the activation.

use super::parallel::{self, OutPtr};
use super::stored::{self, Quant, StoredB};
use super::{activation, gemm};
use crate::delegate::{Activation, Matmul, Operand};
use crate::weights::dtype::Dtype;
use crate::weights::{convert, quant};
use crate::{Error, Result};

/// One block of work: rows `rows` and columns `cols` of batch `batch`'s output.
struct Block {
    batch: usize,
    rows: std::ops::Range<usize>,
    cols: std::ops::Range<usize>,
}

/// Blocks per thread a product is cut into. One: every further block packs
/// its share of A or B once more, which cost more than the balance it buys on
/// equally free cores (1024³ on two threads: cut 2 × 1, 10.8 ms at best; 2 × 2,
/// 11.6 ms; 2 × 4, 11.9 ms — docs/benchmarks.md).
const BLOCKS_PER_THREAD: usize = 1;

/// Alignment of block edges: the sgemm's micro-tiles are at most 16 wide.
const EDGE: usize = 16;

/// How an `m × n` output is cut into about `blocks` blocks: `(row blocks,
/// column blocks)`. Each block packs its rows of A (`m/r × k`) and its columns
/// of B (`k × n/c`), so a cut packs `c·m·k + r·k·n` floats in all: of the cuts
/// into exactly `blocks` the one packing least (least `c·m + r·n`) is taken; a
/// product too small for any gives fewer, whole rows.
fn cut(m: usize, n: usize, blocks: usize) -> (usize, usize) {
    let fits = |r: usize, c: usize| r <= m.div_ceil(EDGE) && c <= n.div_ceil(EDGE);
    (1..=blocks)
        .filter(|r| blocks.is_multiple_of(*r) && fits(*r, blocks / r))
        .map(|r| (r, blocks / r))
        .min_by_key(|&(r, c)| c * m + r * n)
        .unwrap_or((blocks.min(m.div_ceil(EDGE)).max(1), 1))
}

/// `0..len` in `parts` runs, edges on multiples of [`EDGE`] (empty runs dropped).
fn runs(len: usize, parts: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    let edge = move |i: usize| if i == parts { len } else { (i * len / parts) / EDGE * EDGE };
    (0..parts).map(move |i| edge(i)..edge(i + 1)).filter(|r| !r.is_empty())
}

/// The blocks of `batch` products of `m × n` for `threads`.
fn blocks(batch: usize, m: usize, n: usize, threads: usize) -> Vec<Block> {
    let per_batch = if threads > 1 { (BLOCKS_PER_THREAD * threads).div_ceil(batch) } else { 1 };
    let (r, c) = cut(m, n, per_batch);
    (0..batch)
        .flat_map(|batch| {
            runs(m, r).flat_map(move |rows| runs(n, c).map(move |cols| Block { batch, rows: rows.clone(), cols }))
        })
        .collect()
}

/// `out = act(op(A) · op(B) + bias)` for every batch; see [`Matmul`].
pub fn matmul(spec: &Matmul, a: &[f32], b: &[f32], bias: Option<&[f32]>) -> Result<Vec<f32>> {
    let mut out = vec![0f32; spec.check(a.len(), b.len(), bias.map(<[f32]>::len))?];
    matmul_into(spec, a, b, bias, &mut out)?;
    Ok(out)
}

/// [`matmul`] into `out`, which must hold exactly the product (whatever it
/// held before is overwritten, never read).
pub fn matmul_into(spec: &Matmul, a: &[f32], b: &[f32], bias: Option<&[f32]>, out: &mut [f32]) -> Result<()> {
    let len = spec.check(a.len(), b.len(), bias.map(<[f32]>::len))?;
    super::check_out("matmul", out, len)?;
    if len == 0 {
        return Ok(());
    }
    let macs = spec.batch as f64 * spec.m as f64 * spec.n as f64 * spec.k as f64;
    let threads = parallel::threads_for(macs);
    let out = OutPtr(out.as_mut_ptr());
    parallel::for_each_share(blocks(spec.batch, spec.m, spec.n, threads), threads, |share| {
        // SAFETY: the blocks are disjoint parts of the output, checked to hold them all.
        share.for_each(|block| unsafe { gemm_block(spec, a, b, bias, &block, out) })
    });
    Ok(())
}

/// How many values of a stored B are widened to f32 at a time (4 MiB).
const WIDEN_BLOCK: usize = 1 << 20;

/// [`matmul`] with B as stored: a block of B's rows at a time (about
/// [`WIDEN_BLOCK`] values) is widened to f32 and multiplied — the columns of the
/// output it gives for a transposed B (a linear's `[out, in]` weight), a share
/// of the sum over k otherwise — so B is never whole as f32. Widening costs
/// one pass over B per call; the product costs `m` of them. Natively on
/// x86-64 with AVX2 + FMA or AVX-512, B is widened instead straight into the
/// packed panels of a register tile, by every thread ([`stored`]).
pub fn matmul_weight(spec: &Matmul, a: &[f32], b: Operand<'_>, bias: Option<&[f32]>) -> Result<Vec<f32>> {
    let mut out = vec![0f32; spec.check(a.len(), b.len(), bias.map(<[f32]>::len))?];
    matmul_weight_into(spec, a, b, bias, &mut out)?;
    Ok(out)
}

/// [`matmul_weight`] into `out`, as [`matmul_into`].
pub fn matmul_weight_into(
    spec: &Matmul,
    a: &[f32],
    b: Operand<'_>,
    bias: Option<&[f32]>,
    out: &mut [f32],
) -> Result<()> {
    // How B is stored: its dtype's bytes (int4: two values a byte) and its scales.
    let (dtype, bytes, scales, group) = match b {
        Operand::F32(b) => return matmul_into(spec, a, b, bias, out),
        Operand::Half(half, bytes) => (half.dtype(), bytes, None, 0),
        Operand::Int8 { q, scales } => (Dtype::I8, q, Some(scales), 0),
        Operand::Int4 { q, scales, group } => (Dtype::U8, q, Some(scales), group.max(1)),
    };
    let int4 = group > 0;
    let size = dtype.size();
    if !bytes.len().is_multiple_of(size) {
        return Err(Error::Invalid(format!("matmul: B of {} bytes is not {}", bytes.len(), dtype.name())));
    }
    let len = spec.check(a.len(), b.len(), bias.map(<[f32]>::len))?;
    let stored_rows = spec.batch * if spec.trans_b { spec.n } else { spec.k };
    let stored_len = if spec.trans_b { spec.k } else { spec.n };
    if int4 && !stored_len.is_multiple_of(2) {
        return Err(Error::Invalid(format!("matmul: int4 B needs rows of even length, not {stored_len}")));
    }
    let scales_per_row = if int4 { stored_len.div_ceil(group) } else { 1 };
    if let Some(s) = scales.filter(|s| s.len() != stored_rows * scales_per_row) {
        return Err(Error::Invalid(format!(
            "matmul: {} scales for {stored_rows} rows of B ({scales_per_row} per row)",
            s.len()
        )));
    }
    super::check_out("matmul", out, len)?;
    let (m, n, k) = (spec.m, spec.n, spec.k);
    if len == 0 || k == 0 {
        // No sum (k = 0): the bias and activation of zeros.
        out.fill(0.0);
        out.chunks_exact_mut(n.max(1)).for_each(|row| activation::apply_row(spec.activation, row, bias));
        return Ok(());
    }
    if let Some(kernel) = super::tile::best() {
        let quant = match (scales, int4) {
            (Some(scales), true) => Quant::Int4 { scales, group },
            (Some(scales), false) => Quant::Int8 { scales },
            (None, _) => Quant::None,
        };
        let stored = StoredB { dtype, bytes, quant, row_len: stored_len };
        stored.check().map_err(|e| Error::Invalid(format!("matmul: B: {e}")))?;
        stored::product(kernel, spec, a, stored, bias, out);
        return Ok(());
    }
    let threads = parallel::threads_for(spec.batch as f64 * m as f64 * n as f64 * k as f64);
    // B's stored rows: n rows of k when transposed, else k rows of n.
    let (rows, row_len) = if spec.trans_b { (n, k) } else { (k, n) };
    let per = (WIDEN_BLOCK / row_len.max(1)).clamp(1, rows.max(1));
    let mut wide = vec![0f32; per.min(rows) * row_len];
    let (ab, ar, ac) = spec.a_strides();
    for (batch, out) in out.chunks_exact_mut(m * n).enumerate() {
        let a = &a[batch * ab..][..ab];
        for r0 in (0..rows).step_by(per) {
            let nr = per.min(rows - r0);
            let w = &mut wide[..nr * row_len];
            let row_bytes = if int4 { row_len / 2 } else { row_len * size };
            let from = (batch * rows + r0) * row_bytes;
            let stored = &bytes[from..from + nr * row_bytes];
            match scales {
                Some(s) if int4 => quant::dequantize_int4(stored, s, batch * rows + r0, row_len, group, w),
                Some(s) => quant::dequantize_int8(stored, s, batch * rows + r0, row_len, w),
                None => convert::to_f32(dtype, stored, w).map_err(|e| Error::Invalid(format!("matmul: B: {e}")))?,
            }
            let w = &*w;
            if spec.trans_b {
                // out[:, r0..r0 + nr] = A · wᵀ, w being [nr, k].
                let sub = Sub { a, a_at: 0, ar, ac, k, b: w, br: 1, bc: k, cols: r0..r0 + nr, beta: 0.0 };
                sub.run(out, n, threads);
            } else {
                // out += A[:, r0..r0 + nr] · w, w being [nr, n].
                let beta = if r0 == 0 { 0.0 } else { 1.0 };
                let sub = Sub { a, a_at: r0 * ac, ar, ac, k: nr, b: w, br: n, bc: 1, cols: 0..n, beta };
                sub.run(out, n, threads);
            }
        }
    }
    if bias.is_some() || spec.activation != Activation::None {
        out.chunks_exact_mut(n).for_each(|row| activation::apply_row(spec.activation, row, bias));
    }
    Ok(())
}

/// One product into some columns of a row-major output: `out[:, cols] =
/// A[:, at..] · B + beta · out[:, cols]`, A read from element `a_at` with
/// strides (`ar`, `ac`) over `k` columns, B `[k, cols.len()]` with strides
/// (`br`, `bc`); the output's rows are spread over threads.
struct Sub<'a> {
    a: &'a [f32],
    a_at: usize,
    ar: usize,
    ac: usize,
    k: usize,
    b: &'a [f32],
    br: usize,
    bc: usize,
    cols: std::ops::Range<usize>,
    beta: f32,
}

impl Sub<'_> {
    fn run(&self, out: &mut [f32], n: usize, threads: usize) {
        let m = out.len() / n;
        let width = self.cols.len();
        // The last elements read: A's row m − 1, column k − 1; B's row k − 1, column width − 1.
        let a_end = self.a_at + (m - 1) * self.ar + (self.k - 1) * self.ac;
        let b_end = (self.k - 1) * self.br + (width - 1) * self.bc;
        assert!(a_end < self.a.len() && b_end < self.b.len() && self.cols.end <= n, "matmul: a block out of bounds");
        let out = OutPtr(out.as_mut_ptr());
        parallel::for_each_share(blocks(1, m, width, threads), threads, |share| {
            for Block { rows, cols, .. } in share {
                // SAFETY: rows `rows` of A and columns `cols` (< width) of B are
                // inside their slices (the bounds asserted above), and the
                // block writes its rows of output columns `self.cols.start +
                // cols` (< n, asserted), which no other block writes.
                unsafe {
                    gemm::sgemm(
                        rows.len(),
                        self.k,
                        cols.len(),
                        1.0,
                        self.a.as_ptr().add(self.a_at + rows.start * self.ar),
                        self.ar as isize,
                        self.ac as isize,
                        self.b.as_ptr().add(cols.start * self.bc),
                        self.br as isize,
                        self.bc as isize,
                        self.beta,
                        out.at(rows.start * n + self.cols.start + cols.start),
                        n as isize,
                        1,
                    );
                }
            }
        });
    }
}

/// Computes block `block` of the output at `out`.
///
/// # Safety
/// `spec.check` must have passed for A, B, the bias and the output at `out`,
/// and no other thread may touch this block of the output meanwhile.
unsafe fn gemm_block(spec: &Matmul, a: &[f32], b: &[f32], bias: Option<&[f32]>, block: &Block, out: OutPtr) {
    let (ab, ar, ac) = spec.a_strides();
    let (bb, br, bc) = spec.b_strides();
    let (n, rows, cols) = (spec.n, block.rows.len(), block.cols.len());
    // SAFETY: the block's first element is inside the output (as promised).
    let c = unsafe { out.at((block.batch * spec.m + block.rows.start) * n + block.cols.start) };
    if spec.k > 0 && rows > 0 && cols > 0 {
        // SAFETY: `Matmul::check` verified that A, B and the output hold exactly
        // batch × (m×k, k×n, m×n) elements; this block reads rows `block.rows`
        // (< m) of batch `block.batch` (< batch) of A, columns `block.cols`
        // (< n) of that batch of B, and writes its rows × cols of the output.
        unsafe {
            gemm::sgemm(
                rows,
                spec.k,
                cols,
                1.0,
                a.as_ptr().add(block.batch * ab + block.rows.start * ar),
                ar as isize,
                ac as isize,
                b.as_ptr().add(block.batch * bb + block.cols.start * bc),
                br as isize,
                bc as isize,
                0.0,
                c,
                n as isize,
                1,
            );
        }
    }
    let bias = bias.map(|b| &b[block.cols.clone()]);
    for i in 0..rows {
        // SAFETY: row i of the block: `cols` elements of the output that only this block writes.
        let row = unsafe { std::slice::from_raw_parts_mut(c.add(i * n), cols) };
        if spec.k == 0 {
            row.fill(0.0); // no sum
        }
        if bias.is_some() || spec.activation != Activation::None {
            activation::apply_row(spec.activation, row, bias);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_by_hand() {
        // [1 2; 3 4] · [5 6; 7 8] = [19 22; 43 50], + bias [1, -100], relu.
        let spec = Matmul { activation: Activation::Relu, ..Matmul::new(1, 2, 2, 2) };
        let out = matmul(&spec, &[1., 2., 3., 4.], &[5., 6., 7., 8.], Some(&[1., -100.])).unwrap();
        assert_eq!(out, vec![20., 0., 44., 0.]);
        // Aᵀ and Bᵀ stored: the same product.
        let spec = Matmul { trans_a: true, trans_b: true, ..Matmul::new(1, 2, 2, 2) };
        let out = matmul(&spec, &[1., 3., 2., 4.], &[5., 7., 6., 8.], None).unwrap();
        assert_eq!(out, vec![19., 22., 43., 50.]);
        assert!(matmul(&spec, &[1.], &[5., 7., 6., 8.], None).is_err());
    }

    fn max_abs(x: &[f32]) -> f32 {
        x.iter().fold(0f32, |m, v| m.max(v.abs()))
    }

    /// Stored f16/bf16 B, widened block by block, gives exactly what the f32
    /// matmul gives on the widened B: both transposes, a batch of 2, B over more
    /// than one widening block, bytes at an odd address, bias and activation.
    #[test]
    fn stored_weights_equal_widened_weights() {
        use crate::delegate::Half;
        for half in [Half::F16, Half::Bf16] {
            let dtype = half.dtype();
            // (Aᵀ, Bᵀ, batch, m, n, k); the fourth and fifth pass every block
            // edge of the packed route (stored.rs): rows, columns and depths
            // over more than two blocks, a partial strip of each.
            let cases = [
                (false, true, 1, 3, 1100, 1000),
                (false, false, 2, 5, 7, 1500),
                (false, true, 2, 1, 1, 1),
                (true, true, 1, 211, 530, 600),
                (false, false, 2, 277, 517, 523),
            ];
            for (trans_a, trans_b, batch, m, n, k) in cases {
                let spec = Matmul { trans_a, trans_b, activation: Activation::GeluErf, ..Matmul::new(batch, m, n, k) };
                let a = crate::random::uniform(batch * m * k, 3);
                let b = crate::random::uniform(batch * k * n, 4);
                let bias = crate::random::uniform(n, 5);
                // The stored values from an even address (a memory map's) and an odd one.
                let mut words = vec![0u16; 1 + b.len()];
                for (w, &v) in words[1..].iter_mut().zip(&b) {
                    *w = if half == Half::F16 {
                        half::f16::from_f32(v).to_bits()
                    } else {
                        half::bf16::from_f32(v).to_bits()
                    };
                }
                let even: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
                let odd: Vec<u8> = std::iter::once(0).chain(even[2..].iter().copied()).collect();
                let mut wide = vec![0f32; b.len()];
                convert::to_f32(dtype, &even[2..], &mut wide).unwrap();
                let want = matmul(&spec, &a, &wide, Some(&bias)).unwrap();
                for stored in [&bytemuck::cast_slice::<u16, u8>(&words)[2..], &odd[1..]] {
                    let got = matmul_weight(&spec, &a, Operand::Half(half, stored), Some(&bias)).unwrap();
                    assert_eq!(got.len(), want.len());
                    // Within rounding of another summation order (the packed route's KC blocks).
                    let err = got.iter().zip(&want).fold(0f32, |e, (x, y)| e.max((x - y).abs()));
                    assert!(err <= 2e-6 * (1.0 + max_abs(&want)), "{dtype:?} trans_b={trans_b} {m}x{n}x{k}: {err}");
                    assert!(matmul_weight(&spec, &a, Operand::Half(half, &stored[1..]), None).is_err());
                }
            }
        }
    }

    /// Int8 B with per-row scales gives the f32 matmul on its dequantized values.
    #[test]
    fn int8_weights_equal_dequantized_weights() {
        for (trans_b, m, n, k) in [(true, 3, 1100, 1000), (false, 5, 7, 1500), (true, 1, 1, 1), (true, 211, 530, 600)] {
            let spec = Matmul { trans_b, ..Matmul::new(1, m, n, k) };
            let a = crate::random::uniform(m * k, 6);
            let rows = if trans_b { n } else { k };
            let (q, scales) = quant::quantize_int8(&crate::random::uniform(k * n, 7), rows);
            let q: &[u8] = bytemuck::cast_slice(&q);
            let mut wide = vec![0f32; q.len()];
            quant::dequantize_int8(q, &scales, 0, q.len() / rows, &mut wide);
            let want = matmul(&spec, &a, &wide, None).unwrap();
            let got = matmul_weight(&spec, &a, Operand::Int8 { q, scales: &scales }, None).unwrap();
            assert_eq!(got.len(), want.len());
            let err = got.iter().zip(&want).fold(0f32, |e, (x, y)| e.max((x - y).abs()));
            assert!(err <= 2e-6 * (1.0 + max_abs(&want)), "trans_b={trans_b} {m}x{n}x{k}: {err}");
            assert!(matmul_weight(&spec, &a, Operand::Int8 { q, scales: &scales[1..] }, None).is_err());
        }
    }

    /// Int4 B in groups (with a short last group) gives the f32 matmul on its
    /// dequantized values; scales of the wrong count and odd rows are errors.
    #[test]
    fn int4_weights_equal_dequantized_weights() {
        for (trans_b, m, n, k, group) in
            [(true, 3, 1100, 1000, 64), (false, 5, 70, 1500, 8), (true, 2, 3, 100, 32), (true, 211, 300, 600, 128)]
        {
            let spec = Matmul { trans_b, ..Matmul::new(1, m, n, k) };
            let a = crate::random::uniform(m * k, 8);
            let (rows, row_len) = if trans_b { (n, k) } else { (k, n) };
            let (q, scales) = quant::quantize_int4(&crate::random::uniform(k * n, 9), rows, group);
            assert_eq!(scales.len(), rows * row_len.div_ceil(group));
            let mut wide = vec![0f32; k * n];
            quant::dequantize_int4(&q, &scales, 0, row_len, group, &mut wide);
            let want = matmul(&spec, &a, &wide, None).unwrap();
            let got = matmul_weight(&spec, &a, Operand::Int4 { q: &q, scales: &scales, group }, None).unwrap();
            assert_eq!(got.len(), want.len());
            let err = got.iter().zip(&want).fold(0f32, |e, (x, y)| e.max((x - y).abs()));
            assert!(err <= 2e-6 * (1.0 + max_abs(&want)), "trans_b={trans_b} {m}x{n}x{k} group {group}: {err}");
            let short = Operand::Int4 { q: &q, scales: &scales[1..], group };
            assert!(matmul_weight(&spec, &a, short, None).is_err());
        }
        let odd = Matmul { trans_b: true, ..Matmul::new(1, 1, 2, 3) };
        let err = matmul_weight(&odd, &[0.0; 3], Operand::Int4 { q: &[0x88; 3], scales: &[1.0; 2], group: 8 }, None);
        assert!(err.unwrap_err().to_string().contains("even"));
    }

    #[test]
    fn threaded_blocks_equal_one_block() {
        // Large enough to be cut; every transpose, a batch of 3, a bias and an activation.
        for (trans_a, trans_b) in [(false, false), (true, false), (false, true), (true, true)] {
            let spec = Matmul { trans_a, trans_b, activation: Activation::Silu, ..Matmul::new(3, 97, 130, 101) };
            let a = crate::random::uniform(3 * 97 * 101, 1);
            let b = crate::random::uniform(3 * 101 * 130, 2);
            let bias = crate::random::uniform(130, 3);
            let mut single = vec![f32::NAN; 3 * 97 * 130];
            for batch in 0..3 {
                let block = Block { batch, rows: 0..97, cols: 0..130 };
                // SAFETY: the one block of each batch, the lengths as `check` wants.
                unsafe { gemm_block(&spec, &a, &b, Some(&bias), &block, OutPtr(single.as_mut_ptr())) };
            }
            for threads in [2, 3, 8] {
                let mut threaded = vec![f32::NAN; single.len()];
                let out = OutPtr(threaded.as_mut_ptr());
                let work = blocks(3, 97, 130, threads);
                assert!(work.len() >= threads.min(3 * 7), "{threads} threads: {} blocks", work.len());
                parallel::for_each_share(work, threads, |share| {
                    // SAFETY: disjoint blocks of an output of the right length.
                    share.for_each(|block| unsafe { gemm_block(&spec, &a, &b, Some(&bias), &block, out) })
                });
                assert_eq!(threaded, single, "trans_a={trans_a} trans_b={trans_b} on {threads} threads");
            }
            assert_eq!(matmul(&spec, &a, &b, Some(&bias)).unwrap(), single);
        }
    }

    /// Blocks tile each batch's output exactly, with edges on the sgemm's
    /// tiles, and the cut packs least.
    #[test]
    fn blocks_tile_the_output() {
        assert_eq!(cut(1024, 1024, 4), (2, 2));
        assert_eq!(cut(1560, 682, 4), (4, 1)); // 1560 + 4·682 < 2·1560 + 2·682
        assert_eq!(cut(20, 5000, 8), (1, 8));
        assert_eq!(cut(5000, 20, 8), (8, 1));
        assert_eq!(cut(3, 3, 8), (1, 1));
        for (batch, m, n, threads) in [(1, 1024, 1024, 2), (3, 97, 130, 3), (1, 5, 7, 4), (16, 64, 64, 2), (1, 1, 1, 1)]
        {
            let mut seen = vec![0u8; batch * m * n];
            for block in blocks(batch, m, n, threads) {
                assert!(block.rows.start.is_multiple_of(EDGE) && block.cols.start.is_multiple_of(EDGE));
                for (i, j) in block.rows.flat_map(|i| block.cols.clone().map(move |j| (i, j))) {
                    seen[(block.batch * m + i) * n + j] += 1;
                }
            }
            assert!(seen.iter().all(|&s| s == 1), "{batch} × {m} × {n} on {threads}");
        }
    }
}
