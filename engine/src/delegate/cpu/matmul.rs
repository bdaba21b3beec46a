//! Matmul on the host: `matrixmultiply`'s packed, SIMD sgemm reads A and B
//! through strides (so transposes are free); blocks of output rows are spread
//! over the cores with scoped threads; the epilogue adds the bias and applies
//! the activation.

use super::{activation, gemm, parallel};
use crate::delegate::{Activation, Matmul, Operand};
use crate::weights::dtype::Dtype;
use crate::weights::{convert, quant};
use crate::{Error, Result};

/// One block of work: rows `rows` of batch `batch`.
struct Block {
    batch: usize,
    rows: std::ops::Range<usize>,
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
    // Split each batch's rows into `per_batch` blocks, so that there are at
    // least `threads` blocks in all; a block owns its rows of `out`.
    let per_batch = threads.div_ceil(spec.batch).clamp(1, spec.m);
    let rows_per_block = spec.m.div_ceil(per_batch);
    let mut work: Vec<(Block, &mut [f32])> = Vec::new();
    for (batch, c) in out.chunks_exact_mut(spec.m * spec.n).enumerate() {
        for (i, rows_out) in c.chunks_mut(rows_per_block * spec.n).enumerate() {
            let start = i * rows_per_block;
            work.push((Block { batch, rows: start..start + rows_out.len() / spec.n }, rows_out));
        }
    }
    parallel::for_each_share(work, threads, |share| {
        share.into_iter().for_each(|(block, c)| gemm_block(spec, a, b, bias, &block, c))
    });
    Ok(())
}

/// How many values of a stored B are widened to f32 at a time (4 MiB).
const WIDEN_BLOCK: usize = 1 << 20;

/// [`matmul`] with B as stored: a block of B's rows at a time (about
/// [`WIDEN_BLOCK`] values) is widened to f32 and multiplied — the columns of the
/// output it gives for a transposed B (a linear's `[out, in]` weight), a share
/// of the sum over k otherwise — so B is never whole as f32. Widening costs
/// one pass over B per call; the product costs `m` of them.
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
        let rows_per = m.div_ceil(threads.clamp(1, m));
        let work: Vec<(usize, &mut [f32])> = out.chunks_mut(rows_per * n).enumerate().collect();
        parallel::for_each_share(work, threads, |share| {
            for (i, c) in share {
                let r0 = i * rows_per;
                // SAFETY: rows r0.. r0 + c.len() / n of A and all of B are inside their
                // slices (the bounds asserted above), and the block writes columns
                // `cols` (< n, asserted) of the rows of `c`, which it owns.
                unsafe {
                    gemm::sgemm(
                        c.len() / n,
                        self.k,
                        width,
                        1.0,
                        self.a.as_ptr().add(self.a_at + r0 * self.ar),
                        self.ar as isize,
                        self.ac as isize,
                        self.b.as_ptr(),
                        self.br as isize,
                        self.bc as isize,
                        self.beta,
                        c.as_mut_ptr().add(self.cols.start),
                        n as isize,
                        1,
                    );
                }
            }
        });
    }
}

