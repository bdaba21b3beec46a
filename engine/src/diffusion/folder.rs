//! Where a pipeline's files live: a local folder, an `http(s)` base URL (the
//! browser), or files held in memory (the model embedded in the CLI). The
//! pipeline reads its small JSON files whole, with a size cap, and opens its
//! checkpoints through [`Checkpoint`] — mmap, range requests or bytes.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::weights::Checkpoint;
use crate::weights::source::{BytesSource, HttpClient, Source, open_url, read_vec};

/// JSON files (manifest, programs, scheduler config) larger than this are refused.
pub const MAX_TEXT_FILE: u64 = 16 << 20;

/// A pipeline folder.
#[derive(Clone)]
pub enum Folder {
    /// A folder on disk.
    #[cfg(not(target_arch = "wasm32"))]
    Dir(std::path::PathBuf),
    /// A base URL; files are `base/relative/path`.
    Url { base: String, client: HttpClient },
    /// Files by relative path.
    Memory { name: String, files: Vec<(String, Arc<[u8]>)> },
}

impl Folder {
    /// A URL (`http://…`, `https://…`) or, natively, a path.
    pub fn at(location: &str) -> Result<Folder> {
        Folder::at_with(location, HttpClient::default())
    }

    /// [`Folder::at`], reading a URL through `client` (e.g. one with a disk
    /// cache and a progress report).
    pub fn at_with(location: &str, client: HttpClient) -> Result<Folder> {
        #[cfg(target_arch = "wasm32")]
        let location = &crate::weights::resolve_url(location)?;
        if location.starts_with("http://") || location.starts_with("https://") {
            let base = format!("{}/", location.trim_end_matches('/'));
            return Ok(Folder::Url { base, client });
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            Ok(Folder::Dir(location.into()))
        }
        #[cfg(target_arch = "wasm32")]
        {
            Err(Error::Invalid(format!("{location}: in the browser a pipeline is at an http(s) URL")))
        }
    }

    /// How the folder is shown in messages.
    pub fn name(&self) -> String {
        match self {
            #[cfg(not(target_arch = "wasm32"))]
            Folder::Dir(p) => p.display().to_string(),
            Folder::Url { base, .. } => base.trim_end_matches('/').to_string(),
            Folder::Memory { name, .. } => name.clone(),
        }
    }

    fn shown(&self, rel: &str) -> String {
        format!("{}/{rel}", self.name())
    }

    fn check(&self, rel: &str) -> Result<()> {
        crate::weights::index::check_relative_path(rel)
            .map_err(|e| Error::Invalid(format!("{}: {rel:?}: {e}", self.name())))
    }

    fn memory(&self, rel: &str) -> Option<Result<Arc<[u8]>>> {
        let Folder::Memory { files, .. } = self else { return None };
        let rel = rel.trim_end_matches('/');
        Some(
            files
                .iter()
                .find(|(p, _)| p == rel)
                .map(|(_, b)| b.clone())
                .ok_or_else(|| Error::io(self.shown(rel), "no such file")),
        )
    }

    /// The whole of a small file.
    pub async fn read(&self, rel: &str) -> Result<Vec<u8>> {
        self.check(rel)?;
        let too_big = |len: u64| {
            Error::Invalid(format!(
                "{}: {len} bytes, over the {} MiB limit for this file",
                self.shown(rel),
                MAX_TEXT_FILE >> 20
            ))
        };
        if let Some(bytes) = self.memory(rel) {
            let bytes = bytes?;
            return if bytes.len() as u64 > MAX_TEXT_FILE {
                Err(too_big(bytes.len() as u64))
            } else {
                Ok(bytes.to_vec())
            };
        }
        match self {
            #[cfg(not(target_arch = "wasm32"))]
            Folder::Dir(dir) => {
                let p = dir.join(rel);
                let shown = p.display().to_string();
                let meta = std::fs::metadata(&p).map_err(|e| Error::io(&shown, e))?;
                if meta.len() > MAX_TEXT_FILE {
                    return Err(too_big(meta.len()));
                }
                std::fs::read(&p).map_err(|e| Error::io(shown, e))
            }
            Folder::Url { base, client } => {
                // A file over the cap is refused before it is downloaded.
                let source = open_url(&format!("{base}{rel}"), client, MAX_TEXT_FILE).await?;
                read_vec(&*source, 0, source.len()).await
            }
            Folder::Memory { .. } => unreachable!("handled above"),
        }
    }

    /// A small UTF-8 file.
    pub async fn read_text(&self, rel: &str) -> Result<String> {
        String::from_utf8(self.read(rel).await?)
            .map_err(|_| Error::Invalid(format!("{}: not UTF-8 text", self.shown(rel))))
    }

    /// A checkpoint: a `.safetensors` file, an index, or (on disk and over
    /// HTTP) a folder holding one.
    pub async fn checkpoint(&self, rel: &str) -> Result<Checkpoint> {
        self.check(rel)?;
        if let Some(bytes) = self.memory(rel) {
            let source: Box<dyn Source> = Box::new(BytesSource::new(self.shown(rel), bytes?));
            return Checkpoint::from_source(&self.shown(rel), source).await;
        }
        match self {
            #[cfg(not(target_arch = "wasm32"))]
            Folder::Dir(dir) => Checkpoint::open(&dir.join(rel).display().to_string()).await,
            Folder::Url { base, client } => Checkpoint::open_with(&format!("{base}{rel}"), client).await,
            Folder::Memory { .. } => unreachable!("handled above"),
        }
    }
}
