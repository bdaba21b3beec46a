//! The GPU side of a session: the plan's arena banks, one device buffer each
//! (kernels write their outputs in place: the plan puts a step's outputs in a
//! bank none of its inputs is in), and every parameter and constant resident
//! after its first use. Sessions on one device share a parameter of the same
//! checkpoint (the VAE's first-chunk and chunk programs read the same weights):
//! it is uploaded once and freed with the last session holding it. They share
//! the arena's banks too ([`Arenas`]): an arena holds values only during a run,
//! so sessions that run one after another need the largest one's banks, not the
//! sum of theirs. A run records every node into one submission; nodes the plan
//! gives the CPU read their inputs back and write their outputs into the arena.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use super::execute;
use crate::delegate::gpu::matmul::BStore;
use crate::delegate::gpu::{GpuDevice, Tracked, View};
use crate::delegate::{Gather, Half, Operand};
use crate::error::{Error, Result};
use crate::plan::{Delegate, Plan, Slot};
use crate::program::{Op, Program};
use crate::weights::Checkpoint;
use crate::weights::checkpoint::READ_WINDOW;
use crate::weights::quant::{Quantized, Scheme};

pub(super) struct Resident {
    /// The f32 length of each of the plan's arena banks (`Slot::bank` indexes them).
    banks: Vec<usize>,
    /// Where a run leases the banks from: shared by the device's sessions.
    arenas: Arc<Arenas>,
    /// Parameters (conv weights prepacked, under `name#conv`) and constants.
    tensors: HashMap<String, Arc<DeviceTensor>>,
}

/// A parameter or constant on the device: its buffer, its length in 32-bit
/// words, and, for a weight that only matmuls read, how it is kept.
struct DeviceTensor {
    buffer: Tracked,
    words: usize,
    kept: Option<Kept>,
}

impl DeviceTensor {
    fn bytes(&self) -> u64 {
        self.buffer.buffer.size()
            + match &self.kept {
                Some(Kept::Quant { scales, .. }) => scales.buffer.size(),
                _ => 0,
            }
    }
}

thread_local! {
    /// Parameters on the device that sessions hold, by device, checkpoint and
    /// key (and form): a second session reading the same one shares it.
    static SHARED: RefCell<HashMap<(usize, String), Weak<DeviceTensor>>> = RefCell::default();
}

fn shared_key(dev: &GpuDevice, checkpoint: &Checkpoint, key: &str) -> (usize, String) {
    (dev as *const GpuDevice as usize, format!("{}\u{0}{key}", checkpoint.name()))
}

/// Arena banks shared by the sessions of one device. A session's arena holds
/// values only while it runs (its inputs are written in, its outputs read back
/// before the run returns), so sessions that run one after another — a
/// pipeline's stages, a tiled VAE's decoders of each tile size, first and
/// chunk programs — can use the same buffers: bank `i` is as large as the
/// largest bank `i` any of them planned. A run leases the banks, growing those
/// too small for its plan, and gives them back when it ends; a run that finds
/// them leased (another run in flight) allocates its own. They are freed with
/// the last session holding them.
pub(super) struct Arenas {
    banks: Mutex<Option<Vec<Tracked>>>,
}

thread_local! {
    /// The arenas of each device that sessions hold.
    static ARENAS: RefCell<HashMap<usize, Weak<Arenas>>> = RefCell::default();
}

impl Arenas {
    /// The arenas the sessions on `dev` share (new when none holds them).
    fn of(dev: &GpuDevice) -> Arc<Arenas> {
        let key = dev as *const GpuDevice as usize;
        ARENAS.with(|m| {
            let mut m = m.borrow_mut();
            if let Some(a) = m.get(&key).and_then(Weak::upgrade) {
                return a;
            }
            m.retain(|_, w| w.strong_count() > 0);
            #[cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))] // one thread in the browser
            let a = Arc::new(Arenas { banks: Mutex::new(Some(Vec::new())) });
            m.insert(key, Arc::downgrade(&a));
            a
        })
    }

