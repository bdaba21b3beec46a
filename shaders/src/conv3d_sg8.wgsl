// conv3d as an implicit GEMM for adapters with 8-wide subgroups (lavapipe);
// parameters, bindings, gather and epilogue: conv_common.wgsl.
//
// As in matmul_sg8.wgsl, a subgroup of 8 lanes computes a 16 x 64 block, here
// 16 output positions x 64 output channels: each lane owns 8 channels (two
// vec4 loads of the prepacked weights [groups][k][c_out_g] per k) and gathers
// the input of two of the 16 positions, which subgroupBroadcast shares. The
// reduction walks (ci, kz, ky, kx) as nested loops: no divisions inside.

override WG_ROWS: u32 = 8u;
// True when w_row and w_off are multiples of 4: a lane's weights are two vec4 loads.
override CONTIGUOUS: bool = false;

fn weights4(i: u32, c: u32) -> vec4<f32> {
    // Channels c .. c + 3 at flat index i of [groups][k][w_row]; 0 past c_out_g.
    let inside = (vec4<u32>(c) + vec4<u32>(0u, 1u, 2u, 3u)) < vec4<u32>(p.c_out_g);
    if (CONTIGUOUS) {
        return select(vec4<f32>(), wt[select(0u, i / 4u, inside.x)], inside);
    }
    let j = vec4<u32>(i) + vec4<u32>(0u, 1u, 2u, 3u);
    let v = vec4<f32>(wt[select(0u, j.x, inside.x) / 4u][j.x % 4u], wt[select(0u, j.y, inside.y) / 4u][j.y % 4u],
                      wt[select(0u, j.z, inside.z) / 4u][j.z % 4u], wt[select(0u, j.w, inside.w) / 4u][j.w % 4u]);
    return select(vec4<f32>(), v, inside);
}

// Channels c0 .. c0 + 7 of position `pos`.
fn store4(batch: u32, g: u32, c0: u32, pos: u32, a: vec4<f32>, b: vec4<f32>) {
    for (var j = 0u; j < 4u; j++) {
        store(batch, g, c0 + j, pos, a[j]);
        store(batch, g, c0 + 4u + j, pos, b[j]);
    }
}

@compute @workgroup_size(8, WG_ROWS, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let batch = wid.z / p.groups;
    let g = wid.z % p.groups;
    let lane = lid.x;
    let pos0 = (wid.y * WG_ROWS + lid.y) * 16u;
    let c0 = (wid.x * 8u + lane) * 8u;
    let x_base = (batch * p.groups + g) * p.c_in_g * p.d * p.h * p.w;
    // This lane gathers for positions pos0 + lane and pos0 + 8 + lane.
    let o_lo = origin(pos0 + lane);
    let o_hi = origin(pos0 + 8u + lane);
    let ok_lo = pos0 + lane < p.positions;
    let ok_hi = pos0 + 8u + lane < p.positions;

    var acc: array<vec4<f32>, 32>;
    var wi = p.w_off + g * p.k * p.w_row + c0;
    for (var ci = 0u; ci < p.c_in_g; ci++) {
        for (var kz = 0u; kz < p.kd; kz++) {
            for (var ky = 0u; ky < p.kh; ky++) {
                for (var kx = 0u; kx < p.kw; kx++) {
                    let lo = gather(x_base, o_lo, ok_lo, ci, kz, ky, kx);
                    let hi = gather(x_base, o_hi, ok_hi, ci, kz, ky, kx);
                    let w0 = weights4(wi, c0);
                    let w1 = weights4(wi + 4u, c0 + 4u);
                    wi += p.w_row;
                    { let v = subgroupBroadcast(lo, 0u); acc[0] += v * w0; acc[1] += v * w1; }
                    { let v = subgroupBroadcast(lo, 1u); acc[2] += v * w0; acc[3] += v * w1; }
                    { let v = subgroupBroadcast(lo, 2u); acc[4] += v * w0; acc[5] += v * w1; }
                    { let v = subgroupBroadcast(lo, 3u); acc[6] += v * w0; acc[7] += v * w1; }
                    { let v = subgroupBroadcast(lo, 4u); acc[8] += v * w0; acc[9] += v * w1; }
                    { let v = subgroupBroadcast(lo, 5u); acc[10] += v * w0; acc[11] += v * w1; }
                    { let v = subgroupBroadcast(lo, 6u); acc[12] += v * w0; acc[13] += v * w1; }
                    { let v = subgroupBroadcast(lo, 7u); acc[14] += v * w0; acc[15] += v * w1; }
                    { let v = subgroupBroadcast(hi, 0u); acc[16] += v * w0; acc[17] += v * w1; }
                    { let v = subgroupBroadcast(hi, 1u); acc[18] += v * w0; acc[19] += v * w1; }
                    { let v = subgroupBroadcast(hi, 2u); acc[20] += v * w0; acc[21] += v * w1; }
                    { let v = subgroupBroadcast(hi, 3u); acc[22] += v * w0; acc[23] += v * w1; }
                    { let v = subgroupBroadcast(hi, 4u); acc[24] += v * w0; acc[25] += v * w1; }
                    { let v = subgroupBroadcast(hi, 5u); acc[26] += v * w0; acc[27] += v * w1; }
                    { let v = subgroupBroadcast(hi, 6u); acc[28] += v * w0; acc[29] += v * w1; }
                    { let v = subgroupBroadcast(hi, 7u); acc[30] += v * w0; acc[31] += v * w1; }
                }
            }
        }
    }
    // Constant indices only: one dynamic index would send `acc` to memory.
    store4(batch, g, c0, pos0 + 0u, acc[0], acc[1]);
    store4(batch, g, c0, pos0 + 1u, acc[2], acc[3]);
    store4(batch, g, c0, pos0 + 2u, acc[4], acc[5]);
    store4(batch, g, c0, pos0 + 3u, acc[6], acc[7]);
    store4(batch, g, c0, pos0 + 4u, acc[8], acc[9]);
    store4(batch, g, c0, pos0 + 5u, acc[10], acc[11]);
    store4(batch, g, c0, pos0 + 6u, acc[12], acc[13]);
    store4(batch, g, c0, pos0 + 7u, acc[14], acc[15]);
    store4(batch, g, c0, pos0 + 8u, acc[16], acc[17]);
    store4(batch, g, c0, pos0 + 9u, acc[18], acc[19]);
    store4(batch, g, c0, pos0 + 10u, acc[20], acc[21]);
    store4(batch, g, c0, pos0 + 11u, acc[22], acc[23]);
    store4(batch, g, c0, pos0 + 12u, acc[24], acc[25]);
    store4(batch, g, c0, pos0 + 13u, acc[26], acc[27]);
    store4(batch, g, c0, pos0 + 14u, acc[28], acc[29]);
    store4(batch, g, c0, pos0 + 15u, acc[30], acc[31]);
}
