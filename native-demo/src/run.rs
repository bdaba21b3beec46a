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
    #[arg(long, conflicts_with = "random_weights")]
    weights: Option<String>,
    /// Instead of a checkpoint: seeded random parameters of the program's shapes
    /// (normal / √fan-in), held in memory in `--dtype` — a real-size run needs only
    /// the program JSON (for benchmarks; the values mean nothing).
    #[arg(long, value_name = "SEED")]
    random_weights: Option<u64>,
    /// The dtype of random weights: f32, f16, bf16, int8 or int4 (matrices; the rest f32).
    #[arg(long, default_value = "f32", requires = "random_weights")]
    dtype: String,
    /// Also write the random weights to this safetensors file (to run the
    /// same program and weights elsewhere: the browser tests do).
    #[arg(long, requires = "random_weights")]
    save_weights: Option<PathBuf>,
    /// Also write the inputs the program ran on (random ones included) to
    /// this safetensors file, one tensor per input name.
    #[arg(long)]
    save_inputs: Option<PathBuf>,
    /// A safetensors file holding one tensor per program input, by input name
    /// (default: seeded random inputs, for benchmarks).
    #[arg(long)]
    inputs: Option<PathBuf>,
    /// Where to write the outputs, keyed out0, out1, … (float32; default: not written).
    #[arg(long)]
    output: Option<PathBuf>,
    /// gpu, cpu or auto (KINEMA_DEVICE overrides).
    #[arg(long, default_value = "auto")]
    device: String,
    /// Print the time per node and per op kind.
    #[arg(long)]
    profile: bool,
    /// Run the program this many times before the run that is timed (and
    /// profiled): the first run of a session compiles its GPU pipelines.
    #[arg(long, default_value_t = 0)]
    warmup: usize,
    /// CPU: hand each memory-mapped weight's pages back to the operating
    /// system after the step that reads it last (resident memory about one
    /// layer's weights; a later run reads them again from the page cache).
    #[arg(long)]
    release_weights: bool,
}

