//! The tuner: kernel configurations timed on the adapter at hand, per shape
//! class, kept in a small JSON table per adapter and Kinema version.
//!
//! A [`Class`] buckets a matmul by the powers of two its m, n and k round up
//! to, a conv3d likewise as the GEMM it is (output channels per group, input
//! channels per group × taps, output positions), and an attention by its head
//! dimension and the powers of two of its query and key lengths. [`tune`] times, for each class it is handed an
//! example of, the static table's choice ([`super::tuning`]) and every
//! candidate on that example; a candidate may win only if its output matches
//! the default's (within [`AGREE`] of the largest output) and it ran faster.
//! The winners go in a [`Table`], saved natively under the user's cache
//! folder (`tuning/ADAPTER.json`), in the browser in the page's `localStorage`
//! (key `kinema.tuning/ADAPTER`; none in a worker), and read back by the next
//! process or page, which then tunes nothing: a lookup
//! ([`super::tuning::matmul_for`], `conv_for`, `attention_for`) finds the
//! class's winner, or the static choice for a class nobody tuned.
//! `KINEMA_TUNE=off` ignores the table (the static choices only); `full`
//! tunes what a GPU session's program needs at first use ([`at_first_use`]).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::clock::seconds;

use serde_json::{Value, json};

use super::GpuDevice;
use super::attention::Variant;
use super::conv::Kernel as ConvKernel;
use super::matmul::{Config, Tiles};
use crate::delegate::{Attention, Conv3d, Matmul};
use crate::{Error, Result};

/// How far a candidate's output may be from the default's, relative to the
/// default's largest magnitude (both sum in f32, in different orders).
pub const AGREE: f32 = 1e-4;

/// The same for a reduced-precision candidate ([`Precision::F16`]): inputs
/// rounded to f16 (11 significant bits) are off by up to 2⁻¹¹ each, so sums
/// of thousands of them by some 10⁻³ of the largest output.
pub const F16_AGREE: f32 = 1e-2;

/// Which arithmetic the tuner may choose (`KINEMA_PRECISION`): `f32`, the
/// default, every candidate sums f32 values in f32; `f16`, also the kernels
/// in f16 arithmetic ([`Config::F16`], where the adapter has `shader-f16`),
/// which must agree within [`F16_AGREE`]. A table is kept per precision.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    #[default]
    F32,
    F16,
}

impl std::str::FromStr for Precision {
    type Err = Error;

    fn from_str(s: &str) -> Result<Precision> {
        match s {
            "f32" => Ok(Precision::F32),
            "f16" => Ok(Precision::F16),
            other => Err(Error::Invalid(format!("precision {other:?}: expected f32 or f16"))),
        }
    }
}

impl Precision {
    /// From `KINEMA_PRECISION`; anything but `f32` or `f16` is an error.
    pub fn from_env() -> Result<Precision> {
        match std::env::var("KINEMA_PRECISION").ok().filter(|v| !v.is_empty()) {
            None => Ok(Precision::F32),
            Some(v) => v.parse().map_err(|_| Error::Invalid(format!("KINEMA_PRECISION={v}: expected f32 or f16"))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
        }
    }
}

/// A shape class: the tuning table's key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    /// log₂ of m, n and k, rounded up.
    Matmul { m: u32, n: u32, k: u32 },
    /// The head dimension, and log₂ of the query and key lengths, rounded up.
    Attention { head_dim: u32, q: u32, kv: u32 },
    /// log₂ of the output channels per group, of the depth (input channels
    /// per group × taps) and of the output positions, rounded up.
    Conv { c_out: u32, k: u32, positions: u32 },
}

fn log2_ceil(x: usize) -> u32 {
    x.max(1).next_power_of_two().trailing_zeros()
}

impl Class {
    pub fn matmul(spec: &Matmul) -> Class {
        Class::Matmul { m: log2_ceil(spec.m), n: log2_ceil(spec.n), k: log2_ceil(spec.k) }
    }

    pub fn conv(spec: &Conv3d) -> Class {
        Class::Conv { c_out: log2_ceil(spec.c_out_g()), k: log2_ceil(spec.k()), positions: log2_ceil(spec.positions()) }
    }

