//! A text-to-video pipeline: a folder in diffusers' layout (`model_index.json`,
//! `transformer/`, `vae/`, `scheduler/scheduler_config.json`, sharded
//! safetensors) plus Kinema's exported programs and its `kinema.json`
//! manifest. `generate` runs the denoising loop — the transformer for the
//! conditional and the unconditional text, classifier-free guidance, the
//! scheduler — then un-normalises the latents and decodes them with the VAE.

use std::sync::atomic::{AtomicBool, Ordering};

use serde::Deserialize;

use super::scheduler::{Scheduler, SchedulerConfig};
use crate::error::{Error, Result};
use crate::runtime::Session;
#[cfg(not(target_arch = "wasm32"))]
use crate::{program::Program, runtime::Options, weights::Checkpoint};

/// `kinema.json`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    pub architecture: String,
    pub transformer: Model,
    pub vae_decoder: Model,
    pub scheduler: String,
    pub latent: Latent,
    pub video: VideoShape,
    pub text: Text,
    pub defaults: Defaults,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    /// Path of program.json, relative to the folder.
    pub program: String,
    /// The checkpoint (file, sharded folder or index), relative to the folder.
    pub weights: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Latent {
    pub channels: usize,
    pub frames: usize,
    pub height: usize,
    pub width: usize,
    /// Per-channel normalisation: the VAE decodes `latent · std + mean`.
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VideoShape {
    pub frames: usize,
    pub height: usize,
    pub width: usize,
    pub fps: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Text {
    /// "prompt_embeds": the caller gives embeddings (real Wan: umT5 is outside Kinema).
    pub kind: String,
    pub length: usize,
    pub dim: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    pub steps: usize,
    pub guidance: f32,
}

/// One generation.
pub struct Request<'a> {
    /// `[1, text length, text dim]`.
    pub prompt_embeds: &'a [f32],
    /// The unconditional embeddings for guidance (`None`: no guidance).
    pub negative_embeds: Option<&'a [f32]>,
    /// Initial noise `[1, C, F, H, W]`; `None`: `random::normal` from `seed`.
    pub latents: Option<&'a [f32]>,
    pub seed: u64,
    pub steps: usize,
    pub guidance: f32,
    /// Called after each denoising step with (steps done, steps).
    pub on_step: Option<&'a mut dyn FnMut(usize, usize)>,
    /// Set to stop between steps.
    pub cancel: Option<&'a AtomicBool>,
}

/// A generated clip: `frames × height × width × 3` values in [0, 1].
#[derive(Debug, Clone, PartialEq)]
pub struct Video {
    pub frames: usize,
    pub height: usize,
    pub width: usize,
    pub fps: u32,
    pub rgb: Vec<f32>,
}

pub struct Pipeline {
    pub manifest: Manifest,
    scheduler: SchedulerConfig,
    transformer: Session,
    vae: Session,
}

#[cfg(not(target_arch = "wasm32"))]
fn err(dir: &str, msg: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("{dir}: {msg}"))
}

impl Pipeline {
    /// Opens a pipeline folder.
    #[cfg(not(target_arch = "wasm32"))]
    pub async fn open(dir: &std::path::Path, options: Options) -> Result<Pipeline> {
        let name = dir.display().to_string();
        let read = |rel: &str| -> Result<String> {
            let p = dir.join(rel);
            let meta = std::fs::metadata(&p).map_err(|e| Error::io(p.display().to_string(), e))?;
            if meta.len() > 1 << 20 {
                return Err(err(&name, format!("{rel} is over 1 MiB")));
            }
            std::fs::read_to_string(&p).map_err(|e| Error::io(p.display().to_string(), e))
        };
        let manifest: Manifest =
            serde_json::from_str(&read("kinema.json")?).map_err(|e| err(&name, format!("kinema.json: {e}")))?;
        if manifest.format != "kinema.pipeline" || manifest.version != 1 {
            return Err(err(&name, "kinema.json: format must be \"kinema.pipeline\", version 1"));
        }
        let l = &manifest.latent;
        if l.mean.len() != l.channels || l.std.len() != l.channels {
            return Err(err(&name, "kinema.json: latent mean and std need one value per channel"));
        }
        let scheduler = SchedulerConfig::from_json(&read(&manifest.scheduler)?)?;
        let session = |m: &Model| {
            let program = Program::open(&dir.join(&m.program));
            let weights = dir.join(&m.weights).display().to_string();
            async move { Session::new(program?, Some(Checkpoint::open(&weights).await?), options).await }
        };
        let transformer = session(&manifest.transformer).await?;
        let vae = session(&manifest.vae_decoder).await?;
        Ok(Pipeline { manifest, scheduler, transformer, vae })
    }

