//! The safetensors header: parsed and validated from the header bytes alone.
//!
//! A safetensors file is `u64 LE n`, then `n` bytes of UTF-8 JSON, then the data
//! section. The reference implementation validates a header only against the
//! whole file in memory; here every rule is checked from the header plus the
//! file's length, so a checkpoint behind HTTP can be validated before a single
//! data byte is fetched. The rules are the reference's (the `safetensors` crate
//! serves as the differential oracle in the tests and the fuzz target), plus one
//! more: duplicate keys, which the reference lets the last one win, are refused.

use std::collections::BTreeMap;

use serde_json::value::RawValue;
use thiserror::Error;

use super::dtype::Dtype;
use super::json::{UniqueMap, duplicate_key};

/// Bytes of the little-endian header length that starts every file.
pub const LEN_PREFIX: u64 = 8;
/// The largest header accepted (the reference's limit): 100 MB.
pub const MAX_HEADER_LEN: u64 = 100_000_000;

/// Why a header was refused. Each rule of the format has its own variant.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum HeaderError {
    #[error("file is {len} bytes, too short to hold the 8-byte header length")]
    TooShort { len: u64 },
    #[error("header length {len} exceeds the 100 MB limit")]
    TooLarge { len: u64 },
    #[error("header length {len} runs past the end of the file ({file_len} bytes)")]
    PastEnd { len: u64, file_len: u64 },
    #[error("header is not valid UTF-8 (byte {at})")]
    NotUtf8 { at: usize },
    #[error("header is not valid JSON: {0}")]
    NotJson(String),
    #[error("header key {0:?} appears twice")]
    DuplicateKey(String),
    #[error("__metadata__ must be an object of string values: {0}")]
    BadMetadata(String),
    #[error("tensor {tensor:?}: {reason}")]
    BadEntry { tensor: String, reason: String },
    #[error("tensor {tensor:?} has dtype {dtype:?}: unsupported dtype (supported: {})", Dtype::supported_list())]
    UnsupportedDtype { tensor: String, dtype: String },
    #[error("tensor {tensor:?}: shape must be an array of non-negative integers")]
    BadShape { tensor: String },
    #[error("tensor {tensor:?}: data_offsets must be two non-negative integers")]
    BadOffsets { tensor: String },
    #[error("tensor {tensor:?}: shape {shape:?} has more elements than fit in 64 bits")]
    ShapeOverflow { tensor: String, shape: Vec<u64> },
    #[error("tensor {tensor:?}: data_offsets [{start}, {end}] end before they start")]
    ReversedOffsets { tensor: String, start: u64, end: u64 },
    #[error("tensor {tensor:?}: data_offsets span {actual} bytes but its shape and dtype need {expected}")]
    ByteLengthMismatch { tensor: String, expected: u64, actual: u64 },
    #[error(
        "tensor {tensor:?} starts at data byte {start}, leaving a gap after byte {expected}: tensors must be contiguous"
    )]
    Gap { tensor: String, start: u64, expected: u64 },
    #[error("tensor {tensor:?} starts at data byte {start}, overlapping the previous tensor which ends at {expected}")]
    Overlap { tensor: String, start: u64, expected: u64 },
    #[error("tensors cover {covered} bytes but the data section holds {data_len}")]
    DataSizeMismatch { covered: u64, data_len: u64 },
}

/// One tensor's entry in a header. Offsets are relative to the data section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<u64>,
    /// `[start, end)` in the data section.
    pub data_offsets: (u64, u64),
}

impl TensorInfo {
    /// Number of elements (validated not to overflow when the header was parsed).
    pub fn numel(&self) -> u64 {
        self.shape.iter().product()
    }

    /// Bytes of data.
    pub fn byte_len(&self) -> u64 {
        self.data_offsets.1 - self.data_offsets.0
    }
}

/// A validated header: every tensor's extent is known to lie inside the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Length of the JSON part, in bytes.
    pub json_len: u64,
    /// Tensors sorted by their offsets (file order).
    pub tensors: Vec<TensorInfo>,
    /// The `__metadata__` map, if any.
    pub metadata: BTreeMap<String, String>,
}

impl Header {
    /// Absolute file offset at which the data section starts.
    pub fn data_start(&self) -> u64 {
        LEN_PREFIX + self.json_len
    }

    /// Size of the data section.
    pub fn data_len(&self) -> u64 {
        self.tensors.last().map_or(0, |t| t.data_offsets.1)
    }
}

/// Reads the 8-byte prefix and checks that a header of that length fits the
/// limit and the file. Returns the JSON length.
pub fn json_len(prefix: &[u8], file_len: u64) -> Result<u64, HeaderError> {
    let bytes: [u8; 8] = prefix
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or(HeaderError::TooShort { len: file_len.min(prefix.len() as u64) })?;
    let len = u64::from_le_bytes(bytes);
    if len > MAX_HEADER_LEN {
        return Err(HeaderError::TooLarge { len });
    }
    if LEN_PREFIX + len > file_len {
        return Err(HeaderError::PastEnd { len, file_len });
    }
    Ok(len)
}

