//! The npm package's tuner in headless Chromium (WebGPU on SwiftShader):
//! `pipeline.tune` times the embedded model's shape classes and saves the
//! table in `localStorage`, a new device reads it back, and bad or foreign
//! tables are ignored.
#![cfg(target_arch = "wasm32")]

use kinema_engine::delegate::gpu::{self, GpuDevice, tune};
use kinema_web::Kinema;
use serde_json::Value;
use wasm_bindgen::JsValue;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[path = "../../engine/tests/web_support/mod.rs"]
mod web_support;
use web_support::{base, message, options};

#[wasm_bindgen_test]
async fn tune_saves_a_table_in_local_storage_that_a_new_device_reads() {
    let storage = web_sys::window().unwrap().local_storage().unwrap().unwrap();
    let kinema = Kinema::create(options(&[("device", "gpu".into())])).await.unwrap();
    assert_eq!(kinema.device(), "gpu");
    let url = format!("{}models/wan-shapes", base());
    let pipe = kinema.load_pipeline(url, options(&[("cache", false.into())])).await.unwrap();
    let tuned = pipe.tune(options(&[("budget", 30.0.into()), ("runs", 1.0.into()), ("fresh", true.into())])).await;
    let table: Value = serde_json::from_str(&tuned.unwrap()).unwrap();
    let entries = table["entries"].as_array().unwrap();
    assert!(!entries.is_empty(), "{table}");
    assert_eq!(table["tuned"].as_u64(), Some(entries.len() as u64));
    for e in entries {
        // The default is a candidate: the winner is never slower than it.
        assert!(e["ms"].as_f64().unwrap() <= e["default_ms"].as_f64().unwrap(), "{e}");
        let class = e["class"].as_str().unwrap();
        assert!(e["describe"].as_str().unwrap().starts_with(class.split(' ').next().unwrap()), "{e}");
    }
    let key = table["key"].as_str().expect("saved").to_string();
    assert!(key.starts_with("kinema.tuning/"), "{key}");
    assert!(storage.get_item(&key).unwrap().is_some());
    // The page's device now runs by it, and a new device reads it back whole.
    let in_use: Value = serde_json::from_str(&kinema.tuning()).unwrap();
    assert_eq!(in_use["entries"], table["entries"]);
    let dev = GpuDevice::new().await.unwrap();
    assert_eq!(tune::storage_key(&dev), key);
    // Every static choice is a candidate, so a class whose default won reads back too.
    let wide = kinema_engine::delegate::Conv3d::new(1, 64, 64, [4, 8, 8], [3, 3, 3]);
    assert!(gpu::tuning::conv_candidates(&dev).contains(&gpu::tuning::conv(&dev, &wide)));
    assert!(gpu::tuning::candidates(&dev).contains(&gpu::tuning::matmul(&dev)));
    assert!(gpu::tuning::attention_candidates(&dev).contains(&gpu::tuning::attention(&dev)));
    assert_eq!(tune::load(&dev).to_json(&dev)["entries"], table["entries"]);
    // Tables to ignore: not JSON, another adapter's.
    let mut other = table.clone();
    other["adapter"] = "0000:0000 some other GPU (Metal)".into();
    for text in ["{".to_string(), other.to_string()] {
        storage.set_item(&key, &text).unwrap();
        assert!(tune::load(&dev).entries.is_empty(), "{text}");
    }
    storage.remove_item(&key).unwrap();
    // Bad options and the CPU delegate are clear errors.
    let err = kinema.tune(options(&[("budget", (-1.0).into())])).await.unwrap_err();
    assert!(message(err).contains("budget must be a finite number ≥ 0"));
    let cpu = Kinema::create(options(&[("device", "cpu".into())])).await.unwrap();
    let err = cpu.tune(JsValue::UNDEFINED).await.unwrap_err();
    assert!(message(err).contains("tuning is for WebGPU adapters"));
}

/// `Kinema.create({ precision: "f16" })`: the page's device lets the tuner
/// choose f16 arithmetic where the adapter has `shader-f16` (SwiftShader
/// has not: then no f16 candidate), in a table of its own; a page created
/// after without it is f32 again; another word is an error.
#[wasm_bindgen_test]
async fn an_f16_page_keeps_a_table_of_its_own() {
    use kinema_engine::delegate::choice::shared;
    use kinema_engine::delegate::gpu::tune::Precision;
    let kinema = Kinema::create(options(&[("device", "gpu".into()), ("precision", "f16".into())])).await.unwrap();
    let dev = shared().await.unwrap();
    assert_eq!(dev.precision(), Precision::F16);
    assert!(tune::storage_key(&dev).ends_with(" f16"), "{}", tune::storage_key(&dev));
    let table: Value = serde_json::from_str(&kinema.tuning()).unwrap();
    assert_eq!(table["precision"], "f16");
    let f16 = gpu::tuning::candidates(&dev).iter().any(|c| c.reduced_precision());
    assert_eq!(f16, kinema.features().iter().any(|f| f == "shader-f16"), "{:?}", kinema.features());
    drop(dev);
    let plain = Kinema::create(options(&[("device", "gpu".into())])).await.unwrap();
    assert_eq!(shared().await.unwrap().precision(), Precision::F32);
    let table: Value = serde_json::from_str(&plain.tuning()).unwrap();
    assert_eq!(table["precision"], "f32");
    let err = Kinema::create(options(&[("precision", "f64".into())])).await.err().unwrap();
    assert!(message(err).contains("expected f32 or f16"));
}
