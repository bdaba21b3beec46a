//! The opset: every op a program may use, with its attributes parsed and
//! checked. Documented in docs/program-format.md.

use serde_json::{Map, Value};

use crate::delegate::{Activation, Binary, ReduceOp, Unary};
use crate::error::{Error, Result};

/// A node's operation.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Elementwise `f(x·scale + shift)`.
    Unary {
        f: Unary,
        scale: f32,
        shift: f32,
    },
    /// Elementwise with NumPy broadcasting.
    Binary(Binary),
    /// `act(x · wᵀ + b)`: x `[…, in]`, w `[out, in]`, b `[out]`.
    Linear {
        activation: Activation,
    },
    /// `a · b`: a `[…, m, k]`, b `[…, k, n]` (same batch) or `[k, n]`.
    Matmul,
    /// Convolution over 1–3 spatial dimensions (the weight's rank − 2).
    Conv {
        stride: Vec<usize>,
        padding: Vec<[usize; 2]>,
        dilation: Vec<usize>,
        groups: usize,
        activation: Activation,
    },
    /// Scaled dot-product attention over `[batch, heads, len, head_dim]`.
    Attention {
        scale: Option<f32>,
        causal: bool,
    },
    /// Softmax over the last dimension.
    Softmax,
    LayerNorm {
        eps: f32,
    },
    RmsNorm {
        eps: f32,
    },
    GroupNorm {
        groups: usize,
        eps: f32,
    },
    Reduce {
        op: ReduceOp,
        dim: isize,
        keepdim: bool,
    },
    Reshape {
        shape: Vec<isize>,
    },
    Permute {
        perm: Vec<usize>,
    },
    Unsqueeze {
        dim: isize,
    },
    Squeeze {
        dim: isize,
    },
    Expand {
        shape: Vec<usize>,
    },
    Slice {
        dim: isize,
        start: isize,
        end: isize,
        step: usize,
    },
    Split {
        dim: isize,
        sizes: Vec<usize>,
    },
    Cat {
        dim: isize,
    },
    /// Constant padding, `[before, after]` per dimension from the first.
    Pad {
        pads: Vec<[usize; 2]>,
        value: f32,
    },
    /// Nearest upsampling of the trailing dimensions by integer factors.
    UpsampleNearest {
        scale: Vec<usize>,
    },
    /// Rotary embedding with tables `[len, d/2]`: dimension `dim` of x is the
    /// position (length `len`), its last dimension (`d`) holds the pairs.
    Rotary {
        interleaved: bool,
        dim: isize,
    },
    /// Round through `dtype` (values stay f32 in version 1; `f16` rounds).
    Cast {
        to_f16: bool,
    },
    /// Row lookup: table `[rows, d]`, indices (whole numbers) of any shape →
    /// `indices.shape + [d]` (PyTorch's `embedding`; the exporter also lowers
    /// indexing by known indices to it).
    Embedding,
}

/// The op names, in the order of docs/program-format.md.
pub const NAMES: &[&str] = &[
    "relu",
    "silu",
    "gelu",
    "sigmoid",
    "tanh",
    "exp",
    "log",
    "sqrt",
    "rsqrt",
    "abs",
    "neg",
    "square",
    "reciprocal",
    "sin",
    "cos",
    "affine",
    "add",
    "sub",
    "mul",
    "div",
    "maximum",
    "minimum",
    "pow",
    "linear",
    "matmul",
    "conv",
    "attention",
    "softmax",
    "layer_norm",
    "rms_norm",
    "group_norm",
    "sum",
    "mean",
    "amax",
    "amin",
    "reshape",
    "permute",
    "unsqueeze",
    "squeeze",
    "expand",
    "slice",
    "split",
    "cat",
    "pad",
    "upsample_nearest",
    "rotary",
    "cast",
    "embedding",
];

/// Reads the attributes of one node.
struct Attrs<'a> {
    op: &'a str,
    map: &'a Map<String, Value>,
}

