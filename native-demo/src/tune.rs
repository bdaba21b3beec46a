//! `kinema tune`: fills this adapter's tuning table ahead of time and prints it.

use std::path::PathBuf;
use std::time::Duration;

use kinema_engine::delegate::gpu::GpuDevice;
use kinema_engine::delegate::gpu::tune::{self, Example, Table};
use kinema_engine::delegate::{Attention, Conv3d, Matmul};
use kinema_engine::program::Program;
use kinema_engine::{Error, Result};

#[derive(clap::Args)]
pub struct Args {
    /// Programs (program.json) whose matmuls, linears and attentions to tune, at
    /// their shapes; without any, the reference workloads of `kinema bench`.
    programs: Vec<PathBuf>,
    /// Seconds to spend timing (0: time nothing, print the saved table).
    #[arg(long, default_value_t = 10.0)]
    budget: f64,
    /// Timed runs per candidate (after one that compiles it).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Start from an empty table instead of the saved one.
    #[arg(long)]
    fresh: bool,
    /// Print the table as JSON (with "path" and "tuned", the classes timed now).
    #[arg(long)]
    json: bool,
}

pub async fn run(args: Args) -> Result<()> {
    if !(args.budget.is_finite() && (0.0..=86_400.0).contains(&args.budget)) {
        return Err(Error::Invalid(format!("--budget {}: expected 0 to 86400 seconds", args.budget)));
    }
    let mut examples = Vec::new();
    for path in &args.programs {
        examples.extend(kinema_engine::runtime::tuning_examples(&Program::open(path)?));
    }
    if args.programs.is_empty() {
        examples.push(Example::Matmul(Matmul::new(1, 1024, 1024, 1024)));
        examples.push(Example::Conv(Conv3d::new(1, 64, 64, [8, 32, 32], [3, 3, 3]).padded([1, 1, 1])));
        examples.push(Example::Attention(Attention { scale: 1.0 / 8.0, ..Attention::new(1, 8, 1024, 1024, 64) }));
    }
    let dev = GpuDevice::new().await?;
    let mut table = if args.fresh { Table::default() } else { tune::load(&dev) };
    let budget = Duration::from_secs_f64(args.budget);
    let tuned = tune::tune(&dev, &examples, budget, args.runs, &mut table).await?;
    let path = tune::save(&dev, &table)?;
    if args.json {
        let mut v = table.to_json(&dev);
        v["path"] = path.display().to_string().into();
        v["tuned"] = tuned.into();
        println!("{v}");
    } else {
        println!("adapter: {}", tune::adapter_key(&dev));
        for (class, e) in &table.entries {
            println!(
                "{:40} {:48} {:9.3} ms  (default {:9.3} ms, {:.2}×)",
                class.key(),
                e.choice.describe(),
                e.ms,
                e.default_ms,
                e.ms / e.default_ms.max(f64::MIN_POSITIVE)
            );
        }
        println!("{tuned} classes tuned now; table: {}", path.display());
    }
    Ok(())
}
