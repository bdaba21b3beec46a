//! Attention: the CPU delegate against PyTorch's `scaled_dot_product_attention`
//! (float64) goldens, and the GPU kernel against the CPU delegate for self and
//! cross attention, masks, causal, head dims up to 128 and odd lengths.
//!
//! Tolerance: 1e-5 · √kv_len · (1 + max|ref|) for CPU vs PyTorch, 1e-4 · (…)
//! for GPU vs CPU.

use kinema_engine::delegate::gpu::attention::Variant;
use kinema_engine::delegate::{Attention, cpu, gpu};
use kinema_engine::random::uniform as random;

use super::{cases, compare, device, read};

#[test]
fn cpu_attention_matches_pytorch() {
    let (ckpt, cases) = cases("attention");
    for c in &cases {
        let name = c["name"].as_str().unwrap();
        let n = |k: &str| c[k].as_u64().unwrap() as usize;
        let spec = Attention {
            scale: c["scale"].as_f64().unwrap() as f32,
            causal: c["causal"].as_bool().unwrap(),
            mask_per_batch: c["mask_per_batch"].as_bool().unwrap(),
            ..Attention::new(n("batch"), n("heads"), n("q_len"), n("kv_len"), n("head_dim"))
        };
        let mask = c["mask"].as_bool().unwrap().then(|| read(&ckpt, &format!("{name}.mask")));
        let [q, k, v] = ["q", "k", "v"].map(|t| read(&ckpt, &format!("{name}.{t}")));
        let out = cpu::attention::attention(&spec, &q, &k, &v, mask.as_deref()).unwrap();
        let (err, ok) = compare(&out, &read(&ckpt, &format!("{name}.out")), spec.kv_len, 1e-5);
        eprintln!("cpu attention {name}: max abs error {err:.3e}");
        assert!(ok, "{name}: max abs error {err}");
    }
}

#[test]
fn gpu_attention_matches_cpu() {
    let dev = device();
    let specs = [
        Attention::new(1, 1, 1, 1, 1),
        Attention::new(1, 3, 7, 7, 3),
        Attention::new(2, 2, 33, 127, 64),
        Attention::new(1, 1, 130, 1000, 128),
        Attention { causal: true, ..Attention::new(1, 2, 65, 100, 33) },
        Attention { mask_per_batch: true, scale: 0.3, ..Attention::new(2, 3, 20, 41, 16) },
        Attention::new(1, 1, 1000, 7, 8),
    ];
    for (i, spec) in specs.iter().enumerate() {
        let qn = spec.batch * spec.heads * spec.q_len * spec.head_dim;
        let kn = spec.batch * spec.heads * spec.kv_len * spec.head_dim;
        let (q, k, v) = (random(qn, i as u64), random(kn, 10 + i as u64), random(kn, 20 + i as u64));
        let mask = spec.mask_per_batch.then(|| {
            let mut m = random(spec.mask_len(), 30);
            m.iter_mut().step_by(7).for_each(|x| *x = f32::NEG_INFINITY);
            m
        });
        let want = cpu::attention::attention(spec, &q, &k, &v, mask.as_deref()).unwrap();
        let mut variants = vec![Variant::Tiled, Variant::Scores { rows: 4096 }];
        if dev.supports(kinema_shaders::Needs::Subgroups8) {
            variants.push(Variant::Subgroups8 { wg_rows: 8 });
        }
        for variant in variants {
            let got =
                pollster::block_on(gpu::attention::attention_with(&dev, variant, spec, &q, &k, &v, mask.as_deref()))
                    .unwrap();
            let (err, ok) = compare(&got, &want, spec.kv_len, 1e-4);
            assert!(ok, "{variant:?} {spec:?}: max abs error {err}");
        }
    }
}

/// The score-matrix kernel where one unit's scores do not fit what it holds
/// at once: blocks of query rows of one (batch, head) at a time, at offsets
/// that are not on any alignment (odd head dims), with masks and causal —
/// blocks of at most 16 rows, and on a device whose storage bindings hold
/// 32 KiB (8,192 scores at once).
#[test]
fn score_matrix_attention_in_blocks_of_rows_matches_cpu() {
    let limits = wgpu::Limits { max_storage_buffer_binding_size: 32768, ..Default::default() };
    let dev = pollster::block_on(gpu::GpuDevice::with_limits(Some(limits))).unwrap();
    let specs = [
        Attention::new(1, 2, 130, 100, 16),
        Attention { causal: true, ..Attention::new(1, 1, 97, 200, 33) },
        Attention { causal: true, ..Attention::new(1, 3, 97, 128, 32) },
        Attention { mask_per_batch: true, scale: 0.2, ..Attention::new(2, 2, 40, 90, 7) },
        Attention { causal: true, ..Attention::new(1, 2, 45, 60, 5) },
        Attention::new(1, 1, 300, 1000, 3),
    ];
    for (i, spec) in specs.iter().enumerate() {
        let qn = spec.batch * spec.heads * spec.q_len * spec.head_dim;
        let kn = spec.batch * spec.heads * spec.kv_len * spec.head_dim;
        let (q, k, v) = (random(qn, 40 + i as u64), random(kn, 50 + i as u64), random(kn, 60 + i as u64));
        let mask = spec.mask_per_batch.then(|| {
            let mut m = random(spec.mask_len(), 70);
            m.iter_mut().step_by(5).for_each(|x| *x = f32::NEG_INFINITY);
            // A query that sees no key at all: zeros.
            m[..spec.kv_len].iter_mut().for_each(|x| *x = f32::NEG_INFINITY);
            m
        });
        let want = cpu::attention::attention(spec, &q, &k, &v, mask.as_deref()).unwrap();
        for variant in [Variant::Scores { rows: 16 }, Variant::Scores { rows: 4096 }] {
            let got =
                pollster::block_on(gpu::attention::attention_with(&dev, variant, spec, &q, &k, &v, mask.as_deref()))
                    .unwrap();
            assert_eq!(got.len(), want.len());
            let (err, ok) = compare(&got, &want, spec.kv_len, 1e-4);
            assert!(ok, "{variant:?} {spec:?}: max abs error {err}");
            if spec.mask_per_batch {
                assert!(got[..spec.head_dim].iter().all(|&x| x == 0.0), "a query that sees nothing gets zeros");
            }
        }
    }
}

#[test]
fn bad_attention_is_an_error() {
    let spec = Attention::new(1, 1, 2, 2, 129);
    let err = cpu::attention::attention(&spec, &[0.0; 258], &[0.0; 258], &[0.0; 258], None).unwrap_err();
    assert!(err.to_string().contains("head_dim"), "{err}");
    let spec = Attention::new(1, 1, 2, 3, 4);
    assert!(cpu::attention::attention(&spec, &[0.0; 8], &[0.0; 8], &[0.0; 12], None).is_err(), "short k");
    assert!(cpu::attention::attention(&spec, &[0.0; 8], &[0.0; 12], &[0.0; 12], Some(&[0.0; 5])).is_err());
}
