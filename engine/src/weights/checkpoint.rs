//! A checkpoint: one safetensors file or a sharded set, on disk, at a URL or
//! in memory, with every header validated before any tensor data is read.

use std::collections::BTreeMap;

use half::f16;

use super::convert::{self, Stats, StatsAccumulator};
use super::header::{self, Header, HeaderError, TensorInfo};
use super::index::{self, IndexError};
use super::source::{HttpClient, Source, open_url, read_vec, read_windowed};
use crate::error::{Error, Result};

/// The staging window through which tensor data is read and converted.
pub const READ_WINDOW: usize = 8 << 20;

/// Names tried, in order, when a URL names a folder (it cannot be listed).
const FOLDER_CANDIDATES: [&str; 4] = [
    "diffusion_pytorch_model.safetensors.index.json",
    "model.safetensors.index.json",
    "diffusion_pytorch_model.safetensors",
    "model.safetensors",
];

/// One safetensors file of a checkpoint.
pub struct Shard {
    /// The file's name relative to the checkpoint's folder (or its full name
    /// for a single-file checkpoint).
    pub file: String,
    pub source: Box<dyn Source>,
    pub header: Header,
}

impl Shard {
    /// Reads and validates the header: the 8-byte length, then the JSON
    /// (from the same request as the length when the source is HTTP).
    pub async fn open(file: impl Into<String>, source: Box<dyn Source>) -> Result<Shard> {
        let file = file.into();
        let wrap = |source: HeaderError| Error::Header { file: file.clone(), source };
        let len = source.len();
        if len < header::LEN_PREFIX {
            return Err(wrap(HeaderError::TooShort { len }));
        }
        let mut prefix = [0u8; 8];
        source.read_at(0, &mut prefix).await?;
        let json_len = header::json_len(&prefix, len).map_err(wrap)?;
        // At most 100 MB, allocated only as the bytes arrive.
        let json = read_vec(&*source, header::LEN_PREFIX, json_len).await?;
        let header = header::parse_json(&json, len - header::LEN_PREFIX - json_len).map_err(wrap)?;
        Ok(Shard { file, source, header })
    }

    /// Total bytes of the file.
    pub fn file_len(&self) -> u64 {
        self.source.len()
    }
}

/// A tensor of a checkpoint and the shard that holds it.
#[derive(Clone, Copy)]
pub struct TensorRef<'a> {
    pub name: &'a str,
    pub info: &'a TensorInfo,
    pub shard: &'a Shard,
}

/// Where sibling files (shards) are found.
enum Base {
    #[cfg(not(target_arch = "wasm32"))]
    Dir(std::path::PathBuf),
    Url(String),
}

impl Base {
    fn display(&self, rel: &str) -> String {
        match self {
            #[cfg(not(target_arch = "wasm32"))]
            Base::Dir(d) => d.join(rel).display().to_string(),
            Base::Url(u) => format!("{u}{rel}"),
        }
    }

    /// The file `rel`; over HTTP one longer than `max` bytes is refused before it is read.
    async fn open(&self, rel: &str, client: &HttpClient, max: u64) -> Result<Box<dyn Source>> {
        match self {
            #[cfg(not(target_arch = "wasm32"))]
            Base::Dir(d) => Ok(Box::new(super::source::MmapSource::open(&d.join(rel))?)),
            Base::Url(u) => open_url(&format!("{u}{rel}"), client, max).await,
        }
    }
}

/// A validated checkpoint.
pub struct Checkpoint {
    name: String,
    shards: Vec<Shard>,
    /// Tensor name → (shard, position in that shard's header).
    tensors: BTreeMap<String, (usize, usize)>,
    /// True when opened through an index.
    sharded: bool,
    /// The index's `metadata` (sharded checkpoints only).
    index_metadata: serde_json::Map<String, serde_json::Value>,
}

fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// Splits a URL into its folder (ending in `/`) and file name, dropping any query.
fn split_url(url: &str) -> (String, String) {
    let url = url.split(['?', '#']).next().unwrap_or(url);
    match url.rfind('/') {
        Some(i) => (url[..=i].to_string(), url[i + 1..].to_string()),
        None => (String::new(), url.to_string()),
    }
}

impl Checkpoint {
    /// Opens a `.safetensors` file, a sharded folder, an index file, or an
    /// `http(s)` URL of any of these.
    pub async fn open(location: &str) -> Result<Checkpoint> {
        Checkpoint::open_with(location, &HttpClient::default()).await
    }

