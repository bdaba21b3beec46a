// Elementwise binary math with broadcasting: out[i] = f(a[ia], b[ib]) over
// an output of up to 6 dimensions; a and b are read through strides, with
// stride 0 on the dimensions they broadcast along.

struct Params {
    len: u32,
    op: u32,
    rank: u32,
    _pad: u32,
    // Output shape, innermost dimension last; entries past `rank` unused.
    shape: array<vec4<u32>, 2>,
    a_strides: array<vec4<u32>, 2>,
    b_strides: array<vec4<u32>, 2>,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

override WG: u32 = 256u;

// The codes of `delegate::Binary`.
fn apply(x: f32, y: f32, op: u32) -> f32 {
    switch op {
        case 1u: { return x - y; }
        case 2u: { return x * y; }
        case 3u: { return x / y; }
        case 4u: { return max(x, y); }
        case 5u: { return min(x, y); }
        case 6u: { return pow(x, y); }
        default: { return x + y; }
    }
}

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.y * groups.x * WG + gid.x;
    if (i >= p.len) {
        return;
    }
    // Unflatten i into the output index, innermost first, and map it into a and b.
    var rest = i;
    var ia = 0u;
    var ib = 0u;
    // The uniform is indexed in place (see copy.wgsl).
    for (var d = p.rank; d > 0u; d--) {
        let v = (d - 1u) / 4u;
        let e = (d - 1u) % 4u;
        let n = p.shape[v][e];
        let c = rest % n;
        rest /= n;
        ia += c * p.a_strides[v][e];
        ib += c * p.b_strides[v][e];
    }
    out[i] = apply(a[ia], b[ib], p.op);
}
