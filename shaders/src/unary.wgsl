// Elementwise unary math: out[i] = f(x[i] * a + b), one element per thread.
// `op` picks f; the affine pre-step (a = 1, b = 0 for plain ops) lets scale
// and shift fuse in. (activation.wgsl is prepended.)

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

// The codes of `delegate::Unary`.
fn apply(v: f32, op: u32) -> f32 {
    switch op {
        // 1 relu, 2 silu, 3 gelu (tanh), 4 gelu (erf): the codes of activation.wgsl.
        case 1u, 2u, 3u, 4u: { return activate(v, op); }
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
