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
//! - A node that repeats an earlier one (the same op on the same inputs, e.g.
//!   every Wan block slicing the same cos and sin tables) is computed once:
//!   its readers read the earlier node's outputs ([`share_repeats`]).
//! - Rotary embedding written out as tensor ops (diffusers' Wan: reshape to
//!   pairs, split, two squeezes, four products, a difference and a sum, two
//!   unsqueezes, a cat and a reshape back; ten dispatches) becomes one `rotary`
//!   op over the same tables ([`fuse_rotary`]).
//! - A modulation after a norm without affine parameters (adaLN: `norm(x) ·
//!   scale + shift`, with `scale` and `shift` one value per channel) becomes the
//!   norm's own weight and bias ([`fuse_modulation`]): one dispatch instead of
//!   three, the same arithmetic in the same order.

use std::collections::{HashMap, HashSet};

use crate::delegate::{Binary, Broadcast, Unary};
use crate::error::Result;
use crate::program::shape::axis;
use crate::program::{Node, Op, Program};

/// `program` without identity affines and broadcast-only expands, with
/// rotary chains and modulated norms fused (itself when it has none).
pub fn simplify(program: &Program) -> Result<Program> {
    let program = drop_leftovers(program)?;
    let program = share_repeats(&program)?;
    let program = fuse_rotary(&program)?;
    fuse_modulation(&program)
}

fn drop_leftovers(program: &Program) -> Result<Program> {
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

/// Every node that repeats an earlier one — the same op and attributes on the
/// same inputs — dropped, its readers reading the earlier one's outputs (every
/// op is a pure function of its inputs). A node whose output is a program
/// output stays.
pub fn share_repeats(program: &Program) -> Result<Program> {
    let outputs: HashSet<&str> = program.output_values().iter().map(String::as_str).collect();
    let mut rename: HashMap<String, String> = HashMap::new();
    let mut seen: HashMap<Vec<String>, Vec<usize>> = HashMap::new();
    let mut out: Vec<Node> = Vec::with_capacity(program.nodes.len());
    for n in &program.nodes {
        let inputs: Vec<String> = n.inputs.iter().map(|v| rename.get(v).unwrap_or(v).clone()).collect();
        let same = seen.get(&inputs).and_then(|earlier| {
            earlier.iter().map(|&j| &out[j]).find(|e| e.op == n.op && e.outputs.len() == n.outputs.len())
        });
        match same {
            Some(e) if !n.outputs.iter().any(|v| outputs.contains(v.as_str())) => {
                for (v, w) in n.outputs.iter().zip(&e.outputs) {
                    rename.insert(v.clone(), w.clone());
                }
            }
            _ => {
                seen.entry(inputs.clone()).or_default().push(out.len());
                out.push(Node { inputs, ..n.clone() });
            }
        }
    }
    if rename.is_empty() {
        return Ok(program.clone());
    }
    program.with_nodes(out)
}

/// Who defines and who reads each value of a program.
struct Graph<'p> {
    program: &'p Program,
    readers: HashMap<&'p str, Vec<usize>>,
    producer: HashMap<&'p str, usize>,
    outputs: HashSet<&'p str>,
}

impl<'p> Graph<'p> {
    fn new(program: &'p Program) -> Graph<'p> {
        let mut readers: HashMap<&str, Vec<usize>> = HashMap::new();
        let mut producer = HashMap::new();
        for (i, n) in program.nodes.iter().enumerate() {
            for v in &n.inputs {
                readers.entry(v.as_str()).or_default().push(i);
            }
            for v in &n.outputs {
                producer.insert(v.as_str(), i);
            }
        }
        let outputs = program.output_values().iter().map(String::as_str).collect();
        Graph { program, readers, producer, outputs }
    }

    fn node(&self, i: usize) -> &'p Node {
        &self.program.nodes[i]
    }

