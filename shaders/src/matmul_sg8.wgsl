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

// Params and `store4`: epilogue.wgsl; bindings and loads: matmul_vec4_operands.wgsl.

// 8 lanes across, WG_ROWS subgroups down; each subgroup 16 rows x 64 columns.
override WG_ROWS: u32 = 8u;
const ROWS: u32 = 16u;
const COLS: u32 = 8u;

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
