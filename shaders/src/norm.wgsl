// layer_norm, rms_norm and group_norm: one workgroup per normalised row of n
// contiguous values (a group of channels x positions, for group_norm), mean
// and mean square reduced through workgroup memory in one pass (Welford-free
// but in f32 over values shifted by the row's first element, which keeps the
// variance accurate for rows far from zero).
//
//   layer: y = (x - mean) / sqrt(var + eps) * w[i % n] + b[i % n]
//   rms:   y = x / sqrt(mean(x^2) + eps) * w[i % n]
//   group: y = (x - mean) / sqrt(var + eps) * w[c] + b[c], c the channel of i

struct Params {
    rows: u32,
    n: u32,
    // 0 layer, 1 rms, 2 group.
    kind: u32,
    // 1 when w (and b for layer/group) are given.
    affine: u32,
    eps: f32,
    // group_norm: groups, and positions per channel (n = channels_per_group * spatial).
    groups: u32,
    spatial: u32,
    has_bias: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

override WG: u32 = 256u;

var<workgroup> sums: array<vec2<f32>, WG>;

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) groups: vec3<u32>) {
    let row = wid.y * groups.x + wid.x;
    if (row >= p.rows) {
        return;
    }
    let tid = lid.x;
    let base = row * p.n;
    let shift = x[base];
    var acc = vec2<f32>();
    for (var i = tid; i < p.n; i += WG) {
        let v = select(x[base + i] - shift, x[base + i], p.kind == 1u);
        acc += vec2<f32>(v, v * v);
    }
    sums[tid] = acc;
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        workgroupBarrier();
        if (tid < s) {
            sums[tid] += sums[tid + s];
        }
    }
    workgroupBarrier();
    let n = f32(p.n);
    let mean = sums[0].x / n;
    var centre = 0.0;
    var scale = 0.0;
    if (p.kind == 1u) {
        scale = inverseSqrt(sums[0].y / n + p.eps);
    } else {
        centre = shift + mean;
        scale = inverseSqrt(max(sums[0].y / n - mean * mean, 0.0) + p.eps);
    }
    for (var i = tid; i < p.n; i += WG) {
        var y = (x[base + i] - centre) * scale;
        if (p.affine == 1u) {
            var c = i;
            if (p.kind == 2u) {
                c = (row % p.groups) * (p.n / p.spatial) + i / p.spatial;
            }
            y *= w[c];
            if (p.has_bias == 1u) {
                y += b[c];
            }
        }
        out[base + i] = y;
    }
}
