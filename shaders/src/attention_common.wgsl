// What attention.wgsl and attention_sg8.wgsl share (lib.rs prepends it): the
// parameters and bindings (layouts: see attention.wgsl).

struct Params {
    q_len: u32,
    kv_len: u32,
    head_dim: u32,
    heads: u32,
    scale: f32,
    causal: u32,
    has_mask: u32,
    mask_per_batch: u32,
}

@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read> mask: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

