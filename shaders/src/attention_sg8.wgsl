// Flash attention for adapters with 8-wide subgroups (lavapipe); the same
// parameters, bindings and results as attention.wgsl.
//
// Each lane owns one query: its row of q and of the output stay in
// registers. For every key, the 8 lanes load the key's row (and the value's)
// between them — lane l the vec4s l, l + 8, … — and share them with
// subgroupBroadcast, so a lane loads 2·D4/8 vec4 per key instead of 2·D4.
// The softmax is online and branch-free (masked keys weigh 0). The lines are
// spelled out because subgroupBroadcast needs a constant lane, and registers
// need constant indices; `D4 > i` tests on the override fold away.

// (Params and bindings: attention_common.wgsl.)

// Subgroups per workgroup (8 queries each).
override WG_ROWS: u32 = 8u;
// head_dim / 4, rounded up (at most 32).
override D4: u32 = 16u;

// Elements 4i .. 4i + 3 of the row starting at `base` of q (0), k (1) or v (2); 0 past head_dim.
fn row4(which: u32, base: u32, i: u32) -> vec4<f32> {
    let e = vec4<u32>(4u * i) + vec4<u32>(0u, 1u, 2u, 3u);
    let inside = e < vec4<u32>(p.head_dim);
    let j = vec4<u32>(base) + select(vec4<u32>(0u), e, inside);
    var r: vec4<f32>;
    switch which {
        case 0u: { r = vec4<f32>(q[j.x], q[j.y], q[j.z], q[j.w]); }
        case 1u: { r = vec4<f32>(k[j.x], k[j.y], k[j.z], k[j.w]); }
        default: { r = vec4<f32>(v[j.x], v[j.y], v[j.z], v[j.w]); }
    }
    return select(vec4<f32>(), r, inside);
}

fn store4(q_row: u32, i: u32, r: vec4<f32>) {
    for (var c = 0u; c < 4u; c++) {
        let e = 4u * i + c;
        if (e < p.head_dim) {
            out[q_row * p.head_dim + e] = r[c];
        }
    }
}

