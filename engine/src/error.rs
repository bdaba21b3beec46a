//! The engine's one error type. Every message names the file or URL it is
//! about and says what is wrong, on one line.

use thiserror::Error;

use crate::weights::header::HeaderError;
use crate::weights::index::IndexError;

#[derive(Debug, Error)]
pub enum Error {
    /// A safetensors header broke a rule of the format.
    #[error("{file}: {source}")]
    Header { file: String, source: HeaderError },
    /// A sharded checkpoint's index is wrong or unsafe.
    #[error("{file}: {source}")]
    Index { file: String, source: IndexError },
    /// Reading a file failed.
    #[error("{file}: {message}")]
    Io { file: String, message: String },
    /// An HTTP request failed or the server answered something we cannot use.
    #[error("{url}: {message}")]
    Http { url: String, message: String },
    /// A shard's SHA-256 digest is not the one the manifest promises.
    #[error("{file}: SHA-256 mismatch: expected {expected}, got {actual}")]
    DigestMismatch { file: String, expected: String, actual: String },
    /// A digest manifest is malformed or does not cover a shard.
    #[error("{file}: {message}")]
    Manifest { file: String, message: String },
    /// A tensor that the checkpoint does not hold.
    #[error("{checkpoint}: no tensor named {name:?}")]
    UnknownTensor { checkpoint: String, name: String },
    /// The GPU could not be set up or refused work.
    #[error("gpu: {0}")]
    Gpu(String),
    /// A program that breaks a rule of the format, its opset or its shapes.
    #[error("program: {0}")]
    Program(String),
    /// A caller's request that cannot be met (wrong buffer size, conversion).
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    pub fn io(file: impl Into<String>, e: impl std::fmt::Display) -> Error {
        Error::Io { file: file.into(), message: e.to_string() }
    }

    pub(crate) fn http(url: impl Into<String>, message: impl Into<String>) -> Error {
        Error::Http { url: url.into(), message: message.into() }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
