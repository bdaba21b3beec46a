//! A disk cache of files at URLs (native): a file is downloaded whole, once,
//! into `ROOT/<scheme>/<host>/<path>` and memory-mapped from there, so a
//! pipeline at a URL runs like a local folder and a second run downloads
//! nothing (it makes no request at all).
//!
//! A download streams into `FILE.part` beside its home (the server's length
//! and `ETag` in `FILE.part.meta`), under an exclusive lock on the `.part`
//! file so that two processes never write one file; an interrupted download
//! (a dropped connection, a killed process) resumes where it stopped with a
//! `Range: bytes=N-` request (`If-Range` on the `ETag`, so a file that changed
//! on the server starts over). Failures that may pass (transport errors,
//! 5xx, a short body) are retried: at once after a response that brought
//! bytes, with backoff after one that did not; [`MAX_FAILURES`] in a row
//! without a byte of progress is an error. Only a complete file is renamed
//! into place, so whatever sits at a file's home is whole. A 404 is
//! remembered under `ROOT/.absent/…`, so probing a folder for the names a
//! checkpoint may have costs no request the second time.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Progress, too_long};
use crate::error::{Error, Result};

/// Failures in a row, without progress in between, before a download gives up.
pub const MAX_FAILURES: u32 = 5;

/// Bytes read from the network per write to the file.
const CHUNK: usize = 1 << 20;

/// Where `url` lives under `root`: `scheme/host[_port]/path…`, every segment
/// kept to `[A-Za-z0-9._-]` (anything else percent-encoded, `.` and `..`
/// encoded too), and a query, if any, folded into the last segment; so no URL
/// can name a path outside `root`.
pub fn path_of(root: &Path, url: &str) -> Result<PathBuf> {
    let bad = |why: &str| Error::http(url, format!("cannot be cached: {why}"));
    let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("not an absolute URL"))?;
    let rest = rest.split('#').next().unwrap_or(rest);
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let mut segments: Vec<String> = rest.split('/').map(encode).collect();
    if segments.len() < 2 || segments.last().is_some_and(String::is_empty) {
        return Err(bad("the URL names a folder, not a file"));
    }
    if let (Some(q), Some(last)) = (query, segments.last_mut()) {
        last.push_str("%3F");
        last.push_str(&encode(q));
    }
    let mut path = root.join(encode(scheme));
    for s in segments.iter().filter(|s| !s.is_empty()) {
        path.push(s);
    }
    Ok(path)
}

