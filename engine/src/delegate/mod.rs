//! Delegates: where ops run. The GPU delegate dispatches the WGSL kernels of
//! `kinema-shaders` through wgpu; the CPU delegate runs the same ops on the
//! host, and is the reference the GPU kernels are tested against.

pub mod cpu;
pub mod gpu;

mod attention;
mod conv;
pub mod elementwise;
pub mod layout;
mod matmul;
mod norm;
mod rotary;

pub use attention::Attention;
pub use conv::Conv3d;
pub use elementwise::{Binary, Broadcast, Unary};
pub use layout::CopyPlan;
pub use matmul::Matmul;
pub use norm::{Norm, NormKind, Reduce, ReduceOp, Softmax};
pub use rotary::Rotary;

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
