//! Portable programs end to end: exported from PyTorch by
//! `tools/fixtures/make_program_fixtures.py` (kinema_export), planned, and run
//! on both delegates against PyTorch eager outputs; and malformed programs
//! refused with clear errors.
//!
//! Tolerance (video_net, f32 throughout): max |x − ref| ≤ 1e-4 · (1 + max|ref|)
//! on the CPU, 5e-4 · (…) on the GPU (lavapipe's exp and summation order).

use kinema_engine::delegate::DeviceChoice;
use kinema_engine::plan::{Delegate, Plan};
use kinema_engine::program::Program;
use kinema_engine::runtime::{Options, Session};
use kinema_engine::weights::Checkpoint;
use kinema_engine::weights::dtype::Dtype;
use kinema_tests::fixture;

fn read_all(ckpt: &Checkpoint, name: &str) -> Vec<f32> {
    let mut v = vec![0f32; ckpt.get(name).unwrap().info.numel() as usize];
    pollster::block_on(ckpt.read_f32(name, &mut v)).unwrap();
    v
}

fn open(dir: &str) -> (Program, Checkpoint, Checkpoint) {
    let base = fixture(&format!("programs/{dir}"));
    let program = Program::open(&base.join("program.json")).unwrap();
    // Exported weights, or the sharded diffusers checkpoint the program references.
    let sharded = ["transformer", "vae", "text_encoder"].map(|d| base.join(d)).into_iter().find(|d| d.is_dir());
    let location = sharded.unwrap_or_else(|| base.join("weights.safetensors"));
    let weights = pollster::block_on(Checkpoint::open(location.to_str().unwrap())).unwrap();
    let io = pollster::block_on(Checkpoint::open(base.join("io.safetensors").to_str().unwrap())).unwrap();
    (program, weights, io)
}

/// (max abs error, relative to 1 + max|ref|).
fn errors(got: &[f32], want: &[f32]) -> (f32, f32) {
    assert_eq!(got.len(), want.len());
    let abs = got.iter().zip(want).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    let scale = 1.0 + want.iter().fold(0f32, |m, v| m.max(v.abs()));
    (abs, abs / scale)
}

fn run_fixture(name: &str, device: DeviceChoice, tol: f32) -> Session {
    let (program, weights, io) = open(name);
    let inputs: Vec<(String, Vec<f32>)> =
        program.inputs.iter().map(|i| (i.name.clone(), read_all(&io, &i.name))).collect();
    let n_out = program.outputs.len();
    let mut session =
        pollster::block_on(Session::new(program, Some(weights), Options { device, profile: true })).unwrap();
    eprintln!("{name} on {}", session.device());
    let named: Vec<(&str, &[f32])> = inputs.iter().map(|(n, v)| (n.as_str(), v.as_slice())).collect();
    for _ in 0..2 {
        // Twice: a session is reused, and the second run must agree with the first.
        let outs = pollster::block_on(session.run(&named)).unwrap();
        assert_eq!(outs.len(), n_out);
        for out in &outs {
            let (abs, rel) = errors(&out.data, &read_all(&io, &out.name));
            eprintln!("  {} {:?}: max abs error {abs:.3e}, relative {rel:.3e}", out.name, out.shape);
            assert!(rel <= tol, "{}: relative error {rel}", out.name);
        }
    }
    assert_eq!(session.profile().len(), session.plan().steps.len());
    // The plan's arena is what the runtime allocated, and at least the peak of live values.
    let arena = &session.plan().arena;
    assert_eq!(session.arena_bytes(), arena.bytes());
    assert!(arena.len >= arena.peak_live && arena.peak_live > 0);
    session
}

#[test]
fn video_net_matches_pytorch_on_the_cpu() {
    run_fixture("video_net", DeviceChoice::Cpu, 1e-4);
}

#[test]
fn video_net_matches_pytorch_on_the_gpu() {
    run_fixture("video_net", DeviceChoice::Gpu, 5e-4);
}

#[test]
fn wan_transformer_from_a_sharded_checkpoint_matches_pytorch_on_the_cpu() {
    let session = run_fixture("wan_transformer", DeviceChoice::Cpu, 1e-4);
    let kinds: Vec<&str> = session.profile().iter().map(|t| t.kind).collect();
    for k in ["attention", "linear", "conv", "norm"] {
        assert!(kinds.contains(&k), "{k} in {kinds:?}");
    }
}

#[test]
fn wan_transformer_from_a_sharded_checkpoint_matches_pytorch_on_the_gpu() {
    run_fixture("wan_transformer", DeviceChoice::Gpu, 5e-4);
}

#[test]
fn umt5_encoder_with_integer_inputs_matches_transformers_on_the_cpu() {
    let session = run_fixture("umt5_encoder", DeviceChoice::Cpu, 1e-4);
    let p = session.program();
    assert!(p.inputs.iter().all(|i| i.element == kinema_engine::program::Element::Integer));
    // The token table, the padding mask (indexed by known indices) and each layer's relative bias.
    let gathers = session.profile().iter().filter(|t| t.kind == "gather").count();
    assert_eq!(gathers, 4);
    // The buckets fold into one constant shared by both layers' bias gathers.
    let bucket_tables: Vec<_> = p.constants.iter().filter(|c| c.shape == [16, 16]).collect();
    assert_eq!(bucket_tables.len(), 1);
}

#[test]
fn umt5_encoder_with_integer_inputs_matches_transformers_on_the_gpu() {
    let session = run_fixture("umt5_encoder", DeviceChoice::Gpu, 5e-4);
    // The token table (96 rows for 16 tokens) stays in the checkpoint and the CPU
    // reads the tokens' rows; the mask and bias gathers run on the GPU.
    let plan = session.plan();
    let on_cpu: Vec<_> =
        plan.cpu_fallbacks().map(|s| (s.kernel, session.program().nodes[s.node].path.as_str())).collect();
    assert_eq!(on_cpu, [("cpu::gather", "encoder.embed_tokens")]);
    let on_gpu = plan.steps.iter().filter(|s| s.kernel == "gather.wgsl").count();
    assert_eq!(on_gpu, 3);
    // Not uploaded: the device holds every parameter but the token table.
    let table = 96 * 32 * 4;
    let all: u64 = session.program().parameters.iter().map(|p| 4 * p.shape.iter().product::<usize>() as u64).sum();
    assert!(session.gpu_parameter_bytes() < all - table + 4096, "{} of {all}", session.gpu_parameter_bytes());
}

#[test]
fn integer_inputs_must_be_rows_of_the_table_they_index() {
    for device in [DeviceChoice::Cpu, DeviceChoice::Gpu] {
        let (program, weights, io) = open("umt5_encoder");
        let mask = read_all(&io, "attention_mask");
        let mut session =
            pollster::block_on(Session::new(program, Some(weights), Options { device, profile: false })).unwrap();
        for (bad, want) in [(96.0, "not a whole number in 0..96"), (2.5, "is 2.5"), (-1.0, "is -1")] {
            let mut ids = read_all(&io, "input_ids");
            ids[3] = bad;
            let err = pollster::block_on(session.run(&[("input_ids", &ids), ("attention_mask", &mask)]))
                .unwrap_err()
                .to_string();
            assert!(err.contains("input \"input_ids\": value 3") && err.contains(want), "{err}");
        }
        let mut half = mask.clone();
        half[0] = 0.5;
        let err =
            pollster::block_on(session.run(&[("input_ids", &read_all(&io, "input_ids")), ("attention_mask", &half)]))
                .unwrap_err()
                .to_string();
        assert!(err.contains("attention_mask") && err.contains("whole number"), "{err}");
    }
}

#[test]
fn the_plan_fuses_activations_and_reuses_memory() {
    let (program, _, _) = open("video_net");
    let plan = Plan::new(&program, None);
    assert!(plan.steps.iter().all(|s| s.delegate == Delegate::Cpu && s.reason == "no GPU device"));
    // `silu(down(h))`: the activation joins the conv's epilogue; `silu(norm(x))` cannot.
    let fused: Vec<_> = plan.steps.iter().filter(|s| s.fused.is_some()).collect();
    assert_eq!(fused.len(), 1, "{fused:?}");
    assert!(plan.steps.len() < program.nodes.len());
    // Liveness lets values share memory: the arena is smaller than all values together.
    let all: usize = plan.arena.slots.values().map(|s| s.len).sum();
    assert!(plan.arena.len < all, "arena {} vs {} for every value", plan.arena.len, all);
    // Values alive at the same time never share memory (checked pair by pair).
    let lives: Vec<_> = plan.arena.lifetimes.iter().collect();
    for (i, (a, la)) in lives.iter().enumerate() {
        for (b, lb) in &lives[i + 1..] {
            let (sa, sb) = (plan.arena.slots[*a], plan.arena.slots[*b]);
            let overlap_time = la.0 <= lb.1 && lb.0 <= la.1;
            let overlap_mem = sa.offset < sb.offset + sb.len && sb.offset < sa.offset + sa.len;
            assert!(!(overlap_time && overlap_mem), "{a} {sa:?} {la:?} and {b} {sb:?} {lb:?}");
        }
    }
    assert_eq!(plan.weight_order.first().map(String::as_str), Some("p_stem_weight"));
}