    /// Banks of at least `lens` f32 each (and any more it holds), until the lease is dropped.
    async fn lease(&self, dev: &GpuDevice, lens: &[usize]) -> Result<Lease<'_>> {
        let held = self.banks.lock().unwrap_or_else(|p| p.into_inner()).take().unwrap_or_default();
        let mut held = held.into_iter();
        let mut banks = Vec::with_capacity(lens.len());
        for (i, &len) in lens.iter().enumerate() {
            let bytes = len as u64 * 4;
            // One too small is freed before the larger one is made.
            if let Some(bank) = held.next().filter(|b| b.buffer.size() >= bytes) {
                banks.push(bank);
                continue;
            }
            let what = format!("allocating arena bank {i} ({bytes} bytes)");
            let buffer = dev
                .scoped(&what, || {
                    dev.device.create_buffer(&wgpu::BufferDescriptor {
                        label: Some("arena bank"),
                        size: bytes,
                        usage: wgpu::BufferUsages::STORAGE
                            | wgpu::BufferUsages::COPY_SRC
                            | wgpu::BufferUsages::COPY_DST,
                        mapped_at_creation: false,
                    })
                })
                .await?;
            banks.push(dev.track(buffer));
        }
        banks.extend(held);
        Ok(Lease { banks, home: self })
    }

    /// Bytes of the banks held between runs.
    fn bytes(&self) -> u64 {
        let banks = self.banks.lock().unwrap_or_else(|p| p.into_inner());
        banks.iter().flatten().map(|b| b.buffer.size()).sum()
    }
}

/// The banks one run uses; back to their [`Arenas`] when dropped.
struct Lease<'a> {
    banks: Vec<Tracked>,
    home: &'a Arenas,
}

impl Lease<'_> {
    /// The view of an arena slot.
    fn view(&self, s: Slot) -> View<'_> {
        View { buffer: &self.banks[s.bank].buffer, offset: s.offset as u64 * 4, len: s.len }
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let mut home = self.home.banks.lock().unwrap_or_else(|p| p.into_inner());
        if home.is_none() {
            *home = Some(std::mem::take(&mut self.banks));
        }
    }
}

/// How a weight that only matmuls read is kept on the GPU.
enum Kept {
    Half(Half),
    /// int8 or int4 with its scales (`len` of them).
    Quant {
        scheme: Scheme,
        scales: Tracked,
        len: usize,
    },
}

/// The stored form a weight keeps on the GPU.
enum Form {
    Half(Half),
    Quant(Quantized),
}

impl Form {
    /// Values per 32-bit word.
    fn per_word(&self) -> usize {
        match self {
            Form::Half(_) => 2,
            Form::Quant(Quantized { scheme: Scheme::Int8, .. }) => 4,
            Form::Quant(Quantized { scheme: Scheme::Int4 { .. }, .. }) => 8,
        }
    }
}

/// How parameter `name` is kept on the GPU, at a half, a quarter or an eighth
/// of f32's memory, when the checkpoint stores it as f16, bf16, int8 or int4
/// and every node that reads it is a linear or a matmul reading it as its
/// weight ([`crate::plan::read_only_as_weight`]), whose kernels widen it as
/// they load (f32 accumulation). `None`: f32.
fn kept_as(program: &Program, checkpoint: &Checkpoint, name: &str, key: &str) -> Option<Form> {
    if !crate::plan::read_only_as_weight(program, name) {
        return None;
    }
    if let Some(q) = checkpoint.quantized(key) {
        return Some(Form::Quant(q));
    }
    Half::of(checkpoint.get(key).ok()?.info.dtype).map(Form::Half)
}

/// The values a step writes (a fused activation's, when fused).
fn step_outputs<'p>(program: &'p Program, plan: &Plan, s: usize) -> &'p [String] {
    let step = &plan.steps[s];
    match step.fused {
        Some((a, _)) => &program.nodes[a].outputs,
        None => &program.nodes[step.node].outputs,
    }
}

/// Bytes of a device buffer of `words` 32-bit values (padded to 16 bytes, as
/// uploads are).
fn buffer_bytes(words: usize) -> u64 {
    (words.max(1).div_ceil(4) * 16) as u64
}

