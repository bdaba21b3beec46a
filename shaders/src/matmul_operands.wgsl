// What matmul.wgsl and matmul_direct.wgsl share (lib.rs prepends it, with
// epilogue.wgsl): their bindings, read element by element, and B's f16 path.

@group(0) @binding(0) var<storage, read> a: array<f32>;
// B holds f32 bits, or f16 pairs when B_F16 (f32 accumulation either way).
@group(0) @binding(1) var<storage, read> b: array<u32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

// B stored as f16, two per u32 (low half first): weights at half the memory.
override B_F16: bool = false;

fn load_b(i: u32) -> f32 {
    if (B_F16) {
        return unpack2x16float(b[i / 2u])[i % 2u];
    }
    return bitcast<f32>(b[i]);
}