pub async fn run(args: Args) -> Result<()> {
    let program = Program::open(&args.program)?;
    let weights = match (&args.weights, args.random_weights) {
        (Some(w), _) => Some(Checkpoint::open(w).await?),
        (None, Some(seed)) => Some(random_checkpoint(&program, &args.dtype, seed, args.save_weights.as_ref()).await?),
        (None, None) => None,
    };
    let device = DeviceChoice::from_env_or(args.device.parse()?)?;
    let mut data = Vec::new();
    match &args.inputs {
        Some(path) => {
            let inputs = Checkpoint::open(&path.display().to_string()).await?;
            for info in &program.inputs {
                let t = inputs.get(&info.name)?;
                let mut v = vec![0f32; t.info.numel() as usize];
                inputs.read_f32(&info.name, &mut v).await?;
                data.push((info.name.clone(), v));
            }
        }
        None => {
            for (i, info) in program.inputs.iter().enumerate() {
                data.push((
                    info.name.clone(),
                    kinema_engine::random::normal(info.shape.iter().product(), 1000 + i as u64),
                ));
            }
        }
    }
    if let Some(path) = &args.save_inputs {
        let specs: Vec<(TensorSpec, &[u8])> = program
            .inputs
            .iter()
            .zip(&data)
            .map(|(info, (name, v))| {
                let shape: Vec<u64> = info.shape.iter().map(|&d| d as u64).collect();
                (TensorSpec::new(name, Dtype::F32, &shape), bytemuck::cast_slice::<f32, u8>(v))
            })
            .collect();
        write(path, &to_bytes(&specs, &BTreeMap::new()))?;
    }
    let t0 = std::time::Instant::now();
    let mut session = Session::new(program, weights, Options { device, profile: args.profile }).await?;
    eprintln!("kinema: {}", session.device());
    session.load_parameters().await?;
    session.release_weights_after_use(args.release_weights);
    let loaded = t0.elapsed().as_secs_f64();
    let named: Vec<(&str, &[f32])> = data.iter().map(|(n, v)| (n.as_str(), v.as_slice())).collect();
    for _ in 0..args.warmup {
        session.run(&named).await?;
    }
    let t1 = std::time::Instant::now();
    let outputs = session.run(&named).await?;
    let ran = t1.elapsed().as_secs_f64();
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    eprintln!(
        "kinema: loaded in {loaded:.2} s, ran in {ran:.2} s; device bytes: parameters {:.1} MiB, activations {:.1} MiB; host parameters {:.1} MiB",
        mib(session.gpu_parameter_bytes()),
        mib(session.gpu_activation_bytes()),
        mib(session.host_parameter_bytes())
    );
    let specs: Vec<(TensorSpec, &[u8])> = outputs
        .iter()
        .map(|o| {
            let shape: Vec<u64> = o.shape.iter().map(|&d| d as u64).collect();
            (TensorSpec::new(&o.name, Dtype::F32, &shape), bytemuck::cast_slice::<f32, u8>(&o.data))
        })
        .collect();
    if let Some(path) = &args.output {
        write(path, &to_bytes(&specs, &BTreeMap::new()))?;
    }
    if args.profile {
        let mut by_kind: BTreeMap<&str, (usize, f64)> = BTreeMap::new();
        for t in session.profile() {
            println!("{:>9.3} ms  node {:4}  {:10} {:44} {}", t.ms, t.node, t.kind, t.kernel, t.path);
            let e = by_kind.entry(t.kind).or_default();
            e.0 += 1;
            e.1 += t.ms;
        }
        let t = kinema_engine::runtime::traffic(session.program(), session.plan(), session.checkpoint());
        println!(
            "bytes moved per forward: {:.1} MiB read, {:.1} MiB written (a scratch copy of every GPU output, the \
             scheme before arena banks, would add {:.1} MiB)",
            mib(t.read),
            mib(t.written),
            mib(t.scratch_copy)
        );
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

fn write(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|e| Error::Io { file: path.display().to_string(), message: e.to_string() })
}

/// Seeded random parameters of `program`'s shapes as an in-memory checkpoint in
/// `dtype`: matrices and kernels normal / √fan-in, 1-d weights (norm scales) 1,
/// other 1-d tensors (biases) normal · 0.02 — values that keep activations finite
/// through a deep network. With int8 or int4 (groups of 64), matrices are
/// quantized (`weights::quant`; int4 only with rows of even length). Written to
/// `save` as well, when given.
async fn random_checkpoint(program: &Program, dtype: &str, seed: u64, save: Option<&PathBuf>) -> Result<Checkpoint> {
    use kinema_engine::weights::quant::{Scheme, quantize, stored_specs};
    let dtype = match dtype {
        "f32" | "f16" | "bf16" | "int8" | "int4" => dtype,
        other => return Err(Error::Invalid(format!("--dtype {other:?}: f32, f16, bf16, int8 or int4"))),
    };
    let mut specs: Vec<(TensorSpec, Vec<u8>)> = Vec::new();
    for (i, p) in program.parameters.iter().enumerate() {
        let n: usize = p.shape.iter().product();
        let shape: Vec<u64> = p.shape.iter().map(|&d| d as u64).collect();
        let mut v = kinema_engine::random::normal(n, seed.wrapping_add(i as u64));
        if p.shape.len() >= 2 {
            let scale = 1.0 / ((n / p.shape[0].max(1)).max(1) as f32).sqrt();
            v.iter_mut().for_each(|x| *x *= scale);
        } else if p.key.ends_with("weight") {
            v.iter_mut().for_each(|x| *x = 1.0);
        } else {
            v.iter_mut().for_each(|x| *x *= 0.02);
        }
        let bytes = |d: Dtype, v: &[f32]| -> Vec<u8> {
            match d {
                Dtype::F16 => v.iter().flat_map(|&x| half::f16::from_f32(x).to_le_bytes()).collect(),
                Dtype::BF16 => v.iter().flat_map(|&x| half::bf16::from_f32(x).to_le_bytes()).collect(),
                _ => bytemuck::cast_slice(v).to_vec(),
            }
        };
        match dtype {
            "int8" | "int4" if p.shape.len() == 2 && (dtype == "int8" || p.shape[1] % 2 == 0) => {
                let scheme = if dtype == "int8" { Scheme::Int8 } else { Scheme::Int4 { group: 64 } };
                let (q, s) = quantize(scheme, &v, p.shape[0]);
                let [values, scales] = stored_specs(scheme, &p.key, &shape);
                specs.push((values, q));
                specs.push((scales, bytemuck::cast_slice(&s).to_vec()));
            }
            "f16" => specs.push((TensorSpec::new(&p.key, Dtype::F16, &shape), bytes(Dtype::F16, &v))),
            "bf16" => specs.push((TensorSpec::new(&p.key, Dtype::BF16, &shape), bytes(Dtype::BF16, &v))),
            _ => specs.push((TensorSpec::new(&p.key, Dtype::F32, &shape), bytes(Dtype::F32, &v))),
        }
    }
    let refs: Vec<(TensorSpec, &[u8])> = specs.iter().map(|(s, b)| (s.clone(), b.as_slice())).collect();
    let file = to_bytes(&refs, &BTreeMap::new());
    drop(specs);
    if let Some(path) = save {
        write(path, &file)?;
    }
    let name = format!("random weights (seed {seed}, {dtype})");
    Checkpoint::from_source(&name, Box::new(kinema_engine::weights::source::BytesSource::new(&name, file))).await
}
