//! conv3d on the host as GEMMs in bounded chunks, three ways:
//!
//! - **Direct** (stride 1, natively on x86-64 with AVX-512 or AVX2 + FMA;
//!   [`direct`]): a register tile ([`super::tile`]) reads the shifted input
//!   below in place, each block of its taps × channels summed in registers.
//! - **Shifted** (stride 1, natively, elsewhere): over the (padded) input's own grid, the
//!   output at grid index `n = z·H·W + y·W + x` is `Σ_tap W_tap · X[n + offset(tap)]`,
//!   so each kernel tap is one sgemm whose B is the input itself, shifted: no
//!   column matrix is built at all. A chunk of grid columns accumulates its taps
//!   in a small buffer (kept in cache), then the positions that are real
//!   outputs are copied out (the grid's extra columns, ≈ (k−1)/W of them, are
//!   dropped). Padding, if any, is one copy of the input into a padded grid.
//! - **im2col** (any stride): for a run of output rows, gather the input
//!   patches into a column matrix `[c_in/groups · kd·kh·kw, positions]`, then
//!   one sgemm per chunk writes `weights · columns` straight into the output.
//!   Natively the columns are a plain matrix that `matrixmultiply` packs; in
//!   wasm32 im2col writes them straight into our sgemm's packed layout and the
//!   weights are packed once per call ([`Route`]), so nothing is packed twice.
//!
//! Chunks are spread over the cores, as many per thread; each thread reuses
//! one buffer of at most [`COLUMN_BUDGET`] floats, so memory does not grow with
//! the video.

use super::activation;
use super::gemm::{
    self,
    blocked::{Panels, ROUTE, Route},
};
use super::parallel::{self, OutPtr};
use super::tile::Kernel;
use crate::Result;
use crate::delegate::Conv3d;

mod direct;

/// Floats in one thread's column buffer (4 MiB).
const COLUMN_BUDGET: usize = 1 << 20;

/// Floats in one packed panel of columns (256 KiB): with the weights' panel and
/// the chunk's output it stays in a core's L2 while the sgemm reads it.
const PANEL_BUDGET: usize = 1 << 16;

/// One chunk: output rows `rows` (flattened (oD, oH) pairs) of one (batch, group).
struct Chunk {
    batch: usize,
    group: usize,
    rows: std::ops::Range<usize>,
}

/// Floats of a shifted chunk's accumulator (`c_out/groups × columns`, 512 KiB):
/// it stays in a core's L2 while every tap adds into it.
const SHIFTED_BUDGET: usize = 1 << 17;

/// A 1×1×1 conv of stride 1 without padding: a plain matrix product.
fn pointwise(spec: &Conv3d) -> bool {
    spec.kernel == [1; 3] && spec.stride == [1; 3] && spec.padding == [[0; 2]; 3]
}

/// How a conv forms its products.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Method {
    /// A column matrix per chunk, by this route.
    Im2col(Route),
    /// One sgemm per kernel tap over the shifted input (stride 1 only).
    Shifted,
    /// A register tile that reads the input in place ([`direct`]; stride 1,
    /// by one of the tiles this CPU runs, [`super::tile::kernels`]).
    Direct(Kernel),
}

/// `out = act(conv3d(x, w) + bias)`; see [`Conv3d`].
pub fn conv3d(spec: &Conv3d, x: &[f32], w: &[f32], bias: Option<&[f32]>) -> Result<Vec<f32>> {
    let mut out = vec![0f32; spec.check(x.len(), w.len(), bias.map(<[f32]>::len))?];
    conv3d_into(spec, x, w, bias, &mut out)?;
    Ok(out)
}

/// [`conv3d`] into `out`, which must hold exactly the output (whatever it
/// held before is overwritten, never read).
pub fn conv3d_into(spec: &Conv3d, x: &[f32], w: &[f32], bias: Option<&[f32]>, out: &mut [f32]) -> Result<()> {
    // The shifted sgemms are strided: natively, where `matrixmultiply` packs them.
    let method = match ROUTE {
        Route::Strided if spec.stride == [1; 3] && !pointwise(spec) => {
            super::tile::best().map_or(Method::Shifted, Method::Direct)
        }
        route => Method::Im2col(route),
    };
    conv3d_by(method, None, spec, x, w, bias, out)
}

