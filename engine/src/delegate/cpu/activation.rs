//! Activations on the host, matching the GPU epilogue's definitions.

use crate::delegate::Activation;

/// `erf` to f32 precision (std has none): the Chebyshev fit of `erfc`
/// from Numerical Recipes (fractional error < 1.2e-7), evaluated in f64.
fn erf(x: f32) -> f32 {
    let x = x as f64;
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.26551223
            + t * (1.00002368
                + t * (0.37409196
                    + t * (0.09678418
                        + t * (-0.18628806
                            + t * (0.27886807
                                + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))))
            .exp();
    (if x >= 0.0 { 1.0 - r } else { r - 1.0 }) as f32
}

/// How `a·b + c` is computed in [`exp_by`]: as written (two roundings; any
/// target), or fused into one FMA, for callers compiled with the `fma` target
/// feature (elsewhere `f32::mul_add` is a slow library call).
pub trait MulAdd {
    fn mul_add(a: f32, b: f32, c: f32) -> f32;
}

/// `a·b + c` as written.
pub struct Unfused;

/// `a·b + c` as one fused multiply-add: only inside `#[target_feature(enable = "fma")]`.
pub struct Fused;

impl MulAdd for Unfused {
    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        a * b + c
    }
}

impl MulAdd for Fused {
    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        a.mul_add(b, c)
    }
}

/// `e^x` to a few ulp, branch-free so loops over it vectorise; 0 below −87.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    exp_by::<Unfused>(x)
}

/// [`exp`] with its multiply-adds computed by `M`.
#[inline(always)]
pub fn exp_by<M: MulAdd>(x: f32) -> f32 {
    let c = x.clamp(-87.0, 88.0);
    // n = round(x / ln 2) with the 1.5·2²³ trick (no SSE4.1 `round` needed);
    // r = x − n·ln 2 in two parts (Cody–Waite), so r is exact to f32.
    let t = M::mul_add(c, std::f32::consts::LOG2_E, 12_582_912.0);
    let n = t - 12_582_912.0;
    // n as an integer, read from t's low mantissa bits (no float→int conversion,
    // whose saturating semantics keep loops from vectorising).
    let ni = (t.to_bits() as i32).wrapping_sub(0x4B40_0000);
    let r = M::mul_add(-n, 1.428_606_8e-6, M::mul_add(-n, 0.693_145_75, c));
    // e^r on [−ln2/2, ln2/2], Taylor to degree 7 (error < 1e-8), by Horner
    // with the reciprocal factorials as constants (no division).
    const C: [f32; 6] = [1.0 / 5040.0, 1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5];
    let p = C[1..].iter().fold(C[0], |p, &c| M::mul_add(p, r, c));
    let p = M::mul_add(M::mul_add(p, r, 1.0), r, 1.0);
    let e = f32::from_bits((p.to_bits() as i32).wrapping_add(ni << 23) as u32);
    if x < -87.0 { 0.0 } else { e }
}

/// `tanh x` through [`exp`] (absolute error < 1e-7), branch-free.
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    let e = exp(2.0 * x.clamp(-9.0, 9.0));
    (e - 1.0) / (e + 1.0)
}

/// `1 / (1 + e^-x)`.
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// Applies `act` to one value.
#[inline(always)]
pub fn apply(act: Activation, x: f32) -> f32 {
    match act {
        Activation::None => x,
        Activation::Relu => x.max(0.0),
        Activation::Silu => x * sigmoid(x),
        Activation::GeluTanh => 0.5 * x * (1.0 + tanh(0.797_884_6 * (x + 0.044715 * x * x * x))),
        Activation::GeluErf => 0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2)),
    }
}

/// `row[i] = act(row[i] + bias[i])` — a matmul or conv epilogue, one loop per
/// activation so it vectorises (with AVX2 and FMA where the CPU has them).
pub fn apply_row(act: Activation, row: &mut [f32], bias: Option<&[f32]>) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has AVX2 and FMA, checked just above.
        return unsafe { apply_row_avx2(act, row, bias) };
    }
    apply_row_portable(act, row, bias)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn apply_row_avx2(act: Activation, row: &mut [f32], bias: Option<&[f32]>) {
    apply_row_portable(act, row, bias)
}

#[inline(always)]
fn apply_row_portable(act: Activation, row: &mut [f32], bias: Option<&[f32]>) {
    if let Some(b) = bias {
        row.iter_mut().zip(b).for_each(|(v, b)| *v += b);
    }
    match act {
        Activation::None => {}
        Activation::Relu => row.iter_mut().for_each(|v| *v = apply(Activation::Relu, *v)),
        Activation::Silu => row.iter_mut().for_each(|v| *v = apply(Activation::Silu, *v)),
        Activation::GeluTanh => row.iter_mut().for_each(|v| *v = apply(Activation::GeluTanh, *v)),
        Activation::GeluErf => row.iter_mut().for_each(|v| *v = apply(Activation::GeluErf, *v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_accurate() {
        for i in -8700..=8800 {
            let x = i as f32 / 100.0;
            let want = (x as f64).exp();
            for (got, how) in [(exp(x), "unfused"), (exp_by::<Fused>(x), "fused")] {
                assert!(((got as f64 - want) / want).abs() < 3e-7, "{how}: exp({x}) = {got}, want {want}");
            }
        }
        for x in [f32::NEG_INFINITY, -100.0] {
            assert_eq!((exp(x), exp_by::<Fused>(x)), (0.0, 0.0));
        }
    }

    #[test]
    fn tanh_and_sigmoid_are_accurate() {
        for i in -2000..=2000 {
            let x = i as f32 / 100.0;
            assert!((tanh(x) as f64 - (x as f64).tanh()).abs() < 1.5e-7, "tanh({x}) = {}", tanh(x));
            let s = 1.0 / (1.0 + (-(x as f64)).exp());
            assert!((sigmoid(x) as f64 - s).abs() < 1.5e-7, "sigmoid({x}) = {}", sigmoid(x));
        }
        assert_eq!((tanh(f32::INFINITY), tanh(f32::NEG_INFINITY)), (1.0, -1.0));
    }

    #[test]
    fn rows_match_one_value_at_a_time() {
        let xs: Vec<f32> = (0..37).map(|i| i as f32 * 0.37 - 6.0).collect();
        let bias: Vec<f32> = (0..37).map(|i| (i % 5) as f32 * 0.1).collect();
        for act in [Activation::None, Activation::Relu, Activation::Silu, Activation::GeluTanh, Activation::GeluErf] {
            let mut row = xs.clone();
            apply_row(act, &mut row, Some(&bias));
            for ((got, x), b) in row.iter().zip(&xs).zip(&bias) {
                assert!((got - apply(act, x + b)).abs() <= 1e-6, "{act:?}({x} + {b})");
            }
        }
    }

    #[test]
    fn erf_known_values() {
        for (x, want) in [(0.0, 0.0), (0.5, 0.520_499_9), (1.0, 0.842_700_8), (-2.0, -0.995_322_3), (4.0, 0.999_999_98)]
        {
            assert!((erf(x) - want).abs() < 2e-7, "erf({x}) = {}", erf(x));
        }
    }
}
