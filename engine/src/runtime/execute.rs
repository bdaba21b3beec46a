//! One node on a delegate: the program's op, its input shapes and data,
//! mapped onto the delegate's kernels.

use crate::delegate::{self, Activation, Attention, Conv3d, Matmul, Norm, Reduce, Rotary, Softmax, cpu, gpu, layout};
use crate::error::{Error, Result};
use crate::program::Op;
use crate::program::shape::{axis, slice_bounds};

/// An input: its shape and data.
pub type Input<'a> = (&'a [usize], &'a [f32]);

/// What a node computes, in delegate terms.
enum Work {
    Unary(delegate::Unary, f32, f32),
    Binary(delegate::Binary),
    Matmul(Matmul),
    Conv(Conv3d),
    Attention(Attention),
    Softmax(Softmax),
    Norm(Norm),
    Reduce(Reduce),
    Copy(delegate::CopyPlan),
    Copies(Vec<delegate::CopyPlan>),
    Rotary(Rotary),
    Cast(bool),
    View,
}

fn numel(s: &[usize]) -> usize {
    s.iter().product()
}

/// Spatial parameters of a 1–3-d conv as the 3-d conv's (leading axes of 1).
fn conv3d(x: &[usize], w: &[usize], op: &Op, activation: Activation) -> Result<Conv3d> {
    let Op::Conv { stride, padding, dilation, groups, .. } = op else { unreachable!() };
    let sp = w.len() - 2;
    let lift = |v: &[usize], fill: usize| -> [usize; 3] {
        std::array::from_fn(|i| if i < 3 - sp { fill } else { v[i - (3 - sp)] })
    };
    let pads: [[usize; 2]; 3] = std::array::from_fn(|i| if i < 3 - sp { [0, 0] } else { padding[i - (3 - sp)] });
    Ok(Conv3d {
        batch: x[0],
        c_in: x[1],
        c_out: w[0],
        input: lift(&x[2..], 1),
        kernel: lift(&w[2..], 1),
        stride: lift(stride, 1),
        padding: pads,
        dilation: lift(dilation, 1),
        groups: *groups,
        activation,
    })
}

fn work(op: &Op, shapes: &[&[usize]], fused: Option<Activation>) -> Result<Work> {
    let x = shapes[0];
    let rank = x.len();
    let ax = |d: isize| axis(d, rank).ok_or_else(|| Error::Program(format!("dim {d} out of range")));
    Ok(match op {
        Op::Unary { f, scale, shift } => Work::Unary(*f, *scale, *shift),
        Op::Binary(b) => Work::Binary(*b),
        Op::Linear { activation } => {
            let w = shapes[1];
            Work::Matmul(Matmul {
                trans_b: true,
                activation: fused.unwrap_or(*activation),
                ..Matmul::new(1, numel(&x[..rank - 1]), w[0], w[1])
            })
        }
        Op::Matmul => {
            let b = shapes[1];
            let (m, k, n) = (x[rank - 2], x[rank - 1], b[b.len() - 1]);
            let batch = numel(&x[..rank - 2]);
            // A 2-d B applies to every row of A: one product of (batch·m) rows.
            if b.len() == 2 {
                Work::Matmul(Matmul::new(1, batch * m, n, k))
            } else {
                Work::Matmul(Matmul::new(batch, m, n, k))
            }
        }
        Op::Conv { activation, .. } => Work::Conv(conv3d(x, shapes[1], op, fused.unwrap_or(*activation))?),
        Op::Attention { scale, causal } => {
            let k = shapes[1];
            let mut a = Attention::new(x[0], x[1], x[2], k[2], x[3]);
            if let Some(s) = scale {
                a.scale = *s;
            }
            a.causal = *causal;
            a.mask_per_batch = shapes.get(3).is_some_and(|m| m.len() == 3);
            Work::Attention(a)
        }
        Op::Softmax => Work::Softmax(Softmax { rows: numel(&x[..rank - 1]), n: x[rank - 1] }),
        Op::LayerNorm { eps } => Work::Norm(Norm::layer(numel(&x[..rank - 1]), x[rank - 1], *eps)),
        Op::RmsNorm { eps } => Work::Norm(Norm::rms(numel(&x[..rank - 1]), x[rank - 1], *eps)),
        Op::GroupNorm { groups, eps } => Work::Norm(Norm::group(x[0], x[1], numel(&x[2..]), *groups, *eps)?),
        Op::Reduce { op, dim, .. } => Work::Reduce(Reduce::over(*op, x, ax(*dim)?)?),
        Op::Reshape { .. } | Op::Unsqueeze { .. } | Op::Squeeze { .. } => Work::View,
        Op::Permute { perm } => Work::Copy(layout::permute(x, perm)?),
        Op::Expand { shape } => Work::Copy(layout::expand(x, shape)?),
        Op::Slice { dim, start, end, step } => {
            let d = ax(*dim)?;
            let (s0, e0) = slice_bounds(*start, *end, x[d]);
            let mut start = vec![0; rank];
            let mut end = x.to_vec();
            let mut steps = vec![1; rank];
            (start[d], end[d], steps[d]) = (s0, e0.max(s0), *step);
            Work::Copy(layout::slice(x, &start, &end, &steps)?)
        }
        Op::Split { dim, sizes } => {
            let d = ax(*dim)?;
            let mut at = 0;
            let mut plans = Vec::new();
            for &n in sizes {
                let mut start = vec![0; rank];
                let mut end = x.to_vec();
                (start[d], end[d]) = (at, at + n);
                plans.push(layout::slice(x, &start, &end, &vec![1; rank])?);
                at += n;
            }
            Work::Copies(plans)
        }
        Op::Cat { dim } => Work::Copy(layout::concat(shapes, ax(*dim)?)?),
        Op::Pad { pads, value } => Work::Copy(layout::pad(x, pads, *value)?),
        Op::UpsampleNearest { scale } => {
            let mut factors = vec![1; rank - scale.len()];
            factors.extend_from_slice(scale);
            Work::Copy(layout::upsample_nearest(x, &factors)?)
        }
        Op::Rotary { interleaved, dim } => {
            let d = ax(*dim)?;
            Work::Rotary(Rotary {
                outer: numel(&x[..d]),
                len: x[d],
                inner: numel(&x[d + 1..rank - 1]),
                dim: x[rank - 1],
                interleaved: *interleaved,
            })
        }
        Op::Cast { to_f16 } => Work::Cast(*to_f16),
    })
}

