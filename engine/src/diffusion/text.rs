//! Text conditioning. Real Wan reads prompts with its umT5 tokenizer
//! ([`Tokenizer`]: a pipeline's `tokenizer/tokenizer.json`, encoded as
//! `WanPipeline` does) and takes umT5 embeddings from the caller
//! (`prompt_embeds`); the embedded model carries its own tiny encoder: a
//! learned word table plus position vectors, and a learned null sequence as
//! the unconditional text for classifier-free guidance.
//!
//! Embedding of a prompt of words `w₀ … w_{L-1}`: row `i` is
//! `words[id(wᵢ)] + positions[i]`, giving `[1, L, D]`.

use crate::error::{Error, Result};
use crate::weights::Checkpoint;

/// A word-table text encoder (`text_encoder/model.safetensors`: `words`
/// `[V, D]`, `positions` `[L, D]`, `null` `[L, D]`).
#[derive(Debug, Clone)]
pub struct WordTable {
    pub vocabulary: Vec<String>,
    /// A prompt the model knows, shown in errors.
    pub example: String,
    pub length: usize,
    pub dim: usize,
    words: Vec<f32>,
    positions: Vec<f32>,
    null: Vec<f32>,
}

impl WordTable {
    /// Reads the table and checks it against the manifest's vocabulary and sizes.
    pub async fn load(
        ckpt: &Checkpoint,
        vocabulary: Vec<String>,
        example: String,
        length: usize,
        dim: usize,
    ) -> Result<WordTable> {
        if vocabulary.is_empty() || length == 0 || dim == 0 || length > 4096 || dim > 65536 {
            return Err(Error::Invalid(format!(
                "text encoder: vocabulary of {}, length {length}, dim {dim}",
                vocabulary.len()
            )));
        }
        let tensor = |name: &'static str, rows: usize| async move {
            let t = ckpt.get(name)?;
            if t.info.shape != [rows as u64, dim as u64] {
                return Err(Error::Invalid(format!(
                    "{}: {name} is {:?}, expected [{rows}, {dim}]",
                    ckpt.name(),
                    t.info.shape
                )));
            }
            let mut v = vec![0f32; rows * dim];
            ckpt.read_f32(name, &mut v).await?;
            Ok(v)
        };
        let words = tensor("words", vocabulary.len()).await?;
        let positions = tensor("positions", length).await?;
        let null = tensor("null", length).await?;
        let table = WordTable { vocabulary, example, length, dim, words, positions, null };
        table.encode(&table.example)?;
        Ok(table)
    }

    /// `[1, length, dim]` for `prompt`; unknown words and wrong lengths are
    /// errors that list the vocabulary.
    pub fn encode(&self, prompt: &str) -> Result<Vec<f32>> {
        let words: Vec<String> = prompt.split_whitespace().map(str::to_lowercase).collect();
        let unknown: Vec<&str> = words.iter().filter(|w| !self.vocabulary.contains(w)).map(String::as_str).collect();
        if !unknown.is_empty() {
            return Err(Error::Invalid(format!(
                "unknown word{} {} in {prompt:?}; the model knows: {} (e.g. {:?})",
                if unknown.len() > 1 { "s" } else { "" },
                unknown.iter().map(|w| format!("{w:?}")).collect::<Vec<_>>().join(", "),
                self.vocabulary.join(" "),
                self.example
            )));
        }
        if words.len() != self.length {
            return Err(Error::Invalid(format!(
                "{prompt:?} has {} words; the model reads prompts of {} words like {:?} (words: {})",
                words.len(),
                self.length,
                self.example,
                self.vocabulary.join(" ")
            )));
        }
        let mut out = self.positions.clone();
        for (i, w) in words.iter().enumerate() {
            let id = self.vocabulary.iter().position(|v| v == w).expect("checked above");
            let row = &self.words[id * self.dim..][..self.dim];
            out[i * self.dim..][..self.dim].iter_mut().zip(row).for_each(|(o, x)| *o += x);
        }
        Ok(out)
    }

    /// The unconditional text `[1, length, dim]`.
    pub fn null(&self) -> &[f32] {
        &self.null
    }
}

/// A prompt as token ids, padded to the pipeline's text length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    pub input_ids: Vec<u32>,
    /// 1 for the prompt's tokens (its `</s>` included), 0 for padding.
    pub attention_mask: Vec<u32>,
    /// The prompt was longer than the text length and its end was cut (as
    /// WanPipeline's tokenizer call cuts it); callers say so.
    pub truncated: bool,
}

/// The longest prompt a tokenizer takes, in bytes (some 16,000 words): a
/// longer one is an error, not an unbounded allocation.
pub const MAX_PROMPT_BYTES: usize = 1 << 16;

/// A Hugging Face `tokenizer.json` (umT5's for Wan: Unigram, 256,300 pieces),
/// read by the `tokenizers` crate, encoding as `WanPipeline` does: the prompt
/// cleaned ([`prompt_clean`]), its special tokens added (`</s>` at the end),
/// truncated to `length` and padded with `<pad>` to it.
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    length: usize,
}

