//! Rotary position embedding.

use crate::error::{Error, Result};

/// Rotates pairs of x viewed as `[outer, len, inner, dim]` by per-position
/// angles, given as `cos` and `sin` tables `[len, dim / 2]`. Pairs are
/// `(2j, 2j+1)` when `interleaved` (Wan, complex-number style), else
/// `(j, j + dim/2)` (GPT-NeoX / Llama style).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotary {
    pub outer: usize,
    pub len: usize,
    pub inner: usize,
    pub dim: usize,
    pub interleaved: bool,
}

impl Rotary {
    /// Checks lengths; returns the output length.
    pub fn check(&self, x: usize, cos: usize, sin: usize) -> Result<usize> {
        let bad = |why: String| Err(Error::Invalid(format!("rotary {self:?}: {why}")));
        if !self.dim.is_multiple_of(2) {
            return bad("dim must be even".into());
        }
        let n = [self.outer, self.len, self.inner, self.dim].iter().try_fold(1usize, |a, &b| a.checked_mul(b));
        if n != Some(x) {
            return bad(format!("x has {x} elements"));
        }
        let table = self.len * self.dim / 2;
        if cos != table || sin != table {
            return bad(format!("cos and sin need {table} elements, got {cos} and {sin}"));
        }
        Ok(x)
    }
}
