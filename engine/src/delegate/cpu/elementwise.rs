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
        Unary::Sigmoid => 1.0 / (1.0 + (-v).exp()),
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
    x.iter().map(|&v| unary_one(op, v * a + b)).collect()
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
    let bc = Broadcast::new(a_shape, b_shape)?;
    let mut out = Vec::with_capacity(bc.len());
    // The same-shape case is a zip; otherwise walk the output index.
    if a_shape == b_shape {
        out.extend(a.iter().zip(b).map(|(&x, &y)| binary_one(op, x, y)));
        return Ok(out);
    }
    let rank = bc.shape.len();
    let mut index = vec![0usize; rank];
    let (mut ia, mut ib) = (0usize, 0usize);
    for _ in 0..bc.len() {
        out.push(binary_one(op, a[ia], b[ib]));
        // Odometer increment, keeping the operand offsets in step.
        for d in (0..rank).rev() {
            index[d] += 1;
            ia += bc.a_strides[d];
            ib += bc.b_strides[d];
            if index[d] < bc.shape[d] {
                break;
            }
            ia -= bc.a_strides[d] * index[d];
            ib -= bc.b_strides[d] * index[d];
            index[d] = 0;
        }
    }
    Ok(out)
}
