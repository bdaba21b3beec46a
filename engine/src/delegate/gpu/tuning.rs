//! The static tuning table: which kernel configuration each kind of adapter
//! gets, unless the adapter's own table ([`super::tune`], filled by `kinema
//! tune`) has a winner for the shape class ([`matmul_for`], [`attention_for`]).
//! `kinema bench --tune` times every candidate on the adapter at hand (the
//! results behind these choices are in docs/benchmarks.md).
//!
//! | adapter                                  | matmul, conv3d        | attention        |
//! |------------------------------------------|-----------------------|------------------|
//! | CPU rasteriser with 8-wide subgroups (lavapipe) | `Subgroups8 { 8 }` | `Subgroups8 { 8 }` |
//! | other CPU adapters (SwiftShader)         | matmul `Direct(16 × 16)`, conv3d `Tiled` | `Tiled` |
//! | anything else (real GPUs)                | `Tiled(16 × 16, BK 16)` | `Tiled`        |
//!
//! Where the adapter has subgroups of 4 to 128 lanes, `matmul_subgroup.wgsl`
//! (any width, read as it runs) is one of the tuner's candidates; on every
//! adapter, split-K (`Config::SplitK`, for tall-skinny products) is one of
//! its matmul candidates, and attention by the score matrix between two
//! matmuls ([`Variant::Scores`]) one of its attention candidates.
//!
//! On lavapipe every load is paid per invocation, so the subgroup kernels
//! (which share loads with subgroupBroadcast) win by 5–10×. On SwiftShader
//! (Chromium's WebGPU without a GPU), whose invocations run on the CPU too but
//! without 8-wide subgroups, the direct matmul — no workgroup memory, no
//! barriers — ran 2.5× the tiled one (`web/bench/run.sh --tune`). On real GPUs
//! workgroup-memory tiling is the known-good shape, and the subgroup kernels'
//! assumption of 8-wide subgroups does not hold.

use super::GpuDevice;
use super::attention::Variant;
use super::matmul::{Config, Tiles};
use kinema_shaders::Needs;

/// A CPU adapter with 8-wide subgroups: lavapipe.
fn is_cpu_rasteriser(dev: &GpuDevice) -> bool {
    dev.supports(Needs::Subgroups8) && dev.info.device_type == wgpu::DeviceType::Cpu
}

/// The matmul (and conv3d) configuration for this adapter.
pub fn matmul(dev: &GpuDevice) -> Config {
    if is_cpu_rasteriser(dev) {
        Config::Subgroups8 { wg_rows: 8 }
    } else if dev.info.device_type == wgpu::DeviceType::Cpu {
        Config::Direct { wg_m: 16, wg_n: 16 }
    } else {
        Config::Tiled(Tiles::DEFAULT)
    }
}

/// The conv3d kernel for this conv on this adapter: the narrow kernel for few
/// output channels per group (a GEMM tile of 64 channels would compute 3 and
/// idle for the rest: the embedded model's 16 → 3 conv head took 345 ms
/// instead of 2191 in a profiled forward on lavapipe), else the implicit GEMM
/// with the matmul's configuration, named as the kernel that runs (conv3d
/// has no direct or blocked kernel: those stand for the tiled one), so that
/// it is one of [`conv_candidates`].
pub fn conv(dev: &GpuDevice, spec: &crate::delegate::Conv3d) -> super::conv::Kernel {
    if spec.c_out_g() <= kinema_shaders::CONV3D_NARROW_CHANNELS {
        return super::conv::Kernel::Narrow;
    }
    match matmul(dev) {
        c @ Config::Subgroups8 { .. } => super::conv::Kernel::Gemm(c),
        c => super::conv::Kernel::Gemm(Config::Tiled(c.conv_tiles())),
    }
}

/// The conv3d kernel for `spec` on this adapter: the tuned winner of its
/// shape class, else [`conv`]'s.
pub fn conv_for(dev: &GpuDevice, spec: &crate::delegate::Conv3d) -> super::conv::Kernel {
    match dev.tuning().entries.get(&super::tune::Class::conv(spec)) {
        Some(super::tune::Entry { choice: super::tune::Choice::Conv(k), .. }) => *k,
        _ => conv(dev, spec),
    }
}

/// The attention kernel for this adapter.
pub fn attention(dev: &GpuDevice) -> Variant {
    if is_cpu_rasteriser(dev) { Variant::Subgroups8 { wg_rows: 8 } } else { Variant::Tiled }
}