impl Tokenizer {
    /// Reads `tokenizer.json`'s bytes (`name` is shown in errors) for texts of `length` tokens.
    pub fn from_bytes(name: &str, bytes: &[u8], length: usize) -> Result<Tokenizer> {
        let bad = |e: &dyn std::fmt::Display| Error::Invalid(format!("{name}: not a tokenizer.json: {e}"));
        if length == 0 || length > 1 << 16 {
            return Err(Error::Invalid(format!("{name}: a text length of {length} tokens (1–65536)")));
        }
        let mut inner = tokenizers::Tokenizer::from_bytes(bytes).map_err(|e| bad(&e))?;
        let pad = "<pad>";
        let pad_id = inner.token_to_id(pad).ok_or_else(|| Error::Invalid(format!("{name}: no {pad} token")))?;
        inner
            .with_truncation(Some(tokenizers::TruncationParams { max_length: length, ..Default::default() }))
            .map_err(|e| bad(&e))?;
        inner.with_padding(Some(tokenizers::PaddingParams {
            strategy: tokenizers::PaddingStrategy::Fixed(length),
            pad_id,
            pad_token: pad.into(),
            ..Default::default()
        }));
        Ok(Tokenizer { inner, length })
    }

    /// The text length every encoding has.
    pub fn length(&self) -> usize {
        self.length
    }

    /// `prompt` as `length` ids and its attention mask.
    pub fn encode(&self, prompt: &str) -> Result<Tokens> {
        if prompt.len() > MAX_PROMPT_BYTES {
            return Err(Error::Invalid(format!(
                "a prompt of {} bytes (at most {MAX_PROMPT_BYTES}; the text encoder reads {} tokens)",
                prompt.len(),
                self.length
            )));
        }
        let enc = self
            .inner
            .encode(prompt_clean(prompt), true)
            .map_err(|e| Error::Invalid(format!("tokenizing {prompt:?}: {e}")))?;
        let tokens = Tokens {
            input_ids: enc.get_ids().to_vec(),
            attention_mask: enc.get_attention_mask().to_vec(),
            truncated: !enc.get_overflowing().is_empty(),
        };
        if tokens.input_ids.len() != self.length || tokens.attention_mask.len() != self.length {
            return Err(Error::Invalid(format!(
                "tokenizing {prompt:?} gave {} ids, not {}",
                tokens.input_ids.len(),
                self.length
            )));
        }
        Ok(tokens)
    }
}

