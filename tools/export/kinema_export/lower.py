"""torch.export graph → Kinema program (JSON), op by op."""

from __future__ import annotations

import inspect
import json
import operator
import os
from typing import Any

import torch
from torch.export import ExportedProgram
from torch.export.graph_signature import InputKind

FORMAT = "kinema.program"
VERSION = 1
# Buffers and lifted constants up to this many elements are inlined.
MAX_INLINE = 1 << 16
# Folded integer index tensors (an embedding's indices: umT5's relative position
# buckets, [len, len]) up to this many elements are inlined.
MAX_INLINE_INDICES = 1 << 20

aten = torch.ops.aten

# The widest head the attention op takes (its kernels keep a query row in registers).
MAX_HEAD_DIM = 128


class ExportError(Exception):
    """An op the exporter cannot lower, named with the module path it came from."""


def _path(node) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return ""
    return list(stack.values())[-1][0]


def _shape(node) -> list[int]:
    val = node.meta.get("val")
    if val is None or not hasattr(val, "shape"):
        raise ExportError(f"{node.target} at {_path(node) or '<top>'}: no static shape")
    return [int(d) for d in val.shape]


UNARY = {
    aten.relu.default: "relu", aten.silu.default: "silu", aten.sigmoid.default: "sigmoid",
    aten.tanh.default: "tanh", aten.exp.default: "exp", aten.log.default: "log", aten.sqrt.default: "sqrt",
    aten.rsqrt.default: "rsqrt", aten.abs.default: "abs", aten.neg.default: "neg", aten.sin.default: "sin",
    aten.cos.default: "cos", aten.reciprocal.default: "reciprocal", aten.square.default: "square",
}
BINARY = {
    aten.add.Tensor: "add", aten.sub.Tensor: "sub", aten.mul.Tensor: "mul", aten.div.Tensor: "div",
    aten.maximum.default: "maximum", aten.minimum.default: "minimum", aten.pow.Tensor_Tensor: "pow",
}
REDUCE = {aten.mean.dim: "mean", aten.sum.dim_IntList: "sum", aten.amax.default: "amax", aten.amin.default: "amin"}
VIEWS = {
    aten.view.default, aten.reshape.default, aten._unsafe_view.default, aten.flatten.using_ints,
    aten.unflatten.int, aten.squeeze.dim, aten.squeeze.dims, aten.unsqueeze.default, aten.contiguous.default,
    aten.clone.default, aten.alias.default, aten.detach.default, aten.dropout.default,
}


