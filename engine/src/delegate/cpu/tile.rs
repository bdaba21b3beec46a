//! Register tiles of a product `C = A · B` whose B rows are read in place
//! through a table of offsets (XNNPACK's indirection idea): the CPU
//! delegate's kernels for products whose B is already in memory row by row —
//! a conv's shifted input ([`super::conv`]) — so nothing is packed but A.
//!
//! A is packed as strips of `mr` rows, depth-major (`a[p·mr + i]`); depth
//! p's B row is the `nr` floats at `b + offsets[p]`. Per depth a tile loads
//! its B row once, broadcasts each of its `mr` weights, and adds `mr × nr`
//! products into accumulators that stay in registers for the whole block.
//! Two tiles, the widest this CPU runs chosen by [`best`]:
//!
//! - **AVX-512**, 8 × 32: sixteen zmm accumulators; per depth two loads of
//!   B, eight broadcasts, sixteen FMAs; partial tiles stored through masks.
//! - **AVX2 + FMA**, 6 × 16: twelve ymm accumulators; per depth two loads of
//!   B, six broadcasts, twelve FMAs.

/// One register tile: `C[rows × cols] (+)= A · B`.
///
/// `a` holds `kc = offsets.len()` depths of `mr` weights each, depth p's B
/// row is the `nr` floats at `b + offsets[p]`, and C's rows are `ldc` apart.
/// Only the first `rows ≤ mr` rows and `cols ≤ nr` columns of the tile are
/// written (added to when `accumulate`).
type TileFn = unsafe fn(&[f32], *const f32, &[isize], *mut f32, usize, usize, usize, bool);

/// A register tile this CPU runs: its shape and its code.
#[derive(Clone, Copy)]
pub struct Kernel {
    /// Which instructions it is written in.
    pub name: &'static str,
    /// Rows (A's strips, C's rows) and columns (B's rows, C's columns) of the tile.
    pub mr: usize,
    pub nr: usize,
    tile: TileFn,
}

impl std::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}×{}", self.name, self.mr, self.nr)
    }
}

impl PartialEq for Kernel {
    fn eq(&self, other: &Self) -> bool {
        (self.name, self.mr, self.nr) == (other.name, other.mr, other.nr)
    }
}

impl Kernel {
    /// Computes one tile; see [`TileFn`] for the operands.
    ///
    /// # Safety
    /// `a.len() == offsets.len() · mr`; every `b + offsets[p] .. + nr` must be
    /// readable; C's `rows × cols` elements (`rows ≤ mr`, `cols ≤ nr`) must be
    /// writable and touched by no other thread.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn run(
        &self,
        a: &[f32],
        b: *const f32,
        offsets: &[isize],
        c: *mut f32,
        ldc: usize,
        rows: usize,
        cols: usize,
        accumulate: bool,
    ) {
        assert!(a.len() == offsets.len() * self.mr && rows <= self.mr && cols <= self.nr);
        // SAFETY: the kernel was listed by `kernels`, so the CPU has its
        // instructions; the rest is the caller's promise.
        unsafe { (self.tile)(a, b, offsets, c, ldc, rows, cols, accumulate) }
    }
}

