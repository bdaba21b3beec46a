//! Dispatch of `cast.wgsl`: f32 ↔ f16 with f16 packed two per u32.

use bytemuck::{Pod, Zeroable};

use super::elementwise::u32_of;
use super::{Commands, GpuDevice, View};
use crate::error::Result;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    len: u32,
    to_f16: u32,
}

/// f32 → f16 (round to nearest even), as f16 bit patterns.
pub async fn to_f16(dev: &GpuDevice, x: &[f32]) -> Result<Vec<u16>> {
    let params = Params { len: u32_of("cast", x.len())?, to_f16: 1 };
    let words = x.len().div_ceil(2);
    let grid = dev.grid("cast", words, 256)?;
    let packed = dev.run(&kinema_shaders::CAST, &[], &[x], words, &params, grid).await?;
    let halves: &[u16] = bytemuck::cast_slice(&packed);
    Ok(halves[..x.len()].to_vec())
}

/// f16 bit patterns → f32.
pub async fn to_f32(dev: &GpuDevice, x: &[u16]) -> Result<Vec<f32>> {
    let params = Params { len: u32_of("cast", x.len())?, to_f16: 0 };
    // Pairs of f16 travel as one 32-bit word (the low half first).
    let words: Vec<f32> =
        x.chunks(2).map(|p| f32::from_bits(p[0] as u32 | (p.get(1).copied().unwrap_or(0) as u32) << 16)).collect();
    let grid = dev.grid("cast", words.len(), 256)?;
    dev.run(&kinema_shaders::CAST, &[], &[&words], x.len(), &params, grid).await
}

/// Records `out = f32(f16(x))` (rounding through half precision) over device
/// views, through a temporary of packed halves; in windows when over one
/// storage binding.
pub async fn encode_round_f16(dev: &GpuDevice, cmds: &mut Commands<'_>, x: View<'_>, out: View<'_>) -> Result<()> {
    let pipeline = dev.pipeline(&kinema_shaders::CAST, &[]).await?;
    // Windows start on even values, so each one's halves fill whole words.
    for (at, len) in dev.row_windows("cast", x.len, &[1], 2)? {
        let words = len.div_ceil(2);
        let halves = dev.output("cast.halves", words);
        let (xv, ov) = (x.slice(at, len), out.slice(at, len));
        let to = Params { len: u32_of("cast", len)?, to_f16: 1 };
        cmds.dispatch_views(&pipeline, &[xv, View::whole(&halves, words)], &to, dev.grid("cast", words, 256)?);
        let back = Params { len: u32_of("cast", len)?, to_f16: 0 };
        cmds.dispatch_views(&pipeline, &[View::whole(&halves, words), ov], &back, dev.grid("cast", words, 256)?);
        cmds.keep(halves);
    }
    Ok(())
}
