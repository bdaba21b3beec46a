//! The GPU delegate: wgpu device set-up and the dispatch of each WGSL kernel.

pub mod attention;
pub mod conv;
pub mod device;
pub mod matmul;

pub use device::GpuDevice;