/// What a GPU session of `program` allocates on the device, computed from the
/// plan and the checkpoint's dtypes by the rules [`Resident`] allocates by
/// (one buffer per parameter — 16-bit weights that only matmuls read at two
/// per word, others as f32 — and per constant; the arena's banks).
pub fn device_bytes(program: &Program, plan: &Plan, checkpoint: Option<&Checkpoint>) -> super::DeviceBytes {
    let mut out = super::DeviceBytes::default();
    let mut add = |what: &str, bytes: u64, weights: bool| {
        if weights {
            out.weights += bytes;
            *out.weights_by_dtype.entry(what.to_string()).or_default() += bytes;
        } else {
            out.activations += bytes;
        }
        out.largest_buffer = out.largest_buffer.max(bytes);
    };
    let mut seen = std::collections::HashSet::new();
    for step in plan.steps.iter().filter(|s| s.delegate == Delegate::Gpu && !s.alias) {
        let node = &program.nodes[step.node];
        for (i, name) in node.inputs.iter().enumerate() {
            let Some(p) = program.parameters.iter().find(|p| &p.name == name) else { continue };
            let conv_weight = matches!(node.op, Op::Conv { .. }) && i == 1;
            if !seen.insert((name.as_str(), conv_weight)) {
                continue;
            }
            let len: usize = p.shape.iter().product();
            let kept = checkpoint.filter(|_| !conv_weight).and_then(|c| kept_as(program, c, name, &p.key));
            let Some(form) = kept else {
                add("f32", buffer_bytes(len), true);
                continue;
            };
            let stored = buffer_bytes(len.div_ceil(form.per_word()));
            match form {
                Form::Half(h) => add(&format!("{h:?}").to_lowercase(), stored, true),
                Form::Quant(q) => {
                    let what = match q.scheme {
                        Scheme::Int8 => "int8",
                        Scheme::Int4 { .. } => "int4",
                    };
                    add(what, stored, true);
                    add(&format!("{what} scales (f32)"), buffer_bytes(q.rows * q.groups()), true);
                }
            }
        }
    }
    for c in &program.constants {
        add("constants (f32)", buffer_bytes(c.data.len()), true);
    }
    for &bank in &plan.arena.banks {
        add("", bank as u64 * 4, false);
    }
    out.peak = out.weights + out.activations;
    out
}

/// The bytes one forward of `program` moves through memory, as planned: what
/// its steps read (parameters as the session holds them — stored dtypes and
/// scales for weights only matmuls read, f32 otherwise — and f32 activations)
/// and write (their outputs, straight into the arena). Views move nothing.
/// `scratch_copy` is what a kernel writing to a scratch buffer that is then
/// copied into the arena would add (a write and a read of every GPU output):
/// the runtime's scheme before arena banks.
pub fn traffic(program: &Program, plan: &Plan, checkpoint: Option<&Checkpoint>) -> super::Traffic {
    let mut out = super::Traffic::default();
    for step in plan.steps.iter().filter(|s| !s.alias) {
        let node = &program.nodes[step.node];
        for (i, name) in node.inputs.iter().enumerate() {
            let f32_len = program.shape(name).map_or(0, |s| s.iter().product::<usize>()) as u64 * 4;
            let Some(p) = program.parameters.iter().find(|p| &p.name == name) else {
                out.read += f32_len;
                continue;
            };
            let len = p.shape.iter().product::<usize>() as u64;
            let conv_weight = matches!(node.op, Op::Conv { .. }) && i == 1;
            out.read += match checkpoint.filter(|_| !conv_weight).and_then(|c| kept_as(program, c, name, &p.key)) {
                Some(Form::Half(_)) => len * 2,
                Some(Form::Quant(q)) => q.stored_bytes() as u64 + (q.rows * q.groups()) as u64 * 4,
                None => f32_len,
            };
        }
        let outputs = match step.fused {
            Some((a, _)) => &program.nodes[a].outputs,
            None => &node.outputs,
        };
        let written: u64 =
            outputs.iter().map(|o| program.shape(o).map_or(0, |s| s.iter().product::<usize>()) as u64 * 4).sum();
        out.written += written;
        if step.delegate == Delegate::Gpu {
            out.scratch_copy += 2 * written;
        }
    }
    out
}

