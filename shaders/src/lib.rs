//! Kinema's WGSL kernels. Each kernel is a real `.wgsl` file beside this one,
//! listed in [`CATALOG`] and validated by naga in `cargo test`; tile sizes are
//! `override` constants that the GPU delegate sets per pipeline. WGSL has no
//! `#include`: code several kernels share (`activation.wgsl`, `epilogue.wgsl`,
//! `conv_common.wgsl`, `attention_common.wgsl`, `row_reduce.wgsl`) is prepended here.

/// A WGSL kernel: its name, source text, compute entry point, and the
/// optional GPU feature it needs (every kernel that needs one has a twin
/// that does not).
#[derive(Debug, Clone, Copy)]
pub struct Kernel {
    pub name: &'static str,
    pub source: &'static str,
    pub entry: &'static str,
    pub needs: Needs,
}

/// Optional device features a kernel relies on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    Nothing,
    /// Subgroup operations (`subgroupBroadcast`), with subgroups of exactly 8.
    Subgroups8,
    /// Subgroup operations (`subgroupShuffle`, `subgroup_size`), subgroups of
    /// any width from 4 to 128.
    Subgroups,
    /// f16 arithmetic (`enable f16`, WebGPU's `shader-f16`).
    F16,
}

macro_rules! kernel {
    ($name:literal $(, $prefix:literal)*) => {
        Kernel {
            name: $name,
            source: concat!($(include_str!($prefix),)* include_str!(concat!($name, ".wgsl"))),
            entry: "main",
            needs: Needs::Nothing,
        }
    };
}

/// Batched matmul with transposed operands and a fused bias + activation
/// epilogue, tiled through workgroup memory (the path for real GPUs).
pub const MATMUL: Kernel = kernel!("matmul", "activation.wgsl", "epilogue.wgsl", "matmul_operands.wgsl");

/// The same matmul register-blocked wider (8 × 4 outputs per thread, vec4
/// workgroup tiles: 128 × 64 or 64 × 64 blocks), a candidate for the tuner.
pub const MATMUL_BLOCKED: Kernel =
    kernel!("matmul_blocked", "activation.wgsl", "epilogue.wgsl", "matmul_operands.wgsl");

/// The same matmul for adapters with 8-wide subgroups (lavapipe): rows of A
/// shared with `subgroupBroadcast` instead of workgroup memory.
pub const MATMUL_SG8: Kernel = Kernel {
    needs: Needs::Subgroups8,
    ..kernel!("matmul_sg8", "activation.wgsl", "epilogue.wgsl", "matmul_vec4_operands.wgsl")
};

/// The same matmul for subgroups of any width (4 to 128, as the invocation
/// runs): the 16 rows of A a workgroup shares passed round with
/// `subgroupShuffle`, a candidate for the tuner on real GPUs.
pub const MATMUL_SUBGROUP: Kernel = Kernel {
    needs: Needs::Subgroups,
    ..kernel!("matmul_subgroup", "activation.wgsl", "epilogue.wgsl", "matmul_vec4_operands.wgsl")
};

/// The tiled matmul in f16 arithmetic (inputs rounded to f16, f16 sums over
/// each BK slice of k, f32 across slices): a reduced-precision candidate
/// for the tuner, on adapters with `shader-f16`.
pub const MATMUL_F16: Kernel = Kernel {
    needs: Needs::F16,
    source: concat!(
        "enable f16;\n",
        include_str!("activation.wgsl"),
        include_str!("epilogue.wgsl"),
        include_str!("matmul_operands.wgsl"),
        include_str!("matmul_f16.wgsl")
    ),
    ..kernel!("matmul_f16")
};

/// The same matmul for adapters that run invocations on a CPU without 8-wide
/// subgroups (SwiftShader): no workgroup memory, no barriers.
pub const MATMUL_DIRECT: Kernel = kernel!("matmul_direct", "activation.wgsl", "epilogue.wgsl", "matmul_operands.wgsl");

