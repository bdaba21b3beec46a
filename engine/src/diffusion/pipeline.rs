//! A text-to-video pipeline: a folder in diffusers' layout (`model_index.json`,
//! `transformer/`, `vae/`, `scheduler/scheduler_config.json`, sharded
//! safetensors) plus Kinema's exported programs and its `kinema.json`
//! manifest. `generate` runs the denoising loop — the transformer for the
//! conditional and the unconditional text (in one batch when the program was
//! exported with batch 2), classifier-free guidance, the scheduler — then
//! un-normalises the latents and decodes them with the VAE (pixel-space
//! models, like the embedded one, have none).

use std::sync::atomic::{AtomicBool, Ordering};

use serde::Deserialize;

use super::folder::Folder;
use super::scheduler::{Scheduler, SchedulerConfig};
use super::text::{ProgramEncoder, WordTable};
use super::vae::{Frames, Tiling, VaeDecoder};
use crate::error::{Error, Result};
use crate::program::Program;
use crate::runtime::{Options, Session};

/// The most values a latent, video or text shape of `kinema.json` may hold
/// (2³¹: Wan's 832×480×81 video is 97 M).
const MAX_VALUES: usize = 1 << 31;

/// `kinema.json`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    pub architecture: String,
    pub transformer: Model,
    /// Absent for pixel-space models: the latents are the video in [-1, 1].
    #[serde(default)]
    pub vae_decoder: Option<Model>,
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
    /// VAE decoders only: decode chunk by chunk — `program` turns latent frame 0
    /// into the first video frames and the feature cache, this program each
    /// further latent frame and the cache into the next frames and the cache
    /// (`python -m kinema_export wan-vae-chunks`).
    #[serde(default)]
    pub chunk_program: Option<String>,
    /// VAE decoders only: decode in overlapping spatial tiles ([`Tiling`]).
    #[serde(default)]
    pub tiling: Option<Tiling>,
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

/// Where a pipeline's text embeddings come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TextKind {
    /// The caller gives them (`--prompt-embeds`).
    PromptEmbeds,
    /// The model's own word-table encoder ([`WordTable`]).
    WordTable,
    /// The pipeline's tokenizer and an exported encoder program ([`ProgramEncoder`]; umT5 for Wan).
    Umt5,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Text {
    pub kind: TextKind,
    pub length: usize,
    pub dim: usize,
    /// word_table, umt5: the encoder's checkpoint.
    #[serde(default)]
    pub weights: Option<String>,
    /// word_table: its words, and a prompt it knows.
    #[serde(default)]
    pub vocabulary: Vec<String>,
    #[serde(default)]
    pub example: Option<String>,
    /// umt5: the encoder's program.json and the tokenizer's tokenizer.json.
    #[serde(default)]
    pub program: Option<String>,
    #[serde(default)]
    pub tokenizer: Option<String>,
    /// umt5: the same encoder exported for shorter prompts (each of fewer
    /// tokens than `length`); a prompt runs the shortest it fits.
    #[serde(default)]
    pub short_programs: Vec<ShortProgram>,
}

/// A text encoder program for prompts of at most `length` tokens.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShortProgram {
    pub length: usize,
    pub program: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    pub steps: usize,
    pub guidance: f32,
}

