//! A benchmark, not part of the test suite (scripts/test.sh does not run it):
//! the real Wan2.1-T2V-1.3B transformer (30 blocks, random weights from the
//! exact config) loaded in headless Chromium from a server and run for one
//! pass on WebGPU, against the native CPU delegate's output for the same
//! program, weights and inputs. Build with `KINEMA_BENCH_URL` set to a folder
//! served by `fixture-server` holding `program.json`, `transformer/` (the
//! checkpoint), `inputs.safetensors` and `out.safetensors` (`kinema run
//! --save-inputs … --output …`); docs/benchmarks.md has the commands.
#![cfg(target_arch = "wasm32")]

use js_sys::Reflect;
use kinema_engine::weights::Checkpoint;
use kinema_web::Kinema;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[path = "../../engine/tests/web_support/mod.rs"]
mod web_support;
use web_support::{inputs_at, options, read_all};

fn log(line: String) {
    web_sys::console::log_1(&JsValue::from_str(&line));
}

#[wasm_bindgen_test]
async fn a_real_config_wan_transformer_pass() {
    let Some(dir) = option_env!("KINEMA_BENCH_URL") else {
        log("KINEMA_BENCH_URL is not set: nothing to time".into());
        return;
    };
    let kinema = Kinema::create(options(&[("device", "gpu".into())])).await.unwrap();
    let names = ["hidden_states", "timestep", "encoder_hidden_states"];
    let inputs = inputs_at(&format!("{dir}inputs.safetensors"), &names).await;
    let wasm = async || {
        let s = kinema.stats().await.unwrap();
        Reflect::get(&s, &"wasmBytes".into()).unwrap().as_f64().unwrap() / (1 << 20) as f64
    };
    let before = wasm().await;
    let t0 = js_sys::Date::now();
    let out = kinema.run(format!("{dir}program.json"), format!("{dir}transformer/"), inputs.into()).await.unwrap();
    let seconds = (js_sys::Date::now() - t0) / 1e3;
    let out0 = Reflect::get(&out, &"out0".into()).unwrap();
    let got: js_sys::Float32Array = Reflect::get(&out0, &"data".into()).unwrap().dyn_into().unwrap();
    let got = got.to_vec();
    let want = read_all(&Checkpoint::open(&format!("{dir}out.safetensors")).await.unwrap(), "out0").await;
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    let err = got.iter().zip(&want).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    log(format!(
        "{}: load and one pass {seconds:.1} s; max abs error {err:.3e} of max |native| {scale:.3}; wasm memory \
         {before:.1} → {:.1} MiB",
        kinema.adapter(),
        wasm().await
    ));
    assert!(err <= 1e-3 * (1.0 + scale), "{err}");
}
