//! The ops around the big three — unary and broadcasting binary math,
//! softmax, layer/rms/group norm, reductions, layout copies (permute, slice,
//! expand, concat, pad, nearest upsample), rotary, f16 casts — each on the CPU
//! against PyTorch goldens (`ops.safetensors`) and on the GPU against the CPU
//! on the golden cases and on random awkward shapes.
//!
//! Tolerances: layout copies, casts and rotary's pairs are exact or one
//! rounding (1e-6); elementwise math 1e-5 relative on the CPU (f32 libm vs
//! f64), 2e-5 GPU vs CPU (the GPU's own exp/tanh/erf); norms and softmax
//! 1e-5 · √n relative.

use kinema_engine::delegate::layout::{self, CopyPlan};
use kinema_engine::delegate::{Binary, Norm, Reduce, ReduceOp, Rotary, Softmax, Unary, cpu, gpu};
use kinema_engine::random::uniform as random;
use serde_json::Value;

use super::{cases, compare, device, read};

fn unary_op(name: &str) -> Unary {
    let names = [
        "identity",
        "relu",
        "silu",
        "gelu_tanh",
        "gelu_erf",
        "sigmoid",
        "tanh",
        "exp",
        "log",
        "sqrt",
        "rsqrt",
        "abs",
        "neg",
        "square",
        "recip",
        "sin",
        "cos",
    ];
    Unary::ALL[names.iter().position(|n| *n == name).unwrap()]
}

fn binary_op(name: &str) -> Binary {
    let names = ["add", "sub", "mul", "div", "max", "min", "pow"];
    Binary::ALL[names.iter().position(|n| *n == name).unwrap()]
}

fn list(v: &Value) -> Vec<usize> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect()
}

/// An op with its inputs, runnable on either delegate.
enum Op {
    Unary(Unary, Vec<f32>, f32, f32),
    Binary(Binary, Vec<f32>, Vec<usize>, Vec<f32>, Vec<usize>),
    Softmax(Softmax, Vec<f32>),
    Norm(Norm, Vec<f32>, Option<Vec<f32>>, Option<Vec<f32>>),
    Reduce(Reduce, Vec<f32>),
    Copy(CopyPlan, Vec<Vec<f32>>),
    Rotary(Rotary, Vec<f32>, Vec<f32>, Vec<f32>),
}

impl Op {
    fn cpu(&self) -> Vec<f32> {
        match self {
            Op::Unary(op, x, a, b) => cpu::elementwise::unary(*op, x, *a, *b),
            Op::Binary(op, a, sa, b, sb) => cpu::elementwise::binary(*op, a, sa, b, sb).unwrap(),
            Op::Softmax(s, x) => cpu::norm::softmax(s, x).unwrap(),
            Op::Norm(s, x, w, b) => cpu::norm::norm(s, x, w.as_deref(), b.as_deref()).unwrap(),
            Op::Reduce(s, x) => cpu::norm::reduce(s, x).unwrap(),
            Op::Copy(plan, xs) => cpu::layout::copy(plan, &xs.iter().map(Vec::as_slice).collect::<Vec<_>>()).unwrap(),
            Op::Rotary(s, x, c, si) => cpu::rotary::rotary(s, x, c, si).unwrap(),
        }
    }

    fn gpu(&self, dev: &gpu::GpuDevice) -> Vec<f32> {
        match self {
            Op::Unary(op, x, a, b) => pollster::block_on(gpu::elementwise::unary(dev, *op, x, *a, *b)),
            Op::Binary(op, a, sa, b, sb) => pollster::block_on(gpu::elementwise::binary(dev, *op, a, sa, b, sb)),
            Op::Softmax(s, x) => pollster::block_on(gpu::norm::softmax(dev, s, x)),
            Op::Norm(s, x, w, b) => pollster::block_on(gpu::norm::norm(dev, s, x, w.as_deref(), b.as_deref())),
            Op::Reduce(s, x) => pollster::block_on(gpu::norm::reduce(dev, s, x)),
            Op::Copy(plan, xs) => {
                pollster::block_on(gpu::layout::copy(dev, plan, &xs.iter().map(Vec::as_slice).collect::<Vec<_>>()))
            }
            Op::Rotary(s, x, c, si) => pollster::block_on(gpu::rotary::rotary(dev, s, x, c, si)),
        }
        .unwrap()
    }

