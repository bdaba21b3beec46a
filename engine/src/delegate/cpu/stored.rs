//! Products whose B is a weight as stored — f16, bf16, int8, int4 — natively
//! on x86-64 with AVX2 + FMA or AVX-512: each panel of B is widened from the
//! stored bytes straight into the packed layout a register tile
//! ([`super::tile`]) reads, on the thread that multiplies it. A weight is
//! widened once per call, by every thread at once (each its own columns), and
//! is never whole as f32.
//!
//! GotoBLAS blocking: per [`KC`] depths the threads pack up to [`MB`] rows
//! of A as `mr`-tall strips, once for all of them; then each thread, over its
//! run of output columns, packs B per [`NC`] columns (`KC × NC`, kept in L2)
//! as strips `nr` wide, and each strip of A meets every strip of B, the tile adding an `mr × nr`
//! block of the output over the block's depths in registers. The bias and
//! activation are applied to each output block after its last depths, while
//! it is still in cache.

use super::activation;
use super::parallel::{self, OutPtr};
use super::tile::Kernel;
use crate::delegate::{Activation, Matmul};
use crate::weights::convert;
use crate::weights::dtype::Dtype;

/// Depths per packed block: the output is read and written once per block,
/// so deeper blocks move less of it (Wan's FFN down-projection, k = 8,960,
/// 1,560 × 1,536 × 8,960 bf16 on two Zen 3 threads: 134–139 GFLOP/s at 256,
/// 144–151 at 512); a strip of A (`KC × mr`, 12 KiB for the AVX2 tile) stays
/// in L1 while the strips of B pass it.
const KC: usize = 512;

/// Columns per packed block of B (`KC × NC`: 256 KiB, in L2).
const NC: usize = 128;

/// Strips of A per block that meets one packed B (in L2 with it).
const MC_STRIPS: usize = 16;

/// Rows of A packed at a time (4 MiB at [`KC`] depths): B is widened once
/// per block of them, so once for products of up to this many rows.
const MB: usize = 2048;

/// B as it is stored: rows of `row_len` values of `dtype` (f16, bf16 or f32;
/// int8 with one scale per row; int4, two a byte, with a scale per `group`).
#[derive(Clone, Copy)]
pub struct StoredB<'a> {
    pub dtype: Dtype,
    pub bytes: &'a [u8],
    pub quant: Quant<'a>,
    pub row_len: usize,
}

/// How a stored B is quantized.
#[derive(Clone, Copy)]
pub enum Quant<'a> {
    /// Floats of the stored dtype.
    None,
    /// `q · scales[row]`.
    Int8 { scales: &'a [f32] },
    /// `(nibble − 8) · scales[row · groups + j / group]`.
    Int4 { scales: &'a [f32], group: usize },
}

impl StoredB<'_> {
    /// Whether `widen` can decode this B: a float dtype when not quantized.
    pub fn check(&self) -> Result<(), convert::ConvertError> {
        match self.quant {
            Quant::None => convert::to_f32(self.dtype, &[], &mut []),
            _ => Ok(()),
        }
    }

    /// Values `start .. start + out.len()` of stored row `row`, widened to f32.
    /// The caller keeps every index inside B (rows and scales checked against
    /// the product's shape) and has passed [`check`](Self::check).
    fn widen(&self, row: usize, start: usize, out: &mut [f32]) {
        let at = row * self.row_len + start;
        match self.quant {
            Quant::None => {
                let size = self.dtype.size();
                let src = &self.bytes[at * size..(at + out.len()) * size];
                match self.dtype {
                    // bf16 is f32's top half: a shift, which the compiler
                    // vectorizes (half's per-value conversion does not).
                    Dtype::BF16 => {
                        for (o, c) in out.iter_mut().zip(src.chunks_exact(2)) {
                            *o = f32::from_bits(u32::from(u16::from_le_bytes([c[0], c[1]])) << 16);
                        }
                    }
                    // f16 by the slice conversion (F16C where the CPU has it)
                    // when the bytes are aligned, as in a checkpoint's memory
                    // map (this route is x86-64's: little-endian, as stored).
                    Dtype::F16 if bytemuck::try_cast_slice::<u8, half::f16>(src).is_ok() => {
                        use half::slice::HalfFloatSliceExt;
                        bytemuck::cast_slice::<u8, half::f16>(src).convert_to_f32_slice(out);
                    }
                    // Cannot fail: the dtype passed `check` and the lengths agree.
                    _ => {
                        let _ = convert::to_f32(self.dtype, src, out);
                    }
                }
            }
            Quant::Int8 { scales } => {
                let (s, len) = (scales[row], out.len());
                for (o, &q) in out.iter_mut().zip(&self.bytes[at..at + len]) {
                    *o = q as i8 as f32 * s;
                }
            }
            Quant::Int4 { scales, group } => {
                let groups = self.row_len.div_ceil(group);
                let (q, s) = (&self.bytes[row * self.row_len.div_ceil(2)..], &scales[row * groups..][..groups]);
                for (i, o) in out.iter_mut().enumerate() {
                    let j = start + i;
                    let nibble = (q[j / 2] >> (4 * (j % 2))) & 0x0f;
                    *o = (nibble as i32 - 8) as f32 * s[j / group];
                }
            }
        }
    }
}