impl Resident {
    /// The constants uploaded; parameters wait for their first use, and the
    /// arena's banks for a run (`Session::new` has checked each against the
    /// device's buffer limit).
    pub(super) async fn new(dev: &GpuDevice, program: &Program, plan: &Plan) -> Result<Resident> {
        let mut tensors = HashMap::new();
        for c in &program.constants {
            let buffer =
                dev.scoped(&format!("uploading constant {:?}", c.name), || dev.upload(&c.name, &c.data)).await?;
            let t = DeviceTensor { buffer: dev.track(buffer), words: c.data.len(), kept: None };
            #[cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))] // one thread in the browser
            tensors.insert(c.name.clone(), Arc::new(t));
        }
        Ok(Resident { banks: plan.arena.banks.clone(), arenas: Arenas::of(dev), tensors })
    }

    /// Runs every step; the program's inputs are in `inputs`, the outputs come back by value.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn run(
        &mut self,
        dev: &GpuDevice,
        program: &Program,
        plan: &Plan,
        checkpoint: Option<&Checkpoint>,
        inputs: &[(&str, &[f32])],
        profile: Option<&mut Vec<super::NodeTime>>,
    ) -> Result<Vec<Vec<f32>>> {
        let slot = |v: &str| plan.arena.slots.get(v).copied();
        let arenas = self.arenas.clone();
        let arena = arenas.lease(dev, &self.banks).await?;
        for (name, data) in inputs {
            let s = slot(name).expect("inputs have slots");
            dev.queue.write_buffer(&arena.banks[s.bank].buffer, s.offset as u64 * 4, bytemuck::cast_slice(data));
        }
        #[cfg(not(target_arch = "wasm32"))]
        let mut profile = profile;
        #[cfg(target_arch = "wasm32")]
        let _ = profile; // per-node timing is native-only
        let mut cmds = dev.commands();
        for (s, step) in plan.steps.iter().enumerate() {
            let node = &program.nodes[step.node];
            #[cfg(not(target_arch = "wasm32"))]
            let t0 = std::time::Instant::now();
            let outs = step_outputs(program, plan, s);
            if step.delegate == Delegate::Cpu {
                // Flush, bring the inputs to the host, run, write the outputs back.
                cmds.submit();
                let table = program.parameters.iter().find(|p| p.name == node.inputs[0]);
                let results = match table.filter(|_| node.op == Op::Embedding) {
                    Some(p) => {
                        let indices = host_value(&arena, dev, program, checkpoint, plan, &node.inputs[1]).await?;
                        vec![gather_rows(checkpoint.expect("checked in Session::new"), p, &indices).await?]
                    }
                    None => {
                        let mut host = Vec::new();
                        for name in &node.inputs {
                            host.push(host_value(&arena, dev, program, checkpoint, plan, name).await?);
                        }
                        let args: Vec<execute::Input> = node
                            .inputs
                            .iter()
                            .zip(&host)
                            .map(|(n, d)| (program.shape(n).expect("validated"), Operand::F32(d)))
                            .collect();
                        let lens: Vec<usize> =
                            outs.iter().map(|n| program.shape(n).expect("validated").iter().product()).collect();
                        execute::cpu(&node.op, &args, step.fused.map(|(_, a)| a), &lens)?
                    }
                };
                for (name, data) in outs.iter().zip(results) {
                    let s = slot(name).expect("outputs have slots");
                    dev.queue.write_buffer(
                        &arena.banks[s.bank].buffer,
                        s.offset as u64 * 4,
                        bytemuck::cast_slice(&data),
                    );
                }
                cmds = dev.commands();
            } else if !step.alias {
                for (i, name) in node.inputs.iter().enumerate() {
                    self.ensure_resident(dev, program, checkpoint, &node.op, i, name, &node.inputs).await?;
                }
                let mut views = Vec::with_capacity(node.inputs.len());
                let b_store = match node.inputs.get(1).and_then(|b| self.tensors.get(b)).and_then(|t| t.kept.as_ref()) {
                    None => BStore::F32,
                    Some(Kept::Half(h)) => BStore::Half(*h),
                    Some(Kept::Quant { scheme: Scheme::Int8, scales, len }) => {
                        BStore::Int8 { scales: View::whole(&scales.buffer, *len) }
                    }
                    Some(Kept::Quant { scheme: Scheme::Int4 { group }, scales, len }) => {
                        BStore::Int4 { scales: View::whole(&scales.buffer, *len), group: *group }
                    }
                };
                for (i, name) in node.inputs.iter().enumerate() {
                    let shape = program.shape(name).expect("validated");
                    let view = match slot(name) {
                        Some(sl) => arena.view(sl),
                        None => {
                            let key = if matches!(node.op, Op::Conv { .. }) && i == 1 {
                                format!("{name}#conv")
                            } else {
                                name.clone()
                            };
                            let t = &self.tensors[&key];
                            View::whole(&t.buffer.buffer, t.words)
                        }
                    };
                    views.push((shape, view));
                }
                // Straight into the outputs' slots (in banks no input is in).
                let out_views: Vec<View> =
                    outs.iter().map(|o| arena.view(slot(o).expect("outputs have slots"))).collect();
                let fused = step.fused.map(|(_, a)| a);
                execute::encode(dev, &mut cmds, &node.op, &views, b_store, fused, &out_views).await?;
            }
            #[cfg(not(target_arch = "wasm32"))]
            if let Some(times) = profile.as_deref_mut() {
                // Time each node on its own: submit and wait.
                cmds.submit();
                let _ = dev.device.poll(wgpu::PollType::wait_indefinitely());
                let ms = t0.elapsed().as_secs_f64() * 1e3;
                let kernel = super::step_kernel(Some(dev), program, step);
                times.push(super::NodeTime {
                    node: step.node,
                    kind: node.op.kind(),
                    kernel,
                    path: node.path.clone(),
                    ms,
                });
                cmds = dev.commands();
            }
        }
        cmds.submit();
        let mut results = Vec::new();
        for value in program.output_values() {
            results.push(host_value(&arena, dev, program, checkpoint, plan, value).await?);
        }
        Ok(results)
    }

    /// Uploads every parameter of the plan's GPU steps (see `Session::load_parameters`).
    pub(super) async fn load_all(
        &mut self,
        dev: &GpuDevice,
        program: &Program,
        plan: &Plan,
        checkpoint: Option<&Checkpoint>,
    ) -> Result<()> {
        for step in &plan.steps {
            if step.delegate == Delegate::Cpu || step.alias {
                continue;
            }
            let node = &program.nodes[step.node];
            for (i, name) in node.inputs.iter().enumerate() {
                self.ensure_resident(dev, program, checkpoint, &node.op, i, name, &node.inputs).await?;
            }
        }
        dev.check()
    }

    /// Uploads parameter `name` on first use (prepacked when it is a conv's weight).
    #[allow(clippy::too_many_arguments)]
    async fn ensure_resident(
        &mut self,
        dev: &GpuDevice,
        program: &Program,
        checkpoint: Option<&Checkpoint>,
        op: &Op,
        index: usize,
        name: &str,
        inputs: &[String],
    ) -> Result<()> {
        let conv_weight = matches!(op, Op::Conv { .. }) && index == 1;
        let key = if conv_weight { format!("{name}#conv") } else { name.to_string() };
        if program.shape(name).is_none() || self.tensors.contains_key(&key) {
            return Ok(());
        }
        let Some(p) = program.parameters.iter().find(|p| p.name == name) else {
            if conv_weight {
                return Err(Error::Gpu(format!(
                    "conv weight {name:?} is computed in the graph; the plan should run it on the CPU"
                )));
            }
            return Ok(()); // an arena value
        };
        let checkpoint = checkpoint.expect("checked in Session::new");
        let shared = shared_key(dev, checkpoint, &key);
        if let Some(t) = SHARED.with(|m| m.borrow().get(&shared).and_then(Weak::upgrade)) {
            self.tensors.insert(key, t);
            return Ok(());
        }
        #[cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))] // one thread in the browser
        let t = Arc::new(upload(dev, program, checkpoint, op, name, p, inputs, conv_weight).await?);
        SHARED.with(|m| {
            let mut m = m.borrow_mut();
            m.retain(|_, w| w.strong_count() > 0);
            m.insert(shared, Arc::downgrade(&t));
        });
        self.tensors.insert(key, t);
        Ok(())
    }

    /// Bytes of the arena's banks a run of this session uses (leased from the
    /// device's shared [`Arenas`]).
    pub(super) fn arena_bytes(&self) -> u64 {
        self.banks.iter().map(|&len| len as u64 * 4).sum()
    }

    /// Bytes of the device's shared arena banks held between runs (by every
    /// session on the device).
    pub(super) fn shared_arena_bytes(&self) -> u64 {
        self.arenas.bytes()
    }

    /// Bytes of the parameters and constants this session holds on the device
    /// (shared ones too).
    pub(super) fn parameter_bytes(&self) -> u64 {
        self.tensors.values().map(|t| t.bytes()).sum()
    }
}

