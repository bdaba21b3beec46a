//! The matmul op: shapes, strides and checks shared by both delegates.

use super::Activation;

/// A batched matmul: `out[b] = act(op(A[b]) · op(B[b]) + bias)`, row-major.
///
/// A is `[batch, m, k]` (`[batch, k, m]` when `trans_a`), B is `[batch, k, n]`
/// (`[batch, n, k]` when `trans_b`), bias is `[n]`, out is `[batch, m, n]`.
/// `linear(x, W, b)` is `trans_b` with W as stored by PyTorch (`[out, in]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Matmul {
    pub batch: usize,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub trans_a: bool,
    pub trans_b: bool,
    pub activation: Activation,
}

impl Matmul {
    pub fn new(batch: usize, m: usize, n: usize, k: usize) -> Matmul {
        Matmul { batch, m, n, k, trans_a: false, trans_b: false, activation: Activation::None }
    }

    /// Element strides (batch, row, column) of A, as an `[m, k]` matrix.
    pub fn a_strides(&self) -> (usize, usize, usize) {
        let batch = self.m * self.k;
        if self.trans_a { (batch, 1, self.m) } else { (batch, self.k, 1) }
    }

    /// Element strides (batch, row, column) of B, as a `[k, n]` matrix.
    pub fn b_strides(&self) -> (usize, usize, usize) {
        let batch = self.k * self.n;
        if self.trans_b { (batch, 1, self.k) } else { (batch, self.n, 1) }
    }

    /// Checks operand lengths; returns the output length.
    pub fn check(&self, a: usize, b: usize, bias: Option<usize>) -> crate::Result<usize> {
        let want = |what: &str, got: usize, n: usize| {
            if got == n {
                Ok(())
            } else {
                Err(crate::Error::Invalid(format!("matmul {self:?}: {what} has {got} elements, expected {n}")))
            }
        };
        let overflow = || crate::Error::Invalid(format!("matmul {self:?}: sizes overflow"));
        let size = |x: usize, y: usize| self.batch.checked_mul(x).and_then(|v| v.checked_mul(y)).ok_or_else(overflow);
        want("A", a, size(self.m, self.k)?)?;
        want("B", b, size(self.k, self.n)?)?;
        if let Some(len) = bias {
            want("bias", len, self.n)?;
        }
        size(self.m, self.n)
    }
}