impl Manifest {
    /// A folder's `kinema.json`, parsed and checked (dimensions ≥ 1 and bounded,
    /// one mean and std per latent channel, tiling only on the VAE decoder).
    pub async fn read(folder: &Folder) -> Result<Manifest> {
        let manifest: Manifest = serde_json::from_str(&folder.read_text("kinema.json").await?)
            .map_err(|e| err(folder, format!("kinema.json: {e}")))?;
        if manifest.format != "kinema.pipeline" || manifest.version != 1 {
            return Err(err(folder, "kinema.json: format must be \"kinema.pipeline\", version 1"));
        }
        let (l, v) = (&manifest.latent, &manifest.video);
        let dims = [l.channels, l.frames, l.height, l.width, v.frames, v.height, v.width];
        let t = &manifest.text;
        if dims.contains(&0) || t.length == 0 || t.dim == 0 || v.fps == 0 {
            return Err(err(folder, "kinema.json: every latent, video and text dimension and the fps must be ≥ 1"));
        }
        let fits = |d: &[usize]| d.iter().try_fold(1usize, |a, &b| a.checked_mul(b)).is_some_and(|n| n <= MAX_VALUES);
        if !fits(&dims[..4]) || !fits(&dims[4..]) || !fits(&[t.length, t.dim]) {
            return Err(err(folder, format!("kinema.json: a latent, video or text shape over {MAX_VALUES} values")));
        }
        if l.mean.len() != l.channels || l.std.len() != l.channels {
            return Err(err(folder, "kinema.json: latent mean and std need one value per channel"));
        }
        if manifest.vae_decoder.is_none()
            && (l.channels != 3 || (l.frames, l.height, l.width) != (v.frames, v.height, v.width))
        {
            return Err(err(
                folder,
                "kinema.json: without a VAE the latents must be the video: 3 channels, its frames and size",
            ));
        }
        if manifest.transformer.tiling.is_some() || manifest.transformer.chunk_program.is_some() {
            return Err(err(folder, "kinema.json: tiling and chunk_program are for the VAE decoder"));
        }
        Ok(manifest)
    }
}

/// One generation. `..Default::default()` leaves no guidance, seeded noise,
/// the pipeline's frame count, no callback and no cancellation.
#[derive(Default)]
pub struct Request<'a> {
    /// `[1, text length, text dim]`.
    pub prompt_embeds: &'a [f32],
    /// The unconditional embeddings for guidance; required when `guidance` > 1
    /// (`WanPipeline` encodes the negative prompt "" when none is given; a
    /// request without them is refused rather than run without guidance).
    pub negative_embeds: Option<&'a [f32]>,
    /// Initial noise `[1, C, F, H, W]`; `None`: `random::normal` from `seed`.
    pub latents: Option<&'a [f32]>,
    pub seed: u64,
    pub steps: usize,
    /// An explicit schedule instead of `steps`: the sigmas before the
    /// scheduler's shift, one step each (diffusers' `set_timesteps(sigmas=…)`;
    /// distilled few-step models give theirs).
    pub sigmas: Option<&'a [f64]>,
    pub guidance: f32,
    /// Video frames; `None`: the pipeline's. The programs are exported for one
    /// frame count, so another is a clear error.
    pub frames: Option<usize>,
    /// Called after each denoising step with (steps done, steps).
    pub on_step: Option<&'a mut dyn FnMut(usize, usize)>,
    /// Called as the VAE decodes with (pieces done, pieces): latent frames of
    /// tiles ([`super::VaeDecoder::decode_with`]); (1, 1) for a pipeline
    /// without a decoder.
    pub on_decode: Option<&'a mut dyn FnMut(usize, usize)>,
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
    /// The transformer's session while loaded.
    transformer: Option<Session>,
    /// The GPU device while no session holds it (sessions share one device per process).
    _device: Option<std::sync::Arc<crate::delegate::gpu::GpuDevice>>,
    /// Which delegate runs the transformer, and why.
    device: String,
    /// The transformer's batch: 2 runs cond and uncond together.
    batch: usize,
    /// The VAE decoder (none for pixel-space models); staged, its sessions are
    /// opened when a clip is decoded and released after.
    vae: Option<VaeDecoder>,
    text: Option<TextEncoder>,
    /// Staged: each model is loaded when its stage starts and released when it
    /// ends, so the memory peak is the largest stage's, not the sum.
    staged: bool,
    folder: Folder,
    options: Options,
}

/// A pipeline's own text encoder.
enum TextEncoder {
    Words(WordTable),
    Program(Box<ProgramEncoder>),
}

