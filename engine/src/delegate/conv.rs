//! The conv3d op (conv2d and conv1d are its special cases with a kernel
//! extent of 1): shapes, output size and checks shared by both delegates.

use super::Activation;
use crate::error::{Error, Result};

/// `out = act(conv3d(x, w) + bias)`, PyTorch's layouts: x `[batch, c_in, D, H, W]`,
/// w `[c_out, c_in / groups, kd, kh, kw]`, bias `[c_out]`, out `[batch, c_out, oD, oH, oW]`.
///
/// Padding is `(before, after)` per spatial axis, so causal padding (Wan's
/// VAE pads time by `kd − 1` before and 0 after) and asymmetric padding need no
/// copy; padded positions read as zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv3d {
    pub batch: usize,
    pub c_in: usize,
    pub c_out: usize,
    /// Input extent (D, H, W).
    pub input: [usize; 3],
    /// Kernel extent (kd, kh, kw).
    pub kernel: [usize; 3],
    pub stride: [usize; 3],
    /// (before, after) per axis.
    pub padding: [[usize; 2]; 3],
    pub dilation: [usize; 3],
    pub groups: usize,
    pub activation: Activation,
}

impl Conv3d {
    /// A conv with stride 1, no padding, no dilation, one group.
    pub fn new(batch: usize, c_in: usize, c_out: usize, input: [usize; 3], kernel: [usize; 3]) -> Conv3d {
        Conv3d {
            batch,
            c_in,
            c_out,
            input,
            kernel,
            stride: [1; 3],
            padding: [[0; 2]; 3],
            dilation: [1; 3],
            groups: 1,
            activation: Activation::None,
        }
    }

    /// The same padding on both sides of each axis (PyTorch's `padding=`).
    pub fn padded(self, pad: [usize; 3]) -> Conv3d {
        Conv3d { padding: pad.map(|p| [p, p]), ..self }
    }

    /// Output extent (oD, oH, oW). Call after [`check`](Self::check).
    pub fn output(&self) -> [usize; 3] {
        std::array::from_fn(|i| {
            let span = self.dilation[i] * (self.kernel[i] - 1) + 1;
            (self.input[i] + self.padding[i][0] + self.padding[i][1] - span) / self.stride[i] + 1
        })
    }

    /// Input channels per group.
    pub fn c_in_g(&self) -> usize {
        self.c_in / self.groups
    }

    /// Output channels per group.
    pub fn c_out_g(&self) -> usize {
        self.c_out / self.groups
    }

    /// Reduction length of the implicit GEMM: `c_in / groups · kd · kh · kw`.
    pub fn k(&self) -> usize {
        self.c_in_g() * self.kernel.iter().product::<usize>()
    }

    /// Output positions per (batch, channel): `oD · oH · oW`.
    pub fn positions(&self) -> usize {
        self.output().iter().product()
    }

    /// Multiply-adds of the whole conv.
    pub fn macs(&self) -> f64 {
        (self.batch * self.c_out * self.positions()) as f64 * self.k() as f64
    }

    /// Checks the geometry and operand lengths; returns the output length.
    pub fn check(&self, x: usize, w: usize, bias: Option<usize>) -> Result<usize> {
        let bad = |why: &str| Err(Error::Invalid(format!("conv3d {self:?}: {why}")));
        if self.groups == 0 || !self.c_in.is_multiple_of(self.groups) || !self.c_out.is_multiple_of(self.groups) {
            return bad("groups must divide c_in and c_out");
        }
        if self.kernel.contains(&0) || self.stride.contains(&0) || self.dilation.contains(&0) {
            return bad("kernel, stride and dilation must be at least 1");
        }
        let big = |v: usize| v > u32::MAX as usize / 4;
        for i in 0..3 {
            if [self.input[i], self.kernel[i], self.stride[i], self.dilation[i], self.padding[i][0], self.padding[i][1]]
                .into_iter()
                .any(big)
            {
                return bad("an extent is too large");
            }
            // In u64: every extent is under 2³⁰, so these cannot overflow on any target
            // (on wasm32 the same sums in usize could).
            let span = self.dilation[i] as u64 * (self.kernel[i] as u64 - 1) + 1;
            let padded = self.input[i] as u64 + self.padding[i][0] as u64 + self.padding[i][1] as u64;
            if padded < span {
                return bad("the kernel is larger than the padded input");
            }
            if usize::try_from(padded).is_err() {
                return bad("an extent is too large");
            }
        }
        let overflow = || Error::Invalid(format!("conv3d {self:?}: sizes overflow"));
        let product = |xs: &[usize]| xs.iter().try_fold(1usize, |a, &b| a.checked_mul(b)).ok_or_else(overflow);
        let want = |what: &str, got: usize, n: usize| {
            if got == n {
                Ok(())
            } else {
                Err(Error::Invalid(format!("conv3d {self:?}: {what} has {got} elements, expected {n}")))
            }
        };
        want("x", x, product(&[self.batch, self.c_in, self.input[0], self.input[1], self.input[2]])?)?;
        want("w", w, product(&[self.c_out, self.c_in_g(), self.kernel[0], self.kernel[1], self.kernel[2]])?)?;
        if let Some(len) = bias {
            want("bias", len, self.c_out)?;
        }
        let [d, h, w] = self.output();
        product(&[self.batch, self.c_out, d, h, w])
    }
}