/// [`conv3d_into`] by `method`, on `threads` (or as many as its size is worth).
fn conv3d_by(
    method: Method,
    threads: Option<usize>,
    spec: &Conv3d,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
) -> Result<()> {
    let len = spec.check(x.len(), w.len(), bias.map(<[f32]>::len))?;
    super::check_out("conv3d", out, len)?;
    if len == 0 {
        return Ok(());
    }
    if spec.k() == 0 {
        // No sum: the bias and activation of zeros.
        out.fill(0.0);
    }
    let threads = threads.unwrap_or_else(|| parallel::threads_for(spec.macs()));
    let route = match method {
        Method::Im2col(route) => route,
        Method::Shifted => {
            shifted(spec, threads, x, w, bias, out);
            return Ok(());
        }
        Method::Direct(kernel) => {
            direct::conv3d(kernel, spec, threads, x, w, bias, out);
            return Ok(());
        }
    };
    let [_, _, ow] = spec.output();
    let (m, k) = (spec.c_out_g(), spec.k());
    // (After `check`: the spec's shape is only trusted from here.)
    let (budget, depth) = im2col_budget(spec, route);
    let chunks = chunks(spec, budget, depth, threads);
    let ptr = OutPtr(out.as_mut_ptr());
    // A pointwise conv reads its input as the column matrix itself.
    let pointwise = pointwise(spec);
    let route = if pointwise { Route::Strided } else { route };
    // The packed route packs each group's weights once, for every chunk.
    let packed_w: Vec<Vec<f32>> = match route {
        Route::Strided => Vec::new(),
        Route::Packed => (0..spec.groups)
            .map(|g| {
                let mut packed = Vec::new();
                // SAFETY: `check` verified w holds c_out × k: group g's m rows of k.
                unsafe { Panels::a(m, k).pack(&mut packed, w[g * m * k..].as_ptr(), k as isize, 1) };
                packed
            })
            .collect(),
    };
    parallel::for_each_share(chunks, threads, |share| {
        let (mut columns, mut row) = (Vec::new(), Vec::new());
        for chunk in share {
            let cols = chunk.rows.len() * ow;
            // SAFETY (all three): `check` verified the lengths of x, w, bias
            // and out; the chunk's output block lies inside `out` and no other
            // chunk writes it.
            let block = unsafe { out_block(spec, &chunk, ptr) };
            match route {
                _ if pointwise => {
                    let start = (chunk.batch * spec.c_in + chunk.group * spec.c_in_g()) * spec.positions();
                    unsafe {
                        gemm_strided(spec, w, &chunk, &x[start + chunk.rows.start * ow..], spec.positions(), block)
                    };
                }
                Route::Strided => {
                    columns.resize(k * cols, 0.0);
                    for (p, dst) in columns.chunks_exact_mut(cols).enumerate() {
                        im2col_row(spec, x, &chunk, p, dst);
                    }
                    unsafe { gemm_strided(spec, w, &chunk, &columns, cols, block) };
                }
                Route::Packed => {
                    // Panel by panel of k: im2col writes the panel's rows in
                    // place, and the sgemm reads them while they are in cache.
                    row.resize(cols, 0.0);
                    let (weights, positions) = (Panels::a(m, k), spec.positions() as isize);
                    for p0 in (0..k).step_by(gemm::blocked::KC) {
                        let (offset, kc) = weights.panel(p0);
                        let layout = Panels::b(kc, cols);
                        columns.resize(layout.len(), 0.0);
                        for p in 0..kc {
                            im2col_row(spec, x, &chunk, p0 + p, &mut row);
                            layout.put_row(&mut columns, p, &row);
                        }
                        let (a, beta) = (&packed_w[chunk.group][offset..], if p0 == 0 { 0.0 } else { 1.0 });
                        unsafe {
                            gemm::blocked::sgemm_packed(m, kc, cols, 1.0, a, &columns, beta, block, positions, 1)
                        };
                    }
                }
            }
            unsafe { epilogue(spec, bias, &chunk, block) };
        }
    });
    Ok(())
}