fn refuse(json: &str, expect: &str) {
    let err = Program::from_json(json).unwrap_err().to_string();
    assert!(err.contains(expect), "expected {expect:?} in: {err}");
    assert!(!err.contains('\n'), "one line: {err}");
}

fn program(nodes: &str, outputs: &str) -> String {
    format!(
        r#"{{"format":"kinema.program","version":1,
            "inputs":[{{"name":"x","dtype":"f32","shape":[2,3]}}],
            "parameters":[{{"name":"w","key":"lin.weight","dtype":"f32","shape":[4,3]}}],
            "outputs":{outputs},"nodes":{nodes}}}"#
    )
}

#[test]
fn malformed_programs_are_refused_with_clear_errors() {
    let ok = program(r#"[{"op":"linear","inputs":["x","w"],"outputs":["y"]}]"#, r#"[{"name":"out0","value":"y"}]"#);
    let p = Program::from_json(&ok).unwrap();
    assert_eq!(p.outputs[0].shape, vec![2, 4]);

    refuse(&ok.replace("\"version\":1", "\"version\":7"), "version 7 is not supported");
    refuse(&ok.replace("kinema.program", "onnx"), "format");
    refuse(&ok.replace("\"linear\"", "\"conv9d\""), "unknown op \"conv9d\"");
    refuse(&ok.replace("[\"x\",\"w\"]", "[\"x\",\"nope\"]"), "reads \"nope\", which nothing defines");
    refuse(&ok.replace("\"outputs\":[\"y\"]", "\"outputs\":[\"x\"]"), "defined twice");
    refuse(&ok.replace("\"shape\":[4,3]", "\"shape\":[4,5]"), "do not fit");
    refuse(&ok.replace("\"value\":\"y\"", "\"value\":\"z\""), "nothing defines");
    refuse(&ok.replace("\"name\":\"out0\"", "\"name\":\"result\""), "outputs are out0");
    refuse(&ok.replace("\"dtype\":\"f32\",\"shape\":[2,3]", "\"dtype\":\"u8\",\"shape\":[2,3]"), "dtype \"u8\"");
    // Integer inputs load; an embedding's constant indices must be rows of its table.
    let ints = ok.replace("\"dtype\":\"f32\",\"shape\":[2,3]", "\"dtype\":\"i64\",\"shape\":[2,3]");
    let p = Program::from_json(&ints).unwrap();
    assert_eq!(p.inputs[0].element, kinema_engine::program::Element::Integer);
    let gather = |index: f32| {
        program(
            &format!(
                r#"[{{"op":"embedding","inputs":["w","i"],"outputs":["y"]}}],
                "constants":[{{"name":"i","dtype":"f32","shape":[2],"data":[0,{index}]}}]"#
            ),
            r#"[{"name":"out0","value":"y"}]"#,
        )
    };
    assert_eq!(Program::from_json(&gather(3.0)).unwrap().outputs[0].shape, vec![2, 3]);
    refuse(&gather(4.0), "index 1 is 4, not a row of the table's 4 rows");
    refuse(&gather(0.5), "index 1 is 0.5");
    refuse(&ok.replace("[2,3]", "[65536,65536,2]"), "2³² elements");
    refuse(&ok.replacen("\"inputs\":", "\"inputs\":[],\"inputs\":", 1), "duplicate key");
    refuse("{", "not valid JSON");
    refuse(&ok.replace("\"format\"", "\"extra\":1,\"format\""), "unknown field");
    // A cycle: y reads z, z reads y.
    let cycle = program(
        r#"[{"op":"relu","inputs":["z"],"outputs":["y"]},{"op":"relu","inputs":["y"],"outputs":["z"]}]"#,
        r#"[{"name":"out0","value":"y"}]"#,
    );
    refuse(&cycle, "cycle");
    // Attributes out of range.
    let bad_attr = |attrs: &str, expect: &str| {
        let p = program(
            &format!(r#"[{{"op":"softmax","inputs":["x"],"outputs":["s"]}},{attrs}]"#),
            r#"[{"name":"out0","value":"y"}]"#,
        );
        refuse(&p, expect);
    };
    bad_attr(r#"{"op":"sum","inputs":["s"],"outputs":["y"],"attrs":{"dim":5}}"#, "dim 5 out of range");
    bad_attr(r#"{"op":"permute","inputs":["s"],"outputs":["y"],"attrs":{"perm":[0,0]}}"#, "not a permutation");
    bad_attr(r#"{"op":"reshape","inputs":["s"],"outputs":["y"],"attrs":{"shape":[5,-1]}}"#, "cannot be viewed");
    bad_attr(r#"{"op":"gelu","inputs":["s"],"outputs":["y"],"attrs":{"approximate":"fast"}}"#, "approximate");
    bad_attr(r#"{"op":"sum","inputs":["s"],"outputs":["y"],"attrs":{"dim":"one"}}"#, "must be an integer");
    // i64::MIN has no absolute value (this was an overflow panic).
    bad_attr(r#"{"op":"sum","inputs":["s"],"outputs":["y"],"attrs":{"dim":-9223372036854775808}}"#, "an integer");
    // A kernel span dilation·(k − 1) + 1 past 2⁶⁴ (an overflow panic before).
    refuse(
        r#"{"format":"kinema.program","version":1,
            "inputs":[{"name":"x","dtype":"f32","shape":[1,1,8]}],
            "parameters":[{"name":"w","key":"w","dtype":"f32","shape":[1,1,2147483648]}],
            "nodes":[{"op":"conv","inputs":["x","w"],"outputs":["y"],
                      "attrs":{"stride":[1],"padding":[[0,0]],"dilation":[1099511627775],"groups":1}}],
            "outputs":[{"name":"out0","value":"y"}]}"#,
        "overflows",
    );
    // Nodes out of file order are fine (sorted by dependencies).
    let shuffled = program(
        r#"[{"op":"relu","inputs":["h"],"outputs":["y"]},{"op":"linear","inputs":["x","w"],"outputs":["h"]}]"#,
        r#"[{"name":"out0","value":"y"}]"#,
    );
    let p = Program::from_json(&shuffled).unwrap();
    assert_eq!(p.nodes[0].op_name, "linear");
}

#[test]
fn a_session_refuses_missing_or_misshapen_parameters_and_inputs() {
    let (program, weights, _) = open("video_net");
    // A checkpoint without the program's keys.
    let other = pollster::block_on(Checkpoint::open(fixture("weights/dtypes.safetensors").to_str().unwrap())).unwrap();
    let err = pollster::block_on(Session::new(program.clone(), Some(other), Options::default())).err().unwrap();
    assert!(err.to_string().contains("stem.weight"), "{err}");
    let opts = Options { device: DeviceChoice::Cpu, profile: false };
    let mut s = pollster::block_on(Session::new(program, Some(weights), opts)).unwrap();
    let err = pollster::block_on(s.run(&[("video", &[0.0; 5])])).unwrap_err();
    assert!(err.to_string().contains("expected 3072"), "{err}");
    let err = pollster::block_on(s.run(&[])).unwrap_err();
    assert!(err.to_string().contains("input \"video\" is missing"), "{err}");
}

#[test]
fn wan_vae_decoder_from_a_sharded_checkpoint_matches_pytorch_on_the_cpu() {
    let session = run_fixture("wan_vae_decoder", DeviceChoice::Cpu, 1e-4);
    assert!(session.profile().iter().filter(|t| t.kind == "conv").count() > 50, "the causal decoder, unrolled");
}

#[test]
fn wan_vae_decoder_from_a_sharded_checkpoint_matches_pytorch_on_the_gpu() {
    run_fixture("wan_vae_decoder", DeviceChoice::Gpu, 5e-4);
}

#[test]
fn weights_stream_over_http_once_and_stay_resident() {
    use std::collections::BTreeMap;

    use kinema_engine::delegate::{Activation, Matmul, cpu};
    use kinema_engine::weights::writer::{TensorSpec, to_bytes};
    use kinema_tests::server::{Behaviour, Server};

    // A 1 MiB weight lies past the 64 KiB prefix read when a file is opened,
    // so reading it is exactly one range request.
    let (w, b, x) = (
        kinema_engine::random::uniform(512 * 512, 1),
        kinema_engine::random::uniform(512, 2),
        kinema_engine::random::uniform(4 * 512, 3),
    );
    let file = to_bytes(
        &[
            (TensorSpec::new("lin.bias", Dtype::F32, &[512]), bytemuck::cast_slice(&b)),
            (TensorSpec::new("lin.weight", Dtype::F32, &[512, 512]), bytemuck::cast_slice(&w)),
        ],
        &BTreeMap::new(),
    );
    let server = Server::start([("m.safetensors".to_string(), file)].into(), Behaviour::Honest);
    let program = Program::from_json(
        r#"{"format":"kinema.program","version":1,
            "inputs":[{"name":"x","dtype":"f32","shape":[4,512]}],
            "parameters":[{"name":"w","key":"lin.weight","dtype":"f32","shape":[512,512]},
                          {"name":"b","key":"lin.bias","dtype":"f32","shape":[512]}],
            "nodes":[{"op":"linear","inputs":["x","w","b"],"outputs":["y"]},
                     {"op":"gelu","inputs":["y"],"outputs":["z"]}],
            "outputs":[{"name":"out0","value":"z"}]}"#,
    )
    .unwrap();
    let spec = Matmul { trans_b: true, activation: Activation::GeluErf, ..Matmul::new(1, 4, 512, 512) };
    let want = cpu::matmul::matmul(&spec, &x, &w, Some(&b)).unwrap();
    for device in [DeviceChoice::Gpu, DeviceChoice::Cpu] {
        let weights = pollster::block_on(Checkpoint::open(&server.url("m.safetensors"))).unwrap();
        let mut session =
            pollster::block_on(Session::new(program.clone(), Some(weights), Options { device, profile: false }))
                .unwrap();
        let before = server.log().len();
        let first = pollster::block_on(session.run(&[("x", &x)])).unwrap();
        let after_first = server.log().len();
        let second = pollster::block_on(session.run(&[("x", &x)])).unwrap();
        assert_eq!(after_first - before, 1, "{device:?}: the weight is read once, in one range request");
        assert_eq!(server.log().len(), after_first, "{device:?}: the second run must not touch the network");
        assert_eq!(first, second);
        let (_, rel) = errors(&first[0].data, &want);
        assert!(rel <= 1e-4, "{device:?}: {rel}");
    }
}

/// Weights stored as f16 or bf16 that only linears read stay so on the GPU —
/// half the bytes, streamed in windows with an odd element count — and give
/// the CPU's result; the same weight also read by another op is widened to f32.
#[test]
fn f16_and_bf16_weights_stay_16_bit_on_the_gpu() {
    use std::collections::BTreeMap;

    use kinema_engine::delegate::{Half, Matmul, Operand, cpu};
    use kinema_engine::weights::writer::{TensorSpec, to_bytes};

    // 2049 × 2049 16-bit: 8.4 MB, over one 8 MiB read window, an odd count.
    let (n, k) = (2049usize, 2049usize);
    let w = kinema_engine::random::uniform(n * k, 11);
    let (b, x) = (kinema_engine::random::uniform(n, 12), kinema_engine::random::uniform(3 * k, 13));
    for half in [Half::F16, Half::Bf16] {
        let stored: Vec<u8> = w
            .iter()
            .flat_map(|&v| match half {
                Half::F16 => half::f16::from_f32(v).to_le_bytes(),
                Half::Bf16 => half::bf16::from_f32(v).to_le_bytes(),
            })
            .collect();
        let file = to_bytes(
            &[
                (TensorSpec::new("lin.weight", half.dtype(), &[n as u64, k as u64]), &stored),
                (TensorSpec::new("lin.bias", Dtype::F32, &[n as u64]), bytemuck::cast_slice(&b)),
            ],
            &BTreeMap::new(),
        );
        let path = std::env::temp_dir().join(format!("kinema-{half:?}-weights-{}.safetensors", std::process::id()));
        std::fs::write(&path, file).unwrap();
        let spec = Matmul { trans_b: true, ..Matmul::new(1, 3, n, k) };
        let want = cpu::matmul::matmul_weight(&spec, &x, Operand::Half(half, &stored), Some(&b)).unwrap();
        let pad = |bytes: usize| bytes.div_ceil(16) as u64 * 16;
        let linear = r#"{"op":"linear","inputs":["x","w","b"],"outputs":["y"]}"#;
        let also_gelu = r#"{"op":"gelu","inputs":["w"],"outputs":["g"]}"#;
        for (nodes, outputs, w_bytes) in [
            (format!("[{linear}]"), r#"[{"name":"out0","value":"y"}]"#, pad(n * k * 2)),
            (
                format!("[{linear},{also_gelu}]"),
                r#"[{"name":"out0","value":"y"},{"name":"out1","value":"g"}]"#,
                pad(n * k * 4),
            ),
        ] {
            let program = Program::from_json(&format!(
                r#"{{"format":"kinema.program","version":1,
                    "inputs":[{{"name":"x","dtype":"f32","shape":[3,{k}]}}],
                    "parameters":[{{"name":"w","key":"lin.weight","dtype":"{d}","shape":[{n},{k}]}},
                                  {{"name":"b","key":"lin.bias","dtype":"f32","shape":[{n}]}}],
                    "nodes":{nodes},"outputs":{outputs}}}"#,
                d = half.dtype().name().to_lowercase()
            ))
            .unwrap();
            for device in [DeviceChoice::Gpu, DeviceChoice::Cpu] {
                let weights = pollster::block_on(Checkpoint::open(path.to_str().unwrap())).unwrap();
                let options = Options { device, profile: false };
                let mut session = pollster::block_on(Session::new(program.clone(), Some(weights), options)).unwrap();
                let out = pollster::block_on(session.run(&[("x", &x)])).unwrap();
                let (_, rel) = errors(&out[0].data, &want);
                assert!(rel <= 1e-4, "{half:?} {device:?} {nodes}: {rel}");
                if device == DeviceChoice::Gpu {
                    assert_eq!(session.gpu_parameter_bytes(), w_bytes + pad(n * 4), "{half:?} {nodes}: GPU bytes");
                    // What `kinema inspect` plans is what the session allocated.
                    let ckpt = pollster::block_on(Checkpoint::open(path.to_str().unwrap())).unwrap();
                    let d = kinema_engine::runtime::device_bytes(&program, session.plan(), Some(&ckpt));
                    assert_eq!(d.weights, session.gpu_parameter_bytes(), "{half:?} {nodes}: planned weights");
                    assert_eq!(d.activations, session.gpu_activation_bytes(), "{half:?} {nodes}: planned activations");
                    assert_eq!(d.peak, d.weights + d.activations);
                    let dtype = format!("{half:?}").to_lowercase();
                    let sixteen_bit = if w_bytes == pad(n * k * 2) { w_bytes } else { 0 };
                    assert_eq!(d.weights_by_dtype.get(&dtype).copied().unwrap_or(0), sixteen_bit, "{nodes}");
                }
            }
        }
        let _ = std::fs::remove_file(&path);
    }
}

/// A reshape, squeeze or unsqueeze of a parameter or a constant (which live
/// outside the arena) is copied into the arena, and views of that view alias it;
/// on both delegates the values are the parameter's own. (Such a view once had
/// no arena slot: a panic on the CPU.)
#[test]
fn views_of_parameters_and_constants_are_copied_into_the_arena() {
    use std::collections::BTreeMap;

    use kinema_engine::weights::writer::{TensorSpec, to_bytes};

    let w = kinema_engine::random::uniform(12, 5);
    let file = to_bytes(&[(TensorSpec::new("w", Dtype::F32, &[4, 3]), bytemuck::cast_slice(&w))], &BTreeMap::new());
    let program = Program::from_json(
        r#"{"format":"kinema.program","version":1,
            "inputs":[{"name":"x","dtype":"f32","shape":[1,12]}],
            "parameters":[{"name":"w","key":"w","dtype":"f32","shape":[4,3]}],
            "constants":[{"name":"c","dtype":"f32","shape":[2,1],"data":[1.5,-2.0]}],
            "nodes":[{"op":"reshape","inputs":["w"],"outputs":["w1"],"attrs":{"shape":[1,12]}},
                     {"op":"unsqueeze","inputs":["w1"],"outputs":["w2"],"attrs":{"dim":0}},
                     {"op":"squeeze","inputs":["c"],"outputs":["c1"],"attrs":{"dim":1}},
                     {"op":"add","inputs":["x","w1"],"outputs":["y"]}],
            "outputs":[{"name":"out0","value":"y"},{"name":"out1","value":"w2"},{"name":"out2","value":"c1"}]}"#,
    )
    .unwrap();
    let x = kinema_engine::random::uniform(12, 6);
    for device in [DeviceChoice::Cpu, DeviceChoice::Gpu] {
        let weights = pollster::block_on(Checkpoint::from_source(
            "views",
            Box::new(kinema_engine::weights::source::BytesSource::new("views", file.clone())),
        ))
        .unwrap();
        let plan = Plan::new(&program, (device == DeviceChoice::Gpu).then_some("gpu"));
        assert_eq!(plan.steps.iter().map(|s| s.alias).collect::<Vec<_>>(), [false, true, false, false]);
        let mut session =
            pollster::block_on(Session::new(program.clone(), Some(weights), Options { device, profile: false }))
                .unwrap();
        let out = pollster::block_on(session.run(&[("x", &x)])).unwrap();
        assert_eq!(out.len(), 3);
        let sum: Vec<f32> = x.iter().zip(&w).map(|(a, b)| a + b).collect();
        assert_eq!(out[0].data, sum, "{device:?}");
        assert_eq!((out[1].shape.as_slice(), out[1].data.as_slice()), ([1, 1, 12].as_slice(), w.as_slice()));
        assert_eq!((out[2].shape.as_slice(), out[2].data.as_slice()), ([2].as_slice(), [1.5, -2.0].as_slice()));
    }
}

/// A CPU session reads weights stored as f16 or bf16 where they lie (the memory
/// map) and in their dtype (over HTTP): no f32 copy of a weight anywhere — only
/// the bias and norm weight, which other ops read, are widened — and the result
/// is the f32 matmul's on the widened values.
#[test]
fn cpu_sessions_read_f16_and_bf16_weights_in_their_stored_dtype() {
    use std::collections::BTreeMap;

    use kinema_engine::delegate::{Matmul, cpu};
    use kinema_engine::weights::writer::{TensorSpec, to_bytes};
    use kinema_tests::server::{Behaviour, Server};

    let (m, n, k) = (5usize, 1100usize, 1000usize); // B over more than one widening block
    let x = kinema_engine::random::uniform(m * k, 21);
    let (w, b, g) = (
        kinema_engine::random::uniform(n * k, 22),
        kinema_engine::random::uniform(n, 23),
        kinema_engine::random::uniform(n, 24),
    );
    for dtype in [Dtype::F16, Dtype::BF16] {
        let store = |v: &[f32]| -> Vec<u8> {
            v.iter()
                .flat_map(|&x| match dtype {
                    Dtype::F16 => half::f16::from_f32(x).to_le_bytes(),
                    _ => half::bf16::from_f32(x).to_le_bytes(),
                })
                .collect()
        };
        let widen = |bytes: &[u8]| -> Vec<f32> {
            let mut v = vec![0f32; bytes.len() / 2];
            kinema_engine::weights::convert::to_f32(dtype, bytes, &mut v).unwrap();
            v
        };
        let (wb, bb, gb) = (store(&w), store(&b), store(&g));
        let file = to_bytes(
            &[
                (TensorSpec::new("lin.weight", dtype, &[n as u64, k as u64]), wb.as_slice()),
                (TensorSpec::new("lin.bias", dtype, &[n as u64]), bb.as_slice()),
                (TensorSpec::new("norm.weight", dtype, &[n as u64]), gb.as_slice()),
            ],
            &BTreeMap::new(),
        );
        let spec = Matmul { trans_b: true, ..Matmul::new(1, m, n, k) };
        let y = cpu::matmul::matmul(&spec, &x, &widen(&wb), Some(&widen(&bb))).unwrap();
        let norm = kinema_engine::delegate::Norm::rms(m, n, 1e-6);
        let want = cpu::norm::norm(&norm, &y, Some(&widen(&gb)), None).unwrap();
        let program = Program::from_json(&format!(
            r#"{{"format":"kinema.program","version":1,
                "inputs":[{{"name":"x","dtype":"f32","shape":[{m},{k}]}}],
                "parameters":[{{"name":"w","key":"lin.weight","dtype":"{d}","shape":[{n},{k}]}},
                              {{"name":"b","key":"lin.bias","dtype":"{d}","shape":[{n}]}},
                              {{"name":"g","key":"norm.weight","dtype":"{d}","shape":[{n}]}}],
                "nodes":[{{"op":"linear","inputs":["x","w","b"],"outputs":["y"]}},
                         {{"op":"rms_norm","inputs":["y","g"],"outputs":["z"],"attrs":{{"eps":1e-6}}}}],
                "outputs":[{{"name":"out0","value":"z"}}]}}"#,
            d = dtype.name().to_lowercase()
        ))
        .unwrap();
        let path =
            std::env::temp_dir().join(format!("kinema-stored-{}-{}.safetensors", dtype.name(), std::process::id()));
        std::fs::write(&path, &file).unwrap();
        let server = Server::start([("m.safetensors".to_string(), file)].into(), Behaviour::Honest);
        // The memory map: the weight is read in place; over HTTP: its stored bytes.
        for (location, held) in [(path.display().to_string(), 0), (server.url("m.safetensors"), n * k * 2)] {
            let weights = pollster::block_on(Checkpoint::open(&location)).unwrap();
            let options = Options { device: DeviceChoice::Cpu, profile: false };
            let mut session = pollster::block_on(Session::new(program.clone(), Some(weights), options)).unwrap();
            let out = pollster::block_on(session.run(&[("x", &x)])).unwrap();
            let (_, rel) = errors(&out[0].data, &want);
            assert!(rel <= 1e-5, "{dtype:?} {location}: {rel}");
            // The bias and the norm's weight, widened; the weight as it is stored, or not at all.
            assert_eq!(session.host_parameter_bytes(), (held + 2 * n * 4) as u64, "{dtype:?} {location}");
        }
        let _ = std::fs::remove_file(&path);
    }
}

/// A GPU plan's arena is a set of banks and no step writes a bank it reads
/// (so kernels write their outputs in place, with no scratch copy); within a
/// bank no two values alive at once overlap; a CPU plan has one bank.
#[test]
fn gpu_plans_put_outputs_in_banks_their_inputs_are_not_in() {
    for name in ["video_net", "wan_transformer", "wan_vae_decoder"] {
        let (program, _, _) = open(name);
        let cpu = Plan::new(&program, None);
        assert_eq!(cpu.arena.banks.len(), 1, "{name}: one bank on the CPU");
        let plan = Plan::new(&program, Some("gpu"));
        let arena = &plan.arena;
        assert!(arena.banks.len() >= 2, "{name}: {} banks", arena.banks.len());
        assert_eq!(arena.len, arena.banks.iter().sum::<usize>());
        for s in plan.steps.iter().filter(|s| !s.alias) {
            let node = &program.nodes[s.node];
            let outputs = match s.fused {
                Some((a, _)) => &program.nodes[a].outputs,
                None => &node.outputs,
            };
            for o in outputs {
                let out = arena.slots[o];
                assert!(out.offset + out.len <= arena.banks[out.bank], "{name}: {o} inside its bank");
                for i in node.inputs.iter().filter_map(|i| arena.slots.get(i)) {
                    assert_ne!(i.bank, out.bank, "{name}: node {} ({}) writes a bank it reads", s.node, node.op_name);
                }
            }
        }
        let values: Vec<(&String, &kinema_engine::plan::Slot)> =
            arena.slots.iter().filter(|(v, _)| arena.lifetimes.contains_key(*v)).collect();
        for (i, (a, sa)) in values.iter().enumerate() {
            for (b, sb) in &values[i + 1..] {
                let (la, lb) = (arena.lifetimes[*a], arena.lifetimes[*b]);
                let live_together = la.0 <= lb.1 && lb.0 <= la.1;
                let overlap = sa.offset < sb.offset + sb.len && sb.offset < sa.offset + sa.len;
                assert!(
                    !(sa.bank == sb.bank && live_together && overlap),
                    "{name}: {a} and {b} share memory while both alive"
                );
            }
        }
    }
}

/// Quantized checkpoints (`kinema quantize`'s layouts) run on the GPU as stored
/// — int8 four per word at a quarter of f32's bytes, int4 eight per word in
/// groups (here with a short last group) at an eighth, their scales beside them
/// — and give the CPU's result, which holds no f32 copy of the weight either;
/// `device_bytes` plans exactly that, and `traffic` counts the stored bytes read.
#[test]
fn quantized_weights_stay_quantized_on_both_delegates() {
    use std::collections::BTreeMap;

    use kinema_engine::weights::quant::{Scheme, quantize, stored_specs};
    use kinema_engine::weights::writer::{TensorSpec, to_bytes};

    let (n, k) = (301usize, 258usize);
    for (scheme, name, packed) in [(Scheme::Int8, "int8", n * k), (Scheme::Int4 { group: 64 }, "int4", n * k / 2)] {
        let (q, scales) = quantize(scheme, &kinema_engine::random::uniform(n * k, 31), n);
        let (b, x) = (kinema_engine::random::uniform(n, 32), kinema_engine::random::uniform(4 * k, 33));
        let [values, scale_spec] = stored_specs(scheme, "lin.weight", &[n as u64, k as u64]);
        let file = to_bytes(
            &[
                (values, &q[..]),
                (scale_spec, bytemuck::cast_slice(&scales)),
                (TensorSpec::new("lin.bias", Dtype::F32, &[n as u64]), bytemuck::cast_slice(&b)),
            ],
            &BTreeMap::new(),
        );
        let program = Program::from_json(&format!(
            r#"{{"format":"kinema.program","version":1,
                "inputs":[{{"name":"x","dtype":"f32","shape":[4,{k}]}}],
                "parameters":[{{"name":"w","key":"lin.weight","dtype":"f32","shape":[{n},{k}]}},
                              {{"name":"b","key":"lin.bias","dtype":"f32","shape":[{n}]}}],
                "nodes":[{{"op":"linear","inputs":["x","w","b"],"outputs":["y"]}}],
                "outputs":[{{"name":"out0","value":"y"}}]}}"#
        ))
        .unwrap();
        let open = || {
            let source = kinema_engine::weights::source::BytesSource::new(name, file.clone());
            pollster::block_on(Checkpoint::from_source(name, Box::new(source))).unwrap()
        };
        // The reference: the same product on the dequantized weight, f32.
        let mut wide = vec![0f32; n * k];
        pollster::block_on(open().read_f32_dequantized("lin.weight", &mut wide)).unwrap();
        let spec =
            kinema_engine::delegate::Matmul { trans_b: true, ..kinema_engine::delegate::Matmul::new(1, 4, n, k) };
        let want = kinema_engine::delegate::cpu::matmul::matmul(&spec, &x, &wide, Some(&b)).unwrap();
        let pad = |bytes: usize| bytes.div_ceil(16) as u64 * 16;
        for device in [DeviceChoice::Cpu, DeviceChoice::Gpu] {
            let mut session =
                pollster::block_on(Session::new(program.clone(), Some(open()), Options { device, profile: false }))
                    .unwrap();
            let got = pollster::block_on(session.run(&[("x", &x)])).unwrap().swap_remove(0).data;
            assert_eq!(got.len(), 4 * n);
            let (_, rel) = errors(&got, &want);
            assert!(rel <= 1e-5, "{name} {device:?} against the dequantized f32 product: {rel}");
            // What the forward moves: x, the weight as stored with its scales, and the bias in; y out.
            let t = kinema_engine::runtime::traffic(&program, session.plan(), Some(&open()));
            assert_eq!(t.read, (4 * k * 4 + packed + scales.len() * 4 + n * 4) as u64, "{name} {device:?}");
            assert_eq!(t.written, (4 * n * 4) as u64);
            assert_eq!(t.scratch_copy, if device == DeviceChoice::Gpu { 2 * t.written } else { 0 });
            if device == DeviceChoice::Gpu {
                let weights = pad(packed) + pad(scales.len() * 4) + pad(n * 4);
                assert_eq!(session.gpu_parameter_bytes(), weights, "{name} + scales + bias");
                let d = kinema_engine::runtime::device_bytes(&program, session.plan(), Some(&open()));
                assert_eq!(d.weights, session.gpu_parameter_bytes());
                assert_eq!(d.weights_by_dtype[name], pad(packed));
            } else {
                // The weight is read in place; only its scales (and at most the f32 bias) are copied in.
                let held = session.host_parameter_bytes();
                assert!(held <= (scales.len() + n) as u64 * 4, "{name}: {held} bytes held, no copy of the weight");
            }
        }
    }
}