    /// The denoising loop and the decode.
    pub async fn generate(&mut self, req: Request<'_>) -> Result<Video> {
        let l = self.manifest.latent.clone();
        let n = l.channels * l.frames * l.height * l.width;
        let text = self.manifest.text.length * self.manifest.text.dim;
        if req.prompt_embeds.len() != text || req.negative_embeds.is_some_and(|e| e.len() != text) {
            return Err(Error::Invalid(format!(
                "prompt embeddings must be [1, {}, {}]",
                self.manifest.text.length, self.manifest.text.dim
            )));
        }
        let mut latents = match req.latents {
            Some(x) if x.len() == n => x.to_vec(),
            Some(x) => return Err(Error::Invalid(format!("latents have {} values, expected {n}", x.len()))),
            None => crate::random::normal(n, req.seed),
        };
        let mut scheduler = Scheduler::new(&self.scheduler, req.steps)?;
        let guided = req.guidance > 1.0 && req.negative_embeds.is_some();
        let mut on_step = req.on_step;
        for (i, &t) in scheduler.timesteps.clone().iter().enumerate() {
            if req.cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
                return Err(Error::Invalid("generation cancelled".into()));
            }
            let mut v = velocity(&mut self.transformer, &latents, t, req.prompt_embeds).await?;
            if guided {
                let u = velocity(&mut self.transformer, &latents, t, req.negative_embeds.expect("guided")).await?;
                v.iter_mut().zip(&u).for_each(|(c, u)| *c = u + req.guidance * (*c - u));
            }
            latents = scheduler.step(&v, &latents)?;
            if let Some(f) = on_step.as_deref_mut() {
                f(i + 1, req.steps);
            }
        }
        // Un-normalise per channel, decode, and map [-1, 1] to [0, 1] as [F, H, W, 3].
        let per_channel = l.frames * l.height * l.width;
        for (c, chunk) in latents.chunks_mut(per_channel).enumerate() {
            chunk.iter_mut().for_each(|x| *x = *x * l.std[c] + l.mean[c]);
        }
        let decoded = self.vae.run(&[("z", &latents)]).await?.swap_remove(0);
        let [_, ch, f, h, w] = decoded.shape[..] else {
            return Err(Error::Invalid(format!("the VAE decoder gave {:?}, not [1, 3, F, H, W]", decoded.shape)));
        };
        if ch != 3 {
            return Err(Error::Invalid(format!("the VAE decoder gave {ch} channels")));
        }
        let plane = f * h * w;
        let mut rgb = vec![0f32; plane * 3];
        for c in 0..3 {
            for (i, &x) in decoded.data[c * plane..][..plane].iter().enumerate() {
                rgb[i * 3 + c] = (x / 2.0 + 0.5).clamp(0.0, 1.0);
            }
        }
        Ok(Video { frames: f, height: h, width: w, fps: self.manifest.video.fps, rgb })
    }
}

/// The transformer's prediction at `latents`, timestep `t`, text `embeds`.
async fn velocity(transformer: &mut Session, latents: &[f32], t: f32, embeds: &[f32]) -> Result<Vec<f32>> {
    let inputs = [("hidden_states", latents), ("timestep", &[t][..]), ("encoder_hidden_states", embeds)];
    Ok(transformer.run(&inputs).await?.swap_remove(0).data)
}
