//! The GPU delegate: wgpu device set-up and the dispatch of each kernel of
//! `kinema-shaders`.

pub mod device;
pub mod matmul;

pub use device::GpuDevice;
