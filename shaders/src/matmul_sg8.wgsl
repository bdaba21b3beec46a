// Batched matmul for adapters whose subgroups are 8 invocations wide (CPU
// rasterisers such as lavapipe), with the same bindings, parameters and
// epilogue as matmul.wgsl:
//
//   out[b, m, n] = act(sum_k A[b, m, k] * B[b, k, n] + bias[n])
//
// On such an adapter every load is paid per invocation, so what counts is
// FMAs per loaded value. A subgroup (8 lanes, one workgroup row) computes a
// 16 x 64 block of `out`: each lane owns 8 columns and all 16 rows. The lanes
// load the 16 rows of A between them — two values each per k — and pass them
// round with subgroupBroadcast, so a lane loads 2 + 8 values for 128 FMAs.
// (Workgroup memory would not help: its loads are paid per invocation too.)
// 16 x 8 accumulators per lane is the most that stays in registers.

// Params: epilogue.wgsl.

// Read as vec4: one load instruction for four values (buffers are padded to 16 bytes).
@group(0) @binding(0) var<storage, read> a: array<vec4<f32>>;
// B holds f32 bits, f16 / bf16 pairs, int8 quads or int4 octets (B_HALF; f32 accumulation).
@group(0) @binding(1) var<storage, read> b: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
// Int8 / int4 B's scales, per stored row or group (another operand stands in otherwise).
@group(0) @binding(4) var<storage, read> scales: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

// (The epilogue, `store4`, comes from epilogue.wgsl, prepended by lib.rs.)

// 8 lanes across, WG_ROWS subgroups down; each subgroup 16 rows x 64 columns.
override WG_ROWS: u32 = 8u;
// True when rows of A run along k and rows of B along n, contiguous and
// 16-byte aligned (a_col = b_col = 1; a_row, b_row and batch strides multiples
// of 4): then four values come from one vec4 load. Otherwise element by element.
override CONTIGUOUS: bool = false;
// B as stored: 0 f32; 1 f16 and 2 bf16, two per u32 (low half first); 3 int8,
// four per u32 (low byte first), times the scale of its stored row; 4 int4, eight
// per u32 (low nibble first, stored q + 8), times the scale of its group.
override B_HALF: u32 = 0u;
const ROWS: u32 = 16u;
const COLS: u32 = 8u;

fn element_a(i: u32) -> f32 {
    return a[i / 4u][i % 4u];
}

// A bf16 is the high half of an f32.
fn half_pair(w: u32) -> vec2<f32> {
    if (B_HALF == 2u) {
        return vec2<f32>(bitcast<f32>(w << 16u), bitcast<f32>(w & 0xffff0000u));
    }
    return unpack2x16float(w);
}

fn int8_quad(w: u32) -> vec4<f32> {
    return vec4<f32>(vec4<i32>(bitcast<i32>(w << 24u), bitcast<i32>(w << 16u), bitcast<i32>(w << 8u),
                               bitcast<i32>(w)) >> vec4<u32>(24u));
}

// Four int4 from bit `shift` of w (0 or 16), each less 8.
fn int4_quad(w: u32, shift: u32) -> vec4<f32> {
    let v = vec4<u32>(w >> shift) >> vec4<u32>(0u, 4u, 8u, 12u);
    return vec4<f32>(vec4<i32>(v & vec4<u32>(0xfu)) - vec4<i32>(8));
}

fn element_b(i: u32) -> f32 {
    if (B_HALF == 4u) {
        let word = i / 8u;
        let q = i32((b[word / 4u][word % 4u] >> (4u * (i % 8u))) & 0xfu) - 8;
        return f32(q) * scales[b_scale_index(i)];
    }
    if (B_HALF == 3u) {
        let word = i / 4u;
        return int8_quad(b[word / 4u][word % 4u])[i % 4u] * scales[b_scale_index(i)];
    }
    if (B_HALF != 0u) {
        let word = i / 2u;
        return half_pair(b[word / 4u][word % 4u])[i % 2u];
    }
    return bitcast<f32>(b[i / 4u][i % 4u]);
}

