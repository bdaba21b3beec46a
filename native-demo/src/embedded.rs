//! The embedded default model (`models/wan-shapes`, trained by tools/train and
//! exported by tools/train/export.py), compiled into the binary so `kinema
//! generate "a red circle moving left"` works from anywhere.

use std::sync::Arc;

use kinema_engine::diffusion::Folder;

macro_rules! files {
    ($($path:literal),* $(,)?) => {
        [$(($path, &include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../models/wan-shapes/", $path))[..])),*]
    };
}

/// What `kinema generate` runs without `--pipeline`.
pub fn folder() -> Folder {
    let files = files![
        "kinema.json",
        "scheduler/scheduler_config.json",
        "text_encoder/model.safetensors",
        "transformer/diffusion_pytorch_model.safetensors",
        "programs/transformer/program.json",
    ];
    Folder::Memory {
        name: "embedded model (models/wan-shapes)".into(),
        files: files.into_iter().map(|(p, b)| (p.to_string(), Arc::<[u8]>::from(b))).collect(),
    }
}
