//! `kinema decode`: latents in, the VAE decoder's raw output out — the VAE
//! stage of a pipeline folder on its own (chunked and tiled as its
//! kinema.json says), for latents made elsewhere or to check the decoder.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use kinema_engine::delegate::DeviceChoice;
use kinema_engine::diffusion::{Manifest, VaeDecoder};
use kinema_engine::runtime::Options;
use kinema_engine::weights::Checkpoint;
use kinema_engine::weights::dtype::Dtype;
use kinema_engine::weights::writer::{TensorSpec, to_bytes};
use kinema_engine::{Error, Result};

#[derive(clap::Args)]
pub struct Args {
    /// A pipeline folder with a VAE decoder (or its http(s) URL).
    #[arg(long)]
    pipeline: String,
    /// A safetensors file holding the latents [1, C, F, H, W] as the transformer makes them (normalised).
    latents: PathBuf,
    /// The latents' key in that file.
    #[arg(long, default_value = "latents")]
    key: String,
    /// gpu, cpu or auto (KINEMA_DEVICE overrides).
    #[arg(long, default_value = "auto")]
    device: String,
    /// Where to write `video` [1, 3, F, H, W] (float32, before the clamp to [-1, 1]).
    #[arg(long, short)]
    output: PathBuf,
}

/// The decode stage's bar: latent frames of tiles.
pub const DECODE_BAR: &str =
    "kinema: decoding {bar:30} {pos}/{len} latent frames of tiles {elapsed_precise} (eta {eta})";

pub async fn run(args: Args) -> Result<()> {
    let device = DeviceChoice::from_env_or(args.device.parse()?)?;
    let folder = crate::progress::folder(&args.pipeline)?;
    let manifest = Manifest::read(&folder).await?;
    let model = manifest
        .vae_decoder
        .as_ref()
        .ok_or_else(|| Error::Invalid(format!("{}: kinema.json has no vae_decoder", folder.name())))?;
    let latents = Checkpoint::open(&args.latents.display().to_string()).await?;
    let mut z = vec![0f32; latents.get(&args.key)?.info.numel() as usize];
    latents.read_f32(&args.key, &mut z).await?;
    let t0 = Instant::now();
    let options = Options { device, profile: false };
    let mut vae = VaeDecoder::open(&folder, options, model, &manifest.latent, false).await?;
    let bar = crate::progress::bar(0, DECODE_BAR);
    let mut report = |done: usize, total: usize| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    };
    let video = vae.decode_with(z, &mut report).await;
    bar.finish_and_clear();
    let video = video?;
    eprintln!(
        "kinema: decoded {} frames of {}×{} in {:.2} s",
        video.frames,
        video.width,
        video.height,
        t0.elapsed().as_secs_f64()
    );
    let shape = [1, 3, video.frames as u64, video.height as u64, video.width as u64];
    let spec = TensorSpec::new("video", Dtype::F32, &shape);
    let file = args.output.display().to_string();
    std::fs::write(&args.output, to_bytes(&[(spec, bytemuck::cast_slice(&video.data))], &BTreeMap::new()))
        .map_err(|e| Error::Io { file, message: e.to_string() })
}
