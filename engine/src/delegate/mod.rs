//! Delegates: where ops run. The GPU delegate dispatches the WGSL kernels of
//! `kinema-shaders` through wgpu; the CPU delegate runs the same ops on the
//! host, and is the reference the GPU kernels are tested against.

pub mod cpu;
pub mod gpu;

mod attention;
pub mod choice;
mod conv;
pub mod elementwise;
pub mod layout;
mod matmul;
mod norm;
mod rotary;

pub use attention::Attention;
pub use choice::DeviceChoice;
pub use conv::Conv3d;
pub use elementwise::{Binary, Broadcast, Unary};
pub use layout::CopyPlan;
pub use matmul::Matmul;
pub use norm::{Norm, NormKind, Reduce, ReduceOp, Softmax};
pub use rotary::Rotary;

/// A read-only operand stored as f32, or as f16 (weights at half the memory;
/// kernels widen to f32 and accumulate in f32).
#[derive(Debug, Clone, Copy)]
pub enum Operand<'a> {
    F32(&'a [f32]),
    F16(&'a [half::f16]),
}

impl Operand<'_> {
    pub fn len(&self) -> usize {
        match self {
            Operand::F32(x) => x.len(),
            Operand::F16(x) => x.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Elements `range` (which must lie inside).
    pub fn slice(&self, range: std::ops::Range<usize>) -> Self {
        match self {
            Operand::F32(x) => Operand::F32(&x[range]),
            Operand::F16(x) => Operand::F16(&x[range]),
        }
    }

    /// The raw little-endian bytes.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Operand::F32(x) => bytemuck::cast_slice(x),
            Operand::F16(x) => bytemuck::cast_slice(x),
        }
    }
}

impl<'a> From<&'a [f32]> for Operand<'a> {
    fn from(x: &'a [f32]) -> Self {
        Operand::F32(x)
    }
}

impl<'a> From<&'a Vec<f32>> for Operand<'a> {
    fn from(x: &'a Vec<f32>) -> Self {
        Operand::F32(x)
    }
}

impl<'a> From<&'a [half::f16]> for Operand<'a> {
    fn from(x: &'a [half::f16]) -> Self {
        Operand::F16(x)
    }
}

impl<'a> From<&'a Vec<half::f16>> for Operand<'a> {
    fn from(x: &'a Vec<half::f16>) -> Self {
        Operand::F16(x)
    }
}

/// An activation fused into a kernel's epilogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Activation {
    #[default]
    None,
    Relu,
    Silu,
    /// GELU with the tanh approximation (PyTorch `approximate="tanh"`).
    GeluTanh,
    /// Exact GELU, `0.5·x·(1 + erf(x/√2))`.
    GeluErf,
}

impl Activation {
    /// The code the WGSL kernels switch on.
    pub const fn code(self) -> u32 {
        match self {
            Activation::None => 0,
            Activation::Relu => 1,
            Activation::Silu => 2,
            Activation::GeluTanh => 3,
            Activation::GeluErf => 4,
        }
    }
}
