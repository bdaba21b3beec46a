//! Kinema's engine: checkpoints, programs, plans, delegates, the runtime and
//! the video diffusion loop. See `DESIGN.md` at the repository root for the map.
//!
//! Today: [`weights`], validated safetensors checkpoints streamed from disk,
//! memory or HTTP; and the first op of [`delegate`], matmul, on the GPU and
//! the CPU.

pub mod delegate;
pub mod error;
pub mod random;
pub mod weights;

pub use error::{Error, Result};