fn err(folder: &Folder, msg: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("{}: {msg}", folder.name()))
}

impl Pipeline {
    /// What the GPU tuner times for this pipeline ([`crate::delegate::gpu::tune`]):
    /// the matmuls, convs and attentions of the transformer and of the VAE
    /// decoder's sessions, those it holds now.
    pub fn tuning_examples(&self) -> Vec<crate::delegate::gpu::tune::Example> {
        let mut programs: Vec<&Program> = self.transformer.iter().map(Session::program).collect();
        if let Some(vae) = &self.vae {
            programs.extend(vae.programs());
        }
        programs.into_iter().flat_map(crate::runtime::tuning_examples).collect()
    }

    /// Opens a pipeline folder (on disk, at a URL, or in memory) with every
    /// model loaded and kept (the browser's choice: weights come over the network).
    pub async fn open(folder: &Folder, options: Options) -> Result<Pipeline> {
        Pipeline::open_with(folder, options, false).await
    }

    /// Opens a pipeline folder staged: the transformer now, the VAE decoder when
    /// a clip is decoded, each released when its stage ends (and loaded again
    /// for the next clip), so the memory peak is the larger model's, not both.
    pub async fn open_staged(folder: &Folder, options: Options) -> Result<Pipeline> {
        Pipeline::open_with(folder, options, true).await
    }

    async fn open_with(folder: &Folder, options: Options, staged: bool) -> Result<Pipeline> {
        let manifest = Manifest::read(folder).await?;
        let scheduler = SchedulerConfig::from_json(&folder.read_text(&manifest.scheduler).await?)?;
        let t = &manifest.text;
        let needs = |field: Option<&String>, name: &str| {
            field.cloned().ok_or_else(|| err(folder, format!("kinema.json: text kind {:?} needs {name:?}", t.kind)))
        };
        let text = match t.kind {
            TextKind::PromptEmbeds => None,
            TextKind::WordTable => {
                let weights = needs(t.weights.as_ref(), "weights")?;
                let example = t.example.clone().unwrap_or_else(|| t.vocabulary.join(" "));
                let ckpt = folder.checkpoint(&weights).await?;
                Some(TextEncoder::Words(WordTable::load(&ckpt, t.vocabulary.clone(), example, t.length, t.dim).await?))
            }
            TextKind::Umt5 => {
                let (tokenizer, program) =
                    (needs(t.tokenizer.as_ref(), "tokenizer")?, needs(t.program.as_ref(), "program")?);
                let weights = needs(t.weights.as_ref(), "weights")?;
                let mut programs: Vec<(usize, &str)> =
                    t.short_programs.iter().map(|p| (p.length, p.program.as_str())).collect();
                programs.push((t.length, &program));
                let mut encoder =
                    ProgramEncoder::open(folder, &tokenizer, &programs, &weights, t.length, t.dim).await?;
                if !staged {
                    encoder.load(folder, options).await?;
                }
                Some(TextEncoder::Program(Box::new(encoder)))
            }
        };
        let m = &manifest.transformer;
        // Staged with a text encoder program, the transformer waits for its stage
        // (after the text's), so the two are never loaded together.
        let wait = staged && matches!(text, Some(TextEncoder::Program(_)));
        let (transformer, batch, device, held) = if wait {
            let program = Program::from_json(&folder.read_text(&m.program).await?)
                .map_err(|e| err(folder, format!("{}: {e}", m.program)))?;
            let (held, device) = options.device.open().await?;
            (None, batch_of(&program), device, held)
        } else {
            let transformer = open_session(folder, options, &m.program, &m.weights).await?;
            let (batch, device) = (batch_of(transformer.program()), transformer.device().to_string());
            (Some(transformer), batch, device, None)
        };
        if !(1..=2).contains(&batch) {
            return Err(err(folder, format!("the transformer program has batch {batch} (1 or 2)")));
        }
        let vae = match &manifest.vae_decoder {
            Some(model) => Some(VaeDecoder::open(folder, options, model, &manifest.latent, !staged).await?),
            None => None,
        };
        Ok(Pipeline {
            manifest,
            scheduler,
            transformer,
            _device: held,
            device,
            batch,
            vae,
            text,
            staged,
            folder: folder.clone(),
            options,
        })
    }

