// Batched matmul for adapters with subgroups of any width from 4 to 128 (the
// width the invocation runs at, read from `subgroup_size`: Intel's vary
// between 8 and 32 from one pipeline to the next), with the same bindings,
// parameters and epilogue as matmul.wgsl:
//
//   out[b, m, n] = act(sum_k A[b, m, k] * B[b, k, n] + bias[n])
//
// All LANES invocations of a workgroup compute the same 16 rows of `out`,
// eight columns each, so whichever way the adapter cuts the workgroup into
// subgroups, every subgroup needs the same values of A: its lanes load the 16
// rows between them — 16 x 4 max(1, width / 16) values per step, one vec4 per
// lane from 16 lanes up, two at 8, four at 4 — and pass them round with
// subgroupShuffle. A lane loads 8 values of B per k for 128 FMAs.

// Params and `store4`: epilogue.wgsl; bindings and loads: matmul_vec4_operands.wgsl.

// Invocations per workgroup: a multiple of the adapter's largest subgroup.
override LANES: u32 = 64u;

// This lane's share of A for one step: slots lane, lane + width, … (≤ 4 of
// them, for widths from 4 up); slot s is row s % 16, k quad s / 16.
struct Share {
    r0: vec4<f32>,
    r1: vec4<f32>,
    r2: vec4<f32>,
    r3: vec4<f32>,
}

// Component j of the register that holds slot s (the same register on every
// lane, so the shuffle below reads slot s from lane s % width).
fn pick(regs: Share, s: u32, width: u32, j: u32) -> f32 {
    let r = s / width;
    let v = select(select(select(regs.r0, regs.r1, r == 1u), regs.r2, r == 2u), regs.r3, r == 3u);
    return v[j];
}

