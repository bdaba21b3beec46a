//! The plan: decided once, before anything runs. Per node, which delegate
//! runs it and why, and what is fused into it; an arena offset for every
//! intermediate value, planned by liveness (greedy by size, as ExecuTorch
//! and TFLite do), so the peak memory is known up front; and the order in
//! which weights are first used, which is the order they are uploaded.

mod arena;
mod chunk;
mod simplify;

use std::collections::HashMap;

pub use arena::{ALIGN, Arena, Slot};
pub use chunk::chunk_feed_forward;
pub use simplify::simplify;

use crate::delegate::{Activation, Unary};
use crate::program::{Op, Program};

/// The activation budget of a feed-forward block's hidden value on the GPU.
/// Measured on Wan at 81 frames (docs/benchmarks.md): its 1120 MiB hidden value
/// in 9 chunks takes the plan's activations from 2115 to 1203 MiB, in 2 chunks
/// (half of lavapipe's 2 GiB buffers) it made them larger (2211 MiB) — the split
/// input and the chunks' outputs cost two more token-sized values, which only
/// many small chunks repay.
pub const FFN_CHUNK_BYTES: u64 = 128 << 20;

/// A second starting cap on the live bytes of a GPU arena bank, besides the
/// device's `max_buffer_size`: [`Plan::within`] plans with both and keeps the
/// smaller arena. Measured at 832×480 (docs/benchmarks.md): on Wan's chunked
/// transformer at 81 frames banks of at most 256 MiB took the activations from
/// 1571 MiB (banks up to lavapipe's 2 GiB) to 1203 MiB; on the VAE's tile
/// decoder they took them from 1217 to 1763 MiB (its values of up to 591 MiB
/// each got banks of their own).
pub const BANK_BYTES: u64 = 256 << 20;

/// A GPU session uploads a gather's parameter table only when the gather reads
/// a good part of it: at most this many table rows per index. A larger table
/// stays where it lies and its gathers run on the CPU delegate, reading only
/// the rows the indices name: umT5's token table (256,384 × 4,096, 4 GiB as
/// f32, over any storage binding) serves 512 rows a prompt, while each layer's
/// relative-bias table (32 rows) serves 512 × 512 lookups.
pub const GATHER_ROWS_PER_INDEX: usize = 4;

/// Where a node runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delegate {
    Gpu,
    Cpu,
}

/// One node of the plan.
#[derive(Debug, Clone)]
pub struct Step {
    /// Index into `program.nodes`.
    pub node: usize,
    pub delegate: Delegate,
    /// The kernel (WGSL file or CPU function) that runs it.
    pub kernel: &'static str,
    /// Why this delegate.
    pub reason: String,
    /// An activation node folded into this node's epilogue.
    pub fused: Option<(usize, Activation)>,
    /// A view (reshape, squeeze, unsqueeze) of a value in the arena: its output
    /// is its input's memory and nothing runs. A view of a parameter or
    /// constant, which have no arena slot, is a copy into the arena instead.
    pub alias: bool,
}

fn is_view(op: &Op) -> bool {
    matches!(op, Op::Reshape { .. } | Op::Unsqueeze { .. } | Op::Squeeze { .. })
}

/// The whole plan.
#[derive(Debug, Clone)]
pub struct Plan {
    pub steps: Vec<Step>,
    pub arena: Arena,
    /// Parameter names in the order of their first use.
    pub weight_order: Vec<String>,
    /// Bytes of all parameters as f32.
    pub weight_bytes: u64,
}

/// The kernel each kind of op runs on each delegate.
fn kernel(op: &Op, delegate: Delegate) -> &'static str {
    match (op, delegate) {
        (Op::Linear { .. } | Op::Matmul, Delegate::Gpu) => "matmul.wgsl",
        (Op::Conv { .. }, Delegate::Gpu) => "conv3d.wgsl",
        (Op::Attention { .. }, Delegate::Gpu) => "attention.wgsl",
        (Op::Unary { .. }, Delegate::Gpu) => "unary.wgsl",
        (Op::Binary(_), Delegate::Gpu) => "binary.wgsl",
        (Op::Softmax, Delegate::Gpu) => "softmax.wgsl",
        (Op::LayerNorm { .. } | Op::RmsNorm { .. } | Op::GroupNorm { .. }, Delegate::Gpu) => "norm.wgsl",
        (Op::Reduce { .. }, Delegate::Gpu) => "reduce.wgsl",
        (Op::Rotary { .. }, Delegate::Gpu) => "rotary.wgsl",
        (Op::Cast { .. }, Delegate::Gpu) => "cast.wgsl",
        (Op::Embedding, Delegate::Gpu) => "gather.wgsl",
        (Op::Reshape { .. } | Op::Unsqueeze { .. } | Op::Squeeze { .. }, Delegate::Gpu) => {
            "copy (a view of a parameter)"
        }
        (_, Delegate::Gpu) => "copy.wgsl",
        (Op::Linear { .. } | Op::Matmul, Delegate::Cpu) => "cpu::matmul",
        (Op::Conv { .. }, Delegate::Cpu) => "cpu::conv",
        (Op::Attention { .. }, Delegate::Cpu) => "cpu::attention",
        (Op::Unary { .. } | Op::Binary(_), Delegate::Cpu) => "cpu::elementwise",
        (Op::Softmax | Op::LayerNorm { .. } | Op::RmsNorm { .. } | Op::GroupNorm { .. } | Op::Reduce { .. }, _) => {
            "cpu::norm"
        }
        (Op::Rotary { .. }, Delegate::Cpu) => "cpu::rotary",
        (Op::Cast { .. }, Delegate::Cpu) => "half (host)",
        (Op::Embedding, Delegate::Cpu) => "cpu::gather",
        (_, Delegate::Cpu) => "cpu::layout",
    }
}

