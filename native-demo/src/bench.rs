//! `kinema bench`: the reference workloads on each delegate, timed after
//! warm-up (min and median of several runs, readback included).
//!
//! Today the workload with kernels on both delegates is `matmul`
//! ([1024,1024]×[1024,1024]); `conv3d` and `attention` join as their kernels land.
//! Peers: `tools/bench_peers.py`, run side by side.

use std::time::Instant;

use kinema_engine::delegate::gpu::GpuDevice;
use kinema_engine::delegate::{Matmul, cpu, gpu};
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

pub fn run(args: Args) -> Result<()> {
    let spec = Matmul::new(1, 1024, 1024, 1024);
    let flops = 2.0 * 1024f64.powi(3);
    let (a, b) = (uniform(1024 * 1024, 1), uniform(1024 * 1024, 2));
    let mut rows = Vec::new();
    if args.device != Which::Gpu {
        let ms = time(args.runs, || cpu::matmul::matmul(&spec, &a, &b, None).map(drop))?;
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let adapter = format!("matrixmultiply sgemm, {threads} threads");
        rows.push(Row { workload: "matmul", device: "cpu", adapter, ms, flops });
    }
    if args.device != Which::Cpu {
        match pollster::block_on(GpuDevice::new()) {
            Ok(dev) => {
                let ms =
                    time(args.runs, || pollster::block_on(gpu::matmul::matmul(&dev, &spec, &a, &b, None)).map(drop))?;
                let adapter = format!("{} ({:?})", dev.info.name, dev.info.backend);
                rows.push(Row { workload: "matmul", device: "gpu", adapter, ms, flops });
            }
            Err(e) if args.device == Which::Gpu => return Err(e),
            Err(e) => eprintln!("kinema: no GPU delegate: {e}"),
        }
    }
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
        for r in &rows {
            let (min, median, gflops) = summary(r);
            println!(
                "{:10} {:4} min {min:9.2} ms  median {median:9.2} ms  {gflops:7.1} GFLOP/s  {}",
                r.workload, r.device, r.adapter
            );
        }
    }
    Ok(())
}
