//! Weight-only quantization, int8 and int4: the layouts `kinema quantize`
//! writes and the delegates read (docs/weights.md). A program that reads the
//! weight runs unchanged on a quantized checkpoint.
//!
//! - **int8**: the weight keeps its key and its shape, with dtype `I8`:
//!   symmetric, one scale per stored row (the first dimension — a linear's
//!   output channels), `value ≈ q · scale[row]` with `q` in −127..=127. Its
//!   scales are the f32 tensor `{key}.scale` of shape `[rows]`.
//! - **int4**, groups of `G` along each row (`G` a power of two ≥ 8): dtype
//!   `U8` of shape `[rows, row_len / 2]` (`row_len` even), two values per byte,
//!   the even element in the low nibble, each stored as `q + 8` with `q` in
//!   −8..=7; `value ≈ q · scale[row, col / G]`, `{key}.scale` f32 `[rows,
//!   ⌈row_len / G⌉]` (the last group of a row may be shorter). `G` is not
//!   stored: it is the power of two in (row_len / (2·groups), row_len / groups]
//!   rounded up — the only one that gives that many groups.

use super::Checkpoint;
use super::dtype::Dtype;

/// How a quantized weight is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// One int8 per value, one scale per row.
    Int8,
    /// Two int4 per byte, one scale per `group` values of a row.
    Int4 { group: usize },
}

/// A quantized weight of a checkpoint: its scheme, its scales' key, and its
/// logical layout (`rows` stored rows of `row_len` values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quantized {
    pub scheme: Scheme,
    pub scales: String,
    pub rows: usize,
    pub row_len: usize,
}

impl Quantized {
    /// Values per scale: a whole row for int8.
    pub fn group(&self) -> usize {
        match self.scheme {
            Scheme::Int8 => self.row_len,
            Scheme::Int4 { group } => group,
        }
    }

    /// Scales per row.
    pub fn groups(&self) -> usize {
        self.row_len.div_ceil(self.group().max(1))
    }

    /// Bytes of the stored values.
    pub fn stored_bytes(&self) -> usize {
        match self.scheme {
            Scheme::Int8 => self.rows * self.row_len,
            Scheme::Int4 { .. } => self.rows * self.row_len / 2,
        }
    }
}

/// The smallest int4 group `kinema quantize` writes and the kernels read (a
/// vec4 of B never straddles two groups).
pub const MIN_GROUP: usize = 8;

/// The tensors a quantized `shape` weight is stored as under `key` (the layout
/// [`Checkpoint::quantized`] reads): its values and `{key}.scale`.
pub fn stored_specs(scheme: Scheme, key: &str, shape: &[u64]) -> [super::writer::TensorSpec; 2] {
    use super::writer::TensorSpec;
    let rows = shape.first().copied().unwrap_or(1);
    let row_len: u64 = shape.iter().skip(1).product();
    match scheme {
        Scheme::Int8 => [TensorSpec::new(key, Dtype::I8, shape), TensorSpec::new(scale_key(key), Dtype::F32, &[rows])],
        Scheme::Int4 { group } => [
            TensorSpec::new(key, Dtype::U8, &[rows, row_len / 2]),
            TensorSpec::new(scale_key(key), Dtype::F32, &[rows, row_len.div_ceil(group.max(1) as u64)]),
        ],
    }
}

/// Quantizes `values` (`rows` rows) as `scheme` does: the stored bytes and the scales.
pub fn quantize(scheme: Scheme, values: &[f32], rows: usize) -> (Vec<u8>, Vec<f32>) {
    match scheme {
        Scheme::Int8 => {
            let (q, s) = quantize_int8(values, rows);
            (bytemuck::cast_slice(&q).to_vec(), s)
        }
        Scheme::Int4 { group } => quantize_int4(values, rows, group),
    }
}

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

/// Quantizes `values`, `rows` rows of equal, even length, to int4 in groups of
/// `group` along each row: per group `scale = max|v| / 7`, `q = round(v / scale)`
/// in −8..=7 (an all-zero group has scale 0). Returns the packed bytes (two per
/// byte, low nibble first, `q + 8`) and the scales `[rows, ⌈len / group⌉]`.
pub fn quantize_int4(values: &[f32], rows: usize, group: usize) -> (Vec<u8>, Vec<f32>) {
    let row_len = values.len().checked_div(rows).unwrap_or(0);
    let group = group.max(1);
    let groups = row_len.div_ceil(group);
    let mut packed = vec![0x88u8; values.len().div_ceil(2)];
    let mut scales = vec![0f32; rows * groups];
    for r in 0..rows {
        for g in 0..groups {
            let (c0, c1) = (g * group, ((g + 1) * group).min(row_len));
            let part = &values[r * row_len + c0..r * row_len + c1];
            let scale = part.iter().fold(0f32, |m, v| m.max(v.abs())) / 7.0;
            scales[r * groups + g] = scale;
            if scale == 0.0 {
                continue;
            }
            for (j, &v) in part.iter().enumerate() {
                let e = r * row_len + c0 + j;
                let q = ((v / scale).round().clamp(-8.0, 7.0) as i32 + 8) as u8;
                let byte = &mut packed[e / 2];
                *byte = if e.is_multiple_of(2) { (*byte & 0xf0) | q } else { (*byte & 0x0f) | (q << 4) };
            }
        }
    }
    (packed, scales)
}

