//! One node on a delegate: the program's op, its input shapes and data,
//! mapped onto the delegate's kernels.

use crate::delegate::{
    self, Activation, Attention, Conv3d, Gather, Matmul, Norm, Operand, Reduce, Rotary, Softmax, cpu, gpu, layout,
};
use crate::error::{Error, Result};
use crate::program::Op;
use crate::program::shape::{axis, slice_bounds};

/// An input: its shape and data (f32, or a matmul's weight as stored).
pub type Input<'a> = (&'a [usize], Operand<'a>);

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
    Gather(Gather),
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

/// The kernel a GPU step of `op` runs on `dev`, with its configuration — the
/// tuning table's choice for this adapter, as [`encode`] makes it — for the
/// ops whose kernel depends on the adapter (matmul and linear, conv, attention).
pub fn gpu_kernel(dev: &gpu::GpuDevice, op: &Op, shapes: &[&[usize]], fused: Option<Activation>) -> Option<String> {
    match work(op, shapes, fused).ok()? {
        Work::Matmul(m) => Some(gpu::tuning::matmul_for(dev, &m).describe()),
        Work::Conv(c) => Some(gpu::tuning::conv_for(dev, &c).describe()),
        Work::Attention(a) => Some(gpu::tuning::attention_for(dev, &a).describe()),
        _ => None,
    }
}

/// What the tuner times for a GPU step of `op` ([`gpu::tune`]), for the ops
/// whose kernel it picks per shape class: matmuls (and linears), attention.
pub fn tuning_example(op: &Op, shapes: &[&[usize]]) -> Option<gpu::tune::Example> {
    match work(op, shapes, None).ok()? {
        Work::Matmul(m) => Some(gpu::tune::Example::Matmul(m)),
        Work::Attention(a) => Some(gpu::tune::Example::Attention(a)),
        Work::Conv(c) => Some(gpu::tune::Example::Conv(c)),
        _ => None,
    }
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
        Op::Embedding => Work::Gather(Gather { rows: x[0], dim: x[1], count: numel(shapes[1]) }),
    })
}

/// Runs `op` on the CPU delegate, output `i` into `outs[i]` (exactly that
/// output's length; whatever it held is overwritten, never read). Only a
/// matmul's weight (input 1) and a gather's table (input 0) may come in their
/// stored dtype.
pub fn cpu_into(op: &Op, inputs: &[Input], fused: Option<Activation>, outs: &mut [&mut [f32]]) -> Result<()> {
    let shapes: Vec<&[usize]> = inputs.iter().map(|i| i.0).collect();
    let work = work(op, &shapes, fused)?;
    let mut data: Vec<&[f32]> = Vec::with_capacity(inputs.len());
    for (i, (_, value)) in inputs.iter().enumerate() {
        match value {
            Operand::F32(d) => data.push(d),
            Operand::Half(..) | Operand::Int8 { .. } | Operand::Int4 { .. }
                if (i == 1 && matches!(work, Work::Matmul(_))) || (i == 0 && matches!(work, Work::Gather(_))) =>
            {
                data.push(&[])
            }
            _ => {
                return Err(Error::Program(format!(
                    "{}: input {i} is not f32 (only a matmul's weight and a gather's table may be)",
                    op.kind()
                )));
            }
        }
    }
    let want = if let Work::Copies(ps) = &work { ps.len() } else { 1 };
    if outs.len() != want {
        return Err(Error::Program(format!("{}: {} outputs given for {want}", op.kind(), outs.len())));
    }
    let out = &mut *outs[0];
    match work {
        Work::Unary(f, a, b) => {
            cpu::check_out("unary", out, data[0].len())?;
            cpu::elementwise::unary_into(f, data[0], a, b, out);
            Ok(())
        }
        Work::Binary(b) => cpu::elementwise::binary_into(b, data[0], shapes[0], data[1], shapes[1], out),
        Work::Matmul(m) => cpu::matmul::matmul_weight_into(&m, data[0], inputs[1].1, data.get(2).copied(), out),
        Work::Conv(c) => cpu::conv::conv3d_into(&c, data[0], data[1], data.get(2).copied(), out),
        Work::Attention(a) => {
            cpu::attention::attention_into(&a, [data[0], data[1], data[2]], data.get(3).copied(), out)
        }
        Work::Softmax(s) => cpu::norm::softmax_into(&s, data[0], out),
        Work::Norm(n) => cpu::norm::norm_into(&n, data[0], data.get(1).copied(), data.get(2).copied(), out),
        Work::Reduce(r) => cpu::norm::reduce_into(&r, data[0], out),
        Work::Copy(p) => cpu::layout::copy_into(&p, &data, out),
        Work::Copies(ps) => ps.iter().zip(outs.iter_mut()).try_for_each(|(p, o)| cpu::layout::copy_into(p, &data, o)),
        Work::Rotary(r) => cpu::rotary::rotary_into(&r, data[0], data[1], data[2], out),
        Work::Cast(to_f16) => {
            cpu::check_out("cast", out, data[0].len())?;
            if to_f16 {
                out.iter_mut().zip(data[0]).for_each(|(o, &v)| *o = half::f16::from_f32(v).to_f32());
            } else {
                out.copy_from_slice(data[0]);
            }
            Ok(())
        }
        Work::Gather(g) => cpu::gather::gather_into(&g, inputs[0].1, data[1], out),
        Work::View => {
            cpu::check_out("view", out, data[0].len())?;
            out.copy_from_slice(data[0]);
            Ok(())
        }
    }
}