    /// Which delegate runs the transformer, and why.
    pub fn device(&self) -> &str {
        &self.device
    }

    /// Whether the transformer and the VAE decoder are loaded now (staged, the
    /// transformer of a pipeline with a text encoder program waits for the text stage).
    pub fn loaded(&self) -> (bool, bool) {
        (self.transformer.is_some(), self.vae.as_ref().is_some_and(VaeDecoder::is_loaded))
    }

    /// The scheduler `generate` uses.
    pub fn scheduler(&self) -> &SchedulerConfig {
        &self.scheduler
    }

    /// Replaces the scheduler (e.g. [`SchedulerConfig::as_kind`] of the folder's).
    pub fn set_scheduler(&mut self, config: SchedulerConfig) {
        self.scheduler = config;
    }

    /// The model's word-table text encoder, if it has one.
    pub fn text_encoder(&self) -> Option<&WordTable> {
        match &self.text {
            Some(TextEncoder::Words(t)) => Some(t),
            _ => None,
        }
    }

    /// Whether the pipeline reads prompts itself (a word table or a text encoder program).
    pub fn reads_prompts(&self) -> bool {
        self.text.is_some()
    }

    /// The pipeline's tokenizer, if it has a text encoder program.
    pub fn tokenizer(&self) -> Option<&super::Tokenizer> {
        self.program_encoder().map(ProgramEncoder::tokenizer)
    }

    /// The pipeline's text encoder program(s), if it has them.
    pub fn program_encoder(&self) -> Option<&ProgramEncoder> {
        match &self.text {
            Some(TextEncoder::Program(e)) => Some(e),
            _ => None,
        }
    }

    /// Prompt and unconditional embeddings from the model's word-table encoder
    /// (its learned null text is the unconditional one).
    pub fn encode(&self, prompt: &str) -> Result<(Vec<f32>, Vec<f32>)> {
        let Some(TextEncoder::Words(t)) = &self.text else {
            return Err(Error::Invalid(match self.text {
                None => "this pipeline has no text encoder: give prompt embeddings (--prompt-embeds)".into(),
                Some(_) => "this pipeline's text encoder is a program: use encode_prompt".into(),
            }));
        };
        Ok((t.encode(prompt)?, t.null().to_vec()))
    }