/// A stride-1 conv's input as a grid: the input itself, or a padded copy of
/// it where the conv pads, with each kernel tap's offset in it. The output at
/// (z, y, x) sums tap t's weights times the grid at `z·plane + y·wp + x +
/// offsets[t]`, in every input channel's grid (`volume` floats apart).
struct Grid<'a> {
    data: std::borrow::Cow<'a, [f32]>,
    wp: usize,
    plane: usize,
    volume: usize,
    offsets: Vec<usize>,
}

impl<'a> Grid<'a> {
    fn new(spec: &Conv3d, x: &'a [f32]) -> Self {
        assert_eq!(spec.stride, [1; 3], "a conv's input grid is for stride 1");
        let [d, h, wd] = spec.input;
        let p = spec.padding;
        let (dp, hp, wp) = (d + p[0][0] + p[0][1], h + p[1][0] + p[1][1], wd + p[2][0] + p[2][1]);
        let data = if p == [[0; 2]; 3] {
            std::borrow::Cow::Borrowed(x)
        } else {
            let mut grid = vec![0f32; spec.batch * spec.c_in * dp * hp * wp];
            for (plane, src) in grid.chunks_exact_mut(dp * hp * wp).zip(x.chunks_exact(d * h * wd)) {
                for (z, src) in src.chunks_exact(h * wd).enumerate() {
                    for (y, row) in src.chunks_exact(wd).enumerate() {
                        let at = ((z + p[0][0]) * hp + y + p[1][0]) * wp + p[2][0];
                        plane[at..at + wd].copy_from_slice(row);
                    }
                }
            }
            std::borrow::Cow::Owned(grid)
        };
        let [kd, kh, kw] = spec.kernel;
        let [dd, dh, dw] = spec.dilation;
        let plane = hp * wp;
        let offsets = (0..kd)
            .flat_map(|a| (0..kh).flat_map(move |b| (0..kw).map(move |c| a * dd * plane + b * dh * wp + c * dw)))
            .collect();
        Self { data, wp, plane, volume: dp * plane, offsets }
    }
}

