//! Kinema in the browser. This crate is the wasm-bindgen API of the `kinema`
//! npm package; today it exposes checkpoint inspection over HTTP range
//! requests, and grows with the runtime and the pipeline.

use kinema_engine::weights::Checkpoint;
use wasm_bindgen::prelude::*;

/// Opens the safetensors checkpoint at `url` (a file, an index, or a folder)
/// with HTTP range requests and returns a JSON summary: its tensors (name,
/// dtype, shape, shard, bytes) and total bytes. Only headers are fetched.
#[wasm_bindgen(js_name = inspectCheckpoint)]
pub async fn inspect_checkpoint(url: String) -> Result<String, JsError> {
    let ckpt = Checkpoint::open(&url).await.map_err(|e| JsError::new(&e.to_string()))?;
    let tensors: Vec<serde_json::Value> = ckpt
        .tensors()
        .map(|t| {
            serde_json::json!({
                "name": t.name,
                "dtype": t.info.dtype.name(),
                "shape": t.info.shape,
                "shard": t.shard.file,
                "bytes": t.info.byte_len(),
            })
        })
        .collect();
    Ok(serde_json::json!({"tensors": tensors, "total_bytes": ckpt.total_bytes()}).to_string())
}