/// GPU sessions share their thread's device, and a parameter of the same
/// checkpoint is uploaded once for all sessions that read it (as the VAE's two
/// chunk programs do); the arena's banks are leased by each run from those the
/// device's sessions share, so a second session of the same plan adds neither;
/// what sessions allocate is counted, and returns to the baseline when the last
/// one is dropped.
#[test]
fn gpu_sessions_share_the_device_and_their_parameters() {
    let (program, _, io) = open("wan_transformer");
    let inputs: Vec<(String, Vec<f32>)> =
        program.inputs.iter().map(|i| (i.name.clone(), read_all(&io, &i.name))).collect();
    let named: Vec<(&str, &[f32])> = inputs.iter().map(|(n, v)| (n.as_str(), v.as_slice())).collect();
    let weights = || {
        let dir = fixture("programs/wan_transformer/transformer");
        pollster::block_on(Checkpoint::open(dir.to_str().unwrap())).unwrap()
    };
    let (dev, _) = pollster::block_on(DeviceChoice::Gpu.open()).unwrap();
    let dev = dev.unwrap();
    let baseline = dev.live_bytes();
    let options = Options { device: DeviceChoice::Gpu, profile: false };
    let mut first = pollster::block_on(Session::new(program.clone(), Some(weights()), options)).unwrap();
    pollster::block_on(first.load_parameters()).unwrap();
    let one = dev.live_bytes() - baseline;
    assert_eq!(one, first.gpu_parameter_bytes(), "a loaded session holds its parameters; its arena waits for a run");
    assert_eq!(first.gpu_shared_arena_bytes(), 0);
    let mut second = pollster::block_on(Session::new(program.clone(), Some(weights()), options)).unwrap();
    pollster::block_on(second.load_parameters()).unwrap();
    let params = first.gpu_parameter_bytes();
    let consts: u64 = program.constants.iter().map(|c| (c.data.len().max(1).div_ceil(4) * 16) as u64).sum();
    assert_eq!(
        dev.live_bytes() - baseline,
        one + consts,
        "the second session adds its constants, not the {params} bytes of parameters"
    );
    let a = pollster::block_on(first.run(&named)).unwrap();
    let arena = first.gpu_activation_bytes();
    assert!(arena > 0);
    assert_eq!(first.gpu_shared_arena_bytes(), arena, "the run's banks stay for the next run");
    assert_eq!(dev.live_bytes() - baseline, one + consts + arena);
    let b = pollster::block_on(second.run(&named)).unwrap();
    assert_eq!(a, b);
    assert_eq!(dev.live_bytes() - baseline, one + consts + arena, "the second session ran in the same banks");
    drop(first);
    assert!(dev.live_bytes() > baseline, "the second session still holds the shared parameters");
    drop(second);
    assert_eq!(dev.live_bytes(), baseline, "back to the baseline once both are released");
}

