// Row gather (the embedding op): out[n, d] = table[indices[n], d], indices
// as f32 holding whole numbers. The table may come in windows of rows
// [row0, row0 + rows): a dispatch writes the outputs whose index falls in
// its window; the window at row 0 also writes 0 for an index that is not a
// row of the table (`total` rows; the CPU delegate reports those as errors).
// One thread per output value.

struct Params {
    count: u32,
    dim: u32,
    row0: u32,
    rows: u32,
    total: u32,
}

@group(0) @binding(0) var<storage, read> table: array<f32>;
@group(0) @binding(1) var<storage, read> indices: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

override WG: u32 = 256u;

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.y * groups.x * WG + gid.x;
    if (i >= p.count * p.dim) {
        return;
    }
    let n = i / p.dim;
    let d = i % p.dim;
    let v = indices[n];
    let whole = v >= 0.0 && v == floor(v) && v < f32(p.total);
    if (!whole) {
        if (p.row0 == 0u) {
            out[i] = 0.0;
        }
        return;
    }
    let r = u32(v);
    if (r < p.row0 || r >= p.row0 + p.rows) {
        return;
    }
    out[i] = table[(r - p.row0) * p.dim + d];
}
