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

/// The blocked sgemm (the wasm32 path; built natively too, for its tests), and
/// its packed layouts, which callers that build an operand anyway (conv3d's
/// im2col) write straight into ([`sgemm_packed`](blocked::sgemm_packed)).
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub(crate) mod blocked {
    /// Micro-tile rows and columns.
    pub const MR: usize = 4;
    pub const NR: usize = 8;
    /// Depth of a packed panel, rows of a packed A block, columns of a packed B panel.
    pub const KC: usize = 256;
    const MC: usize = 64;
    const NC: usize = 1024;

    /// How an op of the CPU delegate forms its products.
    #[derive(Clone, Copy, Debug, PartialEq)]
    pub enum Route {
        /// Strided operands handed to [`super::sgemm`] (natively `matrixmultiply`,
        /// whose packing is tuned to its AVX kernels).
        Strided,
        /// Operands the op writes straight into this module's packed layouts.
        Packed,
    }

    /// The route this target takes: packed where the blocked sgemm is the sgemm.
    pub const ROUTE: Route = if cfg!(target_arch = "wasm32") { Route::Packed } else { Route::Strided };

    /// Where a packed operand keeps its elements: `lines` lines (A's rows, B's
    /// columns) of `depth` elements (the shared k), cut along depth into panels
    /// of [`KC`], each panel holding strips of `width` lines ([`MR`] for A, [`NR`]
    /// for B): element p of line l sits at `panel(p) + strip(l)·kc + (p mod KC)·width
    /// plus l mod width`, where kc is that panel's depth. Lines past the last,
    /// up to a whole strip, are padding: their products are never written out.
    #[derive(Clone, Copy, Debug)]
    pub struct Panels {
        pub depth: usize,
        pub lines: usize,
        pub width: usize,
    }

    impl Panels {
        /// A (`m × k`) as the left operand.
        pub fn a(m: usize, k: usize) -> Self {
            Self { depth: k, lines: m, width: MR }
        }

        /// B (`k × n`) as the right operand.
        pub fn b(k: usize, n: usize) -> Self {
            Self { depth: k, lines: n, width: NR }
        }

        /// Lines rounded up to whole strips.
        fn padded(&self) -> usize {
            self.lines.div_ceil(self.width) * self.width
        }

        /// Floats the packed operand takes.
        pub fn len(&self) -> usize {
            self.depth * self.padded()
        }

        /// The panel holding depths `p0 .. p0 + KC` (`p0` a multiple of KC):
        /// its offset and its depth.
        pub fn panel(&self, p0: usize) -> (usize, usize) {
            (p0 * self.padded(), KC.min(self.depth - p0))
        }

        /// Where element `p` of line `l` sits.
        pub fn index(&self, p: usize, l: usize) -> usize {
            let p0 = p / KC * KC;
            let (offset, kc) = self.panel(p0);
            offset + l / self.width * kc * self.width + (p - p0) * self.width + l % self.width
        }

        /// Puts depth `p` of every line — `row[l]` for line l — in its place
        /// (the padding lines get zeros).
        pub fn put_row(&self, packed: &mut [f32], p: usize, row: &[f32]) {
            debug_assert_eq!(row.len(), self.lines);
            let p0 = p / KC * KC;
            let (offset, kc) = self.panel(p0);
            let w = self.width;
            let panel = &mut packed[offset + (p - p0) * w..];
            let mut strips = row.chunks_exact(w);
            for (s, strip) in (&mut strips).enumerate() {
                panel[s * kc * w..][..w].copy_from_slice(strip);
            }
            let rest = strips.remainder();
            if !rest.is_empty() {
                let dst = &mut panel[(self.lines / w) * kc * w..][..w];
                dst[..rest.len()].copy_from_slice(rest);
                dst[rest.len()..].fill(0.0);
            }
        }

        /// Packs a strided operand: line l's element p at `src[l·line + p·step]`.
        ///
        /// # Safety
        /// Every addressed element must be inside its allocation.
        pub unsafe fn pack(&self, packed: &mut Vec<f32>, src: *const f32, line: isize, step: isize) {
            packed.clear();
            packed.resize(self.len(), 0.0);
            for p0 in (0..self.depth).step_by(KC) {
                let (offset, kc) = self.panel(p0);
                // SAFETY: depths p0 .. p0 + kc of every line are inside src.
                unsafe {
                    pack(
                        &mut packed[offset..][..kc * self.padded()],
                        kc,
                        self.lines,
                        self.width,
                        src.offset(p0 as isize * step),
                        line,
                        step,
                    )
                };
            }
        }
    }

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
        if k == 0 || alpha == 0.0 {
            // SAFETY: as the caller guarantees.
            return unsafe { scale(m, n, beta, c, rsc, csc) };
        }
        let mut bp = Vec::new();
        let mut ap = Vec::new();
        for jc in (0..n).step_by(NC) {
            let nc = NC.min(n - jc);
            for pc in (0..k).step_by(KC) {
                let kc = KC.min(k - pc);
                // SAFETY: rows pc..pc+kc and columns jc..jc+nc of B are inside it.
                unsafe { Panels::b(kc, nc).pack(&mut bp, b.offset(pc as isize * rsb + jc as isize * csb), csb, rsb) };
                // Later panels of k add to what the first wrote.
                let beta = if pc == 0 { beta } else { 1.0 };
                for ic in (0..m).step_by(MC) {
                    let mc = MC.min(m - ic);
                    // SAFETY: rows ic..ic+mc and columns pc..pc+kc of A are inside it.
                    unsafe {
                        Panels::a(mc, kc).pack(&mut ap, a.offset(ic as isize * rsa + pc as isize * csa), rsa, csa)
                    };
                    // SAFETY: the block of C at (ic, jc), mc × nc, is inside C.
                    unsafe {
                        block(
                            kc,
                            mc,
                            nc,
                            &ap,
                            &bp,
                            alpha,
                            beta,
                            c.offset(ic as isize * rsc + jc as isize * csc),
                            rsc,
                            csc,
                        )
                    };
                }
            }
        }
    }

    /// `C = α·A·B + β·C` with A and B already packed, as [`Panels::a`]`(m, k)`
    /// and [`Panels::b`]`(k, n)` lay them out.
    ///
    /// # Safety
    /// C's `m × n` elements at those strides must be inside its allocation.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn sgemm_packed(
        m: usize,
        k: usize,
        n: usize,
        alpha: f32,
        a: &[f32],
        b: &[f32],
        beta: f32,
        c: *mut f32,
        rsc: isize,
        csc: isize,
    ) {
        let (pa, pb) = (Panels::a(m, k), Panels::b(k, n));
        assert!(a.len() >= pa.len() && b.len() >= pb.len(), "packed operands too short");
        if m == 0 || n == 0 {
            return;
        }
        if k == 0 || alpha == 0.0 {
            // SAFETY: as the caller guarantees.
            return unsafe { scale(m, n, beta, c, rsc, csc) };
        }
        for p0 in (0..k).step_by(KC) {
            let ((a_off, kc), (b_off, _)) = (pa.panel(p0), pb.panel(p0));
            let beta = if p0 == 0 { beta } else { 1.0 };
            for ic in (0..m).step_by(MC) {
                let mc = MC.min(m - ic);
                // SAFETY: rows ic .. ic + mc of C; A's strips from row ic are ic·kc in.
                unsafe {
                    block(
                        kc,
                        mc,
                        n,
                        &a[a_off + ic * kc..],
                        &b[b_off..],
                        alpha,
                        beta,
                        c.offset(ic as isize * rsc),
                        rsc,
                        csc,
                    )
                };
            }
        }
    }

    /// `out = α·A·B` with A and B packed as in [`sgemm_packed`], written in
    /// the packed layout of a left operand, [`Panels::a`]`(m, n)`: the product
    /// is the next product's A, after elementwise work in place (attention's
    /// softmax, which then sees each strip's [`MR`] rows side by side).
    /// Padding rows hold α·(padding of A)·B.
    pub fn sgemm_into_packed_a(m: usize, k: usize, n: usize, alpha: f32, a: &[f32], b: &[f32], out: &mut [f32]) {
        let (pa, pb, po) = (Panels::a(m, k), Panels::b(k, n), Panels::a(m, n));
        assert!(a.len() >= pa.len() && b.len() >= pb.len() && out.len() >= po.len(), "packed operands too short");
        if k == 0 {
            out[..po.len()].fill(0.0);
        }
        let mut tile = [0f32; MR * NR];
        for p0 in (0..k).step_by(KC) {
            let ((a_off, kc), (b_off, _)) = (pa.panel(p0), pb.panel(p0));
            let (a, b) = (&a[a_off..], &b[b_off..]);
            for (js, jr) in (0..n).step_by(NR).enumerate() {
                // Columns jr .. jr + NR of the product are depths of the output,
                // all in one of its panels (KC is a multiple of NR).
                let (o_off, okc) = po.panel(jr / KC * KC);
                let b_strip = &b[js * kc * NR..][..kc * NR];
                for is in 0..m.div_ceil(MR) {
                    kernel(kc, &a[is * kc * MR..][..kc * MR], b_strip, &mut tile);
                    let cols = NR.min(n - jr);
                    let dst = &mut out[o_off + is * okc * MR + (jr % KC) * MR..][..cols * MR];
                    // The tile transposed: column j of the tile is depth jr + j.
                    for (j, d) in dst.chunks_exact_mut(MR).enumerate() {
                        for (i, v) in d.iter_mut().enumerate() {
                            let t = alpha * tile[i * NR + j];
                            *v = if p0 == 0 { t } else { *v + t };
                        }
                    }
                }
            }
        }
    }

    /// `C = β·C` (zeros when β = 0, never reading C).
    ///
    /// # Safety
    /// As [`sgemm`]'s C.
    unsafe fn scale(m: usize, n: usize, beta: f32, c: *mut f32, rsc: isize, csc: isize) {
        for i in 0..m {
            for j in 0..n {
                // SAFETY: (i, j) is inside C.
                unsafe {
                    let dst = c.offset(i as isize * rsc + j as isize * csc);
                    *dst = if beta == 0.0 { 0.0 } else { beta * *dst };
                }
            }
        }
    }

    /// The `mc × nc` block of C at `c` from packed strips of A (`mc` rows) and
    /// B (`nc` columns) over `kc` steps: `C = α·A·B + β·C`.
    ///
    /// # Safety
    /// The block at those strides must be inside C.
    #[allow(clippy::too_many_arguments)]
    unsafe fn block(
        kc: usize,
        mc: usize,
        nc: usize,
        ap: &[f32],
        bp: &[f32],
        alpha: f32,
        beta: f32,
        c: *mut f32,
        rsc: isize,
        csc: isize,
    ) {
        let at = |i: usize, j: usize| -> *mut f32 {
            // SAFETY: (i, j) < (mc, nc), inside the block.
            unsafe { c.offset(i as isize * rsc + j as isize * csc) }
        };
        let mut tile = [0f32; MR * NR];
        for (js, jr) in (0..nc).step_by(NR).enumerate() {
            let b_strip = &bp[js * kc * NR..][..kc * NR];
            for (is, ir) in (0..mc).step_by(MR).enumerate() {
                kernel(kc, &ap[is * kc * MR..][..kc * MR], b_strip, &mut tile);
                let (rows, cols) = (MR.min(mc - ir), NR.min(nc - jr));
                if cols == NR && csc == 1 {
                    // Whole rows of the tile, contiguous in C: loops that vectorise.
                    for (i, t) in tile.chunks_exact(NR).take(rows).enumerate() {
                        // SAFETY: row ir+i, columns jr .. jr+NR of the block (csc = 1).
                        let dst = unsafe { std::slice::from_raw_parts_mut(at(ir + i, jr), NR) };
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
                        let dst = at(ir + i, jr + j);
                        // SAFETY: as `at`.
                        unsafe { *dst = if beta == 0.0 { v } else { v + beta * *dst } };
                    }
                }
            }
        }
    }

    /// Packs `len` lines (stride `line` apart) of `depth` elements (stride
    /// `step` apart) into `out`, strips of `w` lines: `out[s][p][l]` = element p
    /// of line s·w + l; the padding lines of the last strip are left as they are.
    ///
    /// # Safety
    /// Every addressed element must be inside its allocation.
    unsafe fn pack(out: &mut [f32], depth: usize, len: usize, w: usize, src: *const f32, line: isize, step: isize) {
        let strips = len.div_ceil(w);
        for s in 0..strips {
            let lines = w.min(len - s * w);
            let strip = &mut out[s * depth * w..][..depth * w];
            if line == 1 && lines == w {
                // The strip's lines are adjacent: copy w at a time.
                for (p, dst) in strip.chunks_exact_mut(w).enumerate() {
                    // SAFETY: elements p of lines s·w .. s·w + w.
                    let src =
                        unsafe { std::slice::from_raw_parts(src.offset((s * w) as isize + p as isize * step), w) };
                    dst.copy_from_slice(src);
                }
                continue;
            }
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

        /// A product written as the next product's packed A equals
        /// `matrixmultiply`'s, element by element through `Panels::index`;
        /// then fed to `sgemm_packed` it gives the chained product.
        #[test]
        fn products_chain_through_the_packed_layout() {
            use super::{Panels, sgemm_into_packed_a, sgemm_packed};
            for (t, &(m, k, n, l)) in
                [(1, 1, 1, 1), (5, 9, 17, 3), (130, 64, 256, 64), (6, 300, 530, 9)].iter().enumerate()
            {
                let (a, b, c) =
                    (uniform(m * k, t as u64), uniform(k * n, 60 + t as u64), uniform(n * l, 70 + t as u64));
                let mut ab = vec![0f32; m * n];
                let mut abc = vec![0f32; m * l];
                // SAFETY: every view is within its vector.
                unsafe {
                    matrixmultiply::sgemm(
                        m,
                        k,
                        n,
                        0.5,
                        a.as_ptr(),
                        k as isize,
                        1,
                        b.as_ptr(),
                        n as isize,
                        1,
                        0.0,
                        ab.as_mut_ptr(),
                        n as isize,
                        1,
                    );
                    matrixmultiply::sgemm(
                        m,
                        n,
                        l,
                        1.0,
                        ab.as_ptr(),
                        n as isize,
                        1,
                        c.as_ptr(),
                        l as isize,
                        1,
                        0.0,
                        abc.as_mut_ptr(),
                        l as isize,
                        1,
                    );
                }
                let (pa, pb, pab, pc) = (Panels::a(m, k), Panels::b(k, n), Panels::a(m, n), Panels::b(n, l));
                let (mut ap, mut bp, mut cp) = (Vec::new(), Vec::new(), Vec::new());
                // SAFETY: each operand is row-major at these strides.
                unsafe {
                    pa.pack(&mut ap, a.as_ptr(), k as isize, 1);
                    pb.pack(&mut bp, b.as_ptr(), 1, n as isize);
                    pc.pack(&mut cp, c.as_ptr(), 1, l as isize);
                }
                let mut got = vec![f32::NAN; pab.len()];
                sgemm_into_packed_a(m, k, n, 0.5, &ap, &bp, &mut got);
                let tol = |depth: usize| 1e-5 * (depth.max(1) as f32).sqrt() * 4.0;
                for i in 0..m {
                    for p in 0..n {
                        let (g, w) = (got[pab.index(p, i)], ab[i * n + p]);
                        assert!((g - w).abs() <= tol(k), "{m}×{k}×{n}: ({i}, {p}) {g} vs {w}");
                    }
                }
                let mut chained = vec![f32::NAN; m * l];
                // SAFETY: C is m × l, row-major.
                unsafe { sgemm_packed(m, n, l, 1.0, &got, &cp, 0.0, chained.as_mut_ptr(), l as isize, 1) };
                let err = chained.iter().zip(&abc).fold(0f32, |e, (g, w)| e.max((g - w).abs()));
                assert!(err <= 4e-5 * ((k * n).max(1) as f32).sqrt(), "{m}×{k}×{n}×{l}: error {err}");
            }
        }

        /// The packed entry point, operands packed by the layout's own
        /// functions: A by `pack` (strided, both layouts), B row by row through
        /// `put_row` (what conv3d's im2col does); over panel edges, against
        /// `matrixmultiply`. Padding is filled with NaN first: it must never show.
        #[test]
        fn packed_operands_match_matrixmultiply() {
            use super::{Panels, sgemm_packed};
            for (t, &(m, k, n)) in [(1, 1, 1), (5, 9, 17), (66, 300, 20), (7, 513, 9), (3, 0, 2)].iter().enumerate() {
                let (a, b) = (uniform(m * k, t as u64), uniform(k * n, 50 + t as u64));
                let mut want = vec![0f32; m * n];
                // SAFETY: every view is within its vector.
                unsafe {
                    matrixmultiply::sgemm(
                        m,
                        k,
                        n,
                        1.5,
                        a.as_ptr(),
                        k as isize,
                        1,
                        b.as_ptr(),
                        n as isize,
                        1,
                        0.0,
                        want.as_mut_ptr(),
                        n as isize,
                        1,
                    )
                };
                let (pa, pb) = (Panels::a(m, k), Panels::b(k, n));
                let mut bp = vec![f32::NAN; pb.len()];
                for (p, row) in b.chunks_exact(n).enumerate() {
                    pb.put_row(&mut bp, p, row);
                }
                for trans_a in [false, true] {
                    let at: Vec<f32> = (0..m * k).map(|i| a[(i % m) * k + i / m]).collect();
                    let mut ap = vec![f32::NAN; 3];
                    // SAFETY: A (or its transpose) is m × k at these strides.
                    unsafe {
                        if trans_a {
                            pa.pack(&mut ap, at.as_ptr(), 1, m as isize)
                        } else {
                            pa.pack(&mut ap, a.as_ptr(), k as isize, 1)
                        }
                    };
                    let mut got = vec![f32::NAN; m * n];
                    // SAFETY: C is m × n, row-major.
                    unsafe { sgemm_packed(m, k, n, 1.5, &ap, &bp, 0.0, got.as_mut_ptr(), n as isize, 1) };
                    let err = got.iter().zip(&want).fold(0f32, |e, (g, w)| e.max((g - w).abs()));
                    assert!(err <= 1e-5 * (k.max(1) as f32).sqrt() * 4.0, "{m}×{k}×{n} trans {trans_a}: error {err}");
                }
            }
        }
    }
}
