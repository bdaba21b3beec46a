//! `kinema inspect` end to end: the binary's JSON against the PyTorch
//! goldens, its exit status, and its one-line errors.

use std::process::{Command, Output};

use kinema_tests::server::{Behaviour, Server};
use kinema_tests::{TempDir, fixture, raw_file, weights_golden};
use serde_json::Value;

/// The binary, with the static tuning table (a table saved in the user's
/// cache by `kinema tune` would change the kernels `inspect` names).
fn kinema(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kinema")).args(args).env("KINEMA_TUNE", "off").output().expect("run kinema")
}

fn json_of(out: &Output) -> Value {
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

fn check_tensors(report: &Value, golden: &Value, stats: bool) {
    let tensors = report["tensors"].as_array().unwrap();
    assert_eq!(tensors.len(), golden.as_object().unwrap().len());
    let mut total = 0;
    for t in tensors {
        let g = &golden[t["name"].as_str().unwrap()];
        assert_eq!(t["dtype"], g["dtype"]);
        assert_eq!(t["shape"], g["shape"]);
        total += t["bytes"].as_u64().unwrap();
        if stats {
            for k in ["nan", "inf"] {
                assert_eq!(t[k], g[k], "{} {k}", t["name"]);
            }
            for k in ["min", "max", "mean"] {
                match (t[k].as_f64(), g[k].as_f64()) {
                    (Some(a), Some(b)) => {
                        assert!((a - b).abs() <= 1e-12 * a.abs().max(b.abs()), "{} {k}: {a} vs {b}", t["name"])
                    }
                    _ => assert!(t[k].is_null() && g[k].is_null(), "{} {k}", t["name"]),
                }
            }
        } else {
            assert!(t.get("min").is_none());
        }
    }
    assert_eq!(report["total_bytes"].as_u64(), Some(total));
}

#[test]
fn json_and_stats_match_the_golden() {
    let golden = weights_golden();
    let path = fixture("weights/dtypes.safetensors");
    let report = json_of(&kinema(&["inspect", path.to_str().unwrap(), "--json", "--stats"]));
    check_tensors(&report, &golden["dtypes.safetensors"], true);
    assert_eq!(report["metadata"]["format"], "pt");
    assert_eq!(report["shards"].as_array().unwrap().len(), 1);

    let dir = fixture("weights/wan_vae_sharded");
    let report = json_of(&kinema(&["inspect", dir.to_str().unwrap(), "--json"]));
    check_tensors(&report, &golden["wan_vae_sharded"], false);
    assert_eq!(report["metadata"]["total_size"], report["total_bytes"]);
    assert!(
        report["tensors"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["shard"].as_str().unwrap().starts_with("diffusion_pytorch_model-0000"))
    );
}

#[test]
fn text_output_lists_shards_tensors_and_totals() {
    let dir = fixture("weights/wan_transformer_sharded");
    let out = kinema(&["inspect", dir.to_str().unwrap()]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("sharded, 5 shards"), "{text}");
    assert!(text.contains("blocks.1.ffn.net.0.proj.weight"), "{text}");
    let tensors = weights_golden()["wan_transformer_sharded"].as_object().unwrap().len();
    assert!(text.contains(&format!("total  {tensors} tensors")), "{text}");
}

#[test]
fn urls_and_verification() {
    let dir = fixture("weights/wan_transformer_sharded");
    let server = Server::serve_dir(&dir, Behaviour::Honest);
    let report = json_of(&kinema(&["inspect", &server.url(""), "--json", "--stats"]));
    check_tensors(&report, &weights_golden()["wan_transformer_sharded"], true);

    let sums = dir.join("SHA256SUMS");
    let report = json_of(&kinema(&["inspect", dir.to_str().unwrap(), "--json", "--verify", sums.to_str().unwrap()]));
    assert_eq!(report["verified"].as_array().unwrap().len(), 5);

    // A digest that does not match: non-zero exit, one line naming the shard.
    let tmp = TempDir::new("cli-verify");
    let text = std::fs::read_to_string(&sums).unwrap();
    let wrong = format!("{}{}", "0".repeat(64), &text[64..]);
    let wrong_path = tmp.write("SHA256SUMS", wrong);
    let out = kinema(&["inspect", dir.to_str().unwrap(), "--verify", wrong_path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("SHA-256 mismatch") && err.contains("00001-of-00005"), "{err}");
}

#[test]
fn invalid_input_exits_non_zero_with_one_line_naming_the_file() {
    let tmp = TempDir::new("cli-bad");
    let cases = [
        (tmp.write("short.safetensors", [1u8, 2, 3]), "too short"),
        (
            tmp.write("dtype.safetensors", raw_file(r#"{"w":{"dtype":"F4","shape":[2],"data_offsets":[0,1]}}"#, &[0])),
            "unsupported dtype",
        ),
        (tmp.write("json.safetensors", raw_file("{not json", &[])), "not valid JSON"),
        (
            tmp.write("x/m.safetensors.index.json", r#"{"weight_map":{"w":"../dtype.safetensors"}}"#),
            "not a plain relative path",
        ),
        (tmp.path("missing.safetensors"), "No such file"),
    ];
    for (path, problem) in cases {
        let p = path.to_str().unwrap();
        let out = kinema(&["inspect", p, "--json"]);
        assert_eq!(out.status.code(), Some(1), "{p}");
        assert!(out.stdout.is_empty(), "{p}: nothing on stdout");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.trim_end().lines().count(), 1, "{p}: {err}");
        assert!(err.starts_with(&format!("kinema: error: {p}: ")), "{err}");
        assert!(err.contains(problem), "{p}: {err}");
    }
}

#[test]
fn run_and_inspect_a_program() {
    let dir = fixture("programs/video_net");
    let path = |f: &str| dir.join(f).display().to_string();
    let tmp = TempDir::new("run_program");
    let out_file = tmp.0.join("out.safetensors").display().to_string();
    let out = kinema(&[
        "run",
        &path("program.json"),
        "--weights",
        &path("weights.safetensors"),
        "--inputs",
        &path("io.safetensors"),
        "--output",
        &out_file,
        "--device",
        "cpu",
        "--profile",
    ]);
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("by op kind:"));
    // The outputs equal PyTorch's eager outputs (tolerance as tests/programs.rs).
    let got = pollster::block_on(kinema_engine::weights::Checkpoint::open(&out_file)).unwrap();
    let want = pollster::block_on(kinema_engine::weights::Checkpoint::open(&path("io.safetensors"))).unwrap();
    for name in ["out0", "out1"] {
        let n = want.get(name).unwrap().info.numel() as usize;
        let (mut a, mut b) = (vec![0f32; n], vec![0f32; n]);
        pollster::block_on(got.read_f32(name, &mut a)).unwrap();
        pollster::block_on(want.read_f32(name, &mut b)).unwrap();
        let err = a.iter().zip(&b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(err < 1e-4, "{name}: {err}");
    }
    // The plan, as JSON: the conv + silu fusion, the arena, no CPU fallback on CPU-only plans' reason.
    let plan = json_of(&kinema(&["inspect", &path("program.json"), "--json", "--device", "cpu"]));
    assert_eq!(plan["nodes"], 14);
    assert_eq!(plan["steps"].as_array().unwrap().len(), 13);
    assert!(plan["steps"].as_array().unwrap().iter().any(|s| s["fused"] == "silu" && s["op"] == "conv"));
    assert!(plan["arena_bytes"].as_u64().unwrap() >= plan["peak_live_bytes"].as_u64().unwrap());
    assert!(plan["steps"].as_array().unwrap().iter().all(|s| s["delegate"] == "cpu" && s["reason"] == "no GPU device"));
    // A broken program: one line, exit 1.
    let bad = tmp.0.join("bad.json");
    std::fs::write(&bad, r#"{"format":"kinema.program","version":2}"#).unwrap();
    let out = kinema(&["inspect", &bad.display().to_string()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("version 2 is not supported") && err.lines().count() == 1, "{err}");
}

/// `kinema inspect` and `run --profile` name the kernel that runs each step:
/// on lavapipe (a CPU rasteriser with 8-wide subgroups) the tuning table picks
/// the subgroup kernels, and the narrow conv for convs of few output channels
/// (16 here, `CONV3D_NARROW_CHANNELS`); on the CPU delegate, its kernels.
#[test]
fn inspect_and_profile_name_the_kernel_that_runs() {
    let dir = fixture("programs/video_net");
    let path = |f: &str| dir.join(f).display().to_string();
    let kernels = |device: &str| -> Vec<(String, String)> {
        let plan = json_of(&kinema(&["inspect", &path("program.json"), "--json", "--device", device]));
        let steps = plan["steps"].as_array().unwrap();
        steps
            .iter()
            .map(|s| (s["op"].as_str().unwrap().to_string(), s["kernel"].as_str().unwrap().to_string()))
            .collect()
    };
    let sg8 = |file: &str| format!("{file}_sg8.wgsl (8 subgroups per workgroup)");
    let narrow = "conv3d_narrow.wgsl (64 threads)".to_string();
    let gpu = kernels("gpu");
    let want_gpu: Vec<(&str, String)> = vec![
        ("conv", narrow.clone()),
        ("group_norm", "norm.wgsl".into()),
        ("silu", "unary.wgsl".into()),
        ("conv", narrow.clone()),
        ("group_norm", "norm.wgsl".into()),
        ("silu", "unary.wgsl".into()),
        ("conv", narrow),
        ("add", "binary.wgsl".into()),
        ("conv", sg8("conv3d")), // 16 → 32 channels, fused with its silu
        ("mean", "reduce.wgsl".into()),
        ("mean", "reduce.wgsl".into()),
        ("mean", "reduce.wgsl".into()),
        ("linear", sg8("matmul")),
    ];
    let want_gpu: Vec<(String, String)> = want_gpu.into_iter().map(|(o, k)| (o.to_string(), k)).collect();
    assert_eq!(gpu, want_gpu);
    let cpu = kernels("cpu");
    assert_eq!(cpu.len(), 13);
    assert_eq!(cpu[8], ("conv".to_string(), "cpu::conv".to_string()));
    assert_eq!(cpu[12], ("linear".to_string(), "cpu::matmul".to_string()));
    // The text table says the same.
    let text = kinema(&["inspect", &path("program.json"), "--device", "gpu"]);
    let text = String::from_utf8_lossy(&text.stdout).to_string();
    let head = text.lines().find(|l| l.trim_end().ends_with(" head")).expect("the head's row");
    assert!(head.contains(&sg8("matmul")), "{head}");
    // So does the profile of a GPU run: one row per step, each naming its kernel.
    let tmp = TempDir::new("profile_kernels");
    let out_file = tmp.0.join("out.safetensors").display().to_string();
    let args =
        ["run", &path("program.json"), "--weights", &path("weights.safetensors"), "--inputs", &path("io.safetensors")];
    let out = kinema(&[&args[..], &["--output", &out_file, "--device", "gpu", "--profile"]].concat());
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let rows: Vec<&str> = stdout.lines().filter(|l| l.contains(" ms  node ")).collect();
    assert_eq!(rows.len(), want_gpu.len(), "{stdout}");
    for (row, (_, kernel)) in rows.iter().zip(&want_gpu) {
        assert!(row.contains(kernel.as_str()), "{row} should name {kernel}");
    }
}

/// Prompt embeddings without a negative: refused while guidance is on (the
/// pipeline's default, 5), as diffusers would encode "" — not run without
/// guidance; with `--guidance 1` they run.
#[test]
fn generate_refuses_guidance_without_negative_embeddings() {
    use kinema_engine::weights::writer::{TensorSpec, to_bytes};
    use kinema_engine::weights::{Checkpoint, Dtype};
    let dir = fixture("pipelines/wan_tiny");
    let golden = pollster::block_on(Checkpoint::open(&dir.join("golden.safetensors").display().to_string())).unwrap();
    let info = golden.get("prompt_embeds").unwrap().info.clone();
    let mut pe = vec![0f32; info.numel() as usize];
    pollster::block_on(golden.read_f32("prompt_embeds", &mut pe)).unwrap();
    let tmp = TempDir::new("no-negative");
    let file = tmp.0.join("embeds.safetensors");
    let spec = TensorSpec::new("prompt_embeds", Dtype::F32, &info.shape);
    std::fs::write(&file, to_bytes(&[(spec, bytemuck::cast_slice(&pe))], &Default::default())).unwrap();
    let gif = tmp.0.join("out.gif").display().to_string();
    let (pipeline, embeds) = (dir.display().to_string(), file.display().to_string());
    let base = ["generate", "--pipeline", &pipeline, "--prompt-embeds", &embeds, "--steps", "1", "--device", "cpu"];
    let out = kinema(&[&base[..], &["-o", &gif]].concat());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("has no negative_prompt_embeds"), "{err}");
    assert!(err.contains("--guidance 1") && !std::path::Path::new(&gif).exists(), "{err}");
    let out = kinema(&[&base[..], &["--guidance", "1", "-o", &gif]].concat());
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    assert!(std::path::Path::new(&gif).exists());
}

#[test]
fn generate_writes_the_pipelines_video_as_a_gif() {
    use kinema_engine::diffusion::{Pipeline, Request};
    let dir = fixture("pipelines/wan_tiny");
    let embeds = dir.join("golden.safetensors").display().to_string();
    let tmp = TempDir::new("generate");
    let gif_path = tmp.0.join("out.gif");
    let out = kinema(&[
        "generate",
        "--pipeline",
        &dir.display().to_string(),
        "--prompt-embeds",
        &embeds,
        "--seed",
        "7",
        "--steps",
        "2",
        "--device",
        "cpu",
        "-o",
        &gif_path.display().to_string(),
    ]);
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    // The same generation in-process, to compare the GIF's frames with.
    let mut pipe = pollster::block_on(Pipeline::open(
        &kinema_engine::diffusion::Folder::Dir(dir.clone()),
        kinema_engine::runtime::Options::default(),
    ))
    .unwrap();
    let golden = pollster::block_on(kinema_engine::weights::Checkpoint::open(&embeds)).unwrap();
    let read = |n: &str| {
        let mut v = vec![0f32; golden.get(n).unwrap().info.numel() as usize];
        pollster::block_on(golden.read_f32(n, &mut v)).unwrap();
        v
    };
    let (pe, ne) = (read("prompt_embeds"), read("negative_prompt_embeds"));
    let guidance = pipe.manifest.defaults.guidance;
    let video = pollster::block_on(pipe.generate(Request {
        prompt_embeds: &pe,
        negative_embeds: Some(&ne),
        seed: 7,
        steps: 2,
        guidance,
        ..Default::default()
    }))
    .unwrap();
    let mut opts = gif::DecodeOptions::new();
    opts.set_color_output(gif::ColorOutput::RGBA);
    let mut dec = opts.read_info(std::fs::File::open(&gif_path).unwrap()).unwrap();
    let mut frames = 0;
    let (mut sum, mut count) = (0f64, 0usize);
    while let Some(frame) = dec.read_next_frame().unwrap() {
        assert_eq!((frame.width, frame.height), (64, 64));
        let plane = 64 * 64 * 3;
        for (i, px) in frame.buffer.chunks_exact(4).enumerate() {
            for (c, &v) in px[..3].iter().enumerate() {
                sum += (v as f64 / 255.0 - video.rgb[frames * plane + i * 3 + c] as f64).abs();
                count += 1;
            }
        }
        frames += 1;
    }
    assert_eq!(frames, video.frames);
    // 256-colour quantisation per frame: small mean error.
    assert!(sum / (count as f64) < 0.03, "mean abs error {}", sum / count as f64);
    // A prompt without a pipeline: the embedded model, its frames as PNGs too.
    let gif = tmp.0.join("embedded.gif");
    let pngs = tmp.0.join("embedded-frames");
    let out = kinema(&[
        "generate",
        "a red circle moving left",
        "--steps",
        "2",
        "--device",
        "cpu",
        "-o",
        &gif.display().to_string(),
        "--frames-dir",
        &pngs.display().to_string(),
    ]);
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("denoise"));
    // The embedded model's clip: 16 frames of 64×64, one PNG each.
    assert_eq!(std::fs::read_dir(&pngs).unwrap().count(), 16);
    for f in 0..16 {
        let png = png::Decoder::new(std::io::BufReader::new(
            std::fs::File::open(pngs.join(format!("frame_{f:03}.png"))).unwrap(),
        ));
        let info = png.read_info().unwrap().info().clone();
        assert_eq!((info.width, info.height), (64, 64));
    }
    // Words it does not know, and a frame count its programs were not exported for.
    for (args, expect) in [
        (vec!["generate", "a purple circle moving left"], "unknown word \"purple\""),
        (vec!["generate", "a red circle moving left", "--frames", "9", "--steps", "1"], "9 frames"),
    ] {
        let out = kinema(&args);
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expect), "{err}");
    }
}

/// `kinema decode`: the pipeline's VAE stage on latents from a file writes the
/// decoder's raw output, which matches diffusers' decoder (the golden of
/// tools/fixtures/make_pipeline_fixture.py); a missing key is one line.
#[test]
fn decode_writes_the_vae_decoders_raw_output() {
    let dir = fixture("pipelines/wan_tiny");
    let golden_path = dir.join("decode_golden.safetensors").display().to_string();
    let tmp = TempDir::new("decode");
    let out_path = tmp.0.join("video.safetensors").display().to_string();
    let pipeline = dir.display().to_string();
    let args = ["decode", "--pipeline", &pipeline, &golden_path, "--key", "z", "--device", "cpu", "-o", &out_path];
    let out = kinema(&args);
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let open = |p: &str| pollster::block_on(kinema_engine::weights::Checkpoint::open(p)).unwrap();
    let (got, golden) = (open(&out_path), open(&golden_path));
    let read = |c: &kinema_engine::weights::Checkpoint, n: &str| {
        let mut v = vec![0f32; c.get(n).unwrap().info.numel() as usize];
        pollster::block_on(c.read_f32(n, &mut v)).unwrap();
        v
    };
    assert_eq!(got.get("video").unwrap().info.shape, [1, 3, 5, 64, 64]);
    let (v, want) = (read(&got, "video"), read(&golden, "whole"));
    assert_eq!(v.len(), want.len());
    let err = v.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(err <= 1e-5, "decode differs from diffusers by {err}");
    let out = kinema(&["decode", "--pipeline", &pipeline, &golden_path, "-o", &out_path]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("latents") && err.lines().count() == 1, "{err}");
}

/// `kinema tokenize --json`: a pipeline folder's umT5 tokenizer gives
/// transformers' ids and mask (the golden of tools/fixtures/make_tokenizer_goldens.py),
/// padded to 512 without a kinema.json; a folder without a tokenizer is one line.
#[test]
fn tokenize_prints_the_pipelines_ids_and_mask() {
    let home = std::path::PathBuf::from(std::env::var("HOME").unwrap_or_default());
    let real = std::env::var("KINEMA_UMT5_TOKENIZER")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| home.join(".cache/kinema/umt5/tokenizer.json"));
    let tmp = TempDir::new("tokenize");
    std::fs::create_dir_all(tmp.0.join("tokenizer")).unwrap();
    std::fs::copy(&real, tmp.0.join("tokenizer/tokenizer.json"))
        .unwrap_or_else(|e| panic!("{}: {e}; python3 tools/fixtures/fetch_umt5_tokenizer.py", real.display()));
    let golden: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("text/umt5_tokens.json")).unwrap()).unwrap();
    let case = &golden["cases"][0];
    let dir = tmp.0.display().to_string();
    let out = json_of(&kinema(&["tokenize", "--pipeline", &dir, case["prompt"].as_str().unwrap(), "--json"]));
    let (ids, mask) = (out["input_ids"].as_array().unwrap(), out["attention_mask"].as_array().unwrap());
    let n = case["length"].as_u64().unwrap() as usize;
    assert_eq!((ids.len(), mask.len()), (512, 512));
    assert_eq!(ids[..n], case["input_ids"].as_array().unwrap()[..]);
    assert!(ids[n..].iter().all(|v| v == 0) && mask.iter().enumerate().all(|(i, m)| m == (i < n) as u64));
    let empty = TempDir::new("no-tokenizer");
    let out = kinema(&["tokenize", "--pipeline", &empty.0.display().to_string(), "hi"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("tokenizer.json") && err.lines().count() == 1, "{err}");
}

