//! A CPU `Session` writes every kernel's output straight into its arena slot:
//! a run allocates no buffer the size of an intermediate value.
//!
//! This binary counts every heap allocation (a global allocator wrapper), so it
//! holds one test: nothing else allocates alongside it.

use std::collections::BTreeMap;

use kinema_engine::delegate::{Activation, DeviceChoice, Matmul, Norm, cpu};
use kinema_engine::program::Program;
use kinema_engine::runtime::{Options, Session};
use kinema_engine::weights::writer::{TensorSpec, to_bytes};
use kinema_engine::weights::{Checkpoint, Dtype};
use kinema_tests::counting_alloc::{self, Counting};

#[global_allocator]
static ALLOC: Counting = Counting;

const MIB: usize = 1 << 20;

#[test]
fn a_cpu_run_allocates_nothing_the_size_of_an_intermediate() {
    // x [1024, 256] → linear to 4096 + GELU → RMS norm → softmax → linear back to 256:
    // three intermediates of 16 MiB each, an output of 1 MiB.
    let (m, k, n) = (1024usize, 256usize, 4096usize);
    let x = kinema_engine::random::uniform(m * k, 1);
    let (w1, b1, g, w2) = (
        kinema_engine::random::uniform(n * k, 2),
        kinema_engine::random::uniform(n, 3),
        kinema_engine::random::uniform(n, 4),
        kinema_engine::random::uniform(k * n, 5),
    );
    let bytes = |v: &[f32]| -> Vec<u8> { bytemuck::cast_slice(v).to_vec() };
    let (w1b, b1b, gb, w2b) = (bytes(&w1), bytes(&b1), bytes(&g), bytes(&w2));
    let file = to_bytes(
        &[
            (TensorSpec::new("up.weight", Dtype::F32, &[n as u64, k as u64]), w1b.as_slice()),
            (TensorSpec::new("up.bias", Dtype::F32, &[n as u64]), b1b.as_slice()),
            (TensorSpec::new("norm.weight", Dtype::F32, &[n as u64]), gb.as_slice()),
            (TensorSpec::new("down.weight", Dtype::F32, &[k as u64, n as u64]), w2b.as_slice()),
        ],
        &BTreeMap::new(),
    );
    let path = std::env::temp_dir().join(format!("kinema-session-memory-{}.safetensors", std::process::id()));
    std::fs::write(&path, &file).unwrap();
    let program = Program::from_json(&format!(
        r#"{{"format":"kinema.program","version":1,
            "inputs":[{{"name":"x","dtype":"f32","shape":[{m},{k}]}}],
            "parameters":[{{"name":"w1","key":"up.weight","dtype":"f32","shape":[{n},{k}]}},
                          {{"name":"b1","key":"up.bias","dtype":"f32","shape":[{n}]}},
                          {{"name":"g","key":"norm.weight","dtype":"f32","shape":[{n}]}},
                          {{"name":"w2","key":"down.weight","dtype":"f32","shape":[{k},{n}]}}],
            "nodes":[{{"op":"linear","inputs":["x","w1","b1"],"outputs":["h"]}},
                     {{"op":"gelu","inputs":["h"],"outputs":["a"]}},
                     {{"op":"rms_norm","inputs":["a","g"],"outputs":["z"],"attrs":{{"eps":1e-6}}}},
                     {{"op":"softmax","inputs":["z"],"outputs":["p"]}},
                     {{"op":"linear","inputs":["p","w2"],"outputs":["y"]}}],
            "outputs":[{{"name":"out0","value":"y"}}]}}"#
    ))
    .unwrap();

    // The reference: the same kernels, each into a buffer of its own.
    let up = Matmul { trans_b: true, activation: Activation::GeluErf, ..Matmul::new(1, m, n, k) };
    let h = cpu::matmul::matmul(&up, &x, &w1, Some(&b1)).unwrap();
    let z = cpu::norm::norm(&Norm::rms(m, n, 1e-6), &h, Some(&g), None).unwrap();
    let p = cpu::norm::softmax(&kinema_engine::delegate::Softmax { rows: m, n }, &z).unwrap();
    let down = Matmul { trans_b: true, ..Matmul::new(1, m, k, n) };
    let want = cpu::matmul::matmul(&down, &p, &w2, None).unwrap();
    drop((h, z, p));

    let weights = pollster::block_on(Checkpoint::open(path.to_str().unwrap())).unwrap();
    let options = Options { device: DeviceChoice::Cpu, profile: false };
    let mut session = pollster::block_on(Session::new(program, Some(weights), options)).unwrap();
    // The first run loads the parameters; the second is measured.
    let first = pollster::block_on(session.run(&[("x", &x)])).unwrap();
    let before = counting_alloc::reset_peak();
    let out = pollster::block_on(session.run(&[("x", &x)])).unwrap();
    let peak = counting_alloc::peak() - before;
    let _ = std::fs::remove_file(&path);

    assert_eq!(out.len(), 1);
    assert_eq!((out[0].shape.as_slice(), out[0].data.len()), ([m, k].as_slice(), want.len()));
    let err = out[0].data.iter().zip(&want).fold(0f32, |e, (a, b)| e.max((a - b).abs() / (1e-3 + b.abs())));
    assert!(err <= 1e-5, "relative error {err}");
    assert_eq!(first[0].data, out[0].data, "two runs differ");
    eprintln!(
        "peak heap during a run: {:.2} MiB (an intermediate is {} MiB)",
        peak as f64 / MIB as f64,
        m * n * 4 / MIB
    );
    // The returned output (1 MiB) and the sgemm's packing buffers; an
    // intermediate (16 MiB) copied through a buffer of its own would show.
    assert!(peak < 8 * MIB, "peak heap during a run: {peak} bytes");
}