    pub fn attention(spec: &Attention) -> Class {
        Class::Attention { head_dim: spec.head_dim as u32, q: log2_ceil(spec.q_len), kv: log2_ceil(spec.kv_len) }
    }

    /// The table's key, e.g. `matmul m≤1024 n≤1024 k≤64`.
    pub fn key(&self) -> String {
        match *self {
            Class::Matmul { m, n, k } => format!("matmul m≤{} n≤{} k≤{}", 1u64 << m, 1u64 << n, 1u64 << k),
            Class::Attention { head_dim, q, kv } => {
                format!("attention d={head_dim} q≤{} kv≤{}", 1u64 << q, 1u64 << kv)
            }
            Class::Conv { c_out, k, positions } => {
                format!("conv3d c_out≤{} k≤{} p≤{}", 1u64 << c_out, 1u64 << k, 1u64 << positions)
            }
        }
    }

    fn parse(key: &str) -> Option<Class> {
        let pow = |s: &str, tag: &str| -> Option<u32> {
            let v: u64 = s.strip_prefix(tag)?.parse().ok()?;
            v.is_power_of_two().then(|| v.trailing_zeros())
        };
        let parts: Vec<&str> = key.split(' ').collect();
        match parts.as_slice() {
            ["matmul", m, n, k] => Some(Class::Matmul { m: pow(m, "m≤")?, n: pow(n, "n≤")?, k: pow(k, "k≤")? }),
            ["attention", d, q, kv] => Some(Class::Attention {
                head_dim: d.strip_prefix("d=")?.parse().ok()?,
                q: pow(q, "q≤")?,
                kv: pow(kv, "kv≤")?,
            }),
            ["conv3d", c, k, p] => {
                Some(Class::Conv { c_out: pow(c, "c_out≤")?, k: pow(k, "k≤")?, positions: pow(p, "p≤")? })
            }
            _ => None,
        }
    }
}

/// A kernel configuration the table may hold.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Choice {
    Matmul(Config),
    Attention(Variant),
    Conv(ConvKernel),
}

impl Choice {
    pub fn describe(&self) -> String {
        match self {
            Choice::Matmul(c) => c.describe(),
            Choice::Attention(v) => v.describe(),
            Choice::Conv(k) => k.describe(),
        }
    }

    fn to_json(self) -> Value {
        match self {
            Choice::Matmul(Config::Tiled(t)) => json!({"matmul": "tiled", "wg_m": t.wg_m, "wg_n": t.wg_n, "bk": t.bk}),
            Choice::Matmul(Config::Blocked(t)) => {
                json!({"matmul": "blocked", "wg_m": t.wg_m, "wg_n": t.wg_n, "bk": t.bk})
            }
            Choice::Matmul(Config::Direct { wg_m, wg_n }) => json!({"matmul": "direct", "wg_m": wg_m, "wg_n": wg_n}),
            Choice::Matmul(Config::Subgroups8 { wg_rows }) => json!({"matmul": "subgroups8", "wg_rows": wg_rows}),
            Choice::Matmul(Config::Subgroups { lanes }) => json!({"matmul": "subgroups", "lanes": lanes}),
            Choice::Matmul(Config::F16(t)) => json!({"matmul": "f16", "wg_m": t.wg_m, "wg_n": t.wg_n, "bk": t.bk}),
            Choice::Matmul(Config::SplitK { slices, tiles: t }) => {
                json!({"matmul": "split_k", "slices": slices, "wg_m": t.wg_m, "wg_n": t.wg_n, "bk": t.bk})
            }
            Choice::Attention(Variant::Tiled) => json!({"attention": "tiled"}),
            Choice::Attention(Variant::Subgroups8 { wg_rows }) => {
                json!({"attention": "subgroups8", "wg_rows": wg_rows})
            }
            Choice::Attention(Variant::Scores { rows }) => json!({"attention": "scores", "rows": rows}),
            Choice::Conv(ConvKernel::Narrow) => json!({"conv3d": "narrow"}),
            Choice::Conv(ConvKernel::Gemm(c)) => {
                let mut v = Choice::Matmul(c).to_json();
                v["conv3d"] = v["matmul"].take();
                v.as_object_mut().expect("an object").remove("matmul");
                v
            }
        }
    }

