//! The video diffusion loop: flow-matching schedulers ported from diffusers
//! and matched step for step, and the text-to-video pipeline that drives the
//! transformer and VAE programs with them.

pub mod pipeline;
pub mod scheduler;

pub use pipeline::{Manifest, Pipeline, Request, Video};
pub use scheduler::{Scheduler, SchedulerConfig};
