//! The npm package's pipeline API in headless Chromium: `Kinema.create`,
//! `loadPipeline` on the embedded model served by the fixture server, and
//! `generate` — its RGBA frames equal the engine's own video for the same
//! seed (which tests/diffusion.rs and engine/tests/web_pipeline.rs check
//! against PyTorch), errors come back as JS Errors, and an aborted signal stops.
#![cfg(target_arch = "wasm32")]

use kinema_engine::delegate::DeviceChoice;
use kinema_engine::diffusion::{Folder, Pipeline, Request};
use kinema_engine::runtime::Options;
use kinema_web::Kinema;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[path = "../../engine/tests/web_support/mod.rs"]
mod web_support;
use web_support::{base, message, options};

#[wasm_bindgen_test]
async fn generate_gives_the_engines_frames_and_clear_errors() {
    let url = format!("{}models/wan-shapes", base());
    let kinema = Kinema::create(options(&[("device", "cpu".into())])).await.unwrap();
    assert_eq!(kinema.device(), "cpu");
    let reports = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let sink = reports.clone();
    let on_progress = wasm_bindgen::closure::Closure::<dyn FnMut(JsValue)>::new(move |p: JsValue| {
        let n = |k: &str| js_sys::Reflect::get(&p, &k.into()).unwrap().as_f64().unwrap();
        sink.borrow_mut().push((n("loaded"), n("total")));
    });
    let load = options(&[("cache", false.into()), ("onProgress", on_progress.as_ref().clone())]);
    let pipe = kinema.load_pipeline(url.clone(), load).await.unwrap();
    assert!(pipe.vocabulary().contains(&"triangle".to_string()));
    // Progress in bytes: rising, and at the end every byte of every file read once.
    let reports = reports.borrow().clone();
    assert!(reports.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1), "{reports:?}");
    let (loaded, total) = *reports.last().unwrap();
    assert!(total > 4e6, "the model's files are about 5 MB: {reports:?}");
    assert_eq!(loaded, total, "{reports:?}");
    let prompt = "a green triangle moving down";
    let (steps, seed) = (2usize, 5u64);
    let calls = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let (step_sink, decode_sink) = (calls.clone(), calls.clone());
    let on_step = wasm_bindgen::closure::Closure::<dyn FnMut(u32, u32)>::new(move |d, n| {
        step_sink.borrow_mut().push(("step", d, n));
    });
    let on_decode = wasm_bindgen::closure::Closure::<dyn FnMut(u32, u32)>::new(move |d, n| {
        decode_sink.borrow_mut().push(("decode", d, n));
    });
    let out = pipe
        .generate(options(&[
            ("prompt", prompt.into()),
            ("steps", (steps as f64).into()),
            ("seed", (seed as f64).into()),
            ("onStep", on_step.as_ref().clone()),
            ("onDecode", on_decode.as_ref().clone()),
        ]))
        .await
        .unwrap();
    // The stages in order: every step, then the decoder's pieces to the last.
    let calls: Vec<(&str, u32, u32)> = calls.borrow().clone();
    let (stepped, decoded): (Vec<&(&str, u32, u32)>, Vec<_>) = calls.iter().partition(|c| c.0 == "step");
    assert_eq!(stepped, [("step", 1, 2), ("step", 2, 2)].iter().collect::<Vec<_>>(), "{calls:?}");
    assert!(calls[..2].iter().all(|c| c.0 == "step"), "{calls:?}");
    let last = decoded.last().expect("decode progress");
    assert!(last.1 == last.2 && last.2 >= 1, "{calls:?}");
    let frames: js_sys::Array = js_sys::Reflect::get(&out, &"frames".into()).unwrap().dyn_into().unwrap();

    // The same generation through the engine.
    let options_cpu = Options { device: DeviceChoice::Cpu, profile: false };
    let mut engine = Pipeline::open(&Folder::at(&url).unwrap(), options_cpu).await.unwrap();
    let (pe, ne) = engine.encode(prompt).unwrap();
    let guidance = engine.manifest.defaults.guidance;
    let video = engine
        .generate(Request {
            prompt_embeds: &pe,
            negative_embeds: Some(&ne),
            seed,
            steps,
            guidance,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(frames.length() as usize, video.frames);
    for f in 0..video.frames {
        let got: js_sys::Uint8ClampedArray = frames.get(f as u32).dyn_into().unwrap();
        assert_eq!(got.to_vec(), video.rgba8(f), "frame {f}");
    }

    let err = message(pipe.generate(options(&[("prompt", "a purple circle moving left".into())])).await.unwrap_err());
    assert!(err.contains("unknown word \"purple\""), "{err}");
    let err =
        message(pipe.generate(options(&[("prompt", prompt.into()), ("steps", (-1.0).into())])).await.unwrap_err());
    assert!(err.contains("steps must be"), "{err}");
    let controller = web_sys::AbortController::new().unwrap();
    controller.abort();
    let err = message(
        pipe.generate(options(&[("prompt", prompt.into()), ("signal", controller.signal().into())])).await.unwrap_err(),
    );
    assert!(err.contains("cancelled"), "{err}");
    let err = message(
        kinema.load_pipeline(format!("{}models/nothing-here", base()), JsValue::UNDEFINED).await.err().unwrap(),
    );
    assert!(err.contains("kinema.json"), "{err}");
}

/// `kinema.run(programUrl, weightsUrl, inputs)`: the exported video_net program
/// with its weights over range requests, against PyTorch's output (io.safetensors).
#[wasm_bindgen_test]
async fn run_executes_a_portable_program() {
    let dir = format!("{}programs/video_net/", base());
    let io = kinema_engine::weights::Checkpoint::open(&format!("{dir}io.safetensors")).await.unwrap();
    let read = |name: String| {
        let io = &io;
        async move {
            let mut v = vec![0f32; io.get(&name).unwrap().info.numel() as usize];
            io.read_f32(&name, &mut v).await.unwrap();
            v
        }
    };
    let program = kinema_engine::program::Program::from_json(
        &kinema_engine::diffusion::Folder::at(&dir).unwrap().read_text("program.json").await.unwrap(),
    )
    .unwrap();
    let inputs = js_sys::Object::new();
    for i in &program.inputs {
        let v = read(i.name.clone()).await;
        js_sys::Reflect::set(&inputs, &i.name.as_str().into(), &js_sys::Float32Array::from(&v[..])).unwrap();
    }
    let want = read("out0".into()).await;
    for device in ["gpu", "cpu"] {
        let kinema = Kinema::create(options(&[("device", device.into())])).await.unwrap();
        // Which delegate, and the features it has: none on the CPU; on WebGPU
        // those of the device wgpu opened, by their WebGPU names.
        assert_eq!(kinema.device(), device);
        let features = kinema.features();
        if device == "cpu" {
            assert!(features.is_empty(), "{features:?}");
        } else {
            let dev = kinema_engine::delegate::gpu::GpuDevice::new().await.unwrap();
            assert_eq!(features, dev.optional_features(), "{}", kinema.adapter());
        }
        assert_eq!(kinema.threads(), 1, "the single-threaded build");
        let out = kinema
            .run(format!("{dir}program.json"), format!("{dir}weights.safetensors"), inputs.clone().into())
            .await
            .unwrap();
        let out0 = js_sys::Reflect::get(&out, &"out0".into()).unwrap();
        let data: js_sys::Float32Array = js_sys::Reflect::get(&out0, &"data".into()).unwrap().dyn_into().unwrap();
        let err = data.to_vec().iter().zip(&want).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(err <= 1e-4, "{device}: max abs error {err}");
    }
    let err =
        message(kinema_web_error(Kinema::create(options(&[("device", "cpu".into())])).await.unwrap(), &dir).await);
    assert!(err.contains("must be a Float32Array"), "{err}");
}

async fn kinema_web_error(kinema: Kinema, dir: &str) -> wasm_bindgen::JsError {
    let bad = options(&[("x", JsValue::from_f64(1.0))]);
    kinema.run(format!("{dir}program.json"), format!("{dir}weights.safetensors"), bad).await.err().unwrap()
}

/// Requests the fixture server has logged for paths under `prefix`.
async fn requests(prefix: &str) -> usize {
    let window: web_sys::Window = js_sys::global().unchecked_into();
    let resp: web_sys::Response =
        wasm_bindgen_futures::JsFuture::from(window.fetch_with_str(&format!("{}__log", base())))
            .await
            .unwrap()
            .unchecked_into();
    let log = wasm_bindgen_futures::JsFuture::from(resp.json().unwrap()).await.unwrap();
    let log: js_sys::Array = log.unchecked_into();
    log.iter()
        .filter(|e| js_sys::Reflect::get(e, &"path".into()).unwrap().as_string().unwrap().starts_with(prefix))
        .count()
}

/// With a cache, the first load downloads each file of the pipeline once and a
/// second load (a page reload) makes no request at all; its video is the same.
#[wasm_bindgen_test]
async fn a_second_load_reads_the_cache() {
    let name = format!("kinema-test-{}", js_sys::Math::random());
    let url = format!("{}models/wan-shapes", base());
    let prompt = options(&[("prompt", "a white square moving up".into()), ("steps", 1.0.into())]);
    let mut videos = Vec::new();
    let mut counts = Vec::new();
    for _ in 0..2 {
        let before = requests("models/wan-shapes/").await;
        let kinema = Kinema::create(options(&[("device", "cpu".into())])).await.unwrap();
        let pipe = kinema.load_pipeline(url.clone(), options(&[("cache", name.as_str().into())])).await.unwrap();
        let out = pipe.generate(prompt.clone()).await.unwrap();
        let frames: js_sys::Array = js_sys::Reflect::get(&out, &"frames".into()).unwrap().dyn_into().unwrap();
        let first: js_sys::Uint8ClampedArray = frames.get(0).dyn_into().unwrap();
        videos.push(first.to_vec());
        counts.push(requests("models/wan-shapes/").await - before);
    }
    assert!(counts[0] >= 4, "the first load fetches kinema.json, the program and the weights: {counts:?}");
    assert_eq!(counts[1], 0, "the second load hits the cache: {counts:?}");
    assert_eq!(videos[0], videos[1]);
    // stats() counts the cached files; clearCache deletes them.
    let kinema = Kinema::create(options(&[("device", "cpu".into())])).await.unwrap();
    let _ = kinema.load_pipeline(url.clone(), options(&[("cache", name.as_str().into())])).await.unwrap();
    let cached = |stats: &JsValue| js_sys::Reflect::get(stats, &"cachedBytes".into()).unwrap().as_f64().unwrap();
    let full = cached(&kinema.stats().await.unwrap());
    assert!(full > 4e6, "the model's files are about 5 MB: {full}");
    assert!(Kinema::clear_cache(Some(name.clone())).await.unwrap());
    let cleared = cached(&kinema.stats().await.unwrap());
    assert!(full - cleared > 4e6, "{full} → {cleared}");
    assert!(!Kinema::clear_cache(Some(name)).await.unwrap(), "already gone");
}

/// `stats()` on WebGPU: the pipeline's weights and arenas count in `gpuBytes`
/// while it lives, and `dispose()` gives them back; the wasm memory is there.
#[wasm_bindgen_test]
async fn dispose_gives_the_gpu_memory_back() {
    let kinema = Kinema::create(options(&[("device", "gpu".into())])).await.unwrap();
    let number = |stats: &JsValue, k: &str| js_sys::Reflect::get(stats, &k.into()).unwrap().as_f64().unwrap();
    let before = kinema.stats().await.unwrap();
    let url = format!("{}models/wan-shapes", base());
    let pipe = kinema.load_pipeline(url, options(&[("cache", false.into())])).await.unwrap();
    let prompt = options(&[("prompt", "a white square moving up".into()), ("steps", 1.0.into())]);
    pipe.generate(prompt).await.unwrap();
    let during = kinema.stats().await.unwrap();
    pipe.dispose();
    let after = kinema.stats().await.unwrap();
    let gpu = [&before, &during, &after].map(|s| number(s, "gpuBytes"));
    assert!(gpu[1] > gpu[0] + 4e6, "the weights are on the GPU: {gpu:?}");
    assert!(gpu[2] <= gpu[0], "dispose frees them: {gpu:?}");
    assert!(number(&after, "wasmBytes") >= number(&before, "wasmBytes") && number(&before, "wasmBytes") > 0.0);
}

/// A relative pipeline URL resolves against the page, as `fetch`'s does.
#[wasm_bindgen_test]
async fn relative_urls_resolve_against_the_page() {
    let kinema = Kinema::create(options(&[("device", "cpu".into())])).await.unwrap();
    let page = web_sys::window().unwrap().document().unwrap().base_uri().unwrap().unwrap();
    let want = web_sys::Url::new_with_base("no-such/pipeline", &page).unwrap().href();
    let err = message(kinema.load_pipeline("no-such/pipeline".into(), JsValue::UNDEFINED).await.err().unwrap());
    assert!(err.contains(&want), "{err} (want {want})");
    let err = message(kinema.load_pipeline("http://[oops".into(), JsValue::UNDEFINED).await.err().unwrap());
    assert!(err.contains("not a URL"), "{err}");
}

/// A lost GPU device (here destroyed, as a driver reset would) rejects the
/// pipeline's next generation with an Error, and the same `Kinema` loads and
/// generates again, on a new device, the same frames.
#[wasm_bindgen_test]
async fn a_lost_device_is_an_error_and_kinema_opens_another() {
    let kinema = Kinema::create(options(&[("device", "gpu".into())])).await.unwrap();
    let url = format!("{}models/wan-shapes", base());
    let load = || options(&[("cache", false.into())]);
    let prompt = options(&[("prompt", "a white square moving up".into()), ("steps", 1.0.into())]);
    let first_frame = |out: JsValue| -> Vec<u8> {
        let frames: js_sys::Array = js_sys::Reflect::get(&out, &"frames".into()).unwrap().dyn_into().unwrap();
        frames.get(0).dyn_into::<js_sys::Uint8ClampedArray>().unwrap().to_vec()
    };
    let pipe = kinema.load_pipeline(url.clone(), load()).await.unwrap();
    let before = first_frame(pipe.generate(prompt.clone()).await.unwrap());
    let dev = kinema_engine::delegate::choice::shared().await.unwrap();
    dev.device.destroy();
    let err = message(pipe.generate(prompt.clone()).await.unwrap_err());
    assert!(err.contains("lost"), "{err}");
    assert!(dev.is_lost());
    let again = kinema.load_pipeline(url, load()).await.unwrap();
    assert_eq!(first_frame(again.generate(prompt).await.unwrap()), before);
    assert!(!kinema_engine::delegate::choice::shared().await.unwrap().is_lost());
}

/// A cache that cannot store (the quota, simulated: `Cache.put` rejects with
/// a QuotaExceededError) does not fail the load: each file is read by range
/// requests instead, with one console warning that says why, and is not
/// downloaded whole again for every read; the video is the same.
#[wasm_bindgen_test]
async fn a_full_cache_falls_back_to_range_requests_with_a_message() {
    js_sys::eval(
        "globalThis.__kinemaWarnings = []; globalThis.__kinemaWarn = console.warn; \
         console.warn = (m) => globalThis.__kinemaWarnings.push(String(m)); \
         globalThis.__kinemaPut = Cache.prototype.put; \
         Cache.prototype.put = () => Promise.reject(new DOMException('the disk is full', 'QuotaExceededError'));",
    )
    .unwrap();
    let name = format!("kinema-quota-{}", js_sys::Math::random());
    let url = format!("{}models/wan-shapes", base());
    let prompt = options(&[("prompt", "a white square moving up".into()), ("steps", 1.0.into())]);
    let kinema = Kinema::create(options(&[("device", "cpu".into())])).await.unwrap();
    let before = requests("models/wan-shapes/").await;
    let loaded = kinema.load_pipeline(url.clone(), options(&[("cache", name.as_str().into())])).await;
    let full = match &loaded {
        Ok(pipe) => Some(pipe.generate(prompt.clone()).await),
        Err(_) => None,
    };
    let made = requests("models/wan-shapes/").await - before;
    let warnings = js_sys::eval(
        "console.warn = globalThis.__kinemaWarn; Cache.prototype.put = globalThis.__kinemaPut; \
         globalThis.__kinemaWarnings",
    )
    .unwrap();
    let warnings: Vec<String> = js_sys::Array::from(&warnings).iter().filter_map(|w| w.as_string()).collect();
    let out = full.expect("loads without the cache").unwrap();
    let frames: js_sys::Array = js_sys::Reflect::get(&out, &"frames".into()).unwrap().dyn_into().unwrap();
    // The same first frame as with a working cache.
    let kinema = Kinema::create(options(&[("device", "cpu".into())])).await.unwrap();
    let before = requests("models/wan-shapes/").await;
    let pipe = kinema.load_pipeline(url, options(&[("cache", false.into())])).await.unwrap();
    let want: js_sys::Array =
        js_sys::Reflect::get(&pipe.generate(prompt).await.unwrap(), &"frames".into()).unwrap().dyn_into().unwrap();
    let plain = requests("models/wan-shapes/").await - before;
    let first = |a: &js_sys::Array| a.get(0).dyn_into::<js_sys::Uint8ClampedArray>().unwrap().to_vec();
    assert_eq!(first(&frames), first(&want));
    let quota: Vec<&String> = warnings.iter().filter(|w| w.contains("QuotaExceededError")).collect();
    assert!(!quota.is_empty(), "{warnings:?}");
    assert!(quota.iter().all(|w| w.contains("range requests")), "{quota:?}");
    // One warning (and one whole-file GET) per file, not per read.
    let files: std::collections::HashSet<&str> =
        quota.iter().filter_map(|w| w.split("cannot keep ").nth(1)?.split(' ').next()).collect();
    assert_eq!(files.len(), quota.len(), "{quota:?}");
    assert!(made <= plain + quota.len(), "{made} requests; by ranges alone {plain}, and {} files", quota.len());
    let _ = Kinema::clear_cache(Some(name)).await;
}
