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

/// Checks that the buffer a kernel writes into holds exactly its `len` outputs.
pub(crate) fn check_out(kernel: &str, out: &[f32], len: usize) -> crate::Result<()> {
    if out.len() == len {
        Ok(())
    } else {
        Err(crate::Error::Invalid(format!("{kernel}: an output of {} values for {len}", out.len())))
    }
}
