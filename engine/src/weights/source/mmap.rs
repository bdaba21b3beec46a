//! A source over a memory-mapped file: the operating system pages data in on
//! demand, so opening a checkpoint costs nothing and reading a tensor touches
//! only its pages.

use std::fs::File;

use memmap2::Mmap;

use super::{ReadFuture, Source, check_range};
use crate::error::{Error, Result};

pub struct MmapSource {
    name: String,
    map: Option<Mmap>,
}

impl MmapSource {
    pub fn open(path: &std::path::Path) -> Result<Self> {
        let name = path.display().to_string();
        // Checked before opening: opening a FIFO would block until a writer comes.
        if !std::fs::metadata(path).map_err(|e| Error::io(&name, e))?.is_file() {
            return Err(Error::io(&name, "not a regular file"));
        }
        let file = File::open(path).map_err(|e| Error::io(&name, e))?;
        let meta = file.metadata().map_err(|e| Error::io(&name, e))?;
        // An empty file cannot be mapped; it is still a (too short) source.
        let map = if meta.len() == 0 {
            None
        } else {
            // SAFETY: the map is read-only. As with every mmap-based loader
            // (safetensors, candle), a file truncated by another process while
            // mapped can fault; checkpoints are not expected to change under us.
            Some(unsafe { Mmap::map(&file) }.map_err(|e| Error::io(&name, e))?)
        };
        Ok(MmapSource { name, map })
    }

    fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }
}

impl Source for MmapSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn len(&self) -> u64 {
        self.bytes().len() as u64
    }

    fn in_memory(&self) -> Option<&[u8]> {
        Some(self.bytes())
    }

    /// Drops the range's whole 4 KiB pages from the map (`MADV_DONTNEED`); the
    /// pages a neighbouring tensor shares are kept (on a system of larger pages,
    /// a shared page may go too: it comes back when read).
    fn release(&self, offset: u64, len: u64) {
        #[cfg(unix)]
        if let Some(map) = &self.map {
            let page = 4096u64;
            let start = offset.div_ceil(page) * page;
            let end = offset.saturating_add(len).min(map.len() as u64) / page * page;
            if end > start {
                // SAFETY: the map is read-only and private: dropped pages read
                // back the file's bytes, the same as every slice of it holds.
                // A failure leaves the pages where they are, which is harmless.
                let _ = unsafe {
                    map.unchecked_advise_range(
                        memmap2::UncheckedAdvice::DontNeed,
                        start as usize,
                        (end - start) as usize,
                    )
                };
            }
        }
    }

    fn read_at<'a>(&'a self, offset: u64, buf: &'a mut [u8]) -> ReadFuture<'a> {
        Box::pin(async move {
            check_range(&self.name, offset, buf.len(), self.len())?;
            let start = offset as usize;
            buf.copy_from_slice(&self.bytes()[start..start + buf.len()]);
            Ok(())
        })
    }
}
