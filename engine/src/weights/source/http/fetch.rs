//! HTTP range requests in the browser, with `fetch` (window or worker).

use js_sys::{ArrayBuffer, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Request, RequestInit, Response};

use super::RangeResponse;
use crate::error::{Error, Result};

/// `fetch` needs no state; the type keeps the API the same as natively.
#[derive(Clone, Default)]
pub struct HttpClient {
    _private: (),
}

fn js_err(url: &str, what: &str, e: JsValue) -> Error {
    let msg = e
        .dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| e.as_string())
        .unwrap_or_else(|| format!("{e:?}"));
    Error::http(url, format!("{what}: {msg}"))
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

impl HttpClient {
    /// GETs bytes `start..=end` of `url`, reading at most `cap` body bytes.
    pub(crate) async fn get_range(&self, url: &str, start: u64, end: u64, cap: usize) -> Result<RangeResponse> {
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
