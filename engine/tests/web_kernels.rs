//! The matmul, conv3d and attention kernels on the browser's WebGPU
//! (SwiftShader in headless Chromium), against the CPU delegate compiled to wasm32.
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
        assert_eq!(got.len(), want.len(), "lengths");
        let err = got.iter().zip(&want).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(err <= 1e-4 * (k as f32).sqrt() * scale, "{spec:?}: max abs error {err} on {}", dev.info.name);
    }
}

/// The CPU delegate's own sgemm in wasm (packed panels, SIMD128 micro-kernel)
/// against a direct f64 sum, on shapes that cross its panels of k (256) and
/// n (1024) and leave partial tiles, with both layouts of each operand.
#[wasm_bindgen_test]
fn wasm_cpu_matmul_matches_a_direct_sum() {
    for (i, &(m, n, k)) in [(70, 1030, 300), (5, 9, 513), (33, 17, 1)].iter().enumerate() {
        for (trans_a, trans_b) in [(false, false), (true, true), (false, true)] {
            let spec = Matmul { trans_a, trans_b, ..Matmul::new(1, m, n, k) };
            let (a, b) = (random(m * k, 70 + i as u64), random(k * n, 80 + i as u64));
            let got = cpu::matmul::matmul(&spec, &a, &b, None).unwrap();
            let at = |r: usize, p: usize| if trans_a { a[p * m + r] } else { a[r * k + p] } as f64;
            let bt = |p: usize, c: usize| if trans_b { b[c * k + p] } else { b[p * n + c] } as f64;
            let mut err = 0f64;
            for r in 0..m {
                for c in 0..n {
                    let want: f64 = (0..k).map(|p| at(r, p) * bt(p, c)).sum();
                    err = err.max((got[r * n + c] as f64 - want).abs());
                }
            }
            assert!(err <= 1e-5 * (k as f64).sqrt() * 4.0, "{spec:?}: max abs error {err}");
        }
    }
}

#[wasm_bindgen_test]
async fn webgpu_conv3d_matches_the_cpu_delegate() {
    use kinema_engine::delegate::Conv3d;
    let dev = GpuDevice::new().await.expect("WebGPU adapter");
    let specs = [
        Conv3d::new(1, 3, 7, [3, 5, 6], [3, 3, 3]).padded([1, 1, 1]),
        Conv3d {
            stride: [2, 1, 2],
            padding: [[2, 0], [1, 1], [0, 1]],
            dilation: [1, 2, 1],
            groups: 2,
            activation: Activation::Silu,
            ..Conv3d::new(2, 4, 6, [5, 7, 9], [3, 2, 3])
        },
    ];
    for (i, spec) in specs.iter().enumerate() {
        let x = random(spec.batch * spec.c_in * spec.input.iter().product::<usize>(), i as u64);
        let w = random(spec.c_out * spec.k(), 10 + i as u64);
        let bias = random(spec.c_out, 20);
        let want = cpu::conv::conv3d(spec, &x, &w, Some(&bias)).unwrap();
        let got = gpu::conv::conv3d(&dev, spec, &x, &w, Some(&bias)).await.unwrap();
        let scale = 1.0 + want.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert_eq!(got.len(), want.len(), "lengths");
        let err = got.iter().zip(&want).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(err <= 1e-4 * (spec.k() as f32).sqrt() * scale, "{spec:?}: max abs error {err} on {}", dev.info.name);
    }
}

