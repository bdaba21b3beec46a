//! Normalisations and reductions: layer_norm, rms_norm, group_norm, softmax
//! over the last axis, and sum/mean/max/min over one axis.

use crate::error::{Error, Result};

/// Which normalisation; the codes are those of `norm.wgsl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NormKind {
    /// Over the last `n` values, with per-element affine `[n]`.
    Layer,
    /// Root-mean-square over the last `n` values, with a per-element scale `[n]`.
    Rms,
    /// Over each group of `channels / groups` channels × `spatial` positions of
    /// an `[batch, channels, spatial…]` tensor, with a per-channel affine `[channels]`.
    Group { groups: usize, spatial: usize },
}

/// A normalisation over `rows` contiguous rows of `n` values each.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Norm {
    pub kind: NormKind,
    pub rows: usize,
    pub n: usize,
    pub eps: f32,
}

impl Norm {
    pub fn layer(rows: usize, n: usize, eps: f32) -> Norm {
        Norm { kind: NormKind::Layer, rows, n, eps }
    }

    pub fn rms(rows: usize, n: usize, eps: f32) -> Norm {
        Norm { kind: NormKind::Rms, rows, n, eps }
    }

    /// group_norm of `[batch, channels, spatial…]` (spatial = product of the rest).
    pub fn group(batch: usize, channels: usize, spatial: usize, groups: usize, eps: f32) -> Result<Norm> {
        if groups == 0 || !channels.is_multiple_of(groups) || spatial == 0 {
            return Err(Error::Invalid(format!(
                "group_norm: {groups} groups must divide {channels} channels, with at least one position"
            )));
        }
        let overflow = || Error::Invalid("group_norm: sizes overflow".into());
        let n = (channels / groups).checked_mul(spatial).ok_or_else(overflow)?;
        let rows = batch.checked_mul(groups).ok_or_else(overflow)?;
        Ok(Norm { kind: NormKind::Group { groups, spatial }, rows, n, eps })
    }

    pub fn code(&self) -> u32 {
        match self.kind {
            NormKind::Layer => 0,
            NormKind::Rms => 1,
            NormKind::Group { .. } => 2,
        }
    }

    /// Length of the affine parameters.
    pub fn affine_len(&self) -> usize {
        match self.kind {
            NormKind::Group { groups, spatial } => self.n / spatial.max(1) * groups,
            _ => self.n,
        }
    }

    /// Checks operand lengths; returns the output length.
    pub fn check(&self, x: usize, w: Option<usize>, b: Option<usize>) -> Result<usize> {
        let bad = |why: String| Err(Error::Invalid(format!("norm {self:?}: {why}")));
        if let NormKind::Group { groups, spatial } = self.kind
            && (groups == 0 || spatial == 0 || !self.rows.is_multiple_of(groups) || !self.n.is_multiple_of(spatial))
        {
            return bad("groups must divide the channels, and spatial be at least 1".into());
        }
        if !(self.eps >= 0.0 && self.eps.is_finite()) {
            return bad("eps must be finite and non-negative".into());
        }
        let len = self.rows.checked_mul(self.n).ok_or_else(|| Error::Invalid(format!("norm {self:?}: overflow")))?;
        if x != len {
            return bad(format!("x has {x} elements, expected {len}"));
        }
        if b.is_some() && w.is_none() {
            return bad("a bias needs a weight".into());
        }
        if self.kind == NormKind::Rms && b.is_some() {
            return bad("rms_norm has no bias".into());
        }
        for (what, got) in [("weight", w), ("bias", b)] {
            if let Some(got) = got
                && got != self.affine_len()
            {
                return bad(format!("{what} has {got} elements, expected {}", self.affine_len()));
            }
        }
        Ok(len)
    }
}

/// Softmax over the last axis of `rows × n` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Softmax {
    pub rows: usize,
    pub n: usize,
}

impl Softmax {
    pub fn check(&self, x: usize) -> Result<usize> {
        match self.rows.checked_mul(self.n) {
            Some(len) if len == x => Ok(len),
            _ => Err(Error::Invalid(format!("softmax {self:?}: x has {x} elements"))),
        }
    }
}

/// What a reduction computes; the codes are those of `reduce.wgsl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum ReduceOp {
    Sum = 0,
    Mean = 1,
    Max = 2,
    Min = 3,
}

/// A reduction over the middle axis of a tensor viewed as `[outer, axis, inner]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reduce {
    pub op: ReduceOp,
    pub outer: usize,
    pub axis: usize,
    pub inner: usize,
}

impl Reduce {
    /// Over dimension `dim` of `shape`.
    pub fn over(op: ReduceOp, shape: &[usize], dim: usize) -> Result<Reduce> {
        if dim >= shape.len() {
            return Err(Error::Invalid(format!("reduce over dimension {dim} of {shape:?}")));
        }
        let outer = super::elementwise::numel(&shape[..dim])?;
        let inner = super::elementwise::numel(&shape[dim + 1..])?;
        Ok(Reduce { op, outer, axis: shape[dim], inner })
    }

    /// Checks the input length; returns the output length.
    pub fn check(&self, x: usize) -> Result<usize> {
        let len = self.outer.checked_mul(self.axis).and_then(|v| v.checked_mul(self.inner));
        if len != Some(x) {
            return Err(Error::Invalid(format!("reduce {self:?}: x has {x} elements")));
        }
        if self.axis == 0 {
            return Err(Error::Invalid(format!("reduce {self:?}: over an empty axis")));
        }
        Ok(self.outer * self.inner)
    }
}
