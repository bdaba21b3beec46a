//! matmul, lined up three ways: the CPU delegate against PyTorch goldens
//! (`tools/fixtures/make_kernel_goldens.py`), and the GPU kernel against the
//! CPU delegate on random inputs of awkward shapes, on whatever adapter wgpu
//! finds (lavapipe in CI).
//!
//! Tolerance: |x − ref| ≤ 1e-5 · √k · (1 + max|ref|) for CPU vs PyTorch (f64);
//! the same bound with 1e-4 for GPU vs CPU (different summation orders, f32
//! accumulation, and the GPU's own exp/tanh).

use kinema_engine::delegate::gpu::matmul::{Config, Tiles, matmul_with};
use kinema_engine::delegate::gpu::{GpuDevice, View};
use kinema_engine::delegate::{Activation, Half, Matmul, Operand, cpu, gpu};
use kinema_engine::random::uniform as random;

use super::{activation, cases, compare, configs, device, read};

#[test]
fn cpu_matmul_matches_pytorch() {
    let (ckpt, cases) = cases("matmul");
    for c in &cases {
        let name = c["name"].as_str().unwrap();
        let n = |k: &str| c[k].as_u64().unwrap() as usize;
        let spec = Matmul {
            trans_a: c["trans_a"].as_bool().unwrap(),
            trans_b: c["trans_b"].as_bool().unwrap(),
            activation: activation(c["activation"].as_str().unwrap()),
            ..Matmul::new(n("batch"), n("m"), n("n"), n("k"))
        };
        let bias = c["bias"].as_bool().unwrap().then(|| read(&ckpt, &format!("{name}.bias")));
        let a = read(&ckpt, &format!("{name}.a"));
        let out = if c.get("b_dtype").and_then(|d| d.as_str()) == Some("f16") {
            let b_name = format!("{name}.b");
            let mut b = vec![half::f16::ZERO; ckpt.get(&b_name).unwrap().info.numel() as usize];
            pollster::block_on(ckpt.read_f16(&b_name, &mut b)).unwrap();
            cpu::matmul::matmul_weight(&spec, &a, Operand::from(&b), bias.as_deref()).unwrap()
        } else {
            cpu::matmul::matmul(&spec, &a, &read(&ckpt, &format!("{name}.b")), bias.as_deref()).unwrap()
        };
        let (err, ok) = compare(&out, &read(&ckpt, &format!("{name}.out")), spec.k, 1e-5);
        eprintln!("cpu matmul {name}: max abs error {err:.3e}");
        assert!(ok, "{name}: max abs error {err}");
    }
}

#[test]
fn gpu_matmul_matches_cpu_on_awkward_shapes() {
    let dev = device();
    eprintln!("adapter: {} ({:?})", dev.info.name, dev.info.backend);
    let shapes = [
        (1, 1, 1, 1),
        (1, 3, 7, 33),
        (2, 33, 1, 7),
        (1, 127, 33, 3),
        (3, 7, 127, 64),
        (1, 65, 64, 1000),
        (1, 1, 1000, 5),
    ];
    let acts = [Activation::None, Activation::Relu, Activation::Silu, Activation::GeluTanh, Activation::GeluErf];
    for (i, &(batch, m, n, k)) in shapes.iter().enumerate() {
        for (j, (trans_a, trans_b)) in
            [(false, false), (false, true), (true, false), (true, true)].into_iter().enumerate()
        {
            let spec =
                Matmul { trans_a, trans_b, activation: acts[(i + j) % acts.len()], ..Matmul::new(batch, m, n, k) };
            let a = random(batch * m * k, (i * 8 + j) as u64);
            let b = random(batch * k * n, (i * 8 + j + 100) as u64);
            let bias = (j % 2 == 1).then(|| random(n, 7));
            let want = cpu::matmul::matmul(&spec, &a, &b, bias.as_deref()).unwrap();
            for config in configs(&dev) {
                let got = pollster::block_on(matmul_with(&dev, config, &spec, &a, &b, bias.as_deref())).unwrap();
                let (err, ok) = compare(&got, &want, k, 1e-4);
                assert!(ok, "{config:?} {spec:?} bias={}: max abs error {err}", bias.is_some());
            }
        }
    }
}

/// B as stored: f16 and bf16 values, two per 32-bit word, in place of f32.
fn stored(values: &[f32], half: Half) -> Vec<u8> {
    values
        .iter()
        .flat_map(|&v| match half {
            Half::F16 => half::f16::from_f32(v).to_le_bytes(),
            Half::Bf16 => half::bf16::from_f32(v).to_le_bytes(),
        })
        .collect()
}

