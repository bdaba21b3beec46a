//! The GPU delegate: wgpu device set-up and the dispatch of each WGSL kernel.

pub mod attention;
pub mod cast;
pub mod conv;
pub mod device;
pub mod elementwise;
pub mod gather;
pub mod layout;
pub mod matmul;
pub mod norm;
pub mod rotary;
pub mod tune;
pub mod tuning;

pub use device::{Commands, GpuDevice, Tracked, View};
