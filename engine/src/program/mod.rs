//! Portable programs: a graph exported from PyTorch (`tools/export`), as
//! versioned JSON — named inputs and outputs, small inline constants,
//! parameters referenced by checkpoint key, and nodes over a small opset.
//! Loading validates everything and infers every value's shape, so a
//! program that loads is one the planner and runtime can trust. The format is
//! documented in docs/program-format.md.

pub mod op;
pub mod shape;

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::{Map, Value};

pub use op::Op;

use crate::error::{Error, Result};

/// The format identifier and the versions this build reads.
pub const FORMAT: &str = "kinema.program";
pub const VERSION: u32 = 1;

/// Bounds on what a program may ask of us (a program is untrusted input).
pub const MAX_BYTES: usize = 256 << 20;
pub const MAX_NODES: usize = 1 << 20;
pub const MAX_NAME: usize = 512;

/// A named input or output, with its shape and what its values are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueInfo {
    pub name: String,
    pub shape: Vec<usize>,
    pub element: Element,
}

/// What a value's elements are. Every value is computed in f32 in version 1;
/// an input may be declared integer (`"i64"` or `"i32"`: token ids, masks),
/// and is then carried as f32, exact for whole numbers of magnitude up to
/// [`MAX_EXACT_INTEGER`], which `Session::run` checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Element {
    F32,
    Integer,
}

/// The largest magnitude an integer input may have (f32 holds every whole number up to 2²⁴).
pub const MAX_EXACT_INTEGER: f32 = (1u32 << 24) as f32;

/// A small tensor stored in the program itself (folded tables, scalars).
#[derive(Debug, Clone, PartialEq)]
pub struct Constant {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// A weight read from the checkpoint under `key` (the `torch.export`
/// parameter name, which is also the diffusers/transformers safetensors key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parameter {
    pub name: String,
    pub key: String,
    pub shape: Vec<usize>,
}

/// One operation: reads `inputs`, defines `outputs`. `path` is the module
/// path it came from, for messages and profiles.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub op: Op,
    pub op_name: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub path: String,
}

/// A validated program: nodes in an order where every value is defined
/// before it is read, and the shape of every value.
#[derive(Debug, Clone)]
pub struct Program {
    pub inputs: Vec<ValueInfo>,
    /// `out0`, `out1`, … with their shapes; [`Program::output_values`] says which value each is.
    pub outputs: Vec<ValueInfo>,
    output_values: Vec<String>,
    pub constants: Vec<Constant>,
    pub parameters: Vec<Parameter>,
    pub nodes: Vec<Node>,
    shapes: HashMap<String, Vec<usize>>,
}