/// Every register tile this CPU runs, widest first (none off x86-64).
pub fn kernels() -> Vec<Kernel> {
    #[cfg(target_arch = "x86_64")]
    {
        let avx512 = std::arch::is_x86_feature_detected!("avx512f").then_some(Kernel {
            name: "avx512",
            mr: 8,
            nr: 32,
            tile: x86::avx512::<8>,
        });
        let avx2 = (std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"))
            .then_some(Kernel { name: "avx2", mr: 6, nr: 16, tile: x86::avx2 });
        avx512.into_iter().chain(avx2).collect()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        Vec::new()
    }
}

/// The widest register tile this CPU runs, if any.
pub fn best() -> Option<Kernel> {
    static BEST: std::sync::OnceLock<Option<Kernel>> = std::sync::OnceLock::new();
    *BEST.get_or_init(|| kernels().first().copied())
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// The AVX-512 tile, `MR × 32`.
    ///
    /// # Safety
    /// As [`super::Kernel::run`], on a CPU with AVX-512F.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn avx512<const MR: usize>(
        a: &[f32],
        b: *const f32,
        offsets: &[isize],
        c: *mut f32,
        ldc: usize,
        rows: usize,
        cols: usize,
        accumulate: bool,
    ) {
        let (strips, _) = a.as_chunks::<MR>();
        let mut acc = [[_mm512_setzero_ps(); 2]; MR];
        for (weights, &offset) in strips.iter().zip(offsets) {
            // SAFETY: depth p's 32 floats are readable, as the caller promises.
            let (b0, b1) = unsafe {
                let row = b.offset(offset);
                (_mm512_loadu_ps(row), _mm512_loadu_ps(row.add(16)))
            };
            for (acc, &w) in acc.iter_mut().zip(weights) {
                let w = _mm512_set1_ps(w);
                acc[0] = _mm512_fmadd_ps(w, b0, acc[0]);
                acc[1] = _mm512_fmadd_ps(w, b1, acc[1]);
            }
        }
        // Columns 0..16 and 16..32 of each row, as far as `cols` reaches.
        let mask = |from: usize| -> __mmask16 {
            let n = cols.saturating_sub(from).min(16);
            ((1u32 << n) - 1) as __mmask16
        };
        let masks = [mask(0), mask(16)];
        for (i, acc) in acc.iter().enumerate().take(rows) {
            for (half, (&v, &m)) in acc.iter().zip(&masks).enumerate() {
                // SAFETY: row i's first `cols` elements are the caller's to
                // write; the mask touches no other.
                unsafe {
                    let at = c.add(i * ldc + 16 * half);
                    let v = if accumulate { _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, at)) } else { v };
                    _mm512_mask_storeu_ps(at, m, v);
                }
            }
        }
    }

    /// Rows of the AVX2 tile (columns: 16).
    const MR2: usize = 6;

    /// The AVX2 + FMA tile, 6 × 16.
    ///
    /// # Safety
    /// As [`super::Kernel::run`], on a CPU with AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn avx2(
        a: &[f32],
        b: *const f32,
        offsets: &[isize],
        c: *mut f32,
        ldc: usize,
        rows: usize,
        cols: usize,
        accumulate: bool,
    ) {
        const NR: usize = 16;
        let (strips, _) = a.as_chunks::<MR2>();
        let mut acc = [_mm256_setzero_ps(); 2 * MR2];
        for (weights, &offset) in strips.iter().zip(offsets) {
            // SAFETY: depth p's 16 floats are readable, as the caller promises.
            let (b0, b1) = unsafe {
                let row = b.offset(offset);
                (_mm256_loadu_ps(row), _mm256_loadu_ps(row.add(8)))
            };
            for i in 0..MR2 {
                let ai = _mm256_set1_ps(weights[i]);
                acc[2 * i] = _mm256_fmadd_ps(ai, b0, acc[2 * i]);
                acc[2 * i + 1] = _mm256_fmadd_ps(ai, b1, acc[2 * i + 1]);
            }
        }
        // SAFETY (the stores): C's rows × cols are the caller's to write.
        if rows == MR2 && cols == NR {
            for i in 0..MR2 {
                unsafe {
                    let row = c.add(i * ldc);
                    let (mut v0, mut v1) = (acc[2 * i], acc[2 * i + 1]);
                    if accumulate {
                        v0 = _mm256_add_ps(v0, _mm256_loadu_ps(row));
                        v1 = _mm256_add_ps(v1, _mm256_loadu_ps(row.add(8)));
                    }
                    _mm256_storeu_ps(row, v0);
                    _mm256_storeu_ps(row.add(8), v1);
                }
            }
        } else {
            let mut tile = [0f32; MR2 * NR];
            for (i, v) in acc.iter().enumerate() {
                // SAFETY: tile holds 2·MR2 vectors of 8.
                unsafe { _mm256_storeu_ps(tile.as_mut_ptr().add(i * 8), *v) };
            }
            for (i, src) in tile.chunks_exact(NR).take(rows).enumerate() {
                // SAFETY: row i's first `cols` elements are the caller's to write.
                let row = unsafe { std::slice::from_raw_parts_mut(c.add(i * ldc), cols) };
                for (d, s) in row.iter_mut().zip(src) {
                    *d = if accumulate { *d + s } else { *s };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every tile this CPU runs, whole and partial, fresh and accumulating,
    /// against the sum written out.
    #[test]
    fn tiles_equal_the_sum() {
        for kernel in kernels() {
            let (mr, nr, kc, ldc) = (kernel.mr, kernel.nr, 37, kernel.nr + 3);
            let a = crate::random::uniform(kc * mr, 1);
            // B rows scattered through a buffer, every one readable for nr floats.
            let offsets: Vec<isize> = (0..kc).map(|p| ((p * 7919) % (kc * nr)) as isize).collect();
            let b = crate::random::uniform(kc * nr + nr, 2);
            for (rows, cols) in [(mr, nr), (1, nr), (mr, 1), (mr - 1, nr - 3), (2, nr / 2 + 1)] {
                for accumulate in [false, true] {
                    let start = crate::random::uniform(mr * ldc, 3);
                    let mut c = start.clone();
                    // SAFETY: a holds kc strips of mr; every B row lies in b;
                    // C is mr rows of ldc ≥ nr.
                    unsafe { kernel.run(&a, b.as_ptr(), &offsets, c.as_mut_ptr(), ldc, rows, cols, accumulate) };
                    for (i, j) in (0..mr).flat_map(|i| (0..ldc).map(move |j| (i, j))) {
                        let want = if i < rows && j < cols {
                            let sum: f32 = (0..kc).map(|p| a[p * mr + i] * b[offsets[p] as usize + j]).sum();
                            sum + if accumulate { start[i * ldc + j] } else { 0.0 }
                        } else {
                            start[i * ldc + j]
                        };
                        let got = c[i * ldc + j];
                        assert!((got - want).abs() <= 1e-4 * (1.0 + want.abs()), "{kernel:?} {rows}×{cols} ({i},{j})");
                    }
                }
            }
        }
    }
}