@compute @workgroup_size(LANES, 1, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(subgroup_invocation_id) lane: u32, @builtin(subgroup_size) width: u32) {
    let batch = wid.z;
    let row0 = wid.y * 16u;
    let col0 = (wid.x * LANES + lid.x) * 8u;
    let a_base = p.a_off + batch * p.a_batch;
    let b_base = p.b_off + batch * p.b_batch;
    // k quads per step, and slots per lane.
    let quads = max(1u, width / 16u);
    let loads = max(1u, 16u / width);

    // acc[i * 2 + h]: row row0 + i, columns col0 + 4h .. col0 + 4h + 3.
    var acc: array<vec4<f32>, 32>;
    for (var k0 = 0u; k0 < p.k; k0 += 4u * quads) {
        var regs: Share;
        let slot = vec4<u32>(lane) + vec4<u32>(0u, 1u, 2u, 3u) * width;
        let rows = vec4<u32>(row0) + slot % 16u;
        let ks = vec4<u32>(k0) + 4u * (slot / 16u);
        regs.r0 = load_a4(a_base, rows.x, ks.x);
        if (loads > 1u) {
            regs.r1 = load_a4(a_base, rows.y, ks.y);
        }
        if (loads > 2u) {
            regs.r2 = load_a4(a_base, rows.z, ks.z);
            regs.r3 = load_a4(a_base, rows.w, ks.w);
        }
        for (var q = 0u; q < quads; q++) {
            let s0 = 16u * q;
            for (var j = 0u; j < 4u; j++) {
                let k = k0 + 4u * q + j;
                let b0 = load_b4(b_base, k, col0);
                let b1 = load_b4(b_base, k, col0 + 4u);
                { let v = subgroupShuffle(pick(regs, 0u + s0, width, j), (0u + s0) % width); acc[0] += v * b0; acc[1] += v * b1; }
                { let v = subgroupShuffle(pick(regs, 1u + s0, width, j), (1u + s0) % width); acc[2] += v * b0; acc[3] += v * b1; }
                { let v = subgroupShuffle(pick(regs, 2u + s0, width, j), (2u + s0) % width); acc[4] += v * b0; acc[5] += v * b1; }
                { let v = subgroupShuffle(pick(regs, 3u + s0, width, j), (3u + s0) % width); acc[6] += v * b0; acc[7] += v * b1; }
                { let v = subgroupShuffle(pick(regs, 4u + s0, width, j), (4u + s0) % width); acc[8] += v * b0; acc[9] += v * b1; }
                { let v = subgroupShuffle(pick(regs, 5u + s0, width, j), (5u + s0) % width); acc[10] += v * b0; acc[11] += v * b1; }
                { let v = subgroupShuffle(pick(regs, 6u + s0, width, j), (6u + s0) % width); acc[12] += v * b0; acc[13] += v * b1; }
                { let v = subgroupShuffle(pick(regs, 7u + s0, width, j), (7u + s0) % width); acc[14] += v * b0; acc[15] += v * b1; }
                { let v = subgroupShuffle(pick(regs, 8u + s0, width, j), (8u + s0) % width); acc[16] += v * b0; acc[17] += v * b1; }
                { let v = subgroupShuffle(pick(regs, 9u + s0, width, j), (9u + s0) % width); acc[18] += v * b0; acc[19] += v * b1; }
                { let v = subgroupShuffle(pick(regs, 10u + s0, width, j), (10u + s0) % width); acc[20] += v * b0; acc[21] += v * b1; }
                { let v = subgroupShuffle(pick(regs, 11u + s0, width, j), (11u + s0) % width); acc[22] += v * b0; acc[23] += v * b1; }
                { let v = subgroupShuffle(pick(regs, 12u + s0, width, j), (12u + s0) % width); acc[24] += v * b0; acc[25] += v * b1; }
                { let v = subgroupShuffle(pick(regs, 13u + s0, width, j), (13u + s0) % width); acc[26] += v * b0; acc[27] += v * b1; }
                { let v = subgroupShuffle(pick(regs, 14u + s0, width, j), (14u + s0) % width); acc[28] += v * b0; acc[29] += v * b1; }
                { let v = subgroupShuffle(pick(regs, 15u + s0, width, j), (15u + s0) % width); acc[30] += v * b0; acc[31] += v * b1; }
            }
        }
    }
    // Constant indices only: one dynamic index would send `acc` to memory.
    store4(batch, row0 + 0u, col0, acc[0]); store4(batch, row0 + 0u, col0 + 4u, acc[1]);
    store4(batch, row0 + 1u, col0, acc[2]); store4(batch, row0 + 1u, col0 + 4u, acc[3]);
    store4(batch, row0 + 2u, col0, acc[4]); store4(batch, row0 + 2u, col0 + 4u, acc[5]);
    store4(batch, row0 + 3u, col0, acc[6]); store4(batch, row0 + 3u, col0 + 4u, acc[7]);
    store4(batch, row0 + 4u, col0, acc[8]); store4(batch, row0 + 4u, col0 + 4u, acc[9]);
    store4(batch, row0 + 5u, col0, acc[10]); store4(batch, row0 + 5u, col0 + 4u, acc[11]);
    store4(batch, row0 + 6u, col0, acc[12]); store4(batch, row0 + 6u, col0 + 4u, acc[13]);
    store4(batch, row0 + 7u, col0, acc[14]); store4(batch, row0 + 7u, col0 + 4u, acc[15]);
    store4(batch, row0 + 8u, col0, acc[16]); store4(batch, row0 + 8u, col0 + 4u, acc[17]);
    store4(batch, row0 + 9u, col0, acc[18]); store4(batch, row0 + 9u, col0 + 4u, acc[19]);
    store4(batch, row0 + 10u, col0, acc[20]); store4(batch, row0 + 10u, col0 + 4u, acc[21]);
    store4(batch, row0 + 11u, col0, acc[22]); store4(batch, row0 + 11u, col0 + 4u, acc[23]);
    store4(batch, row0 + 12u, col0, acc[24]); store4(batch, row0 + 12u, col0 + 4u, acc[25]);
    store4(batch, row0 + 13u, col0, acc[26]); store4(batch, row0 + 13u, col0 + 4u, acc[27]);
    store4(batch, row0 + 14u, col0, acc[28]); store4(batch, row0 + 14u, col0 + 4u, acc[29]);
    store4(batch, row0 + 15u, col0, acc[30]); store4(batch, row0 + 15u, col0 + 4u, acc[31]);
}