/// `kinema encode` writes `WanPipeline.encode_prompt`'s embeddings (the tiny
/// pipeline's umT5 program; make_pipeline_fixture.py's golden, within 1e-5),
/// and `kinema generate` reads a prompt through the same encoder; a pipeline
/// without a text encoder is a one-line error and writes nothing.
#[test]
fn encode_writes_the_prompts_embeddings_and_generate_reads_prompts() {
    use kinema_engine::weights::Checkpoint;
    let dir = fixture("pipelines/wan_tiny");
    let golden =
        pollster::block_on(Checkpoint::open(&dir.join("text_golden.safetensors").display().to_string())).unwrap();
    let read = |ckpt: &Checkpoint, name: &str| {
        let mut v = vec![0f32; ckpt.get(name).unwrap().info.numel() as usize];
        pollster::block_on(ckpt.read_f32(name, &mut v)).unwrap();
        v
    };
    let tmp = TempDir::new("encode");
    let file = tmp.0.join("embeds.safetensors");
    let pipeline = dir.display().to_string();
    let out =
        kinema(&["encode", "--pipeline", &pipeline, "a cat", "--device", "cpu", "-o", &file.display().to_string()]);
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let written = pollster::block_on(Checkpoint::open(&file.display().to_string())).unwrap();
    assert_eq!(written.get("prompt_embeds").unwrap().info.shape, [1, 7, 16]);
    for (key, want) in [("prompt_embeds", "prompt_embeds_2"), ("negative_prompt_embeds", "negative_prompt_embeds")] {
        let (got, want) = (read(&written, key), read(&golden, want));
        assert_eq!(got.len(), want.len());
        let err = got.iter().zip(&want).fold(0f32, |m, (a, b)| m.max((a - b).abs() / (1.0 + b.abs())));
        assert!(err <= 1e-5, "{key}: {err}");
    }
    let gif = tmp.0.join("cat.gif");
    let out = kinema(&[
        "generate",
        "--pipeline",
        &pipeline,
        "a cat surfing a wave at sunset",
        "--negative-prompt",
        "blurry",
        "--steps",
        "2",
        "--device",
        "cpu",
        "-o",
        &gif.display().to_string(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.contains("text encoded"), "stderr: {err}");
    // Each stage's time, and on Linux its peak resident memory (text, denoise, decode).
    assert!(!cfg!(target_os = "linux") || err.matches("peak RSS").count() == 3, "stderr: {err}");
    assert!(gif.exists());
    // A few-step schedule, no guidance: one transformer pass a step; a prompt past
    // the text length is cut, with a warning.
    let long = "a cat surfing a wave at sunset ".repeat(3);
    let out = kinema(&[
        "generate",
        "--pipeline",
        &pipeline,
        &long,
        "--timesteps",
        "1000,750,500,250",
        "--guidance",
        "1",
        "--device",
        "cpu",
        "-o",
        &gif.display().to_string(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.contains("(4 steps") && err.contains("its end is cut"), "stderr: {err}");
    let other = tmp.0.join("other.safetensors");
    let video_net = fixture("programs/video_net").display().to_string();
    let out = kinema(&["encode", "--pipeline", &video_net, "a cat", "-o", &other.display().to_string()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.lines().count() == 1 && err.contains("kinema.json"), "{err}");
    assert!(!other.exists());
}

/// `kinema generate --pipeline URL`: the folder is downloaded into the cache
/// (`KINEMA_CACHE_DIR`) on the first run — a connection cut halfway through each
/// file is resumed — and the second run asks the server nothing; both write the
/// video the local folder gives, byte for byte.
#[test]
fn a_pipeline_at_a_url_is_cached_and_resumed_and_runs_as_the_folder() {
    let dir = fixture("pipelines/wan_tiny");
    let server = Server::serve_dir(&dir, Behaviour::TruncateFirst);
    let tmp = TempDir::new("url-pipeline");
    let run = |pipeline: &str, name: &str| -> Vec<u8> {
        let file = tmp.0.join(name);
        let out = Command::new(env!("CARGO_BIN_EXE_kinema"))
            .args(["generate", "--pipeline", pipeline, "a cat", "--steps", "2", "--device", "cpu", "-o"])
            .arg(&file)
            .env("KINEMA_CACHE_DIR", tmp.0.join("cache"))
            .output()
            .expect("run kinema");
        assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
        std::fs::read(&file).expect("the video")
    };
    let local = run(&dir.display().to_string(), "local.gif");
    let first = run(&server.url(""), "first.gif");
    let log = server.log();
    let resumed = log.iter().filter(|l| l.range.is_some_and(|(s, _)| s > 0)).count();
    assert!(resumed >= 4, "the cut files were resumed by range: {log:?}");
    let second = run(&server.url(""), "second.gif");
    assert_eq!(server.log().len(), log.len(), "the second run asks the server nothing");
    assert_eq!(first.len(), local.len());
    assert!(first == local && second == local, "the URL's video is the folder's");
}

/// Reads an MP4's H.264 track back (the `mp4` demuxer, OpenH264's decoder):
/// each sample's length-prefixed NAL units as Annex B, the avcC's SPS and PPS
/// first; the frames as RGB bytes.
fn decode_mp4(path: &std::path::Path) -> (usize, usize, u32, Vec<Vec<u8>>) {
    let file = std::fs::File::open(path).unwrap();
    let size = file.metadata().unwrap().len();
    let mut mp4 = mp4::Mp4Reader::read_header(std::io::BufReader::new(file), size).unwrap();
    let (id, track) = mp4.tracks().iter().next().map(|(id, t)| (*id, t)).unwrap();
    let (w, h) = (track.width() as usize, track.height() as usize);
    let fps = track.timescale();
    let avc = &track.trak.mdia.minf.stbl.stsd.avc1.as_ref().unwrap().avcc;
    let mut decoder = openh264::decoder::Decoder::new().unwrap();
    let annexb = |nal: &[u8]| [&[0, 0, 0, 1][..], nal].concat();
    let mut head = annexb(&avc.sequence_parameter_sets[0].bytes);
    head.extend(annexb(&avc.picture_parameter_sets[0].bytes));
    let mut frames = Vec::new();
    for i in 1..=mp4.sample_count(id).unwrap() {
        let sample = mp4.read_sample(id, i).unwrap().unwrap();
        let mut packet = if i == 1 { head.clone() } else { Vec::new() };
        let mut at = 0;
        while at + 4 <= sample.bytes.len() {
            let n = u32::from_be_bytes(sample.bytes[at..at + 4].try_into().unwrap()) as usize;
            packet.extend(annexb(&sample.bytes[at + 4..at + 4 + n]));
            at += 4 + n;
        }
        if let Some(yuv) = decoder.decode(&packet).unwrap() {
            let mut rgb = vec![0u8; w * h * 3];
            yuv.write_rgb8(&mut rgb);
            frames.push(rgb);
        }
    }
    (w, h, fps, frames)
}

/// `kinema generate -o clip.mp4`: H.264 in MP4 that decodes (the `mp4` crate and
/// OpenH264's decoder) to the frames written as PNGs, within the codec's loss:
/// luma within 1.5 levels of 255 on average and 16 at most (measured 1.16 and
/// 13.5: limited-range BT.601 YUV and QP ≤ 20), RGB within 3.5 on average
/// (2.76: 4:2:0 also halves the colour resolution, so a saturated shape's edge
/// loses up to 74), at the pipeline's fps; other extensions are refused.
#[test]
fn generate_writes_h264_mp4_that_decodes_to_the_frames() {
    let tmp = TempDir::new("mp4");
    let mp4 = tmp.0.join("clip.mp4");
    let frames_dir = tmp.0.join("frames");
    let out = kinema(&[
        "generate",
        "a blue square moving up",
        "--device",
        "cpu",
        "-o",
        &mp4.display().to_string(),
        "--frames-dir",
        &frames_dir.display().to_string(),
    ]);
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let (w, h, fps, frames) = decode_mp4(&mp4);
    assert_eq!((w, h, fps, frames.len()), (64, 64, 8, 16));
    // Luma (BT.601) carries the codec's loss; chroma is also halved in each
    // direction by 4:2:0 sampling (a saturated square's edge loses most there).
    let luma = |p: &[u8]| 0.299 * p[0] as f64 + 0.587 * p[1] as f64 + 0.114 * p[2] as f64;
    let (mut sum, mut max, mut n) = (0u64, 0u8, 0u64);
    let (mut y_sum, mut y_max) = (0f64, 0f64);
    for (f, got) in frames.iter().enumerate() {
        let png = png::Decoder::new(std::io::BufReader::new(
            std::fs::File::open(frames_dir.join(format!("frame_{f:03}.png"))).unwrap(),
        ));
        let mut reader = png.read_info().unwrap();
        let mut want = vec![0u8; reader.output_buffer_size().unwrap()];
        reader.next_frame(&mut want).unwrap();
        assert_eq!(got.len(), want.len());
        for (a, b) in got.iter().zip(&want) {
            let d = a.abs_diff(*b);
            (sum, max, n) = (sum + d as u64, max.max(d), n + 1);
        }
        for (a, b) in got.chunks_exact(3).zip(want.chunks_exact(3)) {
            let d = (luma(a) - luma(b)).abs();
            (y_sum, y_max) = (y_sum + d, y_max.max(d));
        }
    }
    let (mean, y_mean) = (sum as f64 / n as f64, y_sum * 3.0 / n as f64);
    eprintln!(
        "mp4 vs png frames: RGB mean |Δ| {mean:.2}, max {max}; luma mean |Δ| {y_mean:.2}, max {y_max:.1} (of 255)"
    );
    assert!(y_mean <= 1.5 && y_max <= 16.0, "luma: mean {y_mean}, max {y_max}");
    assert!(mean <= 3.5, "RGB mean {mean}");
    let out = kinema(&["generate", "a blue square moving up", "--device", "cpu", "-o", "clip.avi"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains(".mp4 or .gif"), "{err}");
}
