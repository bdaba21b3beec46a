// What the matmul kernels share (lib.rs prepends it, after activation.wgsl):
// their parameters, and the epilogue — bias, activation, store. `bias`, `out`
// and `p: Params` are declared by matmul_operands.wgsl or by the kernel
// (matmul_sg8.wgsl, whose operands are vec4 arrays).

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
    // A window of a larger matmul (over one storage binding) sees local batches,
    // rows and columns: where its A, B, out and bias begin in their bindings,
    // and the strides of out (a whole row of the full output apart).
    a_off: u32,
    b_off: u32,
    out_off: u32,
    out_row: u32,
    out_batch: u32,
    bias_off: u32,
    // Int8 / int4 B (B_HALF 3, 4): the global element index of the window's first bound
    // element of B, and the length of B's stored rows (one scale per stored row).
    b_elem0: u32,
    b_stride: u32,
    // Values per scale along a stored row: the row (int8), a group (int4).
    b_group: u32,
}

// The scale of B's element i (an index into its bound window): its stored
// row's scales are ⌈b_stride / b_group⌉ apart, one per group.
fn b_scale_index(i: u32) -> u32 {
    let e = i + p.b_elem0;
    return e / p.b_stride * ((p.b_stride + p.b_group - 1u) / p.b_group) + (e % p.b_stride) / p.b_group;
}

// Writes up to four outputs of row `r` from column `c0`, through the epilogue.
fn store4(batch: u32, r: u32, c0: u32, v: vec4<f32>) {
    if (r >= p.m) {
        return;
    }
    let base = p.out_off + batch * p.out_batch + r * p.out_row;
    for (var j = 0u; j < 4u; j++) {
        let c = c0 + j;
        if (c < p.n) {
            var x = v[j];
            if (p.has_bias == 1u) {
                x += bias[p.bias_off + c];
            }
            out[base + c] = activate(x, p.activation);
        }
    }
}