    /// A choice from the table, if it is one of this adapter's candidates
    /// (a table edited by hand or for another adapter chooses nothing else).
    fn from_json(v: &Value, dev: &GpuDevice) -> Option<Choice> {
        let num = |k: &str| v.get(k).and_then(Value::as_u64).and_then(|x| u32::try_from(x).ok());
        if let Some(kind) = v.get("conv3d").and_then(Value::as_str) {
            let kernel = match kind {
                "narrow" => ConvKernel::Narrow,
                _ => {
                    let mut gemm = v.clone();
                    gemm["matmul"] = kind.into();
                    gemm.as_object_mut()?.remove("conv3d");
                    let Some(Choice::Matmul(c)) = Choice::from_json(&gemm, dev) else { return None };
                    ConvKernel::Gemm(c)
                }
            };
            return super::tuning::conv_candidates(dev).contains(&kernel).then_some(Choice::Conv(kernel));
        }
        let choice = match (v.get("matmul").and_then(Value::as_str), v.get("attention").and_then(Value::as_str)) {
            (Some("tiled"), None) => {
                Choice::Matmul(Config::Tiled(Tiles { wg_m: num("wg_m")?, wg_n: num("wg_n")?, bk: num("bk")? }))
            }
            (Some("blocked"), None) => {
                Choice::Matmul(Config::Blocked(Tiles { wg_m: num("wg_m")?, wg_n: num("wg_n")?, bk: num("bk")? }))
            }
            (Some("direct"), None) => Choice::Matmul(Config::Direct { wg_m: num("wg_m")?, wg_n: num("wg_n")? }),
            (Some("subgroups8"), None) => Choice::Matmul(Config::Subgroups8 { wg_rows: num("wg_rows")? }),
            (Some("subgroups"), None) => Choice::Matmul(Config::Subgroups { lanes: num("lanes")? }),
            (Some("f16"), None) => {
                Choice::Matmul(Config::F16(Tiles { wg_m: num("wg_m")?, wg_n: num("wg_n")?, bk: num("bk")? }))
            }
            (Some("split_k"), None) => Choice::Matmul(Config::SplitK {
                slices: num("slices")?,
                tiles: Tiles { wg_m: num("wg_m")?, wg_n: num("wg_n")?, bk: num("bk")? },
            }),
            (None, Some("tiled")) => Choice::Attention(Variant::Tiled),
            (None, Some("subgroups8")) => Choice::Attention(Variant::Subgroups8 { wg_rows: num("wg_rows")? }),
            (None, Some("scores")) => Choice::Attention(Variant::Scores { rows: num("rows")? }),
            _ => return None,
        };
        let known = match choice {
            Choice::Matmul(c) => super::tuning::candidates(dev).contains(&c),
            Choice::Attention(a) => super::tuning::attention_candidates(dev).contains(&a),
            Choice::Conv(k) => super::tuning::conv_candidates(dev).contains(&k),
        };
        known.then_some(choice)
    }
}

/// One class's result: the winner and the times it was chosen by.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub choice: Choice,
    /// The winner's and the static default's least time, ms.
    pub ms: f64,
    pub default_ms: f64,
    /// The shape it was timed at (m, n, k or q, kv, head_dim).
    pub shape: [usize; 3],
}

/// The winners for one adapter and Kinema version.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Table {
    pub entries: BTreeMap<Class, Entry>,
}

/// Which tuning a process does (`KINEMA_TUNE`): `off`, the static choices
/// only; `cached` (the default), the saved table, else the static choices;
/// `full`, as cached, and a GPU session first times the classes of its
/// program the table lacks ([`at_first_use`]).
///
/// Not `full` by default: a first run would then spend up to the budget
/// timing, and its kernels (all agreeing within [`AGREE`], not bit for bit)
/// would depend on how the timings fell; `kinema tune` does it ahead of time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Off,
    Cached,
    Full,
}

