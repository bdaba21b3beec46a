//! A source over HTTP range requests.
//!
//! Opening makes one request for the first [`PREFIX_LEN`] bytes, which tells
//! the file's length (from `Content-Range`) and usually holds the whole
//! safetensors header; those bytes are kept, so reading a header of up to
//! 16 MiB ([`super::READ_VEC_STEP`]) costs at most one more request. After that, every read is one `Range` request for
//! exactly the bytes asked for. A server that ignores `Range` is refused
//! rather than allowed to send a whole checkpoint, unless the file is small
//! enough to fit the prefix anyway.

#[cfg(not(target_arch = "wasm32"))]
pub mod disk_cache;
#[cfg(not(target_arch = "wasm32"))]
mod native;
#[cfg(not(target_arch = "wasm32"))]
use native as transport;

#[cfg(target_arch = "wasm32")]
mod fetch;
#[cfg(target_arch = "wasm32")]
use fetch as transport;

#[cfg(target_arch = "wasm32")]
pub use fetch::{cached_bytes, clear_cache, resolve_url};
pub use transport::HttpClient;

use std::sync::atomic::{AtomicU64, Ordering};

use super::{ReadFuture, Source, check_range};
use crate::error::{Error, Result};

/// Bytes fetched (and kept) by the first request.
pub const PREFIX_LEN: u64 = 64 * 1024;

/// What a transport hands back for one request.
pub(crate) struct RangeResponse {
    pub status: u16,
    /// The raw `Content-Range` header, if any.
    pub content_range: Option<String>,
    /// The body: at most the cap the request was made with.
    pub body: Vec<u8>,
}

/// Where a client reports its transfers: `report(loaded, total)` after each
/// read, `loaded` counting the bytes its sources have read (network or
/// cache) and `total` the sizes of the files they have opened so far.
#[derive(Clone)]
pub struct Progress(Shared<ProgressState>);

struct ProgressState {
    loaded: AtomicU64,
    total: AtomicU64,
    report: Box<Report>,
}

/// The callback a [`Progress`] calls; in the browser it may hold a JS function.
#[cfg(not(target_arch = "wasm32"))]
pub type Report = dyn Fn(u64, u64) + Send + Sync;
/// The callback a [`Progress`] calls; in the browser it may hold a JS function.
#[cfg(target_arch = "wasm32")]
pub type Report = dyn Fn(u64, u64);

#[cfg(not(target_arch = "wasm32"))]
type Shared<T> = std::sync::Arc<T>;
#[cfg(target_arch = "wasm32")]
type Shared<T> = std::rc::Rc<T>;

impl Progress {
    /// Reports to `report(loaded, total)`.
    pub fn new(report: Box<Report>) -> Progress {
        Progress(Shared::new(ProgressState { loaded: AtomicU64::new(0), total: AtomicU64::new(0), report }))
    }

    fn add(&self, loaded: u64, opened: u64) {
        let l = self.0.loaded.fetch_add(loaded, Ordering::Relaxed) + loaded;
        let t = self.0.total.fetch_add(opened, Ordering::Relaxed) + opened;
        (self.0.report)(l, t);
    }
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (l, t) = (self.0.loaded.load(Ordering::Relaxed), self.0.total.load(Ordering::Relaxed));
        write!(f, "Progress({l}/{t})")
    }
}

/// The error for a file of `len` bytes where at most `max` are allowed.
fn too_long(url: &str, len: u64, max: u64) -> Error {
    Error::http(url, format!("{len} bytes, over the {max}-byte limit for this file"))
}

/// The file at `url` as a source: natively, from the client's disk cache when
/// it has one (downloaded whole, once, then memory-mapped); else read by range
/// requests. A file longer than `max` bytes is refused before it is read.
pub async fn open_url(url: &str, client: &HttpClient, max: u64) -> Result<Box<dyn Source>> {
    #[cfg(not(target_arch = "wasm32"))]
    if let Some(path) = client.cached(url, max) {
        return Ok(Box::new(super::MmapSource::open(&path?)?));
    }
    let source = HttpSource::open(url, client).await?;
    if source.len() > max {
        return Err(too_long(url, source.len(), max));
    }
    Ok(Box::new(source))
}

/// A file at a URL, read by byte ranges.
pub struct HttpSource {
    url: String,
    client: HttpClient,
    len: u64,
    prefix: Vec<u8>,
}