/// Runs `op` on the CPU delegate; returns one buffer per output.
pub fn cpu(op: &Op, inputs: &[Input], fused: Option<Activation>) -> Result<Vec<Vec<f32>>> {
    let shapes: Vec<&[usize]> = inputs.iter().map(|i| i.0).collect();
    let data: Vec<&[f32]> = inputs.iter().map(|i| i.1).collect();
    let one = |v: Result<Vec<f32>>| v.map(|v| vec![v]);
    match work(op, &shapes, fused)? {
        Work::Unary(f, a, b) => Ok(vec![cpu::elementwise::unary(f, data[0], a, b)]),
        Work::Binary(b) => one(cpu::elementwise::binary(b, data[0], shapes[0], data[1], shapes[1])),
        Work::Matmul(m) => one(cpu::matmul::matmul(&m, data[0], data[1], data.get(2).copied())),
        Work::Conv(c) => one(cpu::conv::conv3d(&c, data[0], data[1], data.get(2).copied())),
        Work::Attention(a) => one(cpu::attention::attention(&a, data[0], data[1], data[2], data.get(3).copied())),
        Work::Softmax(s) => one(cpu::norm::softmax(&s, data[0])),
        Work::Norm(n) => one(cpu::norm::norm(&n, data[0], data.get(1).copied(), data.get(2).copied())),
        Work::Reduce(r) => one(cpu::norm::reduce(&r, data[0])),
        Work::Copy(p) => one(cpu::layout::copy(&p, &data)),
        Work::Copies(ps) => ps.iter().map(|p| cpu::layout::copy(p, &data)).collect(),
        Work::Rotary(r) => one(cpu::rotary::rotary(&r, data[0], data[1], data[2])),
        Work::Cast(to_f16) => Ok(vec![cast(data[0], to_f16)]),
        Work::View => Ok(vec![data[0].to_vec()]),
    }
}

fn cast(x: &[f32], to_f16: bool) -> Vec<f32> {
    if to_f16 { x.iter().map(|&v| half::f16::from_f32(v).to_f32()).collect() } else { x.to_vec() }
}

/// Runs `op` on the GPU delegate; returns one buffer per output.
pub async fn gpu(
    dev: &gpu::GpuDevice,
    op: &Op,
    inputs: &[Input<'_>],
    fused: Option<Activation>,
) -> Result<Vec<Vec<f32>>> {
    let shapes: Vec<&[usize]> = inputs.iter().map(|i| i.0).collect();
    let data: Vec<&[f32]> = inputs.iter().map(|i| i.1).collect();
    let one = |v: Vec<f32>| vec![v];
    Ok(match work(op, &shapes, fused)? {
        Work::Unary(f, a, b) => one(gpu::elementwise::unary(dev, f, data[0], a, b).await?),
        Work::Binary(b) => one(gpu::elementwise::binary(dev, b, data[0], shapes[0], data[1], shapes[1]).await?),
        Work::Matmul(m) => one(gpu::matmul::matmul(dev, &m, data[0], data[1], data.get(2).copied()).await?),
        Work::Conv(c) => one(gpu::conv::conv3d(dev, &c, data[0], data[1], data.get(2).copied()).await?),
        Work::Attention(a) => {
            one(gpu::attention::attention(dev, &a, data[0], data[1], data[2], data.get(3).copied()).await?)
        }
        Work::Softmax(s) => one(gpu::norm::softmax(dev, &s, data[0]).await?),
        Work::Norm(n) => one(gpu::norm::norm(dev, &n, data[0], data.get(1).copied(), data.get(2).copied()).await?),
        Work::Reduce(r) => one(gpu::norm::reduce(dev, &r, data[0]).await?),
        Work::Copy(p) => one(gpu::layout::copy(dev, &p, &data).await?),
        Work::Copies(ps) => {
            let mut outs = Vec::new();
            for p in &ps {
                outs.push(gpu::layout::copy(dev, p, &data).await?);
            }
            outs
        }
        Work::Rotary(r) => one(gpu::rotary::rotary(dev, &r, data[0], data[1], data[2]).await?),
        Work::Cast(true) => {
            let halves = gpu::cast::to_f16(dev, data[0]).await?;
            one(gpu::cast::to_f32(dev, &halves).await?)
        }
        Work::Cast(false) | Work::View => one(data[0].to_vec()),
    })
}