impl Attrs<'_> {
    fn err(&self, key: &str, want: &str) -> Error {
        Error::Program(format!("{}: attribute {key:?} must be {want}", self.op))
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.map.get(key)
    }

    fn f32(&self, key: &str, default: Option<f32>) -> Result<f32> {
        match self.get(key) {
            None => default.ok_or_else(|| self.err(key, "given")),
            Some(v) => {
                v.as_f64().map(|x| x as f32).filter(|x| x.is_finite()).ok_or_else(|| self.err(key, "a finite number"))
            }
        }
    }

    fn int(&self, key: &str, default: Option<i64>) -> Result<i64> {
        match self.get(key) {
            None => default.ok_or_else(|| self.err(key, "given")),
            Some(v) => v.as_i64().filter(|x| x.unsigned_abs() < 1 << 40).ok_or_else(|| self.err(key, "an integer")),
        }
    }

    fn usize(&self, key: &str, default: Option<usize>) -> Result<usize> {
        let v = self.int(key, default.map(|d| d as i64))?;
        usize::try_from(v).map_err(|_| self.err(key, "a non-negative integer"))
    }

    fn bool(&self, key: &str, default: bool) -> Result<bool> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.as_bool().ok_or_else(|| self.err(key, "true or false")),
        }
    }

    fn str(&self, key: &str, default: &'static str) -> Result<String> {
        match self.get(key) {
            None => Ok(default.into()),
            Some(v) => v.as_str().map(String::from).ok_or_else(|| self.err(key, "a string")),
        }
    }

    fn ints(&self, key: &str) -> Result<Vec<i64>> {
        let v = self.get(key).ok_or_else(|| self.err(key, "given"))?;
        let list =
            v.as_array().filter(|a| a.len() <= 16).ok_or_else(|| self.err(key, "a list of at most 16 integers"))?;
        list.iter()
            .map(|x| {
                x.as_i64().filter(|x| x.unsigned_abs() < 1 << 40).ok_or_else(|| self.err(key, "a list of integers"))
            })
            .collect()
    }

    fn usizes(&self, key: &str) -> Result<Vec<usize>> {
        self.ints(key)?.into_iter().map(|x| usize::try_from(x).map_err(|_| self.err(key, "non-negative"))).collect()
    }

    fn pairs(&self, key: &str) -> Result<Vec<[usize; 2]>> {
        let v = self.get(key).ok_or_else(|| self.err(key, "given"))?;
        let list = v.as_array().filter(|a| a.len() <= 16).ok_or_else(|| self.err(key, "a list of [before, after]"))?;
        list.iter()
            .map(|p| {
                let p =
                    p.as_array().filter(|p| p.len() == 2).ok_or_else(|| self.err(key, "a list of [before, after]"))?;
                let n = |x: &Value| x.as_u64().filter(|&x| x < 1 << 32).map(|x| x as usize);
                Ok([
                    n(&p[0]).ok_or_else(|| self.err(key, "non-negative"))?,
                    n(&p[1]).ok_or_else(|| self.err(key, "non-negative"))?,
                ])
            })
            .collect()
    }

    fn activation(&self) -> Result<Activation> {
        Ok(match self.str("activation", "none")?.as_str() {
            "none" => Activation::None,
            "relu" => Activation::Relu,
            "silu" => Activation::Silu,
            "gelu_tanh" => Activation::GeluTanh,
            "gelu" => Activation::GeluErf,
            _ => return Err(self.err("activation", "one of none, relu, silu, gelu, gelu_tanh")),
        })
    }
}

