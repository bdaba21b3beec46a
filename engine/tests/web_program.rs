//! A portable program in the browser: the exported Wan transformer (tiny,
//! random) with its sharded diffusers checkpoint streamed over `fetch`, run
//! by a GPU-resident session on WebGPU (SwiftShader in headless Chromium) and
//! by the CPU delegate compiled to wasm32, both against PyTorch eager.
#![cfg(target_arch = "wasm32")]

use kinema_engine::delegate::DeviceChoice;
use kinema_engine::program::Program;
use kinema_engine::runtime::{Options, Session};
use kinema_engine::weights::Checkpoint;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const PROGRAM: &str = include_str!("../../tests/fixtures/programs/wan_transformer/program.json");

mod web_support;
use web_support::{base, read_all};

#[wasm_bindgen_test]
async fn the_wan_transformer_program_runs_in_the_browser_on_both_delegates() {
    let io = Checkpoint::open(&format!("{}programs/wan_transformer/io.safetensors", base())).await.unwrap();
    let program = Program::from_json(PROGRAM).unwrap();
    let mut inputs = Vec::new();
    for i in &program.inputs {
        inputs.push((i.name.clone(), read_all(&io, &i.name).await));
    }
    let want = read_all(&io, "out0").await;
    let scale = 1.0 + want.iter().fold(0f32, |m, v| m.max(v.abs()));
    for device in [DeviceChoice::Gpu, DeviceChoice::Cpu] {
        let weights = Checkpoint::open(&format!("{}programs/wan_transformer/transformer/", base())).await.unwrap();
        let mut session =
            Session::new(program.clone(), Some(weights), Options { device, profile: false }).await.unwrap();
        let named: Vec<(&str, &[f32])> = inputs.iter().map(|(n, v)| (n.as_str(), v.as_slice())).collect();
        let out = session.run(&named).await.unwrap();
        assert_eq!(out[0].data.len(), want.len(), "{device:?}: lengths");
        let err = out[0].data.iter().zip(&want).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(err / scale <= 5e-4, "{device:?} on {}: relative error {}", session.device(), err / scale);
    }
}
