//! Elementwise unary and broadcasting binary math on the host.

use super::activation;
use crate::Result;
use crate::delegate::{Activation, Binary, Broadcast, Unary};

/// `f(x·a + b)` for one value.
pub fn unary_one(op: Unary, v: f32) -> f32 {
    match op {
        Unary::Identity => v,
        Unary::Relu => activation::apply(Activation::Relu, v),
        Unary::Silu => activation::apply(Activation::Silu, v),
        Unary::GeluTanh => activation::apply(Activation::GeluTanh, v),
        Unary::GeluErf => activation::apply(Activation::GeluErf, v),
        Unary::Sigmoid => activation::sigmoid(v),
        Unary::Tanh => v.tanh(),
        Unary::Exp => v.exp(),
        Unary::Log => v.ln(),
        Unary::Sqrt => v.sqrt(),
        Unary::Rsqrt => 1.0 / v.sqrt(),
        Unary::Abs => v.abs(),
        Unary::Neg => -v,
        Unary::Square => v * v,
        Unary::Recip => 1.0 / v,
        Unary::Sin => v.sin(),
        Unary::Cos => v.cos(),
    }
}

/// `out[i] = f(x[i]·a + b)`.
pub fn unary(op: Unary, x: &[f32], a: f32, b: f32) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    unary_into(op, x, a, b, &mut out);
    out
}

/// Elements per piece when an elementwise op is spread over the cores.
const PIECE: usize = 1 << 16;

/// [`unary`] into `out` (as long as `x`), spread over the cores when it is large.
pub fn unary_into(op: Unary, x: &[f32], a: f32, b: f32, out: &mut [f32]) {
    assert_eq!(x.len(), out.len(), "unary: output length");
    let act = match op {
        Unary::Identity => Some(Activation::None),
        Unary::Relu => Some(Activation::Relu),
        Unary::Silu => Some(Activation::Silu),
        Unary::GeluTanh => Some(Activation::GeluTanh),
        Unary::GeluErf => Some(Activation::GeluErf),
        _ => None,
    };
    let pieces: Vec<(&[f32], &mut [f32])> = x.chunks(PIECE).zip(out.chunks_mut(PIECE)).collect();
    // An elementwise op is worth a thread per 2^20 elements (as an op's multiply-adds).
    let threads = super::parallel::threads_for(x.len() as f64);
    super::parallel::for_each_share(pieces, threads, |share| {
        for (x, out) in share {
            match act {
                Some(act) => {
                    out.iter_mut().zip(x).for_each(|(o, &v)| *o = v * a + b);
                    activation::apply_row(act, out, None);
                }
                None => out.iter_mut().zip(x).for_each(|(o, &v)| *o = unary_one(op, v * a + b)),
            }
        }
    });
}

/// `f(x, y)` for one pair.
pub fn binary_one(op: Binary, x: f32, y: f32) -> f32 {
    match op {
        Binary::Add => x + y,
        Binary::Sub => x - y,
        Binary::Mul => x * y,
        Binary::Div => x / y,
        Binary::Max => x.max(y),
        Binary::Min => x.min(y),
        Binary::Pow => x.powf(y),
    }
}

/// `out = f(a, b)` over the broadcast of their shapes.
pub fn binary(op: Binary, a: &[f32], a_shape: &[usize], b: &[f32], b_shape: &[usize]) -> Result<Vec<f32>> {
    crate::delegate::elementwise::check_len("binary a", a_shape, a.len())?;
    crate::delegate::elementwise::check_len("binary b", b_shape, b.len())?;
    let len = Broadcast::new(a_shape, b_shape)?.len();
    let mut out = vec![0f32; len];
    binary_into(op, a, a_shape, b, b_shape, &mut out)?;
    Ok(out)
}

