// The one layout kernel: copies a region of up to 6 dimensions from x to out,
// both read through an offset and strides, the source index of each dimension
// divided by a factor first:
//
//   out[o_off + sum_d i_d * o_stride_d] = x[x_off + sum_d (i_d / div_d) * x_stride_d]
//
// permute/transpose (permuted strides), slice (offset, strides x step),
// expand (stride 0), concat (one copy per input into an output offset), pad
// (copy into a region of a filled output) and nearest upsampling (div_d = the
// factor) are all this kernel with different parameters.

struct Params {
    len: u32,
    rank: u32,
    x_offset: u32,
    out_offset: u32,
    shape: array<vec4<u32>, 2>,
    x_strides: array<vec4<u32>, 2>,
    out_strides: array<vec4<u32>, 2>,
    div: array<vec4<u32>, 2>,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

override WG: u32 = 256u;

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.y * groups.x * WG + gid.x;
    if (i >= p.len) {
        return;
    }
    var rest = i;
    var ix = p.x_offset;
    var io = p.out_offset;
    // The uniform is indexed in place (a copy of its arrays into a function
    // argument is indexed in private memory: several times slower on lavapipe).
    for (var d = p.rank; d > 0u; d--) {
        let v = (d - 1u) / 4u;
        let e = (d - 1u) % 4u;
        let n = p.shape[v][e];
        let c = rest % n;
        rest /= n;
        let by = p.div[v][e];
        ix += select(c / by, c, by == 1u) * p.x_strides[v][e];
        io += c * p.out_strides[v][e];
    }
    out[io] = x[ix];
}
