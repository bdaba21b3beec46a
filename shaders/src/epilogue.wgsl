// The matmul epilogue shared by matmul.wgsl and matmul_sg8.wgsl (lib.rs
// prepends it, after activation.wgsl): bias, activation, store. The including
// kernel declares `bias`, `out` and `p` (with m, n, has_bias, activation and
// the window's out_off, out_row, out_batch, bias_off).

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
