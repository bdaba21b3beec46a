//! `kinema bench`: the reference workloads on each delegate, timed after
//! warm-up (min and median of several runs, readback included).
//!
//! Workloads: `matmul` [1024,1024]×[1024,1024]; `conv3d` x [1,64,8,32,32],
//! w [64,64,3,3,3], stride 1, pad 1; `attention` q, k, v [1,8,1024,64],
//! softmax(qkᵀ/8)v. Peers: `tools/bench_peers.py`, run side by side. On a GPU
//! with `TIMESTAMP_QUERY`, each row also gives the kernel alone (inputs on the
//! device, no readback) by the GPU's own clock. `--tune` times every
//! candidate kernel of each on the GPU, attention also at Wan2.1's shapes.

use std::time::Instant;

use kinema_engine::delegate::gpu::{GpuDevice, View};
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
    /// Print a JSON list of {workload, device, adapter, ms_min, ms_median, gflops, gpu_ms_min}
    /// (gpu_ms_min: the kernel alone by GPU timestamps, null without them).
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
    /// With --tune: only the workloads whose names start with this
    /// (matmul, matmul-skinny, conv3d, attention, attention-wan).
    #[arg(long, requires = "tune")]
    only: Option<String>,
}

struct Row {
    workload: &'static str,
    device: &'static str,
    adapter: String,
    ms: Vec<f64>,
    flops: f64,
    /// The best kernel time on the GPU's own clock (no upload or readback).
    gpu_ms: Option<f64>,
}

