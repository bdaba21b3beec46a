// The tiled matmul of matmul.wgsl in f16 arithmetic, for adapters with
// `shader-f16` whose users asked for reduced precision (the tuner offers it
// only then, with its own tolerance):
//
//   out[b, m, n] = act(sum_k A[b, m, k] * B[b, k, n] + bias[n])
//
// A and B are rounded to f16 (clamped to ±65504) into workgroup tiles of half
// the bytes; each thread's 4 x 4 block sums the f16 products of one BK slice
// of k in f16, and adds the slice's sums to f32 accumulators. The bias and
// activation (the epilogue, `store4`, from epilogue.wgsl) are f32.

// Params: epilogue.wgsl. Bindings, `load_b` and B_HALF: matmul_operands.wgsl.

// (`enable f16;` comes first: lib.rs puts it before the prepended files.)

const TM: u32 = 4u;
const TN: u32 = 4u;
const F16_MAX: f32 = 65504.0;

override WG_M: u32 = 16u;
override WG_N: u32 = 16u;
override BK: u32 = 16u;
override BM: u32 = WG_M * TM;
override BN: u32 = WG_N * TN;
override A_TILE: u32 = BK * BM;
override B_TILE: u32 = BK * BN;

var<workgroup> tile_a: array<f16, A_TILE>; // [BK][BM], k-major
var<workgroup> tile_b: array<f16, B_TILE>; // [BK][BN]

fn to_f16(v: f32) -> f16 {
    return f16(clamp(v, -F16_MAX, F16_MAX));
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
            var v = f16(0.0);
            if (gr < p.m && gc < p.k) {
                v = to_f16(a[a_base + gr * p.a_row + gc * p.a_col]);
            }
            tile_a[c * BM + r] = v;
        }
        for (var i = tid; i < B_TILE; i += threads) {
            let r = i / BN;
            let c = i % BN;
            let gr = k0 + r;
            let gc = col0 + c;
            var v = f16(0.0);
            if (gr < p.k && gc < p.n) {
                v = to_f16(load_b(b_base + gr * p.b_row + gc * p.b_col));
            }
            tile_b[r * BN + c] = v;
        }
        workgroupBarrier();
        let a_off = lid.y * TM;
        let b_off = lid.x * TN;
        var s0 = vec4<f16>();
        var s1 = vec4<f16>();
        var s2 = vec4<f16>();
        var s3 = vec4<f16>();
        for (var kk = 0u; kk < BK; kk++) {
            let ai = kk * BM + a_off;
            let bi = kk * BN + b_off;
            let av = vec4<f16>(tile_a[ai], tile_a[ai + 1u], tile_a[ai + 2u], tile_a[ai + 3u]);
            let bv = vec4<f16>(tile_b[bi], tile_b[bi + 1u], tile_b[bi + 2u], tile_b[bi + 3u]);
            s0 = fma(vec4<f16>(av.x), bv, s0);
            s1 = fma(vec4<f16>(av.y), bv, s1);
            s2 = fma(vec4<f16>(av.z), bv, s2);
            s3 = fma(vec4<f16>(av.w), bv, s3);
        }
        acc0 += vec4<f32>(s0);
        acc1 += vec4<f32>(s1);
        acc2 += vec4<f32>(s2);
        acc3 += vec4<f32>(s3);
        workgroupBarrier();
    }

    let col = col0 + lid.x * TN;
    let row = row0 + lid.y * TM;
    store4(batch, row, col, acc0);
    store4(batch, row + 1u, col, acc1);
    store4(batch, row + 2u, col, acc2);
    store4(batch, row + 3u, col, acc3);
}