/// Split-K's last step: the planes of partial sums a matmul kernel wrote for
/// each part of k, added up, then bias and activation.
pub const MATMUL_SPLIT_SUM: Kernel = kernel!("matmul_split_sum", "activation.wgsl");

/// conv3d (stride, padding before/after, dilation, groups, bias, activation)
/// as an implicit GEMM tiled through workgroup memory.
pub const CONV3D: Kernel = kernel!("conv3d", "activation.wgsl", "conv_common.wgsl");

/// conv3d for adapters with 8-wide subgroups (lavapipe).
pub const CONV3D_SG8: Kernel =
    Kernel { needs: Needs::Subgroups8, ..kernel!("conv3d_sg8", "activation.wgsl", "conv_common.wgsl") };

/// conv3d for few output channels (≤ [`CONV3D_NARROW_CHANNELS`]): 4 positions ×
/// 4 channels per invocation, where the GEMM kernels' 64-channel tiles would
/// mostly compute nothing.
pub const CONV3D_NARROW: Kernel = kernel!("conv3d_narrow", "activation.wgsl", "conv_common.wgsl");

/// The most output channels (per group) a conv may have for [`CONV3D_NARROW`].
pub const CONV3D_NARROW_CHANNELS: usize = 16;

/// Flash attention (online softmax), self or cross, optional mask, causal.
pub const ATTENTION: Kernel = kernel!("attention", "attention_common.wgsl");

/// Flash attention for adapters with 8-wide subgroups (lavapipe).
pub const ATTENTION_SG8: Kernel =
    Kernel { needs: Needs::Subgroups8, ..kernel!("attention_sg8", "attention_common.wgsl") };

/// The score-matrix attention's softmax: a block of q·kᵀ scores (written by
/// a matmul kernel) scaled, masked and normalised in place, row by row.
pub const ATTENTION_SCORES: Kernel = kernel!("attention_scores", "row_reduce.wgsl");

/// Elementwise unary math (activations, exp, log, sqrt, …) after `x·a + b`.
pub const UNARY: Kernel = kernel!("unary", "activation.wgsl");

/// Elementwise binary math with broadcasting (add, sub, mul, div, max, min, pow).
pub const BINARY: Kernel = kernel!("binary");

/// Softmax over the last axis.
pub const SOFTMAX: Kernel = kernel!("softmax", "row_reduce.wgsl");

/// layer_norm, rms_norm and group_norm.
pub const NORM: Kernel = kernel!("norm");

/// sum / mean / max / min over one axis.
pub const REDUCE: Kernel = kernel!("reduce");

/// Strided region copy: permute, slice, expand, concat, pad, nearest upsample.
pub const COPY: Kernel = kernel!("copy");

/// Fill with a value.
pub const FILL: Kernel = kernel!("fill");

/// Rotary position embedding (interleaved or half-split pairs).
pub const ROTARY: Kernel = kernel!("rotary");

/// f32 ↔ f16 (packed in u32, no shader-f16 feature needed).
pub const CAST: Kernel = kernel!("cast");

/// Row gather (the `embedding` op), over a table in windows of rows.
pub const GATHER: Kernel = kernel!("gather");

/// Every kernel this crate ships.
pub const CATALOG: &[Kernel] = &[
    MATMUL,
    MATMUL_BLOCKED,
    MATMUL_SG8,
    MATMUL_SUBGROUP,
    MATMUL_F16,
    MATMUL_DIRECT,
    MATMUL_SPLIT_SUM,
    CONV3D,
    CONV3D_SG8,
    CONV3D_NARROW,
    ATTENTION,
    ATTENTION_SG8,
    ATTENTION_SCORES,
    UNARY,
    BINARY,
    SOFTMAX,
    NORM,
    REDUCE,
    COPY,
    FILL,
    ROTARY,
    CAST,
    GATHER,
];