#[test]
fn gpu_matmul_with_f16_and_bf16_weights_matches_cpu() {
    // B stored as f16 or bf16 (two per word, so odd lengths and odd strides
    // matter); both delegates widen the same values, so the bound is the f32 one.
    let dev = device();
    for half in [Half::F16, Half::Bf16] {
        for (i, &(batch, m, n, k, trans_b)) in
            [(1, 1, 1, 1, false), (2, 7, 33, 5, true), (1, 65, 64, 128, true), (1, 3, 127, 7, false)].iter().enumerate()
        {
            let spec = Matmul { trans_b, activation: Activation::GeluTanh, ..Matmul::new(batch, m, n, k) };
            let a = random(batch * m * k, i as u64);
            let b = stored(&random(batch * k * n, 10 + i as u64), half);
            let bias = random(n, 20);
            let want = cpu::matmul::matmul_weight(&spec, &a, Operand::Half(half, &b), Some(&bias)).unwrap();
            for config in configs(&dev) {
                let got =
                    pollster::block_on(matmul_with(&dev, config, &spec, &a, Operand::Half(half, &b), Some(&bias)))
                        .unwrap();
                let (err, ok) = compare(&got, &want, k, 1e-4);
                assert!(ok, "{config:?} {half:?} {spec:?}: max abs error {err}");
            }
        }
    }
}

/// Int8 B with per-row scales (`kinema quantize`'s layout): four per word, so
/// lengths and strides of every residue mod 4 matter; both transposes. The CPU
/// widens the same values, so the bound is the f32 one.
#[test]
fn gpu_matmul_with_int8_weights_matches_cpu() {
    use kinema_engine::weights::quant::quantize_int8;
    let dev = device();
    for (i, &(m, n, k, trans_b)) in [
        (1, 1, 1, false),
        (7, 33, 5, true),
        (65, 64, 128, true),
        (3, 127, 7, false),
        (5, 70, 37, true),
        (9, 64, 30, false),
    ]
    .iter()
    .enumerate()
    {
        let spec = Matmul { trans_b, activation: Activation::Silu, ..Matmul::new(1, m, n, k) };
        let a = random(m * k, 30 + i as u64);
        let (q, scales) = quantize_int8(&random(k * n, 40 + i as u64), if trans_b { n } else { k });
        let b = Operand::Int8 { q: bytemuck::cast_slice(&q), scales: &scales };
        let bias = random(n, 50);
        let want = cpu::matmul::matmul_weight(&spec, &a, b, Some(&bias)).unwrap();
        for config in configs(&dev) {
            let got = pollster::block_on(matmul_with(&dev, config, &spec, &a, b, Some(&bias))).unwrap();
            let (err, ok) = compare(&got, &want, k, 1e-4);
            assert!(ok, "{config:?} int8 {spec:?}: max abs error {err}");
        }
    }
}

/// Int4 B in groups along each stored row (`kinema quantize --int4`'s layout):
/// eight per word, short last groups (row lengths not a multiple of the
/// group), odd output counts, both transposes, every kernel configuration. The
/// CPU widens the same values, so the bound is the f32 one.
#[test]
fn gpu_matmul_with_int4_weights_matches_cpu() {
    use kinema_engine::weights::quant::quantize_int4;
    let dev = device();
    for (i, &(m, n, k, trans_b, group)) in [
        (1, 1, 8, true, 8),
        (7, 33, 100, true, 32),
        (65, 64, 128, true, 64),
        (3, 126, 7, false, 8),
        (5, 70, 38, true, 16),
        (9, 64, 30, false, 128),
    ]
    .iter()
    .enumerate()
    {
        let spec = Matmul { trans_b, activation: Activation::Silu, ..Matmul::new(1, m, n, k) };
        let a = random(m * k, 60 + i as u64);
        let (q, scales) = quantize_int4(&random(k * n, 70 + i as u64), if trans_b { n } else { k }, group);
        let b = Operand::Int4 { q: &q, scales: &scales, group };
        let bias = random(n, 80);
        let want = cpu::matmul::matmul_weight(&spec, &a, b, Some(&bias)).unwrap();
        for config in configs(&dev) {
            let got = pollster::block_on(matmul_with(&dev, config, &spec, &a, b, Some(&bias))).unwrap();
            assert_eq!(got.len(), want.len());
            let (err, ok) = compare(&got, &want, k, 1e-4);
            assert!(ok, "{config:?} int4 group {group} {spec:?}: max abs error {err}");
        }
    }
    // A group that is not a multiple of 8 is refused, not misread.
    let spec = Matmul { trans_b: true, ..Matmul::new(1, 1, 2, 12) };
    let (q, scales) = quantize_int4(&random(24, 1), 2, 4);
    let b = Operand::Int4 { q: &q, scales: &scales, group: 4 };
    let err = pollster::block_on(matmul_with(&dev, configs(&dev)[0], &spec, &random(12, 2), b, None)).unwrap_err();
    assert!(err.to_string().contains("multiple of 8"), "{err}");
}

