//! Checkpoints written by the reference writers (the Python `safetensors`
//! package, diffusers' `save_pretrained` with `max_shard_size`), read back and
//! compared with goldens PyTorch computed from the tensors in memory.

use half::f16;
use kinema_engine::Error;
use kinema_engine::weights::{Checkpoint, Dtype, Manifest};
use kinema_tests::{copy_fixture_dir, fixture, weights_golden};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn open(rel: &str) -> Checkpoint {
    pollster::block_on(Checkpoint::open(fixture(rel).to_str().unwrap())).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Relative closeness for the f64 statistics (sums may be added in another order).
fn close(a: Option<f64>, b: &Value) -> bool {
    match (a, b.as_f64()) {
        (None, None) => b.is_null(),
        (Some(x), Some(y)) => x == y || (x - y).abs() <= 1e-12 * x.abs().max(y.abs()),
        _ => false,
    }
}

/// Every tensor: dtype, shape, raw bytes (by SHA-256) and statistics equal the golden.
fn check_against_golden(ckpt: &Checkpoint, golden: &Value) {
    let golden = golden.as_object().unwrap();
    assert_eq!(ckpt.len(), golden.len(), "tensor count");
    for t in ckpt.tensors() {
        let g = &golden[t.name];
        assert_eq!(t.info.dtype.name(), g["dtype"], "{}", t.name);
        let shape: Vec<u64> = g["shape"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
        assert_eq!(t.info.shape, shape, "{}", t.name);
        let mut bytes = vec![0u8; t.info.byte_len() as usize];
        pollster::block_on(ckpt.read_bytes(t.name, &mut bytes)).unwrap();
        assert_eq!(hex(&Sha256::digest(&bytes)), g["sha256"], "{} bytes", t.name);
        let s = pollster::block_on(ckpt.stats(t.name)).unwrap();
        assert_eq!(s.count, g["count"].as_u64().unwrap(), "{}", t.name);
        assert_eq!((s.nan, s.inf), (g["nan"].as_u64().unwrap(), g["inf"].as_u64().unwrap()), "{}", t.name);
        assert!(close(s.min, &g["min"]) && close(s.max, &g["max"]), "{}: {s:?} vs {g}", t.name);
        assert!(close(s.mean, &g["mean"]), "{}: mean {:?} vs {}", t.name, s.mean, g["mean"]);
    }
}

#[test]
fn every_dtype_from_the_safetensors_package() {
    let ckpt = open("weights/dtypes.safetensors");
    assert!(!ckpt.is_sharded());
    check_against_golden(&ckpt, &weights_golden()["dtypes.safetensors"]);
    let meta = &ckpt.shards()[0].header.metadata;
    assert_eq!(meta["format"], "pt");
    assert_eq!(meta["note"], "ünïcödé ✓");
    let dtypes: std::collections::BTreeSet<Dtype> = ckpt.tensors().map(|t| t.info.dtype).collect();
    assert_eq!(dtypes.len(), Dtype::ALL.len(), "the fixture covers every supported dtype");
}

/// NaN equals NaN; otherwise the bits must match (so -0.0 ≠ 0.0).
fn same_f32(a: f32, b: f32) -> bool {
    (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits()
}

fn same_f16(a: f16, b: f16) -> bool {
    (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits()
}

#[test]
fn float_conversions_match_pytorch_bit_for_bit() {
    let ckpt = open("weights/dtypes.safetensors");
    let golden = open("weights/dtypes.golden.safetensors");
    let mut checked = 0;
    for t in ckpt.tensors().filter(|t| t.info.dtype.is_float()) {
        let n = t.info.numel() as usize;
        let mut got32 = vec![0f32; n];
        let mut want32 = vec![0f32; n];
        pollster::block_on(ckpt.read_f32(t.name, &mut got32)).unwrap();
        pollster::block_on(golden.read_f32(&format!("{}.f32", t.name), &mut want32)).unwrap();
        for (i, (a, b)) in got32.iter().zip(&want32).enumerate() {
            assert!(same_f32(*a, *b), "{}[{i}] → f32: {a} vs PyTorch {b}", t.name);
        }
        // The same values a window at a time (windows of 6 bytes: whole elements, in order).
        let mut windows = Vec::new();
        let mut next = 0;
        pollster::block_on(ckpt.read_f32_windows(t.name, 6, |at, values| {
            assert_eq!(at, next, "{}: windows in order", t.name);
            assert!(!values.is_empty() && values.len() * t.info.dtype.size() <= 6.max(t.info.dtype.size()));
            next += values.len();
            windows.extend_from_slice(values);
            Ok(())
        }))
        .unwrap();
        assert!(windows.iter().zip(&want32).all(|(a, b)| same_f32(*a, *b)) && windows.len() == n, "{}", t.name);
        let mut got16 = vec![f16::ZERO; n];
        let mut want16 = vec![f16::ZERO; n];
        pollster::block_on(ckpt.read_f16(t.name, &mut got16)).unwrap();
        pollster::block_on(golden.read_f16(&format!("{}.f16", t.name), &mut want16)).unwrap();
        for (i, (a, b)) in got16.iter().zip(&want16).enumerate() {
            assert!(same_f16(*a, *b), "{}[{i}] → f16: {a} vs PyTorch {b}", t.name);
        }
        checked += 1;
    }
    assert_eq!(checked, 9, "float tensors in the fixture");
}

#[test]
fn conversion_refuses_integers_and_wrong_sizes() {
    let ckpt = open("weights/dtypes.safetensors");
    let mut out = vec![0f32; 6];
    let err = pollster::block_on(ckpt.read_f32("i64", &mut out)).unwrap_err();
    assert!(err.to_string().contains("cannot convert I64 to F32"), "{err}");
    let mut short = vec![0f32; 5];
    let err = pollster::block_on(ckpt.read_f32("f32", &mut short)).unwrap_err();
    assert!(err.to_string().contains("has 381 elements but the buffer holds 5"), "{err}");
    let err = pollster::block_on(ckpt.read_f32("nope", &mut short)).unwrap_err();
    assert!(matches!(err, Error::UnknownTensor { .. }), "{err}");
}

#[test]
fn sharded_diffusers_checkpoints_by_folder_and_by_index() {
    let golden = weights_golden();
    for (dir, shards) in [("wan_transformer_sharded", 5), ("wan_vae_sharded", 3)] {
        let by_folder = open(&format!("weights/{dir}"));
        let by_index = open(&format!("weights/{dir}/diffusion_pytorch_model.safetensors.index.json"));
        for ckpt in [&by_folder, &by_index] {
            assert!(ckpt.is_sharded());
            assert_eq!(ckpt.shards().len(), shards, "{dir}");
            check_against_golden(ckpt, &golden[dir]);
            // diffusers records the sum of the tensors' bytes.
            assert_eq!(ckpt.index_metadata()["total_size"].as_u64(), Some(ckpt.total_bytes()), "{dir}");
        }
    }
}

#[test]
fn sharded_tensor_reads_convert_too() {
    let ckpt = open("weights/wan_transformer_sharded");
    let t = ckpt.get("blocks.1.ffn.net.0.proj.weight").unwrap();
    let mut raw = vec![0u8; t.info.byte_len() as usize];
    pollster::block_on(ckpt.read_bytes(t.name, &mut raw)).unwrap();
    let mut f16s = vec![f16::ZERO; t.info.numel() as usize];
    pollster::block_on(ckpt.read_f16(t.name, &mut f16s)).unwrap();
    for (c, h) in raw.chunks_exact(4).zip(&f16s) {
        assert_eq!(*h, f16::from_f32(f32::from_le_bytes(c.try_into().unwrap())));
    }
}

#[test]
fn sha256_manifests_verify_and_catch_tampering() {
    // sha256sum output, and a Git LFS pointer.
    let ckpt = open("weights/wan_vae_sharded");
    let manifest = Manifest::load(&fixture("weights/wan_vae_sharded/SHA256SUMS"), &ckpt).unwrap();
    let verified = pollster::block_on(ckpt.verify(&manifest)).unwrap();
    assert_eq!(verified.len(), 3);
    let single = open("weights/dtypes.safetensors");
    let lfs = Manifest::load(&fixture("weights/dtypes.lfs"), &single).unwrap();
    pollster::block_on(single.verify(&lfs)).unwrap();

    // Flip one data byte of one shard: its header still validates, its digest does not.
    let tmp = copy_fixture_dir("weights/wan_vae_sharded", "tamper");
    let shard = tmp.path("diffusion_pytorch_model-00002-of-00003.safetensors");
    let mut bytes = std::fs::read(&shard).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&shard, bytes).unwrap();
    let tampered = pollster::block_on(Checkpoint::open(tmp.0.to_str().unwrap())).unwrap();
    let manifest = Manifest::load(&tmp.path("SHA256SUMS"), &tampered).unwrap();
    let err = pollster::block_on(tampered.verify(&manifest)).unwrap_err();
    match err {
        Error::DigestMismatch { file, .. } => assert_eq!(file, "diffusion_pytorch_model-00002-of-00003.safetensors"),
        e => panic!("expected a digest mismatch, got {e}"),
    }

    // A manifest that leaves a shard out is an error, not a pass.
    std::fs::write(
        tmp.path("PARTIAL"),
        std::fs::read_to_string(tmp.path("SHA256SUMS")).unwrap().lines().next().unwrap(),
    )
    .unwrap();
    let partial = Manifest::load(&tmp.path("PARTIAL"), &tampered).unwrap();
    let err = pollster::block_on(tampered.verify(&partial)).unwrap_err();
    assert!(err.to_string().contains("no digest for shard"), "{err}");
}

#[test]
fn files_we_write_read_back_in_the_reference() {
    // Every dtype of the fixture, rewritten by Kinema's writer, read by the
    // `safetensors` crate: same names, dtypes, shapes and bytes.
    use kinema_engine::weights::writer::{TensorSpec, to_bytes};
    let ckpt = open("weights/dtypes.safetensors");
    let mut tensors = Vec::new();
    for t in ckpt.tensors() {
        let mut bytes = vec![0u8; t.info.byte_len() as usize];
        pollster::block_on(ckpt.read_bytes(t.name, &mut bytes)).unwrap();
        tensors.push((TensorSpec::new(t.name, t.info.dtype, &t.info.shape), bytes));
    }
    let refs: Vec<(TensorSpec, &[u8])> = tensors.iter().map(|(s, b)| (s.clone(), &b[..])).collect();
    let meta = std::collections::BTreeMap::from([("k".to_string(), "v".to_string())]);
    let file = to_bytes(&refs, &meta);
    let reference = safetensors::SafeTensors::deserialize(&file).expect("the reference reads our file");
    assert_eq!(reference.len(), tensors.len());
    for (spec, bytes) in &tensors {
        let r = reference.tensor(&spec.name).unwrap();
        assert_eq!(format!("{:?}", r.dtype()), spec.dtype.name());
        assert_eq!(r.shape().iter().map(|&d| d as u64).collect::<Vec<_>>(), spec.shape);
        assert_eq!(r.data(), &bytes[..]);
    }
    let (_, metadata) = safetensors::SafeTensors::read_metadata(&file).unwrap();
    assert_eq!(metadata.metadata().as_ref().unwrap()["k"], "v");
}
