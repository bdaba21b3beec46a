//! Decoding stored elements: floating-point tensors to `f32` or `f16` (the
//! two types kernels take), and any tensor to `f64` for statistics.
//!
//! Conversions round to nearest even (`f32 → f16`, `f64 → f32/f16`); widening
//! conversions (`bf16/f16/f8 → f32`, `f8 → f16`) are exact.

use float8::{F8E4M3, F8E5M2};
use half::{bf16, f16};

use super::dtype::Dtype;

/// Why a conversion cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    #[error("cannot convert {from} to {to}: only floating-point tensors convert")]
    Unsupported { from: Dtype, to: &'static str },
    #[error("{bytes} bytes of {dtype} do not fill {elements} elements")]
    Length { dtype: Dtype, bytes: usize, elements: usize },
}

fn check(dtype: Dtype, src: &[u8], n: usize, to: &'static str) -> Result<(), ConvertError> {
    if !dtype.is_float() {
        return Err(ConvertError::Unsupported { from: dtype, to });
    }
    if src.len() != n * dtype.size() {
        return Err(ConvertError::Length { dtype, bytes: src.len(), elements: n });
    }
    Ok(())
}

fn le<const N: usize>(c: &[u8]) -> [u8; N] {
    c.try_into().expect("chunks_exact yields N bytes")
}

/// A decoder of little-endian bytes of a dtype into a slice of `T`.
pub type Decoder<T> = fn(Dtype, &[u8], &mut [T]) -> Result<(), ConvertError>;

/// Decodes little-endian `src` of a floating-point `dtype` into `dst`.
pub fn to_f32(dtype: Dtype, src: &[u8], dst: &mut [f32]) -> Result<(), ConvertError> {
    check(dtype, src, dst.len(), "F32")?;
    let pairs = src.chunks_exact(dtype.size()).zip(dst.iter_mut());
    match dtype {
        Dtype::F32 => pairs.for_each(|(c, d)| *d = f32::from_le_bytes(le(c))),
        Dtype::F64 => pairs.for_each(|(c, d)| *d = f64::from_le_bytes(le(c)) as f32),
        Dtype::F16 => pairs.for_each(|(c, d)| *d = f16::from_le_bytes(le(c)).to_f32()),
        Dtype::BF16 => pairs.for_each(|(c, d)| *d = bf16::from_le_bytes(le(c)).to_f32()),
        Dtype::F8_E4M3 => pairs.for_each(|(c, d)| *d = F8E4M3::from_bits(c[0]).to_f32()),
        Dtype::F8_E5M2 => pairs.for_each(|(c, d)| *d = F8E5M2::from_bits(c[0]).to_f32()),
        _ => unreachable!("checked to be a float type"),
    }
    Ok(())
}

/// Decodes little-endian `src` of a floating-point `dtype` into `dst` as f16.
pub fn to_f16(dtype: Dtype, src: &[u8], dst: &mut [f16]) -> Result<(), ConvertError> {
    check(dtype, src, dst.len(), "F16")?;
    let pairs = src.chunks_exact(dtype.size()).zip(dst.iter_mut());
    match dtype {
        Dtype::F16 => pairs.for_each(|(c, d)| *d = f16::from_le_bytes(le(c))),
        Dtype::F32 => pairs.for_each(|(c, d)| *d = f16::from_f32(f32::from_le_bytes(le(c)))),
        Dtype::F64 => pairs.for_each(|(c, d)| *d = f16::from_f64(f64::from_le_bytes(le(c)))),
        Dtype::BF16 => pairs.for_each(|(c, d)| *d = f16::from_f32(bf16::from_le_bytes(le(c)).to_f32())),
        Dtype::F8_E4M3 => pairs.for_each(|(c, d)| *d = F8E4M3::from_bits(c[0]).to_f16()),
        Dtype::F8_E5M2 => pairs.for_each(|(c, d)| *d = F8E5M2::from_bits(c[0]).to_f16()),
        _ => unreachable!("checked to be a float type"),
    }
    Ok(())
}

