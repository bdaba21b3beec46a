//! A benchmark, not part of the test suite (scripts/test.sh does not run it):
//! the real Wan2.1-T2V-1.3B transformer (30 blocks, random weights from the
//! exact config) loaded in headless Chromium from a server into WebGPU
//! buffers, then run for one pass, against the native CPU delegate's output
//! for the same program, weights and inputs. Build with `KINEMA_BENCH_URL` set
//! to a folder served by `fixture-server` holding `program.json`,
//! `WEIGHTS/` (the checkpoint; `KINEMA_BENCH_WEIGHTS`, default `transformer`),
//! `inputs.safetensors` and `out.safetensors` (`kinema run --save-inputs …
//! --output …`); `KINEMA_BENCH_PASS=0` times the load alone. With
//! `KINEMA_BENCH_PIPELINE` set to a real Wan pipeline folder's URL (kinema.json:
//! the transformer and the VAE decoder), `kinema.loadPipeline` of it: the
//! time, `stats()` after the load and after `dispose()`.
//! docs/benchmarks.md has the commands.
#![cfg(target_arch = "wasm32")]

use kinema_engine::delegate::DeviceChoice;
use kinema_engine::program::Program;
use kinema_engine::runtime::{Options, Session};
use kinema_engine::weights::Checkpoint;
use kinema_web::Kinema;
use wasm_bindgen::JsValue;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[path = "../../engine/tests/web_support/mod.rs"]
mod web_support;
use web_support::{options, read_all};

fn log(line: String) {
    web_sys::console::log_1(&JsValue::from_str(&line));
}

/// The module's wasm memory, MiB (it never shrinks: the most it has held).
fn wasm_mib() -> f64 {
    let memory = wasm_bindgen::memory();
    let buffer = js_sys::Reflect::get(&memory, &"buffer".into()).unwrap();
    js_sys::Reflect::get(&buffer, &"byteLength".into()).unwrap().as_f64().unwrap() / (1 << 20) as f64
}

fn now() -> f64 {
    js_sys::Date::now() / 1e3
}

#[wasm_bindgen_test]
async fn a_real_config_wan_transformer_pass() {
    let Some(dir) = option_env!("KINEMA_BENCH_URL") else {
        log("KINEMA_BENCH_URL is not set: nothing to time".into());
        return;
    };
    let weights = option_env!("KINEMA_BENCH_WEIGHTS").unwrap_or("transformer");
    let pass = option_env!("KINEMA_BENCH_PASS") != Some("0");
    let dev = kinema_engine::delegate::choice::shared().await.unwrap();
    let module = wasm_mib();
    let t0 = now();
    let text = kinema_engine::diffusion::Folder::at(dir).unwrap().read_text("program.json").await.unwrap();
    let program = Program::from_json(&text).unwrap();
    let ckpt = Checkpoint::open(&format!("{dir}{weights}/")).await.unwrap();
    let mut session =
        Session::new(program, Some(ckpt), Options { device: DeviceChoice::Gpu, profile: false }).await.unwrap();
    session.load_parameters().await.unwrap();
    let load = now() - t0;
    let gpu_gib = (dev.live_bytes() + dev.pooled_bytes()) as f64 / (1u64 << 30) as f64;
    log(format!(
        "{} ({weights}): loaded in {load:.1} s; GPU buffers {gpu_gib:.3} GiB; wasm memory {module:.1} → {:.1} MiB",
        dev.info.name,
        wasm_mib()
    ));
    if !pass {
        return;
    }
    let names = ["hidden_states", "timestep", "encoder_hidden_states"];
    let held = Checkpoint::open(&format!("{dir}inputs.safetensors")).await.unwrap();
    let mut inputs = Vec::new();
    for name in names {
        inputs.push(read_all(&held, name).await);
    }
    let named: Vec<(&str, &[f32])> = names.iter().zip(&inputs).map(|(n, v)| (*n, v.as_slice())).collect();
    let t1 = now();
    let out = session.run(&named).await.unwrap();
    let seconds = now() - t1;
    let got = &out[0].data;
    let want = read_all(&Checkpoint::open(&format!("{dir}out.safetensors")).await.unwrap(), "out0").await;
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    let err = got.iter().zip(&want).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    let gpu_gib = (dev.live_bytes() + dev.pooled_bytes()) as f64 / (1u64 << 30) as f64;
    log(format!(
        "one pass {seconds:.1} s; max abs error {err:.3e} of max |native| {scale:.3}; GPU buffers {gpu_gib:.3} GiB; \
         wasm memory {:.1} MiB",
        wasm_mib()
    ));
    assert!(err <= 1e-3 * (1.0 + scale), "{err}");
}

/// Every attention candidate of the tuning table on this page's adapter at
/// Wan2.1-T2V-1.3B's shapes (832 × 480, one latent frame: 12 heads × 1,560
/// tokens of 128, self and to 512 text tokens), least of 2 runs after one
/// warm-up, readback included — `kinema bench --tune --only attention-wan` in
/// the browser. Runs when built with `KINEMA_BENCH_ATTENTION=1`.
#[wasm_bindgen_test]
async fn attention_candidates_at_wan_shapes() {
    use kinema_engine::delegate::{Attention, gpu};
    if option_env!("KINEMA_BENCH_ATTENTION") != Some("1") {
        return;
    }
    let dev = kinema_engine::delegate::choice::shared().await.unwrap();
    for (what, spec) in
        [("self", Attention::new(1, 12, 1560, 1560, 128)), ("cross", Attention::new(1, 12, 1560, 512, 128))]
    {
        let q = kinema_engine::random::uniform(12 * 1560 * 128, 1);
        let kv = kinema_engine::random::uniform(12 * spec.kv_len * 128, 2);
        for variant in gpu::tuning::attention_candidates(&dev) {
            let mut best = f64::MAX;
            for run in 0..3 {
                let t0 = now();
                gpu::attention::attention_with(&dev, variant, &spec, &q, &kv, &kv, None).await.unwrap();
                if run > 0 {
                    best = best.min(now() - t0);
                }
            }
            let gflops = 2.0 * spec.macs() / best / 1e9;
            log(format!("attention-wan-{what} {variant:?}: {:.0} ms ({gflops:.2} GFLOP/s)", best * 1e3));
        }
    }
}

/// `kinema.loadPipeline` of a real Wan pipeline folder (every model of it
/// streamed into GPU buffers, no cache), then `dispose()`; `stats()` at each.
#[wasm_bindgen_test]
async fn a_real_wan_pipeline_folder_loads() {
    let Some(url) = option_env!("KINEMA_BENCH_PIPELINE") else {
        return;
    };
    let kinema = Kinema::create(options(&[("device", "gpu".into())])).await.unwrap();
    let stats = async || {
        let s = kinema.stats().await.unwrap();
        let get = |k: &str| js_sys::Reflect::get(&s, &k.into()).unwrap().as_f64().unwrap() / (1 << 20) as f64;
        format!("wasm {:.1} MiB, GPU {:.1} MiB", get("wasmBytes"), get("gpuBytes"))
    };
    let before = stats().await;
    let t0 = now();
    let pipe = kinema.load_pipeline(url.into(), options(&[("cache", false.into())])).await.unwrap();
    let load = now() - t0;
    let loaded = stats().await;
    pipe.dispose();
    log(format!("loadPipeline({url}): {load:.1} s; before: {before}; loaded: {loaded}; disposed: {}", stats().await));
}
