//! `kinema quantize --int8|--int4` end to end: the tiny Wan transformer's
//! sharded checkpoint to one quantized file — every matrix I8 with its per-row
//! scales, or int4 in groups, every other tensor byte for byte — which its
//! program then runs unchanged on both delegates, close to PyTorch's f32 output.

use std::process::{Command, Output};

use kinema_engine::weights::Checkpoint;
use kinema_engine::weights::dtype::Dtype;
use kinema_engine::weights::quant::{Scheme, dequantize_int4, dequantize_int8, scale_key};
use kinema_tests::{TempDir, fixture};

fn kinema(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_kinema")).args(args).output().expect("run kinema");
    assert!(out.status.success(), "kinema {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn read(ckpt: &Checkpoint, name: &str) -> Vec<f32> {
    let mut v = vec![0f32; ckpt.get(name).unwrap().info.numel() as usize];
    pollster::block_on(ckpt.read_f32(name, &mut v)).unwrap();
    v
}

#[test]
fn int8_checkpoints_run_their_programs_unchanged() {
    quantized_checkpoints_run_their_programs_unchanged(Scheme::Int8, 2e-2);
}

/// int4 in groups of 8 (the tiny model's rows are 16–64 long): a coarser
/// grid, so a looser bound on the output than int8's.
#[test]
fn int4_checkpoints_run_their_programs_unchanged() {
    quantized_checkpoints_run_their_programs_unchanged(Scheme::Int4 { group: 8 }, 1e-1);
}

fn quantized_checkpoints_run_their_programs_unchanged(scheme: Scheme, bound: f32) {
    let base = fixture("programs/wan_transformer");
    let tmp = TempDir::new("quantize");
    let q = tmp.0.join("quantized.safetensors");
    let (src, qs) = (base.join("transformer"), q.display().to_string());
    let group = match scheme {
        Scheme::Int8 => vec!["--int8"],
        Scheme::Int4 { .. } => vec!["--int4", "--group", "8"],
    };
    let mut args = vec!["quantize", src.to_str().unwrap(), "--min-elements", "64", "-o", &qs];
    args.extend(group);
    kinema(&args);

    let original = pollster::block_on(Checkpoint::open(src.to_str().unwrap())).unwrap();
    let quantized = pollster::block_on(Checkpoint::open(&qs)).unwrap();
    let mut matrices = 0;
    for t in original.tensors() {
        let shape = &t.info.shape;
        if shape.len() == 2 && shape.iter().product::<u64>() >= 64 {
            matrices += 1;
            let qt = quantized.get(t.name).unwrap();
            let (rows, row_len) = (shape[0] as usize, shape[1] as usize);
            let scales = read(&quantized, &scale_key(t.name));
            let mut bytes = vec![0u8; qt.info.byte_len() as usize];
            pollster::block_on(quantized.read_bytes(t.name, &mut bytes)).unwrap();
            let mut back = vec![0f32; rows * row_len];
            let per_row = match scheme {
                Scheme::Int8 => {
                    assert_eq!((qt.info.dtype, &qt.info.shape), (Dtype::I8, shape), "{}", t.name);
                    dequantize_int8(&bytes, &scales, 0, row_len, &mut back);
                    1
                }
                Scheme::Int4 { group } => {
                    assert_eq!((qt.info.dtype, &qt.info.shape[..]), (Dtype::U8, &[shape[0], shape[1] / 2][..]));
                    dequantize_int4(&bytes, &scales, 0, row_len, group, &mut back);
                    row_len.div_ceil(group)
                }
            };
            assert_eq!(scales.len(), rows * per_row, "{}", t.name);
            assert_eq!(quantized.quantized(t.name).map(|q| q.scheme), Some(scheme), "{} reads back", t.name);
            let want = read(&original, t.name);
            for (i, (a, b)) in want.iter().zip(&back).enumerate() {
                let s = scales[(i / row_len) * per_row + (i % row_len) * per_row / row_len];
                assert!((a - b).abs() <= s / 2.0 * 1.0001, "{} [{i}]: {a} vs {b}", t.name);
            }
        } else {
            let mut a = vec![0u8; t.info.byte_len() as usize];
            let mut b = a.clone();
            pollster::block_on(original.read_bytes(t.name, &mut a)).unwrap();
            pollster::block_on(quantized.read_bytes(t.name, &mut b)).unwrap();
            assert_eq!(a, b, "{} is copied as it is", t.name);
        }
    }
    assert!(matrices >= 10, "the linears are quantized ({matrices})");
    assert_eq!(quantized.len(), original.len() + matrices, "one scale tensor per matrix");

    let io = pollster::block_on(Checkpoint::open(base.join("io.safetensors").to_str().unwrap())).unwrap();
    let want = read(&io, "out0");
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    for device in ["cpu", "gpu"] {
        let out = tmp.0.join(format!("out-{device}.safetensors"));
        let program = base.join("program.json");
        let io_path = base.join("io.safetensors");
        kinema(&[
            "run",
            program.to_str().unwrap(),
            "--weights",
            &qs,
            "--inputs",
            io_path.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
            "--device",
            device,
        ]);
        let got = read(&pollster::block_on(Checkpoint::open(out.to_str().unwrap())).unwrap(), "out0");
        assert_eq!(got.len(), want.len());
        let err = got.iter().zip(&want).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        eprintln!("{device}: {scheme:?} max abs error {err:.3e}, relative to max |ref| {:.3e}", err / scale);
        assert!(err <= bound * scale, "{device}: {err} against max |ref| {scale}");
        assert!(err > 0.0, "{device}: quantized weights cannot give PyTorch's f32 output exactly");
    }
}

/// `kinema run --random-weights`: seeded parameters of the program's shapes in
/// each dtype, no checkpoint needed (the device check's real-size runs): the
/// same seed gives the same output, and the GPU delegate gives the CPU's.
#[test]
fn random_weights_run_a_program_without_a_checkpoint() {
    let base = fixture("programs/wan_transformer");
    let tmp = TempDir::new("random-weights");
    let program = base.join("program.json");
    let io = base.join("io.safetensors");
    for dtype in ["f32", "f16", "bf16", "int8", "int4"] {
        let mut outs = Vec::new();
        for device in ["cpu", "cpu", "gpu"] {
            let out = tmp.0.join(format!("{dtype}-{device}-{}.safetensors", outs.len()));
            let run = kinema(&[
                "run",
                program.to_str().unwrap(),
                "--random-weights",
                "7",
                "--dtype",
                dtype,
                "--inputs",
                io.to_str().unwrap(),
                "--output",
                out.to_str().unwrap(),
                "--device",
                device,
            ]);
            assert!(String::from_utf8_lossy(&run.stderr).contains("ran in"));
            outs.push(read(&pollster::block_on(Checkpoint::open(out.to_str().unwrap())).unwrap(), "out0"));
        }
        assert_eq!(outs[0], outs[1], "{dtype}: the same seed, the same output");
        assert_eq!(outs[0].len(), outs[2].len());
        let scale = 1.0 + outs[0].iter().fold(0f32, |m, v| m.max(v.abs()));
        let err = outs[0].iter().zip(&outs[2]).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(err <= 5e-4 * scale, "{dtype}: GPU against CPU {err}");
        assert!(outs[0].iter().all(|v| v.is_finite()) && scale > 1.0, "{dtype}: finite, not all zero");
    }
}

/// `--save-weights` and `--save-inputs` write what a random-weights run ran on
/// (scripts/real-width-fixture.sh hands them to the browser test): run again
/// from the saved files, the program gives the same output bit for bit, in
/// each stored dtype.
#[test]
fn saved_random_weights_and_inputs_run_the_same() {
    let program = fixture("programs/wan_transformer").join("program.json");
    let tmp = TempDir::new("save-weights");
    let path = |f: &str| tmp.0.join(f).to_str().unwrap().to_string();
    for dtype in ["f16", "int8"] {
        let (weights, inputs) = (path(&format!("{dtype}.safetensors")), path("inputs.safetensors"));
        let (first, second) = (path(&format!("{dtype}-1.safetensors")), path(&format!("{dtype}-2.safetensors")));
        let p = program.to_str().unwrap();
        let a = ["run", p, "--random-weights", "3", "--dtype", dtype, "--save-weights", &weights];
        kinema(&[&a[..], &["--save-inputs", &inputs, "--output", &first, "--device", "cpu"]].concat());
        kinema(&["run", p, "--weights", &weights, "--inputs", &inputs, "--output", &second, "--device", "cpu"]);
        let out = |f: &str| read(&pollster::block_on(Checkpoint::open(f)).unwrap(), "out0");
        let (x, y) = (out(&first), out(&second));
        assert!(!x.is_empty() && x.iter().all(|v| v.is_finite()));
        assert_eq!(x, y, "{dtype}");
        let saved = pollster::block_on(Checkpoint::open(&weights)).unwrap();
        let stored = |d: kinema_engine::weights::Dtype| saved.tensors().any(|t| t.info.dtype == d);
        let want = if dtype == "f16" { kinema_engine::weights::Dtype::F16 } else { kinema_engine::weights::Dtype::I8 };
        assert!(stored(want), "{dtype}: the checkpoint keeps the stored dtype");
    }
}
