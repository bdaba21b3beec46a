//! Matmul on the host: `matrixmultiply`'s packed, SIMD sgemm reads A and B
//! through strides (so transposes are free), then the epilogue adds the bias
//! and applies the activation.

use super::activation;
use crate::Result;
use crate::delegate::Matmul;

/// `out = act(op(A) · op(B) + bias)` for every batch; see [`Matmul`].
pub fn matmul(spec: &Matmul, a: &[f32], b: &[f32], bias: Option<&[f32]>) -> Result<Vec<f32>> {
    let len = spec.check(a.len(), b.len(), bias.map(<[f32]>::len))?;
    let mut out = vec![0f32; len];
    let (ab, ar, ac) = spec.a_strides();
    let (bb, br, bc) = spec.b_strides();
    let mn = spec.m * spec.n;
    if mn == 0 {
        return Ok(out);
    }
    for batch in 0..spec.batch {
        let c = &mut out[batch * mn..(batch + 1) * mn];
        if spec.k > 0 {
            // SAFETY: `check` verified that A, B and the output hold exactly
            // batch × (m×k, k×n, m×n) elements, so every strided access that
            // sgemm makes for this batch lies inside the slices.
            unsafe {
                matrixmultiply::sgemm(
                    spec.m,
                    spec.k,
                    spec.n,
                    1.0,
                    a.as_ptr().add(batch * ab),
                    ar as isize,
                    ac as isize,
                    b.as_ptr().add(batch * bb),
                    br as isize,
                    bc as isize,
                    0.0,
                    c.as_mut_ptr(),
                    spec.n as isize,
                    1,
                );
            }
        }
        for row in c.chunks_exact_mut(spec.n) {
            match bias {
                Some(bias) => {
                    row.iter_mut().zip(bias).for_each(|(v, b)| *v = activation::apply(spec.activation, *v + b))
                }
                None => row.iter_mut().for_each(|v| *v = activation::apply(spec.activation, *v)),
            }
        }
    }
    Ok(out)
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
}
