// Batched matrix multiply with a fused epilogue (this is `linear`):
//
//   out[b, m, n] = act(sum_k A[b, m, k] * B[b, k, n] + bias[n])
//
// A and B are read through element strides, so transposed operands need no
// copy. (The epilogue, `store4`, comes from epilogue.wgsl.) Each workgroup computes a BM x BN tile of `out` (BM = WG_M * TM,
// BN = WG_N * TN); each thread a TM x TN block held in registers. K advances
// BK at a time through workgroup memory. Accumulation is f32.

// Params: epilogue.wgsl. Bindings, `load_b` and B_HALF: matmul_operands.wgsl.

// Register block per thread (function-scope arrays need constant sizes).
const TM: u32 = 4u;
const TN: u32 = 4u;

// Tile shape, tunable per adapter when the pipeline is created.
override WG_M: u32 = 16u;
override WG_N: u32 = 16u;
override BK: u32 = 16u;
override BM: u32 = WG_M * TM;
override BN: u32 = WG_N * TN;
override A_TILE: u32 = BK * BM;
override B_TILE: u32 = BK * BN;

var<workgroup> tile_a: array<f32, A_TILE>; // [BK][BM], k-major
var<workgroup> tile_b: array<f32, B_TILE>; // [BK][BN]

@compute @workgroup_size(WG_N, WG_M, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let batch = wid.z;
    let row0 = wid.y * BM;
    let col0 = wid.x * BN;
    let tid = lid.y * WG_N + lid.x;
    let threads = WG_M * WG_N;
    let a_base = p.a_off + batch * p.a_batch;
    let b_base = p.b_off + batch * p.b_batch;

    // The 4 x 4 register block, one vec4 per row: straight-line FMAs that a
    // compiler keeps in registers (indexed arrays would spill to memory).
    var acc0 = vec4<f32>();
    var acc1 = vec4<f32>();
    var acc2 = vec4<f32>();
    var acc3 = vec4<f32>();
    for (var k0 = 0u; k0 < p.k; k0 += BK) {
        for (var i = tid; i < A_TILE; i += threads) {
            let r = i / BK;
            let c = i % BK;
            let gr = row0 + r;
            let gc = k0 + c;
            var v = 0.0;
            if (gr < p.m && gc < p.k) {
                v = a[a_base + gr * p.a_row + gc * p.a_col];
            }
            tile_a[c * BM + r] = v;
        }
        for (var i = tid; i < B_TILE; i += threads) {
            let r = i / BN;
            let c = i % BN;
            let gr = k0 + r;
            let gc = col0 + c;
            var v = 0.0;
            if (gr < p.k && gc < p.n) {
                v = load_b(b_base + gr * p.b_row + gc * p.b_col);
            }
            tile_b[r * BN + c] = v;
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

    let col = col0 + lid.x * TN;
    let row = row0 + lid.y * TM;
    store4(batch, row, col, acc0);
    store4(batch, row + 1u, col, acc1);
    store4(batch, row + 2u, col, acc2);
    store4(batch, row + 3u, col, acc3);
}