    fn shape(&self, v: &str) -> &'p [usize] {
        self.program.shape(v).expect("a validated program")
    }

    /// The one node that reads `v`, if exactly one does and `v` is not a program output.
    fn only_reader(&self, v: &str) -> Option<usize> {
        match self.readers.get(v).map(Vec::as_slice) {
            Some(&[r]) if !self.outputs.contains(v) => Some(r),
            _ => None,
        }
    }

    /// The nodes that read `v` (none if `v` is a program output, which must stay).
    fn internal_readers(&self, v: &str) -> &[usize] {
        if self.outputs.contains(v) { &[] } else { self.readers.get(v).map_or(&[], Vec::as_slice) }
    }

    /// A name not yet used in the program, from `base`.
    fn fresh(&self, base: &str, taken: &mut HashSet<String>) -> String {
        let mut name = base.to_string();
        let mut i = 1;
        while self.program.shape(&name).is_some() || taken.contains(&name) {
            name = format!("{base}.{i}");
            i += 1;
        }
        taken.insert(name.clone());
        name
    }
}

/// Rewrites nodes by index: `remove` go, `at[i]` stand where node `i` stood.
fn rewrite(program: &Program, remove: &HashSet<usize>, mut at: HashMap<usize, Vec<Node>>) -> Result<Program> {
    let mut out = Vec::with_capacity(program.nodes.len());
    for (i, n) in program.nodes.iter().enumerate() {
        if let Some(nodes) = at.remove(&i) {
            out.extend(nodes);
        } else if !remove.contains(&i) {
            out.push(n.clone());
        }
    }
    program.with_nodes(out)
}

fn reshape_node(input: &str, output: String, shape: &[usize], path: &str) -> Node {
    Node {
        op: Op::Reshape { shape: shape.iter().map(|&d| d as isize).collect() },
        op_name: "reshape".into(),
        inputs: vec![input.to_string()],
        outputs: vec![output],
        path: path.to_string(),
    }
}

/// The other operand of binary node `n` of kind `op` that reads `v` once.
fn other_operand<'a>(n: &'a Node, op: Binary, v: &str) -> Option<&'a str> {
    match (&n.op, n.inputs.as_slice()) {
        (Op::Binary(b), [x, y]) if *b == op && x != y => {
            if x == v {
                Some(y)
            } else if y == v {
                Some(x)
            } else {
                None
            }
        }
        _ => None,
    }
}

/// The rotary chain that starts at split node `split`, as (the nodes it is
/// made of, x, cos table, sin table, the value it ends in, its last node).
struct RotaryChain<'p> {
    nodes: Vec<usize>,
    x: &'p str,
    cos: &'p str,
    sin: &'p str,
    out: &'p str,
    last: usize,
}

