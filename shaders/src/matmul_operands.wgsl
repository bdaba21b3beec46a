// What matmul.wgsl and matmul_direct.wgsl share (lib.rs prepends it, with
// epilogue.wgsl): their bindings, read element by element, and B's 16-bit paths.

@group(0) @binding(0) var<storage, read> a: array<f32>;
// B holds f32 bits, f16 / bf16 pairs, int8 quads or int4 octets (B_HALF; f32 accumulation).
@group(0) @binding(1) var<storage, read> b: array<u32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
// Int8 / int4 B's scales, per stored row or group (another operand stands in otherwise).
@group(0) @binding(4) var<storage, read> scales: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

// B as stored: 0 f32; 1 f16 and 2 bf16, two per u32 (low half first): weights
// at half the memory; 3 int8, four per u32 (low byte first), times its row's scale;
// 4 int4, eight per u32 (low nibble first, stored q + 8), times its group's scale.
override B_HALF: u32 = 0u;

// A bf16 is the high half of an f32.
fn bf16_pair(w: u32) -> vec2<f32> {
    return vec2<f32>(bitcast<f32>(w << 16u), bitcast<f32>(w & 0xffff0000u));
}

fn half_pair(w: u32) -> vec2<f32> {
    if (B_HALF == 2u) {
        return bf16_pair(w);
    }
    return unpack2x16float(w);
}

// Element i of int8 B: the byte sign-extended, times the scale of its stored row.
fn int8_b(i: u32) -> f32 {
    let q = bitcast<i32>(b[i / 4u] << (24u - 8u * (i % 4u))) >> 24u;
    return f32(q) * scales[b_scale_index(i)];
}

// Element i of int4 B: the nibble less 8, times the scale of its group.
fn int4_b(i: u32) -> f32 {
    let q = i32((b[i / 8u] >> (4u * (i % 8u))) & 0xfu) - 8;
    return f32(q) * scales[b_scale_index(i)];
}

fn load_b(i: u32) -> f32 {
    if (B_HALF == 4u) {
        return int4_b(i);
    }
    if (B_HALF == 3u) {
        return int8_b(i);
    }
    if (B_HALF != 0u) {
        return half_pair(b[i / 2u])[i % 2u];
    }
    return bitcast<f32>(b[i]);
}
