//! `kinema inspect`: shards, tensors, totals and metadata of a checkpoint.

use std::fmt::Write as _;
use std::path::PathBuf;

use kinema_engine::Result;
use kinema_engine::runtime::step_kernel;
use kinema_engine::weights::{Checkpoint, Manifest, Stats};
use serde_json::{Value, json};

#[derive(clap::Args)]
pub struct Args {
    /// A .safetensors file, a sharded folder, a *.safetensors.index.json, or an http(s) URL of any of these.
    location: String,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    json: bool,
    /// Add min, max, mean (over finite values), NaN and inf counts per tensor (reads all data).
    #[arg(long)]
    stats: bool,
    /// Check shard SHA-256 digests against a manifest: `sha256sum` output, a Git LFS
    /// pointer file, or a folder of LFS pointers named like the shards.
    #[arg(long, value_name = "MANIFEST")]
    verify: Option<PathBuf>,
    /// For a program (*.json): the checkpoint its parameters come from (checked).
    #[arg(long)]
    weights: Option<String>,
    /// For a program: plan for gpu, cpu or auto (KINEMA_DEVICE overrides).
    #[arg(long, default_value = "auto")]
    device: String,
    /// For a program on the GPU: plan as for buffers of at most this many bytes
    /// (e.g. 268435456, WebGPU's default `maxBufferSize`), when under the adapter's own.
    #[arg(long)]
    max_buffer: Option<u64>,
}

pub async fn run(args: Args) -> Result<()> {
    if args.location.ends_with(".json") && !args.location.ends_with(".index.json") {
        return program(&args).await;
    }
    let ckpt = Checkpoint::open(&args.location).await?;
    let verified = match &args.verify {
        Some(path) => Some(ckpt.verify(&Manifest::load(path, &ckpt)?).await?),
        None => None,
    };
    let mut stats = Vec::new();
    if args.stats {
        for t in ckpt.tensors() {
            stats.push(ckpt.stats(t.name).await?);
        }
    }
    let out = if args.json {
        to_json(&ckpt, &stats, verified.as_deref()).to_string()
    } else {
        to_text(&ckpt, &stats, verified.as_deref())
    };
    println!("{out}");
    Ok(())
}

fn stats_json(s: &Stats) -> Value {
    json!({"min": s.min, "max": s.max, "mean": s.mean, "nan": s.nan, "inf": s.inf})
}

fn metadata_json(ckpt: &Checkpoint) -> Value {
    if ckpt.is_sharded() {
        Value::Object(ckpt.index_metadata().clone())
    } else {
        json!(ckpt.shards()[0].header.metadata)
    }
}

fn to_json(ckpt: &Checkpoint, stats: &[Stats], verified: Option<&[(String, String)]>) -> Value {
    let tensors: Vec<Value> = ckpt
        .tensors()
        .enumerate()
        .map(|(i, t)| {
            let mut v = json!({
                "name": t.name,
                "dtype": t.info.dtype.name(),
                "shape": t.info.shape,
                "shard": t.shard.file,
                "bytes": t.info.byte_len(),
                "offset": t.shard.header.data_start() + t.info.data_offsets.0,
            });
            if let (Some(s), Value::Object(m)) = (stats.get(i), &mut v)
                && let Value::Object(sm) = stats_json(s)
            {
                m.extend(sm);
            }
            v
        })
        .collect();
    let shards: Vec<Value> = ckpt
        .shards()
        .iter()
        .map(|s| json!({"file": s.file, "bytes": s.file_len(), "tensors": s.header.tensors.len(), "metadata": s.header.metadata}))
        .collect();
    let mut out = json!({
        "checkpoint": ckpt.name(),
        "sharded": ckpt.is_sharded(),
        "shards": shards,
        "tensors": tensors,
        "total_bytes": ckpt.total_bytes(),
        "metadata": metadata_json(ckpt),
    });
    if let (Some(v), Value::Object(m)) = (verified, &mut out) {
        let list: Vec<Value> = v.iter().map(|(f, d)| json!({"file": f, "sha256": d})).collect();
        m.insert("verified".into(), Value::Array(list));
    }
    out
}

