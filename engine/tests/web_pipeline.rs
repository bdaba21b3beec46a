//! The embedded model's pipeline in the browser: kinema.json, its programs, the
//! word table and the transformer's weights fetched from a URL
//! (`diffusion::Folder::Url`), the denoising loop on WebGPU (SwiftShader in
//! headless Chromium) and on the CPU delegate compiled to wasm32, both against
//! the video PyTorch makes from the same embeddings and noise
//! (tests/fixtures/pipelines/wan_shapes_golden.safetensors, tools/train/export.py)
//! — the reference the native test (tests/diffusion.rs) meets too.
#![cfg(target_arch = "wasm32")]

use kinema_engine::delegate::DeviceChoice;
use kinema_engine::diffusion::{Folder, Pipeline, Request};
use kinema_engine::runtime::Options;
use kinema_engine::weights::Checkpoint;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

mod web_support;
use web_support::{base, read_all};

#[wasm_bindgen_test]
async fn the_embedded_model_generates_in_the_browser_on_both_delegates() {
    let golden = Checkpoint::open(&format!("{}pipelines/wan_shapes_golden.safetensors", base())).await.unwrap();
    let meta = golden.shards()[0].header.metadata.clone();
    let (prompt, steps) = (meta["prompt"].clone(), meta["steps"].parse::<usize>().unwrap());
    let latents = read_all(&golden, "latents").await;
    let want = read_all(&golden, "video").await;
    for device in [DeviceChoice::Gpu, DeviceChoice::Cpu] {
        let folder = Folder::at(&format!("{}models/wan-shapes", base())).unwrap();
        let mut pipe = Pipeline::open(&folder, Options { device, profile: false }).await.unwrap();
        let (pe, ne) = pipe.encode(&prompt).unwrap();
        let guidance = pipe.manifest.defaults.guidance;
        let video = pipe
            .generate(Request {
                prompt_embeds: &pe,
                negative_embeds: Some(&ne),
                latents: Some(&latents),
                seed: 0,
                steps,
                guidance,
                ..Default::default()
            })
            .await
            .unwrap();
        let plane = video.frames * video.height * video.width;
        assert_eq!((video.rgb.len(), want.len()), (3 * plane, 3 * plane), "{device:?}: lengths");
        let mut err = 0f32;
        for c in 0..3 {
            for i in 0..plane {
                let w = (want[c * plane + i] / 2.0 + 0.5).clamp(0.0, 1.0);
                err = err.max((video.rgb[i * 3 + c] - w).abs());
            }
        }
        // The CPU delegate computes as natively (1e-4, as tests/diffusion.rs);
        // SwiftShader's GPU sums in other orders, amplified by guidance: 1e-3.
        let tol = if device == DeviceChoice::Cpu { 1e-4 } else { 1e-3 };
        assert!(err <= tol, "{device:?} on {}: max pixel error {err}", pipe.device());
    }
}