    /// [`Checkpoint::open`] with a given HTTP client.
    pub async fn open_with(location: &str, client: &HttpClient) -> Result<Checkpoint> {
        // In the browser a relative URL resolves against the page, as `fetch`'s does.
        #[cfg(target_arch = "wasm32")]
        let location = &super::resolve_url(location)?;
        if is_url(location) {
            let (folder, file) = split_url(location);
            let base = Base::Url(folder);
            if file.ends_with(".json") {
                return Checkpoint::open_index(location, base, &file, client).await;
            }
            if file.ends_with(".safetensors") {
                let source = open_url(location, client, u64::MAX).await?;
                return Checkpoint::from_source(location, source).await;
            }
            // A folder: try the names diffusers and transformers use.
            let base = Base::Url(format!("{}/", location.trim_end_matches('/')));
            for candidate in FOLDER_CANDIDATES {
                let url = base.display(candidate);
                let max = if candidate.ends_with(".json") { index::MAX_INDEX_LEN } else { u64::MAX };
                match open_url(&url, client, max).await {
                    Ok(source) if candidate.ends_with(".json") => {
                        return Checkpoint::open_index_source(&url, base, source, client).await;
                    }
                    Ok(source) => return Checkpoint::from_source(&url, source).await,
                    Err(Error::Http { message, .. }) if message.contains("404") => continue,
                    Err(e) => return Err(e),
                }
            }
            return Err(Error::http(location, format!("no checkpoint here (tried {})", FOLDER_CANDIDATES.join(", "))));
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            Checkpoint::open_path(std::path::Path::new(location), client).await
        }
        #[cfg(target_arch = "wasm32")]
        {
            Err(Error::Invalid(format!("{location}: in the browser a checkpoint is at an http(s) URL")))
        }
    }

    #[cfg(not(target_arch = "wasm32"))]
    async fn open_path(path: &std::path::Path, client: &HttpClient) -> Result<Checkpoint> {
        let name = path.display().to_string();
        let meta = std::fs::metadata(path).map_err(|e| Error::io(&name, e))?;
        let (dir, file) = if meta.is_dir() {
            (path.to_path_buf(), Checkpoint::find_in_dir(path)?)
        } else {
            let dir = path.parent().map(|p| p.to_path_buf()).unwrap_or_default();
            let file = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
            (dir, file)
        };
        let base = Base::Dir(dir);
        let shown = base.display(&file);
        if file.ends_with(".json") {
            Checkpoint::open_index(&shown, base, &file, client).await
        } else {
            let source = base.open(&file, client, u64::MAX).await?;
            Checkpoint::from_source(&shown, source).await
        }
    }