/// Calls `f` with every element of `src` (any dtype) as f64. Booleans are 0/1;
/// 64-bit integers beyond 2^53 round.
pub fn for_each_f64(dtype: Dtype, src: &[u8], mut f: impl FnMut(f64)) {
    let chunks = src.chunks_exact(dtype.size());
    match dtype {
        Dtype::BOOL => chunks.for_each(|c| f(if c[0] != 0 { 1.0 } else { 0.0 })),
        Dtype::U8 => chunks.for_each(|c| f(c[0] as f64)),
        Dtype::I8 => chunks.for_each(|c| f(c[0] as i8 as f64)),
        Dtype::I16 => chunks.for_each(|c| f(i16::from_le_bytes(le(c)) as f64)),
        Dtype::U16 => chunks.for_each(|c| f(u16::from_le_bytes(le(c)) as f64)),
        Dtype::I32 => chunks.for_each(|c| f(i32::from_le_bytes(le(c)) as f64)),
        Dtype::U32 => chunks.for_each(|c| f(u32::from_le_bytes(le(c)) as f64)),
        Dtype::I64 => chunks.for_each(|c| f(i64::from_le_bytes(le(c)) as f64)),
        Dtype::U64 => chunks.for_each(|c| f(u64::from_le_bytes(le(c)) as f64)),
        Dtype::F16 => chunks.for_each(|c| f(f16::from_le_bytes(le(c)).to_f64())),
        Dtype::BF16 => chunks.for_each(|c| f(bf16::from_le_bytes(le(c)).to_f64())),
        Dtype::F32 => chunks.for_each(|c| f(f32::from_le_bytes(le(c)) as f64)),
        Dtype::F64 => chunks.for_each(|c| f(f64::from_le_bytes(le(c)))),
        Dtype::F8_E4M3 => chunks.for_each(|c| f(F8E4M3::from_bits(c[0]).to_f64())),
        Dtype::F8_E5M2 => chunks.for_each(|c| f(F8E5M2::from_bits(c[0]).to_f64())),
    }
}

/// Summary statistics of a tensor, over its decoded values in f64.
///
/// `min`, `max` and `mean` are over the finite values (JSON has no NaN or
/// infinity); they are `None` when there are none, as for an empty tensor.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Stats {
    pub count: u64,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub mean: Option<f64>,
    pub nan: u64,
    pub inf: u64,
}

/// Accumulates [`Stats`] over chunks of a tensor.
#[derive(Debug, Default)]
pub struct StatsAccumulator {
    count: u64,
    finite: u64,
    sum: f64,
    min: f64,
    max: f64,
    nan: u64,
    inf: u64,
}

impl StatsAccumulator {
    pub fn add(&mut self, dtype: Dtype, bytes: &[u8]) {
        for_each_f64(dtype, bytes, |v| {
            self.count += 1;
            if v.is_nan() {
                self.nan += 1;
            } else if v.is_infinite() {
                self.inf += 1;
            } else {
                if self.finite == 0 {
                    (self.min, self.max) = (v, v);
                } else {
                    self.min = self.min.min(v);
                    self.max = self.max.max(v);
                }
                self.finite += 1;
                self.sum += v;
            }
        });
    }

    pub fn finish(&self) -> Stats {
        let some = |v: f64| (self.finite > 0).then_some(v);
        Stats {
            count: self.count,
            min: some(self.min),
            max: some(self.max),
            mean: some(self.sum / self.finite as f64),
            nan: self.nan,
            inf: self.inf,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_to_f16_rounds_to_nearest_even() {
        // 1 + 2^-11 is halfway between two f16 values: ties go to the even one (1.0).
        let x = 1.0f32 + 2f32.powi(-11);
        let mut out = [f16::ZERO];
        to_f16(Dtype::F32, &x.to_le_bytes(), &mut out).unwrap();
        assert_eq!(out[0], f16::ONE);
        // 65520 overflows f16 to infinity.
        to_f16(Dtype::F32, &65520f32.to_le_bytes(), &mut out).unwrap();
        assert_eq!(out[0], f16::INFINITY);
    }

    #[test]
    fn integers_do_not_convert_to_floats() {
        let mut out = [0f32];
        assert_eq!(
            to_f32(Dtype::I32, &[0; 4], &mut out),
            Err(ConvertError::Unsupported { from: Dtype::I32, to: "F32" })
        );
        assert!(matches!(to_f32(Dtype::F32, &[0; 3], &mut out), Err(ConvertError::Length { .. })));
    }

    #[test]
    fn stats_skip_non_finite() {
        let vals = [1.0f32, f32::NAN, f32::INFINITY, -3.0, f32::NEG_INFINITY];
        let bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut acc = StatsAccumulator::default();
        acc.add(Dtype::F32, &bytes);
        let s = acc.finish();
        assert_eq!((s.count, s.nan, s.inf), (5, 1, 2));
        assert_eq!((s.min, s.max, s.mean), (Some(-3.0), Some(1.0), Some(-1.0)));
        assert_eq!(StatsAccumulator::default().finish().min, None);
    }
}