    /// (tolerance, length of the sums behind each output) for `compare`.
    fn tolerance(&self, gpu: bool) -> (f32, usize) {
        match self {
            Op::Unary(..) | Op::Binary(..) => (if gpu { 2e-5 } else { 1e-5 }, 1),
            Op::Softmax(s, _) => (1e-5, s.n),
            Op::Norm(s, ..) => (1e-5, s.n),
            Op::Reduce(s, _) => (1e-6, s.axis),
            Op::Copy(..) | Op::Rotary(..) => (1e-6, 1),
        }
    }
}

fn golden_op(c: &Value, t: &dyn Fn(&str) -> Vec<f32>) -> Op {
    let f = |k: &str| c[k].as_f64().unwrap() as f32;
    let n = |k: &str| c[k].as_u64().unwrap() as usize;
    match c["op"].as_str().unwrap() {
        "unary" => Op::Unary(unary_op(c["fn"].as_str().unwrap()), t("x"), f("a"), f("b")),
        "binary" => {
            Op::Binary(binary_op(c["fn"].as_str().unwrap()), t("a"), list(&c["a_shape"]), t("b"), list(&c["b_shape"]))
        }
        "softmax" => Op::Softmax(Softmax { rows: n("rows"), n: n("n") }, t("x")),
        "layer_norm" => Op::Norm(Norm::layer(n("rows"), n("n"), f("eps")), t("x"), Some(t("w")), Some(t("b"))),
        "rms_norm" => Op::Norm(Norm::rms(n("rows"), n("n"), f("eps")), t("x"), Some(t("w")), None),
        "group_norm" => Op::Norm(
            Norm::group(n("batch"), n("channels"), n("spatial"), n("groups"), f("eps")).unwrap(),
            t("x"),
            Some(t("w")),
            Some(t("b")),
        ),
        "reduce" => {
            let op = match c["fn"].as_str().unwrap() {
                "sum" => ReduceOp::Sum,
                "mean" => ReduceOp::Mean,
                "max" => ReduceOp::Max,
                _ => ReduceOp::Min,
            };
            Op::Reduce(Reduce::over(op, &list(&c["shape"]), n("dim")).unwrap(), t("x"))
        }
        "permute" => Op::Copy(layout::permute(&list(&c["shape"]), &list(&c["perm"])).unwrap(), vec![t("x")]),
        "slice" => Op::Copy(
            layout::slice(&list(&c["shape"]), &list(&c["start"]), &list(&c["end"]), &list(&c["step"])).unwrap(),
            vec![t("x")],
        ),
        "expand" => Op::Copy(layout::expand(&list(&c["shape"]), &list(&c["to"])).unwrap(), vec![t("x")]),
        "concat" => {
            let shapes: Vec<Vec<usize>> = c["shapes"].as_array().unwrap().iter().map(list).collect();
            let refs: Vec<&[usize]> = shapes.iter().map(Vec::as_slice).collect();
            let xs = (0..shapes.len()).map(|i| t(&format!("x{i}"))).collect();
            Op::Copy(layout::concat(&refs, n("axis")).unwrap(), xs)
        }
        "pad" => {
            let pads: Vec<[usize; 2]> =
                c["pads"].as_array().unwrap().iter().map(|p| [0, 1].map(|i| list(p)[i])).collect();
            Op::Copy(layout::pad(&list(&c["shape"]), &pads, f("value")).unwrap(), vec![t("x")])
        }
        "upsample" => {
            Op::Copy(layout::upsample_nearest(&list(&c["shape"]), &list(&c["factors"])).unwrap(), vec![t("x")])
        }
        "rotary" => Op::Rotary(
            Rotary {
                outer: n("outer"),
                len: n("len"),
                inner: n("inner"),
                dim: n("dim"),
                interleaved: c["interleaved"].as_bool().unwrap(),
            },
            t("x"),
            t("cos"),
            t("sin"),
        ),
        other => panic!("unknown op {other}"),
    }
}

#[test]
fn ops_match_pytorch_on_cpu_and_cpu_on_gpu() {
    let dev = device();
    let (ckpt, cases) = cases("ops");
    assert!(cases.len() >= 40, "{} cases", cases.len());
    for c in &cases {
        let name = c["name"].as_str().unwrap();
        let op = golden_op(c, &|t| read(&ckpt, &format!("{name}.{t}")));
        let want = read(&ckpt, &format!("{name}.out"));
        let cpu_out = op.cpu();
        let (tol, k) = op.tolerance(false);
        let (err, ok) = compare(&cpu_out, &want, k, tol);
        assert!(ok, "cpu {name}: max abs error {err}");
        let (tol, k) = op.tolerance(true);
        let (err, ok) = compare(&op.gpu(&dev), &cpu_out, k, tol);
        assert!(ok, "gpu {name}: max abs error {err} vs the CPU");
    }
}

