// Batched matrix multiply with a fused epilogue, as matmul.wgsl (same Params,
// strides, windows, bindings and epilogue), register-blocked wider: each thread
// computes 8 rows x 4 columns (eight vec4 accumulators), and the workgroup
// tiles are vec4 arrays, so one step of k costs a thread three vec4 reads of
// workgroup memory for 32 multiply-adds (matmul.wgsl: eight scalar reads for
// 16). 16 x 16 threads make a 128 x 64 block, 8 x 16 a 64 x 64 one.
// Accumulation is f32.

// Bindings, `load_b` and B_HALF: matmul_operands.wgsl.

const TM: u32 = 8u;
const TN: u32 = 4u;

override WG_M: u32 = 16u;
override WG_N: u32 = 16u;
override BK: u32 = 16u;
override BM: u32 = WG_M * TM;
override BN: u32 = WG_N * TN;
// The tiles in vec4s: A as [BK][BM / 4] (four rows of one k), B as [BK][BN / 4].
override A_TILE4: u32 = BK * BM / 4u;
override B_TILE4: u32 = BK * BN / 4u;

var<workgroup> tile_a: array<vec4<f32>, A_TILE4>;
var<workgroup> tile_b: array<vec4<f32>, B_TILE4>;

fn load_a(i: u32, r: u32, c: u32) -> f32 {
    if (r < p.m && c < p.k) {
        return a[i];
    }
    return 0.0;
}

fn load_b_at(i: u32, r: u32, c: u32) -> f32 {
    if (r < p.k && c < p.n) {
        return load_b(i);
    }
    return 0.0;
}

@compute @workgroup_size(WG_N, WG_M, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let batch = wid.z;
    let row0 = wid.y * BM;
    let col0 = wid.x * BN;
    let tid = lid.y * WG_N + lid.x;
    let threads = WG_M * WG_N;
    let a_base = p.a_off + batch * p.a_batch;
    let b_base = p.b_off + batch * p.b_batch;
    // Neighbouring threads fill neighbouring elements of whichever axis runs
    // contiguously in memory (k for a row-major A or a transposed B).
    let a_k_fast = p.a_col == 1u;
    let b_k_fast = p.b_row == 1u && p.b_col != 1u;

    var acc0 = vec4<f32>();
    var acc1 = vec4<f32>();
    var acc2 = vec4<f32>();
    var acc3 = vec4<f32>();
    var acc4 = vec4<f32>();
    var acc5 = vec4<f32>();
    var acc6 = vec4<f32>();
    var acc7 = vec4<f32>();
    for (var k0 = 0u; k0 < p.k; k0 += BK) {
        // A: each item is four rows of one k.
        for (var i = tid; i < A_TILE4; i += threads) {
            var r4 = i % (BM / 4u);
            var c = i / (BM / 4u);
            if (a_k_fast) {
                r4 = i / BK;
                c = i % BK;
            }
            let gr = row0 + 4u * r4;
            let gc = k0 + c;
            let at = a_base + gr * p.a_row + gc * p.a_col;
            tile_a[c * (BM / 4u) + r4] = vec4<f32>(
                load_a(at, gr, gc),
                load_a(at + p.a_row, gr + 1u, gc),
                load_a(at + 2u * p.a_row, gr + 2u, gc),
                load_a(at + 3u * p.a_row, gr + 3u, gc),
            );
        }
        // B: each item is four columns of one k.
        for (var i = tid; i < B_TILE4; i += threads) {
            var r = i / (BN / 4u);
            var c4 = i % (BN / 4u);
            if (b_k_fast) {
                r = i % BK;
                c4 = i / BK;
            }
            let gr = k0 + r;
            let gc = col0 + 4u * c4;
            let at = b_base + gr * p.b_row + gc * p.b_col;
            tile_b[r * (BN / 4u) + c4] = vec4<f32>(
                load_b_at(at, gr, gc),
                load_b_at(at + p.b_col, gr, gc + 1u),
                load_b_at(at + 2u * p.b_col, gr, gc + 2u),
                load_b_at(at + 3u * p.b_col, gr, gc + 3u),
            );
        }
        workgroupBarrier();
        let a_at = lid.y * (TM / 4u);
        for (var kk = 0u; kk < BK; kk++) {
            let ai = kk * (BM / 4u) + a_at;
            let a0 = tile_a[ai];
            let a1 = tile_a[ai + 1u];
            let bv = tile_b[kk * (BN / 4u) + lid.x];
            acc0 += a0.x * bv;
            acc1 += a0.y * bv;
            acc2 += a0.z * bv;
            acc3 += a0.w * bv;
            acc4 += a1.x * bv;
            acc5 += a1.y * bv;
            acc6 += a1.z * bv;
            acc7 += a1.w * bv;
        }
        workgroupBarrier();
    }

    let col = col0 + lid.x * TN;
    let row = row0 + lid.y * TM;
    store4(batch, row, col, acc0);
    store4(batch, row + 1u, col, acc1);
    store4(batch, row + 2u, col, acc2);
    store4(batch, row + 3u, col, acc3);
    store4(batch, row + 4u, col, acc4);
    store4(batch, row + 5u, col, acc5);
    store4(batch, row + 6u, col, acc6);
    store4(batch, row + 7u, col, acc7);
}
