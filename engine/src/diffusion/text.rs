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
pub struct ProgramEncoder {
    tokenizer: Tokenizer,
    program: crate::program::Program,
    /// The program's checkpoint, relative to the folder.
    weights: String,
    dim: usize,
    /// The session while loaded (staged pipelines open it for an encode and release it after).
    session: Option<crate::runtime::Session>,
}

impl ProgramEncoder {
    /// Reads the tokenizer and the program, and checks the program against
    /// the text shape: inputs `input_ids` and `attention_mask` `[1, length]`
    /// (integers), output `[1, length, dim]`. Nothing is loaded yet.
    pub async fn open(
        folder: &super::Folder,
        tokenizer: &str,
        program: &str,
        weights: &str,
        length: usize,
        dim: usize,
    ) -> Result<ProgramEncoder> {
        let name = format!("{}/{tokenizer}", folder.name());
        let tokenizer = Tokenizer::from_bytes(&name, &folder.read(tokenizer).await?, length)?;
        let at = format!("{}/{program}", folder.name());
        let program = crate::program::Program::from_json(&folder.read_text(program).await?)
            .map_err(|e| Error::Invalid(format!("{at}: {e}")))?;
        let ids = ["input_ids", "attention_mask"];
        let inputs_fit = program.inputs.len() == 2
            && program.inputs.iter().zip(ids).all(|(i, n)| i.name == n && i.shape == [1, length]);
        let output_fits = program.outputs.len() == 1 && program.outputs[0].shape == [1, length, dim];
        if !inputs_fit || !output_fits {
            return Err(Error::Invalid(format!(
                "{at}: a text encoder takes input_ids and attention_mask [1, {length}] and gives [1, {length}, {dim}] \
                 (kinema.json's text length and dim); this one takes {:?} and gives {:?}",
                program.inputs.iter().map(|i| (&i.name, &i.shape)).collect::<Vec<_>>(),
                program.outputs.iter().map(|o| &o.shape).collect::<Vec<_>>()
            )));
        }
        Ok(ProgramEncoder { tokenizer, program, weights: weights.into(), dim, session: None })
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Whether the encoder's session is open.
    pub fn is_loaded(&self) -> bool {
        self.session.is_some()
    }

    /// Opens the session and reads every weight (the text stage's load).
    pub async fn load(&mut self, folder: &super::Folder, options: crate::runtime::Options) -> Result<()> {
        if self.session.is_none() {
            let mut session = super::pipeline::session_of(folder, options, self.program.clone(), &self.weights).await?;
            // A prompt and a negative prompt, then the stage is over: each layer's
            // mapped weights are handed back once it has run (umT5-XXL is 11 GB in bf16).
            session.release_weights_after_use(true);
            self.session = Some(session);
        }
        Ok(())
    }

    /// Frees the session (the text stage is over).
    pub fn release(&mut self) {
        self.session = None;
    }

    /// `[1, length, dim]` for `prompt` (the session must be loaded).
    pub async fn encode(&mut self, prompt: &str) -> Result<Vec<f32>> {
        let tokens = self.tokenizer.encode(prompt)?;
        let session = self.session.as_mut().ok_or_else(|| Error::Invalid("the text encoder is not loaded".into()))?;
        let ids: Vec<f32> = tokens.input_ids.iter().map(|&i| i as f32).collect();
        let mask: Vec<f32> = tokens.attention_mask.iter().map(|&m| m as f32).collect();
        let mut out = session.run(&[("input_ids", &ids), ("attention_mask", &mask)]).await?.swap_remove(0).data;
        // WanPipeline keeps the first `mask.sum()` rows and pads with zeros.
        let len = tokens.attention_mask.iter().filter(|&&m| m > 0).count();
        out[len * self.dim..].fill(0.0);
        Ok(out)
    }
}
