//! Checkpoints over `fetch` with `Range`, inside headless Chromium.
//!
//! `scripts/test.sh` starts `fixture-server` (the test fixtures plus a 4 MiB
//! generated file, with CORS and a request log at `/__log`) and passes its URL
//! in `KINEMA_FIXTURES_URL` when building these tests.
#![cfg(target_arch = "wasm32")]

use kinema_engine::Error;
use kinema_engine::weights::source::http::PREFIX_LEN;
use kinema_engine::weights::{Checkpoint, HttpClient, HttpSource, Source};
use sha2::{Digest, Sha256};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const GOLDEN: &str = include_str!("../../tests/fixtures/weights/golden.json");

mod web_support;
use web_support::base;

/// The server's log of the requests whose path starts with `prefix`. (The
/// log endpoint ignores `Range`; a small enough answer is still accepted.)
async fn requests(prefix: &str) -> Vec<serde_json::Value> {
    let source = HttpSource::open(&format!("{}__log", base()), &HttpClient::default()).await.unwrap();
    let mut bytes = vec![0u8; source.len() as usize];
    source.read_at(0, &mut bytes).await.unwrap();
    let log: Vec<serde_json::Value> = serde_json::from_slice(&bytes).unwrap();
    log.into_iter().filter(|l| l["path"].as_str().unwrap().starts_with(prefix)).collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[wasm_bindgen_test]
async fn a_sharded_checkpoint_over_fetch_matches_the_golden() {
    let golden: serde_json::Value = serde_json::from_str(GOLDEN).unwrap();
    let golden = golden["wan_vae_sharded"].as_object().unwrap();
    let ckpt = Checkpoint::open(&format!("{}weights/wan_vae_sharded/", base())).await.unwrap();
    assert_eq!(ckpt.shards().len(), 3);
    assert_eq!(ckpt.len(), golden.len());
    for t in ckpt.tensors() {
        let g = &golden[t.name];
        assert_eq!(t.info.dtype.name(), g["dtype"]);
        let mut bytes = vec![0u8; t.info.byte_len() as usize];
        ckpt.read_bytes(t.name, &mut bytes).await.unwrap();
        assert_eq!(hex(&Sha256::digest(&bytes)), g["sha256"], "{}", t.name);
    }
    // The index and one ranged request per shard: every tensor lay in the
    // prefix each shard's first request fetched.
    let log = requests("weights/wan_vae_sharded/").await;
    assert_eq!(log.len(), 4, "{log:?}");
    assert!(log.iter().all(|l| l["range"].is_array()), "{log:?}");
}

#[wasm_bindgen_test]
async fn a_tensor_beyond_the_prefix_is_one_exact_range_request() {
    let ckpt = Checkpoint::open(&format!("{}generated/big.safetensors", base())).await.unwrap();
    let t = ckpt.get("b_big").unwrap();
    let start = t.shard.header.data_start() + t.info.data_offsets.0;
    let mut bytes = vec![0u8; t.info.byte_len() as usize];
    ckpt.read_bytes("b_big", &mut bytes).await.unwrap();
    assert!(bytes.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));
    let log = requests("generated/big.safetensors").await;
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(log[0]["range"], serde_json::json!([0, PREFIX_LEN - 1]));
    assert_eq!(log[1]["range"], serde_json::json!([start, start + t.info.byte_len() - 1]));
    assert_eq!(log[1]["sent"], t.info.byte_len());
}

#[wasm_bindgen_test]
async fn a_missing_file_is_a_clear_error() {
    let url = format!("{}weights/nope.safetensors", base());
    let err = Checkpoint::open(&url).await.err().unwrap();
    assert!(matches!(err, Error::Http { .. }) && err.to_string().contains("404"), "{err}");
    assert!(err.to_string().starts_with(&url), "{err}");
}
