//! layer_norm, rms_norm, group_norm, softmax and reductions on the host
//! (statistics accumulated in f64).

use super::activation::exp;
use crate::Result;
use crate::delegate::{Norm, NormKind, Reduce, ReduceOp, Softmax};

/// Normalises each row; `w` and `b` are the affine parameters (see [`Norm`]).
pub fn norm(spec: &Norm, x: &[f32], w: Option<&[f32]>, b: Option<&[f32]>) -> Result<Vec<f32>> {
    spec.check(x.len(), w.map(<[f32]>::len), b.map(<[f32]>::len))?;
    let mut out = vec![0f32; x.len()];
    if spec.n == 0 {
        return Ok(out);
    }
    for (row, (xs, ys)) in x.chunks_exact(spec.n).zip(out.chunks_exact_mut(spec.n)).enumerate() {
        let n = spec.n as f64;
        let mean = xs.iter().map(|&v| v as f64).sum::<f64>() / n;
        let (centre, scale) = match spec.kind {
            NormKind::Rms => {
                (0.0, 1.0 / (xs.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / n + spec.eps as f64).sqrt())
            }
            _ => {
                let var = xs.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
                (mean, 1.0 / (var + spec.eps as f64).sqrt())
            }
        };
        for (i, (&v, y)) in xs.iter().zip(ys.iter_mut()).enumerate() {
            let c = match spec.kind {
                NormKind::Group { groups, spatial } => (row % groups) * (spec.n / spatial) + i / spatial,
                _ => i,
            };
            let mut r = ((v as f64 - centre) * scale) as f32;
            if let Some(w) = w {
                r *= w[c];
            }
            if let Some(b) = b {
                r += b[c];
            }
            *y = r;
        }
    }
    Ok(out)
}

/// Softmax of each row of `n` values.
pub fn softmax(spec: &Softmax, x: &[f32]) -> Result<Vec<f32>> {
    spec.check(x.len())?;
    let mut out = x.to_vec();
    if spec.n == 0 {
        return Ok(out);
    }
    for row in out.chunks_exact_mut(spec.n) {
        let max = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let mut sum = 0.0;
        for v in row.iter_mut() {
            *v = exp(*v - max);
            sum += *v;
        }
        let inv = 1.0 / sum;
        row.iter_mut().for_each(|v| *v *= inv);
    }
    Ok(out)
}

/// Reduces the middle axis of `[outer, axis, inner]`.
pub fn reduce(spec: &Reduce, x: &[f32]) -> Result<Vec<f32>> {
    let len = spec.check(x.len())?;
    let mut out = Vec::with_capacity(len);
    for o in 0..spec.outer {
        let base = o * spec.axis * spec.inner;
        for i in 0..spec.inner {
            let values = (0..spec.axis).map(|j| x[base + j * spec.inner + i]);
            out.push(match spec.op {
                ReduceOp::Sum => values.map(f64::from).sum::<f64>() as f32,
                ReduceOp::Mean => (values.map(f64::from).sum::<f64>() / spec.axis as f64) as f32,
                ReduceOp::Max => values.fold(f32::NEG_INFINITY, f32::max),
                ReduceOp::Min => values.fold(f32::INFINITY, f32::min),
            });
        }
    }
    Ok(out)
}