/// The shifted method (see the module's docs) for a stride-1 conv whose
/// lengths `check` has verified: `out` is the whole output.
fn shifted(spec: &Conv3d, threads: usize, x: &[f32], w: &[f32], bias: Option<&[f32]>, out: &mut [f32]) {
    let input = Grid::new(spec, x);
    let (xp, plane, wp, volume, offsets) = (&input.data[..], input.plane, input.wp, input.volume, &input.offsets);
    let [od, oh, ow] = spec.output();
    // Grid columns up to the last real output; every tap's shifted read stays
    // inside the grid: (kd−1)·dd·plane + (kh−1)·dh·wp + (kw−1)·dw + grid − 1 = volume − 1.
    let grid = (od - 1) * plane + (oh - 1) * wp + ow;
    let (m, cig, k, taps) = (spec.c_out_g(), spec.c_in_g(), spec.k(), offsets.len());
    let positions = od * oh * ow;
    let blocks = spec.batch * spec.groups;
    let most = (SHIFTED_BUDGET / m.max(1)).clamp(64, grid.max(64));
    let mut per_block = grid.div_ceil(most);
    while !(blocks * per_block).is_multiple_of(threads.max(1)) && per_block < grid {
        per_block += 1;
    }
    let spans: Vec<(usize, std::ops::Range<usize>)> = (0..blocks)
        .flat_map(|b| (0..per_block).map(move |i| (b, i * grid / per_block..(i + 1) * grid / per_block)))
        .filter(|(_, r)| !r.is_empty())
        .collect();
    let ptr = OutPtr(out.as_mut_ptr());
    parallel::for_each_share(spans, threads, |share| {
        let mut acc = Vec::new();
        for (block, cols) in share {
            let (batch, group) = (block / spec.groups, block % spec.groups);
            let n = cols.len();
            acc.resize(m * n, 0.0);
            let x0 = (batch * spec.c_in + group * cig) * volume;
            for (t, off) in offsets.iter().enumerate() {
                // SAFETY: A is group g's m rows of k weights, read at column
                // stride `taps` (ci) from tap t: inside w (`check`). B is cig
                // rows `volume` apart of n columns starting at x0 + off +
                // cols.start, the last at x0 + (cig−1)·volume + off + grid − 1
                // < x0 + cig·volume (see `grid`): inside xp. C is acc, m × n.
                unsafe {
                    gemm::sgemm(
                        m,
                        cig,
                        n,
                        1.0,
                        w.as_ptr().add(group * m * k + t),
                        k as isize,
                        taps as isize,
                        xp.as_ptr().add(x0 + off + cols.start),
                        volume as isize,
                        1,
                        if t == 0 { 0.0 } else { 1.0 },
                        acc.as_mut_ptr(),
                        n as isize,
                        1,
                    );
                }
            }
            // The grid columns that are outputs, run by run along x.
            let mut g = cols.start;
            while g < cols.end {
                let (z, y, xx) = (g / plane, g % plane / wp, g % wp);
                let row_start = g - xx;
                if y < oh && xx < ow {
                    let (first, len) = ((z * oh + y) * ow + xx, (row_start + ow).min(cols.end) - g);
                    for i in 0..m {
                        let c = group * m + i;
                        // SAFETY: output (batch, c, z, y, xx..xx+len) lies inside
                        // `out`, and only this grid span maps to it.
                        let row = unsafe {
                            std::slice::from_raw_parts_mut(ptr.at((batch * spec.c_out + c) * positions + first), len)
                        };
                        row.copy_from_slice(&acc[i * n + (g - cols.start)..][..len]);
                        if let Some(b) = bias.map(|b| b[c]) {
                            row.iter_mut().for_each(|v| *v += b);
                        }
                        activation::apply_row(spec.activation, row, None);
                    }
                }
                g = row_start + wp; // the next grid row
            }
        }
    });
}

/// im2col's chunk budget by route: floats, and the depth each column takes
/// (all of k for a column matrix; one panel of it for a packed one).
fn im2col_budget(spec: &Conv3d, route: Route) -> (usize, usize) {
    match route {
        Route::Strided => (COLUMN_BUDGET, spec.k()),
        Route::Packed => (PANEL_BUDGET, spec.k().min(gemm::blocked::KC)),
    }
}

/// The chunks: each (batch, group)'s output rows cut evenly into runs whose
/// `depth × columns` fit `budget` floats (im2col's columns, [`COLUMN_BUDGET`];
/// a packed panel of them, [`PANEL_BUDGET`]; the direct method's output
/// block), into a multiple of `threads` runs in all where the rows allow, so
/// every thread gets as much work.
fn chunks(spec: &Conv3d, budget: usize, depth: usize, threads: usize) -> Vec<Chunk> {
    let [od, oh, ow] = spec.output();
    let rows = od * oh;
    let most = (budget / (depth * ow).max(1)).clamp(1, rows);
    let blocks = spec.batch * spec.groups;
    let mut per_block = rows.div_ceil(most);
    while !(blocks * per_block).is_multiple_of(threads.max(1)) && per_block < rows {
        per_block += 1;
    }
    let mut chunks = Vec::new();
    for batch in 0..spec.batch {
        for group in 0..spec.groups {
            for i in 0..per_block {
                chunks.push(Chunk { batch, group, rows: i * rows / per_block..(i + 1) * rows / per_block });
            }
        }
    }
    chunks
}

