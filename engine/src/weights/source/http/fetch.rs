//! HTTP range requests in the browser, with `fetch` (window or worker).

use js_sys::{ArrayBuffer, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Request, RequestInit, Response};

use super::{Progress, RangeResponse};
use crate::error::{Error, Result};

/// Bytes per cached chunk: each chunk of a file is one range request and one
/// Cache API entry, so a download that stops part-way keeps the chunks it
/// finished and the next load fetches only the rest.
pub const CACHE_CHUNK: u64 = 64 << 20;

/// A cached chunk: its Blob (on disk) and the length of the whole file.
type Chunk = (web_sys::Blob, u64);

/// `fetch`, optionally through a persistent Cache API cache.
#[derive(Clone, Default)]
pub struct HttpClient {
    /// The cache's name: files are downloaded once, in chunks of `chunk`
    /// bytes ([`CACHE_CHUNK`]), kept, and read by slicing the cached Blobs
    /// (on disk, not in memory).
    cache: Option<String>,
    chunk: u64,
    /// The cached chunks read so far (Blob and file length, by URL and
    /// index), so later reads only slice.
    chunks: std::rc::Rc<std::cell::RefCell<std::collections::HashMap<(String, u64), Chunk>>>,
    /// URLs the cache could not take (quota, a server without ranges): read
    /// by plain range requests from then on, the cache not tried again.
    uncached: std::rc::Rc<std::cell::RefCell<std::collections::HashSet<String>>>,
    progress: Option<Progress>,
}

/// What a thrown JS value says: `Name: message` for errors and DOMExceptions
/// (a QuotaExceededError says which it is), else the value.
fn js_message(e: &JsValue) -> String {
    let text = |k: &str| js_sys::Reflect::get(e, &k.into()).ok().and_then(|v| v.as_string());
    match (text("name"), text("message")) {
        (Some(name), Some(message)) if name != "Error" => format!("{name}: {message}"),
        (_, Some(message)) => message,
        _ => e.as_string().unwrap_or_else(|| format!("{e:?}")),
    }
}

fn js_err(url: &str, what: &str, e: JsValue) -> Error {
    Error::http(url, format!("{what}: {}", js_message(&e)))
}

async fn fetch(url: &str, request: &Request) -> Result<Response> {
    let global = js_sys::global();
    let promise = if let Some(w) = global.dyn_ref::<web_sys::Window>() {
        w.fetch_with_request(request)
    } else if let Some(w) = global.dyn_ref::<web_sys::WorkerGlobalScope>() {
        w.fetch_with_request(request)
    } else {
        return Err(Error::http(url, "fetch is not available in this JavaScript context"));
    };
    let resp = JsFuture::from(promise).await.map_err(|e| js_err(url, "fetch failed", e))?;
    resp.dyn_into::<Response>().map_err(|e| js_err(url, "fetch returned no Response", e))
}

/// `url` resolved as `fetch` resolves it: against the document's base URL in
/// a window, against the worker's location in a worker (an absolute URL
/// stays as it is).
pub fn resolve_url(url: &str) -> Result<String> {
    let global = js_sys::global();
    let base = if let Some(w) = global.dyn_ref::<web_sys::Window>() {
        w.document().and_then(|d| d.base_uri().ok().flatten())
    } else {
        global.dyn_ref::<web_sys::WorkerGlobalScope>().map(|w| w.location().href())
    };
    let parsed = match &base {
        Some(b) => web_sys::Url::new_with_base(url, b),
        None => web_sys::Url::new(url),
    };
    let shown = base.map_or_else(String::new, |b| format!(" (against {b})"));
    parsed.map(|u| u.href()).map_err(|_| Error::Invalid(format!("{url:?}: not a URL{shown}")))
}

/// Bytes of the files kept in the Cache API cache `name` (0 when there is
/// none): each entry's `Content-Length`, else its body's size (a Blob, not
/// read into memory).
pub async fn cached_bytes(name: &str) -> Result<u64> {
    let err = |e: JsValue| js_err(name, "the Cache API", e);
    let Some(storage) = cache_storage() else { return Ok(0) };
    let has: JsValue = JsFuture::from(storage.has(name)).await.map_err(err)?;
    if has.as_bool() != Some(true) {
        return Ok(0);
    }
    let cache: web_sys::Cache = promise(Ok(storage.open(name))).await.map_err(err)?;
    let keys: js_sys::Array = promise(Ok(cache.keys())).await.map_err(err)?;
    let mut total = 0u64;
    for key in keys.iter() {
        let request: Request = key.unchecked_into();
        let hit: JsValue = JsFuture::from(cache.match_with_request(&request)).await.map_err(err)?;
        let Ok(resp) = hit.dyn_into::<Response>() else { continue };
        let declared = resp.headers().get("content-length").ok().flatten().and_then(|v| v.parse::<u64>().ok());
        total += match declared {
            Some(n) => n,
            None => promise::<web_sys::Blob>(resp.blob()).await.map_err(err)?.size() as u64,
        };
    }
    Ok(total)
}

