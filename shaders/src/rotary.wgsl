// Rotary position embedding on x viewed as [outer, len, inner, dim]: each
// pair (x0, x1) of a row at position t turns by the angle whose cos and sin
// are cos[t, j] and sin[t, j] (tables [len, dim / 2]):
//
//   (x0, x1) -> (x0 * c - x1 * s, x0 * s + x1 * c)
//
// Pairs are (2j, 2j + 1) when `interleaved` (Wan, complex-number style) or
// (j, j + dim / 2) otherwise (GPT-NeoX / Llama style). One thread per pair.

struct Params {
    pairs: u32,
    len: u32,
    inner: u32,
    dim: u32,
    interleaved: u32,
    // The first row of this window (a window of a larger x sees local rows;
    // positions come from the global row).
    row0: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> cos_t: array<f32>;
@group(0) @binding(2) var<storage, read> sin_t: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

override WG: u32 = 256u;

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.y * groups.x * WG + gid.x;
    if (i >= p.pairs) {
        return;
    }
    let half = p.dim / 2u;
    let row = i / half;
    let j = i % half;
    let t = ((p.row0 + row) / p.inner) % p.len;
    var i0 = row * p.dim + j;
    var i1 = i0 + half;
    if (p.interleaved == 1u) {
        i0 = row * p.dim + 2u * j;
        i1 = i0 + 1u;
    }
    let c = cos_t[t * half + j];
    let s = sin_t[t * half + j];
    let x0 = x[i0];
    let x1 = x[i1];
    out[i0] = x0 * c - x1 * s;
    out[i1] = x0 * s + x1 * c;
}