/// The activation an epilogue can take for a unary op, if any.
fn epilogue(op: &Op) -> Option<Activation> {
    match op {
        Op::Unary { f, scale, shift } if *scale == 1.0 && *shift == 0.0 => match f {
            Unary::Relu => Some(Activation::Relu),
            Unary::Silu => Some(Activation::Silu),
            Unary::GeluTanh => Some(Activation::GeluTanh),
            Unary::GeluErf => Some(Activation::GeluErf),
            _ => None,
        },
        _ => None,
    }
}

/// Whether `name` is not a program output and every node that reads it reads it
/// as an input `ok` allows.
fn read_only_as(program: &Program, name: &str, ok: impl Fn(&Op, usize) -> bool) -> bool {
    !program.output_values().iter().any(|o| o == name)
        && program.nodes.iter().all(|n| n.inputs.iter().enumerate().all(|(i, v)| v != name || ok(&n.op, i)))
}

/// Whether every node that reads `name` is a linear or a matmul reading it as
/// its weight (input 1), and it is not a program output: such a parameter stays
/// in its stored dtype (f16, bf16) on both delegates, widened by the matmul
/// kernels as they load it.
pub fn read_only_as_weight(program: &Program, name: &str) -> bool {
    read_only_as(program, name, |op, i| i == 1 && matches!(op, Op::Linear { .. } | Op::Matmul))
}

/// Whether the CPU delegate may read parameter `name` in its stored dtype
/// where it lies: it is read only as a matmul's weight ([`read_only_as_weight`])
/// or as a gather's table, and is not a program output.
pub fn read_in_place_on_host(program: &Program, name: &str) -> bool {
    read_only_as(program, name, |op, i| {
        (i == 1 && matches!(op, Op::Linear { .. } | Op::Matmul)) || (i == 0 && *op == Op::Embedding)
    })
}

impl Plan {
    /// Plans `program` for a GPU delegate when `gpu` names an adapter, else the CPU.
    pub fn new(program: &Program, gpu: Option<&str>) -> Plan {
        Plan::within(program, gpu, None)
    }

    /// `program` as it is planned for a GPU whose buffers hold `max_buffer`
    /// bytes: feed-forward blocks whose hidden value is over [`FFN_CHUNK_BYTES`]
    /// (or half the buffer size, if less) run in chunks of tokens
    /// ([`chunk_feed_forward`]); on both delegates, without the work
    /// [`simplify`] removes.
    pub fn fitted(program: Program, max_buffer: Option<u64>) -> crate::Result<Program> {
        let program = simplify(&program)?;
        match max_buffer {
            Some(max) => chunk_feed_forward(&program, FFN_CHUNK_BYTES.min(max / 2)),
            None => Ok(program),
        }
    }

    /// [`Plan::new`] for a GPU whose buffers hold at most `max_buffer` bytes:
    /// the arena is spread over as many banks as that needs (planned twice, with
    /// banks capped by the buffer size and by [`BANK_BYTES`], the smaller kept). Banks are chosen
    /// by live bytes, and placing values in a bank can leave gaps, so a bank
    /// that comes out over the limit is planned again with a lower cap (a
    /// single value over the limit stays over it: the runtime refuses that plan).
    pub fn within(program: &Program, gpu: Option<&str>, max_buffer: Option<u64>) -> Plan {
        let limit = max_buffer.filter(|_| gpu.is_some()).map(|b| usize::try_from(b / 4).unwrap_or(usize::MAX));
        let Some(limit) = limit else { return Plan::with_cap(program, gpu, None) };
        let fitting = |start: usize| {
            let (mut cap, mut plan) = (start, Plan::with_cap(program, gpu, Some(start)));
            for _ in 0..8 {
                if plan.arena.banks.iter().all(|&b| b <= limit) {
                    break;
                }
                cap -= cap / 4;
                plan = Plan::with_cap(program, gpu, Some(cap));
            }
            plan
        };
        // Whichever of the two starting caps plans the smaller arena.
        let wide = fitting(limit);
        let small = BANK_BYTES as usize / 4;
        if small >= limit {
            return wide;
        }
        let narrow = fitting(small);
        let fits = |p: &Plan| p.arena.banks.iter().all(|&b| b <= limit);
        match (fits(&wide), fits(&narrow)) {
            (true, true) if narrow.arena.len < wide.arena.len => narrow,
            (false, true) => narrow,
            _ => wide,
        }
    }

