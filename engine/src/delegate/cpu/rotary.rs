//! Rotary position embedding on the host.

use crate::Result;
use crate::delegate::Rotary;

/// Rotates the pairs of `x`; see [`Rotary`].
pub fn rotary(spec: &Rotary, x: &[f32], cos: &[f32], sin: &[f32]) -> Result<Vec<f32>> {
    let mut out = vec![0f32; x.len()];
    rotary_into(spec, x, cos, sin, &mut out)?;
    Ok(out)
}

/// [`rotary`] into `out` (as long as `x`; overwritten, never read).
pub fn rotary_into(spec: &Rotary, x: &[f32], cos: &[f32], sin: &[f32], out: &mut [f32]) -> Result<()> {
    spec.check(x.len(), cos.len(), sin.len())?;
    super::check_out("rotary", out, x.len())?;
    out.copy_from_slice(x);
    let half = spec.dim / 2;
    if half == 0 {
        return Ok(());
    }
    for (row, r) in out.chunks_exact_mut(spec.dim).enumerate() {
        let t = (row / spec.inner) % spec.len;
        for j in 0..half {
            let (i0, i1) = if spec.interleaved { (2 * j, 2 * j + 1) } else { (j, j + half) };
            let (c, s) = (cos[t * half + j], sin[t * half + j]);
            let (x0, x1) = (r[i0], r[i1]);
            r[i0] = x0 * c - x1 * s;
            r[i1] = x0 * s + x1 * c;
        }
    }
    Ok(())
}
