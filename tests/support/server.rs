//! A small HTTP/1.1 file server on 127.0.0.1 for the range-request tests.
//! It serves files from memory, honours single `Range: bytes=a-b` requests,
//! keeps connections alive, logs every request, and can be told to misbehave.
//! It answers CORS (so browser tests on another origin can use it), and
//! `GET /__log` returns the request log as JSON.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;

/// How the server answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// A correct server.
    Honest,
    /// Ignores `Range` and sends the whole file with 200.
    IgnoreRange,
    /// Answers 206 for a range starting one byte later than asked.
    ShiftedRange,
    /// Announces the right length, sends half the body, closes.
    Truncate,
    /// [`Behaviour::Truncate`] for the first request of each file, honest after.
    TruncateFirst,
    /// Reads the request and never answers.
    Stall,
}

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct Logged {
    pub path: String,
    /// The requested `(start, end)` inclusive, if the request had a Range.
    pub range: Option<(u64, u64)>,
    /// Body bytes sent: what the server meant to send until `complete`, then
    /// what it really sent (less when the client hung up).
    pub sent: u64,
    /// The response has been written (or the write failed).
    pub complete: bool,
}

pub struct Server {
    pub base: String,
    log: Arc<Mutex<Vec<Logged>>>,
}

impl Server {
    /// Serves `files` (URL path without the leading `/` → bytes).
    pub fn start(files: BTreeMap<String, Vec<u8>>, behaviour: Behaviour) -> Server {
        Server::start_on(files, 0, behaviour)
    }

    /// [`Server::start`] on a given port (0: any free one).
    pub fn start_on(files: BTreeMap<String, Vec<u8>>, port: u16, behaviour: Behaviour) -> Server {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind 127.0.0.1");
        let base = format!("http://{}/", listener.local_addr().expect("addr"));
        let log = Arc::new(Mutex::new(Vec::new()));
        let files = Arc::new(files);
        let l = log.clone();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (files, log) = (files.clone(), l.clone());
                thread::spawn(move || {
                    let _ = serve(stream, &files, &log, behaviour);
                });
            }
        });
        Server { base, log }
    }

    /// Serves every file under a folder.
    pub fn serve_dir(dir: &std::path::Path, behaviour: Behaviour) -> Server {
        Server::start(read_tree(dir), behaviour)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Every request so far.
    pub fn log(&self) -> Vec<Logged> {
        self.log.lock().expect("log").clone()
    }
}

