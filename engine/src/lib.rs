//! Kinema's engine: checkpoints, programs, plans, delegates, the runtime and
//! the video diffusion loop. See `DESIGN.md` at the repository root for the map.
//!
//! - [`weights`]: validated safetensors checkpoints streamed from disk, memory or HTTP;
//! - [`delegate`]: the ops, as WGSL kernels on the GPU and their CPU twins;
//! - [`program`]: portable programs exported from PyTorch, validated;
//! - [`plan`]: delegate per node, fusion, the memory arena;
//! - [`runtime`]: sessions that run a program with its checkpoint.

pub mod clock;
pub mod delegate;
pub mod diffusion;
pub mod error;
pub mod plan;
pub mod program;
pub mod random;
pub mod runtime;
pub mod weights;

pub use error::{Error, Result};
