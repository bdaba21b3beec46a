//! `kinema generate`: a prompt in, a video out.
//!
//! Without `--pipeline` it runs the embedded default model (models/wan-shapes:
//! its own word-table text encoder reads the prompt). With `--pipeline DIR` it
//! runs a pipeline folder (diffusers layout + programs + kinema.json): its text
//! encoder if it has one (umT5 with its tokenizer, as `WanPipeline` encodes:
//! the negative prompt "" unless `--negative-prompt` says otherwise), else
//! prompt embeddings from a file (`--prompt-embeds FILE.safetensors`, keys
//! `prompt_embeds` and optionally `negative_prompt_embeds`, as `kinema encode`
//! writes them).

use std::path::PathBuf;
use std::time::Instant;

use kinema_engine::delegate::DeviceChoice;
use kinema_engine::diffusion::{Pipeline, Request};
use kinema_engine::runtime::Options;
use kinema_engine::weights::Checkpoint;
use kinema_engine::{Error, Result};

#[derive(clap::Args)]
pub struct Args {
    /// What to generate, e.g. "a red circle moving left" (the embedded model's words).
    prompt: Option<String>,
    /// A pipeline folder (diffusers layout plus Kinema's programs and kinema.json) or
    /// its http(s) URL; default: the embedded model.
    #[arg(long)]
    pipeline: Option<String>,
    /// Prompt embeddings: a safetensors file with `prompt_embeds` [1, L, D] and
    /// `negative_prompt_embeds` (needed for guidance > 1) (for pipelines without a text encoder).
    #[arg(long)]
    prompt_embeds: Option<PathBuf>,
    /// What the video should not show, for guidance (pipelines with a text encoder; default "").
    #[arg(long)]
    negative_prompt: Option<String>,
    /// Denoising steps (default: the pipeline's).
    #[arg(long, conflicts_with = "timesteps")]
    steps: Option<usize>,
    /// An explicit schedule, e.g. 1000,750,500,250 for a distilled 4-step model: one
    /// step each, at sigma = t / num_train_timesteps before the scheduler's shift (as
    /// diffusers' set_timesteps(sigmas=…)).
    #[arg(long, value_delimiter = ',')]
    timesteps: Option<Vec<f64>>,
    /// Classifier-free guidance scale (default: the pipeline's; ≤ 1 turns guidance off).
    #[arg(long)]
    guidance: Option<f32>,
    /// Seed of the initial noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Video frames (default and, for now, only value: what the programs were exported for).
    #[arg(long)]
    frames: Option<usize>,
    /// euler or unipc (default: the pipeline's scheduler_config.json), with the pipeline's shift.
    #[arg(long)]
    scheduler: Option<String>,
    /// gpu, cpu or auto (KINEMA_DEVICE overrides).
    #[arg(long, default_value = "auto")]
    device: String,
    /// Where to write the video: .mp4 (H.264) or .gif.
    #[arg(long, short, default_value = "kinema.gif")]
    output: PathBuf,
    /// Also write each frame as a PNG (frame_000.png, …) in this folder.
    #[arg(long)]
    frames_dir: Option<PathBuf>,
    /// Keep the transformer loaded while the VAE decodes (default: each model is
    /// loaded for its stage and released after it, so the peak is the larger one's).
    #[arg(long)]
    keep_resident: bool,
}

async fn tensor(ckpt: &Checkpoint, name: &str) -> Result<Vec<f32>> {
    let mut v = vec![0f32; ckpt.get(name)?.info.numel() as usize];
    ckpt.read_f32(name, &mut v).await?;
    Ok(v)
}

