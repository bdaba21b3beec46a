//! Dispatch of `gather.wgsl`: the `embedding` op on the device.

use bytemuck::{Pod, Zeroable};

use super::elementwise::u32_of;
use super::{Commands, GpuDevice, View};
use crate::delegate::Gather;
use crate::error::Result;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    count: u32,
    dim: u32,
    row0: u32,
    rows: u32,
    total: u32,
}

/// Records a gather over device views: outputs in windows of whole rows, the
/// table in windows of whole rows, each pair one dispatch (a dispatch writes the
/// outputs whose index falls in its table window).
pub async fn encode_gather(
    dev: &GpuDevice,
    cmds: &mut Commands<'_>,
    spec: &Gather,
    [table, indices]: [View<'_>; 2],
    out: View<'_>,
) -> Result<()> {
    spec.check(table.len, indices.len)?;
    if spec.count == 0 || spec.dim == 0 {
        return Ok(());
    }
    let pipeline = dev.pipeline(&kinema_shaders::GATHER, &[]).await?;
    let dim = spec.dim;
    let what = format!("gather {spec:?}");
    let table_windows = dev.row_windows(&what, spec.rows, &[dim], 1)?;
    for (n0, n) in dev.row_windows(&what, spec.count, &[dim, 1], 1)? {
        for &(r0, rows) in &table_windows {
            let params = Params {
                count: u32_of("gather", n)?,
                dim: u32_of("gather", dim)?,
                row0: u32_of("gather", r0)?,
                rows: u32_of("gather", rows)?,
                total: u32_of("gather", spec.rows)?,
            };
            let views = [table.slice(r0 * dim, rows * dim), indices.slice(n0, n), out.slice(n0 * dim, n * dim)];
            cmds.dispatch_views(&pipeline, &views, &params, dev.grid("gather", n * dim, 256)?);
        }
    }
    Ok(())
}

/// Gathers rows on the GPU; see [`Gather`].
pub async fn gather(dev: &GpuDevice, spec: &Gather, table: &[f32], indices: &[f32]) -> Result<Vec<f32>> {
    let len = spec.check(table.len(), indices.len())?;
    if len == 0 {
        return Ok(Vec::new());
    }
    let bufs = [dev.upload("gather.table", table), dev.upload("gather.indices", indices)];
    let out = dev.output("gather.out", len);
    let mut cmds = dev.commands();
    let views = [View::whole(&bufs[0], table.len()), View::whole(&bufs[1], indices.len())];
    encode_gather(dev, &mut cmds, spec, views, View::whole(&out, len)).await?;
    cmds.submit();
    let result = dev.read(&out, len).await;
    dev.recycle(bufs.into_iter().chain([out]));
    result
}
