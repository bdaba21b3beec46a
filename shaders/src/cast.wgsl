// f32 <-> f16 casts without the shader-f16 feature: f16 data travels as
// pairs packed in u32 (pack2x16float / unpack2x16float, round to nearest).
// One thread per pair; `to_f16` picks the direction; len counts elements.

struct Params {
    len: u32,
    to_f16: u32,
}

@group(0) @binding(0) var<storage, read> x: array<u32>;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;
@group(0) @binding(2) var<uniform> p: Params;

override WG: u32 = 256u;

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.y * groups.x * WG + gid.x;
    if (2u * i >= p.len) {
        return;
    }
    let two = 2u * i + 1u < p.len;
    if (p.to_f16 == 1u) {
        let hi = select(0.0, bitcast<f32>(x[2u * i + 1u]), two);
        out[i] = pack2x16float(vec2<f32>(bitcast<f32>(x[2u * i]), hi));
    } else {
        let v = unpack2x16float(x[i]);
        out[2u * i] = bitcast<u32>(v.x);
        if (two) {
            out[2u * i + 1u] = bitcast<u32>(v.y);
        }
    }
}