fn rotary_chain<'p>(g: &Graph<'p>, split: usize) -> Option<RotaryChain<'p>> {
    let s = g.node(split);
    let Op::Split { dim, sizes } = &s.op else { return None };
    let pairs = s.inputs[0].as_str();
    let ps = g.shape(pairs);
    let r = ps.len();
    if sizes != &[1, 1] || r < 2 || axis(*dim, r) != Some(r - 1) || ps[r - 1] != 2 {
        return None;
    }
    // x [..., d] reshaped to [..., d / 2, 2], read only by the split.
    let to_pairs = *g.producer.get(pairs)?;
    let rp = g.node(to_pairs);
    let x = rp.inputs.first()?.as_str();
    let xs = g.shape(x);
    if !matches!(rp.op, Op::Reshape { .. })
        || g.only_reader(pairs) != Some(split)
        || xs.len() != r - 1
        || xs[..r - 2] != ps[..r - 2]
        || xs[r - 2] != 2 * ps[r - 2]
    {
        return None;
    }
    // The one reader of `v`, if it is the op `dim_of` gives a dimension for, on
    // the pairs' axis; and its output.
    let on_pairs = |v: &str, dim_of: fn(&Op) -> Option<isize>| -> Option<(usize, &'p str)> {
        let i = g.only_reader(v)?;
        let n = g.node(i);
        (axis(dim_of(&n.op)?, r) == Some(r - 1)).then(|| (i, n.outputs[0].as_str()))
    };
    let squeeze = |op: &Op| if let Op::Squeeze { dim } = op { Some(*dim) } else { None };
    let unsqueeze = |op: &Op| if let Op::Unsqueeze { dim } = op { Some(*dim) } else { None };
    // The even and odd elements: each half squeezed, read by two products.
    let (sq_e, even) = on_pairs(&s.outputs[0], squeeze)?;
    let (sq_o, odd) = on_pairs(&s.outputs[1], squeeze)?;
    // Each half's two products, with their other operands.
    let products = |v: &str| -> Option<[(usize, &'p str); 2]> {
        let &[a, b] = g.internal_readers(v) else { return None };
        Some([(a, other_operand(g.node(a), Binary::Mul, v)?), (b, other_operand(g.node(b), Binary::Mul, v)?)])
    };
    let (pe, po) = (products(even)?, products(odd)?);
    let half_shape = g.shape(even);
    for &(i, _) in pe.iter().chain(&po) {
        let out = g.node(i).outputs[0].as_str();
        if g.shape(out) != half_shape || g.only_reader(out).is_none() {
            return None;
        }
    }
    let reader = |i: usize| g.only_reader(&g.node(i).outputs[0]).expect("checked");
    // even·cos − odd·sin: the difference of an even product and an odd one.
    let mut found = None;
    for &(ei, cos) in &pe {
        for &(oi, sin) in &po {
            let d = reader(ei);
            let n = g.node(d);
            let (ev, ov) = (g.node(ei).outputs[0].as_str(), g.node(oi).outputs[0].as_str());
            if reader(oi) == d && matches!(n.op, Op::Binary(Binary::Sub)) && n.inputs == [ev, ov] {
                found = Some((ei, oi, d, cos, sin));
            }
        }
    }
    let (ei, oi, diff, cos, sin) = found?;
    // even·sin + odd·cos: the other two, summed.
    let (ej, sin2) = *pe.iter().find(|p| p.0 != ei)?;
    let (oj, cos2) = *po.iter().find(|p| p.0 != oi)?;
    if (sin2, cos2) != (sin, cos) || cos == sin {
        return None;
    }
    let sum = reader(ej);
    if reader(oj) != sum || !matches!(g.node(sum).op, Op::Binary(Binary::Add)) {
        return None;
    }
    // Each result unsqueezed back to pairs, the two cat along them, reshaped to x's shape.
    let (un_e, ue) = on_pairs(&g.node(diff).outputs[0], unsqueeze)?;
    let (un_o, uo) = on_pairs(&g.node(sum).outputs[0], unsqueeze)?;
    let cat = g.only_reader(ue)?;
    let c = g.node(cat);
    if g.only_reader(uo) != Some(cat)
        || c.inputs != [ue, uo]
        || !matches!(c.op, Op::Cat { dim } if axis(dim, r) == Some(r - 1))
    {
        return None;
    }
    let last = g.only_reader(&c.outputs[0])?;
    let l = g.node(last);
    if !matches!(l.op, Op::Reshape { .. }) || g.shape(&l.outputs[0]) != xs {
        return None;
    }
    let nodes = vec![to_pairs, split, sq_e, sq_o, pe[0].0, pe[1].0, po[0].0, po[1].0, diff, sum, un_e, un_o, cat, last];
    Some(RotaryChain { nodes, x, cos, sin, out: &l.outputs[0], last })
}

