// What softmax.wgsl and attention_scores.wgsl share (lib.rs prepends it): a
// workgroup of WG threads per row, and the row's max or sum reduced through
// workgroup memory.

override WG: u32 = 256u;

var<workgroup> partial: array<f32, WG>;

// Reduces `partial` to partial[0] (max when `is_max`, else sum).
fn reduce(tid: u32, is_max: bool) {
    for (var h = WG / 2u; h > 0u; h >>= 1u) {
        workgroupBarrier();
        if (tid < h) {
            let o = partial[tid + h];
            partial[tid] = select(partial[tid] + o, max(partial[tid], o), is_max);
        }
    }
    workgroupBarrier();
}

