//! Delegates: where ops run. The GPU delegate dispatches the WGSL kernels of
//! `kinema-shaders` through wgpu; the CPU delegate runs the same ops on the
//! host, and is the reference the GPU kernels are tested against.

pub mod cpu;
pub mod gpu;

mod attention;
pub mod choice;
mod conv;
pub mod elementwise;
mod gather;
pub mod layout;
mod matmul;
mod norm;
mod rotary;

pub use attention::Attention;
pub use choice::DeviceChoice;
pub use conv::Conv3d;
pub use elementwise::{Binary, Broadcast, Unary};
pub use gather::Gather;
pub use layout::CopyPlan;
pub use matmul::Matmul;
pub use norm::{Norm, NormKind, Reduce, ReduceOp, Softmax};
pub use rotary::Rotary;

/// A read-only operand: f32 values, or a weight in its stored 16-bit float
/// dtype — little-endian bytes at any alignment (in place in a memory map, say).
/// Kernels widen to f32 as they load and accumulate in f32.
#[derive(Debug, Clone, Copy)]
pub enum Operand<'a> {
    F32(&'a [f32]),
    Half(Half, &'a [u8]),
    /// Weight-only int8 (`weights::quant`): `q` the stored bytes, one scale
    /// per stored row (`value = q · scales[row]`).
    Int8 {
        q: &'a [u8],
        scales: &'a [f32],
    },
    /// Weight-only int4 (`weights::quant`): `q` two values per byte (low nibble
    /// first, `q + 8`), `scales` one per `group` values of each stored row
    /// (`[rows, ⌈row_len / group⌉]`).
    Int4 {
        q: &'a [u8],
        scales: &'a [f32],
        group: usize,
    },
}

/// The 16-bit float dtypes weights stay in: f16 and bf16 (Wan's checkpoints).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Half {
    F16,
    Bf16,
}

impl Half {
    pub fn of(dtype: crate::weights::dtype::Dtype) -> Option<Half> {
        use crate::weights::dtype::Dtype;
        match dtype {
            Dtype::F16 => Some(Half::F16),
            Dtype::BF16 => Some(Half::Bf16),
            _ => None,
        }
    }

    pub fn dtype(self) -> crate::weights::dtype::Dtype {
        use crate::weights::dtype::Dtype;
        match self {
            Half::F16 => Dtype::F16,
            Half::Bf16 => Dtype::BF16,
        }
    }

    /// The code the matmul kernels switch on (`B_HALF`; 0 is f32).
    pub const fn code(self) -> u32 {
        match self {
            Half::F16 => 1,
            Half::Bf16 => 2,
        }
    }
}

impl Operand<'_> {
    pub fn len(&self) -> usize {
        match self {
            Operand::F32(x) => x.len(),
            Operand::Half(_, x) => x.len() / 2,
            Operand::Int8 { q, .. } => q.len(),
            Operand::Int4 { q, .. } => q.len() * 2,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The 16-bit dtype, if not f32.
    pub fn half(&self) -> Option<Half> {
        match self {
            Operand::F32(_) | Operand::Int8 { .. } | Operand::Int4 { .. } => None,
            Operand::Half(h, _) => Some(*h),
        }
    }

    /// The raw little-endian bytes.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Operand::F32(x) => bytemuck::cast_slice(x),
            Operand::Half(_, x) | Operand::Int8 { q: x, .. } | Operand::Int4 { q: x, .. } => x,
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
        Operand::Half(Half::F16, bytemuck::cast_slice(x))
    }
}

impl<'a> From<&'a Vec<half::f16>> for Operand<'a> {
    fn from(x: &'a Vec<half::f16>) -> Self {
        Operand::Half(Half::F16, bytemuck::cast_slice(x))
    }
}

impl<'a> From<&'a [half::bf16]> for Operand<'a> {
    fn from(x: &'a [half::bf16]) -> Self {
        Operand::Half(Half::Bf16, bytemuck::cast_slice(x))
    }
}

impl<'a> From<&'a Vec<half::bf16>> for Operand<'a> {
    fn from(x: &'a Vec<half::bf16>) -> Self {
        Operand::Half(Half::Bf16, bytemuck::cast_slice(x))
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
