// conv3d as an implicit GEMM, tiled through workgroup memory (the path for
// real GPUs). Parameters, bindings, gather and epilogue: conv_common.wgsl.
//
// Weights come prepacked as [groups][k][c_out_g] so a tile row is contiguous
// (rows of w_row: a window of channels reads part of each).
// Each workgroup computes BM output channels x BN positions of one (batch,
// group); each thread a TM x TN block in registers; k advances BK at a time.

const TM: u32 = 4u;
const TN: u32 = 4u;

override WG_M: u32 = 16u;
override WG_N: u32 = 16u;
override BK: u32 = 16u;
override BM: u32 = WG_M * TM;
override BN: u32 = WG_N * TN;
override A_TILE: u32 = BK * BM;
override B_TILE: u32 = BK * BN;

var<workgroup> tile_a: array<f32, A_TILE>; // [BK][BM]: weights
var<workgroup> tile_b: array<f32, B_TILE>; // [BK][BN]: gathered input

fn weight(i: u32) -> f32 {
    return wt[i / 4u][i % 4u];
}

@compute @workgroup_size(WG_N, WG_M, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let batch = wid.z / p.groups;
    let g = wid.z % p.groups;
    let row0 = wid.y * BM;
    let col0 = wid.x * BN;
    let tid = lid.y * WG_N + lid.x;
    let threads = WG_M * WG_N;
    let x_base = (batch * p.groups + g) * p.c_in_g * p.d * p.h * p.w;
    let w_base = p.w_off + g * p.k * p.w_row;
    let taps = p.kd * p.kh * p.kw;

    var acc0 = vec4<f32>();
    var acc1 = vec4<f32>();
    var acc2 = vec4<f32>();
    var acc3 = vec4<f32>();
    for (var k0 = 0u; k0 < p.k; k0 += BK) {
        for (var i = tid; i < A_TILE; i += threads) {
            let r = i % BM;
            let k = k0 + i / BM;
            let inside = k < p.k && row0 + r < p.c_out_g;
            tile_a[i] = select(0.0, weight(select(0u, w_base + k * p.w_row + row0 + r, inside)), inside);
        }
        for (var i = tid; i < B_TILE; i += threads) {
            let c = i % BN;
            let k = k0 + i / BN;
            let pos = col0 + c;
            let tap = k % taps;
            tile_b[i] = gather(x_base, origin(pos), pos < p.positions && k < p.k, k / taps, tap / (p.kh * p.kw),
                               (tap / p.kw) % p.kh, tap % p.kw);
        }
        workgroupBarrier();
        let a_off = lid.y * TM;
        let b_off = lid.x * TN;
        for (var kk = 0u; kk < BK; kk++) {
            let ai = kk * BM + a_off;
            let bi = kk * BN + b_off;
            let av = vec4<f32>(tile_a[ai], tile_a[ai + 1u], tile_a[ai + 2u], tile_a[ai + 3u]);
            let bv = vec4<f32>(tile_b[bi], tile_b[bi + 1u], tile_b[bi + 2u], tile_b[bi + 3u]);
            acc0 += av.x * bv;
            acc1 += av.y * bv;
            acc2 += av.z * bv;
            acc3 += av.w * bv;
        }
        workgroupBarrier();
    }

    let c = row0 + lid.y * TM;
    let pos = col0 + lid.x * TN;
    for (var j = 0u; j < TN; j++) {
        store(batch, g, c, pos + j, acc0[j]);
        store(batch, g, c + 1u, pos + j, acc1[j]);
        store(batch, g, c + 2u, pos + j, acc2[j]);
        store(batch, g, c + 3u, pos + j, acc3[j]);
    }
}
