// Split-K's last step (engine/src/delegate/gpu/matmul.rs, Config::SplitK):
// `parts` planes of `len` partial sums, one per part of k, added up in order,
// then the bias (per column of rows `n` long) and the activation; one
// invocation per output element.

struct Params {
    len: u32,
    parts: u32,
    n: u32,
    has_bias: u32,
    activation: u32,
    out_off: u32,
    pad0: u32,
    pad1: u32,
}

@group(0) @binding(0) var<storage, read> planes: array<f32>;
@group(0) @binding(1) var<storage, read> bias: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.y * groups.x * 256u + gid.x;
    if (i >= p.len) {
        return;
    }
    var acc = 0.0;
    for (var s = 0u; s < p.parts; s++) {
        acc += planes[s * p.len + i];
    }
    if (p.has_bias == 1u) {
        acc += bias[i % p.n];
    }
    out[p.out_off + i] = activate(acc, p.activation);
}