fn encode(segment: &str) -> String {
    if segment == "." || segment == ".." {
        return segment.replace('.', "%2E");
    }
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-' => out.push(b as char),
            // A port's colon, kept readable.
            b':' => out.push('_'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The same name with `suffix` appended (`a.safetensors` → `a.safetensors.part`).
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// A failure, and whether trying again may help.
struct Failure {
    error: Error,
    retry: bool,
    /// The server does not have the file (remembered under `.absent/`).
    absent: bool,
}

impl Failure {
    fn retry(error: Error) -> Failure {
        Failure { error, retry: true, absent: false }
    }
    fn fatal(error: Error) -> Failure {
        Failure { error, retry: false, absent: false }
    }
}

/// The file at `url` on disk, downloaded if it is not there yet; its length
/// must not exceed `max` (checked before any body byte is written).
pub(super) fn fetch(
    agent: &ureq::Agent,
    root: &Path,
    url: &str,
    max: u64,
    progress: Option<&Progress>,
) -> Result<PathBuf> {
    let home = path_of(root, url)?;
    let absent = path_of(&root.join(".absent"), url)?;
    if let Ok(meta) = std::fs::metadata(&home)
        && meta.is_file()
    {
        if meta.len() > max {
            return Err(too_long(url, meta.len(), max));
        }
        if let Some(p) = progress {
            p.add(meta.len(), meta.len());
        }
        return Ok(home);
    }
    if absent.is_file() {
        return Err(not_found(url));
    }
    let shown = home.display().to_string();
    let io = |e: std::io::Error| Error::io(&shown, e);
    std::fs::create_dir_all(home.parent().unwrap_or(root)).map_err(io)?;
    let part_path = with_suffix(&home, ".part");
    let mut part =
        OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&part_path).map_err(io)?;
    // Another process downloading the same file: wait for it, then use its file.
    part.lock().map_err(io)?;
    if home.is_file() {
        drop(part);
        return fetch(agent, root, url, max, progress);
    }
    let meta_path = with_suffix(&home, ".part.meta");
    let mut download = Download {
        url,
        part: &mut part,
        meta_path: &meta_path,
        shown: &shown,
        known: read_meta(&meta_path),
        reported: false,
        counted: 0,
        progress,
    };
    let mut failures = 0;
    loop {
        let before = download.have()?;
        match download.attempt(agent, max) {
            Ok(()) => break,
            Err(Failure { error, retry, absent: gone }) => {
                if gone {
                    let _ = std::fs::create_dir_all(absent.parent().unwrap_or(root));
                    let _ = File::create(&absent);
                }
                if !retry {
                    drop(part);
                    let _ = std::fs::remove_file(&part_path);
                    let _ = std::fs::remove_file(&meta_path);
                    return Err(error);
                }
                if download.have()? > before {
                    // Cut off after some bytes: ask for the rest at once.
                    failures = 0;
                    continue;
                }
                failures += 1;
                if failures >= MAX_FAILURES {
                    return Err(Error::http(
                        url,
                        format!(
                            "{failures} attempts failed without progress (the last: {error}); {} bytes are kept in \
                             {} and the next run resumes from there",
                            download.have()?,
                            part_path.display()
                        ),
                    ));
                }
                std::thread::sleep(Duration::from_millis(250 << (failures - 1).min(5)));
            }
        }
    }
    part.sync_all().map_err(io)?;
    drop(part);
    std::fs::rename(&part_path, &home).map_err(io)?;
    let _ = std::fs::remove_file(&meta_path);
    Ok(home)
}

/// The server's length and `ETag` for a file being downloaded.
#[derive(Clone, PartialEq, Debug)]
struct Known {
    total: u64,
    etag: Option<String>,
}

fn read_meta(path: &Path) -> Option<Known> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut lines = text.lines();
    let total = lines.next()?.trim().parse().ok()?;
    let etag = lines.next().map(str::to_string).filter(|e| !e.is_empty());
    Some(Known { total, etag })
}

struct Download<'a> {
    url: &'a str,
    part: &'a mut File,
    meta_path: &'a Path,
    shown: &'a str,
    known: Option<Known>,
    /// The file's length has been added to the progress total.
    reported: bool,
    /// Bytes of the file counted as loaded so far.
    counted: u64,
    progress: Option<&'a Progress>,
}