/// `out = act(op(A) · B + bias)` for every batch of `spec`, B as stored
/// (`[n, k]` rows when `spec.trans_b`, else `[k, n]`), by `kernel`. The
/// caller has checked every length against `spec`.
pub fn product(kernel: Kernel, spec: &Matmul, a: &[f32], b: StoredB<'_>, bias: Option<&[f32]>, out: &mut [f32]) {
    let (m, n, k) = (spec.m, spec.n, spec.k);
    let (mr, nr) = (kernel.mr, kernel.nr);
    let threads = parallel::threads_for(spec.batch as f64 * m as f64 * n as f64 * k as f64);
    // The columns in one run of whole strips per thread, each with its own
    // buffers: B's packed block and one stored run widened.
    let strips = n.div_ceil(nr);
    let parts = threads.min(strips).max(1);
    let ranges: Vec<(usize, usize)> = (0..parts)
        .map(|i| (i * strips / parts * nr, ((i + 1) * strips / parts * nr).min(n)))
        .filter(|(c0, c1)| c0 < c1)
        .collect();
    let nc_max = NC.min(n).div_ceil(nr) * nr;
    let mut scratch: Vec<(Vec<f32>, Vec<f32>)> =
        ranges.iter().map(|_| (vec![0f32; KC.min(k) * nc_max], vec![0f32; KC.max(NC)])).collect();
    let mut ap = vec![0f32; KC.min(k) * MB.min(m).div_ceil(mr) * mr];
    let offsets: Vec<isize> = (0..KC).map(|p| (p * nr) as isize).collect();
    let (ab, ar, ac) = spec.a_strides();
    let stored_rows = if spec.trans_b { n } else { k };
    let ptr = OutPtr(out.as_mut_ptr());
    for batch in 0..spec.batch {
        let a = &a[batch * ab..];
        let b_row0 = batch * stored_rows;
        for pc in (0..k).step_by(KC) {
            let kc = KC.min(k - pc);
            let last = pc + kc == k;
            for ib in (0..m).step_by(MB) {
                let mbw = MB.min(m - ib);
                // A's rows ib.., packed once for every thread (each packs some
                // strips): strip t holds depth p of row ib + t·mr + i at (t·kc + p)·mr + i.
                let strips_a = mbw.div_ceil(mr);
                let ap = &mut ap[..strips_a * kc * mr];
                let per = strips_a.div_ceil(threads.max(1)).max(1);
                let groups: Vec<(usize, &mut [f32])> =
                    ap.chunks_mut(per * kc * mr).enumerate().map(|(g, c)| (g * per, c)).collect();
                parallel::for_each_share(groups, threads, |share| {
                    for (t0, group) in share {
                        for (t, strip) in group.chunks_exact_mut(kc * mr).enumerate() {
                            for i in 0..mr {
                                let row = ib + (t0 + t) * mr + i;
                                if row < m {
                                    let src = &a[row * ar + pc * ac..];
                                    (0..kc).for_each(|p| strip[p * mr + i] = src[p * ac]);
                                } else {
                                    (0..kc).for_each(|p| strip[p * mr + i] = 0.0);
                                }
                            }
                        }
                    }
                });
                let ap = &*ap;
                let items: Vec<_> = ranges.iter().zip(scratch.iter_mut()).collect();
                parallel::for_each_share(items, threads, |share| {
                    for (&(c0, c1), (bp, run)) in share {
                        for jc in (c0..c1).step_by(NC) {
                            let ncw = NC.min(c1 - jc);
                            let strips_b = ncw.div_ceil(nr);
                            // B's columns jc.., strip s holding depth p of column jc + s·nr + jj at (s·kc + p)·nr + jj.
                            let bp = &mut bp[..strips_b * kc * nr];
                            if !ncw.is_multiple_of(nr) {
                                bp.fill(0.0); // the last strip's columns past n
                            }
                            if spec.trans_b {
                                for j in 0..ncw {
                                    let run = &mut run[..kc];
                                    b.widen(b_row0 + jc + j, pc, run);
                                    let strip = &mut bp[j / nr * kc * nr + j % nr..];
                                    run.iter().enumerate().for_each(|(p, &v)| strip[p * nr] = v);
                                }
                            } else {
                                for p in 0..kc {
                                    let run = &mut run[..ncw];
                                    b.widen(b_row0 + pc + p, jc, run);
                                    for (s, vals) in run.chunks(nr).enumerate() {
                                        bp[(s * kc + p) * nr..][..vals.len()].copy_from_slice(vals);
                                    }
                                }
                            }
                            for ic in (ib..ib + mbw).step_by(MC_STRIPS * mr) {
                                let mcw = (MC_STRIPS * mr).min(ib + mbw - ic);
                                for t in 0..mcw.div_ceil(mr) {
                                    let (row, rows) = (ic + t * mr, mr.min(mcw - t * mr));
                                    let a_strip = &ap[(row - ib) / mr * kc * mr..][..kc * mr];
                                    for s in 0..strips_b {
                                        let col = jc + s * nr;
                                        // SAFETY: the strip of A holds kc·mr floats
                                        // and the strip of B kc rows of nr; the tile
                                        // writes rows × cols of this batch's output
                                        // from (row, col), inside this share's
                                        // columns c0..c1, which no other share writes.
                                        unsafe {
                                            kernel.run(
                                                a_strip,
                                                bp[s * kc * nr..].as_ptr(),
                                                &offsets[..kc],
                                                ptr.at((batch * m + row) * n + col),
                                                n,
                                                rows,
                                                nr.min(jc + ncw - col),
                                                pc > 0,
                                            );
                                        }
                                    }
                                }
                                if last && (bias.is_some() || spec.activation != Activation::None) {
                                    let bias = bias.map(|b| &b[jc..jc + ncw]);
                                    for row in ic..ic + mcw {
                                        // SAFETY: this share's columns of one output row.
                                        let out = unsafe {
                                            std::slice::from_raw_parts_mut(ptr.at((batch * m + row) * n + jc), ncw)
                                        };
                                        activation::apply_row(spec.activation, out, bias);
                                    }
                                }
                            }
                        }
                    }
                });
            }
        }
    }
}