#[test]
fn gpu_matmul_tile_configurations_agree() {
    let dev = device();
    let spec = Matmul { trans_b: true, ..Matmul::new(2, 45, 77, 50) };
    let (a, b) = (random(2 * 45 * 50, 1), random(2 * 50 * 77, 2));
    let want = cpu::matmul::matmul(&spec, &a, &b, None).unwrap();
    let mut all = vec![
        Config::Tiled(Tiles::DEFAULT),
        Config::Tiled(Tiles { wg_m: 8, wg_n: 8, bk: 8 }),
        Config::Tiled(Tiles { wg_m: 4, wg_n: 16, bk: 32 }),
        Config::Tiled(Tiles { wg_m: 8, wg_n: 32, bk: 4 }),
        Config::Blocked(Tiles::DEFAULT),
        Config::Blocked(Tiles { wg_m: 8, wg_n: 16, bk: 16 }),
        Config::Blocked(Tiles { wg_m: 4, wg_n: 8, bk: 4 }),
        Config::Direct { wg_m: 4, wg_n: 16 },
        Config::Direct { wg_m: 16, wg_n: 16 },
    ];
    if dev.supports(kinema_shaders::Needs::Subgroups8) {
        all.extend([1, 2, 4].map(|wg_rows| Config::Subgroups8 { wg_rows }));
    }
    // Lavapipe runs the any-width kernel at its width, 8.
    let eight = dev.supports(kinema_shaders::Needs::Subgroups8);
    assert!(!eight || dev.supports(kinema_shaders::Needs::Subgroups), "8-wide subgroups are some width");
    if dev.supports(kinema_shaders::Needs::Subgroups) {
        all.extend([32, 64, 256].map(|lanes| Config::Subgroups { lanes }));
    }
    for tiles in all {
        let got = pollster::block_on(matmul_with(&dev, tiles, &spec, &a, &b, None)).unwrap();
        let (err, ok) = compare(&got, &want, spec.k, 1e-4);
        assert!(ok, "{tiles:?}: max abs error {err}");
    }
}

/// Split-K on tall-skinny products (two rows, k of 3,000): k in 16 parts
/// summed by the tiled kernel into planes of partial sums, then added up with
/// bias and activation — f32 and int8 weights, both transposes — against the
/// CPU; on a device of 128 KiB bindings too, where a transposed B is bound in
/// windows of columns (each part's plane written window by window), and where
/// the planes would be over one binding (the tiled kernel instead, the same
/// values).
#[test]
fn split_k_sums_parts_of_k_like_the_cpu() {
    use kinema_engine::weights::quant::quantize_int8;
    let small = wgpu::Limits { max_storage_buffer_binding_size: 128 << 10, ..Default::default() };
    let devices = [device(), pollster::block_on(GpuDevice::with_limits(Some(small))).unwrap()];
    let split = Config::SplitK { slices: 16, tiles: Tiles::DEFAULT };
    for (d, dev) in devices.iter().enumerate() {
        let cases = [(2, 50, 3000, true), (2, 50, 3000, false), (40, 300, 700, true)];
        // (B of [k, n] spans every row of k in any window of columns: over 128 KiB.)
        for (i, &(m, n, k, trans_b)) in cases.iter().enumerate().filter(|(_, c)| d == 0 || c.3) {
            let spec = Matmul { trans_b, activation: Activation::GeluTanh, ..Matmul::new(1, m, n, k) };
            let a = random(m * k, 60 + i as u64);
            let f32_b = random(k * n, 70 + i as u64);
            let bias = random(n, 80);
            let (q, scales) = quantize_int8(&f32_b, if trans_b { n } else { k });
            for b in [Operand::F32(&f32_b), Operand::Int8 { q: bytemuck::cast_slice(&q), scales: &scales }] {
                let want = cpu::matmul::matmul_weight(&spec, &a, b, Some(&bias)).unwrap();
                let got = pollster::block_on(matmul_with(dev, split, &spec, &a, b, Some(&bias))).unwrap();
                assert_eq!(got.len(), m * n);
                let (err, ok) = compare(&got, &want, k, 1e-4);
                assert!(ok, "{} {spec:?}: max abs error {err}", dev.info.name);
            }
        }
    }
    assert!(split.describe().contains("in 16 slices of k, summed by matmul_split_sum.wgsl"), "{}", split.describe());
}