impl Download<'_> {
    fn have(&self) -> Result<u64> {
        Ok(self.part.metadata().map_err(|e| Error::io(self.shown, e))?.len())
    }

    fn restart(&mut self) -> std::result::Result<(), Failure> {
        self.part.set_len(0).map_err(|e| Failure::fatal(Error::io(self.shown, e)))?;
        self.known = None;
        Ok(())
    }

    /// One request: resume from the bytes on disk and stream the rest.
    fn attempt(&mut self, agent: &ureq::Agent, max: u64) -> std::result::Result<(), Failure> {
        let (url, shown) = (self.url, self.shown);
        let io = |e: std::io::Error| Failure::fatal(Error::io(shown, e));
        let mut have = self.have().map_err(Failure::fatal)?;
        if self.known.is_none() && have > 0 {
            // Bytes without the server's length and ETag: they cannot be trusted.
            self.restart()?;
            have = 0;
        }
        let mut req = agent.get(url).header("Accept-Encoding", "identity");
        if have > 0 {
            req = req.header("Range", format!("bytes={have}-"));
            if let Some(etag) = self.known.as_ref().and_then(|k| k.etag.clone()) {
                req = req.header("If-Range", etag);
            }
        }
        let resp = req.call().map_err(|e| Failure::retry(Error::http(url, e.to_string())))?;
        let status = resp.status().as_u16();
        let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        let etag = header("etag");
        let total = match status {
            200 => {
                self.restart()?;
                have = 0;
                let len = header("content-length").and_then(|l| l.trim().parse::<u64>().ok());
                len.ok_or_else(|| Failure::fatal(Error::http(url, "the server gave no Content-Length")))?
            }
            206 => {
                let (s, e, total) =
                    super::parse_content_range(url, header("content-range").as_deref()).map_err(Failure::fatal)?;
                if s != have || e + 1 != total || self.known.as_ref().is_some_and(|k| k.total != total) {
                    // Not the rest of the file we hold: start over.
                    self.restart()?;
                    return Err(Failure::retry(Error::http(url, format!("the server resumed at {s}, not {have}"))));
                }
                total
            }
            416 if self.known.as_ref().is_some_and(|k| k.total == have) => {
                // Everything is here already (a run stopped just before the rename).
                return Ok(());
            }
            416 => {
                self.restart()?;
                return Err(Failure::retry(Error::http(url, "the server refused to resume (HTTP 416)")));
            }
            404 => return Err(Failure { absent: true, ..Failure::fatal(not_found(url)) }),
            s if s >= 500 || s == 408 || s == 429 => {
                return Err(Failure::retry(Error::http(url, format!("HTTP {s}"))));
            }
            s => return Err(Failure::fatal(Error::http(url, format!("unexpected HTTP status {s}")))),
        };
        if total > max {
            return Err(Failure::fatal(too_long(url, total, max)));
        }
        let known = Known { total, etag };
        if self.known.as_ref() != Some(&known) {
            let text = format!("{}\n{}\n", known.total, known.etag.as_deref().unwrap_or(""));
            std::fs::write(self.meta_path, text).map_err(io)?;
            self.known = Some(known);
        }
        if let Some(p) = self.progress
            && !self.reported
        {
            p.add(have, total);
            self.reported = true;
            self.counted = have;
        }
        self.part.seek(SeekFrom::Start(have)).map_err(io)?;
        let mut body = resp.into_body().into_reader();
        let mut buf = vec![0u8; CHUNK.min(usize::try_from(total - have).unwrap_or(CHUNK)).max(1)];
        while have < total {
            let n = match body.read(&mut buf) {
                Ok(0) => {
                    return Err(Failure::retry(Error::http(
                        url,
                        format!("the connection closed at byte {have} of {total}"),
                    )));
                }
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Failure::retry(Error::http(url, format!("reading the response: {e}")))),
            };
            let n = n.min(usize::try_from(total - have).unwrap_or(n));
            self.part.write_all(&buf[..n]).map_err(io)?;
            have += n as u64;
            // Bytes fetched again after a restart are not counted twice.
            if let Some(p) = self.progress
                && have > self.counted
            {
                p.add(have - self.counted, 0);
                self.counted = have;
            }
        }
        Ok(())
    }
}

fn not_found(url: &str) -> Error {
    Error::http(url, "not found (HTTP 404)")
}

#[cfg(test)]
mod tests {
    use super::path_of;
    use std::path::Path;

    #[test]
    fn urls_map_under_the_root_and_nowhere_else() {
        let root = Path::new("/c");
        let p = |u: &str| path_of(root, u).map(|p| p.display().to_string());
        assert_eq!(p("https://hf.co/a/b/model.safetensors").unwrap(), "/c/https/hf.co/a/b/model.safetensors");
        assert_eq!(p("http://127.0.0.1:8080/x/kinema.json").unwrap(), "/c/http/127.0.0.1_8080/x/kinema.json");
        assert_eq!(p("http://h/../../etc/passwd").unwrap(), "/c/http/h/%2E%2E/%2E%2E/etc/passwd");
        assert_eq!(p("http://h/a%2Fb c").unwrap(), "/c/http/h/a%252Fb%20c");
        assert_eq!(p("http://h/f.json?rev=1&x=/y").unwrap(), "/c/http/h/f.json%3Frev%3D1%26x%3D%2Fy");
        assert_eq!(p("http://h//a//b").unwrap(), "/c/http/h/a/b");
        for bad in ["no-scheme/file", "http://h/dir/", "http://h"] {
            assert!(path_of(root, bad).is_err(), "{bad}");
        }
    }
}
