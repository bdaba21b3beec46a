//! `kinema quantize`: a checkpoint's matrices as weight-only int8 or int4, the layout of
//! `kinema_engine::weights::quant` (docs/weights.md), streamed tensor by tensor
//! into one safetensors file that programs run unchanged.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use kinema_engine::weights::Checkpoint;
use kinema_engine::weights::dtype::Dtype;
use kinema_engine::weights::quant::{MIN_GROUP, Scheme, quantize, scale_key, stored_specs};
use kinema_engine::weights::writer::{TensorSpec, header_bytes};
use kinema_engine::{Error, Result};

#[derive(clap::Args)]
pub struct Args {
    /// The checkpoint (file, sharded folder, index or URL).
    checkpoint: String,
    /// Weight-only int8, one symmetric scale per output channel.
    #[arg(long, required_unless_present = "int4", conflicts_with = "int4")]
    int8: bool,
    /// Weight-only int4, one symmetric scale per --group values of each output channel.
    #[arg(long)]
    int4: bool,
    /// int4: values per scale along a row (a power of two ≥ 8; 64 and 128 are usual).
    #[arg(long, default_value_t = 64, requires = "int4")]
    group: usize,
    /// Matrices with fewer elements than this stay as they are.
    #[arg(long, default_value_t = 4096)]
    min_elements: u64,
    /// The quantized checkpoint (one .safetensors file).
    #[arg(short, long)]
    output: PathBuf,
}

/// Whether a tensor is quantized: a floating-point matrix (2-d: the weights of
/// linears) of at least `min` elements whose key has no scales beside it
/// already (and, for int4, rows of even length).
fn quantized(ckpt: &Checkpoint, name: &str, dtype: Dtype, shape: &[u64], min: u64, scheme: Scheme) -> bool {
    let even = !matches!(scheme, Scheme::Int4 { .. }) || shape.get(1).is_some_and(|n| n % 2 == 0);
    dtype.is_float()
        && shape.len() == 2
        && even
        && shape.iter().product::<u64>() >= min
        && ckpt.get(&scale_key(name)).is_err()
}

pub async fn run(args: Args) -> Result<()> {
    let scheme = if args.int4 {
        if !args.group.is_power_of_two() || args.group < MIN_GROUP {
            return Err(Error::Invalid(format!("--group {}: a power of two ≥ {MIN_GROUP}", args.group)));
        }
        Scheme::Int4 { group: args.group }
    } else {
        Scheme::Int8
    };
    let name = match scheme {
        Scheme::Int8 => "int8".to_string(),
        Scheme::Int4 { group } => format!("int4 (groups of {group})"),
    };
    let ckpt = Checkpoint::open(&args.checkpoint).await?;
    let mut specs = Vec::new();
    let (mut before, mut count) = (0u64, 0usize);
    let tensors: Vec<(String, Dtype, Vec<u64>)> =
        ckpt.tensors().map(|t| (t.name.to_string(), t.info.dtype, t.info.shape.clone())).collect();
    for (name, dtype, shape) in &tensors {
        before += ckpt.get(name)?.info.byte_len();
        if quantized(&ckpt, name, *dtype, shape, args.min_elements, scheme) {
            specs.extend(stored_specs(scheme, name, shape));
            count += 1;
        } else {
            specs.push(TensorSpec::new(name, *dtype, shape));
        }
    }
    let layout = match scheme {
        Scheme::Int8 => "int8, symmetric, one f32 scale per row: {key}.scale".to_string(),
        Scheme::Int4 { group } => {
            format!("int4 packed in U8, symmetric, one f32 scale per {group} values: {{key}}.scale")
        }
    };
    let metadata = BTreeMap::from([
        ("kinema.quantization".to_string(), layout),
        ("kinema.source".to_string(), ckpt.name().to_string()),
    ]);
    let shown = args.output.display().to_string();
    let file = std::fs::File::create(&args.output).map_err(|e| Error::io(&shown, e))?;
    let mut out = std::io::BufWriter::with_capacity(8 << 20, file);
    let write = |out: &mut std::io::BufWriter<std::fs::File>, bytes: &[u8]| {
        out.write_all(bytes).map_err(|e| Error::io(&shown, e))
    };
    write(&mut out, &header_bytes(&specs, &metadata))?;
    for (name, dtype, shape) in &tensors {
        let len = ckpt.get(name)?.info.byte_len() as usize;
        if quantized(&ckpt, name, *dtype, shape, args.min_elements, scheme) {
            let mut values = vec![0f32; shape.iter().product::<u64>() as usize];
            ckpt.read_f32(name, &mut values).await?;
            let (q, scales) = quantize(scheme, &values, shape[0] as usize);
            write(&mut out, &q)?;
            write(&mut out, bytemuck::cast_slice(&scales))?;
        } else {
            let mut bytes = vec![0u8; len];
            ckpt.read_bytes(name, &mut bytes).await?;
            write(&mut out, &bytes)?;
        }
    }
    out.flush().map_err(|e| Error::io(&shown, e))?;
    let after = std::fs::metadata(&args.output).map_err(|e| Error::io(&shown, e))?.len();
    eprintln!(
        "kinema: {count} of {} tensors as {name}: {before} → {after} bytes ({:.2}×), wrote {shown}",
        tensors.len(),
        after as f64 / before.max(1) as f64
    );
    Ok(())
}
