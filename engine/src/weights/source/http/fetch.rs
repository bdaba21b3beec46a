//! HTTP range requests in the browser, with `fetch` (window or worker).

use js_sys::{ArrayBuffer, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Request, RequestInit, Response};

use super::{Progress, RangeResponse};
use crate::error::{Error, Result};

/// `fetch`, optionally through a persistent Cache API cache.
#[derive(Clone, Default)]
pub struct HttpClient {
    /// The cache's name: files are downloaded whole once, kept, and read by
    /// slicing the cached Blob (on disk, not in memory).
    cache: Option<String>,
    /// The cached Blob of each URL read so far, so later reads only slice.
    blobs: std::rc::Rc<std::cell::RefCell<std::collections::HashMap<String, web_sys::Blob>>>,
    /// URLs the cache could not take (quota, a server without whole-file
    /// GETs): read by range requests from then on, never downloaded whole again.
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
    /// so a reload does not download again. Where there is no Cache API, or
    /// storing fails (quota, private mode), it reads from the network as usual.
    pub fn with_cache(name: &str) -> HttpClient {
        HttpClient { cache: Some(name.to_string()), ..HttpClient::default() }
    }

    /// This client, reporting what its sources read to `progress`.
    pub fn with_progress(self, progress: Progress) -> Self {
        HttpClient { progress: Some(progress), ..self }
    }

    pub(crate) fn progress(&self) -> Option<&Progress> {
        self.progress.as_ref()
    }

    /// Bytes `start..=end` from the cached copy of `url`, fetching the whole
    /// file into the cache first when it is not there; `None`: no cache.
    async fn cached_range(&self, url: &str, start: u64, end: u64, cap: usize) -> Option<RangeResponse> {
        let name = self.cache.as_deref()?;
        if self.uncached.borrow().contains(url) {
            return None;
        }
        let known = self.blobs.borrow().get(url).cloned();
        let blob = match known {
            Some(blob) => blob,
            None => match Self::cached_blob(name, url).await {
                Ok(blob) => {
                    self.blobs.borrow_mut().insert(url.to_string(), blob.clone());
                    blob
                }
                Err(why) => {
                    if let Some(why) = why {
                        let message = format!(
                            "kinema: the cache {name:?} cannot keep {url} ({why}); reading it by range requests instead"
                        );
                        web_sys::console::warn_1(&message.into());
                    }
                    self.uncached.borrow_mut().insert(url.to_string());
                    return None;
                }
            },
        };
        let total = blob.size() as u64;
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
        let part = blob.slice_with_f64_and_f64(start as f64, (end + 1) as f64).ok()?;
        let buf: ArrayBuffer = promise(Ok(part.array_buffer())).await.ok()?;
        Some(RangeResponse {
            status: 206,
            content_range: Some(format!("bytes {start}-{end}/{total}")),
            body: Uint8Array::new(&buf).to_vec(),
        })
    }

    /// The cached copy of `url` in cache `name`, fetched whole into it first
    /// when it is not there. Err: use range requests, and why, where it is
    /// worth saying (a full disk, a failing cache; not a missing Cache API or
    /// a server that answers whole-file GETs otherwise than 200).
    async fn cached_blob(name: &str, url: &str) -> std::result::Result<web_sys::Blob, Option<String>> {
        let said = |e: JsValue| Some(js_message(&e));
        let storage = cache_storage().ok_or(None)?;
        let cache: web_sys::Cache = promise(Ok(storage.open(name))).await.map_err(said)?;
        let mut hit: JsValue = JsFuture::from(cache.match_with_str(url)).await.map_err(said)?;
        if hit.is_undefined() {
            let init = RequestInit::new();
            init.set_method("GET");
            let request = Request::new_with_str_and_init(url, &init).map_err(|_| None)?;
            let resp = fetch(url, &request).await.map_err(|_| None)?;
            if resp.status() != 200 {
                return Err(None); // not cacheable whole: use range requests
            }
            // Streams the body to the cache, not into memory.
            JsFuture::from(cache.put_with_str(url, &resp)).await.map_err(said)?;
            hit = JsFuture::from(cache.match_with_str(url)).await.map_err(said)?;
        }
        let resp: Response = hit.dyn_into().map_err(|_| None)?;
        promise(resp.blob()).await.map_err(said)
    }

    /// GETs bytes `start..=end` of `url`, reading at most `cap` body bytes.
    pub(crate) async fn get_range(&self, url: &str, start: u64, end: u64, cap: usize) -> Result<RangeResponse> {
        if let Some(resp) = self.cached_range(url, start, end, cap).await {
            return Ok(resp);
        }
        let init = RequestInit::new();
        init.set_method("GET");
        let request = Request::new_with_str_and_init(url, &init).map_err(|e| js_err(url, "bad request", e))?;
        request.headers().set("Range", &format!("bytes={start}-{end}")).map_err(|e| js_err(url, "bad header", e))?;
        let resp = fetch(url, &request).await?;
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
