// The softmax step of the score-matrix attention (the GPU delegate's
// `attention::Variant::Scores`): a block of scores S = q·kᵀ, written by a
// matmul kernel, is scaled, masked and made into probabilities in place, one
// workgroup per row; a second matmul multiplies them by v.
//
// Row r of the block is query `row0 + r % rows_per_unit` of (batch, head)
// unit `unit0 + r / rows_per_unit`. Mask and causal as in attention.wgsl: a
// mask value below -1e30 (as -inf) hides the key, query i sees keys
// j <= i + kv_len - q_len when causal, and a query that sees no key gets a
// row of zeros (so zeros out, as the flash kernels give). The reductions:
// row_reduce.wgsl.

struct Params {
    rows: u32,
    kv_len: u32,
    q_len: u32,
    rows_per_unit: u32,
    row0: u32,
    unit0: u32,
    heads: u32,
    scale: f32,
    causal: u32,
    has_mask: u32,
    mask_per_batch: u32,
}

@group(0) @binding(0) var<storage, read_write> s: array<f32>;
@group(0) @binding(1) var<storage, read> mask: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

// Score j of the row, scaled and masked; -inf (as -3e38) where hidden.
fn score(base: u32, mask_base: u32, last: i32, j: u32) -> f32 {
    var x = s[base + j] * p.scale;
    if (p.causal == 1u && i32(j) > last) {
        return -3.0e38;
    }
    if (p.has_mask == 1u) {
        let bias = mask[mask_base + j];
        if (bias <= -1.0e30) {
            return -3.0e38;
        }
        x += bias;
    }
    return x;
}

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) groups: vec3<u32>) {
    let row = wid.y * groups.x + wid.x;
    if (row >= p.rows) {
        return; // uniform across the workgroup
    }
    let tid = lid.x;
    let unit = p.unit0 + row / p.rows_per_unit;
    let qi = p.row0 + row % p.rows_per_unit;
    let base = row * p.kv_len;
    let mask_base = (select(0u, unit / p.heads, p.mask_per_batch == 1u) * p.q_len + qi) * p.kv_len;
    let last = i32(qi) + i32(p.kv_len) - i32(p.q_len);

    var m = -3.0e38;
    for (var j = tid; j < p.kv_len; j += WG) {
        m = max(m, score(base, mask_base, last, j));
    }
    partial[tid] = m;
    reduce(tid, true);
    let row_max = partial[0];
    workgroupBarrier();
    // A row with no visible key: every score is the -3e38 stand-in.
    let empty = row_max <= -1.0e38;
    var sum = 0.0;
    for (var j = tid; j < p.kv_len; j += WG) {
        let x = score(base, mask_base, last, j);
        sum += select(exp(x - row_max), 0.0, x <= -1.0e38);
    }
    partial[tid] = sum;
    reduce(tid, false);
    let inv = select(1.0 / partial[0], 0.0, empty);
    // Every thread has read its scores (the sums are in): write in place.
    for (var j = tid; j < p.kv_len; j += WG) {
        let x = score(base, mask_base, last, j);
        s[base + j] = select(exp(x - row_max) * inv, 0.0, x <= -1.0e38);
    }
}