/// Sessions of different programs on one device (a pipeline's stages, a tiled
/// VAE's decoders) run one after another in one set of arena banks, each as
/// large as the largest bank of that index any of them planned — not the sum
/// of their arenas — and each still gives PyTorch's outputs, however the
/// others left the banks.
#[test]
fn gpu_sessions_of_different_programs_share_one_arena() {
    let (dev, _) = pollster::block_on(DeviceChoice::Gpu.open()).unwrap();
    let dev = dev.unwrap();
    let baseline = dev.live_bytes();
    let options = Options { device: DeviceChoice::Gpu, profile: false };
    let mut sessions = Vec::new();
    for name in ["wan_transformer", "video_net", "wan_vae_decoder"] {
        let (program, weights, io) = open(name);
        let inputs: Vec<(String, Vec<f32>)> =
            program.inputs.iter().map(|i| (i.name.clone(), read_all(&io, &i.name))).collect();
        let mut session = pollster::block_on(Session::new(program, Some(weights), options)).unwrap();
        pollster::block_on(session.load_parameters()).unwrap();
        sessions.push((name, session, inputs, io));
    }
    let params = dev.live_bytes() - baseline;
    assert_eq!(sessions.iter().map(|(_, s, ..)| s.gpu_parameter_bytes()).sum::<u64>(), params);
    let banks: Vec<&[usize]> = sessions.iter().map(|(_, s, ..)| s.plan().arena.banks.as_slice()).collect();
    let width = banks.iter().map(|b| b.len()).max().unwrap();
    let shared: u64 =
        (0..width).map(|i| banks.iter().filter_map(|b| b.get(i)).max().copied().unwrap_or(0) as u64 * 4).sum();
    let sum: u64 = sessions.iter().map(|(_, s, ..)| s.gpu_activation_bytes()).sum();
    assert!(shared < sum, "{shared} shared bytes against {sum} apart");
    for round in 0..2 {
        for (name, session, inputs, io) in &mut sessions {
            let named: Vec<(&str, &[f32])> = inputs.iter().map(|(n, v)| (n.as_str(), v.as_slice())).collect();
            let outs = pollster::block_on(session.run(&named)).unwrap();
            assert_eq!(outs.len(), session.program().outputs.len());
            for out in &outs {
                let want = read_all(io, &out.name);
                assert_eq!(out.data.len(), want.len());
                let (_, rel) = errors(&out.data, &want);
                assert!(rel <= 5e-4, "{name} {} (round {round}): relative error {rel}", out.name);
            }
        }
        assert_eq!(sessions[0].1.gpu_shared_arena_bytes(), shared, "round {round}");
        assert_eq!(dev.live_bytes() - baseline, params + shared, "round {round}");
    }
    drop(sessions);
    assert_eq!(dev.live_bytes(), baseline, "the shared banks go with the last session");
}