/// Row `p` of the chunk's column matrix — input channel, kz, ky, kx of the
/// kernel, over the chunk's output positions — into `dst`, every element
/// written (zeros in the padding) so buffers need no clearing; along W the
/// valid run is computed once and copied.
fn im2col_row(spec: &Conv3d, x: &[f32], chunk: &Chunk, p: usize, dst: &mut [f32]) {
    let [d, h, w] = spec.input;
    let [_, kh, kw] = spec.kernel;
    let [_, oh, ow] = spec.output();
    let taps = spec.kernel.iter().product::<usize>();
    let (ci, kz, ky, kx) = (p / taps, p % taps / (kh * kw), p % (kh * kw) / kw, p % kw);
    let plane = &x[((chunk.batch * spec.c_in + chunk.group * spec.c_in_g() + ci) * d * h * w)..][..d * h * w];
    let offset = |axis: usize, o: usize, kk: usize| {
        (o * spec.stride[axis] + kk * spec.dilation[axis]) as isize - spec.padding[axis][0] as isize
    };
    let (sw, pw) = (spec.stride[2], spec.padding[2][0] as isize);
    // Output columns ox with 0 <= ox·sw + shift < w read the input.
    let shift = (kx * spec.dilation[2]) as isize - pw;
    let lo = if shift >= 0 { 0 } else { ((-shift) as usize).div_ceil(sw) };
    let hi = if (w as isize) <= shift { 0 } else { ((w as isize - shift) as usize).div_ceil(sw) };
    let (lo, hi) = (lo.min(ow), hi.clamp(lo.min(ow), ow));
    for (r, out_row) in chunk.rows.clone().zip(dst.chunks_exact_mut(ow)) {
        let (iz, iy) = (offset(0, r / oh, kz), offset(1, r % oh, ky));
        if iz < 0 || iz >= d as isize || iy < 0 || iy >= h as isize || lo == hi {
            out_row.fill(0.0);
            continue;
        }
        let src = &plane[(iz as usize * h + iy as usize) * w..][..w];
        out_row[..lo].fill(0.0);
        out_row[hi..].fill(0.0);
        let start = (lo * sw) as isize + shift;
        if sw == 1 {
            out_row[lo..hi].copy_from_slice(&src[start as usize..][..hi - lo]);
        } else {
            for (v, s) in out_row[lo..hi].iter_mut().zip(src[start as usize..].iter().step_by(sw)) {
                *v = *s;
            }
        }
    }
}

/// Where the chunk's output block starts: (batch, the group's first
/// channel, the chunk's first position); its rows are `positions` apart.
///
/// # Safety
/// `out` must point to the conv's whole output.
unsafe fn out_block(spec: &Conv3d, chunk: &Chunk, out: OutPtr) -> *mut f32 {
    let [_, _, ow] = spec.output();
    let c0 = chunk.group * spec.c_out_g();
    // SAFETY: that element is inside the output.
    unsafe { out.0.add((chunk.batch * spec.c_out + c0) * spec.positions() + chunk.rows.start * ow) }
}

/// `block = w[group] · columns`, the columns a `[k, chunk positions]` matrix
/// with rows `row_stride` apart (im2col's buffer, or a pointwise conv's input).
///
/// # Safety
/// `block` must be the chunk's output block ([`out_block`]), which no other
/// thread touches.
unsafe fn gemm_strided(spec: &Conv3d, w: &[f32], chunk: &Chunk, columns: &[f32], row_stride: usize, block: *mut f32) {
    let [_, _, ow] = spec.output();
    let (m, k) = (spec.c_out_g(), spec.k());
    let cols = chunk.rows.len() * ow;
    assert!(k == 0 || columns.len() >= (k - 1) * row_stride + cols);
    // SAFETY: w holds c_out × k (checked by `check`); columns holds k rows of
    // `cols` at its row stride (asserted); the block as the caller promises.
    unsafe {
        gemm::sgemm(
            m,
            k,
            cols,
            1.0,
            w.as_ptr().add(chunk.group * m * k),
            k as isize,
            1,
            columns.as_ptr(),
            row_stride as isize,
            1,
            0.0,
            block,
            spec.positions() as isize,
            1,
        );
    }
}