/// Bytes in the largest unit that keeps the number ≥ 1.
fn human(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{bytes} B") } else { format!("{v:.1} {}", units[u]) }
}

fn num(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(x) if x != 0.0 && !(1e-4..1e6).contains(&x.abs()) => format!("{x:.6e}"),
        Some(x) => format!("{x:.6}"),
    }
}

fn to_text(ckpt: &Checkpoint, stats: &[Stats], verified: Option<&[(String, String)]>) -> String {
    let mut o = String::new();
    let kind =
        if ckpt.is_sharded() { format!("sharded, {} shards", ckpt.shards().len()) } else { "single file".into() };
    let _ = writeln!(o, "checkpoint  {} ({kind})", ckpt.name());
    let _ = writeln!(o, "\nshards");
    for s in ckpt.shards() {
        let _ = writeln!(o, "  {}  {}  {} tensors", s.file, human(s.file_len()), s.header.tensors.len());
    }
    let name_w = ckpt.tensors().map(|t| t.name.len()).max().unwrap_or(4).max(4);
    let shape_w = ckpt.tensors().map(|t| format!("{:?}", t.info.shape).len()).max().unwrap_or(5).max(5);
    let _ = write!(o, "\ntensors\n  {:name_w$}  {:7}  {:shape_w$}  {:>12}", "name", "dtype", "shape", "bytes");
    if ckpt.is_sharded() {
        let _ = write!(o, "  shard");
    }
    if !stats.is_empty() {
        let _ = write!(o, "  {:>14}  {:>14}  {:>14}  {:>5}  {:>5}", "min", "max", "mean", "nan", "inf");
    }
    o.push('\n');
    for (i, t) in ckpt.tensors().enumerate() {
        let shape = format!("{:?}", t.info.shape);
        let _ =
            write!(o, "  {:name_w$}  {:7}  {shape:shape_w$}  {:>12}", t.name, t.info.dtype.name(), t.info.byte_len());
        if ckpt.is_sharded() {
            let _ = write!(o, "  {}", t.shard.file);
        }
        if let Some(s) = stats.get(i) {
            let _ =
                write!(o, "  {:>14}  {:>14}  {:>14}  {:>5}  {:>5}", num(s.min), num(s.max), num(s.mean), s.nan, s.inf);
        }
        o.push('\n');
    }
    let _ =
        writeln!(o, "\ntotal  {} tensors, {} ({} bytes)", ckpt.len(), human(ckpt.total_bytes()), ckpt.total_bytes());
    let meta = metadata_json(ckpt);
    if let Value::Object(m) = &meta
        && !m.is_empty()
    {
        let _ = writeln!(o, "\nmetadata");
        for (k, v) in m {
            let v = v.as_str().map_or_else(|| v.to_string(), str::to_string);
            let _ = writeln!(o, "  {k}: {v}");
        }
    }
    if let Some(v) = verified {
        let _ = writeln!(o, "\nsha256 verified");
        for (f, d) in v {
            let _ = writeln!(o, "  {d}  {f}");
        }
    }
    o.truncate(o.trim_end().len());
    o
}