fn serve(
    stream: TcpStream,
    files: &BTreeMap<String, Vec<u8>>,
    log: &Mutex<Vec<Logged>>,
    b: Behaviour,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let method = line.split_whitespace().next().unwrap_or("").to_string();
        // The file is the path without its query (pages take parameters).
        let target = line.split_whitespace().nth(1).unwrap_or("/");
        let path = target.split('?').next().unwrap_or("").trim_start_matches('/').to_string();
        let mut range = None;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':')
                && k.eq_ignore_ascii_case("range")
            {
                range = parse_range(v.trim());
            }
        }
        if method == "OPTIONS" {
            out.write_all(format!("HTTP/1.1 204 No Content\r\n{CORS}Content-Length: 0\r\n\r\n").as_bytes())?;
            continue;
        }
        if path == "__log" {
            let entries: Vec<String> = log
                .lock()
                .expect("log")
                .iter()
                .map(|l| {
                    let range = l.range.map_or("null".to_string(), |(s, e)| format!("[{s},{e}]"));
                    format!(r#"{{"path":{:?},"range":{range},"sent":{}}}"#, l.path, l.sent)
                })
                .collect();
            let body = format!("[{}]", entries.join(","));
            let head = format!(
                "HTTP/1.1 200 OK\r\n{CORS}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            out.write_all(head.as_bytes())?;
            out.write_all(body.as_bytes())?;
            continue;
        }
        if b == Behaviour::Stall {
            std::thread::sleep(std::time::Duration::from_secs(30));
            return Ok(());
        }
        let Some(file) = files.get(&path) else {
            log.lock().expect("log").push(Logged { path, range, sent: 0, complete: true });
            out.write_all(format!("HTTP/1.1 404 Not Found\r\n{CORS}Content-Length: 0\r\n\r\n").as_bytes())?;
            continue;
        };
        let total = file.len() as u64;
        let (status, body, content_range) = match range {
            Some((s, e)) if b != Behaviour::IgnoreRange => {
                if s >= total {
                    let head = format!(
                        "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{total}\r\nContent-Length: 0\r\n\r\n"
                    );
                    log.lock().expect("log").push(Logged { path, range, sent: 0, complete: true });
                    out.write_all(head.as_bytes())?;
                    continue;
                }
                let e = e.min(total - 1);
                let s = if b == Behaviour::ShiftedRange { (s + 1).min(e) } else { s };
                (206, &file[s as usize..=e as usize], Some(format!("bytes {s}-{e}/{total}")))
            }
            _ => (200, &file[..], None),
        };
        let mut head = format!(
            "HTTP/1.1 {status} {}\r\n{CORS}Content-Type: {}\r\nContent-Length: {}\r\nAccept-Ranges: bytes\r\n",
            if status == 206 { "Partial Content" } else { "OK" },
            content_type(&path),
            body.len()
        );
        if let Some(cr) = content_range {
            head += &format!("Content-Range: {cr}\r\n");
        }
        head += "\r\n";
        // Logged before answering, so a client that has its answer finds it logged.
        let (entry, truncate) = {
            let mut log = log.lock().expect("log");
            let first = !log.iter().any(|l| l.path == path);
            let truncate = b == Behaviour::Truncate || (b == Behaviour::TruncateFirst && first);
            let send = if truncate { &body[..body.len() / 2] } else { body };
            log.push(Logged { path, range, sent: send.len() as u64, complete: false });
            (log.len() - 1, truncate)
        };
        let send = if truncate { &body[..body.len() / 2] } else { body };
        out.write_all(head.as_bytes())?;
        // A client that stops reading (as it should from an IgnoreRange
        // server) makes a write fail; log what was really sent either way.
        let mut sent = 0u64;
        let mut result = Ok(());
        for piece in send.chunks(64 * 1024) {
            result = out.write_all(piece);
            if result.is_err() {
                break;
            }
            sent += piece.len() as u64;
        }
        {
            let mut log = log.lock().expect("log");
            log[entry].sent = sent;
            log[entry].complete = true;
        }
        result?;
        if truncate {
            return Ok(());
        }
    }
}

/// Every file under `dir`, keyed by its `/`-separated path relative to `dir`.
pub fn read_tree(dir: &std::path::Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &std::path::Path, dir: &std::path::Path, files: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).expect("dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(root, &path, files);
            } else {
                let rel = path.strip_prefix(root).expect("under root").to_string_lossy().replace('\\', "/");
                files.insert(rel, std::fs::read(&path).expect("read"));
            }
        }
    }
    let mut files = BTreeMap::new();
    walk(dir, dir, &mut files);
    files
}

/// Lets pages of any origin read files, send `Range`, and see `Content-Range`;
/// and makes the pages this server serves cross-origin isolated (COOP + COEP,
/// with every response embeddable: CORP), which `SharedArrayBuffer` — threads
/// in wasm — needs.
const CORS: &str = "Access-Control-Allow-Origin: *\r\nAccess-Control-Allow-Headers: Range\r\n\
                    Access-Control-Allow-Methods: GET, OPTIONS\r\nAccess-Control-Expose-Headers: Content-Range, Content-Length\r\n\
                    Cross-Origin-Opener-Policy: same-origin\r\nCross-Origin-Embedder-Policy: require-corp\r\n\
                    Cross-Origin-Resource-Policy: cross-origin\r\n";

fn parse_range(v: &str) -> Option<(u64, u64)> {
    let r = v.strip_prefix("bytes=")?;
    let (s, e) = r.split_once('-')?;
    // `bytes=N-`: from N to the end.
    let e = if e.trim().is_empty() { u64::MAX } else { e.parse().ok()? };
    Some((s.parse().ok()?, e))
}

/// The media type browsers need for pages, modules and wasm (the e2e tests
/// serve `www/` from this server).
fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript",
        "wasm" => "application/wasm",
        "json" => "application/json",
        "png" => "image/png",
        "gif" => "image/gif",
        _ => "application/octet-stream",
    }
}
