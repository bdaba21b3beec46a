//! layer_norm, rms_norm, group_norm, softmax and reductions on the host
//! (statistics accumulated in f64).

use super::activation::exp;
use crate::Result;
use crate::delegate::{Norm, NormKind, Reduce, ReduceOp, Softmax};

/// Normalises each row; `w` and `b` are the affine parameters (see [`Norm`]).
pub fn norm(spec: &Norm, x: &[f32], w: Option<&[f32]>, b: Option<&[f32]>) -> Result<Vec<f32>> {
    let mut out = vec![0f32; x.len()];
    norm_into(spec, x, w, b, &mut out)?;
    Ok(out)
}

/// [`norm`] into `out` (as long as `x`; overwritten, never read).
pub fn norm_into(spec: &Norm, x: &[f32], w: Option<&[f32]>, b: Option<&[f32]>, out: &mut [f32]) -> Result<()> {
    spec.check(x.len(), w.map(<[f32]>::len), b.map(<[f32]>::len))?;
    super::check_out("norm", out, x.len())?;
    if spec.n == 0 {
        return Ok(());
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has AVX2 and FMA, checked just above.
        unsafe { norm_rows_avx2(spec, x, w, b, out) };
        return Ok(());
    }
    norm_rows(spec, x, w, b, out);
    Ok(())
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn norm_rows_avx2(spec: &Norm, x: &[f32], w: Option<&[f32]>, b: Option<&[f32]>, out: &mut [f32]) {
    norm_rows(spec, x, w, b, out)
}

/// `Σ f(v)` in f64 over eight partial sums, so the loop vectorises.
#[inline(always)]
fn sum_f64(xs: &[f32], f: impl Fn(f64) -> f64) -> f64 {
    let mut acc = [0f64; 8];
    let mut chunks = xs.chunks_exact(8);
    for c in &mut chunks {
        acc.iter_mut().zip(c).for_each(|(a, &v)| *a += f(v as f64));
    }
    acc.iter().sum::<f64>() + chunks.remainder().iter().map(|&v| f(v as f64)).sum::<f64>()
}

#[inline(always)]
fn norm_rows(spec: &Norm, x: &[f32], w: Option<&[f32]>, b: Option<&[f32]>, out: &mut [f32]) {
    let n = spec.n as f64;
    for (row, (xs, ys)) in x.chunks_exact(spec.n).zip(out.chunks_exact_mut(spec.n)).enumerate() {
        // Statistics in f64; the normalisation itself in f32.
        let (centre, scale) = match spec.kind {
            NormKind::Rms => (0.0, 1.0 / (sum_f64(xs, |v| v * v) / n + spec.eps as f64).sqrt()),
            _ => {
                let mean = sum_f64(xs, |v| v) / n;
                let var = sum_f64(xs, |v| (v - mean) * (v - mean)) / n;
                (mean, 1.0 / (var + spec.eps as f64).sqrt())
            }
        };
        let (centre, scale) = (centre as f32, scale as f32);
        if let NormKind::Group { groups, spatial } = spec.kind {
            for (i, (&v, y)) in xs.iter().zip(ys.iter_mut()).enumerate() {
                let c = (row % groups) * (spec.n / spatial) + i / spatial;
                *y = (v - centre) * scale * w.map_or(1.0, |w| w[c]) + b.map_or(0.0, |b| b[c]);
            }
            continue;
        }
        let normed = xs.iter().map(|&v| (v - centre) * scale);
        match (w, b) {
            (Some(w), Some(b)) => {
                ys.iter_mut().zip(normed).zip(w.iter().zip(b)).for_each(|((y, r), (w, b))| *y = r * w + b)
            }
            (Some(w), None) => ys.iter_mut().zip(normed).zip(w).for_each(|((y, r), w)| *y = r * w),
            (None, Some(b)) => ys.iter_mut().zip(normed).zip(b).for_each(|((y, r), b)| *y = r + b),
            (None, None) => ys.iter_mut().zip(normed).for_each(|(y, r)| *y = r),
        }
    }
}

/// Softmax of each row of `n` values.
pub fn softmax(spec: &Softmax, x: &[f32]) -> Result<Vec<f32>> {
    let mut out = vec![0f32; x.len()];
    softmax_into(spec, x, &mut out)?;
    Ok(out)
}

/// [`softmax`] into `out` (as long as `x`; overwritten, never read).
pub fn softmax_into(spec: &Softmax, x: &[f32], out: &mut [f32]) -> Result<()> {
    spec.check(x.len())?;
    super::check_out("softmax", out, x.len())?;
    out.copy_from_slice(x);
    if spec.n == 0 {
        return Ok(());
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
    Ok(())
}

/// Reduces the middle axis of `[outer, axis, inner]`.
pub fn reduce(spec: &Reduce, x: &[f32]) -> Result<Vec<f32>> {
    let mut out = vec![0f32; spec.check(x.len())?];
    reduce_into(spec, x, &mut out)?;
    Ok(out)
}

/// [`reduce`] into `out` (the reduced length; overwritten, never read).
pub fn reduce_into(spec: &Reduce, x: &[f32], out: &mut [f32]) -> Result<()> {
    let len = spec.check(x.len())?;
    super::check_out("reduce", out, len)?;
    // A block of outputs at a time: each reduced row is read whole, in order
    // (a reduction over channels reads planes, not one value a plane apart), and
    // the block's accumulators stay in cache. Each output still sums its values
    // in order, in f64, as one loop over them would.
    const BLOCK: usize = 2048;
    let mut acc = vec![0f64; BLOCK.min(spec.inner.max(1))];
    for o in 0..spec.outer {
        let base = o * spec.axis * spec.inner;
        for i0 in (0..spec.inner).step_by(BLOCK) {
            let n = BLOCK.min(spec.inner - i0);
            let (acc, out) = (&mut acc[..n], &mut out[o * spec.inner + i0..][..n]);
            let row = |j: usize| &x[base + j * spec.inner + i0..][..n];
            match spec.op {
                ReduceOp::Sum | ReduceOp::Mean => {
                    acc.fill(0.0);
                    for j in 0..spec.axis {
                        acc.iter_mut().zip(row(j)).for_each(|(a, &v)| *a += f64::from(v));
                    }
                    let div = if spec.op == ReduceOp::Mean { spec.axis as f64 } else { 1.0 };
                    out.iter_mut().zip(acc.iter()).for_each(|(o, &a)| *o = (a / div) as f32);
                }
                ReduceOp::Max | ReduceOp::Min => {
                    let (init, f): (f32, fn(f32, f32) -> f32) = if spec.op == ReduceOp::Max {
                        (f32::NEG_INFINITY, f32::max)
                    } else {
                        (f32::INFINITY, f32::min)
                    };
                    out.fill(init);
                    for j in 0..spec.axis {
                        out.iter_mut().zip(row(j)).for_each(|(o, &v)| *o = f(*o, v));
                    }
                }
            }
        }
    }
    Ok(())
}
