// What the vec4-loading matmul kernels share (matmul_sg8.wgsl and
// matmul_subgroup.wgsl; lib.rs prepends it, after epilogue.wgsl): their
// bindings, read four values at a time, and B's 16-bit and quantized paths.

// Read as vec4: one load instruction for four values (buffers are padded to 16 bytes).
@group(0) @binding(0) var<storage, read> a: array<vec4<f32>>;
// B holds f32 bits, f16 / bf16 pairs, int8 quads or int4 octets (B_HALF; f32 accumulation).
@group(0) @binding(1) var<storage, read> b: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
// Int8 / int4 B's scales, per stored row or group (another operand stands in otherwise).
@group(0) @binding(4) var<storage, read> scales: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

// True when rows of A run along k and rows of B along n, contiguous and
// 16-byte aligned (a_col = b_col = 1; a_row, b_row and batch strides multiples
// of 4): then four values come from one vec4 load. Otherwise element by element.
override CONTIGUOUS: bool = false;
// B as stored: 0 f32; 1 f16 and 2 bf16, two per u32 (low half first); 3 int8,
// four per u32 (low byte first), times the scale of its stored row; 4 int4, eight
// per u32 (low nibble first, stored q + 8), times the scale of its group.
override B_HALF: u32 = 0u;
fn element_a(i: u32) -> f32 {
    return a[i / 4u][i % 4u];
}

// A bf16 is the high half of an f32.
fn half_pair(w: u32) -> vec2<f32> {
    if (B_HALF == 2u) {
        return vec2<f32>(bitcast<f32>(w << 16u), bitcast<f32>(w & 0xffff0000u));
    }
    return unpack2x16float(w);
}

fn int8_quad(w: u32) -> vec4<f32> {
    return vec4<f32>(vec4<i32>(bitcast<i32>(w << 24u), bitcast<i32>(w << 16u), bitcast<i32>(w << 8u),
                               bitcast<i32>(w)) >> vec4<u32>(24u));
}

// Four int4 from bit `shift` of w (0 or 16), each less 8.
fn int4_quad(w: u32, shift: u32) -> vec4<f32> {
    let v = vec4<u32>(w >> shift) >> vec4<u32>(0u, 4u, 8u, 12u);
    return vec4<f32>(vec4<i32>(v & vec4<u32>(0xfu)) - vec4<i32>(8));
}

fn element_b(i: u32) -> f32 {
    if (B_HALF == 4u) {
        let word = i / 8u;
        let q = i32((b[word / 4u][word % 4u] >> (4u * (i % 8u))) & 0xfu) - 8;
        return f32(q) * scales[b_scale_index(i)];
    }
    if (B_HALF == 3u) {
        let word = i / 4u;
        return int8_quad(b[word / 4u][word % 4u])[i % 4u] * scales[b_scale_index(i)];
    }
    if (B_HALF != 0u) {
        let word = i / 2u;
        return half_pair(b[word / 4u][word % 4u])[i % 2u];
    }
    return bitcast<f32>(b[i / 4u][i % 4u]);
}

// Elements i .. i + 3 of B, i a multiple of 4.
fn vec4_b(i: u32) -> vec4<f32> {
    if (B_HALF == 4u) {
        // Four columns of one group (groups are multiples of 8 long): one scale.
        let word = i / 8u;
        return int4_quad(b[word / 4u][word % 4u], 4u * (i % 8u)) * scales[b_scale_index(i)];
    }
    if (B_HALF == 3u) {
        // Four columns of one stored row (contiguous B runs along n): one scale.
        let word = i / 4u;
        return int8_quad(b[word / 4u][word % 4u]) * scales[b_scale_index(i)];
    }
    if (B_HALF != 0u) {
        let w = b[i / 8u];
        let pair = select(w.xy, w.zw, (i / 4u) % 2u == 1u);
        return vec4<f32>(half_pair(pair.x), half_pair(pair.y));
    }
    return bitcast<vec4<f32>>(b[i / 4u]);
}

// A[row, k0 .. k0 + 3], zeros outside the matrix (no branches on the fast
// path: a clamped index, then a select).
fn load_a4(base: u32, row: u32, k0: u32) -> vec4<f32> {
    let ks = vec4<u32>(k0) + vec4<u32>(0u, 1u, 2u, 3u);
    let inside = vec4<bool>(row < p.m) & (ks < vec4<u32>(p.k));
    if (CONTIGUOUS) {
        let v = a[select(0u, (base + row * p.a_row + k0) / 4u, inside.x)];
        return select(vec4<f32>(), v, inside);
    }
    let i = vec4<u32>(base + row * p.a_row) + ks * p.a_col;
    let v = vec4<f32>(element_a(select(0u, i.x, inside.x)), element_a(select(0u, i.y, inside.y)),
                      element_a(select(0u, i.z, inside.z)), element_a(select(0u, i.w, inside.w)));
    return select(vec4<f32>(), v, inside);
}

// B[k, c0 .. c0 + 3], zeros outside the matrix.
fn load_b4(base: u32, k: u32, c0: u32) -> vec4<f32> {
    let cs = vec4<u32>(c0) + vec4<u32>(0u, 1u, 2u, 3u);
    let inside = vec4<bool>(k < p.k) & (cs < vec4<u32>(p.n));
    if (CONTIGUOUS) {
        // n is a multiple of 4, so the four columns are all inside or all out.
        return select(vec4<f32>(), vec4_b(select(0u, base + k * p.b_row + c0, inside.x)), inside);
    }
    let i = vec4<u32>(base + k * p.b_row) + cs * p.b_col;
    let v = vec4<f32>(element_b(select(0u, i.x, inside.x)), element_b(select(0u, i.y, inside.y)),
                      element_b(select(0u, i.z, inside.z)), element_b(select(0u, i.w, inside.w)));
    return select(vec4<f32>(), v, inside);
}

