//! `kinema`: Kinema's command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod decode;
mod embedded;
mod encode;
mod generate;
mod inspect;
mod progress;
mod quantize;
mod run;
mod tokenize;
mod tune;
mod video;

#[derive(Parser)]
#[command(name = "kinema", version, about = "Portable GPU compute for video diffusion, native and in the browser")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate a video from a prompt: the embedded model, or a pipeline folder (--pipeline).
    Generate(generate::Args),
    /// Decode latents with a pipeline's VAE decoder (chunked and tiled as its kinema.json says).
    Decode(decode::Args),
    /// Show what a safetensors checkpoint holds (a file, a sharded folder, an index, or an http(s) URL of any of
    /// these), or the plan of a program (program.json).
    Inspect(inspect::Args),
    /// Run a portable program (tools/export) on inputs from a safetensors file.
    Run(run::Args),
    /// Time the reference workloads on each delegate (see tools/bench_peers.py for the peers).
    Bench(bench::Args),
    /// Print a prompt's token ids and attention mask as a pipeline's tokenizer gives them.
    Tokenize(tokenize::Args),
    /// Write a prompt's (and the negative prompt's) embeddings from a pipeline's text encoder.
    Encode(encode::Args),
    /// Write a checkpoint's matrices as weight-only int8 (docs/weights.md); programs run it unchanged.
    Quantize(quantize::Args),
    /// Time the GPU kernels' configurations on this adapter per shape class and save the winners
    /// (the tuning table later processes use; KINEMA_TUNE=off ignores it).
    Tune(tune::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Generate(args) => pollster::block_on(generate::run(args)),
        Command::Decode(args) => pollster::block_on(decode::run(args)),
        Command::Inspect(args) => pollster::block_on(inspect::run(args)),
        Command::Bench(args) => bench::run(args),
        Command::Run(args) => pollster::block_on(run::run(args)),
        Command::Tokenize(args) => pollster::block_on(tokenize::run(args)),
        Command::Encode(args) => pollster::block_on(encode::run(args)),
        Command::Quantize(args) => pollster::block_on(quantize::run(args)),
        Command::Tune(args) => pollster::block_on(tune::run(args)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, whatever the message holds.
            let msg = e.to_string().replace(['\n', '\r'], " ");
            eprintln!("kinema: error: {msg}");
            ExitCode::FAILURE
        }
    }
}
