// Elementwise unary math: out[i] = f(x[i] * a + b), one element per thread.
// `op` picks f; the affine pre-step (a = 1, b = 0 for plain ops) lets scale
// and shift fuse in.

struct Params {
    len: u32,
    op: u32,
    a: f32,
    b: f32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

override WG: u32 = 256u;

fn erf(v: f32) -> f32 {
    // Abramowitz & Stegun 7.1.26: |error| < 1.5e-7.
    let t = 1.0 / (1.0 + 0.3275911 * abs(v));
    let y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * exp(-v * v);
    return select(-y, y, v >= 0.0);
}

// The codes of `delegate::Unary`.
fn apply(v: f32, op: u32) -> f32 {
    switch op {
        case 1u: { return max(v, 0.0); }                       // relu
        case 2u: { return v / (1.0 + exp(-v)); }               // silu
        case 3u: {                                             // gelu (tanh)
            let inner = 0.7978845608028654 * (v + 0.044715 * v * v * v);
            return 0.5 * v * (1.0 + tanh(clamp(inner, -15.0, 15.0)));
        }
        case 4u: { return 0.5 * v * (1.0 + erf(v * 0.7071067811865476)); } // gelu (erf)
        case 5u: { return 1.0 / (1.0 + exp(-v)); }             // sigmoid
        case 6u: { return tanh(clamp(v, -15.0, 15.0)); }       // tanh
        case 7u: { return exp(v); }
        case 8u: { return log(v); }
        case 9u: { return sqrt(v); }
        case 10u: { return inverseSqrt(v); }
        case 11u: { return abs(v); }
        case 12u: { return -v; }
        case 13u: { return v * v; }
        case 14u: { return 1.0 / v; }
        case 15u: { return sin(v); }
        case 16u: { return cos(v); }
        default: { return v; }                                 // identity (affine only)
    }
}

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.y * groups.x * WG + gid.x;
    if (i < p.len) {
        out[i] = apply(x[i] * p.a + p.b, p.op);
    }
}