    fn with_cap(program: &Program, gpu: Option<&str>, cap: Option<usize>) -> Plan {
        let nodes = &program.nodes;
        // How many nodes read each value; program outputs count as readers.
        let mut reads: HashMap<&str, usize> = HashMap::new();
        for n in nodes {
            for i in &n.inputs {
                *reads.entry(i).or_default() += 1;
            }
        }
        for o in program.output_values() {
            *reads.entry(o).or_default() += 1;
        }
        let producer: HashMap<&str, usize> =
            nodes.iter().enumerate().flat_map(|(i, n)| n.outputs.iter().map(move |o| (o.as_str(), i))).collect();

        // Fusion: an activation whose only input is read only by it, made by a
        // linear or conv without an activation of its own, joins that kernel.
        let mut fused_into: HashMap<usize, (usize, Activation)> = HashMap::new();
        let mut absorbed = vec![false; nodes.len()];
        for (i, n) in nodes.iter().enumerate() {
            let Some(act) = epilogue(&n.op) else { continue };
            let Some(&p) = producer.get(n.inputs[0].as_str()) else { continue };
            let plain = matches!(
                nodes[p].op,
                Op::Linear { activation: Activation::None } | Op::Conv { activation: Activation::None, .. }
            );
            if plain && reads[n.inputs[0].as_str()] == 1 && !fused_into.contains_key(&p) {
                fused_into.insert(p, (i, act));
                absorbed[i] = true;
            }
        }

        // Values that live outside the arena: parameters, constants, and views of them.
        let outside: std::collections::HashSet<&str> = program
            .parameters
            .iter()
            .map(|p| p.name.as_str())
            .chain(program.constants.iter().map(|c| c.name.as_str()))
            .collect();
        let mut steps = Vec::new();
        for (i, n) in nodes.iter().enumerate() {
            if absorbed[i] {
                continue;
            }
            let alias = is_view(&n.op) && !outside.contains(n.inputs[0].as_str());
            if alias {
                steps.push(Step {
                    node: i,
                    delegate: if gpu.is_some() { Delegate::Gpu } else { Delegate::Cpu },
                    kernel: "view (no copy)",
                    reason: "a view of an arena value".into(),
                    fused: None,
                    alias,
                });
                continue;
            }
            let computed_conv_weight =
                matches!(n.op, Op::Conv { .. }) && !program.parameters.iter().any(|p| p.name == n.inputs[1]);
            let host_table = n.op == Op::Embedding && {
                let count: usize = program.shape(&n.inputs[1]).map_or(0, |s| s.iter().product());
                let table = program.parameters.iter().find(|p| p.name == n.inputs[0]);
                table.is_some_and(|p| p.shape[0] > GATHER_ROWS_PER_INDEX.saturating_mul(count))
            };
            let (delegate, reason) = match gpu {
                Some(_) if host_table => {
                    (Delegate::Cpu, "a gather of a few rows of a large table (read where it lies, not uploaded)".into())
                }
                Some(_) if computed_conv_weight => (
                    Delegate::Cpu,
                    "conv weights computed in the graph (the GPU kernel reads prepacked parameters)".into(),
                ),
                Some(name) => (Delegate::Gpu, format!("GPU kernel on {name}")),
                None => (Delegate::Cpu, "no GPU device".to_string()),
            };
            steps.push(Step {
                node: i,
                delegate,
                kernel: kernel(&n.op, delegate),
                reason,
                fused: fused_into.get(&i).copied(),
                alias,
            });
        }

        let arena = Arena::plan(program, &steps, gpu.is_some(), cap);
        let mut weight_order = Vec::new();
        let params: HashMap<&str, &crate::program::Parameter> =
            program.parameters.iter().map(|p| (p.name.as_str(), p)).collect();
        let mut seen = std::collections::HashSet::new();
        for s in &steps {
            for i in &nodes[s.node].inputs {
                if params.contains_key(i.as_str()) && seen.insert(i.as_str()) {
                    weight_order.push(i.clone());
                }
            }
        }
        let weight_bytes = program.parameters.iter().map(|p| 4 * p.shape.iter().product::<usize>() as u64).sum();
        Plan { steps, arena, weight_order, weight_bytes }
    }

    /// The nodes that run on the CPU, with the reason.
    pub fn cpu_fallbacks(&self) -> impl Iterator<Item = &Step> {
        self.steps.iter().filter(|s| s.delegate == Delegate::Cpu)
    }
}
