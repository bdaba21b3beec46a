//! Kinema in the browser. This crate is the wasm-bindgen API of the `kinema`
//! npm package: checkpoint inspection over HTTP range requests, and text-to-video
//! pipelines (`Kinema.create`, `loadPipeline`, `generate`) on WebGPU or the
//! CPU delegate compiled to wasm32.

use kinema_engine::weights::Checkpoint;
use wasm_bindgen::JsCast;
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

// ---------------------------------------------------------------------------
// Pipelines: `Kinema.create` → `loadPipeline(url)` → `generate({...})`.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};

use kinema_engine::delegate::DeviceChoice;
use kinema_engine::diffusion::{Folder, Pipeline, Request};
use kinema_engine::runtime::Options;

fn js_error(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

/// `obj[key]`, or undefined when `obj` is not an object.
fn get(obj: &JsValue, key: &str) -> JsValue {
    if obj.is_object() {
        js_sys::Reflect::get(obj, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
    } else {
        JsValue::UNDEFINED
    }
}

fn set(obj: &js_sys::Object, key: &str, value: impl Into<JsValue>) {
    js_sys::Reflect::set(obj, &JsValue::from_str(key), &value.into()).expect("setting a property of a new object");
}

/// A number option: absent → `None`; present, it must be a finite number ≥ 0.
fn number(options: &JsValue, key: &str) -> Result<Option<f64>, JsError> {
    let v = get(options, key);
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    match v.as_f64() {
        Some(x) if x.is_finite() && x >= 0.0 => Ok(Some(x)),
        _ => Err(JsError::new(&format!("{key} must be a finite number ≥ 0"))),
    }
}

/// `threads()`: how many threads the CPU delegate spreads its work over (1
/// unless this is the threaded build and `initThreads` has run).
#[wasm_bindgen]
pub fn threads() -> usize {
    kinema_engine::delegate::cpu::parallel::threads()
}

/// `await initThreads(n)` (the threaded build, `threads/kinema.js`): starts
/// `n` Web Workers sharing this module's memory for the CPU delegate; returns
/// how many run. The page must be cross-origin isolated (COOP/COEP headers).
#[cfg(feature = "threads")]
#[wasm_bindgen(js_name = initThreads)]
pub async fn init_threads(n: usize) -> Result<usize, JsError> {
    kinema_engine::delegate::cpu::parallel::init_pool(n).await.map_err(js_error)
}

/// The engine: which delegate runs (WebGPU when the browser gives an adapter).
#[wasm_bindgen]
pub struct Kinema {
    device: DeviceChoice,
    adapter: String,
    features: Vec<String>,
    /// The page's one GPU device (shared with every session), if the GPU runs.
    gpu: RefCell<Option<std::sync::Arc<kinema_engine::delegate::gpu::GpuDevice>>>,
    /// The Cache API caches this object's pipelines read through.
    caches: RefCell<std::collections::BTreeSet<String>>,
}

/// The browser's Cache API and URL resolution (kinema_engine::weights). This
/// crate also builds natively, for clippy and docs only: there, with no page
/// and no Cache API, URLs stay as given and no cache holds anything.
#[cfg(target_arch = "wasm32")]
use kinema_engine::weights as cache_api;
#[cfg(not(target_arch = "wasm32"))]
mod cache_api {
    use kinema_engine::Result;
    pub async fn cached_bytes(_name: &str) -> Result<u64> {
        Ok(0)
    }
    pub async fn clear_cache(_name: &str) -> Result<bool> {
        Ok(false)
    }
    pub fn resolve_url(url: &str) -> Result<String> {
        Ok(url.to_string())
    }
}

/// The Cache API cache `loadPipeline` keeps files in unless told otherwise.
const DEFAULT_CACHE: &str = "kinema-v1";

#[wasm_bindgen]
impl Kinema {
    /// `await Kinema.create({ device: "auto" | "gpu" | "cpu", precision: "f32" | "f16" })`:
    /// "auto" uses WebGPU when `navigator.gpu` gives an adapter, else the CPU
    /// delegate; `precision: "f16"` lets the tuner choose f16-arithmetic
    /// kernels where the adapter has `shader-f16` (a table of its own;
    /// default "f32"; the page has one precision at a time: the last
    /// `create`'s, for the devices opened after it).
    pub async fn create(options: JsValue) -> Result<Kinema, JsError> {
        let asked = get(&options, "device").as_string().unwrap_or_else(|| "auto".into());
        let choice: DeviceChoice = asked.parse().map_err(js_error)?;
        let precision = get(&options, "precision").as_string().unwrap_or_else(|| "f32".into());
        kinema_engine::delegate::choice::set_shared_precision(precision.parse().map_err(js_error)?);
        let (gpu, adapter) = choice.open().await.map_err(js_error)?;
        let device = if gpu.is_some() { DeviceChoice::Gpu } else { DeviceChoice::Cpu };
        let features =
            gpu.as_ref().map(|d| d.optional_features().into_iter().map(String::from).collect()).unwrap_or_default();
        let caches = RefCell::new([DEFAULT_CACHE.to_string()].into());
        Ok(Kinema { device, adapter, features, gpu: RefCell::new(gpu), caches })
    }

    /// `await kinema.tune({ budget, runs, fresh })`: times, on this page's
    /// WebGPU adapter, the static kernel and every candidate for the shape
    /// classes of the reference workloads (matmul 1024³, conv3d, attention; a
    /// pipeline's own: `pipeline.tune`), keeps the fastest that agrees with the
    /// default, and saves the table in `localStorage` (key
    /// `kinema.tuning/ADAPTER`), where every later page finds it. `budget`:
    /// seconds (default 10); `runs` per candidate (3); `fresh`: start from an
    /// empty table. Returns the table as JSON, with `tuned` (classes timed now)
    /// and `key` (where it was saved; null in a worker, with `unsaved`: why).
    pub async fn tune(&self, options: JsValue) -> Result<String, JsError> {
        use kinema_engine::delegate::gpu::tune::Example;
        use kinema_engine::delegate::{Attention, Conv3d, Matmul};
        let examples = vec![
            Example::Matmul(Matmul::new(1, 1024, 1024, 1024)),
            Example::Conv(Conv3d::new(1, 64, 64, [8, 32, 32], [3, 3, 3]).padded([1, 1, 1])),
            Example::Attention(Attention { scale: 1.0 / 8.0, ..Attention::new(1, 8, 1024, 1024, 64) }),
        ];
        tune_on(self.gpu().await?.as_deref(), &examples, &options).await
    }

    /// This object's GPU device, if the GPU runs: a new one when the last was
    /// lost (destroyed, a driver reset), so this `Kinema` stays usable (the
    /// pipelines loaded on the lost device are not: load them again).
    async fn gpu(&self) -> Result<Option<std::sync::Arc<kinema_engine::delegate::gpu::GpuDevice>>, JsError> {
        let current = self.gpu.borrow().clone();
        match current {
            Some(dev) if dev.is_lost() => {
                let dev = kinema_engine::delegate::choice::shared().await.map_err(js_error)?;
                *self.gpu.borrow_mut() = Some(dev.clone());
                Ok(Some(dev))
            }
            other => Ok(other),
        }
    }

    /// `await kinema.stats()` → `{ wasmBytes, gpuBytes, cachedBytes }`: the
    /// module's wasm memory (it never shrinks: the most it has held), the GPU
    /// buffers Kinema holds on this page's device (sessions' weights and
    /// arenas, and the free ones it keeps for reuse), and the bytes of the
    /// files in the caches this object's pipelines read through.
    pub async fn stats(&self) -> Result<JsValue, JsError> {
        let memory = wasm_bindgen::memory();
        let buffer = js_sys::Reflect::get(&memory, &"buffer".into()).map_err(|_| JsError::new("no wasm memory"))?;
        let wasm = js_sys::Reflect::get(&buffer, &"byteLength".into()).ok().and_then(|v| v.as_f64()).unwrap_or(0.0);
        let gpu = self.gpu().await?.map_or(0, |d| d.live_bytes() + d.pooled_bytes());
        let names: Vec<String> = self.caches.borrow().iter().cloned().collect();
        let mut cached = 0;
        for name in names {
            cached += cache_api::cached_bytes(&name).await.map_err(js_error)?;
        }
        let o = js_sys::Object::new();
        set(&o, "wasmBytes", wasm);
        set(&o, "gpuBytes", gpu as f64);
        set(&o, "cachedBytes", cached as f64);
        Ok(o.into())
    }

    /// `await Kinema.clearCache(name)`: deletes the Cache API cache `name`
    /// (default "kinema-v1", `loadPipeline`'s); whether there was one.
    #[wasm_bindgen(js_name = clearCache)]
    pub async fn clear_cache(name: Option<String>) -> Result<bool, JsError> {
        cache_api::clear_cache(name.as_deref().unwrap_or(DEFAULT_CACHE)).await.map_err(js_error)
    }

    /// The GPU tuning table this page uses, as JSON (no entries on the CPU
    /// delegate, or before any `tune`).
    #[wasm_bindgen(getter)]
    pub fn tuning(&self) -> String {
        match &*self.gpu.borrow() {
            Some(d) => d.tuning().to_json(d).to_string(),
            None => serde_json::json!({"format": "kinema.tuning", "entries": []}).to_string(),
        }
    }

    /// "gpu" or "cpu".
    #[wasm_bindgen(getter)]
    pub fn device(&self) -> String {
        if self.device == DeviceChoice::Gpu { "gpu" } else { "cpu" }.into()
    }

    /// The adapter (or CPU delegate) that runs, and why.
    #[wasm_bindgen(getter)]
    pub fn adapter(&self) -> String {
        self.adapter.clone()
    }

    /// The optional WebGPU features Kinema uses that the adapter gave
    /// (`shader-f16`, `subgroups`, `timestamp-query`); empty on the CPU.
    #[wasm_bindgen(getter)]
    pub fn features(&self) -> Vec<String> {
        self.features.clone()
    }

    /// Threads the CPU delegate uses (see `initThreads`).
    #[wasm_bindgen(getter)]
    pub fn threads(&self) -> usize {
        threads()
    }

    /// `await kinema.loadPipeline(url, { cache, onProgress })`: reads `kinema.json`
    /// at `url` and opens its programs and checkpoints. With `cache` (a Cache API
    /// cache name; default "kinema-v1") each file is downloaded once and kept, so
    /// a reload reads it from disk; `cache: false` reads with HTTP range requests
    /// only. A cache that cannot store (quota) falls back to the network.
    /// `onProgress({ loaded, total })` is called after every read: the bytes of
    /// the pipeline's files read so far, out of the sizes of the files opened so
    /// far (`total` grows as each file is opened; the last call has the final
    /// figures).
    #[wasm_bindgen(js_name = loadPipeline)]
    pub async fn load_pipeline(&self, url: String, options: JsValue) -> Result<KinemaPipeline, JsError> {
        let mut folder = Folder::at(&url).map_err(js_error)?;
        let cache = get(&options, "cache");
        let name = match (cache.as_bool(), cache.as_string()) {
            (Some(false), _) => None,
            (_, Some(name)) => Some(name),
            _ => Some(DEFAULT_CACHE.to_string()),
        };
        if let Some(name) = &name {
            self.caches.borrow_mut().insert(name.clone());
        }
        if let (Folder::Url { client, .. }, Some(name)) = (&mut folder, name) {
            *client = kinema_engine::weights::HttpClient::with_cache(&name);
        }
        let on_progress = get(&options, "onProgress");
        if let (Folder::Url { client, .. }, Some(f)) = (&mut folder, on_progress.dyn_ref::<js_sys::Function>()) {
            let f = f.clone();
            let report = move |loaded: u64, total: u64| {
                let o = js_sys::Object::new();
                let _ = js_sys::Reflect::set(&o, &"loaded".into(), &(loaded as f64).into());
                let _ = js_sys::Reflect::set(&o, &"total".into(), &(total as f64).into());
                // A throwing callback must not stop the load.
                let _ = f.call1(&JsValue::NULL, &o);
            };
            let progress = kinema_engine::weights::Progress::new(Box::new(report));
            *client = client.clone().with_progress(progress);
        }
        // (A lost device is replaced first: the pipeline's sessions share the new one.)
        let gpu = self.gpu().await?;
        let pipe = Pipeline::open(&folder, Options { device: self.device, profile: false }).await.map_err(js_error)?;
        Ok(KinemaPipeline { inner: Rc::new(RefCell::new(pipe)), gpu })
    }
}

/// [`Kinema::tune`] over `examples` on `dev`.
async fn tune_on(
    dev: Option<&kinema_engine::delegate::gpu::GpuDevice>,
    examples: &[kinema_engine::delegate::gpu::tune::Example],
    options: &JsValue,
) -> Result<String, JsError> {
    use kinema_engine::delegate::gpu::tune;
    let dev = dev.ok_or_else(|| JsError::new("tune: the CPU delegate runs here; tuning is for WebGPU adapters"))?;
    let budget = number(options, "budget")?.unwrap_or(10.0);
    if budget > 86_400.0 {
        return Err(JsError::new(&format!("budget {budget}: expected 0 to 86400 seconds")));
    }
    let runs = number(options, "runs")?.map_or(3, |r| (r as usize).clamp(1, 100));
    let mut table =
        if get(options, "fresh").as_bool() == Some(true) { tune::Table::default() } else { (*dev.tuning()).clone() };
    let budget = std::time::Duration::from_secs_f64(budget);
    let tuned = tune::tune(dev, examples, budget, runs, &mut table).await.map_err(js_error)?;
    let mut v = table.to_json(dev);
    v["tuned"] = tuned.into();
    match tune::save(dev, &table) {
        Ok(key) => v["key"] = serde_json::to_value(&key).unwrap_or_default(),
        Err(e) => {
            v["key"] = serde_json::Value::Null;
            v["unsaved"] = e.to_string().into();
        }
    }
    dev.set_tuning(table);
    Ok(v.to_string())
}

/// A loaded pipeline.
#[wasm_bindgen]
pub struct KinemaPipeline {
    inner: Rc<RefCell<Pipeline>>,
    gpu: Option<std::sync::Arc<kinema_engine::delegate::gpu::GpuDevice>>,
}

#[wasm_bindgen]
impl KinemaPipeline {
    /// `await pipeline.tune({ budget, runs, fresh })`: [`Kinema::tune`] for
    /// the shape classes of this pipeline's programs (the transformer's and
    /// the VAE decoder's matmuls, convs and attentions).
    pub async fn tune(&self, options: JsValue) -> Result<String, JsError> {
        let examples = self.inner.borrow().tuning_examples();
        tune_on(self.gpu.as_deref(), &examples, &options).await
    }

    /// `pipeline.dispose()`: frees the pipeline's GPU buffers (its sessions'
    /// weights and arenas) now, not when the garbage collector gets to it, and
    /// the free buffers the device keeps for reuse; the object is unusable after.
    pub fn dispose(self) {
        let gpu = self.gpu.clone();
        drop(self);
        if let Some(dev) = gpu {
            dev.release_pool();
        }
    }

    /// The words the model's text encoder knows (empty for embeddings-only pipelines).
    #[wasm_bindgen(getter)]
    pub fn vocabulary(&self) -> Vec<String> {
        self.inner.borrow().text_encoder().map(|t| t.vocabulary.clone()).unwrap_or_default()
    }

    /// A prompt the model knows.
    #[wasm_bindgen(getter)]
    pub fn example(&self) -> String {
        self.inner.borrow().text_encoder().map(|t| t.example.clone()).unwrap_or_default()
    }

    /// The default number of denoising steps.
    #[wasm_bindgen(getter, js_name = defaultSteps)]
    pub fn default_steps(&self) -> usize {
        self.inner.borrow().manifest.defaults.steps
    }

    /// `await pipeline.generate({ prompt, steps, guidance, seed, onStep, onDecode, signal })`
    /// → `{ width, height, fps, frames: Uint8ClampedArray[] }` (RGBA).
    /// `onStep(done, total)` is called after every step, `onDecode(done,
    /// total)` as the VAE decodes (pieces: latent frames of tiles); an aborted
    /// `signal` stops between steps with an Error.
    // The borrow is held across the loop's awaits on purpose: a second
    // `generate` on the same pipeline meanwhile gets a clear error (try_borrow_mut).
    #[allow(clippy::await_holding_refcell_ref)]
    pub async fn generate(&self, options: JsValue) -> Result<JsValue, JsError> {
        let inner = self.inner.clone();
        let mut pipe = inner
            .try_borrow_mut()
            .map_err(|_| JsError::new("this pipeline is already generating; wait for it or load another"))?;
        let prompt = get(&options, "prompt").as_string().ok_or_else(|| JsError::new("give a prompt (a string)"))?;
        let (pe, ne) = pipe.encode(&prompt).map_err(js_error)?;
        let steps = number(&options, "steps")?.map_or(pipe.manifest.defaults.steps, |s| s as usize);
        let guidance = number(&options, "guidance")?.map_or(pipe.manifest.defaults.guidance, |g| g as f32);
        let seed = number(&options, "seed")?.map_or(0, |s| s as u64);
        let frames = number(&options, "frames")?.map(|f| f as usize);
        let on_step = get(&options, "onStep").dyn_into::<js_sys::Function>().ok();
        let on_decode = get(&options, "onDecode").dyn_into::<js_sys::Function>().ok();
        let mut decoding = |i: usize, n: usize| {
            if let Some(f) = &on_decode {
                let _ = f.call2(&JsValue::NULL, &JsValue::from(i as u32), &JsValue::from(n as u32));
            }
        };
        let signal = get(&options, "signal");
        let aborted = || get(&signal, "aborted").as_bool() == Some(true);
        // Set by the signal's abort event, which the loop lets in between
        // steps (clock::yield_now), and by a check after each step.
        let cancel = Rc::new(AtomicBool::new(aborted()));
        let on_abort = {
            let cancel = cancel.clone();
            wasm_bindgen::closure::Closure::<dyn FnMut()>::new(move || cancel.store(true, Ordering::Relaxed))
        };
        let listen = |method: &str| {
            if let Ok(f) = get(&signal, method).dyn_into::<js_sys::Function>() {
                let _ = f.call2(&signal, &"abort".into(), on_abort.as_ref());
            }
        };
        listen("addEventListener");
        let mut progress = |i: usize, n: usize| {
            if let Some(f) = &on_step {
                let _ = f.call2(&JsValue::NULL, &JsValue::from(i as u32), &JsValue::from(n as u32));
            }
            if aborted() {
                cancel.store(true, Ordering::Relaxed);
            }
        };
        let video = pipe
            .generate(Request {
                prompt_embeds: &pe,
                negative_embeds: Some(&ne),
                seed,
                steps,
                guidance,
                frames,
                on_step: Some(&mut progress),
                on_decode: Some(&mut decoding),
                cancel: Some(&cancel),
                ..Default::default()
            })
            .await;
        listen("removeEventListener");
        let video = video.map_err(js_error)?;
        let out = js_sys::Object::new();
        set(&out, "width", video.width as u32);
        set(&out, "height", video.height as u32);
        set(&out, "fps", video.fps);
        let list = js_sys::Array::new();
        for f in 0..video.frames {
            list.push(&js_sys::Uint8ClampedArray::from(&video.rgba8(f)[..]));
        }
        set(&out, "frames", list);
        Ok(out.into())
    }
}

#[wasm_bindgen]
impl Kinema {
    /// `await kinema.run(programUrl, weightsUrl, inputs)`: runs a portable
    /// program (program.json at `programUrl`; its parameters read by range
    /// requests from the checkpoint at `weightsUrl`) on `inputs`, an object of
    /// `name: Float32Array` in the program's input shapes. Returns
    /// `{ out0: { shape, data: Float32Array }, … }`.
    pub async fn run(&self, program_url: String, weights_url: String, inputs: JsValue) -> Result<JsValue, JsError> {
        use kinema_engine::program::Program;
        use kinema_engine::runtime::Session;
        let program_url = cache_api::resolve_url(&program_url).map_err(js_error)?;
        let (dir, file) = program_url
            .rsplit_once('/')
            .ok_or_else(|| JsError::new(&format!("{program_url}: not a URL of a program.json")))?;
        let text = Folder::at(dir).map_err(js_error)?.read_text(file).await.map_err(js_error)?;
        let program = Program::from_json(&text).map_err(js_error)?;
        let weights = if program.parameters.is_empty() {
            None
        } else {
            Some(Checkpoint::open(&weights_url).await.map_err(js_error)?)
        };
        let mut values = Vec::new();
        for input in &program.inputs {
            let v = get(&inputs, &input.name);
            let array = v
                .dyn_into::<js_sys::Float32Array>()
                .map_err(|_| JsError::new(&format!("input {:?} must be a Float32Array", input.name)))?;
            values.push((input.name.clone(), array.to_vec()));
        }
        let mut session =
            Session::new(program, weights, Options { device: self.device, profile: false }).await.map_err(js_error)?;
        let named: Vec<(&str, &[f32])> = values.iter().map(|(n, v)| (n.as_str(), v.as_slice())).collect();
        let outputs = session.run(&named).await.map_err(js_error)?;
        let out = js_sys::Object::new();
        for t in outputs {
            let o = js_sys::Object::new();
            let shape = js_sys::Array::new();
            t.shape.iter().for_each(|&d| {
                shape.push(&JsValue::from(d as u32));
            });
            set(&o, "shape", shape);
            set(&o, "data", js_sys::Float32Array::from(&t.data[..]));
            set(&out, &t.name, o);
        }
        Ok(out.into())
    }
}

// ---------------------------------------------------------------------------
// The reference workloads of `kinema bench`, in the browser (www/bench.html).

fn now_ms() -> f64 {
    kinema_engine::clock::seconds() * 1e3
}

/// `await benchmark({ device: "gpu" | "cpu", runs })`: times `matmul`
/// [1024,1024]×[1024,1024], `conv3d` [1,64,8,32,32]×[64,64,3,3,3] (pad 1) and
/// `attention` [1,8,1024,64] after two warm-up runs, readback included, and
/// returns a JSON list of `{workload, device, adapter, ms_min, ms_median, gflops}`
/// — the same rows as `kinema bench --json`. With `tune: true` on the GPU:
/// matmul and conv3d with every candidate tiling instead (`kinema bench --tune`).
#[wasm_bindgen]
pub async fn benchmark(options: JsValue) -> Result<String, JsError> {
    use kinema_engine::delegate::{Attention, Conv3d, Matmul, cpu, gpu};
    use kinema_engine::random::uniform;
    let device = get(&options, "device").as_string().unwrap_or_else(|| "cpu".into());
    let runs = number(&options, "runs")?.map_or(5, |r| (r as usize).clamp(1, 100));
    let mm = Matmul::new(1, 1024, 1024, 1024);
    let conv = Conv3d::new(1, 64, 64, [8, 32, 32], [3, 3, 3]).padded([1, 1, 1]);
    let att = Attention { scale: 1.0 / 8.0, ..Attention::new(1, 8, 1024, 1024, 64) };
    let (a, b) = (uniform(1024 * 1024, 1), uniform(1024 * 1024, 2));
    let (x, k) = (uniform(64 * 8 * 32 * 32, 3), uniform(64 * 64 * 27, 4));
    let (q, kk, v) = (uniform(8 * 1024 * 64, 5), uniform(8 * 1024 * 64, 6), uniform(8 * 1024 * 64, 7));
    const WORKLOADS: [&str; 3] = ["matmul", "conv3d", "attention"];
    let flops = [2.0 * 1024f64.powi(3), 2.0 * conv.macs(), 2.0 * att.macs()];
    let gpu_dev = match device.as_str() {
        "gpu" => Some(kinema_engine::delegate::gpu::GpuDevice::new().await.map_err(js_error)?),
        "cpu" => None,
        other => return Err(JsError::new(&format!("device {other:?}: gpu or cpu"))),
    };
    let adapter = gpu_dev
        .as_ref()
        .map_or_else(|| format!("wasm32 CPU delegate ({} thread(s))", threads()), |d| d.info.name.clone());
    // What to time: each workload (0 matmul, 1 conv3d, 2 attention) with the
    // adapter's configuration, or with `tune: true` on the GPU matmul and conv3d
    // with every candidate tiling.
    let tune = gpu_dev.is_some() && get(&options, "tune").as_bool().unwrap_or(false);
    let cases: Vec<(usize, Option<gpu::matmul::Config>)> = match &gpu_dev {
        Some(d) if tune => gpu::tuning::candidates(d).into_iter().flat_map(|c| [(0, Some(c)), (1, Some(c))]).collect(),
        _ => (0..3).map(|w| (w, None)).collect(),
    };
    let mut rows = Vec::new();
    for (w, config) in cases {
        let tiling = |d| config.unwrap_or_else(|| gpu::matmul::Config::for_device(d));
        let mut ms = Vec::new();
        for i in 0..runs + 2 {
            let t0 = now_ms();
            match (&gpu_dev, w) {
                (None, 0) => drop(cpu::matmul::matmul(&mm, &a, &b, None).map_err(js_error)?),
                (None, 1) => drop(cpu::conv::conv3d(&conv, &x, &k, None).map_err(js_error)?),
                (None, _) => drop(cpu::attention::attention(&att, &q, &kk, &v, None).map_err(js_error)?),
                (Some(d), 0) => {
                    drop(gpu::matmul::matmul_with(d, tiling(d), &mm, &a, &b[..], None).await.map_err(js_error)?)
                }
                (Some(d), 1) => {
                    let kernel = gpu::conv::Kernel::Gemm(tiling(d));
                    drop(gpu::conv::conv3d_with(d, kernel, &conv, &x, &k, None).await.map_err(js_error)?)
                }
                (Some(d), _) => drop(gpu::attention::attention(d, &att, &q, &kk, &v, None).await.map_err(js_error)?),
            }
            if i >= 2 {
                ms.push(now_ms() - t0);
            }
        }
        ms.sort_by(f64::total_cmp);
        let adapter = config.map_or_else(|| adapter.clone(), |c| format!("{adapter} {c:?}"));
        rows.push(serde_json::json!({
            "workload": WORKLOADS[w], "device": device, "adapter": adapter,
            "ms_min": ms[0], "ms_median": ms[ms.len() / 2], "gflops": flops[w] / ms[0] / 1e6,
        }));
    }
    Ok(serde_json::Value::Array(rows).to_string())
}
