//! `kinema generate`: a prompt in, a video out.
//!
//! Today it runs a pipeline folder (`--pipeline DIR`: diffusers layout +
//! programs + kinema.json) with prompt embeddings from a file
//! (`--prompt-embeds FILE.safetensors`, keys `prompt_embeds` and optionally
//! `negative_prompt_embeds`) — the path for real Wan, whose umT5 text encoder
//! is outside Kinema. The embedded default model with its own text encoder
//! is being trained (tools/train); until it lands, a prompt without
//! `--pipeline` is a clear error.

use std::path::PathBuf;
use std::time::Instant;

use kinema_engine::delegate::DeviceChoice;
use kinema_engine::diffusion::{Pipeline, Request, Video};
use kinema_engine::runtime::Options;
use kinema_engine::weights::Checkpoint;
use kinema_engine::{Error, Result};

#[derive(clap::Args)]
pub struct Args {
    /// What to generate (the embedded model's words; see --pipeline for real Wan).
    prompt: Option<String>,
    /// A pipeline folder: diffusers layout plus Kinema's programs and kinema.json.
    #[arg(long)]
    pipeline: Option<PathBuf>,
    /// Prompt embeddings: a safetensors file with `prompt_embeds` [1, L, D] and
    /// optionally `negative_prompt_embeds` (for guidance).
    #[arg(long)]
    prompt_embeds: Option<PathBuf>,
    /// Denoising steps (default: the pipeline's).
    #[arg(long)]
    steps: Option<usize>,
    /// Classifier-free guidance scale (default: the pipeline's; ≤ 1 turns guidance off).
    #[arg(long)]
    guidance: Option<f32>,
    /// Seed of the initial noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where to write the animated GIF.
    #[arg(long, short, default_value = "kinema.gif")]
    output: PathBuf,
    /// gpu, cpu or auto (KINEMA_DEVICE overrides).
    #[arg(long, default_value = "auto")]
    device: String,
}

async fn tensor(ckpt: &Checkpoint, name: &str) -> Result<Vec<f32>> {
    let mut v = vec![0f32; ckpt.get(name)?.info.numel() as usize];
    ckpt.read_f32(name, &mut v).await?;
    Ok(v)
}

pub async fn run(args: Args) -> Result<()> {
    let (Some(dir), Some(embeds)) = (&args.pipeline, &args.prompt_embeds) else {
        return Err(Error::Invalid(match &args.prompt {
            Some(p) => format!(
                "cannot generate {p:?}: the embedded default model is not trained yet (tools/train); \
                 run a pipeline folder with --pipeline DIR --prompt-embeds FILE.safetensors"
            ),
            None => "give --pipeline DIR and --prompt-embeds FILE.safetensors".into(),
        }));
    };
    let device = DeviceChoice::from_env_or(args.device.parse()?)?;
    let t0 = Instant::now();
    let mut pipe = Pipeline::open(dir, Options { device, profile: false }).await?;
    let embeds = Checkpoint::open(&embeds.display().to_string()).await?;
    let pe = tensor(&embeds, "prompt_embeds").await?;
    let ne = match embeds.get("negative_prompt_embeds") {
        Ok(_) => Some(tensor(&embeds, "negative_prompt_embeds").await?),
        Err(_) => None,
    };
    let steps = args.steps.unwrap_or(pipe.manifest.defaults.steps);
    let guidance = args.guidance.unwrap_or(pipe.manifest.defaults.guidance);
    eprintln!("kinema: loaded {} in {:.2} s", dir.display(), t0.elapsed().as_secs_f64());
    let t1 = Instant::now();
    let mut progress = |i: usize, n: usize| eprintln!("kinema: step {i}/{n} ({:.2} s)", t1.elapsed().as_secs_f64());
    let video = pipe
        .generate(Request {
            prompt_embeds: &pe,
            negative_embeds: ne.as_deref(),
            latents: None,
            seed: args.seed,
            steps,
            guidance,
            on_step: Some(&mut progress),
            cancel: None,
        })
        .await?;
    write_gif(&args.output, &video)?;
    eprintln!(
        "kinema: {} frames of {}×{} in {:.2} s → {}",
        video.frames,
        video.width,
        video.height,
        t1.elapsed().as_secs_f64(),
        args.output.display()
    );
    Ok(())
}

/// Writes `video` as a looping animated GIF (each frame quantised to 256 colours).
pub fn write_gif(path: &std::path::Path, video: &Video) -> Result<()> {
    let file = path.display().to_string();
    let io = |e: &dyn std::fmt::Display| Error::Io { file: file.clone(), message: e.to_string() };
    let (w, h) = (u16::try_from(video.width).map_err(|e| io(&e))?, u16::try_from(video.height).map_err(|e| io(&e))?);
    let out = std::fs::File::create(path).map_err(|e| io(&e))?;
    let mut enc = gif::Encoder::new(std::io::BufWriter::new(out), w, h, &[]).map_err(|e| io(&e))?;
    enc.set_repeat(gif::Repeat::Infinite).map_err(|e| io(&e))?;
    let plane = video.width * video.height * 3;
    for f in 0..video.frames {
        let rgb: Vec<u8> = video.rgb[f * plane..][..plane].iter().map(|&x| (x * 255.0).round() as u8).collect();
        let mut frame = gif::Frame::from_rgb_speed(w, h, &rgb, 10);
        frame.delay = (100 / video.fps.max(1)) as u16;
        enc.write_frame(&frame).map_err(|e| io(&e))?;
    }
    Ok(())
}
