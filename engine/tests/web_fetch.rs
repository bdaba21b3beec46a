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
    // (Other tests read this file too: only this one's requests count.)
    let before = requests("generated/big.safetensors").await.len();
    let ckpt = Checkpoint::open(&format!("{}generated/big.safetensors", base())).await.unwrap();
    let t = ckpt.get("b_big").unwrap();
    let start = t.shard.header.data_start() + t.info.data_offsets.0;
    let mut bytes = vec![0u8; t.info.byte_len() as usize];
    ckpt.read_bytes("b_big", &mut bytes).await.unwrap();
    assert!(bytes.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));
    let log = requests("generated/big.safetensors").await.split_off(before);
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

/// The Cache API keeps a file in chunks, each one range request: a download
/// that stops part-way (here the cache refuses chunk 7, as a dropped
/// connection would leave it) is read to the end by range requests, and the
/// next client fetches only the chunks the cache lacks; the one after, nothing.
#[wasm_bindgen_test]
async fn an_interrupted_cached_download_resumes() {
    const CHUNK: u64 = 64 << 10;
    let name = format!("kinema-resume-{}", js_sys::Math::random());
    let url = format!("{}generated/big.safetensors", base());
    let file_len = HttpSource::open(&url, &HttpClient::default()).await.unwrap().len();
    let read = async |client: &HttpClient| {
        let ckpt = Checkpoint::open_with(&url, client).await.unwrap();
        let mut bytes = vec![0u8; ckpt.get("b_big").unwrap().info.byte_len() as usize];
        ckpt.read_bytes("b_big", &mut bytes).await.unwrap();
        assert!(bytes.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));
    };
    let client = || HttpClient::with_cache(&name).with_cache_chunk(CHUNK);
    let logged = async || requests("generated/big.safetensors").await;
    js_sys::eval(
        "globalThis.__kinemaPut = Cache.prototype.put; Cache.prototype.put = function (key, resp) { \
         return String(key).endsWith('kinema-chunk=7') ? Promise.reject(new TypeError('network error')) \
         : globalThis.__kinemaPut.call(this, key, resp); };",
    )
    .unwrap();
    read(&client()).await;
    js_sys::eval("Cache.prototype.put = globalThis.__kinemaPut;").unwrap();
    let kept = kinema_engine::weights::cached_bytes(&name).await.unwrap();
    assert_eq!(kept, 7 * CHUNK, "chunks 0–6 were kept");
    // A new client (a reload): one request per chunk the cache lacks, none for the rest.
    let before = logged().await.len();
    read(&client()).await;
    let log = logged().await;
    let second = &log[before..];
    assert_eq!(second.len() as u64, (file_len - 7 * CHUNK).div_ceil(CHUNK), "{second:?}");
    assert!(second.iter().all(|l| l["range"][0].as_u64().unwrap() >= 7 * CHUNK), "{second:?}");
    let sent: u64 = second.iter().map(|l| l["sent"].as_u64().unwrap()).sum();
    assert_eq!(sent, file_len - 7 * CHUNK, "the rest of the file, once");
    // And then nothing at all.
    let before = logged().await.len();
    read(&client()).await;
    assert_eq!(logged().await.len(), before);
    assert!(kinema_engine::weights::clear_cache(&name).await.unwrap());
}
