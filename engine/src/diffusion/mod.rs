//! The video diffusion loop: flow-matching schedulers ported from diffusers
//! and matched step for step, the text-to-video pipeline that drives the
//! transformer and VAE programs with them, the folders pipelines are read
//! from, and the text encoders: a tokenizer with an exported encoder program
//! (umT5), and the embedded model's word table.

pub mod folder;
pub mod pipeline;
pub mod scheduler;
pub mod text;
pub mod vae;

pub use folder::Folder;
pub use pipeline::{Manifest, Pipeline, Request, TextKind, Video};
pub use scheduler::{Scheduler, SchedulerConfig};
pub use text::{ProgramEncoder, Tokenizer, Tokens, WordTable};
pub use vae::{Frames, VaeDecoder};