/// [`binary`] into `out`, which must hold the broadcast's elements.
pub fn binary_into(
    op: Binary,
    a: &[f32],
    a_shape: &[usize],
    b: &[f32],
    b_shape: &[usize],
    out: &mut [f32],
) -> Result<()> {
    crate::delegate::elementwise::check_len("binary a", a_shape, a.len())?;
    crate::delegate::elementwise::check_len("binary b", b_shape, b.len())?;
    let bc = Broadcast::new(a_shape, b_shape)?;
    crate::delegate::elementwise::check_len("binary output", &bc.shape, out.len())?;
    // One monomorphic loop per op, so the inner loops vectorise.
    match op {
        Binary::Add => broadcast(&bc, a, b, out, |x, y| x + y),
        Binary::Sub => broadcast(&bc, a, b, out, |x, y| x - y),
        Binary::Mul => broadcast(&bc, a, b, out, |x, y| x * y),
        Binary::Div => broadcast(&bc, a, b, out, |x, y| x / y),
        Binary::Max => broadcast(&bc, a, b, out, f32::max),
        Binary::Min => broadcast(&bc, a, b, out, f32::min),
        Binary::Pow => broadcast(&bc, a, b, out, f32::powf),
    }
    Ok(())
}

/// Dimensions merged where both operands step through them as one (their
/// strides chain), so rows are as long as they can be.
fn coalesce(shape: &[usize], sa: &[usize], sb: &[usize]) -> Vec<(usize, usize, usize)> {
    let mut dims: Vec<(usize, usize, usize)> = Vec::with_capacity(shape.len());
    for ((&n, &a), &b) in shape.iter().zip(sa).zip(sb) {
        if n == 1 {
            continue;
        }
        match dims.last_mut() {
            Some(last) if last.1 == a * n && last.2 == b * n => *last = (last.0 * n, a, b),
            _ => dims.push((n, a, b)),
        }
    }
    if dims.is_empty() {
        dims.push((1, 0, 0));
    }
    dims
}

fn broadcast(bc: &Broadcast, a: &[f32], b: &[f32], out: &mut [f32], f: impl Fn(f32, f32) -> f32) {
    if bc.is_empty() {
        return; // a zero-length dimension: nothing to compute (found by the session fuzzer)
    }
    let dims = coalesce(&bc.shape, &bc.a_strides, &bc.b_strides);
    let (&(inner, ia_step, ib_step), outer) = dims.split_last().expect("at least one dimension");
    let mut index = vec![0usize; outer.len()];
    let (mut ia, mut ib) = (0usize, 0usize);
    for row in out.chunks_exact_mut(inner) {
        match (ia_step, ib_step) {
            (1, 1) => {
                row.iter_mut().zip(&a[ia..ia + inner]).zip(&b[ib..ib + inner]).for_each(|((o, &x), &y)| *o = f(x, y))
            }
            (1, 0) => row.iter_mut().zip(&a[ia..ia + inner]).for_each(|(o, &x)| *o = f(x, b[ib])),
            (0, 1) => row.iter_mut().zip(&b[ib..ib + inner]).for_each(|(o, &y)| *o = f(a[ia], y)),
            _ => row.iter_mut().enumerate().for_each(|(i, o)| *o = f(a[ia + i * ia_step], b[ib + i * ib_step])),
        }
        // Odometer over the outer dimensions, keeping the operand offsets in step.
        for (d, &(n, sa, sb)) in outer.iter().enumerate().rev() {
            index[d] += 1;
            ia += sa;
            ib += sb;
            if index[d] < n {
                break;
            }
            ia -= sa * n;
            ib -= sb * n;
            index[d] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_over_a_zero_length_dimension_gives_nothing() {
        // [0, 3] with [1, 3] (the session fuzzer's crash: a division by the empty inner length).
        let out = binary(Binary::Add, &[], &[0, 3], &[1.0, 2.0, 3.0], &[1, 3]).unwrap();
        assert!(out.is_empty());
        let out = binary(Binary::Mul, &[1.0, 2.0], &[2, 1], &[], &[2, 0]).unwrap();
        assert!(out.is_empty());
    }
}
