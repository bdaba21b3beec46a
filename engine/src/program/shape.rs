//! Shape inference: each op's output shapes from its input shapes, with the
//! checks that make a program's shapes consistent before anything runs.

use super::op::Op;
use crate::delegate::elementwise::{Broadcast, MAX_RANK};
use crate::error::{Error, Result};

type Shape = Vec<usize>;

fn bad(op: &Op, why: String) -> Error {
    Error::Program(format!("{}: {why}", op.kind()))
}

/// `dim` (negative counts from the end) as an index into `rank` dimensions.
pub fn axis(dim: isize, rank: usize) -> Option<usize> {
    let d = if dim < 0 { dim + rank as isize } else { dim };
    (0..rank as isize).contains(&d).then_some(d as usize)
}

fn numel(s: &[usize]) -> Option<usize> {
    s.iter().try_fold(1usize, |a, &b| a.checked_mul(b))
}

/// The output shapes of `op` on inputs of `shapes`.
pub fn infer(op: &Op, shapes: &[&Shape]) -> Result<Vec<Shape>> {
    let (lo, hi) = op.arity();
    if shapes.len() < lo || shapes.len() > hi {
        return Err(bad(op, format!("takes {lo}..={hi} inputs, got {}", shapes.len())));
    }
    let x = shapes[0];
    let rank = x.len();
    let ax = |dim: isize, rank: usize| {
        axis(dim, rank).ok_or_else(|| bad(op, format!("dim {dim} out of range for rank {rank}")))
    };
    let out = match op {
        Op::Unary { .. } | Op::Cast { .. } => x.clone(),
        Op::Binary(_) => Broadcast::new(x, shapes[1])?.shape,
        Op::Softmax => {
            if rank == 0 {
                return Err(bad(op, "needs at least one dimension".into()));
            }
            x.clone()
        }
        Op::Linear { .. } => {
            let w = shapes[1];
            if rank == 0 || w.len() != 2 || w[1] != x[rank - 1] {
                return Err(bad(op, format!("x {x:?} and weight {w:?} do not fit ([…, in] and [out, in])")));
            }
            if let Some(b) = shapes.get(2)
                && **b != [w[0]]
            {
                return Err(bad(op, format!("bias {b:?} must be [{}]", w[0])));
            }
            let mut s = x.clone();
            s[rank - 1] = w[0];
            s
        }
        Op::Matmul => {
            let b = shapes[1];
            if rank < 2 || b.len() < 2 || x[rank - 1] != b[b.len() - 2] {
                return Err(bad(op, format!("{x:?} · {b:?}: inner dimensions differ")));
            }
            if b.len() != 2 && b[..b.len() - 2] != x[..rank - 2] {
                return Err(bad(op, format!("{x:?} · {b:?}: batch dimensions differ")));
            }
            let mut s = x.clone();
            s[rank - 1] = b[b.len() - 1];
            s
        }
        Op::Conv { stride, padding, dilation, groups, .. } => {
            let w = shapes[1];
            let sp = w.len().saturating_sub(2);
            if !(1..=3).contains(&sp)
                || rank != w.len()
                || stride.len() != sp
                || padding.len() != sp
                || dilation.len() != sp
            {
                return Err(bad(
                    op,
                    format!(
                        "x {x:?}, weight {w:?}: need [n, c, …] with 1–3 spatial dims and stride/padding/dilation for each"
                    ),
                ));
            }
            if *groups == 0 || !x[1].is_multiple_of(*groups) || !w[0].is_multiple_of(*groups) || w[1] != x[1] / groups {
                return Err(bad(op, format!("x {x:?}, weight {w:?}: channels do not fit {groups} groups")));
            }
            if let Some(b) = shapes.get(2)
                && **b != [w[0]]
            {
                return Err(bad(op, format!("bias {b:?} must be [{}]", w[0])));
            }
            let mut s = vec![x[0], w[0]];
            for i in 0..sp {
                let (k, st, dl) = (w[2 + i], stride[i], dilation[i]);
                if k == 0 || st == 0 || dl == 0 {
                    return Err(bad(op, "kernel, stride and dilation must be ≥ 1".into()));
                }
                let span = dl.checked_mul(k - 1).and_then(|v| v.checked_add(1));
                let padded = x[2 + i].checked_add(padding[i][0]).and_then(|v| v.checked_add(padding[i][1]));
                let (Some(span), Some(padded)) = (span, padded) else {
                    return Err(bad(op, format!("kernel {w:?} or padding {padding:?} overflows")));
                };
                if padded < span {
                    return Err(bad(op, format!("kernel {w:?} is larger than the padded input {x:?}")));
                }
                s.push((padded - span) / st + 1);
            }
            s
        }
        Op::Attention { .. } => {
            let (k, v) = (shapes[1], shapes[2]);
            if rank != 4 || k.len() != 4 || v != k || k[..2] != x[..2] || k[3] != x[3] || x[3] == 0 || x[3] > 128 {
                return Err(bad(op, format!("q {x:?}, k {k:?}, v {v:?}: need [b, h, l, d] with d ≤ 128")));
            }
            if let Some(m) = shapes.get(3) {
                let ok = (m.len() == 2 && m[..] == [x[2], k[2]]) || (m.len() == 3 && m[..] == [x[0], x[2], k[2]]);
                if !ok {
                    return Err(bad(op, format!("mask {m:?} must be [lq, lk] or [b, lq, lk]")));
                }
            }
            x.clone()
        }
        Op::LayerNorm { .. } | Op::RmsNorm { .. } => {
            if rank == 0 {
                return Err(bad(op, "needs at least one dimension".into()));
            }
            for a in &shapes[1..] {
                if **a != [x[rank - 1]] {
                    return Err(bad(op, format!("affine {a:?} must be [{}]", x[rank - 1])));
                }
            }
            x.clone()
        }
        Op::GroupNorm { groups, .. } => {
            if rank < 2 || *groups == 0 || !x[1].is_multiple_of(*groups) {
                return Err(bad(op, format!("{x:?}: channels must divide into {groups} groups")));
            }
            for a in &shapes[1..] {
                if **a != [x[1]] {
                    return Err(bad(op, format!("affine {a:?} must be [{}]", x[1])));
                }
            }
            x.clone()
        }
        Op::Reduce { dim, keepdim, .. } => {
            let d = ax(*dim, rank)?;
            if x[d] == 0 {
                return Err(bad(op, "reduces an empty dimension".into()));
            }
            let mut s = x.clone();
            if *keepdim {
                s[d] = 1;
            } else {
                s.remove(d);
            }
            s
        }
        Op::Reshape { shape } => {
            let n = numel(x).ok_or_else(|| bad(op, "overflow".into()))?;
            let known: Option<usize> = shape
                .iter()
                .filter(|&&d| d != -1)
                .try_fold(1usize, |a, &d| usize::try_from(d).ok().and_then(|d| a.checked_mul(d)));
            let holes = shape.iter().filter(|&&d| d == -1).count();
            let known = known.ok_or_else(|| bad(op, format!("bad shape {shape:?}")))?;
            let fill = match holes {
                0 if known == n => 0,
                1 if known > 0 && n % known == 0 => n / known,
                1 if known == 0 && n == 0 => 0,
                _ => return Err(bad(op, format!("{x:?} ({n} elements) cannot be viewed as {shape:?}"))),
            };
            shape.iter().map(|&d| if d == -1 { fill } else { d as usize }).collect()
        }
        Op::Permute { perm } => {
            let mut seen = vec![false; rank];
            if perm.len() != rank || perm.iter().any(|&p| p >= rank || std::mem::replace(&mut seen[p], true)) {
                return Err(bad(op, format!("{perm:?} is not a permutation of {rank} dimensions")));
            }
            perm.iter().map(|&p| x[p]).collect()
        }
        Op::Unsqueeze { dim } => {
            let d = ax(*dim, rank + 1)?;
            let mut s = x.clone();
            s.insert(d, 1);
            s
        }
        Op::Squeeze { dim } => {
            let d = ax(*dim, rank)?;
            if x[d] != 1 {
                return Err(bad(op, format!("dimension {d} of {x:?} is not 1")));
            }
            let mut s = x.clone();
            s.remove(d);
            s
        }
        Op::Expand { shape } => crate::delegate::layout::expand(x, shape).map_err(|e| bad(op, e.to_string()))?.shape,
        Op::Slice { dim, start, end, step } => {
            let d = ax(*dim, rank)?;
            let (s0, e0) = slice_bounds(*start, *end, x[d]);
            if *step == 0 {
                return Err(bad(op, "step must be ≥ 1".into()));
            }
            let mut s = x.clone();
            s[d] = if e0 > s0 { (e0 - s0).div_ceil(*step) } else { 0 };
            s
        }
        Op::Split { dim, sizes } => {
            let d = ax(*dim, rank)?;
            if sizes.iter().try_fold(0usize, |a, &b| a.checked_add(b)) != Some(x[d]) {
                return Err(bad(op, format!("sizes {sizes:?} do not add up to {}", x[d])));
            }
            return Ok(sizes
                .iter()
                .map(|&n| {
                    let mut s = x.clone();
                    s[d] = n;
                    s
                })
                .collect());
        }
        Op::Cat { dim } => {
            let d = ax(*dim, rank)?;
            let mut s = x.clone();
            for o in &shapes[1..] {
                if o.len() != rank || (0..rank).any(|i| i != d && o[i] != x[i]) {
                    return Err(bad(op, format!("{o:?} does not match {x:?} outside dimension {d}")));
                }
                s[d] = s[d].checked_add(o[d]).ok_or_else(|| bad(op, "overflow".into()))?;
            }
            s
        }
        Op::Pad { pads, .. } => {
            if pads.len() != rank {
                return Err(bad(op, format!("{} pads for rank {rank}", pads.len())));
            }
            x.iter()
                .zip(pads)
                .map(|(&s, p)| s.checked_add(p[0]).and_then(|v| v.checked_add(p[1])))
                .collect::<Option<Shape>>()
                .ok_or_else(|| bad(op, format!("pads {pads:?} overflow")))?
        }
        Op::UpsampleNearest { scale } => {
            if scale.len() > rank || scale.contains(&0) {
                return Err(bad(op, format!("scale {scale:?} for {x:?}")));
            }
            let lead = rank - scale.len();
            x.iter()
                .enumerate()
                .map(|(i, &s)| if i < lead { Some(s) } else { s.checked_mul(scale[i - lead]) })
                .collect::<Option<Shape>>()
                .ok_or_else(|| bad(op, format!("scale {scale:?} of {x:?} overflows")))?
        }
        Op::Embedding => {
            let indices = shapes[1];
            if rank != 2 {
                return Err(bad(op, format!("the table {x:?} must be [rows, d]")));
            }
            let mut s = indices.clone();
            s.push(x[1]);
            s
        }
        Op::Rotary { dim, .. } => {
            let (c, s) = (shapes[1], shapes[2]);
            let d = ax(*dim, rank)?;
            if d + 1 >= rank
                || !x[rank - 1].is_multiple_of(2)
                || c.len() != 2
                || c != s
                || c[1].checked_mul(2) != Some(x[rank - 1])
                || c[0] != x[d]
            {
                return Err(bad(op, format!("x {x:?}, tables {c:?} {s:?}: need tables [x[{d}], x[-1] / 2]")));
            }
            x.clone()
        }
    };
    if out.len() > MAX_RANK || numel(&out).is_none_or(|n| n > u32::MAX as usize) {
        return Err(bad(op, format!("output {out:?} is too large (at most {MAX_RANK} dimensions and 2³² elements)")));
    }
    Ok(vec![out])
}

/// Python-style slice bounds of `[start, end)` on a dimension of `n`.
pub fn slice_bounds(start: isize, end: isize, n: usize) -> (usize, usize) {
    let clamp = |i: isize| {
        let i = if i < 0 { i + n as isize } else { i };
        i.clamp(0, n as isize) as usize
    };
    (clamp(start), clamp(end))
}
