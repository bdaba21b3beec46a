//! The matmul kernel on the browser's WebGPU (SwiftShader in headless
//! Chromium), against the CPU delegate compiled to wasm32.
#![cfg(target_arch = "wasm32")]

use kinema_engine::delegate::gpu::GpuDevice;
use kinema_engine::delegate::{Activation, Matmul, cpu, gpu};
use kinema_engine::random::uniform as random;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
async fn webgpu_matmul_matches_the_cpu_delegate() {
    let dev = GpuDevice::new().await.expect("WebGPU adapter (Chromium with --enable-unsafe-webgpu)");
    let shapes = [(1, 1, 1, 1), (2, 3, 7, 33), (1, 127, 33, 7), (1, 65, 64, 100)];
    for (i, &(batch, m, n, k)) in shapes.iter().enumerate() {
        let spec = Matmul {
            trans_b: i % 2 == 1,
            trans_a: i == 2,
            activation: [Activation::None, Activation::GeluErf, Activation::Silu, Activation::Relu][i],
            ..Matmul::new(batch, m, n, k)
        };
        let a = random(batch * m * k, i as u64);
        let b = random(batch * k * n, i as u64 + 50);
        let bias = random(n, 9);
        let want = cpu::matmul::matmul(&spec, &a, &b, Some(&bias)).unwrap();
        let got = gpu::matmul::matmul(&dev, &spec, &a, &b, Some(&bias)).await.unwrap();
        let scale = 1.0 + want.iter().fold(0f32, |m, v| m.max(v.abs()));
        let err = got.iter().zip(&want).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(err <= 1e-4 * (k as f32).sqrt() * scale, "{spec:?}: max abs error {err} on {}", dev.info.name);
    }
}
