// conv3d for few output channels (a conv head, an RGB output layer); parameters,
// bindings, gather and epilogue: conv_common.wgsl.
//
// The GEMM kernels give a workgroup 64 output channels, so a conv with 3 of
// them wastes 95% of its work. Here each invocation computes 4 consecutive
// output positions x 4 consecutive channels in registers, walking the
// reduction (ci, kz, ky, kx) as nested loops: no workgroup memory, no
// barriers, no divisions inside. Every lane of a workgroup reads the same
// weights at each step.

override WG: u32 = 64u;

// Weight j of the packed [groups][k][w_row] (0 for channels past c_out_g).
fn weight(j: u32, inside: bool) -> f32 {
    return select(0.0, wt[select(0u, j / 4u, inside)][j % 4u], inside);
}

// Channels c .. c + 3 at flat index i.
fn weights4(i: u32, c: u32) -> vec4<f32> {
    return vec4<f32>(weight(i, c < p.c_out_g), weight(i + 1u, c + 1u < p.c_out_g),
                     weight(i + 2u, c + 2u < p.c_out_g), weight(i + 3u, c + 3u < p.c_out_g));
}

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    // Channels, batch and group from the workgroup id: the same for every
    // invocation of a workgroup, and so is the weight index below.
    let batch = wid.z / p.groups;
    let g = wid.z % p.groups;
    let pos0 = gid.x * 4u;
    let c0 = wid.y * 4u;
    if (pos0 >= p.positions || c0 >= p.c_out_g) {
        return;
    }
    let x_base = (batch * p.groups + g) * p.c_in_g * p.d * p.h * p.w;
    let o0 = origin(pos0);
    let o1 = origin(pos0 + 1u);
    let o2 = origin(pos0 + 2u);
    let o3 = origin(pos0 + 3u);
    let ok1 = pos0 + 1u < p.positions;
    let ok2 = pos0 + 2u < p.positions;
    let ok3 = pos0 + 3u < p.positions;

    var acc0 = vec4<f32>();
    var acc1 = vec4<f32>();
    var acc2 = vec4<f32>();
    var acc3 = vec4<f32>();
    var wi = p.w_off + g * p.k * p.w_row + c0;
    for (var ci = 0u; ci < p.c_in_g; ci++) {
        for (var kz = 0u; kz < p.kd; kz++) {
            for (var ky = 0u; ky < p.kh; ky++) {
                for (var kx = 0u; kx < p.kw; kx++) {
                    let w4 = weights4(wi, c0);
                    wi += p.w_row;
                    acc0 += gather(x_base, o0, true, ci, kz, ky, kx) * w4;
                    acc1 += gather(x_base, o1, ok1, ci, kz, ky, kx) * w4;
                    acc2 += gather(x_base, o2, ok2, ci, kz, ky, kx) * w4;
                    acc3 += gather(x_base, o3, ok3, ci, kz, ky, kx) * w4;
                }
            }
        }
    }
    for (var j = 0u; j < 4u; j++) {
        store(batch, g, c0 + j, pos0, acc0[j]);
        store(batch, g, c0 + j, pos0 + 1u, acc1[j]);
        store(batch, g, c0 + j, pos0 + 2u, acc2[j]);
        store(batch, g, c0 + j, pos0 + 3u, acc3[j]);
    }
}
