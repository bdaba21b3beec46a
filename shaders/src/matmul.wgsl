// Batched matrix multiply with a fused epilogue (this is `linear`):
//
//   out[b, m, n] = act(sum_k A[b, m, k] * B[b, k, n] + bias[n])
//
// A and B are read through element strides, so transposed operands need no
// copy. Each workgroup computes a BM x BN tile of `out` (BM = WG_M * TM,
// BN = WG_N * TN); each thread a TM x TN block held in registers. K advances
// BK at a time through workgroup memory. Accumulation is f32.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    batch: u32,
    // Strides of A in elements: per batch, per row (m), per column (k).
    a_batch: u32,
    a_row: u32,
    a_col: u32,
    // Strides of B in elements: per batch, per row (k), per column (n).
    b_batch: u32,
    b_row: u32,
    b_col: u32,
    // 1 when `bias` holds n values to add.
    has_bias: u32,
    // 0 none, 1 relu, 2 silu, 3 gelu (tanh), 4 gelu (erf).
    activation: u32,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

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

fn erf(x: f32) -> f32 {
    // Abramowitz & Stegun 7.1.26: |error| < 1.5e-7.
    let t = 1.0 / (1.0 + 0.3275911 * abs(x));
    let y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * exp(-x * x);
    return select(-y, y, x >= 0.0);
}

fn activate(x: f32, kind: u32) -> f32 {
    switch kind {
        case 1u: { return max(x, 0.0); }
        case 2u: { return x / (1.0 + exp(-x)); }
        case 3u: {
            let inner = 0.7978845608028654 * (x + 0.044715 * x * x * x);
            return 0.5 * x * (1.0 + tanh(clamp(inner, -15.0, 15.0)));
        }
        case 4u: { return 0.5 * x * (1.0 + erf(x * 0.7071067811865476)); }
        default: { return x; }
    }
}

@compute @workgroup_size(WG_N, WG_M, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let batch = wid.z;
    let row0 = wid.y * BM;
    let col0 = wid.x * BN;
    let tid = lid.y * WG_N + lid.x;
    let threads = WG_M * WG_N;
    let a_base = batch * p.a_batch;
    let b_base = batch * p.b_batch;

    var acc: array<f32, 16>; // TM * TN
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
                v = b[b_base + gr * p.b_row + gc * p.b_col];
            }
            tile_b[r * BN + c] = v;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk++) {
            var av: array<f32, 4>; // TM
            var bv: array<f32, 4>; // TN
            for (var i = 0u; i < TM; i++) {
                av[i] = tile_a[kk * BM + lid.y * TM + i];
            }
            for (var j = 0u; j < TN; j++) {
                bv[j] = tile_b[kk * BN + lid.x * TN + j];
            }
            for (var i = 0u; i < TM; i++) {
                for (var j = 0u; j < TN; j++) {
                    acc[i * TN + j] = fma(av[i], bv[j], acc[i * TN + j]);
                }
            }
        }
        workgroupBarrier();
    }

    let out_base = batch * p.m * p.n;
    for (var i = 0u; i < TM; i++) {
        let r = row0 + lid.y * TM + i;
        for (var j = 0u; j < TN; j++) {
            let c = col0 + lid.x * TN + j;
            if (r < p.m && c < p.n) {
                var v = acc[i * TN + j];
                if (p.has_bias == 1u) {
                    v += bias[c];
                }
                out[out_base + r * p.n + c] = activate(v, p.activation);
            }
        }
    }
}