/// The matmul configuration for `spec` on this adapter: the tuned winner of
/// its shape class ([`super::tune`]), else [`matmul`]'s.
pub fn matmul_for(dev: &GpuDevice, spec: &crate::delegate::Matmul) -> Config {
    match dev.tuning().entries.get(&super::tune::Class::matmul(spec)) {
        Some(super::tune::Entry { choice: super::tune::Choice::Matmul(c), .. }) => *c,
        _ => matmul(dev),
    }
}

/// The attention kernel for `spec` on this adapter: the tuned winner of its
/// shape class, else [`attention`]'s.
pub fn attention_for(dev: &GpuDevice, spec: &crate::delegate::Attention) -> Variant {
    match dev.tuning().entries.get(&super::tune::Class::attention(spec)) {
        Some(super::tune::Entry { choice: super::tune::Choice::Attention(v), .. }) => *v,
        _ => attention(dev),
    }
}

/// Matmul/conv3d configurations worth timing on this adapter.
pub fn candidates(dev: &GpuDevice) -> Vec<Config> {
    let limits = dev.device.limits();
    let mut list: Vec<Config> = [
        (16, 16, 16),
        (16, 16, 8),
        (8, 8, 16),
        (8, 8, 8),
        (8, 16, 16),
        (16, 8, 16),
        (8, 32, 8),
        (4, 16, 16),
        (16, 16, 32),
    ]
    .into_iter()
    .map(|(wg_m, wg_n, bk)| Tiles { wg_m, wg_n, bk })
    .filter(|t| t.check(&limits).is_ok())
    .map(Config::Tiled)
    .collect();
    // 128 × 64 and 64 × 64 blocks of 8 × 4 per thread.
    list.extend(
        [(16, 16, 16), (8, 16, 16), (16, 16, 8), (8, 16, 32)]
            .map(|(wg_m, wg_n, bk)| Config::Blocked(Tiles { wg_m, wg_n, bk }))
            .into_iter()
            .filter(|c| c.check_limits(&limits).is_ok()),
    );
    list.extend([(8, 8), (4, 16), (16, 8), (16, 16)].map(|(wg_m, wg_n)| Config::Direct { wg_m, wg_n }));
    // Split-K for tall-skinny products: k in 4 or 16 parts.
    list.extend(
        [4, 16]
            .map(|slices| Config::SplitK { slices, tiles: Tiles::DEFAULT })
            .into_iter()
            .filter(|c| c.check_limits(&limits).is_ok()),
    );
    if dev.supports(Needs::Subgroups8) {
        list.extend([1, 2, 4, 8, 16].map(|wg_rows| Config::Subgroups8 { wg_rows }));
    }
    if dev.precision() == super::tune::Precision::F16 && dev.supports(Needs::F16) {
        list.extend(
            [(16, 16, 16), (8, 16, 16), (16, 16, 32)]
                .map(|(wg_m, wg_n, bk)| Config::F16(Tiles { wg_m, wg_n, bk }))
                .into_iter()
                .filter(|c| c.check_limits(&limits).is_ok()),
        );
    }
    if dev.supports(Needs::Subgroups) {
        // Workgroups of whole subgroups, at the widest width the adapter may pick.
        let widest = dev.info.subgroup_max_size.max(1);
        list.extend(
            [32, 64, 128, 256]
                .into_iter()
                .filter(|lanes| lanes % widest == 0)
                .map(|lanes| Config::Subgroups { lanes })
                .filter(|c| c.check_limits(&limits).is_ok()),
        );
    }
    list
}

/// conv3d kernels worth timing on this adapter: the narrow one, and the
/// implicit GEMM with each tiled and subgroup configuration of [`candidates`]
/// (conv3d has no direct, blocked or any-width subgroup kernel).
pub fn conv_candidates(dev: &GpuDevice) -> Vec<super::conv::Kernel> {
    let gemm = candidates(dev).into_iter().filter(|c| matches!(c, Config::Tiled(_) | Config::Subgroups8 { .. }));
    std::iter::once(super::conv::Kernel::Narrow).chain(gemm.map(super::conv::Kernel::Gemm)).collect()
}

/// Attention kernels worth timing on this adapter.
pub fn attention_candidates(dev: &GpuDevice) -> Vec<Variant> {
    let mut list = vec![Variant::Tiled, Variant::Scores { rows: 256 }, Variant::Scores { rows: 4096 }];
    if dev.supports(Needs::Subgroups8) {
        list.extend([1, 2, 4, 8].map(|wg_rows| Variant::Subgroups8 { wg_rows }));
    }
    list
}
