//! Layout ops as copy plans: permute, slice, expand, concat, pad and nearest
//! upsampling all become "fill the output (maybe), then copy strided regions
//! into it" — one kernel (`copy.wgsl`) on the GPU, one loop on the CPU.

use super::elementwise::{MAX_RANK, numel};
use crate::error::{Error, Result};

/// One strided copy from input `input` into the output:
/// `out[out_offset + Σ i_d·out_strides_d] = x[x_offset + Σ (i_d / div_d)·x_strides_d]`
/// for every index `i` of `shape`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    pub input: usize,
    pub shape: Vec<usize>,
    pub x_offset: usize,
    pub x_strides: Vec<usize>,
    pub out_offset: usize,
    pub out_strides: Vec<usize>,
    pub div: Vec<usize>,
}

impl Region {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An output of `shape`, optionally filled with `fill`, then `regions` copied in.
#[derive(Debug, Clone, PartialEq)]
pub struct CopyPlan {
    pub shape: Vec<usize>,
    pub fill: Option<f32>,
    pub regions: Vec<Region>,
}

/// Row-major strides of `shape`.
pub fn contiguous(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        strides[d] = strides[d + 1] * shape[d + 1];
    }
    strides
}

fn check_rank(op: &str, shape: &[usize]) -> Result<()> {
    if shape.len() > MAX_RANK {
        return Err(Error::Invalid(format!("{op}: {shape:?} has more than {MAX_RANK} dimensions")));
    }
    numel(shape).map(drop)
}

/// A whole-tensor copy of input 0 with the given input strides and divisors.
fn single(shape: Vec<usize>, x_offset: usize, x_strides: Vec<usize>, div: Vec<usize>) -> CopyPlan {
    let region = Region {
        input: 0,
        out_strides: contiguous(&shape),
        shape: shape.clone(),
        x_offset,
        x_strides,
        out_offset: 0,
        div,
    };
    CopyPlan { shape, fill: None, regions: vec![region] }
}

/// `x.permute(perm)`.
pub fn permute(shape: &[usize], perm: &[usize]) -> Result<CopyPlan> {
    check_rank("permute", shape)?;
    let mut seen = vec![false; shape.len()];
    if perm.len() != shape.len() || perm.iter().any(|&p| p >= shape.len() || std::mem::replace(&mut seen[p], true)) {
        return Err(Error::Invalid(format!("permute {shape:?} by {perm:?}: not a permutation")));
    }
    let strides = contiguous(shape);
    let out: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    Ok(single(out, 0, perm.iter().map(|&p| strides[p]).collect(), vec![1; shape.len()]))
}

/// `x[start_0:end_0:step_0, …]` (every dimension given; ends clamp to the shape).
pub fn slice(shape: &[usize], start: &[usize], end: &[usize], step: &[usize]) -> Result<CopyPlan> {
    check_rank("slice", shape)?;
    if start.len() != shape.len() || end.len() != shape.len() || step.len() != shape.len() || step.contains(&0) {
        return Err(Error::Invalid(format!(
            "slice of {shape:?}: start/end/step need one positive entry per dimension"
        )));
    }
    let strides = contiguous(shape);
    let mut out = Vec::new();
    let mut offset = 0;
    for d in 0..shape.len() {
        let (s, e) = (start[d].min(shape[d]), end[d].min(shape[d]));
        out.push(if e > s { (e - s).div_ceil(step[d]) } else { 0 });
        offset += s * strides[d];
    }
    let x_strides = strides.iter().zip(step).map(|(s, t)| s * t).collect();
    Ok(single(out, offset, x_strides, vec![1; shape.len()]))
}

/// `x.expand(to)`: dimensions of 1 (or missing in front) repeat.
pub fn expand(shape: &[usize], to: &[usize]) -> Result<CopyPlan> {
    check_rank("expand", to)?;
    if to.len() < shape.len() {
        return Err(Error::Invalid(format!("expand {shape:?} to {to:?}: fewer dimensions")));
    }
    let pad = to.len() - shape.len();
    let strides = contiguous(shape);
    let mut x_strides = vec![0; to.len()];
    for d in 0..shape.len() {
        if shape[d] == to[pad + d] {
            x_strides[pad + d] = strides[d];
        } else if shape[d] != 1 {
            return Err(Error::Invalid(format!("expand {shape:?} to {to:?}: dimension {d} is not 1")));
        }
    }
    Ok(single(to.to_vec(), 0, x_strides, vec![1; to.len()]))
}

