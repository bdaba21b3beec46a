//! `kinema tune` end to end on lavapipe: the table it saves, a second process
//! that reads it and times nothing, the kernels `inspect` and `run` then use
//! (outputs still PyTorch's), and tables that must be ignored.

use std::process::{Command, Output};

use kinema_tests::{TempDir, fixture};
use serde_json::Value;

fn kinema(cache: &std::path::Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kinema"));
    cmd.args(args).env("KINEMA_CACHE_DIR", cache).env_remove("KINEMA_TUNE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run kinema")
}

fn json_of(out: &Output) -> Value {
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

/// The kernels `kinema inspect --device gpu` names for the program's linear
/// (matmul), attention and conv steps.
fn step_kernels(cache: &std::path::Path, env: &[(&str, &str)], program: &str) -> ([Vec<String>; 3], String) {
    let out = kinema(cache, env, &["inspect", program, "--device", "gpu", "--json"]);
    let plan = json_of(&out);
    let of = |op: &str| -> Vec<String> {
        let steps = plan["steps"].as_array().unwrap();
        steps.iter().filter(|s| s["op"] == op).map(|s| s["kernel"].as_str().unwrap().to_string()).collect()
    };
    ([of("linear"), of("attention"), of("conv")], String::from_utf8_lossy(&out.stderr).to_string())
}

fn max_err(got: &str, want: &str) -> (f32, f32) {
    let got = pollster::block_on(kinema_engine::weights::Checkpoint::open(got)).unwrap();
    let want = pollster::block_on(kinema_engine::weights::Checkpoint::open(want)).unwrap();
    let n = want.get("out0").unwrap().info.numel() as usize;
    assert_eq!(got.get("out0").unwrap().info.numel() as usize, n);
    let (mut a, mut b) = (vec![0f32; n], vec![0f32; n]);
    pollster::block_on(got.read_f32("out0", &mut a)).unwrap();
    pollster::block_on(want.read_f32("out0", &mut b)).unwrap();
    let err = a.iter().zip(&b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    (err, b.iter().fold(0f32, |m, v| m.max(v.abs())))
}

/// The tiny transformer's patch embedding as a GEMM class.
const CONV_CLASS: &str = "conv3d c_out≤32 k≤64 p≤32";

#[test]
fn tune_saves_a_table_that_later_processes_use() {
    let dir = fixture("programs/wan_transformer");
    let path = |f: &str| dir.join(f).display().to_string();
    let program = path("program.json");
    let tmp = TempDir::new("tune");
    let cache = tmp.0.join("cache");
    // The tiny transformer's classes: its linears (tokens × features, the
    // 1-token time embedding), its self- and cross-attention and its patch
    // embedding (a conv).
    let classes = [
        "attention d=12 q≤32 kv≤32",
        "attention d=12 q≤32 kv≤8",
        CONV_CLASS,
        "matmul m≤1 n≤256 k≤32",
        "matmul m≤1 n≤32 k≤16",
        "matmul m≤1 n≤32 k≤32",
        "matmul m≤32 n≤32 k≤32",
        "matmul m≤32 n≤64 k≤32",
        "matmul m≤8 n≤32 k≤16",
        "matmul m≤8 n≤32 k≤32",
    ];
    let first = json_of(&kinema(&cache, &[], &["tune", &program, "--budget", "300", "--runs", "2", "--json"]));
    let entries = first["entries"].as_array().unwrap();
    let mut keys: Vec<&str> = entries.iter().map(|e| e["class"].as_str().unwrap()).collect();
    keys.sort();
    assert_eq!(keys, classes);
    assert_eq!(first["tuned"], classes.len());
    for e in entries {
        // The default is a candidate: the winner is never slower than it.
        assert!(e["ms"].as_f64().unwrap() <= e["default_ms"].as_f64().unwrap(), "{e}");
        let kernel = e["describe"].as_str().unwrap();
        let class = e["class"].as_str().unwrap();
        let want = class.split(' ').next().unwrap();
        assert!(kernel.starts_with(want), "{e}");
    }
    let saved = std::path::PathBuf::from(first["path"].as_str().unwrap());
    assert!(saved.starts_with(cache.join("tuning")) && saved.is_file(), "{saved:?}");
    // A second process times nothing: the table is read back whole.
    let second = json_of(&kinema(&cache, &[], &["tune", &program, "--budget", "300", "--json"]));
    assert_eq!(second["tuned"], 0);
    assert_eq!(second["entries"], first["entries"]);

    // A table that picks kernels other than the static choice (lavapipe's:
    // the 8-subgroup kernels) for every class — attention by the score
    // matrix between two matmuls: inspect names them, and a run by them
    // still gives PyTorch's outputs.
    let mut table: Value = serde_json::from_str(&std::fs::read_to_string(&saved).unwrap()).unwrap();
    for e in table["entries"].as_array_mut().unwrap() {
        e["kernel"] = match e["class"].as_str().unwrap().split(' ').next().unwrap() {
            "matmul" => serde_json::json!({"matmul": "blocked", "wg_m": 8, "wg_n": 16, "bk": 16}),
            "conv3d" => serde_json::json!({"conv3d": "tiled", "wg_m": 8, "wg_n": 8, "bk": 8}),
            _ => serde_json::json!({"attention": "scores", "rows": 256}),
        };
    }
    std::fs::write(&saved, table.to_string()).unwrap();
    let ([linears, attentions, convs], _) = step_kernels(&cache, &[], &program);
    assert!(!linears.is_empty() && !attentions.is_empty() && convs.len() == 1);
    assert!(linears.iter().all(|k| k == "matmul_blocked.wgsl (8 × 16 threads of 8 × 4, BK 16)"), "{linears:?}");
    assert!(attentions.iter().all(|k| k.starts_with("attention_scores.wgsl (blocks of up to 256")), "{attentions:?}");
    assert_eq!(convs, ["conv3d.wgsl (8 × 8 threads, BK 8)"]);
    let out = tmp.0.join("out.safetensors").display().to_string();
    let run = ["run", &program, "--weights", &path("transformer"), "--inputs", &path("io.safetensors")];
    let ran = kinema(&cache, &[], &[&run[..], &["--output", &out, "--device", "gpu"]].concat());
    assert!(ran.status.success(), "stderr: {}", String::from_utf8_lossy(&ran.stderr));
    let (err, scale) = max_err(&out, &path("io.safetensors"));
    assert!(err <= 1e-4 * scale.max(1.0), "{err} of {scale}");

    // KINEMA_TUNE=off: the static choices, whatever the table says.
    let ([linears, attentions, convs], _) = step_kernels(&cache, &[("KINEMA_TUNE", "off")], &program);
    assert!(linears.iter().all(|k| k == "matmul_sg8.wgsl (8 subgroups per workgroup)"), "{linears:?}");
    assert!(attentions.iter().all(|k| k == "attention_sg8.wgsl (8 subgroups per workgroup)"), "{attentions:?}");
    assert!(convs.iter().all(|k| k.starts_with("conv3d_")), "{convs:?}");

    // Tables to ignore, with one line saying why: not JSON, another adapter's,
    // a kernel that is not one of this adapter's candidates.
    let mut other = table.clone();
    other["adapter"] = "0000:0000 some other GPU (Metal)".into();
    let mut unknown = table.clone();
    unknown["entries"][0]["kernel"] = serde_json::json!({"matmul": "subgroups8", "wg_rows": 3});
    for (text, why) in [
        ("{".to_string(), "EOF"),
        (other.to_string(), "made for another adapter"),
        (unknown.to_string(), "an unknown kernel"),
    ] {
        std::fs::write(&saved, text).unwrap();
        let ([linears, ..], stderr) = step_kernels(&cache, &[], &program);
        assert!(linears.iter().all(|k| k == "matmul_sg8.wgsl (8 subgroups per workgroup)"), "{why}: {linears:?}");
        let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("ignoring the tuning table")).collect();
        assert_eq!(warnings.len(), 1, "{stderr}");
        assert!(warnings[0].contains(why), "{stderr}");
    }
    // A budget of 0 times nothing.
    let none = json_of(&kinema(&cache, &[], &["tune", &program, "--budget", "0", "--fresh", "--json"]));
    assert_eq!(none["tuned"], 0);
    assert_eq!(none["entries"].as_array().unwrap().len(), 0);
    let bad = kinema(&cache, &[], &["tune", "--budget", "100000"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--budget 100000: expected 0 to 86400 seconds"));
}

/// `KINEMA_TUNE=full`: a GPU session first times the classes its program's
/// table lacks (once: a second process finds them all), within
/// `KINEMA_TUNE_BUDGET`; its outputs stay PyTorch's; bad settings are errors.
#[test]
fn full_tuning_times_a_programs_classes_at_first_use_once() {
    let dir = fixture("programs/wan_transformer");
    let path = |f: &str| dir.join(f).display().to_string();
    let tmp = TempDir::new("tune_full");
    let out = tmp.0.join("out.safetensors").display().to_string();
    let (program, weights, inputs) = (path("program.json"), path("transformer"), path("io.safetensors"));
    let args = ["run", &program, "--weights", &weights, "--inputs", &inputs, "--output", &out, "--device", "gpu"];
    let run = |cache: &std::path::Path, env: &[(&str, &str)]| -> String {
        let ran = kinema(cache, env, &args);
        let stderr = String::from_utf8_lossy(&ran.stderr).to_string();
        assert!(ran.status.success(), "stderr: {stderr}");
        let (err, scale) = max_err(&out, &inputs);
        assert!(err <= 1e-4 * scale.max(1.0), "{err} of {scale}");
        stderr
    };
    let tuned = |stderr: &str| stderr.lines().filter(|l| l.starts_with("kinema: tuned ")).count();
    let cache = tmp.0.join("cache");
    // A budget that covers every class even beside other tests (the default, 10 s, may not).
    let first = run(&cache, &[("KINEMA_TUNE", "full"), ("KINEMA_TUNE_BUDGET", "300")]);
    assert!(first.contains("kinema: tuned 10 shape classes in "), "{first}");
    let table = std::fs::read_dir(cache.join("tuning")).unwrap().count();
    assert_eq!(table, 1);
    assert_eq!(tuned(&run(&cache, &[("KINEMA_TUNE", "full")])), 0);
    // No budget: nothing timed, nothing saved.
    let none = tmp.0.join("none");
    assert_eq!(tuned(&run(&none, &[("KINEMA_TUNE", "full"), ("KINEMA_TUNE_BUDGET", "0")])), 0);
    assert!(!none.join("tuning").exists());
    for (k, v, why) in [
        ("KINEMA_TUNE", "always", "KINEMA_TUNE=always: expected off, cached or full"),
        ("KINEMA_TUNE_BUDGET", "ten", "KINEMA_TUNE_BUDGET=ten: expected 0 to 3600 seconds"),
    ] {
        let env = [("KINEMA_TUNE", "full"), (k, v)];
        let env = if k == "KINEMA_TUNE" { &env[1..] } else { &env[..] };
        let bad = kinema(&none, env, &args);
        assert_eq!(bad.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&bad.stderr);
        assert!(stderr.lines().any(|l| l.starts_with("kinema: error: ") && l.contains(why)), "{stderr}");
    }
}

/// `KINEMA_PRECISION=f16`: the tuner may also choose f16 arithmetic (on an
/// adapter with `shader-f16`: lavapipe), into a table of its own that an f32
/// process never reads; a run by the f16 kernels stays within f16 rounding of
/// PyTorch's outputs; a bad setting is an error.
#[test]
fn f16_precision_tables_are_kept_apart() {
    let dir = fixture("programs/wan_transformer");
    let path = |f: &str| dir.join(f).display().to_string();
    let program = path("program.json");
    let tmp = TempDir::new("tune_f16");
    let cache = tmp.0.join("cache");
    let f16 = [("KINEMA_PRECISION", "f16")];
    let tuned = json_of(&kinema(&cache, &f16, &["tune", &program, "--budget", "300", "--runs", "1", "--json"]));
    assert_eq!(tuned["precision"], "f16");
    assert_eq!(tuned["entries"].as_array().unwrap().len(), 10);
    let saved = std::path::PathBuf::from(tuned["path"].as_str().unwrap());
    assert!(saved.to_str().unwrap().ends_with(".f16.json"), "{saved:?}");
    // Every linear by the f16 kernel: inspect names it, the run is within f16 rounding.
    let mut table = tuned.clone();
    for e in table["entries"].as_array_mut().unwrap() {
        if e["class"].as_str().unwrap().starts_with("matmul ") {
            e["kernel"] = serde_json::json!({"matmul": "f16", "wg_m": 8, "wg_n": 16, "bk": 16});
        }
    }
    std::fs::write(&saved, table.to_string()).unwrap();
    let ([linears, ..], stderr) = step_kernels(&cache, &f16, &program);
    assert!(!linears.is_empty(), "{stderr}");
    assert!(linears.iter().all(|k| k == "matmul_f16.wgsl (8 × 16 threads, BK 16, f16 arithmetic)"), "{linears:?}");
    let out = tmp.0.join("out.safetensors").display().to_string();
    let run = ["run", &program, "--weights", &path("transformer"), "--inputs", &path("io.safetensors")];
    let ran = kinema(&cache, &f16, &[&run[..], &["--output", &out, "--device", "gpu"]].concat());
    assert!(ran.status.success(), "stderr: {}", String::from_utf8_lossy(&ran.stderr));
    let (err, scale) = max_err(&out, &path("io.safetensors"));
    assert!(err <= 1e-2 * scale.max(1.0), "{err} of {scale}");
    assert!(err > 1e-6 * scale.max(1.0), "bit for bit f32? {err}");
    // An f32 process reads its own table (none here), not the f16 one, and
    // an f16 table put in its place is ignored, with the reason.
    let ([linears, ..], stderr) = step_kernels(&cache, &[], &program);
    assert!(linears.iter().all(|k| k == "matmul_sg8.wgsl (8 subgroups per workgroup)"), "{linears:?}");
    assert!(!stderr.contains("ignoring"), "{stderr}");
    std::fs::write(saved.to_str().unwrap().replace(".f16.json", ".json"), table.to_string()).unwrap();
    let ([linears, ..], stderr) = step_kernels(&cache, &[], &program);
    assert!(linears.iter().all(|k| k == "matmul_sg8.wgsl (8 subgroups per workgroup)"), "{linears:?}");
    assert!(stderr.contains("made at another precision"), "{stderr}");
    let bad = kinema(&cache, &[("KINEMA_PRECISION", "f64")], &["tune", "--budget", "0"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("KINEMA_PRECISION=f64: expected f32 or f16"));
}