// The JSON as written, before validation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProgram {
    format: String,
    version: u32,
    inputs: Vec<RawValue>,
    outputs: Vec<RawOutput>,
    #[serde(default)]
    constants: Vec<RawConstant>,
    #[serde(default)]
    parameters: Vec<RawParameter>,
    nodes: Vec<RawNode>,
    #[serde(default)]
    #[allow(dead_code)]
    metadata: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawValue {
    name: String,
    dtype: String,
    shape: Vec<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutput {
    name: String,
    value: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConstant {
    name: String,
    dtype: String,
    shape: Vec<u64>,
    data: Vec<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParameter {
    name: String,
    key: String,
    dtype: String,
    shape: Vec<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    op: String,
    inputs: Vec<String>,
    outputs: Vec<String>,
    #[serde(default)]
    attrs: Map<String, Value>,
    #[serde(default)]
    path: String,
}

fn err(msg: impl Into<String>) -> Error {
    Error::Program(msg.into())
}

/// The message of an error, without the `program: ` its display would add again.
fn inner(e: Error) -> String {
    match e {
        Error::Program(m) => m,
        other => other.to_string(),
    }
}

fn check_name(what: &str, name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(err(format!("{what} name {name:?} must be 1–{MAX_NAME} printable characters")));
    }
    Ok(())
}

fn check_shape(what: &str, shape: &[u64]) -> Result<Vec<usize>> {
    if shape.len() > crate::delegate::elementwise::MAX_RANK {
        return Err(err(format!("{what}: shape {shape:?} has more than 8 dimensions")));
    }
    let n = shape.iter().try_fold(1u64, |a, &b| a.checked_mul(b));
    if n.is_none_or(|n| n > u32::MAX as u64) {
        return Err(err(format!("{what}: shape {shape:?} holds more than 2³² elements")));
    }
    Ok(shape.iter().map(|&d| d as usize).collect())
}

fn check_f32(what: &str, dtype: &str) -> Result<()> {
    if dtype != "f32" {
        return Err(err(format!("{what}: dtype {dtype:?} (version 1 programs compute in \"f32\")")));
    }
    Ok(())
}

impl Program {
    /// Parses and validates a program from its JSON text.
    pub fn from_json(text: &str) -> Result<Program> {
        if text.len() > MAX_BYTES {
            return Err(err(format!("{} bytes is over the {MAX_BYTES}-byte limit", text.len())));
        }
        // Duplicate keys are refused, as in checkpoint headers.
        let value: Value = crate::weights::json::parse_unique(text).map_err(|e| err(format!("not valid JSON: {e}")))?;
        if let Some(v) = value.get("version").and_then(Value::as_u64)
            && v != VERSION as u64
        {
            return Err(err(format!("version {v} is not supported (this build reads version {VERSION})")));
        }
        let raw: RawProgram = serde_json::from_value(value).map_err(|e| err(format!("{e}")))?;
        if raw.version != VERSION {
            return Err(err(format!("version {} is not supported (this build reads version {VERSION})", raw.version)));
        }
        if raw.format != FORMAT {
            return Err(err(format!("format {:?} is not {FORMAT:?}", raw.format)));
        }
        Program::validate(raw)
    }

    /// Reads and validates `path`.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn open(path: &std::path::Path) -> Result<Program> {
        let file = path.display().to_string();
        let meta = std::fs::metadata(path).map_err(|e| Error::io(&file, e))?;
        if meta.len() > MAX_BYTES as u64 {
            return Err(Error::Io {
                file,
                message: format!("{} bytes is over the {MAX_BYTES}-byte limit", meta.len()),
            });
        }
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(&file, e))?;
        Program::from_json(&text).map_err(|e| Error::Io { file, message: e.to_string() })
    }

    fn validate(raw: RawProgram) -> Result<Program> {
        if raw.nodes.len() > MAX_NODES {
            return Err(err(format!("{} nodes is over the limit of {MAX_NODES}", raw.nodes.len())));
        }
        let mut shapes: HashMap<String, Vec<usize>> = HashMap::new();
        let define = |what: &str, name: &str, shape: Vec<usize>, shapes: &mut HashMap<String, Vec<usize>>| {
            check_name(what, name)?;
            if shapes.insert(name.to_string(), shape).is_some() {
                return Err(err(format!("value {name:?} is defined twice")));
            }
            Ok(())
        };
        let mut inputs = Vec::new();
        for v in &raw.inputs {
            let element = match v.dtype.as_str() {
                "i64" | "i32" => Element::Integer,
                "f32" => Element::F32,
                other => {
                    return Err(err(format!("input {:?}: dtype {other:?} (\"f32\", \"i64\" or \"i32\")", v.name)));
                }
            };
            let shape = check_shape(&format!("input {:?}", v.name), &v.shape)?;
            define("input", &v.name, shape.clone(), &mut shapes)?;
            inputs.push(ValueInfo { name: v.name.clone(), shape, element });
        }
        let mut constants = Vec::new();
        for c in raw.constants {
            check_f32(&format!("constant {:?}", c.name), &c.dtype)?;
            let shape = check_shape(&format!("constant {:?}", c.name), &c.shape)?;
            if c.data.len() != shape.iter().product::<usize>() {
                return Err(err(format!("constant {:?}: {} values for shape {shape:?}", c.name, c.data.len())));
            }
            define("constant", &c.name, shape.clone(), &mut shapes)?;
            constants.push(Constant { name: c.name, shape, data: c.data.iter().map(|&v| v as f32).collect() });
        }
        let mut parameters = Vec::new();
        for p in raw.parameters {
            if !["f32", "f16", "bf16"].contains(&p.dtype.as_str()) {
                return Err(err(format!("parameter {:?}: dtype {:?} (f32, f16 or bf16)", p.name, p.dtype)));
            }
            check_name("parameter key", &p.key)?;
            let shape = check_shape(&format!("parameter {:?}", p.name), &p.shape)?;
            define("parameter", &p.name, shape.clone(), &mut shapes)?;
            parameters.push(Parameter { name: p.name, key: p.key, shape });
        }

        // Parse every node, then order them so each value is defined before
        // it is read (Kahn's algorithm); what cannot be ordered is a cycle or
        // reads a value nothing defines.
        let mut nodes = Vec::with_capacity(raw.nodes.len());
        let mut producer: HashMap<&str, usize> = HashMap::new();
        for (i, n) in raw.nodes.iter().enumerate() {
            let at = || {
                if n.path.is_empty() {
                    format!("node {i} ({})", n.op)
                } else {
                    format!("node {i} ({} at {})", n.op, n.path)
                }
            };
            let op = Op::parse(&n.op, &n.attrs).map_err(|e| err(format!("{}: {}", at(), inner(e))))?;
            if n.outputs.is_empty() || n.outputs.len() > 64 {
                return Err(err(format!("{}: needs 1–64 outputs", at())));
            }
            let outs = match &op {
                Op::Split { sizes, .. } => sizes.len(),
                _ => 1,
            };
            if n.outputs.len() != outs {
                return Err(err(format!("{}: defines {} outputs, the op makes {outs}", at(), n.outputs.len())));
            }
            for o in &n.outputs {
                check_name("value", o)?;
                if shapes.contains_key(o.as_str()) || producer.insert(o, i).is_some() {
                    return Err(err(format!("{}: value {o:?} is defined twice", at())));
                }
            }
            nodes.push((op, at()));
        }
        // Kahn's algorithm, taking the earliest ready node first, so a file
        // already in order keeps its order.
        let mut waiting: Vec<usize> = raw.nodes.iter().map(|n| n.inputs.len()).collect();
        let mut readers: HashMap<&str, Vec<usize>> = HashMap::new();
        let mut ready = std::collections::BinaryHeap::new();
        for (i, n) in raw.nodes.iter().enumerate() {
            for name in &n.inputs {
                if shapes.contains_key(name.as_str()) {
                    waiting[i] -= 1;
                } else if producer.contains_key(name.as_str()) {
                    readers.entry(name).or_default().push(i);
                } else {
                    return Err(err(format!("{}: reads {name:?}, which nothing defines", nodes[i].1)));
                }
            }
            if waiting[i] == 0 {
                ready.push(std::cmp::Reverse(i));
            }
        }
        let mut sorted = Vec::with_capacity(nodes.len());
        while let Some(std::cmp::Reverse(i)) = ready.pop() {
            sorted.push(i);
            for o in &raw.nodes[i].outputs {
                for &r in readers.get(o.as_str()).map(Vec::as_slice).unwrap_or(&[]) {
                    waiting[r] -= 1;
                    if waiting[r] == 0 {
                        ready.push(std::cmp::Reverse(r));
                    }
                }
            }
        }
        if sorted.len() != nodes.len() {
            let stuck = (0..nodes.len()).find(|&i| waiting[i] > 0).expect("some node waits");
            return Err(err(format!("{} is part of a cycle", nodes[stuck].1)));
        }

        let mut out_nodes = Vec::with_capacity(sorted.len());
        let mut parsed: Vec<Option<(Op, String)>> = nodes.into_iter().map(Some).collect();
        for i in sorted {
            let (op, at) = parsed[i].take().expect("each node once");
            let n = &raw.nodes[i];
            let in_shapes: Vec<&Vec<usize>> = n.inputs.iter().map(|x| &shapes[x.as_str()]).collect();
            let outs = shape::infer(&op, &in_shapes).map_err(|e| err(format!("{at}: {}", inner(e))))?;
            for (name, s) in n.outputs.iter().zip(outs) {
                shapes.insert(name.clone(), s);
            }
            if op == Op::Embedding
                && let Some(c) = constants.iter().find(|c| c.name == n.inputs[1])
            {
                // Constant indices are checked here, so no kernel meets a bad one.
                let rows = shapes[n.inputs[0].as_str()][0];
                let gather = crate::delegate::Gather { rows, dim: 1, count: c.data.len() };
                for (j, &v) in c.data.iter().enumerate() {
                    gather.row(j, v).map_err(|e| err(format!("{at}: constant {:?}: {}", c.name, inner(e))))?;
                }
            }
            out_nodes.push(Node {
                op,
                op_name: n.op.clone(),
                inputs: n.inputs.clone(),
                outputs: n.outputs.clone(),
                path: n.path.clone(),
            });
        }

        let mut outputs = Vec::new();
        let mut output_values = Vec::new();
        for (i, o) in raw.outputs.iter().enumerate() {
            if o.name != format!("out{i}") {
                return Err(err(format!("output {i} is named {:?}; outputs are out0, out1, … in order", o.name)));
            }
            let shape = shapes
                .get(&o.value)
                .ok_or_else(|| err(format!("output {:?} is {:?}, which nothing defines", o.name, o.value)))?;
            outputs.push(ValueInfo { name: o.name.clone(), shape: shape.clone(), element: Element::F32 });
            output_values.push(o.value.clone());
        }
        if outputs.is_empty() {
            return Err(err("a program needs at least one output"));
        }
        Ok(Program { inputs, outputs, output_values, constants, parameters, nodes: out_nodes, shapes })
    }

    /// The same program with `nodes` (in an order where each value is defined
    /// before it is read) in place of its own: new values' shapes inferred; the
    /// outputs must keep their shapes.
    pub fn with_nodes(&self, nodes: Vec<Node>) -> Result<Program> {
        let mut shapes: HashMap<String, Vec<usize>> = HashMap::new();
        for v in &self.inputs {
            shapes.insert(v.name.clone(), v.shape.clone());
        }
        for c in &self.constants {
            shapes.insert(c.name.clone(), c.shape.clone());
        }
        for p in &self.parameters {
            shapes.insert(p.name.clone(), p.shape.clone());
        }
        for n in &nodes {
            let in_shapes: Vec<&Vec<usize>> = n
                .inputs
                .iter()
                .map(|x| {
                    shapes
                        .get(x.as_str())
                        .ok_or_else(|| err(format!("{}: reads {x:?} before it is defined", n.op_name)))
                })
                .collect::<Result<_>>()?;
            let outs = shape::infer(&n.op, &in_shapes).map_err(|e| err(format!("{}: {}", n.op_name, inner(e))))?;
            for (name, s) in n.outputs.iter().zip(outs) {
                check_name("value", name)?;
                if shapes.insert(name.clone(), s).is_some() {
                    return Err(err(format!("value {name:?} is defined twice")));
                }
            }
        }
        for (info, value) in self.outputs.iter().zip(&self.output_values) {
            if shapes.get(value) != Some(&info.shape) {
                return Err(err(format!("output {:?} changed shape", info.name)));
            }
        }
        Ok(Program { nodes, shapes, ..self.clone() })
    }

    /// The shape of any value.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.shapes.get(name).map(Vec::as_slice)
    }

    /// The value each output `out{i}` reads.
    pub fn output_values(&self) -> &[String] {
        &self.output_values
    }
}
