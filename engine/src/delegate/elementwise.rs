//! Elementwise ops: unary math and broadcasting binary math (NumPy rules).

use crate::error::{Error, Result};

/// The most dimensions an elementwise or layout op handles.
pub const MAX_RANK: usize = 8;

/// `y = f(x·a + b)`; the codes are those of `unary.wgsl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Unary {
    Identity = 0,
    Relu = 1,
    Silu = 2,
    GeluTanh = 3,
    GeluErf = 4,
    Sigmoid = 5,
    Tanh = 6,
    Exp = 7,
    Log = 8,
    Sqrt = 9,
    Rsqrt = 10,
    Abs = 11,
    Neg = 12,
    Square = 13,
    Recip = 14,
    Sin = 15,
    Cos = 16,
}

impl Unary {
    pub const ALL: [Unary; 17] = [
        Unary::Identity,
        Unary::Relu,
        Unary::Silu,
        Unary::GeluTanh,
        Unary::GeluErf,
        Unary::Sigmoid,
        Unary::Tanh,
        Unary::Exp,
        Unary::Log,
        Unary::Sqrt,
        Unary::Rsqrt,
        Unary::Abs,
        Unary::Neg,
        Unary::Square,
        Unary::Recip,
        Unary::Sin,
        Unary::Cos,
    ];
}

/// `out = f(a, b)`; the codes are those of `binary.wgsl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Binary {
    Add = 0,
    Sub = 1,
    Mul = 2,
    Div = 3,
    Max = 4,
    Min = 5,
    Pow = 6,
}

impl Binary {
    pub const ALL: [Binary; 7] =
        [Binary::Add, Binary::Sub, Binary::Mul, Binary::Div, Binary::Max, Binary::Min, Binary::Pow];
}

/// Two shapes broadcast together: the output shape and the element strides
/// through which each operand is read (0 along broadcast dimensions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broadcast {
    pub shape: Vec<usize>,
    pub a_strides: Vec<usize>,
    pub b_strides: Vec<usize>,
}

impl Broadcast {
    /// NumPy broadcasting: shapes align at the last dimension; a dimension of
    /// 1 (or a missing one) stretches.
    pub fn new(a: &[usize], b: &[usize]) -> Result<Broadcast> {
        let rank = a.len().max(b.len());
        if rank > MAX_RANK {
            return Err(Error::Invalid(format!("broadcast {a:?} with {b:?}: more than {MAX_RANK} dimensions")));
        }
        let pad = |s: &[usize]| {
            let mut v = vec![1; rank - s.len()];
            v.extend_from_slice(s);
            v
        };
        let (a, b) = (pad(a), pad(b));
        let mut shape = Vec::with_capacity(rank);
        for (&x, &y) in a.iter().zip(&b) {
            shape.push(match (x, y) {
                (x, y) if x == y => x,
                (1, y) => y,
                (x, 1) => x,
                _ => return Err(Error::Invalid(format!("shapes {a:?} and {b:?} do not broadcast"))),
            });
        }
        shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .ok_or_else(|| Error::Invalid(format!("broadcast of {a:?} and {b:?}: sizes overflow")))?;
        let strides = |s: &[usize]| {
            let mut st = vec![0; rank];
            let mut n = 1;
            for d in (0..rank).rev() {
                st[d] = if s[d] == 1 { 0 } else { n };
                n *= s[d];
            }
            st
        };
        Ok(Broadcast { a_strides: strides(&a), b_strides: strides(&b), shape })
    }

    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Elements of a shape, refusing overflow.
pub fn numel(shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| Error::Invalid(format!("shape {shape:?} overflows")))
}

/// Checks that `data` holds exactly the elements of `shape`.
pub fn check_len(what: &str, shape: &[usize], data: usize) -> Result<()> {
    let n = numel(shape)?;
    if n != data {
        return Err(Error::Invalid(format!("{what}: shape {shape:?} has {n} elements, got {data}")));
    }
    Ok(())
}