#[wasm_bindgen_test]
async fn webgpu_attention_matches_the_cpu_delegate() {
    use kinema_engine::delegate::Attention;
    let dev = GpuDevice::new().await.expect("WebGPU adapter");
    let specs = [
        Attention::new(1, 2, 33, 33, 64),
        Attention { causal: true, ..Attention::new(2, 1, 7, 65, 128) },
        Attention::new(1, 3, 100, 5, 3),
    ];
    for (i, spec) in specs.iter().enumerate() {
        let qn = spec.batch * spec.heads * spec.q_len * spec.head_dim;
        let kn = spec.batch * spec.heads * spec.kv_len * spec.head_dim;
        let (q, k, v) = (random(qn, i as u64), random(kn, 10 + i as u64), random(kn, 20 + i as u64));
        let want = cpu::attention::attention(spec, &q, &k, &v, None).unwrap();
        let got = gpu::attention::attention(&dev, spec, &q, &k, &v, None).await.unwrap();
        let scale = 1.0 + want.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert_eq!(got.len(), want.len(), "lengths");
        let err = got.iter().zip(&want).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(
            err <= 1e-4 * (spec.kv_len as f32).sqrt() * scale,
            "{spec:?}: max abs error {err} on {}",
            dev.info.name
        );
    }
}

/// Every matmul kernel the tuner may pick on this adapter, and the f16 ones
/// where it has `shader-f16`, against the CPU delegate (f16 arithmetic within
/// f16 rounding): on SwiftShader, whatever subgroups and f16 it offers.
#[wasm_bindgen_test]
async fn webgpu_matmul_candidates_match_the_cpu_delegate() {
    use gpu::matmul::{Config, Tiles};
    let dev = GpuDevice::new().await.expect("WebGPU adapter");
    let mut configs = gpu::tuning::candidates(&dev);
    if dev.supports(kinema_shaders::Needs::F16) {
        configs.push(Config::F16(Tiles::DEFAULT));
    }
    web_sys::console::log_1(
        &format!(
            "{}: features {:?}, subgroups {}–{}, {} matmul configurations",
            dev.info.name,
            dev.optional_features(),
            dev.info.subgroup_min_size,
            dev.info.subgroup_max_size,
            configs.len()
        )
        .into(),
    );
    for (i, &(m, n, k, trans_b)) in [(33, 70, 45, true), (5, 64, 128, false)].iter().enumerate() {
        let spec = Matmul { trans_b, activation: Activation::GeluTanh, ..Matmul::new(1, m, n, k) };
        let (a, b, bias) = (random(m * k, 60 + i as u64), random(k * n, 70 + i as u64), random(n, 80));
        let want = cpu::matmul::matmul(&spec, &a, &b, Some(&bias)).unwrap();
        let scale = 1.0 + want.iter().fold(0f32, |m, v| m.max(v.abs()));
        for &config in &configs {
            let got = gpu::matmul::matmul_with(&dev, config, &spec, &a, &b[..], Some(&bias)).await.unwrap();
            assert_eq!(got.len(), want.len(), "lengths");
            let err = got.iter().zip(&want).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
            let tol = if config.reduced_precision() { 2e-3 } else { 1e-4 };
            assert!(err <= tol * (k as f32).sqrt() * scale, "{config:?} {spec:?}: max abs error {err}");
        }
    }
}

/// The device asks for the adapter's own limits, not WebGPU's defaults: a
/// model's big buffers and bindings get what the hardware allows.
#[wasm_bindgen_test]
async fn the_device_has_the_adapters_limits() {
    use js_sys::Reflect;
    let dev = GpuDevice::new().await.expect("WebGPU adapter");
    let navigator = Reflect::get(&js_sys::global(), &"navigator".into()).unwrap();
    let gpu = Reflect::get(&navigator, &"gpu".into()).unwrap();
    let request: js_sys::Function = Reflect::get(&gpu, &"requestAdapter".into()).unwrap().into();
    let adapter =
        wasm_bindgen_futures::JsFuture::from(js_sys::Promise::from(request.call0(&gpu).unwrap())).await.unwrap();
    let limits = Reflect::get(&adapter, &"limits".into()).unwrap();
    let limit = |k: &str| Reflect::get(&limits, &k.into()).unwrap().as_f64().unwrap();
    let have = dev.device.limits();
    assert_eq!(have.max_buffer_size as f64, limit("maxBufferSize"));
    assert_eq!(have.max_storage_buffer_binding_size as f64, limit("maxStorageBufferBindingSize"));
    assert_eq!(have.max_compute_workgroup_storage_size as f64, limit("maxComputeWorkgroupStorageSize"));
}
