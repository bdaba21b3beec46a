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
    let out = pipe
        .generate(options(&[
            ("prompt", prompt.into()),
            ("steps", (steps as f64).into()),
            ("seed", (seed as f64).into()),
        ]))
        .await
        .unwrap();
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
}
