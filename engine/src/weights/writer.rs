//! Writing safetensors files, streamed: the header is computed from names,
//! dtypes and shapes alone, and the data is written after it piece by piece.

use std::collections::BTreeMap;

use super::dtype::Dtype;

/// A tensor to be written.
#[derive(Debug, Clone)]
pub struct TensorSpec {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<u64>,
}

impl TensorSpec {
    pub fn new(name: impl Into<String>, dtype: Dtype, shape: &[u64]) -> Self {
        TensorSpec { name: name.into(), dtype, shape: shape.to_vec() }
    }

    pub fn byte_len(&self) -> u64 {
        self.shape.iter().product::<u64>() * self.dtype.size() as u64
    }
}

/// The bytes that start a safetensors file holding `tensors` in this order:
/// the 8-byte length and the JSON header, padded with spaces so the data
/// section starts 8-byte aligned (as the reference writer does). The data of
/// each tensor, little-endian, follows in the same order.
pub fn header_bytes(tensors: &[TensorSpec], metadata: &BTreeMap<String, String>) -> Vec<u8> {
    let mut map = serde_json::Map::new();
    if !metadata.is_empty() {
        map.insert("__metadata__".into(), serde_json::to_value(metadata).expect("strings serialise"));
    }
    let mut offset = 0u64;
    for t in tensors {
        let end = offset + t.byte_len();
        map.insert(
            t.name.clone(),
            serde_json::json!({"dtype": t.dtype.name(), "shape": t.shape, "data_offsets": [offset, end]}),
        );
        offset = end;
    }
    let mut json = serde_json::to_vec(&map).expect("a JSON map serialises");
    while !json.len().is_multiple_of(8) {
        json.push(b' ');
    }
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&json);
    out
}

/// A whole file in memory (for small files and tests).
pub fn to_bytes(tensors: &[(TensorSpec, &[u8])], metadata: &BTreeMap<String, String>) -> Vec<u8> {
    let specs: Vec<TensorSpec> = tensors.iter().map(|(s, _)| s.clone()).collect();
    let mut out = header_bytes(&specs, metadata);
    for (spec, data) in tensors {
        assert_eq!(data.len() as u64, spec.byte_len(), "data of {} does not match its shape", spec.name);
        out.extend_from_slice(data);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::weights::header::parse_file;

    #[test]
    fn written_files_parse_back() {
        let a: Vec<u8> = (0..24).collect();
        let meta = BTreeMap::from([("format".to_string(), "pt".to_string())]);
        let file = to_bytes(
            &[(TensorSpec::new("a", Dtype::F32, &[2, 3]), &a), (TensorSpec::new("e", Dtype::I8, &[0]), &[])],
            &meta,
        );
        let h = parse_file(&file).unwrap();
        assert_eq!(h.data_start() % 8, 0);
        assert_eq!(h.metadata, meta);
        assert_eq!(h.tensors.len(), 2);
        assert_eq!(h.tensors[0].shape, vec![2, 3]);
        assert_eq!(&file[h.data_start() as usize..], &a[..]);
    }
}
