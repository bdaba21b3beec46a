// The matmul epilogue shared by matmul.wgsl and matmul_sg8.wgsl (lib.rs
// prepends it): bias, activation, store. The including kernel declares
// `bias`, `out` and `p` (with m, n, has_bias, activation).

fn erf(x: f32) -> f32 {
    // Abramowitz & Stegun 7.1.26: |error| < 1.5e-7.
    let t = 1.0 / (1.0 + 0.3275911 * abs(x));
    let y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * exp(-x * x);
    return select(-y, y, x >= 0.0);
}

// 0 none, 1 relu, 2 silu, 3 gelu (tanh), 4 gelu (erf).
fn activate(x: f32, kind: u32) -> f32 {
    switch kind {
        case 1u: { return max(x, 0.0); }
        case 2u: { return x / (1.0 + exp(-x)); }
        case 3u: {
            let inner = 0.7978845608028654 * (x + 0.044715 * x * x * x);
            return 0.5 * x * (1.0 + tanh(clamp(inner, -15.0, 15.0)));
        }
        case 4u: { return 0.5 * x * (1.0 + erf(x * 0.7071067811865476)); }
        default: { return x; }
    }
}

// Writes up to four outputs of row `r` from column `c0`, through the epilogue.
fn store4(batch: u32, r: u32, c0: u32, v: vec4<f32>) {
    if (r >= p.m) {
        return;
    }
    let base = batch * p.m * p.n + r * p.n;
    for (var j = 0u; j < 4u; j++) {
        let c = c0 + j;
        if (c < p.n) {
            var x = v[j];
            if (p.has_bias == 1u) {
                x += bias[c];
            }
            out[base + c] = activate(x, p.activation);
        }
    }
}
