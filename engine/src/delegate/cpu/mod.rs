//! The CPU delegate: the ops on the host, for machines and browsers without
//! a GPU, and the reference the GPU kernels are checked against.

pub mod activation;
pub mod attention;
pub mod conv;
pub mod elementwise;
pub mod gather;
pub mod gemm;
pub mod layout;
pub mod matmul;
pub mod norm;
pub mod parallel;
pub mod rotary;
mod stored;
mod tile;

/// Checks that the buffer a kernel writes into holds exactly its `len` outputs.
pub(crate) fn check_out(kernel: &str, out: &[f32], len: usize) -> crate::Result<()> {
    if out.len() == len {
        Ok(())
    } else {
        Err(crate::Error::Invalid(format!("{kernel}: an output of {} values for {len}", out.len())))
    }
}

#[cfg(test)]
mod tests {
    use crate::delegate::*;
    use crate::random::uniform;

    /// Each kernel's `_into` form into a buffer of NaNs gives exactly its
    /// allocating form (which writes into zeros): every output is written and
    /// none is read — the CPU session hands kernels arena slots that hold old
    /// values. A buffer of the wrong length is an error.
    #[test]
    fn kernels_overwrite_their_output_and_never_read_it() {
        fn check(name: &str, want: Vec<f32>, into: impl Fn(&mut [f32]) -> crate::Result<()>) {
            let mut got = vec![f32::NAN; want.len()];
            into(&mut got).unwrap();
            assert_eq!(got, want, "{name}");
            assert!(into(&mut vec![0.0; want.len() + 1]).is_err(), "{name}: a longer output");
        }
        let (m, n, k) = (37, 300, 45);
        let (a, b, bias) = (uniform(m * k, 1), uniform(n * k, 2), uniform(n, 3));
        for (trans_b, act, kk) in
            [(true, Activation::GeluErf, k), (false, Activation::None, k), (true, Activation::Silu, 0)]
        {
            let spec = Matmul { trans_b, activation: act, ..Matmul::new(1, m, n, kk) };
            let (a, b) = (&a[..m * kk], &b[..n * kk]);
            check("matmul", super::matmul::matmul(&spec, a, b, Some(&bias)).unwrap(), |o| {
                super::matmul::matmul_into(&spec, a, b, Some(&bias), o)
            });
            let (q, scales) = crate::weights::quant::quantize_int8(b, if trans_b { n } else { kk.max(1) });
            let q: &[u8] = bytemuck::cast_slice(&q);
            let w = Operand::Int8 { q, scales: &scales };
            if kk > 0 {
                check("matmul int8", super::matmul::matmul_weight(&spec, a, w, None).unwrap(), |o| {
                    super::matmul::matmul_weight_into(&spec, a, w, None, o)
                });
            }
        }
        let x = uniform(m * n, 4);
        let norm = Norm::rms(m, n, 1e-6);
        check("norm", super::norm::norm(&norm, &x, Some(&bias), None).unwrap(), |o| {
            super::norm::norm_into(&norm, &x, Some(&bias), None, o)
        });
        let softmax = Softmax { rows: m, n };
        check("softmax", super::norm::softmax(&softmax, &x).unwrap(), |o| super::norm::softmax_into(&softmax, &x, o));
        for op in [ReduceOp::Mean, ReduceOp::Max] {
            let r = Reduce { op, outer: m, axis: 3, inner: 100 };
            check("reduce", super::norm::reduce(&r, &x).unwrap(), |o| super::norm::reduce_into(&r, &x, o));
        }
        let rot = Rotary { outer: 1, len: m, inner: 1, dim: n, interleaved: false };
        let (cos, sin) = (uniform(m * n / 2, 5), uniform(m * n / 2, 6));
        check("rotary", super::rotary::rotary(&rot, &x, &cos, &sin).unwrap(), |o| {
            super::rotary::rotary_into(&rot, &x, &cos, &sin, o)
        });
        let g = Gather { rows: m, dim: n, count: 4 };
        let (table, idx) = (Operand::F32(&x), [3.0, 0.0, 36.0, 3.0]);
        check("gather", super::gather::gather(&g, table, &idx).unwrap(), |o| {
            super::gather::gather_into(&g, table, &idx, o)
        });
    }
}