// Elements i .. i + 3 of B, i a multiple of 4.
fn vec4_b(i: u32) -> vec4<f32> {
    if (B_HALF == 4u) {
        // Four columns of one group (groups are multiples of 8 long): one scale.
        let word = i / 8u;
        return int4_quad(b[word / 4u][word % 4u], 4u * (i % 8u)) * scales[b_scale_index(i)];
    }
    if (B_HALF == 3u) {
        // Four columns of one stored row (contiguous B runs along n): one scale.
        let word = i / 4u;
        return int8_quad(b[word / 4u][word % 4u]) * scales[b_scale_index(i)];
    }
    if (B_HALF != 0u) {
        let w = b[i / 8u];
        let pair = select(w.xy, w.zw, (i / 4u) % 2u == 1u);
        return vec4<f32>(half_pair(pair.x), half_pair(pair.y));
    }
    return bitcast<vec4<f32>>(b[i / 4u]);
}

// A[row, k0 .. k0 + 3], zeros outside the matrix (no branches on the fast
// path: a clamped index, then a select).
fn load_a4(base: u32, row: u32, k0: u32) -> vec4<f32> {
    let ks = vec4<u32>(k0) + vec4<u32>(0u, 1u, 2u, 3u);
    let inside = vec4<bool>(row < p.m) & (ks < vec4<u32>(p.k));
    if (CONTIGUOUS) {
        let v = a[select(0u, (base + row * p.a_row + k0) / 4u, inside.x)];
        return select(vec4<f32>(), v, inside);
    }
    let i = vec4<u32>(base + row * p.a_row) + ks * p.a_col;
    let v = vec4<f32>(element_a(select(0u, i.x, inside.x)), element_a(select(0u, i.y, inside.y)),
                      element_a(select(0u, i.z, inside.z)), element_a(select(0u, i.w, inside.w)));
    return select(vec4<f32>(), v, inside);
}

// B[k, c0 .. c0 + 3], zeros outside the matrix.
fn load_b4(base: u32, k: u32, c0: u32) -> vec4<f32> {
    let cs = vec4<u32>(c0) + vec4<u32>(0u, 1u, 2u, 3u);
    let inside = vec4<bool>(k < p.k) & (cs < vec4<u32>(p.n));
    if (CONTIGUOUS) {
        // n is a multiple of 4, so the four columns are all inside or all out.
        return select(vec4<f32>(), vec4_b(select(0u, base + k * p.b_row + c0, inside.x)), inside);
    }
    let i = vec4<u32>(base + k * p.b_row) + cs * p.b_col;
    let v = vec4<f32>(element_b(select(0u, i.x, inside.x)), element_b(select(0u, i.y, inside.y)),
                      element_b(select(0u, i.z, inside.z)), element_b(select(0u, i.w, inside.w)));
    return select(vec4<f32>(), v, inside);
}

