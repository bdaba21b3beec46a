//! Matmul on the host: `matrixmultiply`'s packed, SIMD sgemm reads A and B
//! through strides (so transposes are free); blocks of output rows are spread
//! over the cores with scoped threads; the epilogue adds the bias and applies
//! the activation.

use super::{activation, gemm, parallel};
use crate::Result;
use crate::delegate::Matmul;

/// One block of work: rows `rows` of batch `batch`.
struct Block {
    batch: usize,
    rows: std::ops::Range<usize>,
}

/// `out = act(op(A) · op(B) + bias)` for every batch; see [`Matmul`].
pub fn matmul(spec: &Matmul, a: &[f32], b: &[f32], bias: Option<&[f32]>) -> Result<Vec<f32>> {
    let len = spec.check(a.len(), b.len(), bias.map(<[f32]>::len))?;
    let mut out = vec![0f32; len];
    if len == 0 {
        return Ok(out);
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
    Ok(out)
}

/// [`matmul`] with B stored as f16: widened to f32 once, then the same sgemm.
pub fn matmul_f16(spec: &Matmul, a: &[f32], b: &[half::f16], bias: Option<&[f32]>) -> Result<Vec<f32>> {
    use half::slice::HalfFloatSliceExt;
    let mut wide = vec![0f32; b.len()];
    b.convert_to_f32_slice(&mut wide);
    matmul(spec, a, &wide, bias)
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
    }
    if bias.is_some() || spec.activation != crate::delegate::Activation::None {
        c.chunks_exact_mut(spec.n).for_each(|row| activation::apply_row(spec.activation, row, bias));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delegate::Activation;

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
