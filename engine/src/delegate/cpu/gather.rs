//! Row gather on the host: rows of a table read where it lies, in its stored
//! dtype (a memory-mapped bf16 or int8 token table is never widened whole).

use crate::delegate::{Gather, Operand};
use crate::error::{Error, Result};
use crate::weights::{convert, quant};

/// `out[i] = table[indices[i]]`; see [`Gather`]. An index that is not a row
/// of the table is an error.
pub fn gather(spec: &Gather, table: Operand, indices: &[f32]) -> Result<Vec<f32>> {
    let mut out = vec![0f32; spec.check(table.len(), indices.len())?];
    gather_into(spec, table, indices, &mut out)?;
    Ok(out)
}

/// [`gather`] into `out` (the gathered length; overwritten, never read).
pub fn gather_into(spec: &Gather, table: Operand, indices: &[f32], out: &mut [f32]) -> Result<()> {
    let len = spec.check(table.len(), indices.len())?;
    super::check_out("gather", out, len)?;
    let dim = spec.dim;
    if dim == 0 {
        return Ok(());
    }
    for (i, (&v, row_out)) in indices.iter().zip(out.chunks_exact_mut(dim)).enumerate() {
        read_row(table, spec.row(i, v)?, dim, row_out)?;
    }
    Ok(())
}

/// Row `row` (of `dim` values) of `table`, widened to f32.
fn read_row(table: Operand, row: usize, dim: usize, out: &mut [f32]) -> Result<()> {
    let bad = |e: &dyn std::fmt::Display| Error::Invalid(format!("gather: table row {row}: {e}"));
    match table {
        Operand::F32(t) => out.copy_from_slice(&t[row * dim..][..dim]),
        Operand::Half(h, bytes) => {
            convert::to_f32(h.dtype(), &bytes[row * dim * 2..][..dim * 2], out).map_err(|e| bad(&e))?
        }
        Operand::Int8 { q, scales } => {
            let s = scales.get(row).ok_or_else(|| bad(&"no scale"))?;
            quant::dequantize_int8(&q[row * dim..][..dim], std::slice::from_ref(s), 0, dim, out)
        }
        Operand::Int4 { q, scales, group } => {
            let groups = dim.div_ceil(group.max(1));
            let s = scales.get(row * groups..(row + 1) * groups).ok_or_else(|| bad(&"no scales"))?;
            if !dim.is_multiple_of(2) {
                return Err(bad(&"an int4 row of odd length"));
            }
            quant::dequantize_int4(&q[row * dim / 2..][..dim / 2], s, 0, dim, group, out)
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delegate::Half;

    #[test]
    fn gathers_rows_in_every_stored_dtype() {
        let (rows, dim) = (5, 8);
        let table = crate::random::uniform(rows * dim, 3);
        let indices = [4.0, 0.0, 4.0, 2.0];
        let spec = Gather { rows, dim, count: indices.len() };
        let want: Vec<f32> = indices.iter().flat_map(|&i| table[i as usize * dim..][..dim].to_vec()).collect();
        assert_eq!(gather(&spec, Operand::F32(&table), &indices).unwrap(), want);

        let bf: Vec<u8> = table.iter().flat_map(|&v| half::bf16::from_f32(v).to_le_bytes()).collect();
        let got = gather(&spec, Operand::Half(Half::Bf16, &bf), &indices).unwrap();
        assert_eq!(got.len(), want.len());
        assert!(got.iter().zip(&want).all(|(g, w)| (g - w).abs() <= w.abs() / 128.0));

        let (q, s) = quant::quantize_int8(&table, rows);
        let q8: &[u8] = bytemuck::cast_slice(&q);
        let mut wide = vec![0f32; table.len()];
        quant::dequantize_int8(q8, &s, 0, dim, &mut wide);
        let want8: Vec<f32> = indices.iter().flat_map(|&i| wide[i as usize * dim..][..dim].to_vec()).collect();
        assert_eq!(gather(&spec, Operand::Int8 { q: q8, scales: &s }, &indices).unwrap(), want8);

        let (q4, s4) = quant::quantize_int4(&table, rows, 8);
        quant::dequantize_int4(&q4, &s4, 0, dim, 8, &mut wide);
        let want4: Vec<f32> = indices.iter().flat_map(|&i| wide[i as usize * dim..][..dim].to_vec()).collect();
        assert_eq!(gather(&spec, Operand::Int4 { q: &q4, scales: &s4, group: 8 }, &indices).unwrap(), want4);
    }

    #[test]
    fn an_index_outside_the_table_is_an_error() {
        let spec = Gather { rows: 3, dim: 2, count: 1 };
        let table = [0f32; 6];
        for bad in [3.0, -1.0, 1.5, f32::NAN, f32::INFINITY] {
            let err = gather(&spec, Operand::F32(&table), &[bad]).unwrap_err().to_string();
            assert!(err.contains("not a row of the table's 3 rows"), "{err}");
        }
        assert!(gather(&spec, Operand::F32(&table[..4]), &[0.0]).is_err());
    }
}