@compute @workgroup_size(8, WG_ROWS, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let lane = lid.x;
    let bh = wid.y;
    let qi = (wid.x * WG_ROWS + lid.y) * 8u + lane;
    let live = qi < p.q_len;
    let q_row = bh * p.q_len + min(qi, p.q_len - 1u);
    let mask_row = select(0u, bh / p.heads, p.mask_per_batch == 1u) * p.q_len + min(qi, p.q_len - 1u);
    let last = i32(qi) + i32(p.kv_len) - i32(p.q_len);

    var qv: array<vec4<f32>, 32>;
    var acc: array<vec4<f32>, 32>;
    if (D4 > 0u) { qv[0] = row4(0u, q_row * p.head_dim, 0u) * p.scale; }
    if (D4 > 1u) { qv[1] = row4(0u, q_row * p.head_dim, 1u) * p.scale; }
    if (D4 > 2u) { qv[2] = row4(0u, q_row * p.head_dim, 2u) * p.scale; }
    if (D4 > 3u) { qv[3] = row4(0u, q_row * p.head_dim, 3u) * p.scale; }
    if (D4 > 4u) { qv[4] = row4(0u, q_row * p.head_dim, 4u) * p.scale; }
    if (D4 > 5u) { qv[5] = row4(0u, q_row * p.head_dim, 5u) * p.scale; }
    if (D4 > 6u) { qv[6] = row4(0u, q_row * p.head_dim, 6u) * p.scale; }
    if (D4 > 7u) { qv[7] = row4(0u, q_row * p.head_dim, 7u) * p.scale; }
    if (D4 > 8u) { qv[8] = row4(0u, q_row * p.head_dim, 8u) * p.scale; }
    if (D4 > 9u) { qv[9] = row4(0u, q_row * p.head_dim, 9u) * p.scale; }
    if (D4 > 10u) { qv[10] = row4(0u, q_row * p.head_dim, 10u) * p.scale; }
    if (D4 > 11u) { qv[11] = row4(0u, q_row * p.head_dim, 11u) * p.scale; }
    if (D4 > 12u) { qv[12] = row4(0u, q_row * p.head_dim, 12u) * p.scale; }
    if (D4 > 13u) { qv[13] = row4(0u, q_row * p.head_dim, 13u) * p.scale; }
    if (D4 > 14u) { qv[14] = row4(0u, q_row * p.head_dim, 14u) * p.scale; }
    if (D4 > 15u) { qv[15] = row4(0u, q_row * p.head_dim, 15u) * p.scale; }
    if (D4 > 16u) { qv[16] = row4(0u, q_row * p.head_dim, 16u) * p.scale; }
    if (D4 > 17u) { qv[17] = row4(0u, q_row * p.head_dim, 17u) * p.scale; }
    if (D4 > 18u) { qv[18] = row4(0u, q_row * p.head_dim, 18u) * p.scale; }
    if (D4 > 19u) { qv[19] = row4(0u, q_row * p.head_dim, 19u) * p.scale; }
    if (D4 > 20u) { qv[20] = row4(0u, q_row * p.head_dim, 20u) * p.scale; }
    if (D4 > 21u) { qv[21] = row4(0u, q_row * p.head_dim, 21u) * p.scale; }
    if (D4 > 22u) { qv[22] = row4(0u, q_row * p.head_dim, 22u) * p.scale; }
    if (D4 > 23u) { qv[23] = row4(0u, q_row * p.head_dim, 23u) * p.scale; }
    if (D4 > 24u) { qv[24] = row4(0u, q_row * p.head_dim, 24u) * p.scale; }
    if (D4 > 25u) { qv[25] = row4(0u, q_row * p.head_dim, 25u) * p.scale; }
    if (D4 > 26u) { qv[26] = row4(0u, q_row * p.head_dim, 26u) * p.scale; }
    if (D4 > 27u) { qv[27] = row4(0u, q_row * p.head_dim, 27u) * p.scale; }
    if (D4 > 28u) { qv[28] = row4(0u, q_row * p.head_dim, 28u) * p.scale; }
    if (D4 > 29u) { qv[29] = row4(0u, q_row * p.head_dim, 29u) * p.scale; }
    if (D4 > 30u) { qv[30] = row4(0u, q_row * p.head_dim, 30u) * p.scale; }
    if (D4 > 31u) { qv[31] = row4(0u, q_row * p.head_dim, 31u) * p.scale; }
    var m = -3.0e38; // running max of the visible scores
    var l = 0.0;     // running sum of exp(score - m)
    for (var key = 0u; key < p.kv_len; key++) {
        let base = (bh * p.kv_len + key) * p.head_dim;
        let k0 = select(vec4<f32>(), row4(1u, base, lane + 0u), D4 > 0u);
        let k1 = select(vec4<f32>(), row4(1u, base, lane + 8u), D4 > 8u);
        let k2 = select(vec4<f32>(), row4(1u, base, lane + 16u), D4 > 16u);
        let k3 = select(vec4<f32>(), row4(1u, base, lane + 24u), D4 > 24u);
        let v0 = select(vec4<f32>(), row4(2u, base, lane + 0u), D4 > 0u);
        let v1 = select(vec4<f32>(), row4(2u, base, lane + 8u), D4 > 8u);
        let v2 = select(vec4<f32>(), row4(2u, base, lane + 16u), D4 > 16u);
        let v3 = select(vec4<f32>(), row4(2u, base, lane + 24u), D4 > 24u);
        var s = 0.0;
        if (D4 > 0u) { s += dot(qv[0], subgroupBroadcast(k0, 0u)); }
        if (D4 > 1u) { s += dot(qv[1], subgroupBroadcast(k0, 1u)); }
        if (D4 > 2u) { s += dot(qv[2], subgroupBroadcast(k0, 2u)); }
        if (D4 > 3u) { s += dot(qv[3], subgroupBroadcast(k0, 3u)); }
        if (D4 > 4u) { s += dot(qv[4], subgroupBroadcast(k0, 4u)); }
        if (D4 > 5u) { s += dot(qv[5], subgroupBroadcast(k0, 5u)); }
        if (D4 > 6u) { s += dot(qv[6], subgroupBroadcast(k0, 6u)); }
        if (D4 > 7u) { s += dot(qv[7], subgroupBroadcast(k0, 7u)); }
        if (D4 > 8u) { s += dot(qv[8], subgroupBroadcast(k1, 0u)); }
        if (D4 > 9u) { s += dot(qv[9], subgroupBroadcast(k1, 1u)); }
        if (D4 > 10u) { s += dot(qv[10], subgroupBroadcast(k1, 2u)); }
        if (D4 > 11u) { s += dot(qv[11], subgroupBroadcast(k1, 3u)); }
        if (D4 > 12u) { s += dot(qv[12], subgroupBroadcast(k1, 4u)); }
        if (D4 > 13u) { s += dot(qv[13], subgroupBroadcast(k1, 5u)); }
        if (D4 > 14u) { s += dot(qv[14], subgroupBroadcast(k1, 6u)); }
        if (D4 > 15u) { s += dot(qv[15], subgroupBroadcast(k1, 7u)); }
        if (D4 > 16u) { s += dot(qv[16], subgroupBroadcast(k2, 0u)); }
        if (D4 > 17u) { s += dot(qv[17], subgroupBroadcast(k2, 1u)); }
        if (D4 > 18u) { s += dot(qv[18], subgroupBroadcast(k2, 2u)); }
        if (D4 > 19u) { s += dot(qv[19], subgroupBroadcast(k2, 3u)); }
        if (D4 > 20u) { s += dot(qv[20], subgroupBroadcast(k2, 4u)); }
        if (D4 > 21u) { s += dot(qv[21], subgroupBroadcast(k2, 5u)); }
        if (D4 > 22u) { s += dot(qv[22], subgroupBroadcast(k2, 6u)); }
        if (D4 > 23u) { s += dot(qv[23], subgroupBroadcast(k2, 7u)); }
        if (D4 > 24u) { s += dot(qv[24], subgroupBroadcast(k3, 0u)); }
        if (D4 > 25u) { s += dot(qv[25], subgroupBroadcast(k3, 1u)); }
        if (D4 > 26u) { s += dot(qv[26], subgroupBroadcast(k3, 2u)); }
        if (D4 > 27u) { s += dot(qv[27], subgroupBroadcast(k3, 3u)); }
        if (D4 > 28u) { s += dot(qv[28], subgroupBroadcast(k3, 4u)); }
        if (D4 > 29u) { s += dot(qv[29], subgroupBroadcast(k3, 5u)); }
        if (D4 > 30u) { s += dot(qv[30], subgroupBroadcast(k3, 6u)); }
        if (D4 > 31u) { s += dot(qv[31], subgroupBroadcast(k3, 7u)); }
        var visible = live && !(p.causal == 1u && i32(key) > last);
        if (p.has_mask == 1u) {
            let bias = mask[mask_row * p.kv_len + key];
            visible = visible && bias > -1.0e30;
            s += select(0.0, bias, visible);
        }
        let m_new = select(m, max(m, s), visible);
        let c = exp(m - m_new);
        let e = select(0.0, exp(s - m_new), visible);
        l = l * c + e;
        m = m_new;
        if (D4 > 0u) { acc[0] = acc[0] * c + e * subgroupBroadcast(v0, 0u); }
        if (D4 > 1u) { acc[1] = acc[1] * c + e * subgroupBroadcast(v0, 1u); }
        if (D4 > 2u) { acc[2] = acc[2] * c + e * subgroupBroadcast(v0, 2u); }
        if (D4 > 3u) { acc[3] = acc[3] * c + e * subgroupBroadcast(v0, 3u); }
        if (D4 > 4u) { acc[4] = acc[4] * c + e * subgroupBroadcast(v0, 4u); }
        if (D4 > 5u) { acc[5] = acc[5] * c + e * subgroupBroadcast(v0, 5u); }
        if (D4 > 6u) { acc[6] = acc[6] * c + e * subgroupBroadcast(v0, 6u); }
        if (D4 > 7u) { acc[7] = acc[7] * c + e * subgroupBroadcast(v0, 7u); }
        if (D4 > 8u) { acc[8] = acc[8] * c + e * subgroupBroadcast(v1, 0u); }
        if (D4 > 9u) { acc[9] = acc[9] * c + e * subgroupBroadcast(v1, 1u); }
        if (D4 > 10u) { acc[10] = acc[10] * c + e * subgroupBroadcast(v1, 2u); }
        if (D4 > 11u) { acc[11] = acc[11] * c + e * subgroupBroadcast(v1, 3u); }
        if (D4 > 12u) { acc[12] = acc[12] * c + e * subgroupBroadcast(v1, 4u); }
        if (D4 > 13u) { acc[13] = acc[13] * c + e * subgroupBroadcast(v1, 5u); }
        if (D4 > 14u) { acc[14] = acc[14] * c + e * subgroupBroadcast(v1, 6u); }
        if (D4 > 15u) { acc[15] = acc[15] * c + e * subgroupBroadcast(v1, 7u); }
        if (D4 > 16u) { acc[16] = acc[16] * c + e * subgroupBroadcast(v2, 0u); }
        if (D4 > 17u) { acc[17] = acc[17] * c + e * subgroupBroadcast(v2, 1u); }
        if (D4 > 18u) { acc[18] = acc[18] * c + e * subgroupBroadcast(v2, 2u); }
        if (D4 > 19u) { acc[19] = acc[19] * c + e * subgroupBroadcast(v2, 3u); }
        if (D4 > 20u) { acc[20] = acc[20] * c + e * subgroupBroadcast(v2, 4u); }
        if (D4 > 21u) { acc[21] = acc[21] * c + e * subgroupBroadcast(v2, 5u); }
        if (D4 > 22u) { acc[22] = acc[22] * c + e * subgroupBroadcast(v2, 6u); }
        if (D4 > 23u) { acc[23] = acc[23] * c + e * subgroupBroadcast(v2, 7u); }
        if (D4 > 24u) { acc[24] = acc[24] * c + e * subgroupBroadcast(v3, 0u); }
        if (D4 > 25u) { acc[25] = acc[25] * c + e * subgroupBroadcast(v3, 1u); }
        if (D4 > 26u) { acc[26] = acc[26] * c + e * subgroupBroadcast(v3, 2u); }
        if (D4 > 27u) { acc[27] = acc[27] * c + e * subgroupBroadcast(v3, 3u); }
        if (D4 > 28u) { acc[28] = acc[28] * c + e * subgroupBroadcast(v3, 4u); }
        if (D4 > 29u) { acc[29] = acc[29] * c + e * subgroupBroadcast(v3, 5u); }
        if (D4 > 30u) { acc[30] = acc[30] * c + e * subgroupBroadcast(v3, 6u); }
        if (D4 > 31u) { acc[31] = acc[31] * c + e * subgroupBroadcast(v3, 7u); }
    }
    if (!live) {
        return;
    }
    let inv = select(0.0, 1.0 / l, l > 0.0);
    if (D4 > 0u) { store4(q_row, 0u, acc[0] * inv); }
    if (D4 > 1u) { store4(q_row, 1u, acc[1] * inv); }
    if (D4 > 2u) { store4(q_row, 2u, acc[2] * inv); }
    if (D4 > 3u) { store4(q_row, 3u, acc[3] * inv); }
    if (D4 > 4u) { store4(q_row, 4u, acc[4] * inv); }
    if (D4 > 5u) { store4(q_row, 5u, acc[5] * inv); }
    if (D4 > 6u) { store4(q_row, 6u, acc[6] * inv); }
    if (D4 > 7u) { store4(q_row, 7u, acc[7] * inv); }
    if (D4 > 8u) { store4(q_row, 8u, acc[8] * inv); }
    if (D4 > 9u) { store4(q_row, 9u, acc[9] * inv); }
    if (D4 > 10u) { store4(q_row, 10u, acc[10] * inv); }
    if (D4 > 11u) { store4(q_row, 11u, acc[11] * inv); }
    if (D4 > 12u) { store4(q_row, 12u, acc[12] * inv); }
    if (D4 > 13u) { store4(q_row, 13u, acc[13] * inv); }
    if (D4 > 14u) { store4(q_row, 14u, acc[14] * inv); }
    if (D4 > 15u) { store4(q_row, 15u, acc[15] * inv); }
    if (D4 > 16u) { store4(q_row, 16u, acc[16] * inv); }
    if (D4 > 17u) { store4(q_row, 17u, acc[17] * inv); }
    if (D4 > 18u) { store4(q_row, 18u, acc[18] * inv); }
    if (D4 > 19u) { store4(q_row, 19u, acc[19] * inv); }
    if (D4 > 20u) { store4(q_row, 20u, acc[20] * inv); }
    if (D4 > 21u) { store4(q_row, 21u, acc[21] * inv); }
    if (D4 > 22u) { store4(q_row, 22u, acc[22] * inv); }
    if (D4 > 23u) { store4(q_row, 23u, acc[23] * inv); }
    if (D4 > 24u) { store4(q_row, 24u, acc[24] * inv); }
    if (D4 > 25u) { store4(q_row, 25u, acc[25] * inv); }
    if (D4 > 26u) { store4(q_row, 26u, acc[26] * inv); }
    if (D4 > 27u) { store4(q_row, 27u, acc[27] * inv); }
    if (D4 > 28u) { store4(q_row, 28u, acc[28] * inv); }
    if (D4 > 29u) { store4(q_row, 29u, acc[29] * inv); }
    if (D4 > 30u) { store4(q_row, 30u, acc[30] * inv); }
    if (D4 > 31u) { store4(q_row, 31u, acc[31] * inv); }
}
