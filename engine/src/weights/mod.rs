//! Safetensors checkpoints, validated and streamed.
//!
//! [`Checkpoint::open`] takes a file, a sharded folder, an index file or a URL
//! of any of these; it reads and validates every header (never data) up
//! front, then reads tensors on request through a bounded window, converting
//! to the caller's dtype on the way ([`Checkpoint::read_f32`], [`Checkpoint::read_f16`]).

pub mod checkpoint;
pub mod convert;
pub mod dtype;
pub mod header;
pub mod index;
pub mod integrity;
pub(crate) mod json;
pub mod quant;
pub mod source;
pub mod writer;

pub use checkpoint::{Checkpoint, Shard, TensorRef};
pub use convert::Stats;
pub use dtype::Dtype;
pub use header::{Header, HeaderError, TensorInfo};
pub use index::{Index, IndexError};
pub use integrity::Manifest;
#[cfg(not(target_arch = "wasm32"))]
pub use source::MmapSource;
pub use source::{BytesSource, HttpClient, HttpSource, Progress, Source};
#[cfg(target_arch = "wasm32")]
pub use source::{cached_bytes, clear_cache, resolve_url};