    /// Picks the checkpoint in a folder: its one index, else its one `.safetensors` file.
    #[cfg(not(target_arch = "wasm32"))]
    fn find_in_dir(dir: &std::path::Path) -> Result<String> {
        let name = dir.display().to_string();
        let mut indexes = Vec::new();
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| Error::io(&name, e))? {
            let entry = entry.map_err(|e| Error::io(&name, e))?;
            let file = entry.file_name().to_string_lossy().into_owned();
            if file.ends_with(".safetensors.index.json") {
                indexes.push(file);
            } else if file.ends_with(".safetensors") {
                files.push(file);
            }
        }
        indexes.sort();
        files.sort();
        match (indexes.as_slice(), files.as_slice()) {
            ([one], _) | ([], [one]) => Ok(one.clone()),
            ([], []) => Err(Error::io(name, "no .safetensors file or .safetensors.index.json in this folder")),
            ([], many) => Err(Error::io(name, format!("several .safetensors files and no index: {}", many.join(", ")))),
            (many, _) => Err(Error::io(name, format!("several index files: {}", many.join(", ")))),
        }
    }

    /// A single-file checkpoint over any source (e.g. [`super::BytesSource`]).
    pub async fn from_source(name: &str, source: Box<dyn Source>) -> Result<Checkpoint> {
        let shard = Shard::open(name, source).await?;
        let tensors = shard.header.tensors.iter().enumerate().map(|(i, t)| (t.name.clone(), (0, i))).collect();
        Ok(Checkpoint {
            name: name.to_string(),
            shards: vec![shard],
            tensors,
            sharded: false,
            index_metadata: Default::default(),
        })
    }

    async fn open_index(shown: &str, base: Base, file: &str, client: &HttpClient) -> Result<Checkpoint> {
        let source = base.open(file, client, index::MAX_INDEX_LEN).await?;
        Checkpoint::open_index_source(shown, base, source, client).await
    }

    async fn open_index_source(
        shown: &str,
        base: Base,
        source: Box<dyn Source>,
        client: &HttpClient,
    ) -> Result<Checkpoint> {
        let index_err = |source: IndexError| Error::Index { file: shown.to_string(), source };
        if source.len() > index::MAX_INDEX_LEN {
            return Err(index_err(IndexError::TooLarge { len: source.len() }));
        }
        let bytes = read_vec(&*source, 0, source.len()).await?;
        let index = index::parse_index(&bytes).map_err(index_err)?;

        let mut shards = Vec::with_capacity(index.shards.len());
        for file in &index.shards {
            let src = base
                .open(file, client, u64::MAX)
                .await
                .map_err(|e| index_err(IndexError::MissingShard { shard: file.clone(), reason: short_reason(&e) }))?;
            shards.push(Shard::open(base.display(file), src).await?);
        }
        // Lookups by name, so that opening is O(n log n) in the tensors, whatever the index holds.
        let shard_of: BTreeMap<&str, usize> = index.shards.iter().enumerate().map(|(i, f)| (f.as_str(), i)).collect();
        let positions: Vec<BTreeMap<&str, usize>> = shards
            .iter()
            .map(|sh| sh.header.tensors.iter().enumerate().map(|(i, t)| (t.name.as_str(), i)).collect())
            .collect();
        let mut tensors = BTreeMap::new();
        for (tensor, file) in &index.weight_map {
            let s = shard_of[file.as_str()]; // every mapped shard was collected
            let t = *positions[s].get(tensor.as_str()).ok_or_else(|| {
                index_err(IndexError::TensorNotInShard { tensor: tensor.clone(), shard: file.clone() })
            })?;
            tensors.insert(tensor.clone(), (s, t));
        }
        // Shards are named by their path relative to the index from here on.
        for (shard, file) in shards.iter_mut().zip(&index.shards) {
            shard.file = file.clone();
        }
        Ok(Checkpoint { name: shown.to_string(), shards, tensors, sharded: true, index_metadata: index.metadata })
    }

    /// What the user opened.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn shards(&self) -> &[Shard] {
        &self.shards
    }

    /// True for a checkpoint opened through an index.
    pub fn is_sharded(&self) -> bool {
        self.sharded
    }

    /// The index's `metadata` (empty for a single file; see each shard's header otherwise).
    pub fn index_metadata(&self) -> &serde_json::Map<String, serde_json::Value> {
        &self.index_metadata
    }

    /// Tensors, sorted by name.
    pub fn tensors(&self) -> impl Iterator<Item = TensorRef<'_>> {
        self.tensors.values().map(|&at| self.tensor_ref(at))
    }

    fn tensor_ref(&self, (s, t): (usize, usize)) -> TensorRef<'_> {
        let info = &self.shards[s].header.tensors[t];
        TensorRef { name: &info.name, info, shard: &self.shards[s] }
    }

    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// Sum of all tensors' bytes.
    pub fn total_bytes(&self) -> u64 {
        self.tensors().map(|t| t.info.byte_len()).sum()
    }

    pub fn get(&self, name: &str) -> Result<TensorRef<'_>> {
        let &at = self
            .tensors
            .get(name)
            .ok_or_else(|| Error::UnknownTensor { checkpoint: self.name.clone(), name: name.to_string() })?;
        Ok(self.tensor_ref(at))
    }

    /// Streams a tensor's raw bytes through a window of at most `window`
    /// bytes (rounded to whole elements), calling `f` with each piece in order.
    pub async fn stream(&self, name: &str, window: usize, f: impl FnMut(&[u8]) -> Result<()>) -> Result<()> {
        let t = self.get(name)?;
        let start = t.shard.header.data_start() + t.info.data_offsets.0;
        let elem = t.info.dtype.size();
        read_windowed(&*t.shard.source, start, t.info.byte_len(), (window / elem).max(1) * elem, f).await
    }

    /// A tensor's raw little-endian bytes where they lie, when its shard is in
    /// memory (memory-mapped natively, or bytes): `None` for HTTP sources.
    pub fn in_memory(&self, name: &str) -> Result<Option<&[u8]>> {
        let t = self.get(name)?;
        let Some(all) = t.shard.source.in_memory() else { return Ok(None) };
        // The header was validated against the file's length: the range is inside.
        let start = usize::try_from(t.shard.header.data_start() + t.info.data_offsets.0).ok();
        let len = usize::try_from(t.info.byte_len()).ok();
        Ok(start.zip(len).and_then(|(s, n)| all.get(s..s.checked_add(n)?)))
    }

    /// Tells the operating system that a memory-mapped tensor's pages may be
    /// dropped from this process until they are read again (from the page
    /// cache, or the file): its resident memory stops counting them. Nothing
    /// is lost — the map is read-only — and other sources ignore it.
    pub fn release(&self, name: &str) -> Result<()> {
        let t = self.get(name)?;
        t.shard.source.release(t.shard.header.data_start() + t.info.data_offsets.0, t.info.byte_len());
        Ok(())
    }

    /// Reads a tensor's raw little-endian bytes into `out` (exactly its size).
    pub async fn read_bytes(&self, name: &str, out: &mut [u8]) -> Result<()> {
        let t = self.get(name)?;
        if out.len() as u64 != t.info.byte_len() {
            return Err(self.size_error(t, out.len(), "bytes"));
        }
        let start = t.shard.header.data_start() + t.info.data_offsets.0;
        t.shard.source.read_at(start, out).await
    }

    /// Reads bytes `offset .. offset + out.len()` of a tensor's data (a few
    /// rows of a table, say), from wherever its shard lies.
    pub async fn read_bytes_at(&self, name: &str, offset: u64, out: &mut [u8]) -> Result<()> {
        let t = self.get(name)?;
        let len = t.info.byte_len();
        if offset.checked_add(out.len() as u64).is_none_or(|end| end > len) {
            return Err(Error::Invalid(format!(
                "{}: bytes {offset}..+{} of tensor {name:?}, which has {len}",
                self.name,
                out.len()
            )));
        }
        let start = t.shard.header.data_start() + t.info.data_offsets.0;
        t.shard.source.read_at(start + offset, out).await
    }

    /// Reads a floating-point tensor into `out` as f32 (exactly its element count).
    pub async fn read_f32(&self, name: &str, out: &mut [f32]) -> Result<()> {
        self.read_converted(name, out, convert::to_f32).await
    }

    /// Reads a floating-point tensor as f32 a window at a time: `f(at, values)`
    /// gets elements `at..at + values.len()`, at most `window` bytes of the
    /// file each, in order — so a tensor goes to its destination (a GPU buffer)
    /// without ever being whole in memory.
    pub async fn read_f32_windows(
        &self,
        name: &str,
        window: usize,
        f: impl FnMut(usize, &[f32]) -> Result<()>,
    ) -> Result<()> {
        self.read_windows(name, window, convert::to_f32, f).await
    }

    /// [`read_f32_windows`](Self::read_f32_windows) as f16 (a GPU buffer of f16 weights).
    pub async fn read_f16_windows(
        &self,
        name: &str,
        window: usize,
        f: impl FnMut(usize, &[f16]) -> Result<()>,
    ) -> Result<()> {
        self.read_windows(name, window, convert::to_f16, f).await
    }

    async fn read_windows<T: Copy + Default>(
        &self,
        name: &str,
        window: usize,
        conv: convert::Decoder<T>,
        mut f: impl FnMut(usize, &[T]) -> Result<()>,
    ) -> Result<()> {
        let dtype = self.get(name)?.info.dtype;
        let mut values = Vec::new();
        let mut at = 0;
        self.stream(name, window, |bytes| {
            let n = bytes.len() / dtype.size();
            values.resize(n, T::default());
            conv(dtype, bytes, &mut values)
                .map_err(|e| Error::Invalid(format!("{}: tensor {name:?}: {e}", self.name)))?;
            f(at, &values)?;
            at += n;
            Ok(())
        })
        .await
    }

    /// Reads a floating-point tensor into `out` as f16 (exactly its element count).
    pub async fn read_f16(&self, name: &str, out: &mut [f16]) -> Result<()> {
        self.read_converted(name, out, convert::to_f16).await
    }

    async fn read_converted<T>(&self, name: &str, out: &mut [T], conv: convert::Decoder<T>) -> Result<()> {
        let t = self.get(name)?;
        if out.len() as u64 != t.info.numel() {
            return Err(self.size_error(t, out.len(), "elements"));
        }
        let dtype = t.info.dtype;
        let mut at = 0;
        self.stream(name, READ_WINDOW, |bytes| {
            let n = bytes.len() / dtype.size();
            conv(dtype, bytes, &mut out[at..at + n])
                .map_err(|e| Error::Invalid(format!("{}: tensor {name:?}: {e}", self.name)))?;
            at += n;
            Ok(())
        })
        .await
    }

    /// Statistics of a tensor's values, streamed through the read window.
    pub async fn stats(&self, name: &str) -> Result<Stats> {
        let dtype = self.get(name)?.info.dtype;
        let mut acc = StatsAccumulator::default();
        self.stream(name, READ_WINDOW, |bytes| {
            acc.add(dtype, bytes);
            Ok(())
        })
        .await?;
        Ok(acc.finish())
    }

    fn size_error(&self, t: TensorRef<'_>, got: usize, unit: &str) -> Error {
        let want = if unit == "bytes" { t.info.byte_len() } else { t.info.numel() };
        Error::Invalid(format!("{}: tensor {:?} has {want} {unit} but the buffer holds {got}", self.name, t.name))
    }
}

/// An error's message without the file it names (the caller names the shard).
fn short_reason(e: &Error) -> String {
    match e {
        Error::Io { message, .. } | Error::Http { message, .. } => message.clone(),
        other => other.to_string(),
    }
}
