// The activations every kernel with an activation shares (lib.rs prepends
// this file): the codes of `delegate::Activation`.

fn erf(v: f32) -> f32 {
    // Abramowitz & Stegun 7.1.26: |error| < 1.5e-7.
    let t = 1.0 / (1.0 + 0.3275911 * abs(v));
    let y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * exp(-v * v);
    return select(-y, y, v >= 0.0);
}

// 0 none, 1 relu, 2 silu, 3 gelu (tanh), 4 gelu (erf).
fn activate(v: f32, kind: u32) -> f32 {
    switch kind {
        case 1u: { return max(v, 0.0); }
        case 2u: { return v / (1.0 + exp(-v)); }
        case 3u: {
            let inner = 0.7978845608028654 * (v + 0.044715 * v * v * v);
            return 0.5 * v * (1.0 + tanh(clamp(inner, -15.0, 15.0)));
        }
        case 4u: { return 0.5 * v * (1.0 + erf(v * 0.7071067811865476)); }
        default: { return v; }
    }
}
