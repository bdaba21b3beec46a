// Reduction over one axis of a tensor viewed as [outer, axis, inner]: one
// thread per (outer, inner) output walks the axis. op: 0 sum, 1 mean, 2 max, 3 min.

struct Params {
    outer: u32,
    axis: u32,
    inner: u32,
    op: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

override WG: u32 = 256u;

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.y * groups.x * WG + gid.x;
    if (i >= p.outer * p.inner) {
        return;
    }
    let base = (i / p.inner) * p.axis * p.inner + i % p.inner;
    var acc = x[base];
    for (var j = 1u; j < p.axis; j++) {
        let v = x[base + j * p.inner];
        switch p.op {
            case 2u: { acc = max(acc, v); }
            case 3u: { acc = min(acc, v); }
            default: { acc += v; }
        }
    }
    if (p.op == 1u) {
        acc /= f32(p.axis);
    }
    out[i] = acc;
}