    /// `WanPipeline.encode_prompt`: the prompt's embeddings `[1, length, dim]`
    /// and, when `negative` is given, the negative prompt's (WanPipeline's
    /// default is `""`). A word table's unconditional text is its learned null
    /// sequence, so it takes the negative prompt `""` only. A staged pipeline
    /// loads its text encoder for this and releases it after (the text stage).
    pub async fn encode_prompt(
        &mut self,
        prompt: &str,
        negative: Option<&str>,
    ) -> Result<(Vec<f32>, Option<Vec<f32>>)> {
        match &mut self.text {
            None => Err(Error::Invalid(format!(
                "{} has no text encoder: give prompt embeddings (--prompt-embeds)",
                self.folder.name()
            ))),
            Some(TextEncoder::Words(t)) => match negative {
                Some(n) if !n.trim().is_empty() => Err(Error::Invalid(format!(
                    "this model's unconditional text is learned: it takes no negative prompt (got {n:?})"
                ))),
                _ => Ok((t.encode(prompt)?, negative.map(|_| t.null().to_vec()))),
            },
            Some(TextEncoder::Program(e)) => {
                let (folder, options) = (&self.folder, self.options);
                let encoded = async {
                    let pe = e.encode(folder, options, prompt).await?;
                    let ne = match negative {
                        Some(n) => Some(e.encode(folder, options, n).await?),
                        None => None,
                    };
                    Ok((pe, ne))
                }
                .await;
                if self.staged {
                    e.release();
                }
                encoded
            }
        }
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
        if let Some(f) = req.frames.filter(|&f| f != self.manifest.video.frames) {
            return Err(Error::Invalid(format!(
                "{f} frames: this pipeline's programs are exported for {} frames (export others with \
                 `python -m kinema_export … --latent-shape`)",
                self.manifest.video.frames
            )));
        }
        let steps = req.sigmas.map_or(req.steps, <[f64]>::len);
        if steps == 0 || steps > 1000 {
            return Err(Error::Invalid(format!("{steps} steps (1–1000)")));
        }
        if !req.guidance.is_finite() {
            return Err(Error::Invalid("the guidance scale must be a finite number".into()));
        }
        if req.guidance > 1.0 && req.negative_embeds.is_none() {
            return Err(Error::Invalid(format!(
                "guidance {} needs the negative prompt's embeddings (WanPipeline encodes the negative prompt \"\" \
                 when none is given); guidance ≤ 1 runs without them",
                req.guidance
            )));
        }
        if self.transformer.is_none() {
            let m = &self.manifest.transformer;
            self.transformer = Some(open_session(&self.folder, self.options, &m.program, &m.weights).await?);
        }
        let mut latents = match req.latents {
            Some(x) if x.len() == n => x.to_vec(),
            Some(x) => return Err(Error::Invalid(format!("latents have {} values, expected {n}", x.len()))),
            None => crate::random::normal(n, req.seed),
        };
        let mut scheduler = match req.sigmas {
            Some(sigmas) => Scheduler::with_sigmas(&self.scheduler, sigmas)?,
            None => Scheduler::new(&self.scheduler, steps)?,
        };
        let uncond = req.negative_embeds.filter(|_| req.guidance > 1.0);
        let mut on_step = req.on_step;
        for (i, &t) in scheduler.timesteps.clone().iter().enumerate() {
            // In the browser, let an abort queued behind the last step arrive.
            crate::clock::yield_now().await;
            if req.cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
                return Err(Error::Invalid("generation cancelled".into()));
            }
            let v = match (uncond, self.batch) {
                (Some(u), 2) => {
                    let both = self.velocity(&[&latents, &latents], t, &[req.prompt_embeds, u]).await?;
                    let (c, u) = both.split_at(n);
                    c.iter().zip(u).map(|(c, u)| u + req.guidance * (c - u)).collect()
                }
                (Some(u), _) => {
                    let mut c = self.velocity(&[&latents], t, &[req.prompt_embeds]).await?;
                    let u = self.velocity(&[&latents], t, &[u]).await?;
                    c.iter_mut().zip(&u).for_each(|(c, u)| *c = u + req.guidance * (*c - u));
                    c
                }
                (None, 2) => {
                    let mut both = self.velocity(&[&latents, &latents], t, &[req.prompt_embeds; 2]).await?;
                    both.truncate(n);
                    both
                }
                (None, _) => self.velocity(&[&latents], t, &[req.prompt_embeds]).await?,
            };
            latents = scheduler.step(&v, &latents)?;
            if let Some(f) = on_step.as_deref_mut() {
                f(i + 1, steps);
            }
        }
        if self.staged {
            self.transformer = None; // its stage is over: free its memory before the VAE's
        }
        let mut on_decode = req.on_decode;
        let mut report = |done, total| {
            if let Some(f) = on_decode.as_deref_mut() {
                f(done, total);
            }
        };
        let video = self.decode_with(latents, &mut report).await?;
        let (f, h, w) = (video.frames, video.height, video.width);
        let plane = f * h * w;
        let mut rgb = Vec::with_capacity(plane * 3);
        for i in 0..plane {
            rgb.extend((0..3).map(|c| (video.data[c * plane + i] / 2.0 + 0.5).clamp(0.0, 1.0)));
        }
        Ok(Video { frames: f, height: h, width: w, fps: self.manifest.video.fps, rgb })
    }

    /// The VAE decoder's raw output `[3, F, H, W]` (before the clamp to [-1, 1])
    /// for latents `[1, C, F, H, W]` as the transformer makes them: un-normalised
    /// per channel, then decoded (pixel-space models: the latents themselves).
    pub async fn decode(&mut self, latents: Vec<f32>) -> Result<Frames> {
        self.decode_with(latents, &mut |_, _| {}).await
    }

    /// [`Pipeline::decode`], reporting its progress as [`Request::on_decode`] does.
    async fn decode_with(&mut self, latents: Vec<f32>, on_progress: &mut dyn FnMut(usize, usize)) -> Result<Frames> {
        let l = &self.manifest.latent;
        let per_channel = l.frames * l.height * l.width;
        if latents.len() != l.channels * per_channel {
            return Err(Error::Invalid(format!(
                "latents have {} values, expected {}",
                latents.len(),
                l.channels * per_channel
            )));
        }
        match &mut self.vae {
            Some(vae) => vae.decode_with(latents, on_progress).await,
            // No decoder (a pixel-space model): the latents are the frames, one piece, done.
            None => {
                on_progress(1, 1);
                Ok(Frames { frames: l.frames, height: l.height, width: l.width, data: latents })
            }
        }
    }

    /// The transformer's prediction for each (latents, text) pair at timestep `t`,
    /// concatenated; `latents.len()` is the program's batch.
    async fn velocity(&mut self, latents: &[&[f32]], t: f32, embeds: &[&[f32]]) -> Result<Vec<f32>> {
        let x = latents.concat();
        let e = embeds.concat();
        let ts = vec![t; latents.len()];
        let inputs = [("hidden_states", &x[..]), ("timestep", &ts[..]), ("encoder_hidden_states", &e[..])];
        let transformer =
            self.transformer.as_mut().ok_or_else(|| Error::Invalid("the transformer is not loaded".into()))?;
        Ok(transformer.run(&inputs).await?.swap_remove(0).data)
    }
}

