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
