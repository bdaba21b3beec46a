//! `kinema tokenize`: a prompt as the pipeline's tokenizer reads it — the ids
//! and attention mask `WanPipeline` gives its text encoder.

use kinema_engine::Result;
use kinema_engine::diffusion::{Manifest, Tokenizer};

#[derive(clap::Args)]
pub struct Args {
    /// The prompt.
    prompt: String,
    /// A pipeline folder (or its http(s) URL) with `tokenizer/tokenizer.json`.
    #[arg(long)]
    pipeline: String,
    /// Tokens per text (default: kinema.json's text length, else 512 as WanPipeline's).
    #[arg(long)]
    length: Option<usize>,
    /// Print `{"input_ids": […], "attention_mask": […]}`.
    #[arg(long)]
    json: bool,
}

/// WanPipeline's `max_sequence_length`.
const WAN_TEXT_LENGTH: usize = 512;

pub async fn run(args: Args) -> Result<()> {
    let folder = crate::progress::folder(&args.pipeline)?;
    let length = match args.length {
        Some(n) => n,
        None => match Manifest::read(&folder).await {
            Ok(m) => m.text.length,
            Err(_) => WAN_TEXT_LENGTH, // a Hub folder before kinema_export has no kinema.json
        },
    };
    let rel = "tokenizer/tokenizer.json";
    let bytes = folder.read(rel).await?;
    let tokenizer = Tokenizer::from_bytes(&format!("{}/{rel}", folder.name()), &bytes, length)?;
    let tokens = tokenizer.encode(&args.prompt)?;
    if args.json {
        println!("{}", serde_json::json!({"input_ids": tokens.input_ids, "attention_mask": tokens.attention_mask}));
    } else {
        let n = tokens.attention_mask.iter().filter(|&&m| m == 1).count();
        println!("{n} tokens (padded to {length}): {:?}", &tokens.input_ids[..n]);
    }
    Ok(())
}

/// Says on stderr which prompts the pipeline's tokenizer cuts to its text length
/// (WanPipeline cuts them silently).
pub fn warn_if_truncated(pipe: &kinema_engine::diffusion::Pipeline, prompts: &[&str]) -> Result<()> {
    let Some(tokenizer) = pipe.tokenizer() else { return Ok(()) };
    for p in prompts {
        if tokenizer.encode(p)?.truncated {
            let head: String = p.chars().take(40).collect();
            eprintln!(
                "kinema: warning: {head:?}… is longer than the text encoder's {} tokens: its end is cut, as WanPipeline \
                 cuts it",
                tokenizer.length()
            );
        }
    }
    Ok(())
}
