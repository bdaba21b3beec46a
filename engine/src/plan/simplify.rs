//! Rewrites that remove work the exporter leaves in a graph, on both
//! delegates, before planning: each gives the same values (bit for bit, but
//! for an identity affine keeping a −0 that `x·1 + 0` would make +0).
//!
//! - An `affine` of scale 1 and shift 0 (`x + 0.0`, e.g. diffusers' Wan VAE
//!   norms without a bias) becomes a reshape to its own shape: a view of its
//!   input, so nothing runs.
//! - An `expand` read only by broadcasting binary ops whose output shape is the
//!   same without it (`x / norm.expand_as(x)`) is dropped: the binary reads
//!   the small operand by broadcast instead of a materialised copy.

use std::collections::HashMap;

use crate::delegate::{Broadcast, Unary};
use crate::error::Result;
use crate::program::{Node, Op, Program};

/// `program` without identity affines and broadcast-only expands (itself when it has none).
pub fn simplify(program: &Program) -> Result<Program> {
    let nodes = &program.nodes;
    let outputs: std::collections::HashSet<&str> = program.output_values().iter().map(String::as_str).collect();
    let mut readers: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, n) in nodes.iter().enumerate() {
        for v in &n.inputs {
            readers.entry(v.as_str()).or_default().push(i);
        }
    }
    let shape = |v: &str| program.shape(v).map(<[usize]>::to_vec);
    // Expands to drop: value → the expand's input.
    let mut rename: HashMap<&str, &str> = HashMap::new();
    for n in nodes {
        let Op::Expand { .. } = n.op else { continue };
        let (small, big) = (n.inputs[0].as_str(), n.outputs[0].as_str());
        if outputs.contains(big) {
            continue;
        }
        let Some(readers) = readers.get(big) else { continue };
        let same = readers.iter().all(|&r| {
            let reader = &nodes[r];
            if !matches!(reader.op, Op::Binary(_)) {
                return false;
            }
            let operand = |v: &str| if v == big { shape(small) } else { shape(v) };
            let (Some(a), Some(b)) = (operand(&reader.inputs[0]), operand(&reader.inputs[1])) else { return false };
            Broadcast::new(&a, &b).is_ok_and(|bc| Some(bc.shape) == shape(&reader.outputs[0]))
        });
        if same {
            rename.insert(big, small);
        }
    }
    let identity =
        |op: &Op| matches!(op, Op::Unary { f: Unary::Identity, scale, shift } if *scale == 1.0 && *shift == 0.0);
    if rename.is_empty() && !nodes.iter().any(|n| identity(&n.op)) {
        return Ok(program.clone());
    }
    let mut out = Vec::with_capacity(nodes.len());
    for n in nodes {
        if matches!(n.op, Op::Expand { .. }) && rename.contains_key(n.outputs[0].as_str()) {
            continue;
        }
        let inputs = n.inputs.iter().map(|v| rename.get(v.as_str()).map_or(v.clone(), |s| s.to_string())).collect();
        let node = if identity(&n.op) {
            let shape = shape(&n.outputs[0]).expect("validated").into_iter().map(|d| d as isize).collect();
            Node { op: Op::Reshape { shape }, op_name: "reshape".into(), inputs, ..n.clone() }
        } else {
            Node { inputs, ..n.clone() }
        };
        out.push(node);
    }
    program.with_nodes(out)
}