#[test]
fn kernels_fit_the_webgpu_default_limits() {
    // A device limited to WebGPU's defaults (256 invocations, 16 KiB of
    // workgroup memory, …) runs the default tiles. (naga checks the kernels'
    // defaults against these limits too: shaders/tests/validate.rs.)
    let dev = pollster::block_on(GpuDevice::with_limits(Some(wgpu::Limits::default()))).unwrap();
    assert_eq!(dev.device.limits().max_compute_invocations_per_workgroup, 256);
    let spec = Matmul::new(1, 5, 6, 7);
    let got = pollster::block_on(gpu::matmul::matmul(&dev, &spec, &random(35, 1), &random(42, 2), None)).unwrap();
    assert_eq!(got.len(), 30);
    // And a tile too large for them is refused with a clear error, not a crash.
    let err = pollster::block_on(matmul_with(
        &dev,
        Config::Tiled(Tiles { wg_m: 32, wg_n: 32, bk: 16 }),
        &spec,
        &random(35, 1),
        &random(42, 2),
        None,
    ))
    .unwrap_err();
    assert!(err.to_string().contains("exceed the device's limits"), "{err}");
    assert!(Tiles::DEFAULT.check(&wgpu::Limits::default()).is_ok());
    assert!(Tiles { wg_m: 16, wg_n: 16, bk: 64 }.check(&wgpu::Limits::default()).is_err(), "32 KiB of tiles");
}

#[test]
fn operands_over_one_binding_are_bound_in_windows() {
    // A device whose storage bindings hold 1 KiB (256 f32; matmuls in windows:
    // `gpu_matmul_binds_large_values_in_windows`).
    let limits = wgpu::Limits { max_storage_buffer_binding_size: 1024, ..Default::default() };
    let dev = pollster::block_on(GpuDevice::with_limits(Some(limits))).unwrap();
    let x = random(1000, 4);
    let got = pollster::block_on(gpu::elementwise::unary(&dev, kinema_engine::delegate::Unary::Exp, &x, 1.0, 0.0));
    let want = cpu::elementwise::unary(kinema_engine::delegate::Unary::Exp, &x, 1.0, 0.0);
    let (err, ok) = compare(&got.unwrap(), &want, 1, 2e-5);
    assert!(ok, "unary in windows: max abs error {err}");
    // A row wider than a binding is a clear error.
    let wide = Matmul::new(1, 1, 1, 300);
    let err = pollster::block_on(matmul_with(&dev, configs(&dev)[0], &wide, &random(300, 5), &random(300, 6), None));
    assert!(err.unwrap_err().to_string().contains("storage binding limit"));
}

/// A transposed B whose rows are long (k = 3,000) on a device of 64 KiB
/// bindings: windows of as few as 4 columns, cut from runs of 5 to 7 too
/// (6 × 3,000 values are over one binding, 4 × 3,000 are not).
#[test]
fn long_rows_of_b_bind_in_windows_of_four_columns() {
    let small = wgpu::Limits { max_storage_buffer_binding_size: 64 << 10, ..Default::default() };
    let dev = pollster::block_on(GpuDevice::with_limits(Some(small))).unwrap();
    let spec = Matmul { trans_b: true, ..Matmul::new(1, 2, 50, 3000) };
    let (a, b) = (random(2 * 3000, 90), random(50 * 3000, 91));
    let want = cpu::matmul::matmul(&spec, &a, &b, None).unwrap();
    for config in configs(&dev) {
        let got = pollster::block_on(matmul_with(&dev, config, &spec, &a, &b, None)).unwrap();
        assert_eq!(got.len(), want.len());
        let (err, ok) = compare(&got, &want, spec.k, 1e-4);
        assert!(ok, "{config:?}: max abs error {err}");
    }
}

#[test]
fn bad_operands_are_errors() {
    let spec = Matmul::new(1, 2, 2, 2);
    assert!(cpu::matmul::matmul(&spec, &[0.0; 3], &[0.0; 4], None).is_err());
    assert!(cpu::matmul::matmul(&spec, &[0.0; 4], &[0.0; 4], Some(&[0.0; 3])).is_err());
    let huge = Matmul::new(usize::MAX, 2, 2, 2);
    assert!(cpu::matmul::matmul(&huge, &[], &[], None).is_err());
}

#[test]
fn the_buffer_pool_reuses_and_stays_bounded() {
    let dev = device();
    let spec = Matmul::new(1, 33, 17, 9);
    let (a, b) = (random(33 * 9, 1), random(9 * 17, 2));
    let first = pollster::block_on(gpu::matmul::matmul(&dev, &spec, &a, &b, None)).unwrap();
    let pooled = dev.pooled_bytes();
    assert!(pooled > 0, "buffers come back to the pool");
    // The same shapes again: served from the pool (which does not grow), same result.
    let second = pollster::block_on(gpu::matmul::matmul(&dev, &spec, &a, &b, None)).unwrap();
    assert_eq!(first, second);
    assert_eq!(dev.pooled_bytes(), pooled);
    // Reused buffers hold old data: a smaller product of a different shape
    // must not read it (bounds and zero padding are per call).
    let spec = Matmul::new(1, 5, 3, 2);
    let (a, b) = (random(10, 3), random(6, 4));
    let got = pollster::block_on(gpu::matmul::matmul(&dev, &spec, &a, &b, None)).unwrap();
    let (err, ok) = compare(&got, &cpu::matmul::matmul(&spec, &a, &b, None).unwrap(), 2, 1e-4);
    assert!(ok, "{err}");
}