/// Deletes the Cache API cache `name`; whether there was one.
pub async fn clear_cache(name: &str) -> Result<bool> {
    let Some(storage) = cache_storage() else { return Ok(false) };
    let deleted = JsFuture::from(storage.delete(name)).await.map_err(|e| js_err(name, "the Cache API", e))?;
    Ok(deleted.as_bool() == Some(true))
}

/// A GET of bytes `start..=end` of `url`.
fn range_request(url: &str, start: u64, end: u64) -> Result<Request> {
    let init = RequestInit::new();
    init.set_method("GET");
    let request = Request::new_with_str_and_init(url, &init).map_err(|e| js_err(url, "bad request", e))?;
    request.headers().set("Range", &format!("bytes={start}-{end}")).map_err(|e| js_err(url, "bad header", e))?;
    Ok(request)
}

/// The global scope's `caches`, if it has one.
fn cache_storage() -> Option<web_sys::CacheStorage> {
    let global = js_sys::global();
    if let Some(w) = global.dyn_ref::<web_sys::Window>() {
        w.caches().ok()
    } else {
        global.dyn_ref::<web_sys::WorkerGlobalScope>().and_then(|w| w.caches().ok())
    }
}

async fn promise<T: JsCast>(p: std::result::Result<js_sys::Promise, JsValue>) -> std::result::Result<T, JsValue> {
    Ok(JsFuture::from(p?).await?.unchecked_into())
}

impl HttpClient {
    /// A client that keeps every file it reads in the Cache API cache `name`,
    /// in chunks, so a reload does not download again and an interrupted
    /// download resumes. Where there is no Cache API, or storing fails
    /// (quota, private mode), it reads by range requests, with a warning.
    pub fn with_cache(name: &str) -> HttpClient {
        HttpClient { cache: Some(name.to_string()), chunk: CACHE_CHUNK, ..HttpClient::default() }
    }

    /// This client with cached chunks of `bytes` (at least 1 KiB) instead of
    /// [`CACHE_CHUNK`] (tests resume small files with it).
    pub fn with_cache_chunk(self, bytes: u64) -> Self {
        HttpClient { chunk: bytes.max(1024), ..self }
    }

    /// This client, reporting what its sources read to `progress`.
    pub fn with_progress(self, progress: Progress) -> Self {
        HttpClient { progress: Some(progress), ..self }
    }

    pub(crate) fn progress(&self) -> Option<&Progress> {
        self.progress.as_ref()
    }

    /// Bytes `start..=end` from the cached chunks of `url`, fetching the
    /// chunks it lacks into the cache first; `None`: no cache (or the cache
    /// cannot keep this file: read by range requests, said once).
    async fn cached_range(&self, url: &str, start: u64, end: u64, cap: usize) -> Option<RangeResponse> {
        let name = self.cache.as_deref()?;
        if self.uncached.borrow().contains(url) {
            return None;
        }
        let chunk = self.chunk;
        let chunk_of = async |i: u64| match self.chunk_blob(name, url, i).await {
            Ok(found) => Some(found),
            Err(why) => {
                if let Some(why) = why {
                    let message = format!(
                        "kinema: the cache {name:?} cannot keep {url} ({why}); reading it by range requests instead"
                    );
                    web_sys::console::warn_1(&message.into());
                }
                self.uncached.borrow_mut().insert(url.to_string());
                None
            }
        };
        let first = start / chunk;
        let (blob, total) = chunk_of(first).await?;
        if start >= total {
            return Some(RangeResponse {
                status: 416,
                content_range: Some(format!("bytes */{total}")),
                body: Vec::new(),
            });
        }
        let end = end.min(total - 1);
        if end - start + 1 > cap as u64 {
            return None;
        }
        let mut body = Vec::with_capacity((end - start + 1) as usize);
        for i in first..=end / chunk {
            let blob = if i == first { blob.clone() } else { chunk_of(i).await?.0 };
            let (lo, hi) = (start.max(i * chunk) - i * chunk, end.min((i + 1) * chunk - 1) - i * chunk + 1);
            let part = blob.slice_with_f64_and_f64(lo as f64, hi as f64).ok()?;
            let buf: ArrayBuffer = promise(Ok(part.array_buffer())).await.ok()?;
            body.extend_from_slice(&Uint8Array::new(&buf).to_vec());
        }
        Some(RangeResponse { status: 206, content_range: Some(format!("bytes {start}-{end}/{total}")), body })
    }

