//! The real-width Wan transformer in headless Chromium (WebGPU on
//! SwiftShader): Wan2.1-T2V-1.3B's widths — dim 1536, 12 × 128 heads, FFN
//! 8960, text 4096 — with 4 blocks, f16 (423 MB) and int8 (212 MB) weights
//! (scripts/real-width-fixture.sh), read by range requests from the fixture
//! server straight into GPU buffers and run at a 16 × 1 × 4 × 4 latent: its
//! output within 1e-3 of the native CPU delegate's for the same program,
//! weights and inputs, and the wasm memory never more than the README's
//! bound (256 MiB) above what the module held before loading.
#![cfg(target_arch = "wasm32")]

use js_sys::Reflect;
use kinema_engine::weights::Checkpoint;
use kinema_web::Kinema;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[path = "../../engine/tests/web_support/mod.rs"]
mod web_support;
use web_support::{base, inputs_at, options, read_all};

/// The transformer program's inputs.
const WAN_INPUTS: [&str; 3] = ["hidden_states", "timestep", "encoder_hidden_states"];

/// The most the wasm memory may grow while a model loads and runs (README).
const WASM_BOUND: f64 = 256.0 * (1 << 20) as f64;

async fn wasm_bytes(kinema: &Kinema) -> f64 {
    let stats = kinema.stats().await.unwrap();
    Reflect::get(&stats, &"wasmBytes".into()).unwrap().as_f64().unwrap()
}

#[wasm_bindgen_test]
async fn a_real_width_wan_transformer_matches_native() {
    let kinema = Kinema::create(options(&[("device", "gpu".into())])).await.unwrap();
    assert_eq!(kinema.device(), "gpu");
    let dir = format!("{}generated/wan_real_width/", base());
    let program = format!("{}programs/wan_real_width/program.json", base());
    let inputs = inputs_at(&format!("{dir}inputs.safetensors"), &WAN_INPUTS).await;
    let before = wasm_bytes(&kinema).await;
    for dtype in ["f16", "int8"] {
        let t0 = js_sys::Date::now();
        let out =
            kinema.run(program.clone(), format!("{dir}{dtype}.safetensors"), inputs.clone().into()).await.unwrap();
        let seconds = (js_sys::Date::now() - t0) / 1e3;
        let out0 = Reflect::get(&out, &"out0".into()).unwrap();
        let got: js_sys::Float32Array = Reflect::get(&out0, &"data".into()).unwrap().dyn_into().unwrap();
        let got = got.to_vec();
        let native = Checkpoint::open(&format!("{dir}{dtype}.out.safetensors")).await.unwrap();
        let want = read_all(&native, "out0").await;
        assert_eq!(got.len(), want.len(), "{dtype}: lengths");
        assert_eq!(want.len(), 16 * 4 * 4);
        let scale = 1.0 + want.iter().fold(0f32, |m, v| m.max(v.abs()));
        let err = got.iter().zip(&want).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        let grown = wasm_bytes(&kinema).await - before;
        web_sys::console::log_1(&JsValue::from_str(&format!(
            "{dtype}: load and run {seconds:.1} s, max abs error {err:.2e} (max |native| {:.3}), wasm memory +{:.1} MiB \
             over {:.1} MiB",
            scale - 1.0,
            grown / (1 << 20) as f64,
            before / (1 << 20) as f64
        )));
        assert!(err <= 1e-3 * scale, "{dtype}: max abs error {err} (scale {scale})");
        assert!(grown <= WASM_BOUND, "{dtype}: the wasm memory grew by {grown} bytes");
    }
}