@compute @workgroup_size(8, WG_ROWS, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let batch = wid.z;
    let lane = lid.x;
    let row0 = (wid.y * WG_ROWS + lid.y) * ROWS;
    let col0 = (wid.x * 8u + lane) * COLS;
    let a_base = p.a_off + batch * p.a_batch;
    let b_base = p.b_off + batch * p.b_batch;

    // acc[i * 2 + h]: row row0 + i, columns col0 + 4h .. col0 + 4h + 3.
    var acc: array<vec4<f32>, 32>;
    for (var k0 = 0u; k0 < p.k; k0 += 4u) {
        // This lane's share of A: rows row0 + lane and row0 + 8 + lane, k0 .. k0 + 3.
        let lo = load_a4(a_base, row0 + lane, k0);
        let hi = load_a4(a_base, row0 + 8u + lane, k0);
        for (var j = 0u; j < 4u; j++) {
            let k = k0 + j;
            let b0 = load_b4(b_base, k, col0);
            let b1 = load_b4(b_base, k, col0 + 4u);
            let x = lo[j];
            let y = hi[j];
            // subgroupBroadcast needs a constant lane: the 16 rows, spelled out.
            { let v = subgroupBroadcast(x, 0u); acc[0] += v * b0; acc[1] += v * b1; }
            { let v = subgroupBroadcast(x, 1u); acc[2] += v * b0; acc[3] += v * b1; }
            { let v = subgroupBroadcast(x, 2u); acc[4] += v * b0; acc[5] += v * b1; }
            { let v = subgroupBroadcast(x, 3u); acc[6] += v * b0; acc[7] += v * b1; }
            { let v = subgroupBroadcast(x, 4u); acc[8] += v * b0; acc[9] += v * b1; }
            { let v = subgroupBroadcast(x, 5u); acc[10] += v * b0; acc[11] += v * b1; }
            { let v = subgroupBroadcast(x, 6u); acc[12] += v * b0; acc[13] += v * b1; }
            { let v = subgroupBroadcast(x, 7u); acc[14] += v * b0; acc[15] += v * b1; }
            { let v = subgroupBroadcast(y, 0u); acc[16] += v * b0; acc[17] += v * b1; }
            { let v = subgroupBroadcast(y, 1u); acc[18] += v * b0; acc[19] += v * b1; }
            { let v = subgroupBroadcast(y, 2u); acc[20] += v * b0; acc[21] += v * b1; }
            { let v = subgroupBroadcast(y, 3u); acc[22] += v * b0; acc[23] += v * b1; }
            { let v = subgroupBroadcast(y, 4u); acc[24] += v * b0; acc[25] += v * b1; }
            { let v = subgroupBroadcast(y, 5u); acc[26] += v * b0; acc[27] += v * b1; }
            { let v = subgroupBroadcast(y, 6u); acc[28] += v * b0; acc[29] += v * b1; }
            { let v = subgroupBroadcast(y, 7u); acc[30] += v * b0; acc[31] += v * b1; }
        }
    }
    // Constant indices only: one dynamic index would send `acc` to memory (2.5x slower).
    store4(batch, row0 + 0u, col0, acc[0]); store4(batch, row0 + 0u, col0 + 4u, acc[1]);
    store4(batch, row0 + 1u, col0, acc[2]); store4(batch, row0 + 1u, col0 + 4u, acc[3]);
    store4(batch, row0 + 2u, col0, acc[4]); store4(batch, row0 + 2u, col0 + 4u, acc[5]);
    store4(batch, row0 + 3u, col0, acc[6]); store4(batch, row0 + 3u, col0 + 4u, acc[7]);
    store4(batch, row0 + 4u, col0, acc[8]); store4(batch, row0 + 4u, col0 + 4u, acc[9]);
    store4(batch, row0 + 5u, col0, acc[10]); store4(batch, row0 + 5u, col0 + 4u, acc[11]);
    store4(batch, row0 + 6u, col0, acc[12]); store4(batch, row0 + 6u, col0 + 4u, acc[13]);
    store4(batch, row0 + 7u, col0, acc[14]); store4(batch, row0 + 7u, col0 + 4u, acc[15]);
    store4(batch, row0 + 8u, col0, acc[16]); store4(batch, row0 + 8u, col0 + 4u, acc[17]);
    store4(batch, row0 + 9u, col0, acc[18]); store4(batch, row0 + 9u, col0 + 4u, acc[19]);
    store4(batch, row0 + 10u, col0, acc[20]); store4(batch, row0 + 10u, col0 + 4u, acc[21]);
    store4(batch, row0 + 11u, col0, acc[22]); store4(batch, row0 + 11u, col0 + 4u, acc[23]);
    store4(batch, row0 + 12u, col0, acc[24]); store4(batch, row0 + 12u, col0 + 4u, acc[25]);
    store4(batch, row0 + 13u, col0, acc[26]); store4(batch, row0 + 13u, col0 + 4u, acc[27]);
    store4(batch, row0 + 14u, col0, acc[28]); store4(batch, row0 + 14u, col0 + 4u, acc[29]);
    store4(batch, row0 + 15u, col0, acc[30]); store4(batch, row0 + 15u, col0 + 4u, acc[31]);

}