impl Mode {
    /// From `KINEMA_TUNE`; anything but `off`, `cached` or `full` is an error.
    pub fn from_env() -> Result<Mode> {
        match std::env::var("KINEMA_TUNE").ok().as_deref() {
            None | Some("") | Some("cached") => Ok(Mode::Cached),
            Some("off") => Ok(Mode::Off),
            Some("full") => Ok(Mode::Full),
            Some(other) => Err(Error::Invalid(format!("KINEMA_TUNE={other}: expected off, cached or full"))),
        }
    }
}

/// Seconds a process may spend tuning at first use: `KINEMA_TUNE_BUDGET`
/// (0 to 3600; 0 = none), else 10.
pub fn process_budget() -> Result<Duration> {
    match std::env::var("KINEMA_TUNE_BUDGET").ok().filter(|v| !v.is_empty()) {
        None => Ok(Duration::from_secs(10)),
        Some(v) => match v.parse::<f64>() {
            Ok(s) if s.is_finite() && (0.0..=3600.0).contains(&s) => Ok(Duration::from_secs_f64(s)),
            _ => Err(Error::Invalid(format!("KINEMA_TUNE_BUDGET={v}: expected 0 to 3600 seconds"))),
        },
    }
}

/// With `KINEMA_TUNE=full`: times the classes of `examples` that the
/// device's table lacks, within what is left of this process's budget
/// ([`process_budget`]), then uses and saves the grown table (a table that
/// cannot be saved is still used, with a warning). Otherwise nothing.
#[cfg(not(target_arch = "wasm32"))]
pub async fn at_first_use(dev: &GpuDevice, examples: &[Example]) -> Result<()> {
    if Mode::from_env()? != Mode::Full {
        return Ok(());
    }
    let left = process_budget()?.saturating_sub(dev.tuning_spent());
    if left.is_zero() {
        return Ok(());
    }
    let mut table = (*dev.tuning()).clone();
    let t0 = seconds();
    let tuned = tune(dev, examples, left, 3, &mut table).await?;
    let spent = seconds() - t0;
    dev.add_tuning_spent(Duration::from_secs_f64(spent));
    if tuned > 0 {
        match save(dev, &table) {
            Ok(path) => eprintln!("kinema: tuned {tuned} shape classes in {spent:.1} s into {}", path.display()),
            Err(e) => eprintln!("kinema: tuned {tuned} shape classes; the table was not saved: {e}"),
        }
        dev.set_tuning(table);
    }
    Ok(())
}

/// The adapter's identity in the table: vendor, device, driver and backend.
pub fn adapter_key(dev: &GpuDevice) -> String {
    let i = &dev.info;
    format!("{:04x}:{:04x} {} {} ({:?})", i.vendor, i.device, i.name, i.driver_info, i.backend)
}

impl Table {
    /// The table as JSON, for `dev`.
    pub fn to_json(&self, dev: &GpuDevice) -> Value {
        let entries: Vec<Value> = self
            .entries
            .iter()
            .map(|(class, e)| {
                json!({"class": class.key(), "kernel": e.choice.to_json(), "describe": e.choice.describe(),
                       "ms": e.ms, "default_ms": e.default_ms, "shape": e.shape})
            })
            .collect();
        json!({"format": "kinema.tuning", "version": env!("CARGO_PKG_VERSION"), "adapter": adapter_key(dev),
               "precision": dev.precision().name(), "entries": entries})
    }