/// Attention over heads wider than the attention op takes (136 > 128; Wan's VAE
/// mid-block attends over 384 channels) is composed by the exporter from matmul,
/// scale and softmax, and matches PyTorch's scaled_dot_product_attention.
#[test]
fn wide_head_attention_matches_pytorch_on_both_delegates() {
    for (device, tol) in [(DeviceChoice::Cpu, 1e-4), (DeviceChoice::Gpu, 5e-4)] {
        let session = run_fixture("wide_attention", device, tol);
        let ops: Vec<&str> = session.program().nodes.iter().map(|n| n.op_name.as_str()).collect();
        assert_eq!(ops, ["permute", "matmul", "affine", "softmax", "matmul"]);
    }
}

/// A plan whose arena is past what the device holds in one buffer (here an
/// 8 GiB intermediate) is refused by `Session::new` with a clear error before
/// anything is allocated or uploaded; the planned bytes are u64 throughout.
#[test]
fn plans_past_the_device_buffer_limit_are_refused_before_any_allocation() {
    let program = Program::from_json(
        r#"{"format":"kinema.program","version":1,
            "inputs":[{"name":"x","dtype":"f32","shape":[1,1]}],
            "nodes":[{"op":"expand","inputs":["x"],"outputs":["y"],"attrs":{"shape":[2,1073741824]}}],
            "outputs":[{"name":"out0","value":"y"}]}"#,
    )
    .unwrap();
    let plan = Plan::new(&program, Some("gpu"));
    assert!(plan.arena.bytes() >= 8 << 30, "{} bytes planned", plan.arena.bytes());
    let (dev, _) = pollster::block_on(DeviceChoice::Gpu.open()).unwrap();
    let dev = dev.unwrap();
    let max = dev.device.limits().max_buffer_size;
    if max >= 8 << 30 {
        eprintln!("{}: buffers up to {max} bytes; nothing to refuse", dev.info.name);
        return;
    }
    let before = dev.live_bytes();
    let options = Options { device: DeviceChoice::Gpu, profile: false };
    let err = pollster::block_on(Session::new(program, None, options)).err().expect("refused").to_string();
    assert!(err.contains("8589934592-byte buffer") && err.contains("buffer limit"), "{err}");
    assert!(!err.contains('\n'));
    assert_eq!(dev.live_bytes(), before, "nothing was allocated");
}

