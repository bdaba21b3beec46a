//! The runtime: a [`Session`] holds a validated program, its plan, the
//! checkpoint its parameters come from and the device, and runs the program
//! as often as asked. Intermediate values live in the one arena the plan
//! sized — a host buffer on the CPU delegate, device buffers on the GPU one
//! ([`resident`]: banks leased for each run from those the device's sessions
//! share) — and parameters are read from the checkpoint on first use
//! and kept (on the device, for GPU sessions: pipelines and weights stay resident).

mod execute;
mod resident;

pub use resident::{device_bytes, traffic};

use std::collections::HashMap;

use crate::delegate::DeviceChoice;
use crate::delegate::gpu::GpuDevice;
use crate::delegate::{Half, Operand};
use crate::error::{Error, Result};
use crate::plan::{self, Plan};
use crate::program::{Element, MAX_EXACT_INTEGER, Op, Program, ValueInfo};
use crate::weights::Checkpoint;
use crate::weights::dtype::Dtype;
use crate::weights::quant::Scheme;

/// How a session runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    pub device: DeviceChoice,
    /// Time every node (natively).
    pub profile: bool,
}

/// A named output with its shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Time spent in one node, from the last run with `profile`.
#[derive(Debug, Clone)]
pub struct NodeTime {
    pub node: usize,
    pub kind: &'static str,
    /// The kernel that ran ([`step_kernel`]).
    pub kernel: String,
    pub path: String,
    pub ms: f64,
}

/// The kernel `step` of `program` runs: on the GPU (`dev`), the file and
/// configuration the tuning table gives this adapter (e.g. `matmul_sg8.wgsl
/// (8 subgroups per workgroup)` on lavapipe) for the ops whose kernel depends
/// on it; otherwise the plan's name for it.
pub fn step_kernel(dev: Option<&GpuDevice>, program: &Program, step: &plan::Step) -> String {
    let node = &program.nodes[step.node];
    let tuned = dev.filter(|_| step.delegate == plan::Delegate::Gpu).and_then(|dev| {
        let shapes: Option<Vec<&[usize]>> = node.inputs.iter().map(|i| program.shape(i)).collect();
        execute::gpu_kernel(dev, &node.op, &shapes?, step.fused.map(|(_, a)| a))
    });
    tuned.unwrap_or_else(|| step.kernel.to_string())
}

/// The tuner's examples in `program` ([`execute::tuning_example`]): its
/// matmuls, linears and attentions at their shapes, in program order.
pub fn tuning_examples(program: &Program) -> Vec<crate::delegate::gpu::tune::Example> {
    program
        .nodes
        .iter()
        .filter_map(|node| {
            let shapes: Option<Vec<&[usize]>> = node.inputs.iter().map(|i| program.shape(i)).collect();
            execute::tuning_example(&node.op, &shapes?)
        })
        .collect()
}

/// Device memory a GPU session of a program takes ([`device_bytes`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceBytes {
    /// Parameters and constants.
    pub weights: u64,
    /// The same, by the dtype they are held in.
    pub weights_by_dtype: std::collections::BTreeMap<String, u64>,
    /// The arena's banks.
    pub activations: u64,
    /// All of it at once (everything stays resident).
    pub peak: u64,
    /// The largest single buffer (against the device's `max_buffer_size`).
    pub largest_buffer: u64,
}

/// The bytes a forward moves ([`traffic`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Read by the steps: parameters as held, constants and activations.
    pub read: u64,
    /// Written by the steps: their outputs.
    pub written: u64,
    /// What copying every GPU output from a scratch buffer would add.
    pub scratch_copy: u64,
}

/// The CPU delegate's arena of `len` floats: an error, not an abort, when the
/// memory cannot be had (a plan past the address space, on wasm32 past 4 GiB).
fn host_arena(len: usize) -> Result<Vec<f32>> {
    let mut arena = Vec::new();
    len.checked_mul(4)
        .and_then(|_| arena.try_reserve_exact(len).ok())
        .ok_or_else(|| Error::Invalid(format!("the plan's arena of {len} floats cannot be allocated here")))?;
    arena.resize(len, 0.0);
    Ok(arena)
}