/// A transformer program's batch (of `hidden_states`).
fn batch_of(program: &Program) -> usize {
    program.shape("hidden_states").and_then(|s| s.first().copied()).unwrap_or(1)
}

/// A program of the folder and its checkpoint as a session, every parameter loaded.
pub(super) async fn open_session(folder: &Folder, options: Options, program: &str, weights: &str) -> Result<Session> {
    let parsed =
        Program::from_json(&folder.read_text(program).await?).map_err(|e| err(folder, format!("{program}: {e}")))?;
    session_of(folder, options, parsed, weights).await
}

/// A parsed program and the folder's checkpoint `weights` as a session, every parameter loaded.
pub(super) async fn session_of(folder: &Folder, options: Options, program: Program, weights: &str) -> Result<Session> {
    let mut session = Session::new(program, Some(folder.checkpoint(weights).await?), options).await?;
    session.load_parameters().await?;
    Ok(session)
}

impl Video {
    /// Frame `f` as RGBA bytes (for canvases and image encoders).
    pub fn rgba8(&self, f: usize) -> Vec<u8> {
        let plane = self.width * self.height * 3;
        self.rgb[f * plane..][..plane]
            .chunks_exact(3)
            .flat_map(|p| [to_u8(p[0]), to_u8(p[1]), to_u8(p[2]), 255])
            .collect()
    }

    /// Frame `f` as RGB bytes.
    pub fn rgb8(&self, f: usize) -> Vec<u8> {
        let plane = self.width * self.height * 3;
        self.rgb[f * plane..][..plane].iter().map(|&x| to_u8(x)).collect()
    }
}

fn to_u8(x: f32) -> u8 {
    (x * 255.0).round().clamp(0.0, 255.0) as u8
}