/// Random instances of every op at the awkward sizes 1, 3, 7, 33, 127, 1000.
fn awkward_ops() -> Vec<Op> {
    let mut ops = Vec::new();
    let sizes = [1usize, 3, 7, 33, 127, 1000];
    for (i, &n) in sizes.iter().enumerate() {
        let s = i as u64 * 100;
        let positive: Vec<f32> = random(n, s).iter().map(|v| v.abs() + 0.1).collect();
        for (j, op) in Unary::ALL.into_iter().enumerate() {
            let x = if matches!(op, Unary::Log | Unary::Sqrt | Unary::Rsqrt | Unary::Recip) {
                positive.clone()
            } else {
                random(n, s + j as u64)
            };
            ops.push(Op::Unary(op, x, 1.5, 0.0));
        }
        for (j, op) in Binary::ALL.into_iter().enumerate() {
            let a = if op == Binary::Pow { positive.clone() } else { random(n * 3, s + j as u64) };
            let a_shape = if op == Binary::Pow { vec![n] } else { vec![3, n] };
            let b = random(n, s + 50 + j as u64);
            let b = if op == Binary::Div { b.iter().map(|v| v.abs() + 0.5).collect() } else { b };
            ops.push(Op::Binary(op, a, a_shape, b, vec![n]));
        }
        ops.push(Op::Binary(Binary::Mul, random(7 * n, s), vec![7, 1, n], random(2, s + 1), vec![2, 1]));
        ops.push(Op::Softmax(Softmax { rows: 3, n }, random(3 * n, s).iter().map(|v| v * 10.0).collect()));
        ops.push(Op::Norm(Norm::layer(2, n, 1e-5), random(2 * n, s), Some(random(n, s + 1)), Some(random(n, s + 2))));
        ops.push(Op::Norm(Norm::layer(1, n, 1e-5), random(n, s), None, None));
        ops.push(Op::Norm(Norm::rms(3, n, 1e-6), random(3 * n, s), Some(random(n, s + 1)), None));
        ops.push(Op::Norm(
            Norm::group(2, 6, n, 3, 1e-6).unwrap(),
            random(12 * n, s),
            Some(random(6, s)),
            Some(random(6, s + 3)),
        ));
        for op in [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max, ReduceOp::Min] {
            ops.push(Op::Reduce(Reduce::over(op, &[2, n, 3], 1).unwrap(), random(6 * n, s)));
            ops.push(Op::Reduce(Reduce::over(op, &[3, n], 1).unwrap(), random(3 * n, s + 1)));
        }
        ops.push(Op::Copy(layout::permute(&[2, n, 3], &[2, 0, 1]).unwrap(), vec![random(6 * n, s)]));
        ops.push(Op::Copy(
            layout::slice(&[3, n, 2], &[1, n / 3, 0], &[3, n, 2], &[1, 2, 1]).unwrap(),
            vec![random(6 * n, s)],
        ));
        ops.push(Op::Copy(layout::expand(&[n, 1], &[2, n, 3]).unwrap(), vec![random(n, s)]));
        ops.push(Op::Copy(
            layout::concat(&[&[2, n], &[2, 3], &[2, 1]], 1).unwrap(),
            vec![random(2 * n, s), random(6, s + 1), random(2, s + 2)],
        ));
        ops.push(Op::Copy(layout::pad(&[2, n], &[[1, 0], [2, 3]], -1.0).unwrap(), vec![random(2 * n, s)]));
        ops.push(Op::Copy(layout::upsample_nearest(&[1, 2, n], &[1, 2, 3]).unwrap(), vec![random(2 * n, s)]));
        let rot = Rotary { outer: 2, len: n, inner: 3, dim: 8, interleaved: i % 2 == 0 };
        ops.push(Op::Rotary(rot, random(48 * n, s), random(4 * n, s + 1), random(4 * n, s + 2)));
    }
    ops
}

