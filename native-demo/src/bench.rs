//! `kinema bench`: the reference workloads on each delegate, timed after
//! warm-up (min and median of several runs, readback included).
//!
//! Workloads: `matmul` [1024,1024]×[1024,1024]; `conv3d` x [1,64,8,32,32],
//! w [64,64,3,3,3], stride 1, pad 1; `attention` q, k, v [1,8,1024,64],
//! softmax(qkᵀ/8)v. Peers: `tools/bench_peers.py`, run side by side.

use std::time::Instant;

use kinema_engine::delegate::gpu::GpuDevice;
use kinema_engine::delegate::gpu::{attention::Variant, matmul::Config, tuning};
use kinema_engine::delegate::{Attention, Conv3d, DeviceChoice, Matmul, cpu, gpu};
use kinema_engine::random::uniform;
use kinema_engine::{Error, Result};
use serde_json::json;

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Which {
    Gpu,
    Cpu,
    All,
}

#[derive(clap::Args)]
pub struct Args {
    /// Print a JSON list of {workload, device, adapter, ms_min, ms_median, gflops}.
    #[arg(long)]
    json: bool,
    /// Which delegates to time.
    #[arg(long, value_enum, default_value = "all")]
    device: Which,
    /// Timed runs per workload (after 2 warm-up runs).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Time every kernel configuration on the GPU (the candidates of the
    /// tuning table in engine/src/delegate/gpu/tuning.rs) instead of the defaults.
    #[arg(long)]
    tune: bool,
}

struct Row {
    workload: &'static str,
    device: &'static str,
    adapter: String,
    ms: Vec<f64>,
    flops: f64,
}

fn time(runs: usize, mut f: impl FnMut() -> Result<()>) -> Result<Vec<f64>> {
    for _ in 0..2 {
        f()?;
    }
    let mut ms = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        let t0 = Instant::now();
        f()?;
        ms.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    ms.sort_by(f64::total_cmp);
    Ok(ms)
}

/// The reference workloads (fp32), with their inputs.
struct Workloads {
    matmul: (Matmul, Vec<f32>, Vec<f32>),
    conv3d: (Conv3d, Vec<f32>, Vec<f32>),
    attention: (Attention, [Vec<f32>; 3]),
}

impl Workloads {
    fn new() -> Workloads {
        let matmul = Matmul::new(1, 1024, 1024, 1024);
        let conv3d = Conv3d::new(1, 64, 64, [8, 32, 32], [3, 3, 3]).padded([1, 1, 1]);
        let attention = Attention { scale: 1.0 / 8.0, ..Attention::new(1, 8, 1024, 1024, 64) };
        let n = 8 * 1024 * 64;
        Workloads {
            matmul: (matmul, uniform(1024 * 1024, 1), uniform(1024 * 1024, 2)),
            conv3d: (conv3d, uniform(64 * 8 * 32 * 32, 3), uniform(64 * 64 * 27, 4)),
            attention: (attention, [uniform(n, 5), uniform(n, 6), uniform(n, 7)]),
        }
    }
}