/// A value's data on the host (from the arena, a constant, or the checkpoint).
async fn host_value(
    arena: &Lease<'_>,
    dev: &GpuDevice,
    program: &Program,
    checkpoint: Option<&Checkpoint>,
    plan: &Plan,
    name: &str,
) -> Result<Vec<f32>> {
    if let Some(s) = plan.arena.slots.get(name) {
        return dev.read_view(arena.view(*s)).await;
    }
    if let Some(c) = program.constants.iter().find(|c| c.name == name) {
        return Ok(c.data.clone());
    }
    let p = program.parameters.iter().find(|p| p.name == name).expect("validated");
    let mut data = vec![0f32; p.shape.iter().product()];
    checkpoint.expect("checked in Session::new").read_f32_dequantized(&p.key, &mut data).await?;
    Ok(data)
}

/// Parameter `p` (`name` in the program) on the device: prepacked when it is a
/// conv's weight, kept in its stored dtype when only matmuls read it, else f32.
#[allow(clippy::too_many_arguments)]
async fn upload(
    dev: &GpuDevice,
    program: &Program,
    checkpoint: &Checkpoint,
    op: &Op,
    name: &str,
    p: &crate::program::Parameter,
    inputs: &[String],
    conv_weight: bool,
) -> Result<DeviceTensor> {
    let len: usize = p.shape.iter().product();
    if conv_weight {
        // Repacked on the host for the conv kernel, so read whole.
        let mut data = vec![0f32; len];
        checkpoint.read_f32_dequantized(&p.key, &mut data).await?;
        let x = program.shape(&inputs[0]).expect("validated");
        let data = execute::prepack_conv(op, x, &p.shape, &data)?;
        let buffer = dev.scoped(&format!("uploading {name:?}"), || dev.upload(name, &data)).await?;
        return Ok(DeviceTensor { words: data.len(), buffer: dev.track(buffer), kept: None });
    }
    if let Some(form) = kept_as(program, checkpoint, name, &p.key) {
        // The stored bytes, two (16-bit), four (int8) or eight (int4) values per 32-bit
        // word, a window at a time; a trailing partial word waits for the next window
        // (writes are whole words).
        let words = len.div_ceil(form.per_word());
        let buffer = dev.scoped(&format!("allocating {name:?}"), || dev.storage(name, words)).await?;
        let (mut pending, mut written) = (Vec::new(), 0usize);
        checkpoint
            .stream(&p.key, READ_WINDOW, |bytes| {
                pending.extend_from_slice(bytes);
                let whole = pending.len() / 4 * 4;
                if whole > 0 {
                    dev.queue.write_buffer(&buffer, written as u64, &pending[..whole]);
                    written += whole;
                    pending.drain(..whole);
                }
                Ok(())
            })
            .await?;
        if !pending.is_empty() {
            pending.resize(4, 0);
            dev.queue.write_buffer(&buffer, written as u64, &pending);
        }
        let kept = match form {
            Form::Half(h) => Kept::Half(h),
            Form::Quant(q) => {
                let scales = checkpoint.read_scales(&q).await?;
                let len = scales.len();
                let scales = dev.scoped(&format!("uploading {name:?}'s scales"), || dev.upload(name, &scales)).await?;
                Kept::Quant { scheme: q.scheme, scales: dev.track(scales), len }
            }
        };
        return Ok(DeviceTensor { buffer: dev.track(buffer), words, kept: Some(kept) });
    }
    if checkpoint.quantized(&p.key).is_some() {
        // A quantized weight another op reads too: dequantized to f32 on the host, then uploaded.
        let mut data = vec![0f32; len];
        checkpoint.read_f32_dequantized(&p.key, &mut data).await?;
        let buffer = dev.scoped(&format!("uploading {name:?}"), || dev.upload(name, &data)).await?;
        return Ok(DeviceTensor { buffer: dev.track(buffer), words: len, kept: None });
    }
    // Straight into the GPU buffer, a window at a time.
    let buffer = dev.scoped(&format!("allocating {name:?}"), || dev.storage(name, len)).await?;
    checkpoint
        .read_f32_windows(&p.key, READ_WINDOW, |at, values| {
            dev.queue.write_buffer(&buffer, at as u64 * 4, bytemuck::cast_slice(values));
            Ok(())
        })
        .await?;
    Ok(DeviceTensor { buffer: dev.track(buffer), words: len, kept: None })
}

