//! A source over bytes already in memory.

use std::sync::Arc;

use super::{ReadFuture, Source, check_range};

/// Bytes held in memory (a downloaded file, an embedded model, a test fixture).
pub struct BytesSource {
    name: String,
    bytes: Arc<[u8]>,
}

impl BytesSource {
    pub fn new(name: impl Into<String>, bytes: impl Into<Arc<[u8]>>) -> Self {
        BytesSource { name: name.into(), bytes: bytes.into() }
    }
}

impl Source for BytesSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    fn in_memory(&self) -> Option<&[u8]> {
        Some(&self.bytes)
    }

    fn read_at<'a>(&'a self, offset: u64, buf: &'a mut [u8]) -> ReadFuture<'a> {
        Box::pin(async move {
            check_range(&self.name, offset, buf.len(), self.len())?;
            let start = offset as usize;
            buf.copy_from_slice(&self.bytes[start..start + buf.len()]);
            Ok(())
        })
    }
}
