//! Row gather (the `embedding` op): `out[i] = table[index[i]]`, a row of
//! `dim` values per index. Indices travel as f32 holding whole numbers.

use crate::error::{Error, Result};

/// A gather of `count` rows of `dim` values from a table of `rows` rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gather {
    pub rows: usize,
    pub dim: usize,
    pub count: usize,
}

impl Gather {
    /// Checks lengths; returns the output length.
    pub fn check(&self, table: usize, indices: usize) -> Result<usize> {
        let bad = |why: String| Err(Error::Invalid(format!("gather {self:?}: {why}")));
        if self.rows.checked_mul(self.dim) != Some(table) {
            return bad(format!("the table has {table} elements"));
        }
        if indices != self.count {
            return bad(format!("{indices} indices"));
        }
        self.count.checked_mul(self.dim).map_or_else(|| bad("too many elements".into()), Ok)
    }

    /// Index `at` (its value `v`) as a row of the table: a whole number in
    /// `0..rows`, else an error naming it.
    pub fn row(&self, at: usize, v: f32) -> Result<usize> {
        if v.fract() == 0.0 && v >= 0.0 && (v as usize) < self.rows {
            return Ok(v as usize);
        }
        Err(Error::Invalid(format!("gather: index {at} is {v}, not a row of the table's {} rows", self.rows)))
    }
}
