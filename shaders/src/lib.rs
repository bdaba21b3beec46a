//! Kinema's WGSL kernels. Each kernel is a real `.wgsl` file in this crate,
//! exposed through a typed catalog and validated by naga in `cargo test`.
//!
//! The kernels arrive with the kernels-and-delegates issue; until then the
//! catalog is empty.

/// A WGSL kernel: its name and source text.
#[derive(Debug, Clone, Copy)]
pub struct Kernel {
    pub name: &'static str,
    pub source: &'static str,
}

/// Every kernel this crate ships.
pub const CATALOG: &[Kernel] = &[];
