//! Sharded checkpoints: the `*.safetensors.index.json` that diffusers and
//! transformers write beside their shards.
//!
//! ```json
//! {"metadata": {"total_size": 123}, "weight_map": {"blocks.0.attn.to_q.weight": "model-00001-of-00002.safetensors"}}
//! ```
//!
//! The index is untrusted input: every shard path must stay inside the
//! checkpoint's folder (or URL prefix), and every tensor it maps must be in
//! the shard it names (checked once the shards are opened).

use std::collections::BTreeMap;

use serde_json::Value;
use serde_json::value::RawValue;
use thiserror::Error;

use super::json::{UniqueMap, duplicate_key};

/// The largest index accepted: the same 100 MB bound as a header.
pub const MAX_INDEX_LEN: u64 = 100_000_000;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum IndexError {
    #[error("index is {len} bytes, over the 100 MB limit")]
    TooLarge { len: u64 },
    #[error("index is not valid JSON: {0}")]
    NotJson(String),
    #[error("index key {0:?} appears twice")]
    DuplicateKey(String),
    #[error("index has no \"weight_map\" object")]
    MissingWeightMap,
    #[error("index \"metadata\" must be an object")]
    BadMetadata,
    #[error("weight_map entry {tensor:?} must be a shard file name (a string)")]
    BadEntry { tensor: String },
    #[error(
        "shard path {path:?} is not a plain relative path inside the checkpoint (no \"..\", no absolute paths, no URL syntax)"
    )]
    UnsafePath { path: String },
    #[error("shard {shard:?} named by the index cannot be opened: {reason}")]
    MissingShard { shard: String, reason: String },
    #[error("tensor {tensor:?} is mapped to shard {shard:?}, which does not hold it")]
    TensorNotInShard { tensor: String, shard: String },
}

/// A parsed index: which shard holds each tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Index {
    /// Tensor name → shard file, relative to the index's folder.
    pub weight_map: BTreeMap<String, String>,
    /// The index's `metadata` object (diffusers writes `total_size`).
    pub metadata: serde_json::Map<String, Value>,
    /// The distinct shard files, sorted.
    pub shards: Vec<String>,
}

/// Parses and checks an index (paths included; shards are not opened here).
pub fn parse_index(bytes: &[u8]) -> Result<Index, IndexError> {
    if bytes.len() as u64 > MAX_INDEX_LEN {
        return Err(IndexError::TooLarge { len: bytes.len() as u64 });
    }
    let dup_or = |other: fn(serde_json::Error) -> IndexError| {
        move |e: serde_json::Error| match duplicate_key(&e) {
            Some(k) => IndexError::DuplicateKey(k),
            None => other(e),
        }
    };
    let UniqueMap(top) = serde_json::from_slice::<UniqueMap<&RawValue>>(bytes)
        .map_err(dup_or(|e| IndexError::NotJson(e.to_string())))?;
    let mut metadata = serde_json::Map::new();
    let mut weight_map = None;
    for (key, raw) in top {
        match key.as_str() {
            "metadata" => match serde_json::from_str(raw.get()) {
                Ok(Value::Object(m)) => metadata = m,
                Ok(Value::Null) => {}
                _ => return Err(IndexError::BadMetadata),
            },
            "weight_map" => weight_map = Some(raw),
            _ => {}
        }
    }
    let weight_map = weight_map.ok_or(IndexError::MissingWeightMap)?;
    let UniqueMap(entries) =
        serde_json::from_str::<UniqueMap<Value>>(weight_map.get()).map_err(dup_or(|_| IndexError::MissingWeightMap))?;

    let mut map = BTreeMap::new();
    let mut shards = std::collections::BTreeSet::new();
    for (tensor, value) in entries {
        let Value::String(shard) = value else {
            return Err(IndexError::BadEntry { tensor });
        };
        check_relative_path(&shard)?;
        shards.insert(shard.clone());
        map.insert(tensor, shard);
    }
    let shards: Vec<String> = shards.into_iter().collect();
    Ok(Index { weight_map: map, metadata, shards })
}

/// Accepts only plain relative paths: `name.safetensors` or `sub/name.safetensors`.
///
/// Refused: empty names, absolute paths, `..` components, backslashes, drive
/// letters and URL syntax (`:`, `%`, `?`, `#`), and control characters — any of
/// which could make a joined path or URL point outside the checkpoint.
pub fn check_relative_path(path: &str) -> Result<(), IndexError> {
    let unsafe_path = || IndexError::UnsafePath { path: path.to_string() };
    if path.is_empty() || path.starts_with('/') {
        return Err(unsafe_path());
    }
    if path.chars().any(|c| matches!(c, '\\' | ':' | '%' | '?' | '#') || c.is_control()) {
        return Err(unsafe_path());
    }
    if path.split('/').any(|part| part.is_empty() || part == "..") {
        return Err(unsafe_path());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths() {
        for ok in ["a.safetensors", "sub/a.safetensors", "./a.safetensors", "a..b.safetensors"] {
            assert_eq!(check_relative_path(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../a.safetensors",
            "sub/../../a",
            "a\\b",
            "C:x",
            "http://evil/a",
            "%2e%2e/a",
            "a?x",
            "a#b",
            "a\u{0}b",
            "sub//a",
            "sub/",
        ] {
            assert!(matches!(check_relative_path(bad), Err(IndexError::UnsafePath { .. })), "{bad:?}");
        }
    }
}