/// An integer input's values: whole numbers within f32's exact range and, where
/// an `embedding` reads the input as its indices, rows of the table (so no GPU
/// kernel meets an index it could only clamp).
fn check_integers(program: &Program, info: &ValueInfo, data: &[f32]) -> Result<()> {
    let rows = program
        .nodes
        .iter()
        .filter(|n| n.op == Op::Embedding && n.inputs[1] == info.name)
        .filter_map(|n| program.shape(&n.inputs[0]).map(|s| s[0]))
        .min();
    for (i, &v) in data.iter().enumerate() {
        let whole = v.fract() == 0.0 && v.abs() <= MAX_EXACT_INTEGER;
        if !whole || rows.is_some_and(|r| v < 0.0 || v >= r as f32) {
            let want = match rows {
                Some(r) => format!("a whole number in 0..{r} (the rows of the table it indexes)"),
                None => format!("a whole number of magnitude at most {MAX_EXACT_INTEGER}"),
            };
            return Err(Error::Invalid(format!("input {:?}: value {i} is {v}, not {want}", info.name)));
        }
    }
    Ok(())
}

/// A weight's stored bytes (and its scales, when quantized) as the CPU kernels
/// read them; `None` for another dtype, or f32 bytes not aligned to 4.
fn stored_operand<'a>(dtype: Dtype, bytes: &'a [u8], scales: Option<(Scheme, &'a [f32])>) -> Option<Operand<'a>> {
    Some(match (Half::of(dtype), scales) {
        (Some(half), _) => Operand::Half(half, bytes),
        (None, Some((Scheme::Int8, scales))) => Operand::Int8 { q: bytes, scales },
        (None, Some((Scheme::Int4 { group }, scales))) => Operand::Int4 { q: bytes, scales, group },
        (None, None) if dtype == Dtype::F32 => Operand::F32(bytemuck::try_cast_slice(bytes).ok()?),
        (None, None) => return None,
    })
}

/// A parameter on the host, as the CPU delegate reads it.
enum HostParam {
    /// Read where it lies in the checkpoint (a memory map, bytes in memory), in
    /// its stored dtype: no copy (a quantized weight's scales are read in).
    InPlace { scales: Option<(Scheme, Vec<f32>)> },
    /// Its stored f16/bf16/int8/int4 bytes, read into memory (a checkpoint over HTTP).
    Stored { bytes: Vec<u8>, scales: Option<(Scheme, Vec<f32>)> },
    /// Widened to f32: read by an op other than a matmul's weight, or f32 not
    /// aligned (or not in memory) where it lies.
    Wide(Vec<f32>),
}

impl HostParam {
    fn bytes(&self) -> u64 {
        let scales = |s: &Option<(Scheme, Vec<f32>)>| s.as_ref().map_or(0, |(_, s)| s.len() as u64 * 4);
        match self {
            HostParam::InPlace { scales: s } => scales(s),
            HostParam::Stored { bytes, scales: s } => bytes.len() as u64 + scales(s),
            HostParam::Wide(v) => v.len() as u64 * 4,
        }
    }
}

pub struct Session {
    program: Program,
    plan: Plan,
    checkpoint: Option<Checkpoint>,
    gpu: Option<std::sync::Arc<GpuDevice>>,
    device: String,
    weights: HashMap<String, HostParam>,
    constants: HashMap<String, usize>,
    /// The arena on the host (CPU runs).
    arena: Vec<f32>,
    /// The arena's plan, weights and constants on the device (GPU runs).
    resident: Option<resident::Resident>,
    #[cfg_attr(target_arch = "wasm32", allow(dead_code))] // profiling is native-only
    options: Options,
    profile: Vec<NodeTime>,
    /// CPU runs, when weights are released after use
    /// ([`Session::release_weights_after_use`]): per step, the checkpoint keys of
    /// the parameters it is the last step to read.
    release_after: Option<Vec<Vec<String>>>,
}

impl Session {
    /// Opens the device, plans the program, and checks that the checkpoint
    /// holds every parameter with the program's shape (nothing is read yet).
    pub async fn new(program: Program, checkpoint: Option<Checkpoint>, options: Options) -> Result<Session> {
        for p in &program.parameters {
            let ckpt = checkpoint
                .as_ref()
                .ok_or_else(|| Error::Program(format!("parameter {:?} needs a checkpoint (--weights)", p.key)))?;
            let shape = ckpt.logical_shape(&p.key)?;
            if shape != p.shape {
                return Err(Error::Program(format!(
                    "parameter {:?}: the checkpoint has shape {shape:?}, the program expects {:?}",
                    p.key, p.shape
                )));
            }
        }
        let (gpu, device) = options.device.open().await?;
        let program = Plan::fitted(program, gpu.as_ref().map(|d| d.device.limits().max_buffer_size))?;
        let plan = Plan::within(
            &program,
            gpu.as_ref().map(|d| d.info.name.as_str()),
            gpu.as_ref().map(|d| d.device.limits().max_buffer_size),
        );
        let constants = program.constants.iter().enumerate().map(|(i, c)| (c.name.clone(), i)).collect();
        if let Some(dev) = &gpu {
            // Limits first: the plan's largest buffer against the device's, before any upload.
            let planned = device_bytes(&program, &plan, checkpoint.as_ref());
            let max = dev.device.limits().max_buffer_size;
            if planned.largest_buffer > max {
                return Err(Error::Gpu(format!(
                    "the plan needs a {}-byte buffer (weights {} bytes, activations {} bytes in all), over {}'s \
                     {max}-byte buffer limit",
                    planned.largest_buffer, planned.weights, planned.activations, dev.info.name
                )));
            }
        }
        #[cfg(not(target_arch = "wasm32"))]
        if let Some(dev) = &gpu {
            crate::delegate::gpu::tune::at_first_use(dev, &tuning_examples(&program)).await?;
        }
        let resident = match &gpu {
            Some(dev) => Some(resident::Resident::new(dev, &program, &plan).await?),
            None => None,
        };
        Ok(Session {
            arena: if gpu.is_none() { host_arena(plan.arena.len)? } else { Vec::new() },
            resident,
            program,
            plan,
            checkpoint,
            gpu,
            device,
            weights: HashMap::new(),
            constants,
            options,
            profile: Vec::new(),
            release_after: None,
        })
    }

    /// CPU runs of a model that is run once or twice and then dropped (a text
    /// encoder): after the last step of a run that reads a parameter, its
    /// memory-mapped pages are handed back to the operating system
    /// ([`Checkpoint::release`]), so the process's resident memory holds about
    /// one layer's weights rather than the model's. A later run reads them
    /// again (from the page cache). Off by default; GPU sessions ignore it.
    pub fn release_weights_after_use(&mut self, on: bool) {
        self.release_after = on.then(|| {
            let keys: HashMap<&str, &str> =
                self.program.parameters.iter().map(|p| (p.name.as_str(), p.key.as_str())).collect();
            let mut last: HashMap<&str, usize> = HashMap::new();
            for (s, step) in self.plan.steps.iter().enumerate() {
                for name in &self.program.nodes[step.node].inputs {
                    if let Some(&key) = keys.get(name.as_str()) {
                        last.insert(key, s);
                    }
                }
            }
            let mut per_step = vec![Vec::new(); self.plan.steps.len()];
            last.into_iter().for_each(|(key, s)| per_step[s].push(key.to_string()));
            per_step
        });
    }

    pub fn program(&self) -> &Program {
        &self.program
    }

    pub fn checkpoint(&self) -> Option<&Checkpoint> {
        self.checkpoint.as_ref()
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Which delegate runs, and why.
    pub fn device(&self) -> &str {
        &self.device
    }

    /// Bytes the runtime allocated for intermediate values (the arena, on
    /// the device for GPU sessions).
    pub fn arena_bytes(&self) -> u64 {
        match &self.resident {
            Some(r) => r.arena_bytes(),
            None => self.arena.len() as u64 * 4,
        }
    }

    /// Bytes of parameters and constants held on the device (0 for CPU
    /// sessions, which read parameters from the checkpoint). Weights stored as
    /// f16 that only linears and matmuls read stay f16 there: half the bytes.
    pub fn gpu_parameter_bytes(&self) -> u64 {
        self.resident.as_ref().map_or(0, |r| r.parameter_bytes())
    }

    /// Bytes of the arena's banks a run uses on the device (0 for CPU
    /// sessions): leased, for the run, from the banks the device's sessions
    /// share ([`Session::gpu_shared_arena_bytes`]).
    pub fn gpu_activation_bytes(&self) -> u64 {
        self.resident.as_ref().map_or(0, |r| r.arena_bytes())
    }

    /// Bytes of the arena banks the sessions on this session's device share,
    /// held between runs: bank `i` as large as the largest bank `i` of any
    /// session that has run, so sessions that run one after another (a
    /// pipeline's stages, a tiled VAE's decoders) need the largest arena, not
    /// the sum. 0 before the first run and for CPU sessions; freed with the
    /// last GPU session on the device.
    pub fn gpu_shared_arena_bytes(&self) -> u64 {
        self.resident.as_ref().map_or(0, |r| r.shared_arena_bytes())
    }

    /// Bytes of parameters the CPU delegate holds in memory: 0 for parameters
    /// read where they lie (a memory-mapped or in-memory checkpoint); a weight
    /// stored as f16/bf16 is never widened to f32 whole.
    pub fn host_parameter_bytes(&self) -> u64 {
        self.weights.values().map(HostParam::bytes).sum()
    }

    /// Per-node times of the last run with `profile`.
    pub fn profile(&self) -> &[NodeTime] {
        &self.profile
    }

    /// Reads every parameter the plan uses now — onto the device for GPU
    /// steps, into memory for CPU ones — rather than on first use in [`run`]
    /// (a pipeline loads this way, so its download happens, with its progress,
    /// when it is opened).
    ///
    /// [`run`]: Session::run
    pub async fn load_parameters(&mut self) -> Result<()> {
        if let (Some(dev), Some(resident)) = (&self.gpu, &mut self.resident) {
            return resident.load_all(dev, &self.program, &self.plan, self.checkpoint.as_ref()).await;
        }
        let names: Vec<String> =
            self.plan.steps.iter().flat_map(|s| self.program.nodes[s.node].inputs.iter().cloned()).collect();
        self.load(&names).await
    }

    /// Reads the parameters `names` that are not loaded yet.
    async fn load(&mut self, names: &[String]) -> Result<()> {
        for name in names {
            if self.weights.contains_key(name) {
                continue;
            }
            let Some(p) = self.program.parameters.iter().find(|p| &p.name == name) else { continue };
            let ckpt = self.checkpoint.as_ref().expect("checked in new");
            let dtype = ckpt.get(&p.key)?.info.dtype;
            let quant = ckpt.quantized(&p.key);
            // Kept as stored: 16-bit and quantized weights that only matmuls read.
            let keep =
                (Half::of(dtype).is_some() || quant.is_some()) && plan::read_in_place_on_host(&self.program, name);
            let in_place = ckpt.in_memory(&p.key)?;
            let aligned_f32 =
                dtype == Dtype::F32 && in_place.is_some_and(|b| bytemuck::try_cast_slice::<u8, f32>(b).is_ok());
            let scales = match quant.filter(|_| keep) {
                Some(q) => Some((q.scheme, ckpt.read_scales(&q).await?)),
                None => None,
            };
            let param = if (keep && in_place.is_some()) || aligned_f32 {
                HostParam::InPlace { scales }
            } else if keep {
                let mut bytes = vec![0u8; ckpt.get(&p.key)?.info.byte_len() as usize];
                ckpt.read_bytes(&p.key, &mut bytes).await?;
                HostParam::Stored { bytes, scales }
            } else {
                let mut data = vec![0f32; p.shape.iter().product()];
                ckpt.read_f32_dequantized(&p.key, &mut data).await?;
                HostParam::Wide(data)
            };
            self.weights.insert(name.clone(), param);
        }
        Ok(())
    }

    /// Parameter `name` (loaded) as the CPU kernels read it.
    fn parameter(&self, name: &str) -> Result<Operand<'_>> {
        let key = &self.program.parameters.iter().find(|p| p.name == name).expect("a parameter").key;
        let ckpt = self.checkpoint.as_ref().expect("checked in new");
        let dtype = ckpt.get(key)?.info.dtype;
        let (bytes, scales) = match &self.weights[name] {
            HostParam::Wide(v) => return Ok(Operand::F32(v)),
            HostParam::InPlace { scales } => (ckpt.in_memory(key)?.unwrap_or_default(), scales),
            HostParam::Stored { bytes, scales } => (bytes.as_slice(), scales),
        };
        let scales = scales.as_ref().map(|(scheme, s)| (*scheme, s.as_slice()));
        stored_operand(dtype, bytes, scales)
            .ok_or_else(|| Error::Invalid(format!("parameter {name:?}: {dtype} data not readable where it lies")))
    }

    /// Runs the program on `inputs` (by input name); returns `out0`, `out1`, ….
    pub async fn run(&mut self, inputs: &[(&str, &[f32])]) -> Result<Vec<Tensor>> {
        let mut ordered: Vec<(&str, &[f32])> = Vec::new();
        for info in &self.program.inputs {
            let (_, data) = inputs
                .iter()
                .find(|(n, _)| *n == info.name)
                .ok_or_else(|| Error::Invalid(format!("input {:?} is missing", info.name)))?;
            let want: usize = info.shape.iter().product();
            if data.len() != want {
                return Err(Error::Invalid(format!(
                    "input {:?}: {} values, expected {want} for shape {:?}",
                    info.name,
                    data.len(),
                    info.shape
                )));
            }
            if info.element == Element::Integer {
                check_integers(&self.program, info, data)?;
            }
            ordered.push((info.name.as_str(), data));
        }
        if let Some((n, _)) = inputs.iter().find(|(n, _)| !self.program.inputs.iter().any(|i| i.name == *n)) {
            return Err(Error::Invalid(format!("the program has no input {n:?}")));
        }
        self.profile.clear();
        if let (Some(dev), Some(resident)) = (&self.gpu, &mut self.resident) {
            let profile = if self.options.profile { Some(&mut self.profile) } else { None };
            let data =
                resident.run(dev, &self.program, &self.plan, self.checkpoint.as_ref(), &ordered, profile).await?;
            return Ok(self
                .program
                .outputs
                .iter()
                .zip(data)
                .map(|(info, data)| Tensor { name: info.name.clone(), shape: info.shape.clone(), data })
                .collect());
        }
        for (name, data) in &ordered {
            let slot = self.plan.arena.slots[*name];
            self.arena[slot.offset..][..slot.len].copy_from_slice(data);
        }
        for s in 0..self.plan.steps.len() {
            let step = self.plan.steps[s].clone();
            let node = &self.program.nodes[step.node];
            let inputs_needed: Vec<String> = node.inputs.clone();
            self.load(&inputs_needed).await?;
            #[cfg(not(target_arch = "wasm32"))]
            let t0 = std::time::Instant::now();
            let node = &self.program.nodes[step.node];
            // Every arena slice below comes from this one pointer: the inputs'
            // read-only, the output's (where a kernel writes in place) writable,
            // and the plan gives a step's output a slot apart from its inputs'
            // (their lifetimes meet at this step), checked again here.
            let base = self.arena.as_mut_ptr();
            let mut args = Vec::with_capacity(node.inputs.len());
            let mut read = Vec::new();
            if !step.alias {
                for name in &node.inputs {
                    let shape = self.program.shape(name).expect("validated");
                    let data = if let Some(slot) = self.plan.arena.slots.get(name) {
                        read.push(slot.offset..slot.offset + slot.len);
                        // SAFETY: the slot lies inside the arena (planned for its length).
                        Operand::F32(unsafe { std::slice::from_raw_parts(base.add(slot.offset), slot.len) })
                    } else if let Some(&c) = self.constants.get(name) {
                        Operand::F32(&self.program.constants[c].data)
                    } else {
                        self.parameter(name)?
                    };
                    args.push((shape, data));
                }
                let fused = step.fused.map(|(_, a)| a);
                let out_names = match step.fused {
                    Some((a, _)) => &self.program.nodes[a].outputs,
                    None => &node.outputs,
                };
                let apart =
                    |s: &crate::plan::Slot| read.iter().all(|r| s.offset + s.len <= r.start || r.end <= s.offset);
                let slots: Vec<crate::plan::Slot> = out_names.iter().map(|n| self.plan.arena.slots[n]).collect();
                let disjoint = slots.iter().enumerate().all(|(i, a)| {
                    apart(a) && slots[..i].iter().all(|b| a.offset + a.len <= b.offset || b.offset + b.len <= a.offset)
                });
                if disjoint {
                    // SAFETY: every slot lies inside the arena, apart from every
                    // input read above and from each other.
                    let mut outs: Vec<&mut [f32]> = slots
                        .iter()
                        .map(|o| unsafe { std::slice::from_raw_parts_mut(base.add(o.offset), o.len) })
                        .collect();
                    execute::cpu_into(&node.op, &args, fused, &mut outs)?;
                } else {
                    let lens: Vec<usize> = slots.iter().map(|s| s.len).collect();
                    let outs = execute::cpu(&node.op, &args, fused, &lens)?;
                    for (slot, data) in slots.iter().zip(outs) {
                        // SAFETY: the slot lies inside the arena; no input slice is used after this.
                        unsafe { std::slice::from_raw_parts_mut(base.add(slot.offset), slot.len) }
                            .copy_from_slice(&data);
                    }
                }
            }
            if let (Some(ckpt), Some(release)) = (&self.checkpoint, &self.release_after) {
                release[s].iter().try_for_each(|key| ckpt.release(key))?;
            }
            #[cfg(not(target_arch = "wasm32"))]
            if self.options.profile {
                let node = &self.program.nodes[step.node];
                let ms = t0.elapsed().as_secs_f64() * 1e3;
                let kernel = step.kernel.to_string();
                self.profile.push(NodeTime {
                    node: step.node,
                    kind: node.op.kind(),
                    kernel,
                    path: node.path.clone(),
                    ms,
                });
            }
        }
        let values: Vec<String> = self.program.output_values().to_vec();
        self.load(&values).await?; // an output may be a parameter itself
        let mut outputs = Vec::new();
        for (info, value) in self.program.outputs.iter().zip(&values) {
            let data = if let Some(slot) = self.plan.arena.slots.get(value) {
                self.arena[slot.offset..][..slot.len].to_vec()
            } else if let Some(&c) = self.constants.get(value) {
                self.program.constants[c].data.clone()
            } else {
                match self.parameter(value)? {
                    Operand::F32(v) => v.to_vec(),
                    Operand::Half(..) | Operand::Int8 { .. } | Operand::Int4 { .. } => {
                        return Err(Error::Program(format!("output {value:?} was loaded in its stored dtype")));
                    }
                }
            };
            outputs.push(Tensor { name: info.name.clone(), shape: info.shape.clone(), data });
        }
        Ok(outputs)
    }
}