/// A gather from parameter `p`'s table where it lies (memory-mapped, or over
/// HTTP): only the rows the indices name are read, in their stored dtype (and
/// their scales, when quantized), then gathered as the CPU delegate does.
async fn gather_rows(checkpoint: &Checkpoint, p: &crate::program::Parameter, indices: &[f32]) -> Result<Vec<f32>> {
    let (rows, dim) = (p.shape[0], p.shape[1]);
    let spec = Gather { rows, dim, count: indices.len() };
    let picked: Vec<usize> = indices.iter().enumerate().map(|(i, &v)| spec.row(i, v)).collect::<Result<_>>()?;
    let t = checkpoint.get(&p.key)?;
    let row_bytes = usize::try_from(t.info.byte_len() / rows.max(1) as u64)
        .map_err(|_| Error::Invalid(format!("{}: rows too large", p.key)))?;
    // Held in f32 words, so f32 rows are aligned for the kernel.
    let mut words = vec![0f32; (picked.len() * row_bytes).div_ceil(4)];
    let bytes = &mut bytemuck::cast_slice_mut::<f32, u8>(&mut words)[..picked.len() * row_bytes];
    for (&r, out) in picked.iter().zip(bytes.chunks_exact_mut(row_bytes.max(1))) {
        checkpoint.read_bytes_at(&p.key, r as u64 * row_bytes as u64, out).await?;
    }
    let quant = checkpoint.quantized(&p.key);
    let mut scales = Vec::new();
    if let Some(q) = &quant {
        let groups = q.groups();
        scales.resize(picked.len() * groups, 0f32);
        for (&r, out) in picked.iter().zip(scales.chunks_exact_mut(groups.max(1))) {
            checkpoint.read_bytes_at(&q.scales, r as u64 * groups as u64 * 4, bytemuck::cast_slice_mut(out)).await?;
        }
    }
    let wide;
    let table = match super::stored_operand(t.info.dtype, bytes, quant.as_ref().map(|q| (q.scheme, scales.as_slice())))
    {
        Some(table) => table,
        None => {
            // Another float dtype (f64, f8): its rows widened.
            let mut v = vec![0f32; picked.len() * dim];
            crate::weights::convert::to_f32(t.info.dtype, bytes, &mut v)
                .map_err(|e| Error::Invalid(format!("{}: {e}", p.key)))?;
            wide = v;
            Operand::F32(&wide)
        }
    };
    let local = Gather { rows: picked.len(), dim, count: picked.len() };
    let order: Vec<f32> = (0..picked.len()).map(|i| i as f32).collect();
    crate::delegate::cpu::gather::gather(&local, table, &order)
}
