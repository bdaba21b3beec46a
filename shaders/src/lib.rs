//! Kinema's WGSL kernels. Each kernel is a real `.wgsl` file beside this one,
//! listed in [`CATALOG`] and validated by naga in `cargo test`; tile sizes are
//! `override` constants that the GPU delegate sets per pipeline.

/// A WGSL kernel: its name, source text, and compute entry point.
#[derive(Debug, Clone, Copy)]
pub struct Kernel {
    pub name: &'static str,
    pub source: &'static str,
    pub entry: &'static str,
}

/// Batched matmul with transposed operands and a fused bias + activation epilogue.
pub const MATMUL: Kernel = Kernel { name: "matmul", source: include_str!("matmul.wgsl"), entry: "main" };

/// Every kernel this crate ships.
pub const CATALOG: &[Kernel] = &[MATMUL];