impl HttpSource {
    /// Opens `url` with one request for its first bytes.
    pub async fn open(url: &str, client: &HttpClient) -> Result<HttpSource> {
        #[cfg(target_arch = "wasm32")]
        let url = &resolve_url(url)?;
        let resp = client.get_range(url, 0, PREFIX_LEN - 1, PREFIX_LEN as usize).await?;
        let (len, prefix) = match resp.status {
            206 => {
                let (start, end, total) = parse_content_range(url, resp.content_range.as_deref())?;
                let expect = end.checked_sub(start).map(|n| n + 1);
                if start != 0 || expect != Some(resp.body.len() as u64) || end >= total {
                    return Err(Error::http(url, "the first range response does not match its Content-Range"));
                }
                (total, resp.body)
            }
            // The server ignored `Range`; the transport capped the body at the
            // prefix length, so this is the whole (small) file.
            200 => (resp.body.len() as u64, resp.body),
            // An empty file has no byte 0.
            416 if resp.content_range.as_deref().is_some_and(|r| r.trim() == "bytes */0") => (0, Vec::new()),
            404 => return Err(Error::http(url, "not found (HTTP 404)")),
            s => return Err(Error::http(url, format!("unexpected HTTP status {s}"))),
        };
        if let Some(p) = client.progress() {
            p.add(prefix.len() as u64, len);
        }
        Ok(HttpSource { url: url.to_string(), client: client.clone(), len, prefix })
    }

    async fn fetch(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        check_range(&self.url, offset, buf.len(), self.len)?;
        if buf.is_empty() {
            return Ok(());
        }
        let end = offset + buf.len() as u64;
        if end <= self.prefix.len() as u64 {
            buf.copy_from_slice(&self.prefix[offset as usize..end as usize]);
            return Ok(());
        }
        let resp = self.client.get_range(&self.url, offset, end - 1, buf.len()).await?;
        if resp.status != 206 {
            return Err(Error::http(
                &self.url,
                format!("range request for bytes {offset}-{} answered with HTTP {}", end - 1, resp.status),
            ));
        }
        let (s, e, total) = parse_content_range(&self.url, resp.content_range.as_deref())?;
        if total != self.len {
            return Err(Error::http(
                &self.url,
                format!("the file changed on the server ({} → {total} bytes)", self.len),
            ));
        }
        if s != offset || e != end - 1 || resp.body.len() != buf.len() {
            return Err(Error::http(
                &self.url,
                format!("asked for bytes {offset}-{}, got {s}-{e} with {} body bytes", end - 1, resp.body.len()),
            ));
        }
        buf.copy_from_slice(&resp.body);
        if let Some(p) = self.client.progress() {
            // Only the bytes past the prefix are new: those were counted at open.
            p.add(end - offset.max(self.prefix.len() as u64), 0);
        }
        Ok(())
    }
}

impl Source for HttpSource {
    fn name(&self) -> &str {
        &self.url
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn read_at<'a>(&'a self, offset: u64, buf: &'a mut [u8]) -> ReadFuture<'a> {
        Box::pin(self.fetch(offset, buf))
    }
}

/// Parses `bytes START-END/TOTAL` (a known total is required).
fn parse_content_range(url: &str, header: Option<&str>) -> Result<(u64, u64, u64)> {
    let bad = || Error::http(url, format!("missing or malformed Content-Range: {header:?}"));
    let h = header.ok_or_else(bad)?.trim();
    let rest = h.strip_prefix("bytes ").ok_or_else(bad)?;
    let (range, total) = rest.split_once('/').ok_or_else(bad)?;
    let (s, e) = range.split_once('-').ok_or_else(bad)?;
    let num = |t: &str| t.trim().parse::<u64>().map_err(|_| bad());
    let (s, e, total) = (num(s)?, num(e)?, num(total)?);
    if s > e || e >= total {
        return Err(bad());
    }
    Ok((s, e, total))
}

#[cfg(test)]
mod tests {
    use super::parse_content_range;

    #[test]
    fn content_range() {
        assert_eq!(parse_content_range("u", Some("bytes 0-9/100")).unwrap(), (0, 9, 100));
        for bad in ["bytes 0-9/*", "bytes 9-0/100", "bytes 0-100/100", "items 0-1/2", "bytes 0-x/2", ""] {
            assert!(parse_content_range("u", Some(bad)).is_err(), "{bad}");
        }
        assert!(parse_content_range("u", None).is_err());
    }
}