/// Bias and activation over the chunk's output block.
///
/// # Safety
/// As [`gemm_strided`].
unsafe fn epilogue(spec: &Conv3d, bias: Option<&[f32]>, chunk: &Chunk, block: *mut f32) {
    let [_, _, ow] = spec.output();
    let (m, positions) = (spec.c_out_g(), spec.positions());
    let c0 = chunk.group * m;
    for i in 0..m {
        // SAFETY: row i of the block: `cols` floats inside the output.
        let row = unsafe { std::slice::from_raw_parts_mut(block.add(i * positions), chunk.rows.len() * ow) };
        if let Some(b) = bias.map(|b| b[c0 + i]) {
            row.iter_mut().for_each(|v| *v += b);
        }
        activation::apply_row(spec.activation, row, None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition, one output at a time.
    fn direct(spec: &Conv3d, x: &[f32], w: &[f32]) -> Vec<f32> {
        let [d, h, wd] = spec.input;
        let [kd, kh, kw] = spec.kernel;
        let [od, oh, ow] = spec.output();
        let (cig, cog) = (spec.c_in_g(), spec.c_out_g());
        let mut out = Vec::new();
        for b in 0..spec.batch {
            for co in 0..spec.c_out {
                let g = co / cog;
                for (z, y, xo) in (0..od).flat_map(|z| (0..oh).flat_map(move |y| (0..ow).map(move |x| (z, y, x)))) {
                    let mut acc = 0f64;
                    for ci in 0..cig {
                        for (a, bb, c) in
                            (0..kd).flat_map(|a| (0..kh).flat_map(move |bb| (0..kw).map(move |c| (a, bb, c))))
                        {
                            let pos = |o: usize, k: usize, axis: usize| {
                                (o * spec.stride[axis] + k * spec.dilation[axis]) as isize
                                    - spec.padding[axis][0] as isize
                            };
                            let (iz, iy, ix) = (pos(z, a, 0), pos(y, bb, 1), pos(xo, c, 2));
                            if iz < 0 || iy < 0 || ix < 0 || iz >= d as isize || iy >= h as isize || ix >= wd as isize {
                                continue;
                            }
                            let xi = (((b * spec.c_in + g * cig + ci) * d + iz as usize) * h + iy as usize) * wd
                                + ix as usize;
                            let wi = (((co * cig + ci) * kd + a) * kh + bb) * kw + c;
                            acc += x[xi] as f64 * w[wi] as f64;
                        }
                    }
                    out.push(acc as f32);
                }
            }
        }
        out
    }

    /// [`conv3d_by`] into a buffer of NaNs: every output must be written, none read.
    fn by(method: Method, threads: usize, spec: &Conv3d, x: &[f32], w: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
        let mut out = vec![f32::NAN; spec.batch * spec.c_out * spec.output().iter().product::<usize>()];
        conv3d_by(method, Some(threads), spec, x, w, bias, &mut out).unwrap();
        out
    }

    #[test]
    fn matches_the_definition_with_strides_padding_dilation_groups() {
        let specs = [
            Conv3d::new(1, 1, 1, [1, 1, 1], [1, 1, 1]),
            Conv3d::new(2, 3, 4, [3, 5, 7], [3, 3, 3]).padded([1, 1, 1]),
            Conv3d { stride: [2, 1, 3], dilation: [1, 2, 1], groups: 2, ..Conv3d::new(1, 4, 6, [5, 9, 8], [2, 3, 2]) },
            Conv3d { padding: [[2, 0], [0, 1], [1, 2]], ..Conv3d::new(1, 2, 3, [4, 4, 5], [3, 2, 3]) },
            Conv3d { groups: 2, ..Conv3d::new(2, 4, 6, [3, 5, 7], [1, 1, 1]) }, // pointwise
            Conv3d::new(1, 12, 5, [3, 4, 11], [3, 3, 3]).padded([1, 1, 1]),     // k = 324: two panels
            // Stride 1 with dilation, asymmetric padding and groups (the shifted method's grid).
            Conv3d {
                dilation: [2, 1, 2],
                padding: [[2, 0], [1, 0], [0, 3]],
                groups: 3,
                ..Conv3d::new(2, 6, 9, [5, 4, 6], [2, 3, 3])
            },
            // The VAE's: padded outside the conv, many grid rows per chunk.
            Conv3d::new(1, 8, 16, [4, 18, 34], [3, 3, 3]),
        ];
        for (i, spec) in specs.iter().enumerate() {
            let x = crate::random::uniform(spec.batch * spec.c_in * spec.input.iter().product::<usize>(), i as u64);
            let w = crate::random::uniform(spec.c_out * spec.k(), 10 + i as u64);
            let want = direct(spec, &x, &w);
            // Three threads: several chunks per (batch, group) wherever there are rows.
            // Stride 1: the shifted method, and the direct one by every tile this CPU runs.
            let shifted: Vec<Method> = std::iter::once(Method::Shifted)
                .chain(super::super::tile::kernels().into_iter().map(Method::Direct))
                .filter(|_| spec.stride == [1; 3])
                .collect();
            for method in
                [Method::Im2col(Route::Strided), Method::Im2col(Route::Packed)].into_iter().chain(shifted.clone())
            {
                let got = by(method, 3, spec, &x, &w, None);
                assert_eq!(got.len(), want.len());
                let err = got.iter().zip(&want).fold(0f32, |m, (a, b)| m.max((a - b).abs() / (1.0 + b.abs())));
                assert!(err < 1e-5, "{method:?} {spec:?}: {err}");
            }
            // Bias and a fused activation: each method's epilogue as im2col's.
            let spec = &Conv3d { activation: crate::delegate::Activation::Silu, ..*spec };
            let bias = crate::random::uniform(spec.c_out, 20 + i as u64);
            let want = by(Method::Im2col(Route::Strided), 1, spec, &x, &w, Some(&bias));
            for method in [Method::Im2col(Route::Packed)].into_iter().chain(shifted.iter().copied()) {
                let got = by(method, 3, spec, &x, &w, Some(&bias));
                let err = got.iter().zip(&want).fold(0f32, |m, (a, b)| m.max((a - b).abs() / (1.0 + b.abs())));
                assert!(got.len() == want.len() && err < 1e-5, "{method:?} {spec:?} with bias and silu: {err}");
            }
        }
    }

    /// Chunks cover every output row once, stay inside the column budget, and
    /// come in whole rounds for the threads where the rows allow.
    #[test]
    fn chunks_cover_the_rows_in_whole_rounds() {
        let specs = [
            Conv3d::new(1, 64, 64, [8, 32, 32], [3, 3, 3]).padded([1, 1, 1]), // the benchmark's: 15 by budget
            Conv3d { groups: 3, ..Conv3d::new(1, 3, 3, [1, 1, 5], [1, 1, 1]) }, // one row per group
            Conv3d::new(2, 1, 1, [2, 3, 4], [1, 1, 1]),
        ];
        for spec in &specs {
            let [od, oh, ow] = spec.output();
            for (route, threads) in
                [Route::Strided, Route::Packed].into_iter().flat_map(|r| (1..=4).map(move |t| (r, t)))
            {
                let (budget, depth) = im2col_budget(spec, route);
                let chunks = chunks(spec, budget, depth, threads);
                let mut seen = vec![0; spec.batch * spec.groups * od * oh];
                for c in &chunks {
                    assert!(!c.rows.is_empty() && c.rows.len() * ow * depth <= budget.max(depth * ow));
                    for r in c.rows.clone() {
                        seen[(c.batch * spec.groups + c.group) * od * oh + r] += 1;
                    }
                }
                assert!(seen.iter().all(|&n| n == 1), "{spec:?} {route:?} on {threads} threads");
                if spec.batch * spec.groups * od * oh >= threads * 2 {
                    assert_eq!(chunks.len() % threads, 0, "{spec:?} {route:?} on {threads} threads: {}", chunks.len());
                }
            }
        }
    }
}