pub async fn run(args: Args) -> Result<()> {
    crate::video::Format::of(&args.output)?;
    let device = DeviceChoice::from_env_or(args.device.parse()?)?;
    let folder = match &args.pipeline {
        Some(p) => crate::progress::folder(p)?,
        None => crate::embedded::folder(),
    };
    let t0 = Instant::now();
    let options = Options { device, profile: false };
    let mut pipe = if args.keep_resident {
        Pipeline::open(&folder, options).await?
    } else {
        Pipeline::open_staged(&folder, options).await?
    };
    if let Some(kind) = &args.scheduler {
        let config = pipe.scheduler().as_kind(kind)?;
        pipe.set_scheduler(config);
    }
    let guidance = args.guidance.unwrap_or(pipe.manifest.defaults.guidance);
    let words = pipe.text_encoder().map(|t| (t.example.clone(), t.vocabulary.join(" ")));
    let (pe, ne) = match (&args.prompt_embeds, &args.prompt, words) {
        (Some(_), _, _) if args.negative_prompt.is_some() => {
            return Err(Error::Invalid(
                "--negative-prompt needs the pipeline's text encoder: with --prompt-embeds, put negative_prompt_embeds in \
                 the file"
                    .into(),
            ));
        }
        (Some(file), _, _) => {
            let embeds = Checkpoint::open(&file.display().to_string()).await?;
            let ne = match embeds.get("negative_prompt_embeds") {
                Ok(_) => Some(tensor(&embeds, "negative_prompt_embeds").await?),
                Err(_) => None,
            };
            (tensor(&embeds, "prompt_embeds").await?, ne)
        }
        (None, Some(prompt), _) if pipe.reads_prompts() => {
            // WanPipeline encodes the negative prompt only for guidance.
            let negative = args.negative_prompt.as_deref().unwrap_or("");
            let t = Instant::now();
            crate::tokenize::warn_if_truncated(&pipe, &[prompt, negative])?;
            stage_peak();
            let negative = (guidance > 1.0).then_some(negative);
            let spin = pipe.tokenizer().map(|_| {
                crate::progress::spinner(if negative.is_some() {
                    "encoding the prompt and the negative prompt"
                } else {
                    "encoding the prompt"
                })
            });
            let encoded = pipe.encode_prompt(prompt, negative).await;
            if let Some(s) = spin {
                s.finish_and_clear();
            }
            let encoded = encoded?;
            if pipe.tokenizer().is_some() {
                eprintln!("kinema: text encoded in {:.2} s{}", t.elapsed().as_secs_f64(), peak_text(stage_peak()));
            }
            encoded
        }
        (None, None, Some((example, words))) => {
            return Err(Error::Invalid(format!("give a prompt, e.g. kinema generate {example:?} (words: {words})")));
        }
        (None, None, None) if pipe.reads_prompts() => {
            return Err(Error::Invalid("give a prompt, e.g. kinema generate --pipeline DIR \"a cat surfing\"".into()));
        }
        (None, _, _) => {
            return Err(Error::Invalid(format!(
                "{} has no text encoder: give --prompt-embeds FILE.safetensors (kinema encode writes one)",
                folder.name()
            )));
        }
    };
    let sigmas: Option<Vec<f64>> = match &args.timesteps {
        Some(t) => {
            let n = pipe.scheduler().num_train_timesteps() as f64;
            Some(t.iter().map(|t| t / n).collect())
        }
        None => None,
    };
    let steps = sigmas.as_ref().map_or(args.steps.unwrap_or(pipe.manifest.defaults.steps), Vec::len);
    if let (Some(file), None, true) = (&args.prompt_embeds, &ne, guidance > 1.0) {
        return Err(Error::Invalid(format!(
            "{} has no negative_prompt_embeds, which guidance {guidance} needs (WanPipeline encodes the negative \
             prompt \"\" when none is given): add them to the file, or pass --guidance 1",
            file.display()
        )));
    }
    let load_s = t0.elapsed().as_secs_f64();
    eprintln!("kinema: loaded {} in {load_s:.2} s; running on {}", folder.name(), pipe.device());

    let bar = crate::progress::bar(
        steps as u64,
        "kinema: denoising {bar:30} {pos}/{len} steps {elapsed_precise} (eta {eta})",
    );
    // The decode bar appears when decoding starts, not beside the steps' bar.
    let mut decode_bar = None;
    let t1 = Instant::now();
    let mut denoise_s = 0.0;
    let mut denoise_peak = None;
    stage_peak();
    let mut progress = |i: usize, n: usize| {
        bar.set_position(i as u64);
        denoise_s = t1.elapsed().as_secs_f64();
        if i == n {
            denoise_peak = stage_peak();
            bar.finish_and_clear();
        }
    };
    let mut decoding = |done: usize, total: usize| {
        let bar = decode_bar.get_or_insert_with(|| crate::progress::bar(total as u64, crate::decode::DECODE_BAR));
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    };
    let video = pipe
        .generate(Request {
            prompt_embeds: &pe,
            negative_embeds: ne.as_deref(),
            seed: args.seed,
            steps,
            sigmas: sigmas.as_deref(),
            guidance,
            frames: args.frames,
            on_step: Some(&mut progress),
            on_decode: Some(&mut decoding),
            ..Default::default()
        })
        .await;
    bar.finish_and_clear();
    if let Some(bar) = decode_bar {
        bar.finish_and_clear();
    }
    let video = video?;
    let decode_s = t1.elapsed().as_secs_f64() - denoise_s;
    let decode_peak = stage_peak();
    crate::video::write(&args.output, &video)?;
    if let Some(dir) = &args.frames_dir {
        crate::video::write_pngs(dir, &video)?;
    }
    eprintln!(
        "kinema: {} frames of {}×{}: load {load_s:.2} s, denoise {denoise_s:.2} s ({steps} steps, {:.0} ms/step{}), \
         decode {decode_s:.2} s{} → {}",
        video.frames,
        video.width,
        video.height,
        denoise_s * 1e3 / steps as f64,
        peak_text(denoise_peak),
        peak_text(decode_peak),
        args.output.display()
    );
    Ok(())
}

/// The process's peak resident memory since the last call (each stage's peak),
/// in bytes: Linux's `VmHWM`, then reset through `/proc/self/clear_refs`; `None`
/// where that is not there.
fn stage_peak() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?;
    let kib: u64 = line.trim().trim_end_matches("kB").trim().parse().ok()?;
    std::fs::write("/proc/self/clear_refs", "5").ok()?;
    Some(kib * 1024)
}

fn peak_text(peak: Option<u64>) -> String {
    peak.map_or(String::new(), |b| format!(", peak RSS {:.2} GiB", b as f64 / f64::from(1u32 << 30)))
}
