//! Token chunking: a transformer's feed-forward block — a linear widening
//! `[…, T, D]` to `[…, T, H]`, perhaps an activation, a linear back to `D` —
//! holds a `T × H` hidden value (Wan at 81 frames: 32,760 × 8960 floats,
//! 1.1 GiB). When that is over the activation budget, the block is rewritten
//! to run on chunks of tokens — split the input along T, the block per chunk,
//! concatenate — so the hidden value is one chunk's (diffusers'
//! `enable_forward_chunking` is the idea). Each token's row is computed by the
//! same kernels, so the result is the same. Attention needs no chunking here:
//! both delegates' kernels are flash-style, never holding a T × T score matrix.

use std::collections::HashMap;

use crate::error::Result;
use crate::program::{Node, Op, Program};

/// `program` with every feed-forward block whose hidden value is over `budget`
/// bytes run in chunks of tokens whose hidden values fit it (the program
/// itself when none is).
pub fn chunk_feed_forward(program: &Program, budget: u64) -> Result<Program> {
    let nodes = &program.nodes;
    let mut readers: HashMap<&str, usize> = HashMap::new();
    for n in nodes {
        for i in &n.inputs {
            *readers.entry(i.as_str()).or_default() += 1;
        }
    }
    for o in program.output_values() {
        *readers.entry(o.as_str()).or_default() += 1;
    }
    let only_reader = |v: &str, at: usize| readers.get(v) == Some(&1) && nodes[at].inputs.iter().any(|i| i == v);
    let bytes = |v: &str| program.shape(v).map_or(0, |s| s.iter().product::<usize>() as u64 * 4);
    // Blocks: (widening linear, activation node if any, narrowing linear).
    let mut blocks: Vec<(usize, Option<usize>, usize)> = Vec::new();
    let mut i = 0;
    while i + 1 < nodes.len() {
        let first = &nodes[i];
        let hidden = &first.outputs[0];
        let is_linear = |n: &Node| matches!(n.op, Op::Linear { .. });
        let tokens_dim = program.shape(hidden).map_or(0, <[usize]>::len);
        if !is_linear(first) || tokens_dim < 2 || bytes(hidden) <= budget {
            i += 1;
            continue;
        }
        let (act, last) = match &nodes[i + 1].op {
            Op::Unary { .. } if only_reader(hidden, i + 1) && i + 2 < nodes.len() => (Some(i + 1), i + 2),
            _ => (None, i + 1),
        };
        let into_last = act.map_or(hidden.as_str(), |a| nodes[a].outputs[0].as_str());
        if is_linear(&nodes[last]) && nodes[last].inputs[0] == into_last && only_reader(into_last, last) {
            blocks.push((i, act, last));
            i = last + 1;
        } else {
            i += 1;
        }
    }
    if blocks.is_empty() {
        return Ok(program.clone());
    }
    let mut out: Vec<Node> = Vec::with_capacity(nodes.len() + blocks.len() * 8);
    let mut next = blocks.iter().peekable();
    let mut i = 0;
    while i < nodes.len() {
        let Some(&&(first, act, last)) = next.peek().filter(|b| b.0 == i) else {
            out.push(nodes[i].clone());
            i += 1;
            continue;
        };
        next.next();
        let x = &nodes[first].inputs[0];
        let shape = program.shape(x).expect("validated");
        let dim = shape.len() - 2;
        let tokens = shape[dim];
        let hidden = program.shape(&nodes[first].outputs[0]).expect("validated");
        let per_token = hidden.iter().product::<usize>() as u64 * 4 / tokens.max(1) as u64;
        let chunk = usize::try_from(budget / per_token.max(1)).unwrap_or(usize::MAX).clamp(1, tokens);
        let sizes: Vec<usize> = (0..tokens).step_by(chunk).map(|t| chunk.min(tokens - t)).collect();
        let name = |v: &str, c: usize| format!("{v}#chunk{c}");
        let path = nodes[first].path.clone();
        out.push(Node {
            op: Op::Split { dim: dim as isize, sizes: sizes.clone() },
            op_name: "split".into(),
            inputs: vec![x.clone()],
            outputs: (0..sizes.len()).map(|c| name(x, c)).collect(),
            path: path.clone(),
        });
        let y = &nodes[last].outputs[0];
        for c in 0..sizes.len() {
            for &k in [Some(first), act, Some(last)].iter().flatten() {
                let n = &nodes[k];
                let mut inputs = n.inputs.clone();
                inputs[0] = name(&inputs[0], c);
                out.push(Node { inputs, outputs: vec![name(&n.outputs[0], c)], ..n.clone() });
            }
        }
        out.push(Node {
            op: Op::Cat { dim: dim as isize },
            op_name: "cat".into(),
            inputs: (0..sizes.len()).map(|c| name(y, c)).collect(),
            outputs: vec![y.clone()],
            path,
        });
        i = last + 1;
    }
    program.with_nodes(out)
}
