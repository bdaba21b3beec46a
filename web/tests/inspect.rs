//! The npm package's `inspectCheckpoint`, in headless Chromium, against the
//! fixture server (see `engine/tests/web_fetch.rs`).
#![cfg(target_arch = "wasm32")]

use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const GOLDEN: &str = include_str!("../../tests/fixtures/weights/golden.json");

#[path = "../../engine/tests/web_support/mod.rs"]
mod web_support;
use web_support::base;

#[wasm_bindgen_test]
async fn inspect_checkpoint_lists_the_tensors_of_a_sharded_folder() {
    let golden: serde_json::Value = serde_json::from_str(GOLDEN).unwrap();
    let golden = golden["wan_transformer_sharded"].as_object().unwrap();
    let json = kinema_web::inspect_checkpoint(format!("{}weights/wan_transformer_sharded/", base())).await.unwrap();
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    let tensors = report["tensors"].as_array().unwrap();
    assert_eq!(tensors.len(), golden.len());
    for t in tensors {
        let g = &golden[t["name"].as_str().unwrap()];
        assert_eq!((&t["dtype"], &t["shape"]), (&g["dtype"], &g["shape"]));
    }
    let total: u64 = tensors.iter().map(|t| t["bytes"].as_u64().unwrap()).sum();
    assert_eq!(report["total_bytes"].as_u64(), Some(total));
}

#[wasm_bindgen_test]
async fn a_bad_url_is_a_js_error_with_the_url() {
    let url = format!("{}weights/missing/", base());
    let err = kinema_web::inspect_checkpoint(url.clone()).await.expect_err("an error");
    let err: wasm_bindgen::JsValue = err.into();
    let message = js_sys::Reflect::get(&err, &"message".into()).unwrap().as_string().unwrap();
    assert!(message.contains(&url) && message.contains("no checkpoint here"), "{message}");
}
