//! Kinema's engine: checkpoints, programs, plans, delegates, the runtime and
//! the video diffusion loop. See `DESIGN.md` at the repository root for the map.
//!
//! This release holds the foundation: [`weights`], validated safetensors
//! checkpoints streamed from disk, memory or HTTP.

pub mod error;
pub mod weights;

pub use error::{Error, Result};
