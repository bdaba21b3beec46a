//! HTTP range requests natively, with a small blocking client (`ureq`).
//!
//! Timeouts bound every phase (connect, response, each read), so a silent or
//! trickling server gives an error, never a hang.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::{Progress, RangeResponse};
use crate::error::{Error, Result};

/// A shared connection pool; cloning is cheap.
#[derive(Clone)]
pub struct HttpClient {
    agent: ureq::Agent,
    progress: Option<Progress>,
    /// Where whole files are kept ([`HttpClient::with_disk_cache`]).
    disk_cache: Option<Arc<PathBuf>>,
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
        HttpClient { agent, progress: None, disk_cache: None }
    }

    /// This client, keeping every file it opens whole under `root` (see
    /// [`super::disk_cache`]): a file is downloaded once, resumed if
    /// interrupted, and memory-mapped from disk; a second run makes no request.
    pub fn with_disk_cache(self, root: impl Into<PathBuf>) -> Self {
        HttpClient { disk_cache: Some(Arc::new(root.into())), ..self }
    }

    /// The user's cache folder for downloads: `$KINEMA_CACHE_DIR`, else
    /// `$XDG_CACHE_HOME/kinema/http`, else `$HOME/.cache/kinema/http`.
    pub fn user_cache_dir() -> Option<PathBuf> {
        let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        var("KINEMA_CACHE_DIR")
            .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("kinema/http")))
            .or_else(|| var("HOME").map(|d| d.join(".cache/kinema/http")))
    }

    /// The file at `url` from the disk cache, downloaded first if need be;
    /// `None` when this client has no disk cache.
    pub(crate) fn cached(&self, url: &str, max: u64) -> Option<Result<PathBuf>> {
        let root = self.disk_cache.as_deref()?;
        Some(super::disk_cache::fetch(&self.agent, root, url, max, self.progress.as_ref()))
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