/// Values over one storage binding are bound in windows by norm, softmax,
/// attention, broadcast binary ops, reductions, rotary embeddings, f16
/// rounding and copy plans too (here on a device whose bindings
/// hold 4 KiB: 1024 f32), and agree with the CPU delegate.
#[test]
fn norms_attention_binary_and_copies_bind_large_values_in_windows() {
    use kinema_engine::delegate::{Attention, Norm, Softmax};
    let limits = wgpu::Limits { max_storage_buffer_binding_size: 4096, ..Default::default() };
    let dev = pollster::block_on(GpuDevice::with_limits(Some(limits))).unwrap();
    // 100 rows of 30: 3000 values; windows of 32 rows (960 values) start on 256 bytes.
    let x = random(100 * 30, 1);
    let (w, b) = (random(30, 2), random(30, 3));
    for (spec, bias) in [(Norm::layer(100, 30, 1e-5), Some(&b[..])), (Norm::rms(100, 30, 1e-6), None)] {
        let want = cpu::norm::norm(&spec, &x, Some(&w), bias).unwrap();
        let got = pollster::block_on(gpu::norm::norm(&dev, &spec, &x, Some(&w), bias)).unwrap();
        let (err, ok) = compare(&got, &want, 30, 1e-4);
        assert!(ok, "{spec:?}: max abs error {err}");
    }
    // Group norm: 2 batches × 48 channels × 16 positions in 4 groups: 8 rows of
    // 192, bound as windows of whole groups (4 rows).
    let spec = Norm::group(2, 48, 16, 4, 1e-5).unwrap();
    let (x, w, b) = (random(2 * 48 * 16, 4), random(48, 5), random(48, 6));
    let want = cpu::norm::norm(&spec, &x, Some(&w), Some(&b)).unwrap();
    let got = pollster::block_on(gpu::norm::norm(&dev, &spec, &x, Some(&w), Some(&b))).unwrap();
    assert!(compare(&got, &want, 192, 1e-4).1, "group norm in windows");
    let spec = Softmax { rows: 70, n: 48 };
    let x = random(70 * 48, 7);
    let got = pollster::block_on(gpu::norm::softmax(&dev, &spec, &x)).unwrap();
    assert!(compare(&got, &cpu::norm::softmax(&spec, &x).unwrap(), 48, 1e-5).1, "softmax in windows");
    // Attention: 6 batches × 4 heads of 8 × 8: 1536 values per operand.
    let mut spec = Attention::new(6, 4, 8, 8, 8);
    let (q, k, v) = (random(6 * 4 * 64, 8), random(6 * 4 * 64, 9), random(6 * 4 * 64, 10));
    let shared = random(64, 11);
    let per_batch = random(6 * 64, 12);
    for (mask, per) in [(None, false), (Some(&shared[..]), false), (Some(&per_batch[..]), true)] {
        spec.mask_per_batch = per;
        let want = cpu::attention::attention(&spec, &q, &k, &v, mask).unwrap();
        let got = pollster::block_on(gpu::attention::attention(&dev, &spec, &q, &k, &v, mask)).unwrap();
        let (err, ok) = compare(&got, &want, 8, 1e-4);
        assert!(ok, "attention (mask {:?}, per batch {per}) in windows: max abs error {err}", mask.map(<[f32]>::len));
    }
    // Broadcast binary ops, windowed along their outermost axis longer than 1:
    // a broadcast operand bound whole, both operands windowed past a leading 1,
    // and a long vector minus a scalar.
    use kinema_engine::delegate::Binary;
    let cases: [(Binary, &[usize], &[usize]); 4] = [
        (Binary::Add, &[100, 30], &[30]),
        (Binary::Mul, &[1, 96, 16], &[1, 96, 16]),
        (Binary::Sub, &[3000], &[1]),
        (Binary::Div, &[40, 1, 64], &[40, 2, 64]),
    ];
    for (i, (op, a_shape, b_shape)) in cases.into_iter().enumerate() {
        let a = random(a_shape.iter().product(), 20 + i as u64);
        let b: Vec<f32> = random(b_shape.iter().product(), 30 + i as u64).iter().map(|v| v + 2.0).collect();
        let want = cpu::elementwise::binary(op, &a, a_shape, &b, b_shape).unwrap();
        let got = pollster::block_on(gpu::elementwise::binary(&dev, op, &a, a_shape, &b, b_shape)).unwrap();
        assert!(compare(&got, &want, 1, 1e-6).1, "{op:?} {a_shape:?} with {b_shape:?} in windows");
    }
    // Reductions in windows of whole outer rows (30 × 40 → 30 × 8 over axis 5),
    // rotary embeddings in windows of rows whose positions stay global, and
    // rounding through f16 in windows of even length.
    use kinema_engine::delegate::{Reduce, ReduceOp, Rotary};
    let x = random(30 * 5 * 8, 50);
    for op in [ReduceOp::Sum, ReduceOp::Max] {
        let spec = Reduce::over(op, &[30, 5, 8], 1).unwrap();
        let got = pollster::block_on(gpu::norm::reduce(&dev, &spec, &x)).unwrap();
        assert!(compare(&got, &cpu::norm::reduce(&spec, &x).unwrap(), 5, 1e-5).1, "{spec:?} in windows");
    }
    for interleaved in [false, true] {
        let spec = Rotary { outer: 2, len: 12, inner: 5, dim: 16, interleaved };
        let (x, cos, sin) = (random(2 * 12 * 5 * 16, 51), random(12 * 8, 52), random(12 * 8, 53));
        let got = pollster::block_on(gpu::rotary::rotary(&dev, &spec, &x, &cos, &sin)).unwrap();
        let want = cpu::rotary::rotary(&spec, &x, &cos, &sin).unwrap();
        assert!(compare(&got, &want, 2, 1e-6).1, "{spec:?} in windows");
    }
    let x: Vec<f32> = random(3001, 54).iter().map(|v| v * 1000.0).collect();
    let (xb, ob) = (dev.upload("x", &x), dev.output("out", x.len()));
    let mut cmds = dev.commands();
    let views = (View::whole(&xb, x.len()), View::whole(&ob, x.len()));
    pollster::block_on(gpu::cast::encode_round_f16(&dev, &mut cmds, views.0, views.1)).unwrap();
    cmds.submit();
    let got = pollster::block_on(dev.read(&ob, x.len())).unwrap();
    let want: Vec<f32> = x.iter().map(|&v| half::f16::from_f32(v).to_f32()).collect();
    assert_eq!(got, want, "f16 rounding in windows");
    let err = pollster::block_on(gpu::elementwise::binary(
        &dev,
        Binary::Add,
        &random(4000, 40),
        &[2, 2000],
        &random(2000, 41),
        &[2000],
    ))
    .unwrap_err();
    assert!(err.to_string().contains("storage binding limit"), "{err}");
    // Copy plans, split into pieces whose input and output spans fit: a
    // transpose, a slice with steps, a concat, a pad (its fill in windows too)
    // and a nearest upsample (cut at multiples of its factors).
    use kinema_engine::delegate::layout;
    let (m, n) = (random(40 * 50, 50), random(30 * 40, 51));
    let plans: [(&str, layout::CopyPlan, Vec<&[f32]>); 5] = [
        ("transpose", layout::permute(&[40, 50], &[1, 0]).unwrap(), vec![&m]),
        ("slice", layout::slice(&[40, 50], &[1, 3], &[39, 50], &[1, 2]).unwrap(), vec![&m]),
        ("concat", layout::concat(&[&[30, 40], &[30, 40]], 0).unwrap(), vec![&n, &n]),
        ("pad", layout::pad(&[30, 40], &[[3, 2], [5, 7]], -1.5).unwrap(), vec![&n]),
        ("upsample", layout::upsample_nearest(&[1, 30, 40], &[1, 2, 3]).unwrap(), vec![&n]),
    ];
    for (what, plan, xs) in plans {
        let want = cpu::layout::copy(&plan, &xs).unwrap();
        let got = pollster::block_on(gpu::layout::copy(&dev, &plan, &xs)).unwrap();
        assert!(want.len().max(xs[0].len()) > 1024, "{what}: bigger than one binding");
        assert_eq!(got, want, "{what} in windows");
    }
    // A row that cannot fit is still a clear error.
    let wide = Norm::layer(1, 2000, 1e-5);
    let err = pollster::block_on(gpu::norm::norm(&dev, &wide, &random(2000, 13), None, None)).unwrap_err();
    assert!(err.to_string().contains("storage binding limit"), "{err}");
}

