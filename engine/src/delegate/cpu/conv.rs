//! conv3d on the host as an explicit GEMM in bounded chunks: for a run of
//! output rows, gather the input patches into a column matrix
//! `[c_in/groups · kd·kh·kw, positions]` (im2col), then one `matrixmultiply`
//! sgemm per chunk writes `weights · columns` straight into the output.
//! Chunks are spread over the cores; each thread reuses one column buffer of
//! at most [`COLUMN_BUDGET`] floats, so memory does not grow with the video.

use super::{activation, gemm, parallel};
use crate::Result;
use crate::delegate::Conv3d;

/// Floats in one thread's column buffer (4 MiB).
const COLUMN_BUDGET: usize = 1 << 20;

/// One chunk: output rows `rows` (flattened (oD, oH) pairs) of one (batch, group).
struct Chunk {
    batch: usize,
    group: usize,
    rows: std::ops::Range<usize>,
}

/// The output, shared by threads that write disjoint parts of it.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: each chunk writes only its own (batch, group channels, positions)
// block of the output; no two chunks overlap (see `conv3d`).
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

/// `out = act(conv3d(x, w) + bias)`; see [`Conv3d`].
pub fn conv3d(spec: &Conv3d, x: &[f32], w: &[f32], bias: Option<&[f32]>) -> Result<Vec<f32>> {
    let len = spec.check(x.len(), w.len(), bias.map(<[f32]>::len))?;
    let mut out = vec![0f32; len];
    if len == 0 {
        return Ok(out);
    }
    let [od, oh, ow] = spec.output();
    let k = spec.k();
    let rows_per_chunk = (COLUMN_BUDGET / (k * ow).max(1)).clamp(1, od * oh);
    let mut chunks = Vec::new();
    for batch in 0..spec.batch {
        for group in 0..spec.groups {
            for start in (0..od * oh).step_by(rows_per_chunk) {
                chunks.push(Chunk { batch, group, rows: start..(start + rows_per_chunk).min(od * oh) });
            }
        }
    }
    let threads = parallel::threads_for(spec.macs());
    let ptr = OutPtr(out.as_mut_ptr());
    // A pointwise conv reads its input as the column matrix itself.
    let pointwise = spec.kernel == [1; 3] && spec.stride == [1; 3] && spec.padding == [[0; 2]; 3];
    parallel::for_each_share(chunks, threads, |share| {
        let mut columns = Vec::new();
        for chunk in share {
            let b = if pointwise {
                let start = (chunk.batch * spec.c_in + chunk.group * spec.c_in_g()) * spec.positions();
                Columns { data: &x[start + chunk.rows.start * ow..], row_stride: spec.positions() }
            } else {
                im2col(spec, x, &chunk, &mut columns);
                Columns { data: &columns, row_stride: chunk.rows.len() * ow }
            };
            // SAFETY: `check` verified the lengths of x, w, bias and out; the
            // chunk's output block lies inside `out` and no other chunk writes it.
            unsafe { gemm_chunk(spec, w, bias, &chunk, b, ptr) };
        }
    });
    Ok(out)
}

/// Gathers the chunk's input patches into `columns`, `[k, positions of the
/// chunk]`, writing every element (zeros in the padding) so the buffer needs no
/// clearing; along W the valid run is computed once and copied.
fn im2col(spec: &Conv3d, x: &[f32], chunk: &Chunk, columns: &mut Vec<f32>) {
    let [d, h, w] = spec.input;
    let [kd, kh, kw] = spec.kernel;
    let [_, oh, ow] = spec.output();
    let cols = chunk.rows.len() * ow;
    columns.resize(spec.k() * cols, 0.0);
    let c_in_g = spec.c_in_g();
    let x_base = (chunk.batch * spec.c_in + chunk.group * c_in_g) * d * h * w;
    let offset = |axis: usize, o: usize, kk: usize| {
        (o * spec.stride[axis] + kk * spec.dilation[axis]) as isize - spec.padding[axis][0] as isize
    };
    let (sw, pw) = (spec.stride[2], spec.padding[2][0] as isize);
    let mut row = 0;
    for ci in 0..c_in_g {
        let plane = &x[x_base + ci * d * h * w..][..d * h * w];
        for kz in 0..kd {
            for ky in 0..kh {
                for kx in 0..kw {
                    let dst = &mut columns[row * cols..][..cols];
                    row += 1;
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
            }
        }
    }
}

/// The `[k, chunk positions]` matrix a chunk multiplies: im2col's buffer, or
/// for a pointwise conv the input itself.
struct Columns<'a> {
    data: &'a [f32],
    row_stride: usize,
}

/// `out[batch, group channels, chunk positions] = act(w[group] · columns + bias)`.
///
/// # Safety
/// `out` must point to the conv's whole output, and no other thread may
/// touch this chunk's block of it.
unsafe fn gemm_chunk(spec: &Conv3d, w: &[f32], bias: Option<&[f32]>, chunk: &Chunk, columns: Columns, out: OutPtr) {
    let [_, _, ow] = spec.output();
    let (m, k, positions) = (spec.c_out_g(), spec.k(), spec.positions());
    let cols = chunk.rows.len() * ow;
    let c0 = chunk.group * m;
    // SAFETY: the block starts at (batch, channel c0, position rows.start·ow)
    // and spans m rows of stride `positions` and `cols` columns, inside out.
    let block = unsafe { out.0.add((chunk.batch * spec.c_out + c0) * positions + chunk.rows.start * ow) };
    debug_assert!(k == 0 || columns.data.len() >= (k - 1) * columns.row_stride + cols);
    // SAFETY: w holds c_out × k; columns holds k rows of `cols` at its row
    // stride (checked above in debug builds; by construction in all); the block as above.
    unsafe {
        gemm::sgemm(
            m,
            k,
            cols,
            1.0,
            w.as_ptr().add(c0 * k),
            k as isize,
            1,
            columns.data.as_ptr(),
            columns.row_stride as isize,
            1,
            0.0,
            block,
            positions as isize,
            1,
        );
    }
    for i in 0..m {
        // SAFETY: row i of the block: `cols` floats inside the output.
        let row = unsafe { std::slice::from_raw_parts_mut(block.add(i * positions), cols) };
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

    #[test]
    fn matches_the_definition_with_strides_padding_dilation_groups() {
        let specs = [
            Conv3d::new(1, 1, 1, [1, 1, 1], [1, 1, 1]),
            Conv3d::new(2, 3, 4, [3, 5, 7], [3, 3, 3]).padded([1, 1, 1]),
            Conv3d { stride: [2, 1, 3], dilation: [1, 2, 1], groups: 2, ..Conv3d::new(1, 4, 6, [5, 9, 8], [2, 3, 2]) },
            Conv3d { padding: [[2, 0], [0, 1], [1, 2]], ..Conv3d::new(1, 2, 3, [4, 4, 5], [3, 2, 3]) },
            Conv3d { groups: 2, ..Conv3d::new(2, 4, 6, [3, 5, 7], [1, 1, 1]) }, // pointwise
        ];
        for (i, spec) in specs.iter().enumerate() {
            let x = crate::random::uniform(spec.batch * spec.c_in * spec.input.iter().product::<usize>(), i as u64);
            let w = crate::random::uniform(spec.c_out * spec.k(), 10 + i as u64);
            let got = conv3d(spec, &x, &w, None).unwrap();
            let want = direct(spec, &x, &w);
            assert_eq!(got.len(), want.len());
            let err = got.iter().zip(&want).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(err < 1e-5, "{spec:?}: {err}");
        }
    }
}