    /// A table read back: empty (and why) unless it is this version's, for
    /// this adapter, every entry a class and one of the adapter's candidates.
    pub fn from_json(v: &Value, dev: &GpuDevice) -> std::result::Result<Table, String> {
        if v.get("format").and_then(Value::as_str) != Some("kinema.tuning") {
            return Err("not a kinema.tuning table".into());
        }
        if v.get("version").and_then(Value::as_str) != Some(env!("CARGO_PKG_VERSION")) {
            return Err("made by another version of Kinema".into());
        }
        if v.get("adapter").and_then(Value::as_str) != Some(adapter_key(dev).as_str()) {
            return Err("made for another adapter".into());
        }
        // (Tables from before precisions were kept apart hold f32 choices.)
        if v.get("precision").and_then(Value::as_str).unwrap_or("f32") != dev.precision().name() {
            return Err("made at another precision".into());
        }
        let mut table = Table::default();
        for e in v.get("entries").and_then(Value::as_array).ok_or("no entries")? {
            let class =
                e.get("class").and_then(Value::as_str).and_then(Class::parse).ok_or("an entry without a class")?;
            let choice = e.get("kernel").and_then(|k| Choice::from_json(k, dev)).ok_or("an unknown kernel")?;
            let num = |k: &str| e.get(k).and_then(Value::as_f64).filter(|x| x.is_finite() && *x >= 0.0);
            let shape =
                e.get("shape").and_then(Value::as_array).filter(|s| s.len() == 3).ok_or("an entry without a shape")?;
            let dim = |i: usize| shape[i].as_u64().map(|x| x as usize).ok_or("a bad shape");
            let entry = Entry {
                choice,
                ms: num("ms").ok_or("a bad time")?,
                default_ms: num("default_ms").ok_or("a bad time")?,
                shape: [dim(0)?, dim(1)?, dim(2)?],
            };
            table.entries.insert(class, entry);
        }
        Ok(table)
    }
}

/// The file the table of `dev` is kept in: `tuning/` in the user's cache
/// folder (`$KINEMA_CACHE_DIR`, `$XDG_CACHE_HOME/kinema`, `~/.cache/kinema`).
#[cfg(not(target_arch = "wasm32"))]
pub fn table_path(dev: &GpuDevice) -> Option<std::path::PathBuf> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(std::path::PathBuf::from);
    let root = var("KINEMA_CACHE_DIR")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("kinema")))
        .or_else(|| var("HOME").map(|d| d.join(".cache/kinema")))?;
    let name: String = adapter_key(dev)
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' })
        .collect();
    let precision = match dev.precision() {
        Precision::F32 => "",
        Precision::F16 => ".f16",
    };
    Some(root.join("tuning").join(format!("{name}{precision}.json")))
}

/// The saved table of `dev`, or an empty one with a warning on stderr when
/// the file is unreadable or not this adapter's (it is only a cache).
#[cfg(not(target_arch = "wasm32"))]
pub fn load(dev: &GpuDevice) -> Table {
    let Some(path) = table_path(dev) else { return Table::default() };
    let Ok(text) = std::fs::read_to_string(&path) else { return Table::default() };
    let parsed = serde_json::from_str::<Value>(&text).map_err(|e| e.to_string());
    match parsed.and_then(|v| Table::from_json(&v, dev)) {
        Ok(table) => table,
        Err(why) => {
            eprintln!("kinema: ignoring the tuning table {}: {why}", path.display());
            Table::default()
        }
    }
}

/// The page's `localStorage` (none in a worker, or where storage is blocked).
#[cfg(target_arch = "wasm32")]
fn local_storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok()?
}

/// The `localStorage` key the table of `dev` is kept under in the browser.
pub fn storage_key(dev: &GpuDevice) -> String {
    match dev.precision() {
        Precision::F32 => format!("kinema.tuning/{}", adapter_key(dev)),
        Precision::F16 => format!("kinema.tuning/{} f16", adapter_key(dev)),
    }
}

/// The table of `dev` saved in this page's `localStorage`, or an empty one
/// (with a console warning when the saved one is unreadable or another's).
#[cfg(target_arch = "wasm32")]
pub fn load(dev: &GpuDevice) -> Table {
    let Some(text) = local_storage().and_then(|s| s.get_item(&storage_key(dev)).ok().flatten()) else {
        return Table::default();
    };
    let parsed = serde_json::from_str::<Value>(&text).map_err(|e| e.to_string());
    match parsed.and_then(|v| Table::from_json(&v, dev)) {
        Ok(table) => table,
        Err(why) => {
            web_sys::console::warn_1(&format!("kinema: ignoring the tuning table {}: {why}", storage_key(dev)).into());
            Table::default()
        }
    }
}