/// A matmul over one storage binding is dispatched in windows and agrees with
/// the CPU delegate, on a device whose bindings hold 4 KiB (1024 f32): A, B
/// (f32 and f16, windows starting mid-word) and out each over it, batched, for
/// both kernels; a transposed A whose every row spans the binding is a clear error.
#[test]
fn gpu_matmul_binds_large_values_in_windows() {
    let limits = wgpu::Limits { max_storage_buffer_binding_size: 4096, ..Default::default() };
    let dev = pollster::block_on(GpuDevice::with_limits(Some(limits))).unwrap();
    let cases = [
        Matmul { activation: Activation::Silu, ..Matmul::new(1, 100, 20, 30) },
        Matmul { trans_b: true, ..Matmul::new(1, 9, 70, 40) },
        Matmul::new(1, 40, 64, 8),
        Matmul { activation: Activation::GeluErf, ..Matmul::new(3, 20, 20, 24) },
    ];
    for (i, spec) in cases.into_iter().enumerate() {
        let a = random(spec.batch * spec.m * spec.k, 60 + i as u64);
        let b = random(spec.batch * spec.k * spec.n, 70 + i as u64);
        let bias = random(spec.n, 80 + i as u64);
        let want = cpu::matmul::matmul(&spec, &a, &b, Some(&bias)).unwrap();
        for config in configs(&dev) {
            let got = pollster::block_on(matmul_with(&dev, config, &spec, &a, &b[..], Some(&bias))).unwrap();
            let (err, ok) = compare(&got, &want, spec.k, 1e-4);
            assert!(ok, "{config:?} {spec:?}: max abs error {err}");
        }
    }
    // f16 and bf16 weights of a linear, 70 × 37: 2590 halves in 1295 words;
    // column windows of a multiple of 4 rows of 37 start on odd elements.
    let spec = Matmul { trans_b: true, ..Matmul::new(1, 5, 70, 37) };
    let a = random(5 * 37, 90);
    for half in [Half::F16, Half::Bf16] {
        let b = stored(&random(70 * 37, 91), half);
        let want = cpu::matmul::matmul_weight(&spec, &a, Operand::Half(half, &b), None).unwrap();
        for config in configs(&dev) {
            let got = pollster::block_on(matmul_with(&dev, config, &spec, &a, Operand::Half(half, &b), None)).unwrap();
            let (err, ok) = compare(&got, &want, spec.k, 1e-4);
            assert!(ok, "{config:?} {half:?} {spec:?}: max abs error {err}");
        }
    }
    // Int8 weights of a linear over the binding: 70 × 61 bytes in 1068 words;
    // column windows start mid-word and mid-row, and each element finds its
    // row's scale. Untransposed, B is whole in each row window of A and out.
    for (trans_b, m, k) in [(true, 6, 61), (false, 40, 30)] {
        let spec = Matmul { trans_b, ..Matmul::new(1, m, 70, k) };
        let a = random(m * k, 92);
        let (q, scales) =
            kinema_engine::weights::quant::quantize_int8(&random(70 * k, 93), if trans_b { 70 } else { k });
        let b = Operand::Int8 { q: bytemuck::cast_slice(&q), scales: &scales };
        let want = cpu::matmul::matmul_weight(&spec, &a, b, None).unwrap();
        for config in configs(&dev) {
            let got = pollster::block_on(matmul_with(&dev, config, &spec, &a, b, None)).unwrap();
            let (err, ok) = compare(&got, &want, spec.k, 1e-4);
            assert!(ok, "{config:?} int8 {spec:?}: max abs error {err}");
        }
    }
    // Int4 the same way: 70 rows of 64 in groups of 16, windows start mid-word.
    for (trans_b, m, k) in [(true, 6, 64), (false, 40, 30)] {
        let spec = Matmul { trans_b, ..Matmul::new(1, m, 70, k) };
        let a = random(m * k, 94);
        let (q, scales) =
            kinema_engine::weights::quant::quantize_int4(&random(70 * k, 95), if trans_b { 70 } else { k }, 16);
        let b = Operand::Int4 { q: &q, scales: &scales, group: 16 };
        let want = cpu::matmul::matmul_weight(&spec, &a, b, None).unwrap();
        for config in configs(&dev) {
            let got = pollster::block_on(matmul_with(&dev, config, &spec, &a, b, None)).unwrap();
            let (err, ok) = compare(&got, &want, spec.k, 1e-4);
            assert!(ok, "{config:?} int4 {spec:?}: max abs error {err}");
        }
    }
    let spec = Matmul { trans_a: true, ..Matmul::new(1, 50, 4, 40) };
    let err =
        pollster::block_on(matmul_with(&dev, configs(&dev)[0], &spec, &random(2000, 1), &random(160, 2)[..], None))
            .unwrap_err();
    assert!(err.to_string().contains("storage binding limit"), "{err}");
}

