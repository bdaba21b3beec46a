//! The attention op (`scaled_dot_product_attention`): shapes and checks
//! shared by both delegates.

use crate::error::{Error, Result};

/// `out = softmax(q·kᵀ · scale + mask) · v`, per batch and head, in PyTorch's
/// SDPA layout: q `[batch, heads, q_len, head_dim]`, k and v
/// `[batch, heads, kv_len, head_dim]`, out like q. Self-attention has
/// `q_len == kv_len`; cross-attention need not.
///
/// The optional additive mask is `[q_len, kv_len]`, or `[batch, q_len, kv_len]`
/// when `mask_per_batch` (broadcast over heads); `-inf` hides a key. A query
/// that sees no key at all gets zeros (PyTorch gives NaN).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Attention {
    pub batch: usize,
    pub heads: usize,
    pub q_len: usize,
    pub kv_len: usize,
    pub head_dim: usize,
    /// Usually `1 / √head_dim`.
    pub scale: f32,
    /// Query i sees keys j ≤ i + (kv_len − q_len) only.
    pub causal: bool,
    pub mask_per_batch: bool,
}

impl Attention {
    /// The largest head dimension the kernels hold in registers.
    pub const MAX_HEAD_DIM: usize = 128;

    /// Self or cross attention with the default scale `1 / √head_dim`.
    pub fn new(batch: usize, heads: usize, q_len: usize, kv_len: usize, head_dim: usize) -> Attention {
        Attention {
            batch,
            heads,
            q_len,
            kv_len,
            head_dim,
            scale: 1.0 / (head_dim.max(1) as f32).sqrt(),
            causal: false,
            mask_per_batch: false,
        }
    }

    /// Multiply-adds of q·kᵀ and p·v.
    pub fn macs(&self) -> f64 {
        2.0 * (self.batch * self.heads) as f64 * self.q_len as f64 * self.kv_len as f64 * self.head_dim as f64
    }

    /// The number of mask elements expected.
    pub fn mask_len(&self) -> usize {
        let per = self.q_len.saturating_mul(self.kv_len);
        if self.mask_per_batch { per.saturating_mul(self.batch) } else { per }
    }

    /// Checks operand lengths; returns the output length.
    pub fn check(&self, q: usize, k: usize, v: usize, mask: Option<usize>) -> Result<usize> {
        if self.head_dim == 0 || self.head_dim > Self::MAX_HEAD_DIM {
            return Err(Error::Invalid(format!("attention {self:?}: head_dim must be 1..={}", Self::MAX_HEAD_DIM)));
        }
        if !self.scale.is_finite() {
            return Err(Error::Invalid(format!("attention {self:?}: scale must be finite")));
        }
        let overflow = || Error::Invalid(format!("attention {self:?}: sizes overflow"));
        let product = |xs: &[usize]| xs.iter().try_fold(1usize, |a, &b| a.checked_mul(b)).ok_or_else(overflow);
        let want = |what: &str, got: usize, n: usize| {
            if got == n {
                Ok(())
            } else {
                Err(Error::Invalid(format!("attention {self:?}: {what} has {got} elements, expected {n}")))
            }
        };
        let q_want = product(&[self.batch, self.heads, self.q_len, self.head_dim])?;
        let kv_want = product(&[self.batch, self.heads, self.kv_len, self.head_dim])?;
        want("q", q, q_want)?;
        want("k", k, kv_want)?;
        want("v", v, kv_want)?;
        if let Some(len) = mask {
            let n = product(&[if self.mask_per_batch { self.batch } else { 1 }, self.q_len, self.kv_len])?;
            want("mask", len, n)?;
        }
        Ok(q_want)
    }
}