impl Op {
    /// Parses `op` with its attributes (a JSON object, possibly empty).
    pub fn parse(op: &str, attrs: &Map<String, Value>) -> Result<Op> {
        let a = Attrs { op, map: attrs };
        let unary = |f| Ok(Op::Unary { f, scale: 1.0, shift: 0.0 });
        let reduce = |op| Ok(Op::Reduce { op, dim: a.int("dim", None)? as isize, keepdim: a.bool("keepdim", false)? });
        match op {
            "relu" => unary(Unary::Relu),
            "silu" => unary(Unary::Silu),
            "gelu" => match a.str("approximate", "none")?.as_str() {
                "none" => unary(Unary::GeluErf),
                "tanh" => unary(Unary::GeluTanh),
                _ => Err(a.err("approximate", "\"none\" or \"tanh\"")),
            },
            "sigmoid" => unary(Unary::Sigmoid),
            "tanh" => unary(Unary::Tanh),
            "exp" => unary(Unary::Exp),
            "log" => unary(Unary::Log),
            "sqrt" => unary(Unary::Sqrt),
            "rsqrt" => unary(Unary::Rsqrt),
            "abs" => unary(Unary::Abs),
            "neg" => unary(Unary::Neg),
            "square" => unary(Unary::Square),
            "reciprocal" => unary(Unary::Recip),
            "sin" => unary(Unary::Sin),
            "cos" => unary(Unary::Cos),
            "affine" => Ok(Op::Unary {
                f: Unary::Identity,
                scale: a.f32("scale", Some(1.0))?,
                shift: a.f32("shift", Some(0.0))?,
            }),
            "add" => Ok(Op::Binary(Binary::Add)),
            "sub" => Ok(Op::Binary(Binary::Sub)),
            "mul" => Ok(Op::Binary(Binary::Mul)),
            "div" => Ok(Op::Binary(Binary::Div)),
            "maximum" => Ok(Op::Binary(Binary::Max)),
            "minimum" => Ok(Op::Binary(Binary::Min)),
            "pow" => Ok(Op::Binary(Binary::Pow)),
            "linear" => Ok(Op::Linear { activation: a.activation()? }),
            "matmul" => Ok(Op::Matmul),
            "conv" => Ok(Op::Conv {
                stride: a.usizes("stride")?,
                padding: a.pairs("padding")?,
                dilation: a.usizes("dilation")?,
                groups: a.usize("groups", Some(1))?,
                activation: a.activation()?,
            }),
            "attention" => Ok(Op::Attention {
                scale: if a.get("scale").is_some() { Some(a.f32("scale", None)?) } else { None },
                causal: a.bool("causal", false)?,
            }),
            "softmax" => Ok(Op::Softmax),
            "layer_norm" => Ok(Op::LayerNorm { eps: a.f32("eps", Some(1e-5))? }),
            "rms_norm" => Ok(Op::RmsNorm { eps: a.f32("eps", Some(1e-6))? }),
            "group_norm" => Ok(Op::GroupNorm { groups: a.usize("groups", None)?, eps: a.f32("eps", Some(1e-5))? }),
            "sum" => reduce(ReduceOp::Sum),
            "mean" => reduce(ReduceOp::Mean),
            "amax" => reduce(ReduceOp::Max),
            "amin" => reduce(ReduceOp::Min),
            "reshape" => Ok(Op::Reshape { shape: a.ints("shape")?.into_iter().map(|x| x as isize).collect() }),
            "permute" => Ok(Op::Permute { perm: a.usizes("perm")? }),
            "unsqueeze" => Ok(Op::Unsqueeze { dim: a.int("dim", None)? as isize }),
            "squeeze" => Ok(Op::Squeeze { dim: a.int("dim", None)? as isize }),
            "expand" => Ok(Op::Expand { shape: a.usizes("shape")? }),
            "slice" => Ok(Op::Slice {
                dim: a.int("dim", None)? as isize,
                start: a.int("start", Some(0))? as isize,
                end: a.int("end", Some(i64::MAX >> 24))? as isize,
                step: a.usize("step", Some(1))?,
            }),
            "split" => Ok(Op::Split { dim: a.int("dim", None)? as isize, sizes: a.usizes("sizes")? }),
            "cat" => Ok(Op::Cat { dim: a.int("dim", None)? as isize }),
            "pad" => Ok(Op::Pad { pads: a.pairs("pads")?, value: a.f32("value", Some(0.0))? }),
            "upsample_nearest" => Ok(Op::UpsampleNearest { scale: a.usizes("scale")? }),
            "rotary" => {
                Ok(Op::Rotary { interleaved: a.bool("interleaved", true)?, dim: a.int("dim", Some(1))? as isize })
            }
            "cast" => match a.str("dtype", "f32")?.as_str() {
                "f32" => Ok(Op::Cast { to_f16: false }),
                "f16" => Ok(Op::Cast { to_f16: true }),
                _ => Err(a.err("dtype", "\"f32\" or \"f16\"")),
            },
            "embedding" => Ok(Op::Embedding),
            other => Err(Error::Program(format!("unknown op {other:?} (the opset: {})", NAMES.join(", ")))),
        }
    }

    /// How many inputs the op takes: (fewest, most).
    pub fn arity(&self) -> (usize, usize) {
        match self {
            Op::Unary { .. } | Op::Softmax | Op::Reduce { .. } | Op::Reshape { .. } | Op::Permute { .. } => (1, 1),
            Op::Unsqueeze { .. } | Op::Squeeze { .. } | Op::Expand { .. } | Op::Slice { .. } | Op::Split { .. } => {
                (1, 1)
            }
            Op::Pad { .. } | Op::UpsampleNearest { .. } | Op::Cast { .. } => (1, 1),
            Op::Binary(_) | Op::Matmul | Op::Embedding => (2, 2),
            Op::Linear { .. } | Op::Conv { .. } => (2, 3),
            Op::Attention { .. } => (3, 4),
            Op::LayerNorm { .. } | Op::GroupNorm { .. } => (1, 3),
            Op::RmsNorm { .. } => (1, 2),
            Op::Cat { .. } => (1, 64),
            Op::Rotary { .. } => (3, 3),
        }
    }

    /// The kind of op, for profiles and plans ("conv", "matmul", …).
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Unary { .. } => "unary",
            Op::Binary(_) => "binary",
            Op::Linear { .. } => "linear",
            Op::Matmul => "matmul",
            Op::Conv { .. } => "conv",
            Op::Attention { .. } => "attention",
            Op::Softmax => "softmax",
            Op::LayerNorm { .. } | Op::RmsNorm { .. } | Op::GroupNorm { .. } => "norm",
            Op::Reduce { .. } => "reduce",
            Op::Reshape { .. } | Op::Unsqueeze { .. } | Op::Squeeze { .. } => "view",
            Op::Permute { .. }
            | Op::Expand { .. }
            | Op::Slice { .. }
            | Op::Split { .. }
            | Op::Cat { .. }
            | Op::Pad { .. }
            | Op::UpsampleNearest { .. } => "copy",
            Op::Rotary { .. } => "rotary",
            Op::Cast { .. } => "cast",
            Op::Embedding => "gather",
        }
    }
}
