//! One case of the session fuzz target (`fuzz/fuzz_targets/session.rs`), shared
//! with the replay of its committed corpus in `tests/fuzz_corpus.rs`: a program,
//! a checkpoint and inputs from one byte string, planned and run on the CPU
//! delegate. Whatever the bytes, the session is refused or runs; it never
//! panics, and what it returns has the program's output shapes.
//!
//! Layout: a little-endian u32 `n`, then `n` bytes of program JSON, then the
//! checkpoint (a safetensors file; none when empty). Inputs are seeded uniform
//! values of the program's input shapes.

use kinema_engine::delegate::DeviceChoice;
use kinema_engine::plan::Plan;
use kinema_engine::program::Program;
use kinema_engine::runtime::{Options, Session};
use kinema_engine::weights::Checkpoint;
use kinema_engine::weights::source::BytesSource;

/// Cases bigger than this (values in the arena, an input, a parameter) are
/// skipped: they are valid but too slow to run thousands of times a second.
const MAX_VALUES: usize = 1 << 18;

/// Builds a case's bytes (for seeding the corpus).
pub fn encode(program: &str, checkpoint: &[u8]) -> Vec<u8> {
    let mut out = (program.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(program.as_bytes());
    out.extend_from_slice(checkpoint);
    out
}

/// What a case did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Not a case (bytes too short, not UTF-8, not a program) or too big to run.
    Skipped,
    /// Refused with a one-line error.
    Refused,
    /// Ran; the outputs have the program's shapes.
    Ran,
}

/// Runs one case; panics only when the engine breaks its contract.
pub fn run(data: &[u8]) -> Outcome {
    let Some((len, rest)) = data.split_first_chunk::<4>() else { return Outcome::Skipped };
    let len = u32::from_le_bytes(*len) as usize;
    if rest.len() < len {
        return Outcome::Skipped;
    }
    let (text, checkpoint) = rest.split_at(len);
    let Ok(text) = std::str::from_utf8(text) else { return Outcome::Skipped };
    let Ok(program) = Program::from_json(text) else { return Outcome::Skipped };
    let numel = |s: &[usize]| s.iter().product::<usize>();
    if Plan::new(&program, None).arena.len > MAX_VALUES
        || program.inputs.iter().any(|i| numel(&i.shape) > MAX_VALUES)
        || program.parameters.iter().any(|p| numel(&p.shape) > MAX_VALUES)
    {
        return Outcome::Skipped;
    }
    let refused = |e: kinema_engine::Error| {
        let message = e.to_string();
        assert!(!message.contains('\n') && !message.is_empty(), "one line: {message:?}");
        Outcome::Refused
    };
    let checkpoint = if checkpoint.is_empty() {
        None
    } else {
        let source = Box::new(BytesSource::new("case.safetensors", checkpoint.to_vec()));
        match pollster::block_on(Checkpoint::from_source("case.safetensors", source)) {
            Ok(c) => Some(c),
            Err(e) => return refused(e),
        }
    };
    let inputs: Vec<(String, Vec<f32>)> = program
        .inputs
        .iter()
        .enumerate()
        .map(|(i, info)| (info.name.clone(), kinema_engine::random::uniform(numel(&info.shape), i as u64)))
        .collect();
    let shapes: Vec<Vec<usize>> = program.outputs.iter().map(|o| o.shape.clone()).collect();
    let options = Options { device: DeviceChoice::Cpu, profile: false };
    let mut session = match pollster::block_on(Session::new(program, checkpoint, options)) {
        Ok(s) => s,
        Err(e) => return refused(e),
    };
    let named: Vec<(&str, &[f32])> = inputs.iter().map(|(n, v)| (n.as_str(), v.as_slice())).collect();
    match pollster::block_on(session.run(&named)) {
        Ok(outs) => {
            assert_eq!(outs.len(), shapes.len(), "one tensor per output");
            for (out, shape) in outs.iter().zip(&shapes) {
                assert_eq!(&out.shape, shape, "{}", out.name);
                assert_eq!(out.data.len(), numel(shape), "{}: length", out.name);
            }
            Outcome::Ran
        }
        Err(e) => refused(e),
    }
}
