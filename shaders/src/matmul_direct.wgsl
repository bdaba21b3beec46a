// Batched matrix multiply with a fused epilogue, as matmul.wgsl (same Params,
// strides, windows and epilogue), for adapters that run invocations on a CPU
// (SwiftShader, Chromium's WebGPU without a GPU): no workgroup memory and no
// barriers. There the CPU's caches do what workgroup tiles do on a GPU, and
// every barrier is a switch through all of the workgroup's invocations. Each
// invocation computes a 4 x 8 block of `out` straight from A and B: per step
// of k, four values of A and eight of B for 32 multiply-adds.

// Bindings, `load_b` and B_HALF: matmul_operands.wgsl.

// Invocations per workgroup along n and m; each covers 8 columns and 4 rows.
override WG_M: u32 = 8u;
override WG_N: u32 = 8u;

@compute @workgroup_size(WG_N, WG_M, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let batch = gid.z;
    let row = gid.y * 4u;
    let col = gid.x * 8u;
    // No barriers below, so an invocation past the edge may leave at once.
    if (row >= p.m || col >= p.n) {
        return;
    }
    // Rows and columns past the edge read the last one; their sums are not stored.
    let a_base = p.a_off + batch * p.a_batch;
    let b_base = p.b_off + batch * p.b_batch;
    let ra = vec4<u32>(row, min(row + 1u, p.m - 1u), min(row + 2u, p.m - 1u), min(row + 3u, p.m - 1u)) * p.a_row
        + vec4<u32>(a_base);
    let last = p.n - 1u;
    let cb0 = vec4<u32>(col, min(col + 1u, last), min(col + 2u, last), min(col + 3u, last)) * p.b_col
        + vec4<u32>(b_base);
    let cb1 = vec4<u32>(min(col + 4u, last), min(col + 5u, last), min(col + 6u, last), min(col + 7u, last)) * p.b_col
        + vec4<u32>(b_base);

    var acc00 = vec4<f32>();
    var acc01 = vec4<f32>();
    var acc10 = vec4<f32>();
    var acc11 = vec4<f32>();
    var acc20 = vec4<f32>();
    var acc21 = vec4<f32>();
    var acc30 = vec4<f32>();
    var acc31 = vec4<f32>();
    for (var k = 0u; k < p.k; k++) {
        let ia = ra + vec4<u32>(k * p.a_col);
        let av = vec4<f32>(a[ia.x], a[ia.y], a[ia.z], a[ia.w]);
        let ib0 = cb0 + vec4<u32>(k * p.b_row);
        let ib1 = cb1 + vec4<u32>(k * p.b_row);
        let b0 = vec4<f32>(load_b(ib0.x), load_b(ib0.y), load_b(ib0.z), load_b(ib0.w));
        let b1 = vec4<f32>(load_b(ib1.x), load_b(ib1.y), load_b(ib1.z), load_b(ib1.w));
        acc00 += av.x * b0;
        acc01 += av.x * b1;
        acc10 += av.y * b0;
        acc11 += av.y * b1;
        acc20 += av.z * b0;
        acc21 += av.z * b1;
        acc30 += av.w * b0;
        acc31 += av.w * b1;
    }
    store4(batch, row, col, acc00);
    store4(batch, row, col + 4u, acc01);
    store4(batch, row + 1u, col, acc10);
    store4(batch, row + 1u, col + 4u, acc11);
    store4(batch, row + 2u, col, acc20);
    store4(batch, row + 2u, col + 4u, acc21);
    store4(batch, row + 3u, col, acc30);
    store4(batch, row + 3u, col + 4u, acc31);
}
