//! `kinema encode`: a prompt as the pipeline's text encoder reads it — the
//! embeddings `WanPipeline.encode_prompt` returns, written to a safetensors
//! file that `kinema generate --prompt-embeds` (or anything else) takes.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use kinema_engine::delegate::DeviceChoice;
use kinema_engine::diffusion::Pipeline;
use kinema_engine::runtime::Options;
use kinema_engine::weights::dtype::Dtype;
use kinema_engine::weights::writer::{TensorSpec, to_bytes};
use kinema_engine::{Error, Result};

#[derive(clap::Args)]
pub struct Args {
    /// The prompt.
    prompt: String,
    /// A pipeline folder (or its http(s) URL) whose kinema.json has a text encoder.
    #[arg(long)]
    pipeline: String,
    /// The negative prompt (WanPipeline's default: "").
    #[arg(long, default_value = "")]
    negative_prompt: String,
    /// gpu, cpu or auto (KINEMA_DEVICE overrides).
    #[arg(long, default_value = "auto")]
    device: String,
    /// Where to write `prompt_embeds` and `negative_prompt_embeds` [1, length, dim] (float32).
    #[arg(long, short)]
    output: PathBuf,
}

pub async fn run(args: Args) -> Result<()> {
    let device = DeviceChoice::from_env_or(args.device.parse()?)?;
    let folder = crate::progress::folder(&args.pipeline)?;
    let t0 = Instant::now();
    let mut pipe = Pipeline::open_staged(&folder, Options { device, profile: false }).await?;
    crate::tokenize::warn_if_truncated(&pipe, &[&args.prompt, &args.negative_prompt])?;
    let (pe, ne) = pipe.encode_prompt(&args.prompt, Some(&args.negative_prompt)).await?;
    let ne = ne.expect("asked for");
    let t = &pipe.manifest.text;
    let shape = [1, t.length as u64, t.dim as u64];
    let tensors = [
        (TensorSpec::new("prompt_embeds", Dtype::F32, &shape), bytemuck::cast_slice(&pe)),
        (TensorSpec::new("negative_prompt_embeds", Dtype::F32, &shape), bytemuck::cast_slice(&ne)),
    ];
    let file = args.output.display().to_string();
    std::fs::write(&args.output, to_bytes(&tensors, &BTreeMap::new()))
        .map_err(|e| Error::Io { file, message: e.to_string() })?;
    eprintln!(
        "kinema: encoded the prompt and the negative prompt ({} tokens of {}) in {:.2} s on {} → {}",
        t.length,
        t.dim,
        t0.elapsed().as_secs_f64(),
        pipe.device(),
        args.output.display()
    );
    Ok(())
}