    /// Chunk `i` of `url` from cache `name` (its Blob, on disk, and the
    /// file's length), fetched by one range request and stored first when
    /// the cache lacks it. Err: use range requests, and why, where it is
    /// worth saying (a full disk, a failing cache; not a missing Cache API or
    /// a server without ranges).
    async fn chunk_blob(&self, name: &str, url: &str, i: u64) -> std::result::Result<Chunk, Option<String>> {
        if let Some(found) = self.chunks.borrow().get(&(url.to_string(), i)) {
            return Ok(found.clone());
        }
        let said = |e: JsValue| Some(js_message(&e));
        let storage = cache_storage().ok_or(None)?;
        let cache: web_sys::Cache = promise(Ok(storage.open(name))).await.map_err(said)?;
        // Cache keys ignore fragments: the chunk is a query parameter.
        let key = format!("{url}{}kinema-chunk={i}", if url.contains('?') { '&' } else { '?' });
        let mut hit: JsValue = JsFuture::from(cache.match_with_str(&key)).await.map_err(said)?;
        if hit.is_undefined() {
            let request = range_request(url, i * self.chunk, (i + 1) * self.chunk - 1).map_err(|_| None)?;
            let resp = fetch(url, &request).await.map_err(|_| None)?;
            let content_range = resp.headers().get("content-range").ok().flatten();
            let total = match (resp.status(), content_range) {
                (206, Some(range)) => super::parse_content_range(url, Some(&range)).map_err(|_| None)?.2,
                _ => return Err(None), // no ranges here: read as the server allows
            };
            // The chunk as a whole response of its own (the Cache API refuses
            // 206s), its body streamed to the cache, not into memory.
            let headers = web_sys::Headers::new().map_err(|_| None)?;
            headers.set("x-kinema-total", &total.to_string()).map_err(|_| None)?;
            let init = web_sys::ResponseInit::new();
            init.set_status(200);
            init.set_headers(&headers);
            let stored = Response::new_with_opt_readable_stream_and_init(resp.body().as_ref(), &init).map_err(said)?;
            JsFuture::from(cache.put_with_str(&key, &stored)).await.map_err(said)?;
            hit = JsFuture::from(cache.match_with_str(&key)).await.map_err(said)?;
        }
        let resp: Response = hit.dyn_into().map_err(|_| None)?;
        let total = resp.headers().get("x-kinema-total").ok().flatten().and_then(|t| t.parse::<u64>().ok());
        let total = total.ok_or_else(|| Some("a cached chunk without its file's length".to_string()))?;
        let blob: web_sys::Blob = promise(resp.blob()).await.map_err(said)?;
        self.chunks.borrow_mut().insert((url.to_string(), i), (blob.clone(), total));
        Ok((blob, total))
    }

    /// GETs bytes `start..=end` of `url`, reading at most `cap` body bytes.
    pub(crate) async fn get_range(&self, url: &str, start: u64, end: u64, cap: usize) -> Result<RangeResponse> {
        if let Some(resp) = self.cached_range(url, start, end, cap).await {
            return Ok(resp);
        }
        let resp = fetch(url, &range_request(url, start, end)?).await?;
        let status = resp.status();
        let content_range = resp.headers().get("content-range").ok().flatten();
        let mut body = Vec::new();
        if matches!(status, 200 | 206) {
            // Refuse an over-long body before reading it (a server that
            // ignores Range would otherwise hand us the whole checkpoint).
            let declared = resp.headers().get("content-length").ok().flatten().and_then(|v| v.parse::<u64>().ok());
            if declared.is_none_or(|n| n > cap as u64) {
                if let Some(stream) = resp.body() {
                    let _ = stream.cancel();
                }
                let why = if status == 200 {
                    "the server ignores Range requests and the file is too large to download whole"
                } else {
                    "the server's range response has no or a too large Content-Length"
                };
                return Err(Error::http(url, why));
            }
            let promise = resp.array_buffer().map_err(|e| js_err(url, "reading the response", e))?;
            let buf = JsFuture::from(promise).await.map_err(|e| js_err(url, "reading the response", e))?;
            let buf: ArrayBuffer = buf.unchecked_into();
            if buf.byte_length() as usize > cap {
                return Err(Error::http(url, "the server sent more bytes than the range asked for"));
            }
            body = Uint8Array::new(&buf).to_vec();
        }
        Ok(RangeResponse { status: status as u16, content_range, body })
    }
}