/// `torch.cat(inputs, axis)`: input i is `shapes[i]`.
pub fn concat(shapes: &[&[usize]], axis: usize) -> Result<CopyPlan> {
    let first = shapes.first().ok_or_else(|| Error::Invalid("concat of nothing".into()))?;
    check_rank("concat", first)?;
    if axis >= first.len() {
        return Err(Error::Invalid(format!("concat along {axis} of {first:?}")));
    }
    let mut out = first.to_vec();
    out[axis] = 0;
    for s in shapes {
        if s.len() != first.len() || (0..s.len()).any(|d| d != axis && s[d] != first[d]) {
            return Err(Error::Invalid(format!("concat along {axis}: {s:?} does not match {first:?}")));
        }
        out[axis] += s[axis];
    }
    check_rank("concat", &out)?;
    let out_strides = contiguous(&out);
    let mut regions = Vec::new();
    let mut at = 0;
    for (i, s) in shapes.iter().enumerate() {
        regions.push(Region {
            input: i,
            shape: s.to_vec(),
            x_offset: 0,
            x_strides: contiguous(s),
            out_offset: at * out_strides[axis],
            out_strides: out_strides.clone(),
            div: vec![1; s.len()],
        });
        at += s[axis];
    }
    Ok(CopyPlan { shape: out, fill: None, regions })
}

/// Constant padding: `pads[d] = (before, after)` for every dimension.
pub fn pad(shape: &[usize], pads: &[[usize; 2]], value: f32) -> Result<CopyPlan> {
    check_rank("pad", shape)?;
    if pads.len() != shape.len() {
        return Err(Error::Invalid(format!("pad {shape:?}: one (before, after) per dimension")));
    }
    let out: Vec<usize> = shape.iter().zip(pads).map(|(s, p)| s + p[0] + p[1]).collect();
    check_rank("pad", &out)?;
    let out_strides = contiguous(&out);
    let offset = pads.iter().zip(&out_strides).map(|(p, s)| p[0] * s).sum();
    let region = Region {
        input: 0,
        shape: shape.to_vec(),
        x_offset: 0,
        x_strides: contiguous(shape),
        out_offset: offset,
        out_strides,
        div: vec![1; shape.len()],
    };
    Ok(CopyPlan { shape: out, fill: Some(value), regions: vec![region] })
}

/// Nearest-neighbour upsampling by an integer factor per dimension.
pub fn upsample_nearest(shape: &[usize], factors: &[usize]) -> Result<CopyPlan> {
    check_rank("upsample", shape)?;
    if factors.len() != shape.len() || factors.contains(&0) {
        return Err(Error::Invalid(format!("upsample {shape:?} by {factors:?}: one factor ≥ 1 per dimension")));
    }
    let out: Vec<usize> = shape.iter().zip(factors).map(|(s, f)| s * f).collect();
    check_rank("upsample", &out)?;
    Ok(single(out, 0, contiguous(shape), factors.to_vec()))
}

impl CopyPlan {
    /// Checks that the plan stays inside its inputs (of `inputs` elements each)
    /// and its output; returns the output length.
    pub fn check(&self, inputs: &[usize]) -> Result<usize> {
        let len = numel(&self.shape)?;
        for r in &self.regions {
            let n = *inputs.get(r.input).ok_or_else(|| Error::Invalid(format!("copy: no input {}", r.input)))?;
            if r.is_empty() {
                continue;
            }
            let last = |offset: usize, strides: &[usize], div: &[usize]| {
                offset + r.shape.iter().zip(strides).zip(div).map(|((s, st), dv)| (s - 1) / dv * st).sum::<usize>()
            };
            let ones = vec![1; r.shape.len()];
            if last(r.x_offset, &r.x_strides, &r.div) >= n || last(r.out_offset, &r.out_strides, &ones) >= len {
                return Err(Error::Invalid(format!("copy region {r:?} reaches outside its tensors")));
            }
        }
        Ok(len)
    }
}