/// Parses and validates a whole safetensors file held in memory.
pub fn parse_file(file: &[u8]) -> Result<Header, HeaderError> {
    let file_len = file.len() as u64;
    let len = json_len(file, file_len)?;
    let json = &file[LEN_PREFIX as usize..(LEN_PREFIX + len) as usize];
    parse_json(json, file_len - LEN_PREFIX - len)
}

/// Parses and validates the JSON part of a header, given the size of the data
/// section that follows it (file length − 8 − JSON length).
pub fn parse_json(json: &[u8], data_len: u64) -> Result<Header, HeaderError> {
    let text = std::str::from_utf8(json).map_err(|e| HeaderError::NotUtf8 { at: e.valid_up_to() })?;
    let UniqueMap(entries) = serde_json::from_str::<UniqueMap<&RawValue>>(text).map_err(json_error)?;

    let mut metadata = BTreeMap::new();
    let mut tensors = Vec::with_capacity(entries.len());
    for (name, raw) in entries {
        if name == "__metadata__" {
            metadata = parse_metadata(raw)?;
        } else {
            tensors.push(parse_entry(name, raw)?);
        }
    }

    // Sort by offsets (ties by name, so the order is deterministic) and walk
    // the data section: each tensor must start where the previous one ended.
    tensors.sort_by(|a, b| (a.data_offsets, &a.name).cmp(&(b.data_offsets, &b.name)));
    let mut end = 0u64;
    for t in &tensors {
        let (s, e) = t.data_offsets;
        if s > end {
            return Err(HeaderError::Gap { tensor: t.name.clone(), start: s, expected: end });
        }
        if s < end {
            return Err(HeaderError::Overlap { tensor: t.name.clone(), start: s, expected: end });
        }
        end = e;
    }
    if end != data_len {
        return Err(HeaderError::DataSizeMismatch { covered: end, data_len });
    }
    Ok(Header { json_len: json.len() as u64, tensors, metadata })
}

fn json_error(e: serde_json::Error) -> HeaderError {
    match duplicate_key(&e) {
        Some(key) => HeaderError::DuplicateKey(key),
        None => HeaderError::NotJson(e.to_string()),
    }
}

fn parse_metadata(raw: &RawValue) -> Result<BTreeMap<String, String>, HeaderError> {
    if raw.get() == "null" {
        return Ok(BTreeMap::new());
    }
    let UniqueMap(pairs) =
        serde_json::from_str::<UniqueMap<String>>(raw.get()).map_err(|e| HeaderError::BadMetadata(e.to_string()))?;
    Ok(pairs.into_iter().collect())
}

fn parse_entry(name: String, raw: &RawValue) -> Result<TensorInfo, HeaderError> {
    let bad = |reason: &str| HeaderError::BadEntry { tensor: name.clone(), reason: reason.into() };
    let UniqueMap(fields) = serde_json::from_str::<UniqueMap<serde_json::Value>>(raw.get()).map_err(|e| {
        let e = e.to_string();
        bad(&format!("entry must be an object with dtype, shape and data_offsets ({e})"))
    })?;
    let field = |key: &str| fields.iter().find(|(k, _)| k == key).map(|(_, v)| v);

    let dtype = match field("dtype") {
        Some(serde_json::Value::String(s)) => {
            Dtype::parse(s).ok_or_else(|| HeaderError::UnsupportedDtype { tensor: name.clone(), dtype: s.clone() })?
        }
        Some(_) => return Err(bad("dtype must be a string")),
        None => return Err(bad("missing dtype")),
    };
    let shape = match field("shape") {
        Some(v) => u64_array(v).ok_or_else(|| HeaderError::BadShape { tensor: name.clone() })?,
        None => return Err(bad("missing shape")),
    };
    let data_offsets = match field("data_offsets") {
        Some(v) => match u64_array(v).as_deref() {
            Some(&[s, e]) => (s, e),
            _ => return Err(HeaderError::BadOffsets { tensor: name.clone() }),
        },
        None => return Err(bad("missing data_offsets")),
    };

    let (s, e) = data_offsets;
    if e < s {
        return Err(HeaderError::ReversedOffsets { tensor: name, start: s, end: e });
    }
    let bytes = shape
        .iter()
        .try_fold(1u64, |n, &d| n.checked_mul(d))
        .and_then(|n| n.checked_mul(dtype.size() as u64))
        .ok_or_else(|| HeaderError::ShapeOverflow { tensor: name.clone(), shape: shape.clone() })?;
    if e - s != bytes {
        return Err(HeaderError::ByteLengthMismatch { tensor: name, expected: bytes, actual: e - s });
    }
    Ok(TensorInfo { name, dtype, shape, data_offsets })
}

fn u64_array(v: &serde_json::Value) -> Option<Vec<u64>> {
    v.as_array()?.iter().map(serde_json::Value::as_u64).collect()
}