/// Computes rows `block.rows` of batch `block.batch` into `c` (those rows of `out`).
fn gemm_block(spec: &Matmul, a: &[f32], b: &[f32], bias: Option<&[f32]>, block: &Block, c: &mut [f32]) {
    let (ab, ar, ac) = spec.a_strides();
    let (bb, br, bc) = spec.b_strides();
    let rows = block.rows.len();
    debug_assert_eq!(c.len(), rows * spec.n);
    if spec.k > 0 && rows > 0 && spec.n > 0 {
        // SAFETY: `Matmul::check` verified that A, B and the output hold exactly
        // batch × (m×k, k×n, m×n) elements; this block reads rows
        // `block.rows` (< m) of batch `block.batch` (< batch) of A, all of that
        // batch of B, and writes exactly the `rows × n` elements of `c`.
        unsafe {
            gemm::sgemm(
                rows,
                spec.k,
                spec.n,
                1.0,
                a.as_ptr().add(block.batch * ab + block.rows.start * ar),
                ar as isize,
                ac as isize,
                b.as_ptr().add(block.batch * bb),
                br as isize,
                bc as isize,
                0.0,
                c.as_mut_ptr(),
                spec.n as isize,
                1,
            );
        }
    } else {
        c.fill(0.0); // no sum (k = 0)
    }
    if bias.is_some() || spec.activation != Activation::None {
        c.chunks_exact_mut(spec.n).for_each(|row| activation::apply_row(spec.activation, row, bias));
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

    /// Stored f16/bf16 B, widened block by block, gives exactly what the f32
    /// matmul gives on the widened B: both transposes, a batch of 2, B over more
    /// than one widening block, bytes at an odd address, bias and activation.
    #[test]
    fn stored_weights_equal_widened_weights() {
        use crate::delegate::Half;
        for half in [Half::F16, Half::Bf16] {
            let dtype = half.dtype();
            for (trans_b, batch, m, n, k) in [(true, 1, 3, 1100, 1000), (false, 2, 5, 7, 1500), (true, 2, 1, 1, 1)] {
                let spec = Matmul { trans_b, activation: Activation::GeluErf, ..Matmul::new(batch, m, n, k) };
                let a = crate::random::uniform(batch * m * k, 3);
                let b = crate::random::uniform(batch * k * n, 4);
                let bias = crate::random::uniform(n, 5);
                let mut bytes = vec![0u8]; // one byte first: the stored values start at an odd address
                for &v in &b {
                    let v = if half == Half::F16 {
                        half::f16::from_f32(v).to_le_bytes()
                    } else {
                        half::bf16::from_f32(v).to_le_bytes()
                    };
                    bytes.extend_from_slice(&v);
                }
                let mut wide = vec![0f32; b.len()];
                convert::to_f32(dtype, &bytes[1..], &mut wide).unwrap();
                let want = matmul(&spec, &a, &wide, Some(&bias)).unwrap();
                let got = matmul_weight(&spec, &a, Operand::Half(half, &bytes[1..]), Some(&bias)).unwrap();
                assert_eq!(got.len(), want.len());
                let err = got.iter().zip(&want).fold(0f32, |e, (x, y)| e.max((x - y).abs()));
                assert!(err <= 1e-5, "{dtype:?} trans_b={trans_b} {m}x{n}x{k}: {err}");
                assert!(matmul_weight(&spec, &a, Operand::Half(half, &bytes[2..]), None).is_err());
            }
        }
    }

    /// Int8 B with per-row scales gives the f32 matmul on its dequantized values.
    #[test]
    fn int8_weights_equal_dequantized_weights() {
        for (trans_b, m, n, k) in [(true, 3, 1100, 1000), (false, 5, 7, 1500), (true, 1, 1, 1)] {
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
            assert!(err <= 1e-5, "trans_b={trans_b} {m}x{n}x{k}: {err}");
            assert!(matmul_weight(&spec, &a, Operand::Int8 { q, scales: &scales[1..] }, None).is_err());
        }
    }

    /// Int4 B in groups (with a short last group) gives the f32 matmul on its
    /// dequantized values; scales of the wrong count and odd rows are errors.
    #[test]
    fn int4_weights_equal_dequantized_weights() {
        for (trans_b, m, n, k, group) in [(true, 3, 1100, 1000, 64), (false, 5, 70, 1500, 8), (true, 2, 3, 100, 32)] {
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
            assert!(err <= 1e-5, "trans_b={trans_b} {m}x{n}x{k} group {group}: {err}");
            let short = Operand::Int4 { q: &q, scales: &scales[1..], group };
            assert!(matmul_weight(&spec, &a, short, None).is_err());
        }
        let odd = Matmul { trans_b: true, ..Matmul::new(1, 1, 2, 3) };
        let err = matmul_weight(&odd, &[0.0; 3], Operand::Int4 { q: &[0x88; 3], scales: &[1.0; 2], group: 8 }, None);
        assert!(err.unwrap_err().to_string().contains("even"));
    }

    #[test]
    fn threaded_blocks_equal_one_block() {
        // Large enough to be split; every transpose and a batch of 3.
        for (trans_a, trans_b) in [(false, false), (true, false), (false, true), (true, true)] {
            let spec = Matmul { trans_a, trans_b, ..Matmul::new(3, 97, 130, 101) };
            let a = crate::random::uniform(3 * 97 * 101, 1);
            let b = crate::random::uniform(3 * 101 * 130, 2);
            let threaded = matmul(&spec, &a, &b, None).unwrap();
            let mut single = vec![0f32; 3 * 97 * 130];
            for (batch, c) in single.chunks_exact_mut(97 * 130).enumerate() {
                gemm_block(&spec, &a, &b, None, &Block { batch, rows: 0..97 }, c);
            }
            assert_eq!(threaded, single, "trans_a={trans_a} trans_b={trans_b}");
        }
    }
}