#[test]
fn gpu_ops_match_cpu_on_awkward_shapes() {
    let dev = device();
    for (i, op) in awkward_ops().iter().enumerate() {
        let want = op.cpu();
        let (tol, k) = op.tolerance(true);
        let (err, ok) = compare(&op.gpu(&dev), &want, k, tol);
        assert!(ok, "op {i}: max abs error {err} vs the CPU");
    }
}

#[test]
fn casts_round_trip_and_match_the_half_crate() {
    let dev = device();
    for n in [1usize, 3, 1000] {
        let x: Vec<f32> = random(n, n as u64).iter().map(|v| v * 70000.0).collect();
        let halves = pollster::block_on(gpu::cast::to_f16(&dev, &x)).unwrap();
        let want: Vec<u16> = x.iter().map(|&v| half::f16::from_f32(v).to_bits()).collect();
        assert_eq!(halves, want, "f32 → f16, round to nearest even, inf past 65504");
        let back = pollster::block_on(gpu::cast::to_f32(&dev, &halves)).unwrap();
        let want: Vec<f32> = halves.iter().map(|&h| half::f16::from_bits(h).to_f32()).collect();
        assert_eq!(back, want, "f16 → f32 is exact");
    }
}

#[test]
fn bad_op_inputs_are_errors() {
    assert!(cpu::elementwise::binary(Binary::Add, &[0.0; 6], &[2, 3], &[0.0; 2], &[2]).is_err(), "no broadcast");
    assert!(layout::permute(&[2, 3], &[0, 0]).is_err());
    assert!(layout::expand(&[2, 3], &[4, 3]).is_err());
    assert!(layout::concat(&[&[2, 3], &[3, 3]], 1).is_err());
    assert!(layout::permute(&[1; 9], &[0, 1, 2, 3, 4, 5, 6, 7, 8]).is_err(), "rank 9");
    assert!(cpu::norm::norm(&Norm::layer(2, 3, 1e-5), &[0.0; 6], Some(&[1.0; 2]), None).is_err());
    assert!(Norm::group(1, 6, 2, 4, 1e-5).is_err(), "4 ∤ 6");
    assert!(Reduce::over(ReduceOp::Sum, &[2, 3], 2).is_err());
    let rot = Rotary { outer: 1, len: 2, inner: 1, dim: 3, interleaved: true };
    assert!(cpu::rotary::rotary(&rot, &[0.0; 6], &[0.0; 3], &[0.0; 3]).is_err(), "odd dim");
}

/// The `embedding` op's row gather: the GPU against the CPU delegate, with
/// repeated indices, on the default device and on one whose bindings hold
/// 4 KiB (the table and the outputs both in windows of rows); an index that
/// is not a row is an error on the CPU and 0 on the GPU (programs' integer
/// inputs and constant indices are checked before any kernel sees them).
#[test]
fn gather_rows_match_the_cpu_in_windows() {
    use kinema_engine::delegate::{Gather, Operand};
    let small = wgpu::Limits { max_storage_buffer_binding_size: 4096, ..Default::default() };
    let tiny = pollster::block_on(gpu::GpuDevice::with_limits(Some(small))).unwrap();
    let default = device();
    for dev in [&default, &tiny] {
        for (rows, dim, count) in [(7, 5, 3), (300, 12, 200), (40, 8, 150)] {
            let table = random(rows * dim, rows as u64);
            let indices: Vec<f32> = (0..count).map(|i| ((i * 7919 + 3) % rows) as f32).collect();
            let spec = Gather { rows, dim, count };
            let want = cpu::gather::gather(&spec, Operand::F32(&table), &indices).unwrap();
            assert_eq!(want.len(), count * dim);
            assert_eq!(want[..dim], table[indices[0] as usize * dim..][..dim]);
            let got = pollster::block_on(gpu::gather::gather(dev, &spec, &table, &indices)).unwrap();
            assert_eq!(got, want, "{spec:?} on {}", dev.info.name);
        }
        let spec = Gather { rows: 300, dim: 12, count: 3 };
        let table = random(300 * 12, 9);
        let got = pollster::block_on(gpu::gather::gather(dev, &spec, &table, &[299.0, 300.0, -1.0])).unwrap();
        assert_eq!(got[..12], table[299 * 12..]);
        assert!(got[12..].iter().all(|&v| v == 0.0));
        assert!(cpu::gather::gather(&spec, Operand::F32(&table), &[299.0, 300.0, -1.0]).is_err());
    }
}
