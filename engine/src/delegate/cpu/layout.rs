//! Copy plans (permute, slice, expand, concat, pad, upsample) on the host.

use crate::Result;
use crate::delegate::CopyPlan;

/// Runs `plan` over `inputs`.
pub fn copy(plan: &CopyPlan, inputs: &[&[f32]]) -> Result<Vec<f32>> {
    let lens: Vec<usize> = inputs.iter().map(|x| x.len()).collect();
    let len = plan.check(&lens)?;
    let mut out = vec![plan.fill.unwrap_or(0.0); len];
    for r in &plan.regions {
        if r.is_empty() {
            continue;
        }
        let x = inputs[r.input];
        let rank = r.shape.len();
        let mut index = vec![0usize; rank];
        for _ in 0..r.len() {
            let ix = r.x_offset + (0..rank).map(|d| index[d] / r.div[d] * r.x_strides[d]).sum::<usize>();
            let io = r.out_offset + (0..rank).map(|d| index[d] * r.out_strides[d]).sum::<usize>();
            out[io] = x[ix];
            for d in (0..rank).rev() {
                index[d] += 1;
                if index[d] < r.shape[d] {
                    break;
                }
                index[d] = 0;
            }
        }
    }
    Ok(out)
}
