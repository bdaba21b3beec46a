//! The schedulers against diffusers, step for step
//! (`tools/fixtures/make_scheduler_goldens.py`): the same timesteps and sigmas,
//! and the same sample after every step when driven by the same stand-in model
//! (v = 0.7·x − 0.3·sin(3x) + 0.001·t, f32). Tolerance: 1e-5 · (1 + |x|).

use kinema_engine::diffusion::{Scheduler, SchedulerConfig};
use kinema_engine::weights::Checkpoint;
use kinema_tests::fixture;

fn read(ckpt: &Checkpoint, name: &str) -> Vec<f32> {
    let mut v = vec![0f32; ckpt.get(name).unwrap().info.numel() as usize];
    pollster::block_on(ckpt.read_f32(name, &mut v)).unwrap();
    v
}

fn close(a: &[f32], b: &[f32], tol: f32) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() / (1.0 + y.abs()))
        .fold(0.0, f32::max)
        .max(if a.iter().all(|v| v.is_finite()) { 0.0 } else { tol * 2.0 })
}

#[test]
fn schedulers_match_diffusers_step_for_step() {
    let ckpt =
        pollster::block_on(Checkpoint::open(fixture("diffusion/schedulers.safetensors").to_str().unwrap())).unwrap();
    let cases: serde_json::Value = serde_json::from_str(&ckpt.shards()[0].header.metadata["cases"]).unwrap();
    let cases = cases.as_array().unwrap();
    assert_eq!(cases.len(), 6);
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let steps = c["steps"].as_u64().unwrap() as usize;
        let config = SchedulerConfig::from_json(c["config"].as_str().unwrap()).unwrap();
        let mut s = Scheduler::new(&config, steps).unwrap();
        let err = close(&s.timesteps, &read(&ckpt, &format!("{name}.timesteps")), 1e-5);
        assert!(err <= 1e-6, "{name}: timesteps differ by {err}: {:?}", s.timesteps);
        let err = close(&s.sigmas, &read(&ckpt, &format!("{name}.sigmas")), 1e-5);
        assert!(err <= 1e-6, "{name}: sigmas differ by {err}: {:?}", s.sigmas);
        let want = read(&ckpt, &format!("{name}.samples"));
        let mut x = read(&ckpt, &format!("{name}.x0"));
        let n = x.len();
        for (i, &t) in s.timesteps.clone().iter().enumerate() {
            let v: Vec<f32> = x.iter().map(|&x| 0.7 * x - 0.3 * (3.0 * x).sin() + 0.001 * t).collect();
            x = s.step(&v, &x).unwrap();
            let err = close(&x, &want[i * n..][..n], 1e-5);
            eprintln!("{name} step {i}: {err:.2e}");
            assert!(err <= 1e-5, "{name}: step {i} differs by {err}");
        }
        assert!(s.step(&x, &x).is_err(), "{name}: no step past the last");
    }
}

#[test]
fn scheduler_configs_are_read_or_refused_clearly() {
    let wan = r#"{"_class_name": "UniPCMultistepScheduler", "prediction_type": "flow_prediction",
                  "use_flow_sigmas": true, "flow_shift": 3.0, "solver_order": 2, "solver_type": "bh2"}"#;
    assert!(matches!(SchedulerConfig::from_json(wan).unwrap(), SchedulerConfig::UniPc { solver_order: 2, .. }));
    for (text, expect) in [
        (r#"{"_class_name": "DDIMScheduler"}"#, "not supported"),
        (r#"{"_class_name": "UniPCMultistepScheduler", "prediction_type": "epsilon"}"#, "flow_prediction"),
        (r#"{"_class_name": "FlowMatchEulerDiscreteScheduler", "shift": -1}"#, "shift must be > 0"),
        (r#"{"_class_name": "FlowMatchEulerDiscreteScheduler", "use_dynamic_shifting": true}"#, "not supported"),
        ("[", "not JSON"),
    ] {
        let err = SchedulerConfig::from_json(text).unwrap_err().to_string();
        assert!(err.contains(expect), "{text}: {err}");
    }
    let euler = SchedulerConfig::from_json(r#"{"_class_name": "FlowMatchEulerDiscreteScheduler"}"#).unwrap();
    assert!(Scheduler::new(&euler, 0).is_err());
}

fn pipeline_matches_diffusers(device: kinema_engine::delegate::DeviceChoice) {
    use kinema_engine::diffusion::{Pipeline, Request};
    use kinema_engine::runtime::Options;
    let dir = fixture("pipelines/wan_tiny");
    let golden = pollster::block_on(Checkpoint::open(dir.join("golden.safetensors").to_str().unwrap())).unwrap();
    let mut pipe = pollster::block_on(Pipeline::open(&dir, Options { device, profile: false })).unwrap();
    let (pe, ne, lat) =
        (read(&golden, "prompt_embeds"), read(&golden, "negative_prompt_embeds"), read(&golden, "latents"));
    let mut seen = Vec::new();
    let mut on_step = |i: usize, n: usize| seen.push((i, n));
    let (steps, guidance) = (pipe.manifest.defaults.steps, pipe.manifest.defaults.guidance);
    let video = pollster::block_on(pipe.generate(Request {
        prompt_embeds: &pe,
        negative_embeds: Some(&ne),
        latents: Some(&lat),
        seed: 0,
        steps,
        guidance,
        on_step: Some(&mut on_step),
        cancel: None,
    }))
    .unwrap();
    assert_eq!((video.frames, video.height, video.width), (5, 64, 64));
    let want = read(&golden, "video");
    let err = video.rgb.iter().zip(&want).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    eprintln!("{device:?}: max abs pixel error {err:.3e} vs diffusers' WanPipeline");
    assert!(err <= 1e-3, "{device:?}: {err}");
    assert_eq!(seen, (1..=steps).map(|i| (i, steps)).collect::<Vec<_>>());
    // Cancellation stops between steps; seeded noise is deterministic.
    let stop = std::sync::atomic::AtomicBool::new(true);
    let req = |cancel| Request {
        prompt_embeds: &pe,
        negative_embeds: Some(&ne),
        latents: None,
        seed: 42,
        steps: 2,
        guidance,
        on_step: None,
        cancel,
    };
    assert!(pollster::block_on(pipe.generate(req(Some(&stop)))).unwrap_err().to_string().contains("cancelled"));
    let a = pollster::block_on(pipe.generate(req(None))).unwrap();
    let b = pollster::block_on(pipe.generate(req(None))).unwrap();
    assert_eq!(a, b);
}

/// The tiny Wan pipeline folder (diffusers layout + programs + kinema.json) against
/// diffusers' WanPipeline given the same embeddings and noise: UniPC, 4 steps,
/// guidance 5, VAE decode. Tolerance: 1e-3 per pixel in [0, 1].
#[test]
fn wan_pipeline_matches_diffusers_on_the_cpu() {
    pipeline_matches_diffusers(kinema_engine::delegate::DeviceChoice::Cpu);
}

#[test]
fn wan_pipeline_matches_diffusers_on_the_gpu() {
    pipeline_matches_diffusers(kinema_engine::delegate::DeviceChoice::Gpu);
}