/// Every static choice is one of the tuner's candidates (a class whose
/// default won is saved as that choice and must read back), on lavapipe and
/// on a device of WebGPU's default limits.
#[test]
fn static_choices_are_tuner_candidates() {
    use kinema_engine::delegate::Conv3d;
    use kinema_engine::delegate::gpu::tuning;
    let limited = pollster::block_on(GpuDevice::with_limits(Some(wgpu::Limits::default()))).unwrap();
    for dev in [device(), limited] {
        assert!(tuning::candidates(&dev).contains(&tuning::matmul(&dev)));
        assert!(tuning::attention_candidates(&dev).contains(&tuning::attention(&dev)));
        for c_out in [3, 64] {
            let conv = Conv3d::new(1, 8, c_out, [4, 8, 8], [3, 3, 3]);
            assert!(tuning::conv_candidates(&dev).contains(&tuning::conv(&dev, &conv)), "{c_out} channels");
        }
    }
}

/// The f16-arithmetic kernel (`matmul_f16.wgsl`, a reduced-precision tuner
/// candidate) where the adapter has `shader-f16` (lavapipe does): within f16
/// rounding of the CPU's f32 product on awkward shapes, both transposes, every
/// way B is stored; and really in f16 — a 1-deep product is the CPU's of the
/// inputs rounded to f16, rounded to f16, bit for bit.
#[test]
fn gpu_matmul_in_f16_arithmetic_is_within_f16_rounding() {
    use kinema_engine::weights::quant::quantize_int8;
    let dev = device();
    if !dev.supports(kinema_shaders::Needs::F16) {
        eprintln!("skipped: {} has no shader-f16", dev.info.name);
        return;
    }
    let configs = [
        Config::F16(Tiles::DEFAULT),
        Config::F16(Tiles { wg_m: 8, wg_n: 16, bk: 32 }),
        Config::F16(Tiles { wg_m: 4, wg_n: 8, bk: 4 }),
    ];
    for (i, &(batch, m, n, k, trans_b)) in
        [(1, 1, 1, 1, false), (2, 7, 33, 5, true), (1, 65, 64, 300, true), (1, 3, 127, 70, false)].iter().enumerate()
    {
        let spec = Matmul { trans_b, activation: Activation::Silu, ..Matmul::new(batch, m, n, k) };
        let a = random(batch * m * k, 90 + i as u64);
        let values = random(batch * k * n, 100 + i as u64);
        let bias = random(n, 110);
        let f16 = stored(&values, Half::F16);
        let int8 = (batch == 1).then(|| quantize_int8(&values, if trans_b { n } else { k }));
        let mut operands = vec![Operand::F32(&values), Operand::Half(Half::F16, &f16)];
        if let Some((q, scales)) = &int8 {
            operands.push(Operand::Int8 { q: bytemuck::cast_slice(q), scales });
        }
        for b in operands {
            let want = cpu::matmul::matmul_weight(&spec, &a, b, Some(&bias)).unwrap();
            for config in configs {
                let got = pollster::block_on(matmul_with(&dev, config, &spec, &a, b, Some(&bias))).unwrap();
                let (err, ok) = compare(&got, &want, k, 2e-3);
                assert!(ok, "{config:?} {spec:?}: max abs error {err}");
            }
        }
    }
    // 1 + 2⁻¹² is 1 in f16: f32 arithmetic would give 1.000244 · 3.
    let spec = Matmul::new(1, 2, 2, 1);
    let (a, b) = ([1.0 + 2f32.powi(-12), 0.1], [3.0, 1.0 / 3.0]);
    let round = |x: f32| half::f16::from_f32(x).to_f32();
    let want: Vec<f32> = a.iter().flat_map(|&x| b.iter().map(move |&y| round(round(x) * round(y)))).collect();
    let got = pollster::block_on(matmul_with(&dev, configs[0], &spec, &a, &b[..], None)).unwrap();
    assert_eq!(got, want);
    assert_eq!(got[0], 3.0);
}