/// Token chunking of feed-forward blocks (`plan::chunk_feed_forward`): the
/// tiny Wan transformer with a budget of a quarter of its FFN hidden value runs
/// each block in four chunks of tokens (split, the block per chunk, cat) and
/// gives PyTorch's output on the CPU; a block whose hidden value is the peak
/// (64 tokens, 8 → 128 → 8) takes the arena's peak down to about a chunk's,
/// and a GPU device whose buffers hold less than twice the hidden value chunks
/// it by itself, with the CPU's output.
#[test]
fn feed_forward_blocks_run_in_chunks_of_tokens() {
    use kinema_engine::plan::chunk_feed_forward;
    let (program, _, io) = open("wan_transformer");
    let hidden = program
        .nodes
        .iter()
        .filter(|n| matches!(n.op, kinema_engine::program::Op::Linear { .. }))
        .map(|n| program.shape(&n.outputs[0]).unwrap())
        .filter(|s| s.len() == 3 && s[2] == 32) // ffn_dim
        .map(|s| s.iter().product::<usize>() as u64 * 4)
        .max()
        .unwrap();
    let chunked = chunk_feed_forward(&program, hidden / 4).unwrap();
    let count = |p: &Program, op: &str| p.nodes.iter().filter(|n| n.op_name == op).count();
    assert_eq!(count(&chunked, "split"), count(&program, "split") + 2, "one split per block (2 layers)");
    assert_eq!(count(&chunked, "cat"), count(&program, "cat") + 2);
    assert_eq!(count(&chunked, "linear"), count(&program, "linear") + 2 * 2 * 3, "each block's two linears, 4×");
    assert!(
        chunked.nodes.iter().filter(|n| matches!(n.op, kinema_engine::program::Op::Linear { .. })).all(|n| {
            let s = chunked.shape(&n.outputs[0]).unwrap();
            s[s.len() - 1] != 32 || s.iter().product::<usize>() as u64 * 4 <= hidden / 4
        }),
        "no FFN hidden value over the budget"
    );
    assert_eq!(chunk_feed_forward(&program, hidden).unwrap().nodes.len(), program.nodes.len(), "within budget");
    let inputs: Vec<(String, Vec<f32>)> =
        program.inputs.iter().map(|i| (i.name.clone(), read_all(&io, &i.name))).collect();
    let named: Vec<(&str, &[f32])> = inputs.iter().map(|(n, v)| (n.as_str(), v.as_slice())).collect();
    let want = read_all(&io, "out0");
    let weights = || {
        let dir = fixture("programs/wan_transformer/transformer");
        pollster::block_on(Checkpoint::open(dir.to_str().unwrap())).unwrap()
    };
    let run = |p: Program, device| {
        let mut s = pollster::block_on(Session::new(p, Some(weights()), Options { device, profile: false })).unwrap();
        let out = pollster::block_on(s.run(&named)).unwrap().swap_remove(0).data;
        (out, s.plan().arena.peak_live, s.program().nodes.len())
    };
    let (plain, plain_peak, _) = run(program.clone(), DeviceChoice::Cpu);
    let (got, peak, _) = run(chunked, DeviceChoice::Cpu);
    let (_, rel) = errors(&got, &want);
    assert!(rel <= 1e-5, "chunked, CPU, against PyTorch: {rel}");
    assert!(errors(&got, &plain).0 <= 1e-6, "chunking changes nothing");
    assert!(peak <= plain_peak, "{peak} vs {plain_peak}");

    // Where the block's hidden value is the peak (64 tokens of 8 → 128 → 8), a
    // quarter of it as the budget takes the peak from h to about a chunk of it.
    let (t, d, h) = (64usize, 8usize, 128usize);
    let ffn = Program::from_json(&format!(
        r#"{{"format":"kinema.program","version":1,
            "inputs":[{{"name":"x","dtype":"f32","shape":[1,{t},{d}]}}],
            "parameters":[{{"name":"w1","key":"w1","dtype":"f32","shape":[{h},{d}]}},
                          {{"name":"w2","key":"w2","dtype":"f32","shape":[{d},{h}]}}],
            "nodes":[{{"op":"linear","inputs":["x","w1"],"outputs":["h"]}},
                     {{"op":"gelu","inputs":["h"],"outputs":["g"],"attrs":{{"approximate":"tanh"}}}},
                     {{"op":"linear","inputs":["g","w2"],"outputs":["y"]}}],
            "outputs":[{{"name":"out0","value":"y"}}]}}"#
    ))
    .unwrap();
    let (w1, w2) = (kinema_engine::random::uniform(h * d, 1), kinema_engine::random::uniform(d * h, 2));
    let file = kinema_engine::weights::writer::to_bytes(
        &[
            (
                kinema_engine::weights::writer::TensorSpec::new("w1", Dtype::F32, &[h as u64, d as u64]),
                bytemuck::cast_slice(&w1),
            ),
            (
                kinema_engine::weights::writer::TensorSpec::new("w2", Dtype::F32, &[d as u64, h as u64]),
                bytemuck::cast_slice(&w2),
            ),
        ],
        &Default::default(),
    );
    let x = kinema_engine::random::uniform(t * d, 3);
    let run_ffn = |p: Program| {
        let source = kinema_engine::weights::source::BytesSource::new("ffn", file.clone());
        let ckpt = pollster::block_on(Checkpoint::from_source("ffn", Box::new(source))).unwrap();
        let mut s = pollster::block_on(Session::new(p, Some(ckpt), Options::default())).unwrap();
        let out = pollster::block_on(s.run(&[("x", &x)])).unwrap().swap_remove(0).data;
        (out, s.plan().arena.peak_live)
    };
    let ((plain, plain_peak), (got, peak)) =
        (run_ffn(ffn.clone()), run_ffn(chunk_feed_forward(&ffn, (t * h) as u64).unwrap()));
    eprintln!("FFN chunking: arena peak {plain_peak} → {peak} floats (hidden {} floats)", t * h);
    assert_eq!(got.len(), plain.len());
    assert!(errors(&got, &plain).0 <= 1e-6);
    assert!(plain_peak >= t * h && peak <= t * h / 4 + 4 * t * d, "{plain_peak} → {peak}");

    // A device whose buffers are under twice the hidden value chunks by itself.
    let limits = wgpu::Limits { max_buffer_size: (t * h * 4 * 2 - 4) as u64, ..Default::default() };
    let dev = std::sync::Arc::new(
        pollster::block_on(kinema_engine::delegate::gpu::GpuDevice::with_limits(Some(limits))).unwrap(),
    );
    kinema_engine::delegate::choice::share(&dev).unwrap();
    let source = kinema_engine::weights::source::BytesSource::new("ffn", file.clone());
    let ckpt = pollster::block_on(Checkpoint::from_source("ffn", Box::new(source))).unwrap();
    let options = Options { device: DeviceChoice::Gpu, profile: false };
    let mut session = pollster::block_on(Session::new(ffn.clone(), Some(ckpt), options)).unwrap();
    assert!(session.program().nodes.iter().any(|n| n.op_name == "split"), "the GPU session's program is chunked");
    let got = pollster::block_on(session.run(&[("x", &x)])).unwrap().swap_remove(0).data;
    let (_, rel) = errors(&got, &plain);
    assert!(rel <= 1e-5, "chunked on the GPU against the CPU: {rel}");
}