/// Saves `table` as the table of `dev` in this page's `localStorage`;
/// returns the key.
#[cfg(target_arch = "wasm32")]
pub fn save(dev: &GpuDevice, table: &Table) -> Result<String> {
    let storage = local_storage().ok_or_else(|| {
        Error::Invalid("no localStorage here (a worker, or storage blocked): the table is not kept".into())
    })?;
    let key = storage_key(dev);
    let text = serde_json::to_string(&table.to_json(dev)).expect("JSON");
    storage.set_item(&key, &text).map_err(|e| Error::Invalid(format!("localStorage {key}: {e:?}")))?;
    Ok(key)
}

/// Saves `table` as the table of `dev`; returns where.
#[cfg(not(target_arch = "wasm32"))]
pub fn save(dev: &GpuDevice, table: &Table) -> Result<std::path::PathBuf> {
    let path = table_path(dev).ok_or_else(|| Error::Invalid("no cache folder for the tuning table".into()))?;
    let io = |e: std::io::Error| Error::Invalid(format!("{}: {e}", path.display()));
    std::fs::create_dir_all(path.parent().expect("a file in tuning/")).map_err(io)?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(&table.to_json(dev)).expect("JSON")).map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(io)?;
    Ok(path)
}

/// An example of a class to time: a product, a conv or an attention of real shapes.
#[derive(Clone, Debug)]
pub enum Example {
    Matmul(Matmul),
    Attention(Attention),
    Conv(Conv3d),
}

impl Example {
    pub fn class(&self) -> Class {
        match self {
            Example::Matmul(m) => Class::matmul(m),
            Example::Attention(a) => Class::attention(a),
            Example::Conv(c) => Class::conv(c),
        }
    }
}

/// Times the candidates of each example's class (the first example of a
/// class stands for it) into `table`, until `budget` has passed: a class
/// whose candidates were not all timed by then is left out (so the table never
/// holds a half-timed choice); a class already in `table` is skipped.
/// Returns how many classes were tuned.
pub async fn tune(
    dev: &GpuDevice,
    examples: &[Example],
    budget: Duration,
    runs: usize,
    table: &mut Table,
) -> Result<usize> {
    let deadline = seconds() + budget.as_secs_f64();
    let mut tuned = 0;
    for example in examples {
        let class = example.class();
        if table.entries.contains_key(&class) || seconds() >= deadline {
            continue;
        }
        let entry = match example {
            Example::Matmul(spec) => {
                let spec = Matmul { activation: crate::delegate::Activation::None, ..*spec };
                let a = crate::random::uniform(spec.batch * spec.m * spec.k, 1);
                let b = crate::random::uniform(spec.batch * spec.k * spec.n, 2);
                let run = |c: Config| super::matmul::matmul_with(dev, c, &spec, &a, &b[..], None);
                let default = super::tuning::matmul(dev);
                let cands = super::tuning::candidates(dev);
                let shape = [spec.m, spec.n, spec.k];
                let agree = |c: &Config| if c.reduced_precision() { F16_AGREE } else { AGREE };
                let Some((c, ms, default_ms)) = best(default, &cands, runs, deadline, agree, run).await? else {
                    continue;
                };
                Entry { choice: Choice::Matmul(c), ms, default_ms, shape }
            }
            Example::Attention(spec) => {
                let (q, kv) = (spec.batch * spec.heads * spec.q_len, spec.batch * spec.heads * spec.kv_len);
                let qs = crate::random::uniform(q * spec.head_dim, 3);
                let ks = crate::random::uniform(kv * spec.head_dim, 4);
                let vs = crate::random::uniform(kv * spec.head_dim, 5);
                let run = |v: Variant| super::attention::attention_with(dev, v, spec, &qs, &ks, &vs, None);
                let default = super::tuning::attention(dev);
                let cands = super::tuning::attention_candidates(dev);
                let shape = [spec.q_len, spec.kv_len, spec.head_dim];
                let Some((v, ms, default_ms)) = best(default, &cands, runs, deadline, |_| AGREE, run).await? else {
                    continue;
                };
                Entry { choice: Choice::Attention(v), ms, default_ms, shape }
            }
            Example::Conv(spec) => {
                let spec = Conv3d { activation: crate::delegate::Activation::None, ..*spec };
                let x = crate::random::uniform(spec.batch * spec.c_in * spec.input.iter().product::<usize>(), 6);
                let w = crate::random::uniform(spec.c_out * spec.k(), 7);
                let run = |k: ConvKernel| super::conv::conv3d_with(dev, k, &spec, &x, &w, None);
                let default = super::tuning::conv(dev, &spec);
                let cands = super::tuning::conv_candidates(dev);
                let shape = [spec.c_out_g(), spec.k(), spec.positions()];
                let Some((k, ms, default_ms)) = best(default, &cands, runs, deadline, |_| AGREE, run).await? else {
                    continue;
                };
                Entry { choice: Choice::Conv(k), ms, default_ms, shape }
            }
        };
        table.entries.insert(class, entry);
        tuned += 1;
    }
    Ok(tuned)
}