/// Every candidate of the adapter — matmul (split-K among them), conv3d and
/// attention — is kept in a tuning table and read back as itself.
#[test]
fn every_tuning_candidate_round_trips_through_the_table() {
    use kinema_engine::delegate::gpu::tune::{Choice, Class, Entry, Table};
    use kinema_engine::delegate::gpu::tuning;
    let dev = device();
    let choices: Vec<Choice> = tuning::candidates(&dev)
        .into_iter()
        .map(Choice::Matmul)
        .chain(tuning::conv_candidates(&dev).into_iter().map(Choice::Conv))
        .chain(tuning::attention_candidates(&dev).into_iter().map(Choice::Attention))
        .collect();
    assert!(choices.contains(&Choice::Matmul(Config::SplitK { slices: 16, tiles: Tiles::DEFAULT })));
    for (i, &choice) in choices.iter().enumerate() {
        let class = Class::Matmul { m: i as u32, n: 1, k: 1 };
        let mut table = Table::default();
        table.entries.insert(class, Entry { choice, ms: 1.0, default_ms: 2.0, shape: [1, 2, 3] });
        let back = Table::from_json(&table.to_json(&dev), &dev).unwrap_or_else(|e| panic!("{choice:?}: {e}"));
        assert_eq!(back, table, "{choice:?}");
    }
}
