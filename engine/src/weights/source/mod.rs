//! Where checkpoint bytes come from: one trait, three homes.
//!
//! - [`BytesSource`]: bytes already in memory;
//! - [`MmapSource`]: a memory-mapped file (native);
//! - [`HttpSource`]: HTTP range requests, by a blocking client natively and by
//!   `fetch` in the browser.
//!
//! A source knows its length and answers reads of byte ranges. The trait is
//! async because the browser's `fetch` is; native sources finish at once.

use std::future::Future;
use std::pin::Pin;

use crate::error::Result;

mod bytes;
pub use bytes::BytesSource;

#[cfg(not(target_arch = "wasm32"))]
mod mmap;
#[cfg(not(target_arch = "wasm32"))]
pub use mmap::MmapSource;

pub mod http;
pub use http::{HttpClient, HttpSource, Progress, open_url};
#[cfg(target_arch = "wasm32")]
pub use http::{cached_bytes, clear_cache, resolve_url};

/// A boxed future of a read, so that sources of different kinds share one
/// `dyn Source` (not `Send`: browser futures are not).
pub type ReadFuture<'a> = Pin<Box<dyn Future<Output = Result<()>> + 'a>>;

/// A random-access byte source.
pub trait Source {
    /// The path or URL, for messages.
    fn name(&self) -> &str;
    /// Total length in bytes.
    fn len(&self) -> u64;
    /// True when the source holds no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Fills `buf` with bytes `offset .. offset + buf.len()`; a range past the
    /// end is an error, never a short read.
    fn read_at<'a>(&'a self, offset: u64, buf: &'a mut [u8]) -> ReadFuture<'a>;
    /// All of the source's bytes, when they are already addressable in memory
    /// (a memory map, bytes in memory): then tensors are read in place, never copied.
    fn in_memory(&self) -> Option<&[u8]> {
        None
    }
    /// Bytes `offset .. offset + len` will not be read for a while: a memory
    /// map may drop their pages (they come back when read). A hint; most
    /// sources ignore it.
    fn release(&self, _offset: u64, _len: u64) {}
}

/// The most a [`read_vec`] allocates ahead of the bytes it has received.
pub const READ_VEC_STEP: u64 = 16 << 20;

/// Reads `len` bytes at `offset` into a new vector that grows only as bytes
/// arrive, [`READ_VEC_STEP`] at a time: a length claimed by a server (or a
/// header) can never make us allocate much more than the bytes it really sent.
pub async fn read_vec(source: &dyn Source, offset: u64, len: u64) -> Result<Vec<u8>> {
    check_range(source.name(), offset, usize::try_from(len).unwrap_or(usize::MAX), source.len())?;
    let mut out = Vec::new();
    while (out.len() as u64) < len {
        let start = out.len();
        let n = (len - start as u64).min(READ_VEC_STEP) as usize;
        out.resize(start + n, 0);
        source.read_at(offset + start as u64, &mut out[start..]).await?;
    }
    Ok(out)
}

/// Reads `len` bytes at `offset` through one buffer of at most `window` bytes,
/// calling `f` with each piece in order: the bounded staging window every
/// streamed read (tensor data, digests) goes through.
pub async fn read_windowed(
    source: &dyn Source,
    offset: u64,
    len: u64,
    window: usize,
    mut f: impl FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    let window = window.max(1) as u64;
    let mut buf = vec![0u8; window.min(len) as usize];
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(window) as usize;
        source.read_at(offset + done, &mut buf[..n]).await?;
        f(&buf[..n])?;
        done += n as u64;
    }
    Ok(())
}

/// Checks that `offset .. offset + len` lies inside a source of `total` bytes.
pub(crate) fn check_range(name: &str, offset: u64, len: usize, total: u64) -> Result<()> {
    match offset.checked_add(len as u64) {
        Some(end) if end <= total => Ok(()),
        _ => Err(crate::Error::io(
            name,
            format!("read of {len} bytes at offset {offset} runs past the end ({total} bytes)"),
        )),
    }
}
