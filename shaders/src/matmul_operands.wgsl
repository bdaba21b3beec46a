// What matmul.wgsl and matmul_direct.wgsl share (lib.rs prepends it, with
// epilogue.wgsl): their bindings, read element by element, and B's 16-bit paths.

@group(0) @binding(0) var<storage, read> a: array<f32>;
// B holds f32 bits, or f16 / bf16 pairs (B_HALF; f32 accumulation either way).
@group(0) @binding(1) var<storage, read> b: array<u32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

// B as stored: 0 f32; 1 f16 and 2 bf16, two per u32 (low half first): weights
// at half the memory.
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

fn load_b(i: u32) -> f32 {
    if (B_HALF != 0u) {
        return half_pair(b[i / 2u])[i % 2u];
    }
    return bitcast<f32>(b[i]);
}
