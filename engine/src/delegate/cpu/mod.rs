//! The CPU delegate: the ops on the host, for machines and browsers without
//! a GPU, and the reference the GPU kernels are checked against.

pub mod activation;
pub mod attention;
pub mod conv;
pub mod elementwise;
pub mod gather;
pub mod gemm;
pub mod layout;
pub mod matmul;
pub mod norm;
pub mod parallel;
pub mod rotary;