/// `plan::simplify` (every session runs it): the Wan VAE's bias-free norms lose
/// their `x + 0.0` affines and the `expand` before each division, and a session
/// on the simplified program still gives PyTorch's output; an expand whose
/// readers need its shape stays.
#[test]
fn exporter_leftovers_are_simplified_away() {
    use kinema_engine::plan::simplify;
    use kinema_engine::program::Op;
    let (program, _, io) = open("wan_vae_decoder");
    let identity = |p: &Program| {
        p.nodes.iter().filter(|n| matches!(n.op, Op::Unary { f: kinema_engine::delegate::Unary::Identity, scale, shift } if scale == 1.0 && shift == 0.0)).count()
    };
    let expands = |p: &Program| p.nodes.iter().filter(|n| matches!(n.op, Op::Expand { .. })).count();
    let simple = simplify(&program).unwrap();
    assert!(identity(&program) > 0 && expands(&program) > 0, "the fixture has both");
    assert_eq!(identity(&simple), 0);
    assert!(expands(&simple) < expands(&program), "{} → {}", expands(&program), expands(&simple));
    assert_eq!(simple.nodes.len(), program.nodes.len() - (expands(&program) - expands(&simple)));
    assert_eq!(simple.outputs.len(), program.outputs.len());
    let weights = || {
        let dir = fixture("programs/wan_vae_decoder/vae");
        pollster::block_on(Checkpoint::open(dir.to_str().unwrap())).unwrap()
    };
    let inputs: Vec<(String, Vec<f32>)> =
        program.inputs.iter().map(|i| (i.name.clone(), read_all(&io, &i.name))).collect();
    let named: Vec<(&str, &[f32])> = inputs.iter().map(|(n, v)| (n.as_str(), v.as_slice())).collect();
    let mut s = pollster::block_on(Session::new(simple, Some(weights()), Options::default())).unwrap();
    let got = pollster::block_on(s.run(&named)).unwrap().swap_remove(0).data;
    let want = read_all(&io, "out0");
    assert_eq!(got.len(), want.len());
    let (_, rel) = errors(&got, &want);
    assert!(rel <= 1e-5, "simplified, CPU, against PyTorch: {rel}");

    // [1,1] expanded to [3,4] and added to [3,1]: without the expand the sum
    // would be [3,1], so it stays.
    let kept = Program::from_json(
        r#"{"format":"kinema.program","version":1,
            "inputs":[{"name":"a","dtype":"f32","shape":[1,1]},{"name":"b","dtype":"f32","shape":[3,1]}],
            "nodes":[{"op":"expand","inputs":["a"],"outputs":["e"],"attrs":{"shape":[3,4]}},
                     {"op":"add","inputs":["e","b"],"outputs":["y"]}],
            "outputs":[{"name":"out0","value":"y"}]}"#,
    )
    .unwrap();
    assert_eq!(expands(&simplify(&kept).unwrap()), 1);
}