/// The fastest of `default` and `candidates` (the default among them is
/// timed once) whose output agrees with the default's (within `agree(c)` of
/// its largest magnitude), with its least time
/// and the default's (ms); `None` if the deadline passed before every
/// candidate was timed.
async fn best<C: Copy + PartialEq, F: std::future::Future<Output = Result<Vec<f32>>>>(
    default: C,
    candidates: &[C],
    runs: usize,
    deadline: f64,
    agree: impl Fn(&C) -> f32,
    run: impl Fn(C) -> F,
) -> Result<Option<(C, f64, f64)>> {
    let time = async |c: C| -> Result<(f64, Vec<f32>)> {
        let mut out = run(c).await?; // the first run compiles the kernel: not timed
        let mut least = f64::INFINITY;
        for _ in 0..runs.max(1) {
            let t0 = seconds();
            out = run(c).await?;
            least = least.min((seconds() - t0) * 1e3);
        }
        Ok((least, out))
    };
    let (default_ms, want) = time(default).await?;
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(f32::MIN_POSITIVE);
    let mut winner = (default, default_ms);
    for &c in candidates.iter().filter(|&&c| c != default) {
        if seconds() >= deadline {
            return Ok(None);
        }
        // A candidate that fails (a limit, a compile error) or disagrees loses.
        let Ok((ms, got)) = time(c).await else { continue };
        let agrees = got.len() == want.len() && got.iter().zip(&want).all(|(g, w)| (g - w).abs() <= agree(&c) * scale);
        if agrees && ms < winner.1 {
            winner = (c, ms);
        }
    }
    Ok(Some((winner.0, winner.1, default_ms)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A class's key reads back as the class; keys that are not one do not.
    #[test]
    fn class_keys_round_trip() {
        let specs = [Matmul::new(1, 1560, 1536, 8960), Matmul::new(2, 1, 1, 1), Matmul::new(1, 1024, 1024, 1024)];
        for spec in &specs {
            let class = Class::matmul(spec);
            assert_eq!(Class::parse(&class.key()), Some(class));
        }
        assert_eq!(Class::matmul(&specs[0]).key(), "matmul m≤2048 n≤2048 k≤16384");
        let att = Attention::new(1, 12, 1560, 512, 128);
        assert_eq!(Class::attention(&att).key(), "attention d=128 q≤2048 kv≤512");
        assert_eq!(Class::parse(&Class::attention(&att).key()), Some(Class::attention(&att)));
        // The VAE's 384-channel causal conv at 104 × 60 as its GEMM: 384 × (384 · 27) × 6240.
        let conv = Conv3d::new(1, 384, 384, [3, 60, 104], [3, 3, 3]).padded([1, 1, 1]);
        assert_eq!(Class::conv(&conv).key(), "conv3d c_out≤512 k≤16384 p≤32768");
        assert_eq!(Class::parse(&Class::conv(&conv).key()), Some(Class::conv(&conv)));
        for bad in [
            "",
            "matmul m≤3 n≤4 k≤4",
            "matmul m≤4 n≤4",
            "conv m≤4 n≤4 k≤4",
            "attention d=x q≤4 kv≤4",
            "conv3d c_out≤4 k≤4",
        ] {
            assert_eq!(Class::parse(bad), None, "{bad}");
        }
    }
}
