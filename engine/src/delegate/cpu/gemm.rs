//! The sgemm behind the CPU delegate's matmul, conv3d and attention, with
//! `matrixmultiply`'s signature: `C = α·A·B + β·C` over strided views.
//!
//! Natively it is `matrixmultiply` (packed, with AVX/FMA and NEON kernels). In
//! wasm32, where `matrixmultiply` has only its portable kernel, it is ours:
//! GotoBLAS-style blocking (B packed in panels of KC × NC as strips NR wide, A
//! in blocks of MC × KC as strips MR tall, both zero-padded), and an MR × NR
//! micro-kernel that keeps its 4 × 8 tile in eight SIMD128 registers: per step
//! of k, two loads of B, four broadcasts of A, eight multiplies and adds.
//! Eleven live vectors fit the 16 registers V8 gives wasm SIMD on x86-64.

#[cfg(not(target_arch = "wasm32"))]
pub use matrixmultiply::sgemm;

#[cfg(target_arch = "wasm32")]
pub use blocked::sgemm;

/// The blocked sgemm (the wasm32 path; built natively too, for its tests).
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub(crate) mod blocked {
    /// Micro-tile rows and columns.
    const MR: usize = 4;
    const NR: usize = 8;
    /// Depth of a packed panel, rows of a packed A block, columns of a packed B panel.
    const KC: usize = 256;
    const MC: usize = 64;
    const NC: usize = 1024;

    /// `C = α·A·B + β·C` for A `m × k` (element (i, p) at `a[i·rsa + p·csa]`), B
    /// `k × n`, C `m × n`, as `matrixmultiply::sgemm`. With β = 0, C is only written.
    ///
    /// # Safety
    /// Every element those strides address must be inside its allocation, and C
    /// must not overlap A or B.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn sgemm(
        m: usize,
        k: usize,
        n: usize,
        alpha: f32,
        a: *const f32,
        rsa: isize,
        csa: isize,
        b: *const f32,
        rsb: isize,
        csb: isize,
        beta: f32,
        c: *mut f32,
        rsc: isize,
        csc: isize,
    ) {
        if m == 0 || n == 0 {
            return;
        }
        let at = |i: usize, j: usize| -> *mut f32 {
            // SAFETY: (i, j) < (m, n), which the caller guarantees is inside C.
            unsafe { c.offset(i as isize * rsc + j as isize * csc) }
        };
        if k == 0 || alpha == 0.0 {
            for i in 0..m {
                for j in 0..n {
                    // SAFETY: as `at`.
                    unsafe { *at(i, j) = if beta == 0.0 { 0.0 } else { beta * *at(i, j) } };
                }
            }
            return;
        }
        let mut bp = Vec::new();
        let mut ap = Vec::new();
        let mut tile = [0f32; MR * NR];
        for jc in (0..n).step_by(NC) {
            let nc = NC.min(n - jc);
            for pc in (0..k).step_by(KC) {
                let kc = KC.min(k - pc);
                // SAFETY: rows pc..pc+kc and columns jc..jc+nc of B are inside it.
                unsafe { pack(&mut bp, kc, nc, NR, b.offset(pc as isize * rsb + jc as isize * csb), csb, rsb) };
                // Later panels of k add to what the first wrote.
                let beta = if pc == 0 { beta } else { 1.0 };
                for ic in (0..m).step_by(MC) {
                    let mc = MC.min(m - ic);
                    // SAFETY: rows ic..ic+mc and columns pc..pc+kc of A are inside it.
                    unsafe { pack(&mut ap, kc, mc, MR, a.offset(ic as isize * rsa + pc as isize * csa), rsa, csa) };
                    for (js, jr) in (0..nc).step_by(NR).enumerate() {
                        let b_strip = &bp[js * kc * NR..][..kc * NR];
                        for (is, ir) in (0..mc).step_by(MR).enumerate() {
                            kernel(kc, &ap[is * kc * MR..][..kc * MR], b_strip, &mut tile);
                            let (rows, cols) = (MR.min(mc - ir), NR.min(nc - jr));
                            if cols == NR && csc == 1 {
                                // Whole rows of the tile, contiguous in C: loops that vectorise.
                                for (i, t) in tile.chunks_exact(NR).take(rows).enumerate() {
                                    // SAFETY: row ic+ir+i, columns jc+jr .. +NR of C (csc = 1).
                                    let dst = unsafe { std::slice::from_raw_parts_mut(at(ic + ir + i, jc + jr), NR) };
                                    if beta == 0.0 {
                                        dst.iter_mut().zip(t).for_each(|(d, &v)| *d = alpha * v);
                                    } else {
                                        dst.iter_mut().zip(t).for_each(|(d, &v)| *d = alpha * v + beta * *d);
                                    }
                                }
                                continue;
                            }
                            for i in 0..rows {
                                for j in 0..cols {
                                    let v = alpha * tile[i * NR + j];
                                    let dst = at(ic + ir + i, jc + jr + j);
                                    // SAFETY: as `at`.
                                    unsafe { *dst = if beta == 0.0 { v } else { v + beta * *dst } };
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Packs `len` lines (stride `line` apart) of `depth` elements (stride
    /// `step` apart) into strips of `w` lines: `out[s][p][l]` = element p of
    /// line s·w + l, zero past the last line.
    ///
    /// # Safety
    /// Every addressed element must be inside its allocation.
    unsafe fn pack(out: &mut Vec<f32>, depth: usize, len: usize, w: usize, src: *const f32, line: isize, step: isize) {
        let strips = len.div_ceil(w);
        out.clear();
        out.resize(strips * depth * w, 0.0);
        for s in 0..strips {
            let lines = w.min(len - s * w);
            let strip = &mut out[s * depth * w..][..depth * w];
            for l in 0..lines {
                // SAFETY: line s·w + l < len, elements < depth.
                let base = unsafe { src.offset((s * w + l) as isize * line) };
                for (p, v) in strip.iter_mut().skip(l).step_by(w).enumerate() {
                    // SAFETY: as above.
                    *v = unsafe { *base.offset(p as isize * step) };
                }
            }
        }
    }

    /// `tile = A strip · B strip` over `kc` steps (both packed, MR and NR wide).
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    fn kernel(kc: usize, a: &[f32], b: &[f32], tile: &mut [f32; MR * NR]) {
        use core::arch::wasm32::*;
        assert!(a.len() >= kc * MR && b.len() >= kc * NR);
        let z = f32x4_splat(0.0);
        let (mut c00, mut c01, mut c10, mut c11, mut c20, mut c21, mut c30, mut c31) = (z, z, z, z, z, z, z, z);
        let (a, b) = (a.as_ptr(), b.as_ptr());
        for p in 0..kc {
            // SAFETY: p < kc, and the strips hold kc steps (asserted above);
            // wasm loads need no alignment.
            unsafe {
                let b0 = v128_load(b.add(p * NR) as *const v128);
                let b1 = v128_load(b.add(p * NR + 4) as *const v128);
                let ap = a.add(p * MR);
                let a0 = f32x4_splat(*ap);
                c00 = f32x4_add(c00, f32x4_mul(a0, b0));
                c01 = f32x4_add(c01, f32x4_mul(a0, b1));
                let a1 = f32x4_splat(*ap.add(1));
                c10 = f32x4_add(c10, f32x4_mul(a1, b0));
                c11 = f32x4_add(c11, f32x4_mul(a1, b1));
                let a2 = f32x4_splat(*ap.add(2));
                c20 = f32x4_add(c20, f32x4_mul(a2, b0));
                c21 = f32x4_add(c21, f32x4_mul(a2, b1));
                let a3 = f32x4_splat(*ap.add(3));
                c30 = f32x4_add(c30, f32x4_mul(a3, b0));
                c31 = f32x4_add(c31, f32x4_mul(a3, b1));
            }
        }
        let t = tile.as_mut_ptr() as *mut v128;
        // SAFETY: the tile holds 8 vectors.
        unsafe {
            for (i, v) in [c00, c01, c10, c11, c20, c21, c30, c31].into_iter().enumerate() {
                v128_store(t.add(i), v);
            }
        }
    }

    /// The same micro-kernel in portable Rust (hosts without SIMD128).
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    fn kernel(kc: usize, a: &[f32], b: &[f32], tile: &mut [f32; MR * NR]) {
        tile.fill(0.0);
        for (ap, bp) in a.chunks_exact(MR).zip(b.chunks_exact(NR)).take(kc) {
            for i in 0..MR {
                for j in 0..NR {
                    tile[i * NR + j] += ap[i] * bp[j];
                }
            }
        }
    }

    #[cfg(all(test, not(target_arch = "wasm32")))]
    mod tests {
        use crate::random::uniform;

        type Sgemm = unsafe fn(
            usize,
            usize,
            usize,
            f32,
            *const f32,
            isize,
            isize,
            *const f32,
            isize,
            isize,
            f32,
            *mut f32,
            isize,
            isize,
        );

        /// Against `matrixmultiply` over edge sizes, both layouts of each
        /// operand, panels of k and n, α and β (β = 0 never reads C: NaN there).
        #[test]
        fn matches_matrixmultiply() {
            let shapes = [(1, 1, 1), (3, 7, 5), (4, 8, 8), (5, 9, 17), (33, 300, 20), (70, 257, 1030), (2, 0, 3)];
            for (t, &(m, k, n)) in shapes.iter().enumerate() {
                for (trans_a, trans_b, alpha, beta) in [
                    (false, false, 1.0, 0.0),
                    (true, false, 0.5, 1.0),
                    (false, true, 1.0, 0.25),
                    (true, true, 2.0, 0.0),
                ] {
                    let (a, b) = (uniform(m * k, t as u64), uniform(k * n, 100 + t as u64));
                    let (rsa, csa) = if trans_a { (1, m as isize) } else { (k as isize, 1) };
                    let (rsb, csb) = if trans_b { (1, k as isize) } else { (n as isize, 1) };
                    let c0 = uniform(m * n, 200 + t as u64);
                    let mut want = c0.clone();
                    let mut got = if beta == 0.0 { vec![f32::NAN; m * n] } else { c0.clone() };
                    for (f, c) in [(matrixmultiply::sgemm as Sgemm, &mut want), (super::sgemm, &mut got)] {
                        // SAFETY: every view is within its vector.
                        unsafe {
                            f(
                                m,
                                k,
                                n,
                                alpha,
                                a.as_ptr(),
                                rsa,
                                csa,
                                b.as_ptr(),
                                rsb,
                                csb,
                                beta,
                                c.as_mut_ptr(),
                                n as isize,
                                1,
                            )
                        };
                    }
                    let err = got.iter().zip(&want).fold(0f32, |e, (g, w)| e.max((g - w).abs()));
                    let tol = 1e-5 * (k.max(1) as f32).sqrt() * 4.0;
                    assert!(err <= tol, "{m}×{k}×{n} trans {trans_a}/{trans_b} α {alpha} β {beta}: error {err}");
                }
            }
        }
    }
}
