// Flash attention: out = softmax(q k^T * scale + mask) v, one (batch, head)
// per workgroup row, one query per thread, with an online softmax — no
// q_len x kv_len matrix anywhere. Keys and values stream through workgroup
// memory BK at a time; each thread keeps its query and its output row in
// registers (head_dim <= 128).
//
// Layouts (PyTorch SDPA): q, out [batch, heads, q_len, head_dim]; k, v
// [batch, heads, kv_len, head_dim]; mask [q_len, kv_len], or
// [batch, q_len, kv_len] when mask_per_batch. A mask value below -1e30 (as
// -inf) hides the key; a query that sees no key gets zeros.

// (Params and bindings: attention_common.wgsl.)

// Queries per workgroup (one per thread; `live` is false past q_len).
override BQ: u32 = 64u;
// head_dim rounded up to a multiple of 4, and keys per tile: 2 * BK * D4 * 16
// bytes of workgroup memory (16 KiB for BK = 16 at head_dim 128).
override D4: u32 = 16u;
override BK: u32 = 32u;
override TILE: u32 = BK * D4;

var<workgroup> k_tile: array<vec4<f32>, TILE>;
var<workgroup> v_tile: array<vec4<f32>, TILE>;

// Element i of a row of `head_dim` values, 0 past the end (vec4 padding).
fn at(row: u32, d: u32, which: u32) -> f32 {
    if (d >= p.head_dim) {
        return 0.0;
    }
    switch which {
        case 0u: { return q[row * p.head_dim + d]; }
        case 1u: { return k[row * p.head_dim + d]; }
        default: { return v[row * p.head_dim + d]; }
    }
}

@compute @workgroup_size(BQ, 1, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let bh = wid.y;
    let qi = wid.x * BQ + lid.x;
    let live = qi < p.q_len;
    let q_row = bh * p.q_len + min(qi, p.q_len - 1u);
    let mask_row = select(0u, bh / p.heads, p.mask_per_batch == 1u) * p.q_len + min(qi, p.q_len - 1u);
    // The last key this query sees when causal.
    let last = i32(qi) + i32(p.kv_len) - i32(p.q_len);

    var qv: array<vec4<f32>, 32>;
    var acc: array<vec4<f32>, 32>;
    for (var d = 0u; d < D4; d++) {
        let e = d * 4u;
        qv[d] = vec4<f32>(at(q_row, e, 0u), at(q_row, e + 1u, 0u), at(q_row, e + 2u, 0u), at(q_row, e + 3u, 0u)) * p.scale;
    }
    var m = -3.0e38; // running max of the scores seen
    var l = 0.0;     // running sum of exp(score - m)

    for (var k0 = 0u; k0 < p.kv_len; k0 += BK) {
        for (var i = lid.x; i < BK * D4; i += BQ) {
            let key = k0 + i / D4;
            let e = (i % D4) * 4u;
            let row = bh * p.kv_len + min(key, p.kv_len - 1u);
            k_tile[i] = vec4<f32>(at(row, e, 1u), at(row, e + 1u, 1u), at(row, e + 2u, 1u), at(row, e + 3u, 1u));
            v_tile[i] = vec4<f32>(at(row, e, 2u), at(row, e + 1u, 2u), at(row, e + 2u, 2u), at(row, e + 3u, 2u));
        }
        workgroupBarrier();
        let keys = min(BK, p.kv_len - k0);
        for (var j = 0u; j < keys; j++) {
            let key = k0 + j;
            var s = 0.0;
            for (var d = 0u; d < D4; d++) {
                s += dot(qv[d], k_tile[j * D4 + d]);
            }
            var visible = live && !(p.causal == 1u && i32(key) > last);
            if (p.has_mask == 1u) {
                let bias = mask[mask_row * p.kv_len + key];
                visible = visible && bias > -1.0e30;
                s += bias;
            }
            if (visible) {
                if (s > m) {
                    let c = exp(m - s);
                    l *= c;
                    for (var d = 0u; d < D4; d++) {
                        acc[d] *= c;
                    }
                    m = s;
                }
                let e = exp(s - m);
                l += e;
                for (var d = 0u; d < D4; d++) {
                    acc[d] += e * v_tile[j * D4 + d];
                }
            }
        }
        workgroupBarrier();
    }

    if (!live) {
        return;
    }
    let inv = select(0.0, 1.0 / l, l > 0.0);
    for (var d = 0u; d < D4; d++) {
        let r = acc[d] * inv;
        for (var c = 0u; c < 4u; c++) {
            let e = d * 4u + c;
            if (e < p.head_dim) {
                out[q_row * p.head_dim + e] = r[c];
            }
        }
    }
}
