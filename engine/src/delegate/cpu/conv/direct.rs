//! conv3d of stride 1 without a column matrix or packed input: a micro-kernel
//! that reads its B rows straight out of the input (XNNPACK's indirection idea).
//!
//! Over the (padded) input grid (see [`Grid`]), output column `n` of tap `t`
//! and input channel `ci` reads `x[ci·volume + offset(t) + n]`: for a strip of
//! `nr` output columns that lie in one output row, depth `p = ci·taps + t` of
//! the product (the weights' own order) is a run of `nr` consecutive input
//! floats at a fixed offset from the strip's grid index. Channel-major depths
//! keep a block's rows in few pages and lines: a 3×3×3 tap's 27 rows of one
//! channel lie in 3 planes, the 3 shifts of a row in the same lines. So each depth's offset is tabled once per call, the
//! weights are packed once per call into strips of `mr` output channels in
//! that depth order, and an `mr × nr` tile of the output accumulates every
//! depth of a block in registers (no copy of the input at all, and the output
//! is read back only once per block of [`KC`] depths).
//!
//! Work is cut into chunks of whole output rows ([`super::chunks`]) whose
//! output block stays in L2 while every depth block adds into it; within a
//! block, one strip of input rows (in L1) serves every channel tile.

use super::{Grid, epilogue, out_block};
use crate::delegate::Conv3d;
use crate::delegate::cpu::parallel::{self, OutPtr};
use crate::delegate::cpu::tile::Kernel;

/// Depths per block: the block's weights (`c_out/groups × KC`) and the
/// chunk's output block share a core's L2.
const KC: usize = 128;

/// Floats of a chunk's output block (128 KiB).
const OUT_BUDGET: usize = 1 << 15;

/// The direct method for a stride-1 conv whose lengths `check` has verified,
/// by `kernel` (one of [`tile::kernels`](crate::delegate::cpu::tile::kernels)):
/// `out` is the whole output.
pub(super) fn conv3d(
    kernel: Kernel,
    spec: &Conv3d,
    threads: usize,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    let (mr, nr) = (kernel.mr, kernel.nr);
    let grid = Grid::new(spec, x);
    let xp = &grid.data[..];
    let [_, oh, ow] = spec.output();
    let (m, cig, k) = (spec.c_out_g(), spec.c_in_g(), spec.k());
    // Depth p = ci·taps + t reads input row ci of tap t.
    let (volume, offsets) = (grid.volume, &grid.offsets);
    let rows: Vec<isize> = (0..cig).flat_map(|ci| offsets.iter().map(move |&o| (ci * volume + o) as isize)).collect();
    let farthest = rows.iter().copied().max().unwrap_or(0) as usize;
    // Rows of a strip copied into a local buffer: nr apart.
    let local_rows: Vec<isize> = (0..KC.min(k)).map(|p| (p * nr) as isize).collect();
    // Each group's weights in tiles of mr channels (zero rows past m),
    // depth-major: a channel's weights are already in depth order.
    let tiles = m.div_ceil(mr);
    let mut packed = vec![0f32; spec.groups * tiles * k * mr];
    for (g, group) in packed.chunks_exact_mut((tiles * k * mr).max(1)).enumerate().take(spec.groups) {
        for co in 0..m {
            let (tile, i) = (co / mr, co % mr);
            for (p, &v) in w[(g * m + co) * k..][..k].iter().enumerate() {
                group[(tile * k + p) * mr + i] = v;
            }
        }
    }
    let positions = spec.positions();
    let ptr = OutPtr(out.as_mut_ptr());
    parallel::for_each_share(super::chunks(spec, OUT_BUDGET, m, threads), threads, |share| {
        let mut local = Vec::new();
        for chunk in share {
            let x0 = (chunk.batch * spec.c_in + chunk.group * cig) * volume;
            // The chunk's strips: (grid index, output position, columns).
            let strips: Vec<(usize, usize, usize)> = chunk
                .rows
                .clone()
                .flat_map(|r| {
                    let g = r / oh * grid.plane + r % oh * grid.wp;
                    (0..ow).step_by(nr).map(move |c| (g + c, r * ow + c, nr.min(ow - c)))
                })
                .collect();
            let weights = &packed[chunk.group * tiles * k * mr..];
            for k0 in (0..k).step_by(KC) {
                let kc = KC.min(k - k0);
                for &(g, pos, cols) in &strips {
                    // nr floats from every row of the block, read in place
                    // unless the strip's last floats would pass the input's end.
                    let (b, offsets) = if x0 + farthest + g + nr <= xp.len() {
                        (xp[x0 + g..].as_ptr(), &rows[k0..k0 + kc])
                    } else {
                        local.clear();
                        local.resize(kc * nr, 0.0);
                        for (p, dst) in local.chunks_exact_mut(nr).enumerate() {
                            let src = &xp[(x0 + g + rows[k0 + p] as usize).min(xp.len())..];
                            let n = src.len().min(nr);
                            dst[..n].copy_from_slice(&src[..n]);
                        }
                        (local.as_ptr(), &local_rows[..kc])
                    };
                    for tile in 0..tiles {
                        let c0 = chunk.group * m + tile * mr;
                        let a = &weights[(tile * k + k0) * mr..][..kc * mr];
                        // SAFETY: every offset read is inside xp (the strip's
                        // last float, x0 + g + farthest + nr − 1, checked above)
                        // or the local copy; the tile's rows (min(mr, m − tile·mr)
                        // channels, `positions` apart) and columns (`cols` from
                        // `pos`, inside one output row) are this chunk's only:
                        // no other thread writes them.
                        unsafe {
                            kernel.run(
                                a,
                                b,
                                offsets,
                                ptr.at((chunk.batch * spec.c_out + c0) * positions + pos),
                                positions,
                                (m - tile * mr).min(mr),
                                cols,
                                k0 > 0,
                            );
                        }
                    }
                }
            }
            // SAFETY: the chunk's output block, which only this thread writes.
            unsafe { epilogue(spec, bias, &chunk, out_block(spec, &chunk, ptr)) };
        }
    });
}
