// What conv3d.wgsl and conv3d_sg8.wgsl share (lib.rs prepends it): the
// parameters, the bindings, the input gather and the epilogue (the
// activations come from activation.wgsl, prepended before this file).
//
// The conv is an implicit GEMM per (batch, group): rows are output channels
// of the group (c_out_g), columns are output positions (oD·oH·oW), and the
// reduction runs over k = (ci, kz, ky, kx), c_in_g·kd·kh·kw of them. The
// input patch matrix is never stored; each kernel gathers it as it goes.

struct Params {
    c_in_g: u32,
    c_out_g: u32,
    groups: u32,
    c_out: u32,
    // Input extent.
    d: u32,
    h: u32,
    w: u32,
    // Reduction length c_in_g * kd * kh * kw.
    k: u32,
    // Output extent and positions od * oh * ow.
    od: u32,
    oh: u32,
    ow: u32,
    positions: u32,
    kd: u32,
    kh: u32,
    kw: u32,
    has_bias: u32,
    sd: u32,
    sh: u32,
    sw: u32,
    activation: u32,
    // Padding before each axis (after-padding needs no parameter: out of range reads as 0).
    pd: u32,
    ph: u32,
    pw: u32,
    // Packed weights: the length of a row of [groups][k][row] (c_out_g of the
    // whole conv; c_out_g above counts this dispatch's channels) and where this
    // dispatch's first weight sits in the binding.
    w_row: u32,
    dd: u32,
    dh: u32,
    dw: u32,
    w_off: u32,
    // Where this dispatch's x, out and bias begin in their bindings (a window
    // of a larger conv is bound from an aligned start before it).
    x_off: u32,
    out_off: u32,
    bias_off: u32,
    // 1: add to what `out` holds (a window over more input channels of the
    // same outputs; `activation` is then applied by the last such window).
    accumulate: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> wt: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

// Where output position `pos` starts reading the input: (z, y, x) of its
// kernel origin, which may lie in the padding (negative).
fn origin(pos: u32) -> vec3<i32> {
    let oz = pos / (p.oh * p.ow);
    let oy = (pos / p.ow) % p.oh;
    let ox = pos % p.ow;
    return vec3<i32>(vec3<u32>(oz * p.sd, oy * p.sh, ox * p.sw)) - vec3<i32>(vec3<u32>(p.pd, p.ph, p.pw));
}

// The input under kernel tap (ci, kz, ky, kx) of a position with origin `o`
// (0 in the padding or past the last position); `x_base` is the group's first
// input channel in this batch. Branch-free: a clamped index, then a select.
fn gather(x_base: u32, o: vec3<i32>, valid: bool, ci: u32, kz: u32, ky: u32, kx: u32) -> f32 {
    let at = o + vec3<i32>(vec3<u32>(kz * p.dd, ky * p.dh, kx * p.dw));
    let inside = valid && all(at >= vec3<i32>(0)) && all(vec3<u32>(at) < vec3<u32>(p.d, p.h, p.w));
    let i = p.x_off + x_base + ((ci * p.d + u32(at.x)) * p.h + u32(at.y)) * p.w + u32(at.z);
    return select(0.0, x[select(0u, i, inside)], inside);
}

// out[batch, channel c of group g, position pos] = act(v + bias).
fn store(batch: u32, g: u32, c: u32, pos: u32, v: f32) {
    if (c >= p.c_out_g || pos >= p.positions) {
        return;
    }
    let channel = g * p.c_out_g + c;
    let i = p.out_off + (batch * p.c_out + channel) * p.positions + pos;
    var r = v;
    if (p.accumulate == 1u) {
        r += out[i];
    }
    if (p.has_bias == 1u) {
        r += bias[p.bias_off + channel];
    }
    out[i] = activate(r, p.activation);
}
