//! The video diffusion loop. Today: the flow-matching schedulers, ported
//! from diffusers and matched to it step for step.

pub mod scheduler;

pub use scheduler::{Scheduler, SchedulerConfig};
