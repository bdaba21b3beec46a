//! HTTP range requests natively, with a small blocking client (`ureq`).
//!
//! Timeouts bound every phase (connect, response, each read), so a silent or
//! trickling server gives an error, never a hang.

use std::io::Read;
use std::time::Duration;

use super::{Progress, RangeResponse};
use crate::error::{Error, Result};

/// A shared connection pool; cloning is cheap.
#[derive(Clone)]
pub struct HttpClient {
    agent: ureq::Agent,
    progress: Option<Progress>,
}

impl Default for HttpClient {
    fn default() -> Self {
        HttpClient::with_timeout(Duration::from_secs(30))
    }
}

impl HttpClient {
    /// The browser's cached client ([`HttpClient::with_cache`] there); natively
    /// there is no Cache API, so this is the default client (range requests).
    pub fn with_cache(_name: &str) -> Self {
        HttpClient::default()
    }

    /// A client whose connect, response and per-read waits are each bounded by `timeout`.
    pub fn with_timeout(timeout: Duration) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(timeout))
            .timeout_recv_response(Some(timeout))
            .timeout_per_read(Some(timeout))
            .user_agent(concat!("kinema/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        HttpClient { agent, progress: None }
    }

    /// This client, reporting what its sources read to `progress`.
    pub fn with_progress(self, progress: Progress) -> Self {
        HttpClient { progress: Some(progress), ..self }
    }

    pub(crate) fn progress(&self) -> Option<&Progress> {
        self.progress.as_ref()
    }

    /// GETs bytes `start..=end` of `url`, reading at most `cap` body bytes.
    pub(crate) async fn get_range(&self, url: &str, start: u64, end: u64, cap: usize) -> Result<RangeResponse> {
        let resp = self
            .agent
            .get(url)
            .header("Range", format!("bytes={start}-{end}"))
            .header("Accept-Encoding", "identity")
            .call()
            .map_err(|e| Error::http(url, e.to_string()))?;
        let status = resp.status().as_u16();
        let content_range = resp.headers().get("content-range").and_then(|v| v.to_str().ok()).map(str::to_string);
        let mut body = Vec::new();
        if matches!(status, 200 | 206) {
            let reader = resp.into_body().into_reader();
            reader
                .take(cap as u64 + 1)
                .read_to_end(&mut body)
                .map_err(|e| Error::http(url, format!("reading the response: {e}")))?;
            if body.len() > cap {
                let why = if status == 200 {
                    "the server ignores Range requests and the file is too large to download whole"
                } else {
                    "the server sent more bytes than the range asked for"
                };
                return Err(Error::http(url, why));
            }
        }
        Ok(RangeResponse { status, content_range, body })
    }
}