/// [`cpu_into`] into new buffers, one per output, of `lens` values.
pub fn cpu(op: &Op, inputs: &[Input], fused: Option<Activation>, lens: &[usize]) -> Result<Vec<Vec<f32>>> {
    let mut bufs: Vec<Vec<f32>> = lens.iter().map(|&n| vec![0f32; n]).collect();
    let mut outs: Vec<&mut [f32]> = bufs.iter_mut().map(Vec::as_mut_slice).collect();
    cpu_into(op, inputs, fused, &mut outs)?;
    Ok(bufs)
}

/// Records `op` on the GPU over device views: `inputs` with their shapes, one
/// output view per output. Conv weights must already be prepacked
/// ([`gpu::conv::prepack`]); `b_store` says how the second input of a linear
/// or matmul is stored (f32 for every other op).
#[allow(clippy::too_many_arguments)]
pub async fn encode(
    dev: &gpu::GpuDevice,
    cmds: &mut gpu::Commands<'_>,
    op: &Op,
    inputs: &[(&[usize], gpu::View<'_>)],
    b_store: gpu::matmul::BStore<'_>,
    fused: Option<Activation>,
    outs: &[gpu::View<'_>],
) -> Result<()> {
    use gpu::tuning;
    let shapes: Vec<&[usize]> = inputs.iter().map(|i| i.0).collect();
    let v: Vec<gpu::View> = inputs.iter().map(|i| i.1).collect();
    let out = outs[0];
    let work = work(op, &shapes, fused)?;
    if !matches!(b_store, gpu::matmul::BStore::F32) && !matches!(work, Work::Matmul(_)) {
        return Err(Error::Program(format!("{}: only a matmul's weight may be 16-bit", op.kind())));
    }
    match work {
        Work::Unary(f, a, b) => gpu::elementwise::encode_unary(dev, cmds, f, a, b, v[0], out).await,
        Work::Binary(b) => {
            gpu::elementwise::encode_binary(dev, cmds, b, (v[0], shapes[0]), (v[1], shapes[1]), out).await
        }
        Work::Matmul(m) => {
            let config = tuning::matmul_for(dev, &m);
            gpu::matmul::encode_matmul(dev, cmds, config, &m, v[0], (v[1], b_store), v.get(2).copied(), out).await
        }
        Work::Conv(c) => {
            let kernel = tuning::conv_for(dev, &c);
            gpu::conv::encode_conv3d(dev, cmds, kernel, &c, [v[0], v[1]], v.get(2).copied(), out).await
        }
        Work::Attention(a) => {
            let variant = tuning::attention_for(dev, &a);
            gpu::attention::encode_attention(dev, cmds, variant, &a, [v[0], v[1], v[2]], v.get(3).copied(), out).await
        }
        Work::Softmax(s) => gpu::norm::encode_softmax(dev, cmds, &s, v[0], out).await,
        Work::Norm(n) => gpu::norm::encode_norm(dev, cmds, &n, v[0], v.get(1).copied(), v.get(2).copied(), out).await,
        Work::Reduce(r) => gpu::norm::encode_reduce(dev, cmds, &r, v[0], out).await,
        Work::Copy(p) => gpu::layout::encode_copy(dev, cmds, &p, &v, out).await,
        Work::Copies(ps) => {
            for (p, o) in ps.iter().zip(outs) {
                gpu::layout::encode_copy(dev, cmds, p, &v, *o).await?;
            }
            Ok(())
        }
        Work::Rotary(r) => gpu::rotary::encode_rotary(dev, cmds, &r, [v[0], v[1], v[2]], out).await,
        Work::Cast(true) => gpu::cast::encode_round_f16(dev, cmds, v[0], out).await,
        Work::Gather(g) => gpu::gather::encode_gather(dev, cmds, &g, [v[0], v[1]], out).await,
        // A view that runs is one of a parameter or constant: a copy into the arena
        // (the plan skips views of arena values).
        Work::Cast(false) | Work::View => {
            cmds.copy(v[0], out, v[0].len);
            Ok(())
        }
    }
}

/// The prepacked GPU layout of a conv weight, given the node's input shapes.
pub fn prepack_conv(op: &Op, x: &[usize], w_shape: &[usize], w: &[f32]) -> Result<Vec<f32>> {
    let spec = conv3d(x, w_shape, op, Activation::None)?;
    Ok(gpu::conv::prepack(&spec, w))
}
