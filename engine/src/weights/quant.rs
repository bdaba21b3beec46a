//! Weight-only int8 quantization: the layout `kinema quantize` writes and the
//! delegates read (docs/weights.md).
//!
//! A quantized weight keeps its key and its shape, with dtype `I8`: symmetric,
//! one scale per stored row (the first dimension — a linear's output
//! channels), `value ≈ q · scale[row]` with `q` in −127..=127. Its scales are the
//! f32 tensor `{key}.scale` of shape `[rows]`. A program that reads the weight
//! runs unchanged on a quantized checkpoint.

use super::Checkpoint;
use super::dtype::Dtype;

/// The suffix of a quantized weight's scales.
pub const SCALE_SUFFIX: &str = ".scale";

/// The key of `key`'s scales.
pub fn scale_key(key: &str) -> String {
    format!("{key}{SCALE_SUFFIX}")
}

/// Quantizes `values`, `rows` rows of equal length: per row, `scale = max|v| / 127`
/// and `q = round(v / scale)` (an all-zero row has scale 0 and zeros).
pub fn quantize_int8(values: &[f32], rows: usize) -> (Vec<i8>, Vec<f32>) {
    let row_len = values.len().checked_div(rows).unwrap_or(0);
    let mut q = vec![0i8; values.len()];
    let mut scales = vec![0f32; rows];
    for (r, (row, out)) in values.chunks(row_len.max(1)).zip(q.chunks_mut(row_len.max(1))).enumerate().take(rows) {
        let max = row.iter().fold(0f32, |m, v| m.max(v.abs()));
        let scale = max / 127.0;
        scales[r] = scale;
        if scale > 0.0 {
            for (o, &v) in out.iter_mut().zip(row) {
                *o = (v / scale).round().clamp(-127.0, 127.0) as i8;
            }
        }
    }
    (q, scales)
}

/// Widens stored rows `row0 ..` of int8 bytes `q` (rows of `row_len`) into
/// `out`, which holds whole rows: `out[i] = q[i] · scales[row]`.
pub fn dequantize_int8(q: &[u8], scales: &[f32], row0: usize, row_len: usize, out: &mut [f32]) {
    for (r, (o, q)) in out.chunks_mut(row_len.max(1)).zip(q.chunks(row_len.max(1))).enumerate() {
        let s = scales[row0 + r];
        for (o, &q) in o.iter_mut().zip(q) {
            *o = q as i8 as f32 * s;
        }
    }
}

impl Checkpoint {
    /// The key of `key`'s int8 scales when `key` is a quantized weight: dtype
    /// I8, at least one dimension, and `{key}.scale` an f32 tensor of `[rows]`.
    pub fn int8_scales(&self, key: &str) -> Option<String> {
        let t = self.get(key).ok()?;
        let rows = *t.info.shape.first()?;
        let s = scale_key(key);
        let st = self.get(&s).ok()?;
        (t.info.dtype == Dtype::I8 && st.info.dtype == Dtype::F32 && st.info.shape == [rows]).then_some(s)
    }

    /// A weight as f32: dequantized when it is int8 ([`int8_scales`](Self::int8_scales)),
    /// else converted from its floating-point dtype.
    pub async fn read_f32_dequantized(&self, key: &str, out: &mut [f32]) -> crate::Result<()> {
        let Some(scale_key) = self.int8_scales(key) else { return self.read_f32(key, out).await };
        let t = self.get(key)?;
        let rows = t.info.shape[0] as usize;
        let mut scales = vec![0f32; rows];
        self.read_f32(&scale_key, &mut scales).await?;
        let mut q = vec![0u8; t.info.byte_len() as usize];
        if out.len() != q.len() {
            return Err(crate::Error::Invalid(format!("{key}: {} values, expected {}", q.len(), out.len())));
        }
        self.read_bytes(key, &mut q).await?;
        dequantize_int8(&q, &scales, 0, q.len() / rows.max(1), out);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int8_round_trips_within_half_a_step() {
        let rows = 7;
        let mut v = crate::random::uniform(rows * 33, 1);
        v[33..66].iter_mut().for_each(|x| *x = 0.0); // an all-zero row
        v[5] = 40.0; // an outlier sets its row's scale
        let (q, s) = quantize_int8(&v, rows);
        assert_eq!((q.len(), s.len()), (v.len(), rows));
        assert_eq!(s[1], 0.0);
        let mut back = vec![0f32; v.len()];
        dequantize_int8(bytemuck::cast_slice(&q), &s, 0, 33, &mut back);
        for (i, (a, b)) in v.iter().zip(&back).enumerate() {
            assert!((a - b).abs() <= s[i / 33] / 2.0 + 1e-7, "{i}: {a} vs {b}");
        }
        assert_eq!(back[5], 40.0);
    }
}