/// Widens whole stored rows `row0 ..` of int4 bytes `packed` (rows of
/// `row_len` values, `row_len` even) into `out`, with `groups` scales per row.
pub fn dequantize_int4(packed: &[u8], scales: &[f32], row0: usize, row_len: usize, group: usize, out: &mut [f32]) {
    let groups = row_len.div_ceil(group.max(1));
    for (r, (o, q)) in out.chunks_mut(row_len.max(1)).zip(packed.chunks(row_len.div_ceil(2).max(1))).enumerate() {
        let s = &scales[(row0 + r) * groups..][..groups];
        for (j, o) in o.iter_mut().enumerate() {
            let nibble = (q[j / 2] >> (4 * (j % 2))) & 0x0f;
            *o = (nibble as i32 - 8) as f32 * s[j / group.max(1)];
        }
    }
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
    /// `key` as a quantized weight, if it is one: int8 (dtype I8, at least one
    /// dimension, `{key}.scale` f32 `[rows]`) or int4 (dtype U8 `[rows, n]`,
    /// `{key}.scale` f32 `[rows, groups]` with a power-of-two group ≥ 8 that
    /// gives that many groups over rows of 2n values).
    pub fn quantized(&self, key: &str) -> Option<Quantized> {
        let t = self.get(key).ok()?;
        let shape: Vec<usize> = t.info.shape.iter().map(|&d| usize::try_from(d).ok()).collect::<Option<_>>()?;
        let rows = *shape.first()?;
        let scales = scale_key(key);
        let st = self.get(&scales).ok()?;
        if st.info.dtype != Dtype::F32 {
            return None;
        }
        match (t.info.dtype, &st.info.shape[..]) {
            (Dtype::I8, [r]) if *r as usize == rows => {
                Some(Quantized { scheme: Scheme::Int8, scales, rows, row_len: shape[1..].iter().product() })
            }
            (Dtype::U8, [r, groups]) if *r as usize == rows && shape.len() == 2 && *groups >= 1 => {
                let row_len = shape[1].checked_mul(2)?;
                let groups = usize::try_from(*groups).ok()?;
                let group = row_len.div_ceil(groups).next_power_of_two().max(MIN_GROUP);
                (row_len.div_ceil(group) == groups).then_some(Quantized {
                    scheme: Scheme::Int4 { group },
                    scales,
                    rows,
                    row_len,
                })
            }
            _ => None,
        }
    }

    /// The shape `key` holds to a program: the stored shape, except for an int4
    /// weight, `[rows, row_len]` (two values per stored byte).
    pub fn logical_shape(&self, key: &str) -> crate::Result<Vec<usize>> {
        if let Some(q) = self.quantized(key).filter(|q| matches!(q.scheme, Scheme::Int4 { .. })) {
            return Ok(vec![q.rows, q.row_len]);
        }
        Ok(self.get(key)?.info.shape.iter().map(|&d| d as usize).collect())
    }

    /// Its scales, `[rows, groups]`.
    pub async fn read_scales(&self, q: &Quantized) -> crate::Result<Vec<f32>> {
        let mut s = vec![0f32; q.rows * q.groups()];
        self.read_f32(&q.scales, &mut s).await?;
        Ok(s)
    }

    /// A weight as f32: dequantized when it is quantized ([`quantized`](Self::quantized)),
    /// else converted from its floating-point dtype.
    pub async fn read_f32_dequantized(&self, key: &str, out: &mut [f32]) -> crate::Result<()> {
        let Some(q) = self.quantized(key) else { return self.read_f32(key, out).await };
        if out.len() != q.rows * q.row_len {
            return Err(crate::Error::Invalid(format!("{key}: {} values, expected {}", q.rows * q.row_len, out.len())));
        }
        let scales = self.read_scales(&q).await?;
        let mut bytes = vec![0u8; q.stored_bytes()];
        self.read_bytes(key, &mut bytes).await?;
        match q.scheme {
            Scheme::Int8 => dequantize_int8(&bytes, &scales, 0, q.row_len, out),
            Scheme::Int4 { group } => dequantize_int4(&bytes, &scales, 0, q.row_len, group, out),
        }
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

    #[test]
    fn int4_round_trips_within_half_a_step_with_a_short_last_group() {
        // Rows of 100 values in groups of 32: three of 32 and one of 4.
        let (rows, len, group) = (5, 100, 32);
        let mut v = crate::random::uniform(rows * len, 2);
        v[100..200].iter_mut().for_each(|x| *x = 0.0); // an all-zero row
        v[298] = -9.0; // an outlier in row 2's last group
        let (q, s) = quantize_int4(&v, rows, group);
        assert_eq!((q.len(), s.len()), (rows * len / 2, rows * 4));
        assert!(s[4..8].iter().all(|&x| x == 0.0));
        let mut back = vec![0f32; v.len()];
        dequantize_int4(&q, &s, 0, len, group, &mut back);
        for (i, (a, b)) in v.iter().zip(&back).enumerate() {
            let scale = s[(i / len) * 4 + (i % len) / group];
            assert!((a - b).abs() <= scale / 2.0 + 1e-7, "{i}: {a} vs {b}");
        }
        assert!((back[298] + 9.0).abs() < 1e-5, "{}", back[298]);
        // Rows from the middle: row 3 alone.
        let mut row = vec![0f32; len];
        dequantize_int4(&q[3 * len / 2..4 * len / 2], &s, 3, len, group, &mut row);
        assert_eq!(row, back[3 * len..4 * len]);
    }
}