impl Row {
    /// A row without a kernel time (the CPU, or runs not timed by the GPU).
    fn new(workload: &'static str, device: &'static str, adapter: String, ms: Vec<f64>, flops: f64) -> Row {
        Row { workload, device, adapter, ms, flops, gpu_ms: None }
    }
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

/// The best of `runs` kernel times (after 2 warm-up runs) of `workload` by
/// the GPU's timestamps, inputs already on the device: what the kernel costs
/// without upload and readback. `None` where the device has no timestamps.
async fn kernel_ms(dev: &GpuDevice, w: &Workloads, workload: &str, runs: usize) -> Result<Option<f64>> {
    if !dev.has_timestamps() {
        return Ok(None);
    }
    let (mm, a, b) = &w.matmul;
    let (conv, x, k) = &w.conv3d;
    let (att, [q, kk, v]) = &w.attention;
    let packed;
    let (inputs, out_len): (Vec<&[f32]>, usize) = match workload {
        "matmul" => (vec![a, b], mm.m * mm.n),
        "conv3d" => {
            packed = gpu::conv::prepack(conv, k);
            (vec![x, &packed], conv.c_out * conv.positions())
        }
        _ => (vec![q, kk, v], q.len()),
    };
    let bufs: Vec<_> = inputs.iter().map(|x| dev.upload(workload, x)).collect();
    let out = dev.output(workload, out_len);
    let mut best: Option<f64> = None;
    for run in 0..runs.max(1) + 2 {
        let views: Vec<View> = bufs.iter().zip(&inputs).map(|(b, x)| View::whole(b, x.len())).collect();
        let o = View::whole(&out, out_len);
        let Some(mut cmds) = dev.timed_commands(64) else { return Ok(None) };
        match workload {
            "matmul" => {
                gpu::matmul::encode_matmul(
                    dev,
                    &mut cmds,
                    tuning::matmul_for(dev, mm),
                    mm,
                    views[0],
                    (views[1], kinema_engine::delegate::gpu::matmul::BStore::F32),
                    None,
                    o,
                )
                .await?
            }
            "conv3d" => {
                gpu::conv::encode_conv3d(
                    dev,
                    &mut cmds,
                    tuning::conv_for(dev, conv),
                    conv,
                    [views[0], views[1]],
                    None,
                    o,
                )
                .await?
            }
            _ => {
                gpu::attention::encode_attention(
                    dev,
                    &mut cmds,
                    tuning::attention_for(dev, att),
                    att,
                    [views[0], views[1], views[2]],
                    None,
                    o,
                )
                .await?
            }
        }
        let Some(ms) = cmds.submit_timed().await? else { return Ok(None) };
        if run >= 2 {
            best = Some(best.map_or(ms, |b| b.min(ms)));
        }
    }
    dev.recycle(bufs.into_iter().chain([out]));
    Ok(best)
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
        rows.push(Row::new("matmul", "cpu", adapter.clone(), ms, flops[0]));
        let ms = time(args.runs, || cpu::conv::conv3d(conv, x, k, None).map(drop))?;
        rows.push(Row::new("conv3d", "cpu", adapter.clone(), ms, flops[1]));
        let ms = time(args.runs, || cpu::attention::attention(att, q, kk, v, None).map(drop))?;
        rows.push(Row::new("attention", "cpu", adapter, ms, flops[2]));
    }
    if args.device != Which::Cpu {
        match pollster::block_on(GpuDevice::new()) {
            Ok(dev) => {
                let adapter = format!("{} ({:?})", dev.info.name, dev.info.backend);
                let ms = time(args.runs, || pollster::block_on(gpu::matmul::matmul(&dev, mm, a, b, None)).map(drop))?;
                let gpu_ms = pollster::block_on(kernel_ms(&dev, &w, "matmul", args.runs))?;
                rows.push(Row { gpu_ms, ..Row::new("matmul", "gpu", adapter.clone(), ms, flops[0]) });
                let ms = time(args.runs, || pollster::block_on(gpu::conv::conv3d(&dev, conv, x, k, None)).map(drop))?;
                let gpu_ms = pollster::block_on(kernel_ms(&dev, &w, "conv3d", args.runs))?;
                rows.push(Row { gpu_ms, ..Row::new("conv3d", "gpu", adapter.clone(), ms, flops[1]) });
                let ms = time(args.runs, || {
                    pollster::block_on(gpu::attention::attention(&dev, att, q, kk, v, None)).map(drop)
                })?;
                let gpu_ms = pollster::block_on(kernel_ms(&dev, &w, "attention", args.runs))?;
                rows.push(Row { gpu_ms, ..Row::new("attention", "gpu", adapter, ms, flops[2]) });
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
    let wanted = |workload: &str| args.only.as_deref().is_none_or(|p| workload.starts_with(p));
    // A tall-skinny product, split-K's case: Wan's FFN down-projection
    // (8,960 → 1,536) for 32 tokens.
    let skinny = Matmul { trans_b: true, ..Matmul::new(1, 32, 1536, 8960) };
    let (sa, sb) = (uniform(32 * 8960, 11), uniform(8960 * 1536, 12));
    for config in tuning::candidates(&dev) {
        if wanted("matmul") {
            let run = || pollster::block_on(gpu::matmul::matmul_with(&dev, config, mm, a, b, None)).map(drop);
            rows.push(Row::new("matmul", "gpu", name(&config), time(args.runs, run)?, 2.0 * 1024f64.powi(3)));
        }
        if wanted("matmul-skinny") {
            let run = || pollster::block_on(gpu::matmul::matmul_with(&dev, config, &skinny, &sa, &sb, None)).map(drop);
            rows.push(Row::new(
                "matmul-skinny",
                "gpu",
                name(&config),
                time(args.runs, run)?,
                2.0 * 32.0 * 1536.0 * 8960.0,
            ));
        }
        if wanted("conv3d") {
            let ms = time(args.runs, || {
                pollster::block_on(gpu::conv::conv3d_with(&dev, gpu::conv::Kernel::Gemm(config), conv, x, k, None))
                    .map(drop)
            })?;
            rows.push(Row::new("conv3d", "gpu", name(&config), ms, 2.0 * conv.macs()));
        }
    }
    // The reference attention, then Wan2.1-T2V-1.3B's at 832 × 480 and one
    // latent frame: self-attention over 1,560 tokens and cross-attention to
    // 512 text tokens, 12 heads of 128.
    let wan_self = Attention::new(1, 12, 1560, 1560, 128);
    let wan_cross = Attention::new(1, 12, 1560, 512, 128);
    let operands = |a: &Attention| {
        let (qn, kn) = (a.heads * a.q_len * a.head_dim, a.heads * a.kv_len * a.head_dim);
        [uniform(qn, 8), uniform(kn, 9), uniform(kn, 10)]
    };
    let shapes = [
        ("attention", *att, [q.clone(), kk.clone(), v.clone()]),
        ("attention-wan-self", wan_self, operands(&wan_self)),
        ("attention-wan-cross", wan_cross, operands(&wan_cross)),
    ];
    for (workload, att, [q, kk, v]) in shapes.iter().filter(|(w, ..)| wanted(w)) {
        for variant in tuning::attention_candidates(&dev) {
            let ms = time(args.runs, || {
                pollster::block_on(gpu::attention::attention_with(&dev, variant, att, q, kk, v, None)).map(drop)
            })?;
            rows.push(Row::new(workload, "gpu", name(&variant), ms, 2.0 * att.macs()));
        }
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
                       "ms_min": min, "ms_median": median, "gflops": gflops, "gpu_ms_min": r.gpu_ms})
            })
            .collect();
        println!("{}", serde_json::Value::Array(list));
    } else {
        for r in rows {
            let (min, median, gflops) = summary(r);
            let kernel = r.gpu_ms.map(|ms| format!("  (kernel {ms:.2} ms by GPU timestamps)")).unwrap_or_default();
            println!(
                "{:10} {:4} min {min:9.2} ms  median {median:9.2} ms  {gflops:7.1} GFLOP/s  {}{kernel}",
                r.workload, r.device, r.adapter
            );
        }
    }
    Ok(())
}