/// Each rotary chain (see the module's notes) as one interleaved `rotary` op,
/// its tables viewed as `[len, d / 2]`. A chain whose tables vary along more
/// than one dimension of x besides the pairs' stays as it is.
pub fn fuse_rotary(program: &Program) -> Result<Program> {
    let g = Graph::new(program);
    let (mut remove, mut at, mut taken) = (HashSet::new(), HashMap::new(), HashSet::new());
    for i in 0..program.nodes.len() {
        let Some(chain) = rotary_chain(&g, i) else { continue };
        let xs = g.shape(chain.x);
        let (r, half) = (xs.len(), xs[xs.len() - 1] / 2);
        let table = g.shape(chain.cos);
        if g.shape(chain.sin) != table || table.len() > r || table.last() != Some(&half) {
            continue;
        }
        // The table's dimensions aligned to x's: ones, and at most one of x's own.
        let pad = r - table.len();
        let dim_of = |i: usize| if i < pad { 1 } else { table[i - pad] };
        let varying: Vec<usize> = (0..r - 1).filter(|&i| dim_of(i) != 1).collect();
        let position = match varying.as_slice() {
            [d] if dim_of(*d) == xs[*d] => *d,
            [] => match (0..r - 1).find(|&i| xs[i] == 1) {
                Some(d) => d,
                None => continue,
            },
            _ => continue,
        };
        let path = &g.node(chain.last).path;
        let len = xs[position];
        let cos = g.fresh(&format!("{}.rotary_cos", chain.out), &mut taken);
        let sin = g.fresh(&format!("{}.rotary_sin", chain.out), &mut taken);
        let rotary = Node {
            op: Op::Rotary { interleaved: true, dim: position as isize },
            op_name: "rotary".into(),
            inputs: vec![chain.x.to_string(), cos.clone(), sin.clone()],
            outputs: vec![chain.out.to_string()],
            path: path.clone(),
        };
        let nodes = vec![
            reshape_node(chain.cos, cos, &[len, half], path),
            reshape_node(chain.sin, sin, &[len, half], path),
            rotary,
        ];
        remove.extend(chain.nodes.iter().copied());
        at.insert(chain.last, nodes);
    }
    if at.is_empty() {
        return Ok(program.clone());
    }
    rewrite(program, &remove, at)
}

/// A value of shape `[1, …, 1, c]` (or `[c]`).
fn per_channel(shape: &[usize], c: usize) -> bool {
    shape.last() == Some(&c) && shape[..shape.len() - 1].iter().all(|&d| d == 1)
}

/// Each `layer_norm` / `rms_norm` without affine parameters whose output only
/// a product by a per-channel value reads (then, for a layer norm, only a sum
/// with another): the norm with those values as its weight (and bias).
pub fn fuse_modulation(program: &Program) -> Result<Program> {
    let g = Graph::new(program);
    let (mut remove, mut at, mut taken) = (HashSet::new(), HashMap::new(), HashSet::new());
    for (i, n) in program.nodes.iter().enumerate() {
        let layer = match n.op {
            Op::LayerNorm { .. } => true,
            Op::RmsNorm { .. } => false,
            _ => continue,
        };
        if n.inputs.len() != 1 {
            continue;
        }
        let y = n.outputs[0].as_str();
        let ys = g.shape(y);
        let c = ys[ys.len() - 1];
        let Some(m) = g.only_reader(y) else { continue };
        let Some(scale) = other_operand(g.node(m), Binary::Mul, y) else { continue };
        let scaled = g.node(m).outputs[0].as_str();
        if !per_channel(g.shape(scale), c) || g.shape(scaled) != ys {
            continue;
        }
        // A layer norm's shift too, when the product's one reader adds one.
        let shifted = g.only_reader(scaled).filter(|_| layer).and_then(|a| {
            let shift = other_operand(g.node(a), Binary::Add, scaled)?;
            let out = g.node(a).outputs[0].as_str();
            (per_channel(g.shape(shift), c) && g.shape(out) == ys).then_some((a, shift, out))
        });
        let path = &n.path;
        let weight = g.fresh(&format!("{y}.weight"), &mut taken);
        let mut nodes = vec![reshape_node(scale, weight.clone(), &[c], path)];
        let mut inputs = vec![n.inputs[0].clone(), weight];
        let (last, out) = match shifted {
            Some((a, shift, out)) => {
                let bias = g.fresh(&format!("{y}.bias"), &mut taken);
                nodes.push(reshape_node(shift, bias.clone(), &[c], path));
                inputs.push(bias);
                remove.insert(m);
                (a, out)
            }
            None => (m, scaled),
        };
        nodes.push(Node { inputs, outputs: vec![out.to_string()], ..n.clone() });
        remove.insert(i);
        at.insert(last, nodes);
    }
    if at.is_empty() {
        return Ok(program.clone());
    }
    rewrite(program, &remove, at)
}
