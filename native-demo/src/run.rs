//! `kinema run`: a portable program on given inputs, outputs to safetensors.

use std::collections::BTreeMap;
use std::path::PathBuf;

use kinema_engine::delegate::DeviceChoice;
use kinema_engine::program::Program;
use kinema_engine::runtime::{Options, Session};
use kinema_engine::weights::Checkpoint;
use kinema_engine::weights::dtype::Dtype;
use kinema_engine::weights::writer::{TensorSpec, to_bytes};
use kinema_engine::{Error, Result};

#[derive(clap::Args)]
pub struct Args {
    /// The program (program.json from tools/export).
    program: PathBuf,
    /// The checkpoint its parameters come from (file, sharded folder, index or URL).
    #[arg(long)]
    weights: Option<String>,
    /// A safetensors file holding one tensor per program input, by input name.
    #[arg(long)]
    inputs: PathBuf,
    /// Where to write the outputs, keyed out0, out1, … (float32).
    #[arg(long)]
    output: PathBuf,
    /// gpu, cpu or auto (KINEMA_DEVICE overrides).
    #[arg(long, default_value = "auto")]
    device: String,
    /// Print the time per node and per op kind.
    #[arg(long)]
    profile: bool,
}

pub async fn run(args: Args) -> Result<()> {
    let program = Program::open(&args.program)?;
    let weights = match &args.weights {
        Some(w) => Some(Checkpoint::open(w).await?),
        None => None,
    };
    let device = DeviceChoice::from_env_or(args.device.parse()?)?;
    let inputs = Checkpoint::open(&args.inputs.display().to_string()).await?;
    let mut data = Vec::new();
    for info in &program.inputs {
        let t = inputs.get(&info.name)?;
        let mut v = vec![0f32; t.info.numel() as usize];
        inputs.read_f32(&info.name, &mut v).await?;
        data.push((info.name.clone(), v));
    }
    let mut session = Session::new(program, weights, Options { device, profile: args.profile }).await?;
    eprintln!("kinema: {}", session.device());
    let named: Vec<(&str, &[f32])> = data.iter().map(|(n, v)| (n.as_str(), v.as_slice())).collect();
    let outputs = session.run(&named).await?;
    let specs: Vec<(TensorSpec, &[u8])> = outputs
        .iter()
        .map(|o| {
            let shape: Vec<u64> = o.shape.iter().map(|&d| d as u64).collect();
            (TensorSpec::new(&o.name, Dtype::F32, &shape), bytemuck::cast_slice::<f32, u8>(&o.data))
        })
        .collect();
    let file = args.output.display().to_string();
    std::fs::write(&args.output, to_bytes(&specs, &BTreeMap::new()))
        .map_err(|e| Error::Io { file, message: e.to_string() })?;
    if args.profile {
        let mut by_kind: BTreeMap<&str, (usize, f64)> = BTreeMap::new();
        for t in session.profile() {
            println!("{:>9.3} ms  node {:4}  {:10} {}", t.ms, t.node, t.kind, t.path);
            let e = by_kind.entry(t.kind).or_default();
            e.0 += 1;
            e.1 += t.ms;
        }
        println!("by op kind:");
        for (kind, (n, ms)) in by_kind {
            println!("{ms:>9.3} ms  {kind:10} ({n} nodes)");
        }
    }
    for o in &outputs {
        println!("{} {:?}", o.name, o.shape);
    }
    Ok(())
}