/// `plan::simplify`'s fusions on the tiny Wan transformer: each block's two
/// rotary chains (q and k, fourteen nodes each as diffusers writes them) become
/// one `rotary` op, and its modulated norms (norm1, norm3, norm_out: `norm(x) ·
/// (1 + scale) + shift`) the norm's own weight and bias; the fused program
/// gives PyTorch's output on both delegates (the fixture tests above run it
/// too), and GPU dispatches per block fall from 56 to 42 (`kinema inspect`).
/// Repeated nodes are computed once.
/// Chains the rewrite must leave alone stay.
#[test]
fn rotary_chains_and_modulated_norms_are_fused() {
    use kinema_engine::plan::simplify;
    use kinema_engine::program::Op;
    let (program, weights, io) = open("wan_transformer");
    let count =
        |p: &Program, f: &dyn Fn(&kinema_engine::program::Node) -> bool| p.nodes.iter().filter(|n| f(n)).count();
    let rotary = |n: &kinema_engine::program::Node| matches!(n.op, Op::Rotary { interleaved: true, .. });
    let modulated = |n: &kinema_engine::program::Node| matches!(n.op, Op::LayerNorm { .. }) && n.inputs.len() == 3;
    let fused = simplify(&program).unwrap();
    assert_eq!((count(&program, &rotary), count(&fused, &rotary)), (0, 4));
    let plain_norms = count(&program, &|n| matches!(n.op, Op::LayerNorm { .. }) && n.inputs.len() == 1);
    assert_eq!(plain_norms, 5, "norm1 and norm3 of two blocks, and norm_out");
    assert_eq!(count(&fused, &modulated), count(&program, &modulated) + 5);
    // Fourteen nodes become three (two table views and the rotary) per chain;
    // three become three (two views and the norm) per modulation.
    assert_eq!(fused.nodes.len(), program.nodes.len() - 4 * 11);
    let inputs: Vec<(String, Vec<f32>)> =
        program.inputs.iter().map(|i| (i.name.clone(), read_all(&io, &i.name))).collect();
    let named: Vec<(&str, &[f32])> = inputs.iter().map(|(n, v)| (n.as_str(), v.as_slice())).collect();
    let mut s = pollster::block_on(Session::new(fused, Some(weights), Options::default())).unwrap();
    let got = pollster::block_on(s.run(&named)).unwrap().swap_remove(0).data;
    let (_, rel) = errors(&got, &read_all(&io, "out0"));
    assert!(rel <= 1e-5, "fused, CPU, against PyTorch: {rel}");

    // A norm whose output is also read elsewhere, a shift that is not per
    // channel, and a rotary chain whose difference is the wrong way round stay.
    let norm_read_twice = r#"{"op":"layer_norm","inputs":["x"],"outputs":["n"]},
        {"op":"mul","inputs":["n","s"],"outputs":["m"]},{"op":"add","inputs":["m","n"],"outputs":["y"]}"#;
    let shift_per_token = r#"{"op":"layer_norm","inputs":["x"],"outputs":["n"]},
        {"op":"mul","inputs":["n","s"],"outputs":["m"]},{"op":"add","inputs":["m","x"],"outputs":["y"]}"#;
    for (nodes, want_norm_inputs) in [(norm_read_twice, 1), (shift_per_token, 2)] {
        let p = Program::from_json(&format!(
            r#"{{"format":"kinema.program","version":1,
                "inputs":[{{"name":"x","dtype":"f32","shape":[3,4]}},{{"name":"s","dtype":"f32","shape":[1,4]}}],
                "nodes":[{nodes}],"outputs":[{{"name":"out0","value":"y"}}]}}"#
        ))
        .unwrap();
        let f = simplify(&p).unwrap();
        let norm = f.nodes.iter().find(|n| matches!(n.op, Op::LayerNorm { .. })).unwrap();
        assert_eq!(norm.inputs.len(), want_norm_inputs, "{nodes}");
    }
    let chain = |sub: &str| {
        format!(
            r#"{{"format":"kinema.program","version":1,
            "inputs":[{{"name":"x","dtype":"f32","shape":[1,5,2,8]}},{{"name":"c","dtype":"f32","shape":[1,5,1,4]}},
                      {{"name":"s","dtype":"f32","shape":[1,5,1,4]}}],
            "nodes":[{{"op":"reshape","inputs":["x"],"outputs":["p"],"attrs":{{"shape":[1,5,2,4,2]}}}},
                     {{"op":"split","inputs":["p"],"outputs":["e0","o0"],"attrs":{{"dim":-1,"sizes":[1,1]}}}},
                     {{"op":"squeeze","inputs":["e0"],"outputs":["e"],"attrs":{{"dim":4}}}},
                     {{"op":"squeeze","inputs":["o0"],"outputs":["o"],"attrs":{{"dim":4}}}},
                     {{"op":"mul","inputs":["e","c"],"outputs":["a"]}},{{"op":"mul","inputs":["s","o"],"outputs":["b"]}},
                     {{"op":"sub","inputs":{sub},"outputs":["re"]}},
                     {{"op":"mul","inputs":["e","s"],"outputs":["pp"]}},{{"op":"mul","inputs":["o","c"],"outputs":["q"]}},
                     {{"op":"add","inputs":["q","pp"],"outputs":["ro"]}},
                     {{"op":"unsqueeze","inputs":["re"],"outputs":["u1"],"attrs":{{"dim":-1}}}},
                     {{"op":"unsqueeze","inputs":["ro"],"outputs":["u2"],"attrs":{{"dim":4}}}},
                     {{"op":"cat","inputs":["u1","u2"],"outputs":["y0"],"attrs":{{"dim":4}}}},
                     {{"op":"reshape","inputs":["y0"],"outputs":["y"],"attrs":{{"shape":[1,5,2,8]}}}}],
            "outputs":[{{"name":"out0","value":"y"}}]}}"#
        )
    };
    // As written (operands in either order), the chain is one rotary op that
    // gives the chain's values bit for bit on the CPU; reversed, it stays.
    let p = Program::from_json(&chain(r#"["a","b"]"#)).unwrap();
    let f = simplify(&p).unwrap();
    assert_eq!(f.nodes.iter().filter(|n| rotary(n)).count(), 1);
    let (x, c, sn) = (
        kinema_engine::random::uniform(80, 1),
        kinema_engine::random::uniform(20, 2),
        kinema_engine::random::uniform(20, 3),
    );
    let named: Vec<(&str, &[f32])> = vec![("x", &x), ("c", &c), ("s", &sn)];
    let mut want = vec![0f32; 80];
    for (i, pair) in want.chunks_exact_mut(2).enumerate() {
        let t = i / 4 / 2 * 4 + i % 4; // position (i / 8) and pair (i % 4) in the [1,5,1,4] tables
        let (e, o) = (x[2 * i], x[2 * i + 1]);
        pair[0] = e * c[t] - o * sn[t];
        pair[1] = e * sn[t] + o * c[t];
    }
    let mut s = pollster::block_on(Session::new(f, None, Options::default())).unwrap();
    let got = pollster::block_on(s.run(&named)).unwrap().swap_remove(0).data;
    assert_eq!(got, want);
    let reversed = simplify(&Program::from_json(&chain(r#"["b","a"]"#)).unwrap()).unwrap();
    assert_eq!(reversed.nodes.iter().filter(|n| rotary(n)).count(), 0);

    // The same slice taken twice is taken once (its second readers read the
    // first); a different step, and a repeat that is a program output, stay.
    let p = Program::from_json(
        r#"{"format":"kinema.program","version":1,"inputs":[{"name":"t","dtype":"f32","shape":[4,8]}],
            "nodes":[{"op":"slice","inputs":["t"],"outputs":["a"],"attrs":{"dim":1,"start":0,"end":8,"step":2}},
                     {"op":"slice","inputs":["t"],"outputs":["b"],"attrs":{"dim":1,"start":0,"end":8,"step":2}},
                     {"op":"slice","inputs":["t"],"outputs":["c"],"attrs":{"dim":1,"start":1,"end":8,"step":2}},
                     {"op":"add","inputs":["a","b"],"outputs":["y"]},{"op":"add","inputs":["y","c"],"outputs":["z"]},
                     {"op":"slice","inputs":["t"],"outputs":["w"],"attrs":{"dim":1,"start":0,"end":8,"step":2}}],
            "outputs":[{"name":"out0","value":"z"},{"name":"out1","value":"w"}]}"#,
    )
    .unwrap();
    let f = simplify(&p).unwrap();
    let slices = f.nodes.iter().filter(|n| matches!(n.op, Op::Slice { .. })).count();
    assert_eq!((f.nodes.len(), slices), (5, 3));
    assert_eq!(f.nodes.iter().find(|n| n.outputs == ["y"]).unwrap().inputs, ["a", "a"]);
    let t = kinema_engine::random::uniform(32, 4);
    let mut s = pollster::block_on(Session::new(f, None, Options::default())).unwrap();
    let outs = pollster::block_on(s.run(&[("t", &t)])).unwrap();
    let want: Vec<f32> = (0..16).map(|i| 2.0 * t[2 * i] + t[2 * i + 1]).collect();
    assert_eq!(outs.len(), 2);
    assert_eq!(outs[0].data, want);
    assert_eq!(outs[1].data, (0..16).map(|i| t[2 * i]).collect::<Vec<f32>>());
}

/// Resident bytes of this process's mappings of `path` (from /proc/self/smaps):
/// only this test's file, whatever else the test binary maps meanwhile.
#[cfg(target_os = "linux")]
fn mapped_rss(path: &std::path::Path) -> usize {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let name = path.display().to_string();
    let (mut inside, mut kib) = (false, 0);
    for line in smaps.lines() {
        match line.split_whitespace().next() {
            // A field of the current mapping ("Rss:        8192 kB").
            Some(key) if key.ends_with(':') => {
                if inside && key == "Rss:" {
                    kib += line[4..].trim().trim_end_matches("kB").trim().parse::<usize>().unwrap();
                }
            }
            // A mapping's first line: "start-end perms offset dev inode [path]".
            _ => inside = line.ends_with(&name),
        }
    }
    kib * 1024
}

/// A CPU session told to release its weights after use hands a memory-mapped
/// weight's pages back after the step that reads it last: the same output,
/// and the file's resident pages go from the weight's size to almost none.
#[cfg(target_os = "linux")]
#[test]
fn cpu_sessions_can_release_mapped_weights_after_use() {
    use std::collections::BTreeMap;

    use kinema_engine::weights::writer::{TensorSpec, to_bytes};

    let (m, n, k) = (3usize, 1024usize, 4096usize); // an 8 MiB bf16 weight
    let x = kinema_engine::random::uniform(m * k, 31);
    let w: Vec<u8> =
        kinema_engine::random::uniform(n * k, 32).iter().flat_map(|&v| half::bf16::from_f32(v).to_le_bytes()).collect();
    let file = to_bytes(
        &[(TensorSpec::new("lin.weight", Dtype::BF16, &[n as u64, k as u64]), w.as_slice())],
        &BTreeMap::new(),
    );
    let path = std::env::temp_dir().join(format!("kinema-release-{}.safetensors", std::process::id()));
    std::fs::write(&path, &file).unwrap();
    let program = Program::from_json(&format!(
        r#"{{"format":"kinema.program","version":1,
            "inputs":[{{"name":"x","dtype":"f32","shape":[{m},{k}]}}],
            "parameters":[{{"name":"w","key":"lin.weight","dtype":"bf16","shape":[{n},{k}]}}],
            "nodes":[{{"op":"linear","inputs":["x","w"],"outputs":["y"]}}],
            "outputs":[{{"name":"out0","value":"y"}}]}}"#
    ))
    .unwrap();
    let weights = pollster::block_on(Checkpoint::open(path.to_str().unwrap())).unwrap();
    let options = Options { device: DeviceChoice::Cpu, profile: false };
    let mut session = pollster::block_on(Session::new(program, Some(weights), options)).unwrap();
    let kept = pollster::block_on(session.run(&[("x", &x)])).unwrap();
    let resident = mapped_rss(&path);
    assert!(resident >= n * k * 2, "the weight's pages after a run: {resident} bytes");
    session.release_weights_after_use(true);
    let released = pollster::block_on(session.run(&[("x", &x)])).unwrap();
    let after = mapped_rss(&path);
    let _ = std::fs::remove_file(&path);
    assert_eq!(released[0].data.len(), m * n);
    assert_eq!(kept[0].data, released[0].data);
    // The header's page and the last partial page may stay.
    assert!(after <= 2 * 4096, "resident after release: {after} bytes (before: {resident})");
}
