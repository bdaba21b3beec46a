//! Copy plans (permute, slice, expand, concat, pad, upsample) on the host.

use crate::Result;
use crate::delegate::CopyPlan;
use crate::delegate::layout::Region;

/// Runs `plan` over `inputs`.
pub fn copy(plan: &CopyPlan, inputs: &[&[f32]]) -> Result<Vec<f32>> {
    let lens: Vec<usize> = inputs.iter().map(|x| x.len()).collect();
    let len = plan.check(&lens)?;
    let mut out = vec![plan.fill.unwrap_or(0.0); len];
    copy_regions(plan, inputs, &mut out);
    Ok(out)
}

/// [`copy`] into `out`, which must be as long as the plan's output.
pub fn copy_into(plan: &CopyPlan, inputs: &[&[f32]], out: &mut [f32]) -> Result<()> {
    let lens: Vec<usize> = inputs.iter().map(|x| x.len()).collect();
    let len = plan.check(&lens)?;
    if len != out.len() {
        return Err(crate::Error::Invalid(format!("copy: an output of {} values for {len}", out.len())));
    }
    out.fill(plan.fill.unwrap_or(0.0));
    copy_regions(plan, inputs, out);
    Ok(())
}

fn copy_regions(plan: &CopyPlan, inputs: &[&[f32]], out: &mut [f32]) {
    for r in &plan.regions {
        if !r.is_empty() {
            copy_region(r, inputs[r.input], out);
        }
    }
}

/// One region: dimensions with `div` (nearest upsampling) keep their own
/// index; the others are merged where both strides chain, then the rows are
/// copied whole when contiguous on both sides.
fn copy_region(r: &Region, x: &[f32], out: &mut [f32]) {
    // (size, x stride, out stride, div)
    let mut dims: Vec<(usize, usize, usize, usize)> = Vec::with_capacity(r.shape.len());
    for d in 0..r.shape.len() {
        let (n, xs, os, div) = (r.shape[d], r.x_strides[d], r.out_strides[d], r.div[d]);
        if n == 1 {
            continue;
        }
        match dims.last_mut() {
            Some(last) if div == 1 && last.3 == 1 && last.1 == xs * n && last.2 == os * n => {
                *last = (last.0 * n, xs, os, 1)
            }
            _ => dims.push((n, xs, os, div)),
        }
    }
    if dims.is_empty() {
        dims.push((1, 0, 0, 1));
    }
    let (&(inner, xs, os, div), outer) = dims.split_last().expect("at least one dimension");
    let mut index = vec![0usize; outer.len()];
    for _ in 0..r.len() / inner {
        let ix = r.x_offset + outer.iter().zip(&index).map(|(&(_, s, _, dv), &i)| i / dv * s).sum::<usize>();
        let io = r.out_offset + outer.iter().zip(&index).map(|(&(_, _, s, _), &i)| i * s).sum::<usize>();
        if xs == 1 && os == 1 && div == 1 {
            out[io..io + inner].copy_from_slice(&x[ix..ix + inner]);
        } else {
            for i in 0..inner {
                out[io + i * os] = x[ix + i / div * xs];
            }
        }
        for d in (0..outer.len()).rev() {
            index[d] += 1;
            if index[d] < outer[d].0 {
                break;
            }
            index[d] = 0;
        }
    }
}
