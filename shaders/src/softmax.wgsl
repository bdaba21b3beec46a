// Softmax over the last axis: one workgroup per row of n values; the row's
// max and sum are reduced through workgroup memory (row_reduce.wgsl).

struct Params {
    rows: u32,
    n: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) groups: vec3<u32>) {
    let row = wid.y * groups.x + wid.x;
    if (row >= p.rows) {
        return; // uniform across the workgroup
    }
    let tid = lid.x;
    let base = row * p.n;
    var m = -3.0e38;
    for (var i = tid; i < p.n; i += WG) {
        m = max(m, x[base + i]);
    }
    partial[tid] = m;
    reduce(tid, true);
    let row_max = partial[0];
    workgroupBarrier();
    var s = 0.0;
    for (var i = tid; i < p.n; i += WG) {
        s += exp(x[base + i] - row_max);
    }
    partial[tid] = s;
    reduce(tid, false);
    let inv = 1.0 / partial[0];
    for (var i = tid; i < p.n; i += WG) {
        out[base + i] = exp(x[base + i] - row_max) * inv;
    }
}