/// `WanPipeline`'s `prompt_clean`: HTML entities decoded twice (`&amp;amp;` →
/// `&`), runs of whitespace made one space, the ends trimmed. (diffusers also
/// applies `ftfy.fix_text` when ftfy is installed; it is not here.)
pub fn prompt_clean(text: &str) -> String {
    let once = html_escape::decode_html_entities(text);
    let twice = html_escape::decode_html_entities(&once);
    twice.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A text encoder exported as a program (umT5 for Wan: `kinema_export umt5`)
/// with the pipeline's tokenizer, encoding as `WanPipeline.encode_prompt`
/// does: the prompt tokenized ([`Tokenizer`]), the program run on its ids and
/// attention mask, and the embeddings past the mask's length zeroed.
///
/// The encoder may come as several programs, for the text length and for
/// shorter prompts: a prompt runs the shortest one its tokens fit (umT5 attends
/// only to the mask's tokens and its position bias depends on token distances
/// alone, so those rows are the full program's), and the rows past it are the
/// zeros WanPipeline writes there. A 10-token prompt then costs a 32-token pass,
/// not a 512-token one.
pub struct ProgramEncoder {
    tokenizer: Tokenizer,
    /// By length, shortest first; the last is the text length's.
    programs: Vec<LengthProgram>,
    /// The programs' checkpoint, relative to the folder.
    weights: String,
    dim: usize,
}

struct LengthProgram {
    length: usize,
    program: crate::program::Program,
    /// Its session while open (staged pipelines open one for an encode and release it after).
    session: Option<crate::runtime::Session>,
}

impl ProgramEncoder {
    /// Reads the tokenizer and the programs (`(length, program.json)`, the
    /// text length's among them), and checks each against its text shape:
    /// inputs `input_ids` and `attention_mask` `[1, n]` (integers), output
    /// `[1, n, dim]`. Nothing is loaded yet.
    pub async fn open(
        folder: &super::Folder,
        tokenizer: &str,
        programs: &[(usize, &str)],
        weights: &str,
        length: usize,
        dim: usize,
    ) -> Result<ProgramEncoder> {
        let name = format!("{}/{tokenizer}", folder.name());
        let tokenizer = Tokenizer::from_bytes(&name, &folder.read(tokenizer).await?, length)?;
        let mut lengths: Vec<usize> = programs.iter().map(|p| p.0).collect();
        lengths.sort_unstable();
        lengths.dedup();
        if lengths.len() != programs.len() || lengths.last() != Some(&length) || lengths[0] == 0 {
            return Err(Error::Invalid(format!(
                "{}: text encoder programs for {:?} tokens: each length once, from 1 to the text length {length}, \
                 which one must have",
                folder.name(),
                programs.iter().map(|p| p.0).collect::<Vec<_>>()
            )));
        }
        let mut out = Vec::with_capacity(programs.len());
        for &(n, program) in programs {
            let at = format!("{}/{program}", folder.name());
            let program = crate::program::Program::from_json(&folder.read_text(program).await?)
                .map_err(|e| Error::Invalid(format!("{at}: {e}")))?;
            let ids = ["input_ids", "attention_mask"];
            let inputs_fit = program.inputs.len() == 2
                && program.inputs.iter().zip(ids).all(|(i, name)| i.name == name && i.shape == [1, n]);
            let output_fits = program.outputs.len() == 1 && program.outputs[0].shape == [1, n, dim];
            if !inputs_fit || !output_fits {
                return Err(Error::Invalid(format!(
                    "{at}: a text encoder for {n} tokens takes input_ids and attention_mask [1, {n}] and gives \
                     [1, {n}, {dim}] (kinema.json's lengths and text dim); this one takes {:?} and gives {:?}",
                    program.inputs.iter().map(|i| (&i.name, &i.shape)).collect::<Vec<_>>(),
                    program.outputs.iter().map(|o| &o.shape).collect::<Vec<_>>()
                )));
            }
            out.push(LengthProgram { length: n, program, session: None });
        }
        out.sort_by_key(|p| p.length);
        Ok(ProgramEncoder { tokenizer, programs: out, weights: weights.into(), dim })
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The programs' lengths, shortest first.
    pub fn lengths(&self) -> Vec<usize> {
        self.programs.iter().map(|p| p.length).collect()
    }

    /// The length of the program that encodes `prompt`.
    pub fn length_for(&self, prompt: &str) -> Result<usize> {
        Ok(self.programs[self.program_for(&self.tokenizer.encode(prompt)?).0].length)
    }

    /// The shortest program `tokens` fit, and how many they are.
    fn program_for(&self, tokens: &Tokens) -> (usize, usize) {
        // The mask is the prompt's tokens, then padding.
        let len = tokens.attention_mask.iter().take_while(|&&m| m > 0).count();
        let i = self.programs.iter().position(|p| p.length >= len).expect("the last program has the text length");
        (i, len)
    }

    /// Whether any of the encoder's sessions is open.
    pub fn is_loaded(&self) -> bool {
        self.programs.iter().any(|p| p.session.is_some())
    }

    /// Opens every program's session and reads its weights (a pipeline that
    /// keeps its models: a GPU uploads a weight the programs share once).
    pub async fn load(&mut self, folder: &super::Folder, options: crate::runtime::Options) -> Result<()> {
        for i in 0..self.programs.len() {
            self.session(i, folder, options).await?;
        }
        Ok(())
    }

    async fn session(
        &mut self,
        i: usize,
        folder: &super::Folder,
        options: crate::runtime::Options,
    ) -> Result<&mut crate::runtime::Session> {
        let p = &mut self.programs[i];
        if p.session.is_none() {
            let mut session = super::pipeline::session_of(folder, options, p.program.clone(), &self.weights).await?;
            // A prompt and a negative prompt, then the stage is over: each layer's
            // mapped weights are handed back once it has run (umT5-XXL is 11 GB in bf16).
            session.release_weights_after_use(true);
            p.session = Some(session);
        }
        Ok(p.session.as_mut().expect("opened above"))
    }

    /// Frees the sessions (the text stage is over).
    pub fn release(&mut self) {
        self.programs.iter_mut().for_each(|p| p.session = None);
    }

    /// `[1, length, dim]` for `prompt`, by the shortest program its tokens fit
    /// (opened now if it is not yet).
    pub async fn encode(
        &mut self,
        folder: &super::Folder,
        options: crate::runtime::Options,
        prompt: &str,
    ) -> Result<Vec<f32>> {
        let tokens = self.tokenizer.encode(prompt)?;
        let (i, len) = self.program_for(&tokens);
        let n = self.programs[i].length;
        let ids: Vec<f32> = tokens.input_ids[..n].iter().map(|&i| i as f32).collect();
        let mask: Vec<f32> = tokens.attention_mask[..n].iter().map(|&m| m as f32).collect();
        let dim = self.dim;
        let session = self.session(i, folder, options).await?;
        let rows = session.run(&[("input_ids", &ids), ("attention_mask", &mask)]).await?.swap_remove(0).data;
        // WanPipeline keeps the first `mask.sum()` rows and pads with zeros.
        let mut out = vec![0f32; self.tokenizer.length() * dim];
        out[..len * dim].copy_from_slice(&rows[..len * dim]);
        Ok(out)
    }
}