pub fn run(mut args: Args) -> Result<()> {
    // KINEMA_DEVICE overrides --device: gpu, cpu, or auto (= all).
    if let Ok(v) = std::env::var(kinema_engine::delegate::choice::ENV) {
        args.device = match v.parse::<DeviceChoice>()? {
            DeviceChoice::Gpu => Which::Gpu,
            DeviceChoice::Cpu => Which::Cpu,
            DeviceChoice::Auto => Which::All,
        };
    }
    if args.tune {
        return tune(&args);
    }
    let w = Workloads::new();
    let (mm, a, b) = &w.matmul;
    let (conv, x, k) = &w.conv3d;
    let (att, [q, kk, v]) = &w.attention;
    let flops = [2.0 * 1024f64.powi(3), 2.0 * conv.macs(), 2.0 * att.macs()];
    let mut rows = Vec::new();
    if args.device != Which::Gpu {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let adapter = format!("host, {threads} threads");
        let ms = time(args.runs, || cpu::matmul::matmul(mm, a, b, None).map(drop))?;
        rows.push(Row { workload: "matmul", device: "cpu", adapter: adapter.clone(), ms, flops: flops[0] });
        let ms = time(args.runs, || cpu::conv::conv3d(conv, x, k, None).map(drop))?;
        rows.push(Row { workload: "conv3d", device: "cpu", adapter: adapter.clone(), ms, flops: flops[1] });
        let ms = time(args.runs, || cpu::attention::attention(att, q, kk, v, None).map(drop))?;
        rows.push(Row { workload: "attention", device: "cpu", adapter, ms, flops: flops[2] });
    }
    if args.device != Which::Cpu {
        match pollster::block_on(GpuDevice::new()) {
            Ok(dev) => {
                let adapter = format!("{} ({:?})", dev.info.name, dev.info.backend);
                let ms = time(args.runs, || pollster::block_on(gpu::matmul::matmul(&dev, mm, a, b, None)).map(drop))?;
                rows.push(Row { workload: "matmul", device: "gpu", adapter: adapter.clone(), ms, flops: flops[0] });
                let ms = time(args.runs, || pollster::block_on(gpu::conv::conv3d(&dev, conv, x, k, None)).map(drop))?;
                rows.push(Row { workload: "conv3d", device: "gpu", adapter: adapter.clone(), ms, flops: flops[1] });
                let ms = time(args.runs, || {
                    pollster::block_on(gpu::attention::attention(&dev, att, q, kk, v, None)).map(drop)
                })?;
                rows.push(Row { workload: "attention", device: "gpu", adapter, ms, flops: flops[2] });
            }
            Err(e) if args.device == Which::Gpu => return Err(e),
            Err(e) => eprintln!("kinema: no GPU delegate: {e}"),
        }
    }
    report(&args, &rows)
}

/// Times every candidate kernel configuration of each workload on the GPU.
fn tune(args: &Args) -> Result<()> {
    let dev = pollster::block_on(GpuDevice::new())?;
    let w = Workloads::new();
    let (mm, a, b) = &w.matmul;
    let (conv, x, k) = &w.conv3d;
    let (att, [q, kk, v]) = &w.attention;
    let name = |c: &dyn std::fmt::Debug| format!("{} {c:?}", dev.info.name);
    let mut rows = Vec::new();
    for config in tuning::candidates(&dev) {
        let ms =
            time(args.runs, || pollster::block_on(gpu::matmul::matmul_with(&dev, config, mm, a, b, None)).map(drop))?;
        rows.push(Row { workload: "matmul", device: "gpu", adapter: name(&config), ms, flops: 2.0 * 1024f64.powi(3) });
        let ms =
            time(args.runs, || pollster::block_on(gpu::conv::conv3d_with(&dev, config, conv, x, k, None)).map(drop))?;
        rows.push(Row { workload: "conv3d", device: "gpu", adapter: name(&config), ms, flops: 2.0 * conv.macs() });
    }
    for variant in tuning::attention_candidates(&dev) {
        let ms = time(args.runs, || {
            pollster::block_on(gpu::attention::attention_with(&dev, variant, att, q, kk, v, None)).map(drop)
        })?;
        rows.push(Row { workload: "attention", device: "gpu", adapter: name(&variant), ms, flops: 2.0 * att.macs() });
    }
    let chosen: (Config, Variant) = (tuning::matmul(&dev), tuning::attention(&dev));
    eprintln!("tuning table's choice here: {chosen:?}");
    report(args, &rows)
}

fn report(args: &Args, rows: &[Row]) -> Result<()> {
    if rows.is_empty() {
        return Err(Error::Invalid("nothing to time".into()));
    }
    let summary = |r: &Row| (r.ms[0], r.ms[r.ms.len() / 2], r.flops / r.ms[0] / 1e6);
    if args.json {
        let list: Vec<_> = rows
            .iter()
            .map(|r| {
                let (min, median, gflops) = summary(r);
                json!({"workload": r.workload, "device": r.device, "adapter": r.adapter,
                       "ms_min": min, "ms_median": median, "gflops": gflops})
            })
            .collect();
        println!("{}", serde_json::Value::Array(list));
    } else {
        for r in rows {
            let (min, median, gflops) = summary(r);
            println!(
                "{:10} {:4} min {min:9.2} ms  median {median:9.2} ms  {gflops:7.1} GFLOP/s  {}",
                r.workload, r.device, r.adapter
            );
        }
    }
    Ok(())
}