class Lowering:
    def __init__(self, ep: ExportedProgram):
        self.ep = ep
        self.nodes: list[dict] = []
        self.constants: list[dict] = []
        self.parameters: list[dict] = []
        self.names: dict[Any, str] = {}  # fx node -> value name (or list for multi-output)
        self.count = 0
        # Values known at export time (buffers, lifted constants, and what is
        # computed from them alone): folded, emitted as constants only if used.
        self.known: dict[Any, Any] = {}
        # empty_like buffers being filled by slice_scatter: node -> (shape, [(dim, start, step, value)]).
        self.scatters: dict[Any, tuple] = {}
        self.phantoms: set = set()
        # Constants by content, so a table folded once per layer is written once.
        self.by_content: dict[tuple, str] = {}

    def fresh(self, hint: str) -> str:
        self.count += 1
        return f"{hint}_{self.count}"

    def emit(self, op: str, inputs: list[str], attrs: dict | None = None, path: str = "", outputs: int = 1,
             hint: str = "v") -> list[str]:
        outs = [self.fresh(hint) for _ in range(outputs)]
        self.nodes.append({"op": op, "inputs": inputs, "outputs": outs, "attrs": attrs or {}, "path": path})
        return outs

    def constant(self, tensor: torch.Tensor, hint: str = "const") -> str:
        t = tensor.detach().to(torch.float32).contiguous()
        data = t.flatten().tolist()
        key = (tuple(t.shape), tuple(data))
        if key in self.by_content:
            return self.by_content[key]
        name = self.fresh(hint)
        self.constants.append({"name": name, "dtype": "f32", "shape": list(t.shape), "data": data})
        self.by_content[key] = name
        return name

    def value(self, arg, like=None) -> str:
        """The program value for an fx argument (scalars become constants)."""
        if isinstance(arg, torch.fx.Node) and arg not in self.names and arg in self.known:
            t = self.known[arg]
            if not isinstance(t, torch.Tensor):
                raise ExportError(f"{arg} is not a tensor")
            if t.numel() > 64 and t.dim() > 0 and bool((t == t.flatten()[0]).all()):
                # One value everywhere (zeros, ones): a scalar broadcast by the runtime.
                one = self.constant(t.flatten()[:1].reshape([1] * t.dim()), "const")
                self.names[arg] = self.emit("expand", [one], {"shape": list(t.shape)}, _path(arg))[0]
                return self.names[arg]
            limit = MAX_INLINE_INDICES if not t.is_floating_point() else MAX_INLINE
            if t.numel() > limit:
                raise ExportError(f"folded constant {arg} has {t.numel()} elements (limit {limit})")
            if not t.is_floating_point() and t.numel() and int(t.long().abs().max()) >= 1 << 24:
                raise ExportError(f"folded integer constant {arg} has values past 2^24 (not exact in f32)")
            self.names[arg] = self.constant(t, "const")
        if isinstance(arg, torch.fx.Node):
            if arg in self.scatters or arg in self.phantoms:
                raise ExportError(f"{arg} is read before it is filled")
            v = self.names[arg]
            if isinstance(v, list):
                raise ExportError(f"{arg} has several outputs")
            return v
        if isinstance(arg, (int, float, bool)):
            return self.constant(torch.tensor([float(arg)]), "scalar")
        raise ExportError(f"cannot use {arg!r} as a tensor")

    # -- the graph --------------------------------------------------------
    def run(self, input_names: list[str]):
        sig = self.ep.graph_signature
        state = self.ep.state_dict
        consts = getattr(self.ep, "constants", {})
        user_inputs = []
        spec_by_arg = {s.arg.name: s for s in sig.input_specs}
        placeholders = [n for n in self.ep.graph.nodes if n.op == "placeholder"]
        user_i = 0
        inputs = []
        for node in placeholders:
            spec = spec_by_arg[node.name]
            if spec.kind == InputKind.PARAMETER:
                shape = _shape(node)
                self.parameters.append({"name": node.name, "key": spec.target, "dtype": "f32", "shape": shape})
                self.names[node] = node.name
            elif spec.kind in (InputKind.BUFFER, InputKind.CONSTANT_TENSOR):
                t = state[spec.target] if spec.target in state else consts[spec.target]
                if spec.kind == InputKind.BUFFER and spec.persistent and t.numel() > MAX_INLINE:
                    self.parameters.append({"name": node.name, "key": spec.target, "dtype": "f32",
                                            "shape": list(t.shape)})
                    self.names[node] = node.name
                else:
                    self.known[node] = t  # folded; emitted as a constant where a kernel reads it
            elif spec.kind == InputKind.USER_INPUT and not hasattr(spec.arg, "name"):
                continue  # a non-tensor argument (e.g. return_dict=False), baked in by torch.export
            elif spec.kind == InputKind.USER_INPUT and not isinstance(node.meta.get("val"), torch.Tensor):
                user_i += 1
                continue  # a non-tensor value
            elif spec.kind == InputKind.USER_INPUT:
                name = input_names[user_i] if user_i < len(input_names) else node.name
                user_i += 1
                val = node.meta["val"]
                if val.dtype.is_floating_point:
                    dtype = "f32"
                elif val.dtype in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8, torch.bool):
                    dtype = "i64"  # integer values, carried exactly as f32 below 2^24
                else:
                    raise ExportError(f"input {name}: dtype {val.dtype}")
                inputs.append({"name": name, "dtype": dtype, "shape": _shape(node)})
                self.names[node] = name
            else:
                raise ExportError(f"input {node.name} of kind {spec.kind} is not supported")
        outputs = []
        for node in self.ep.graph.nodes:
            if node.op == "call_function":
                self.lower(node)
            elif node.op == "output":
                for i, arg in enumerate(node.args[0]):
                    outputs.append({"name": f"out{i}", "value": self.value(arg)})
        return inputs, outputs

    def lower(self, node):
        t, a, kw, path = node.target, node.args, node.kwargs, _path(node)
        where = f"{t} at {path or '<top>'}"
        out = None
        if t is aten._assert_tensor_metadata.default:
            return
        if t is operator.getitem:
            if a[0] in self.known:
                self.known[node] = self.known[a[0]][a[1]]
            else:
                self.names[node] = self.names[a[0]][a[1]]
            return
        if self.fold(node):
            return
        if t is aten.empty_like.default:
            self.scatters[node] = (_shape(node), [])
            return
        if t in (aten.zeros_like.default, aten.ones_like.default, aten.full_like.default):
            # Known from the shape alone, whatever the input holds.
            fill = {aten.zeros_like.default: 0.0, aten.ones_like.default: 1.0}.get(t)
            self.known[node] = torch.full(_shape(node), float(a[1]) if fill is None else fill)
            return
        if t is aten.slice_scatter.default:
            self.slice_scatter(node)
            return
        if t is aten.slice.Tensor and a[0] in self.scatters:
            # A view into a buffer being filled: only ever the target of a copy.
            self.phantoms.add(node)
            return
        if t is aten.unbind.int:
            shape = _shape(a[0])
            dim = (int(a[1]) if len(a) > 1 else 0) % len(shape)
            parts = self.emit("split", [self.value(a[0])], {"dim": dim, "sizes": [1] * shape[dim]}, path,
                              outputs=shape[dim])
            self.names[node] = [self.emit("squeeze", [p], {"dim": dim}, path)[0] for p in parts]
            return
        if t in (aten.type_as.default, aten.to.dtype_layout, aten.lift_fresh_copy.default):
            self.names[node] = self.value(a[0])
            return
        if t is aten.copy.default:
            # Functional copy: src takes dst's place (dst may be a view of a
            # buffer being filled; dtype is f32 throughout).
            if _shape(a[1]) != _shape(node):
                out = self.emit("expand", [self.value(a[1])], {"shape": _shape(node)}, path)
                self.names[node] = out[0]
            else:
                self.names[node] = self.value(a[1])
            return
        if t in UNARY:
            out = self.emit(UNARY[t], [self.value(a[0])], path=path)
        elif t is aten.gelu.default:
            out = self.emit("gelu", [self.value(a[0])], {"approximate": kw.get("approximate", "none")}, path)
        elif t in BINARY:
            op = BINARY[t]
            x, y = a[0], a[1]
            alpha = kw.get("alpha", 1)
            if not isinstance(x, torch.fx.Node):
                raise ExportError(f"{where}: a scalar first operand")
            if not isinstance(y, torch.fx.Node) and op in ("add", "sub", "mul", "div"):
                y = float(y) * (alpha if op in ("add", "sub") else 1)
                if op == "div" and y == 0:
                    raise ExportError(f"{where}: division by the constant 0")
                attrs = {"add": lambda: {"shift": y}, "sub": lambda: {"shift": -y}, "mul": lambda: {"scale": y},
                         "div": lambda: {"scale": 1.0 / y}}[op]()
                out = self.emit("affine", [self.value(x)], attrs, path)
            else:
                yv = self.value(y)
                if alpha != 1:
                    yv = self.emit("affine", [yv], {"scale": float(alpha)}, path)[0]
                out = self.emit(op, [self.value(x), yv], path=path)
        elif t in (aten.add.Scalar, aten.sub.Scalar, aten.mul.Scalar, aten.div.Scalar):
            y = float(a[1])
            if t is aten.div.Scalar and y == 0:
                raise ExportError(f"{where}: division by the constant 0")
            attrs = {aten.add.Scalar: lambda: {"shift": y}, aten.sub.Scalar: lambda: {"shift": -y},
                     aten.mul.Scalar: lambda: {"scale": y}, aten.div.Scalar: lambda: {"scale": 1.0 / y}}[t]()
            out = self.emit("affine", [self.value(a[0])], attrs, path)
        elif t is aten.rsub.Scalar:
            out = self.emit("affine", [self.value(a[0])], {"scale": -1.0, "shift": float(a[1])}, path)
        elif t is aten.pow.Tensor_Scalar and float(a[1]) in (1.0, 2.0, 3.0, 4.0, 0.5, -1.0):
            # Small integer powers as products (WGSL's pow is undefined for a negative base).
            e, x = float(a[1]), self.value(a[0])
            if e == 1.0:
                out = [x]
            elif e == 0.5:
                out = self.emit("sqrt", [x], path=path)
            elif e == -1.0:
                out = self.emit("reciprocal", [x], path=path)
            else:
                sq = self.emit("square", [x], path=path)
                out = {2.0: lambda: sq, 3.0: lambda: self.emit("mul", [sq[0], x], path=path),
                       4.0: lambda: self.emit("square", sq, path=path)}[e]()
        elif t is aten.linear.default:
            ins = [self.value(a[0]), self.value(a[1])] + ([self.value(a[2])] if len(a) > 2 and a[2] is not None else [])
            out = self.emit("linear", ins, path=path)
        elif t in (aten.matmul.default, aten.mm.default, aten.bmm.default):
            out = self.emit("matmul", [self.value(a[0]), self.value(a[1])], path=path)
        elif t in (aten.conv1d.default, aten.conv2d.default, aten.conv3d.default, aten.convolution.default):
            out = self.conv(node)
        elif t is aten.scaled_dot_product_attention.default:
            q, k, v = (self.value(x) for x in a[:3])
            mask = a[3] if len(a) > 3 else kw.get("attn_mask")
            if (a[4] if len(a) > 4 else kw.get("dropout_p", 0.0)) not in (0, 0.0):
                raise ExportError(f"{where}: attention dropout")
            attrs = {"causal": bool(a[5] if len(a) > 5 else kw.get("is_causal", False))}
            scale = kw.get("scale")
            if scale is not None:
                attrs["scale"] = float(scale)
            head_dim = _shape(a[0])[-1]
            per_head_mask = mask is not None and len(_shape(mask)) == 4 and _shape(mask)[1] != 1
            if per_head_mask:
                # A mask per head (T5's relative position bias, with the padding mask
                # added): scores in memory, the mask added before the softmax.
                if attrs["causal"]:
                    raise ExportError(f"{where}: a causal attention with a per-head mask")
                kt = self.emit("permute", [k], {"perm": [0, 1, 3, 2]}, path)[0]
                scores = self.emit("matmul", [q, kt], path=path)[0]
                factor = float(scale) if scale is not None else head_dim ** -0.5
                if factor != 1.0:
                    scores = self.emit("affine", [scores], {"scale": factor}, path)[0]
                scores = self.emit("add", [scores, self.value(mask)], path=path)[0]
                probs = self.emit("softmax", [scores], path=path)[0]
                out = self.emit("matmul", [probs, v], path=path)
            elif head_dim > MAX_HEAD_DIM:
                # The attention op's kernels hold a query row in registers (d ≤ 128): a
                # wider head (Wan's VAE mid-block attends over 384 channels) is composed
                # from matmul, scale and softmax, with the scores in memory.
                if mask is not None or attrs["causal"]:
                    raise ExportError(f"{where}: attention over {head_dim}-wide heads with a mask")
                kt = self.emit("permute", [k], {"perm": [0, 1, 3, 2]}, path)[0]
                scores = self.emit("matmul", [q, kt], path=path)[0]
                factor = float(scale) if scale is not None else head_dim ** -0.5
                scores = self.emit("affine", [scores], {"scale": factor}, path)[0]
                probs = self.emit("softmax", [scores], path=path)[0]
                out = self.emit("matmul", [probs, v], path=path)
            else:
                ins = [q, k, v]
                if mask is not None:
                    ms = _shape(mask)
                    mv = self.value(mask)
                    if len(ms) == 4 and ms[1] == 1:
                        mv = self.emit("squeeze", [mv], {"dim": 1}, path)[0]
                    elif len(ms) == 4 and ms[0] == 1:
                        raise ExportError(f"{where}: per-head masks are not supported")
                    ins.append(mv)
                out = self.emit("attention", ins, attrs, path)
        elif t in (aten.__and__.Tensor, aten.bitwise_and.Tensor, aten.logical_and.default):
            # Booleans are 0/1 values: `and` is a product.
            if any(x.meta["val"].dtype is not torch.bool for x in a[:2] if isinstance(x, torch.fx.Node)):
                raise ExportError(f"{where}: bitwise and of integers")
            out = self.emit("mul", [self.value(a[0]), self.value(a[1])], path=path)
        elif t is aten.where.ScalarOther or t is aten.where.self:
            # where(c, x, y) = c·x + (1 − c)·y over 0/1 conditions (exact, y finite).
            cond, x, y = a[0], a[1], a[2]
            c = self.value(cond)
            cx = self.emit("mul", [c, self.value(x)], path=path)[0]
            if isinstance(y, torch.fx.Node):
                notc = self.emit("affine", [c], {"scale": -1.0, "shift": 1.0}, path)[0]
                cy = self.emit("mul", [notc, self.value(y)], path=path)[0]
            else:
                y = float(y)
                if not abs(y) < float("inf"):
                    raise ExportError(f"{where}: where with the non-finite value {y}")
                cy = self.emit("affine", [c], {"scale": -y, "shift": y}, path)[0]
            out = self.emit("add", [cx, cy], path=path)
        elif t is aten.index.Tensor:
            out = self.index(node)
        elif t is aten.embedding.default:
            # embedding(weight [V, D], indices) -> indices.shape + [D]
            out = self.emit("embedding", [self.value(a[0]), self.value(a[1])], path=path)
        elif t in (aten.softmax.int, aten._softmax.default):
            out = self.softmax(node)
        elif t is aten.layer_norm.default:
            x, normalized = a[0], list(a[1])
            if len(normalized) != 1:
                raise ExportError(f"{where}: layer_norm over {len(normalized)} dimensions")
            ins = [self.value(x)] + [self.value(p) for p in a[2:4] if p is not None]
            if len(ins) == 2 and a[2] is None:
                raise ExportError(f"{where}: layer_norm with a bias but no weight")
            out = self.emit("layer_norm", ins, {"eps": float(a[4] if len(a) > 4 else 1e-5)}, path)
        elif t is aten.rms_norm.default:
            x, normalized = a[0], list(a[1])
            if len(normalized) != 1:
                raise ExportError(f"{where}: rms_norm over {len(normalized)} dimensions")
            ins = [self.value(x)] + ([self.value(a[2])] if len(a) > 2 and a[2] is not None else [])
            eps = a[3] if len(a) > 3 and a[3] is not None else torch.finfo(torch.float32).eps
            out = self.emit("rms_norm", ins, {"eps": float(eps)}, path)
        elif t is aten.group_norm.default:
            ins = [self.value(a[0])] + [self.value(p) for p in a[2:4] if p is not None]
            out = self.emit("group_norm", ins, {"groups": int(a[1]), "eps": float(a[4] if len(a) > 4 else 1e-5)}, path)
        elif t is aten.linalg_vector_norm.default:
            ord_ = float(a[1]) if len(a) > 1 else 2.0
            if ord_ != 2.0:
                raise ExportError(f"{where}: vector norm of order {ord_}")
            rank = len(_shape(a[0]))
            dims = a[2] if len(a) > 2 and a[2] is not None else list(range(rank))
            keep = bool(a[3] if len(a) > 3 else kw.get("keepdim", False))
            v = self.emit("square", [self.value(a[0])], path=path)[0]
            for d in sorted((int(d) % rank for d in dims), reverse=True):
                v = self.emit("sum", [v], {"dim": d, "keepdim": keep}, path)[0]
            out = self.emit("sqrt", [v], path=path)
        elif t in (aten.clamp_min.default, aten.clamp_max.default, aten.clamp.default):
            v = self.value(a[0])
            lo = a[1] if t is not aten.clamp_max.default else None
            hi = a[2] if t is aten.clamp.default and len(a) > 2 else (a[1] if t is aten.clamp_max.default else None)
            if lo is not None:
                v = self.emit("maximum", [v, self.constant(torch.tensor([float(lo)]), "scalar")], path=path)[0]
            if hi is not None:
                v = self.emit("minimum", [v, self.constant(torch.tensor([float(hi)]), "scalar")], path=path)[0]
            out = [v]
        elif t is aten.select.int:
            rank = len(_shape(a[0]))
            dim, index = int(a[1]) % rank, int(a[2])
            index %= _shape(a[0])[dim]
            v = self.emit("slice", [self.value(a[0])], {"dim": dim, "start": index, "end": index + 1, "step": 1}, path)
            out = self.emit("squeeze", v, {"dim": dim}, path)
        elif t is aten.stack.default:
            dim = int(a[1]) if len(a) > 1 else 0
            rank = len(_shape(node))
            parts = [self.emit("unsqueeze", [self.value(x)], {"dim": dim % rank}, path)[0] for x in a[0]]
            out = self.emit("cat", parts, {"dim": dim % rank}, path)
        elif t in REDUCE:
            out = self.reduce(node, REDUCE[t])
        elif t in VIEWS:
            shape = _shape(node)
            out = self.emit("reshape", [self.value(a[0])], {"shape": shape}, path)
        elif t is aten.permute.default:
            out = self.emit("permute", [self.value(a[0])], {"perm": [int(p) % len(_shape(a[0])) for p in a[1]]}, path)
        elif t is aten.transpose.int:
            rank = len(_shape(a[0]))
            perm = list(range(rank))
            i, j = int(a[1]) % rank, int(a[2]) % rank
            perm[i], perm[j] = perm[j], perm[i]
            out = self.emit("permute", [self.value(a[0])], {"perm": perm}, path)
        elif t is aten.t.default:
            out = self.emit("permute", [self.value(a[0])], {"perm": [1, 0]}, path)
        elif t is aten.expand.default:
            out = self.emit("expand", [self.value(a[0])], {"shape": _shape(node)}, path)
        elif t is aten.slice.Tensor:
            dim = int(a[1]) if len(a) > 1 else 0
            start = a[2] if len(a) > 2 and a[2] is not None else 0
            end = a[3] if len(a) > 3 and a[3] is not None else 2**40
            step = a[4] if len(a) > 4 else 1
            size = _shape(a[0])[dim]
            out = self.emit("slice", [self.value(a[0])],
                            {"dim": dim, "start": int(start), "end": int(min(end, size)), "step": int(step)}, path)
        elif t in (aten.split.Tensor, aten.split_with_sizes.default, aten.chunk.default):
            shape = _shape(a[0])
            dim = int(a[2]) if len(a) > 2 else int(kw.get("dim", 0))
            sizes = [s[dim] for s in (list(v.shape) for v in node.meta["val"])]
            outs = self.emit("split", [self.value(a[0])], {"dim": dim, "sizes": sizes}, path, outputs=len(sizes))
            self.names[node] = outs
            return
        elif t is aten.cat.default:
            dim = int(a[1]) if len(a) > 1 else 0
            out = self.emit("cat", [self.value(x) for x in a[0]], {"dim": dim}, path)
        elif t is aten.pad.default and (a[2] if len(a) > 2 else kw.get("mode", "constant")) != "constant":
            raise ExportError(f"{where}: only constant padding")
        elif t in (aten.constant_pad_nd.default, aten.pad.default):
            rank = len(_shape(a[0]))
            flat = list(a[1])
            pads = [[0, 0] for _ in range(rank)]
            for i in range(0, len(flat), 2):  # F.pad order: last dimension first
                if flat[i] < 0 or flat[i + 1] < 0:
                    raise ExportError(f"{where}: negative padding")
                pads[rank - 1 - i // 2] = [int(flat[i]), int(flat[i + 1])]
            if t is aten.pad.default:
                value = a[3] if len(a) > 3 else kw.get("value")
            else:
                value = a[2] if len(a) > 2 else None
            value = float(value) if value is not None else 0.0
            out = self.emit("pad", [self.value(a[0])], {"pads": pads, "value": value}, path)
        elif t in (aten.upsample_nearest1d.vec, aten.upsample_nearest2d.vec, aten.upsample_nearest3d.vec,
                   aten.upsample_nearest2d.default, aten.upsample_nearest3d.default,
                   aten._upsample_nearest_exact1d.vec, aten._upsample_nearest_exact2d.vec,
                   aten._upsample_nearest_exact3d.vec):
            # "nearest-exact" equals "nearest" for the integer factors accepted here.
            xin, xout = _shape(a[0]), _shape(node)
            scale = []
            for i, o in zip(xin[2:], xout[2:]):
                if o % i != 0:
                    raise ExportError(f"{where}: non-integer nearest upsampling {xin} -> {xout}")
                scale.append(o // i)
            out = self.emit("upsample_nearest", [self.value(a[0])], {"scale": scale}, path)
        elif t in (aten._to_copy.default, aten.to.dtype, aten.type_as.default):
            dtype = kw.get("dtype") if t is aten._to_copy.default else (a[1] if t is aten.to.dtype else None)
            src = a[0].meta["val"].dtype if isinstance(a[0], torch.fx.Node) else None
            if dtype in (None, torch.float32, torch.float64) or (dtype is torch.bool and src is torch.bool):
                out = self.emit("reshape", [self.value(a[0])], {"shape": _shape(node)}, path)
            elif dtype is torch.bool and src is not None and not src.is_floating_point:
                # An integer tensor as booleans: min(|x|, 1) (exact on integer values).
                v = self.emit("abs", [self.value(a[0])], path=path)[0]
                out = self.emit("minimum", [v, self.constant(torch.tensor([1.0]), "scalar")], path=path)
            elif dtype is torch.float16:
                out = self.emit("cast", [self.value(a[0])], {"dtype": "f16"}, path)
            elif dtype is torch.bfloat16:
                raise ExportError(f"{where}: a cast to bfloat16 (the opset rounds through f16 only): export the "
                                  "model in float32")
            else:
                raise ExportError(f"{where}: cast to {dtype}")
        else:
            raise ExportError(f"cannot lower {t} (at {path or '<top>'})")
        self.names[node] = out[0]

    def index(self, node):
        """`x[i₀, …, iₙ]` with every index known: a gather of the flattened x
        at the folded flat indices (an `embedding` over rows of one value)."""
        a, path = node.args, _path(node)
        shape = _shape(a[0])
        idx = list(a[1])
        if len(idx) != len(shape) or any(i is None or i not in self.known for i in idx):
            raise ExportError(f"{node.target} at {path or '<top>'}: only indexing every dimension by known indices")
        parts = torch.broadcast_tensors(*[self.known[i].long() for i in idx])
        flat = torch.zeros_like(parts[0])
        for size, part in zip(shape, parts):
            flat = flat * size + part % size
        table = self.emit("reshape", [self.value(a[0])], {"shape": [_numel(a[0]), 1]}, path)[0]
        rows = self.emit("embedding", [table, self.constant(flat, "index")], path=path)[0]
        return self.emit("reshape", [rows], {"shape": _shape(node)}, path)

    def fold(self, node) -> bool:
        """Evaluates `node` now when every tensor it reads is known (tables,
        position encodings, arange): no work left for the runtime."""
        # A factory (arange, full) reads nothing and folds too.
        if not all(x in self.known for x in node.all_input_nodes):
            return False
        if node.target in (aten.empty_like.default, aten.slice_scatter.default):
            return False
        # A broadcast of a constant stays an op: folding it would write every
        # repeated value into the program (e.g. coordinate grids).
        if node.target == aten.expand.default:
            src = node.args[0]
            if isinstance(src, torch.fx.Node) and _numel(node) > self.known[src].numel():
                return False
        sub = lambda v: self.known[v] if isinstance(v, torch.fx.Node) else v  # noqa: E731
        args = torch.fx.node.map_aggregate(node.args, sub)
        kwargs = torch.fx.node.map_aggregate(node.kwargs, sub)
        if "device" in kwargs:
            # Folded on the host: a model exported on the meta device (shapes only,
            # umT5-XXL without its 22 GB of f32 weights) still folds real tables.
            kwargs = {**kwargs, "device": torch.device("cpu")}
        with torch.no_grad():
            self.known[node] = node.target(*args, **kwargs)
        return True

    def slice_scatter(self, node):
        """`out = empty_like(x); out[..., s::k] = v_s` for s in 0..k: an interleave,
        lowered to unsqueeze + cat + reshape once every stride is written."""
        a, path = node.args, _path(node)
        base, src = a[0], a[1]
        dim = int(a[2]) if len(a) > 2 else 0
        start = int(a[3]) if len(a) > 3 and a[3] is not None else 0
        end = a[4] if len(a) > 4 and a[4] is not None else 2**62
        step = int(a[5]) if len(a) > 5 else 1
        if base not in self.scatters:
            raise ExportError(f"slice_scatter into a computed tensor at {path or '<top>'}")
        shape, writes = self.scatters.pop(base)
        rank = len(shape)
        dim %= rank
        if end < shape[dim] or start >= step:
            raise ExportError(f"slice_scatter [{start}:{end}:{step}] at {path or '<top>'}: only interleaves")
        writes = writes + [(dim, start, step, self.value(src))]
        if len(writes) < step:
            self.scatters[node] = (shape, writes)
            return
        if sorted(w[1] for w in writes) != list(range(step)) or any(w[0] != dim or w[2] != step for w in writes):
            raise ExportError(f"slice_scatter at {path or '<top>'}: writes do not interleave")
        parts = [self.emit("unsqueeze", [v], {"dim": dim + 1}, path)[0] for (_, _, _, v) in sorted(writes, key=lambda w: w[1])]
        joined = self.emit("cat", parts, {"dim": dim + 1}, path)[0]
        self.names[node] = self.emit("reshape", [joined], {"shape": shape}, path)[0]

    def conv(self, node):
        a, path = node.args, _path(node)
        x, w = a[0], a[1]
        bias = a[2] if len(a) > 2 else None
        sp = len(_shape(w)) - 2
        if node.target is aten.convolution.default:
            stride, padding, dilation, transposed, _, groups = a[3], a[4], a[5], a[6], a[7], a[8]
            if transposed:
                raise ExportError(f"transposed convolution at {path}")
        else:
            rest = list(a[3:]) + [None] * 4
            stride, padding, dilation, groups = rest[0] or [1] * sp, rest[1] or [0] * sp, rest[2] or [1] * sp, rest[3] or 1
        if isinstance(padding, str):
            raise ExportError(f"conv padding={padding!r} at {path}: export with explicit padding")
        ex = lambda v: [int(v)] * sp if isinstance(v, int) else [int(i) for i in v]  # noqa: E731
        attrs = {"stride": ex(stride), "padding": [[p, p] for p in ex(padding)], "dilation": ex(dilation),
                 "groups": int(groups)}
        ins = [self.value(x), self.value(w)] + ([self.value(bias)] if bias is not None else [])
        return self.emit("conv", ins, attrs, path)

    def softmax(self, node):
        a, path = node.args, _path(node)
        rank = len(_shape(a[0]))
        dim = int(a[1]) % rank
        x = self.value(a[0])
        if dim == rank - 1:
            return self.emit("softmax", [x], path=path)
        perm = list(range(rank))
        perm[dim], perm[-1] = perm[-1], perm[dim]
        y = self.emit("permute", [x], {"perm": perm}, path)[0]
        y = self.emit("softmax", [y], path=path)[0]
        return self.emit("permute", [y], {"perm": perm}, path)

    def reduce(self, node, op):
        a, kw, path = node.args, node.kwargs, _path(node)
        rank = len(_shape(a[0]))
        dims = a[1] if len(a) > 1 else kw.get("dim")
        dims = list(range(rank)) if dims is None or dims == [] else [int(d) % rank for d in dims]
        keep = bool(a[2] if len(a) > 2 else kw.get("keepdim", False))
        v = self.value(a[0])
        # One dimension at a time, highest first so lower indices stay put.
        for d in sorted(dims, reverse=True):
            v = self.emit(op, [v], {"dim": d, "keepdim": keep}, path)[0]
        return [v]


def lower_exported(ep: ExportedProgram, input_names: list[str]) -> dict:
    """The program (a JSON-ready dict) for an exported program."""
    low = Lowering(ep)
    inputs, outputs = low.run(input_names)
    used = {i for n in low.nodes for i in n["inputs"]} | {o["value"] for o in outputs}
    return {
        "format": FORMAT,
        "version": VERSION,
        "inputs": inputs,
        "outputs": outputs,
        "constants": [c for c in low.constants if c["name"] in used],
        "parameters": [p for p in low.parameters if p["name"] in used],
        "nodes": low.nodes,
        "metadata": {"exporter": "kinema_export", "torch": torch.__version__},
    }


def _checkpoint_keys(path: str) -> set[str]:
    from safetensors import safe_open

    files = []
    if os.path.isdir(path):
        files = [os.path.join(path, f) for f in sorted(os.listdir(path)) if f.endswith(".safetensors")]
    else:
        files = [path]
    keys = set()
    for f in files:
        with safe_open(f, "pt") as h:
            keys.update(h.keys())
    return keys


def _numel(node) -> int:
    val = node.meta.get("val")
    return val.numel() if isinstance(val, torch.Tensor) else 0


def export_module(module: torch.nn.Module, example_inputs: tuple, out_dir: str, *, weights: str | None = None,
                  kwargs: dict | None = None, strip_prefix: str = "", input_names: list[str] | None = None,
                  aliases: dict[str, str] | None = None) -> dict:
    """Exports `module` to `out_dir/program.json` (and `weights.safetensors`
    unless `weights` names an existing checkpoint, whose keys are checked).
    Inputs are named after `forward`'s parameters; `kwargs` are fixed
    non-tensor arguments (e.g. `{"return_dict": False}`); `strip_prefix` is
    removed from parameter keys (a wrapper's attribute name, so keys match the
    wrapped model's checkpoint); `input_names` overrides the names taken from
    `forward`'s signature (needed when an argument is a list of tensors);
    `aliases` maps a tied parameter's key to the key the checkpoint stores it
    under (transformers saves `shared.weight` once for the tied token tables),
    used where the checkpoint lacks the first."""
    module = module.eval()
    names = input_names or [p for p in inspect.signature(module.forward).parameters if p not in ("self",)]
    with torch.no_grad():
        ep = torch.export.export(module, tuple(example_inputs), kwargs=kwargs or {})
        # Functional form (in-place slice writes become slice_scatter), nothing decomposed.
        ep = ep.run_decompositions({})
    program = lower_exported(ep, names)
    if strip_prefix:
        for p in program["parameters"]:
            if p["key"].startswith(strip_prefix):
                p["key"] = p["key"][len(strip_prefix):]
    os.makedirs(out_dir, exist_ok=True)
    keys = [p["key"] for p in program["parameters"]]
    if weights is None:
        from safetensors.torch import save_file

        state = module.state_dict()
        save_file({k: state[strip_prefix + k].detach().to(torch.float32).contiguous() for k in keys},
                  os.path.join(out_dir, "weights.safetensors"))
    else:
        have = _checkpoint_keys(weights)
        for p in program["parameters"]:
            alias = (aliases or {}).get(p["key"])
            if p["key"] not in have and alias in have:
                p["key"] = alias
        keys = [p["key"] for p in program["parameters"]]
        missing = [k for k in keys if k not in have]
        if missing:
            raise ExportError(f"{weights} lacks {len(missing)} parameter(s), e.g. {missing[:3]}")
    with open(os.path.join(out_dir, "program.json"), "w") as f:
        json.dump(program, f, separators=(",", ":"))
    return program
