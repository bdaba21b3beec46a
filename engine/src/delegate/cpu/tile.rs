//! One register tile of a product `C = A · B` whose B rows are read in place
//! through a table of offsets (XNNPACK's indirection idea): the CPU
//! delegate's kernel for products whose B is already in memory row by row —
//! a conv's shifted input ([`super::conv`]) — so nothing is packed but A.
//!
//! A is packed as strips of [`MR`] rows, depth-major (`a[p·MR + i]`); depth
//! p's B row is the [`NR`] floats at `b + offsets[p]`. The tile's 6 × 16
//! accumulators are twelve AVX registers; per depth, two loads of B, six
//! broadcasts of A, twelve FMAs.

/// Rows and columns of the register tile.
pub const MR: usize = 6;
pub const NR: usize = 16;

/// Whether this CPU runs the register tiles: x86-64 with AVX2 and FMA. (On
/// AVX-512 CPUs `matrixmultiply`'s kernels are 512 bits wide; this one is
/// 256, so callers keep to `matrixmultiply` there.)
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && !std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `C[rows × cols] (+)= A · B` for one register tile: `a` holds `kc = offsets.len()`
/// depths of MR weights each, depth p's B row is the NR floats at
/// `b + offsets[p]`, and C's rows are `ldc` apart. Only the first `rows` rows
/// and `cols` columns of the tile are written (added to when `accumulate`).
///
/// # Safety
/// The CPU must have AVX2 and FMA; every `b + offsets[p] .. + NR` must be
/// readable; C's `rows × cols` elements must be writable and touched by no
/// other thread.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn tile(
    a: &[f32],
    b: *const f32,
    offsets: &[isize],
    c: *mut f32,
    ldc: usize,
    rows: usize,
    cols: usize,
    accumulate: bool,
) {
    use std::arch::x86_64::*;
    debug_assert_eq!(a.len(), offsets.len() * MR);
    let mut acc = [_mm256_setzero_ps(); 2 * MR];
    for (weights, &offset) in a.chunks_exact(MR).zip(offsets) {
        // SAFETY: as the caller promises.
        let (b0, b1) = unsafe {
            let row = b.offset(offset);
            (_mm256_loadu_ps(row), _mm256_loadu_ps(row.add(8)))
        };
        for i in 0..MR {
            let ai = _mm256_set1_ps(weights[i]);
            acc[2 * i] = _mm256_fmadd_ps(ai, b0, acc[2 * i]);
            acc[2 * i + 1] = _mm256_fmadd_ps(ai, b1, acc[2 * i + 1]);
        }
    }
    // SAFETY (the stores): C's rows × cols are the caller's to write.
    if rows == MR && cols == NR {
        for i in 0..MR {
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
        let mut tile = [0f32; MR * NR];
        for (i, v) in acc.iter().enumerate() {
            // SAFETY: tile holds 2·MR vectors of 8.
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

/// Never called: [`available`] is false off x86-64.
#[cfg(not(target_arch = "x86_64"))]
#[allow(clippy::too_many_arguments)]
pub unsafe fn tile(_: &[f32], _: *const f32, _: &[isize], _: *mut f32, _: usize, _: usize, _: usize, _: bool) {
    unreachable!("register tiles are x86-64 only")
}