/// `kinema inspect program.json`: the plan, node by node.
async fn program(args: &Args) -> Result<()> {
    use kinema_engine::delegate::DeviceChoice;
    use kinema_engine::plan::{Delegate, Plan};
    use kinema_engine::program::Program;

    let program = Program::open(std::path::Path::new(&args.location))?;
    let mut checkpoint = None;
    if let Some(w) = &args.weights {
        let ckpt = checkpoint.insert(Checkpoint::open(w).await?);
        for p in &program.parameters {
            let shape = ckpt.logical_shape(&p.key)?;
            if shape != p.shape {
                return Err(kinema_engine::Error::Program(format!(
                    "parameter {:?}: the checkpoint has shape {shape:?}, the program expects {:?}",
                    p.key, p.shape
                )));
            }
        }
    }
    let (gpu, why) = DeviceChoice::from_env_or(args.device.parse()?)?.open().await?;
    let max_buffer = gpu.as_ref().map(|d| {
        let own = d.device.limits().max_buffer_size;
        args.max_buffer.map_or(own, |m| m.min(own))
    });
    let program = Plan::fitted(program, max_buffer)?;
    let plan = Plan::within(&program, gpu.as_ref().map(|d| d.info.name.as_str()), max_buffer);
    if args.json {
        let steps: Vec<Value> = plan
            .steps
            .iter()
            .map(|s| {
                let n = &program.nodes[s.node];
                json!({"node": s.node, "op": n.op_name, "path": n.path, "delegate": format!("{:?}", s.delegate).to_lowercase(),
                       "kernel": step_kernel(gpu.as_deref(), &program, s), "reason": s.reason,
                       "fused": s.fused.map(|(i, _)| program.nodes[i].op_name.clone()),
                       "outputs": n.outputs.iter().map(|o| json!({"name": o, "shape": program.shape(o)})).collect::<Vec<_>>()})
            })
            .collect();
        let mut out = json!({"device": why, "nodes": program.nodes.len(), "steps": steps,
                         "arena_bytes": plan.arena.bytes(), "peak_live_bytes": plan.arena.peak_live * 4,
                         "arena_banks": plan.arena.banks.iter().map(|b| *b as u64 * 4).collect::<Vec<_>>(),
                         "weight_bytes": plan.weight_bytes, "weight_order": plan.weight_order});
        if gpu.is_some() {
            let d = kinema_engine::runtime::device_bytes(&program, &plan, checkpoint.as_ref());
            out["device_bytes"] = json!({"weights": d.weights, "weights_by_dtype": d.weights_by_dtype,
                "activations": d.activations, "peak": d.peak, "largest_buffer": d.largest_buffer});
        }
        println!("{out}");
        return Ok(());
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "program: {} ({} nodes, {} steps after fusion)",
        args.location,
        program.nodes.len(),
        plan.steps.len()
    );
    let _ = writeln!(out, "device: {why}");
    for i in &program.inputs {
        let _ = writeln!(out, "input  {} {:?}", i.name, i.shape);
    }
    for (o, v) in program.outputs.iter().zip(program.output_values()) {
        let _ = writeln!(out, "output {} {:?} (= {v})", o.name, o.shape);
    }
    let _ = writeln!(out, "{:>4}  {:12} {:8} {:24} {:44} path", "node", "op", "delegate", "output", "kernel");
    for s in &plan.steps {
        let n = &program.nodes[s.node];
        let op = match s.fused {
            Some((i, _)) => format!("{}+{}", n.op_name, program.nodes[i].op_name),
            None => n.op_name.clone(),
        };
        let shape = format!("{:?}", program.shape(&n.outputs[0]).unwrap_or(&[]));
        let delegate = format!("{:?}", s.delegate).to_lowercase();
        let kernel = step_kernel(gpu.as_deref(), &program, s);
        let _ = writeln!(out, "{:>4}  {op:12} {delegate:8} {shape:24} {kernel:44} {}", s.node, n.path);
    }
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    let _ = writeln!(
        out,
        "arena: {:.2} MiB (peak of live values {:.2} MiB); weights: {:.2} MiB in {} parameters",
        mib(plan.arena.bytes()),
        mib(plan.arena.peak_live as u64 * 4),
        mib(plan.weight_bytes),
        program.parameters.len()
    );
    if gpu.is_some() {
        let d = kinema_engine::runtime::device_bytes(&program, &plan, checkpoint.as_ref());
        let by: Vec<String> = d.weights_by_dtype.iter().map(|(k, v)| format!("{k} {:.2} MiB", mib(*v))).collect();
        let _ = writeln!(
            out,
            "device bytes: weights {:.2} MiB ({}), activations {:.2} MiB, peak {:.2} MiB, largest buffer {:.2} MiB",
            mib(d.weights),
            by.join(", "),
            mib(d.activations),
            mib(d.peak),
            mib(d.largest_buffer)
        );
    }
    let fallbacks: Vec<_> = plan.cpu_fallbacks().collect();
    if gpu.is_some() && fallbacks.is_empty() {
        let _ = writeln!(out, "CPU fallbacks: none");
    } else if !fallbacks.is_empty() {
        let _ = writeln!(out, "CPU fallbacks: {} nodes ({})", fallbacks.len(), fallbacks[0].reason);
    }
    let _ = Delegate::Cpu;
    print!("{out}");
    Ok(())
}
