//! Checkpoints over HTTP range requests, against a local server on
//! 127.0.0.1 that logs every request: how many requests, for which bytes,
//! and what happens when the server misbehaves.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kinema_engine::Error;
use kinema_engine::weights::source::http::PREFIX_LEN;
use kinema_engine::weights::writer::{TensorSpec, to_bytes};
use kinema_engine::weights::{Checkpoint, Dtype, HttpClient, IndexError, Progress};
use kinema_tests::server::{Behaviour, Server};
use kinema_tests::{big_file, fixture};

fn serve(files: &[(&str, Vec<u8>)], b: Behaviour) -> Server {
    Server::start(files.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(), b)
}

#[test]
fn opening_reads_only_the_header_and_reads_fetch_only_their_bytes() {
    let file = big_file();
    let server = serve(&[("m.safetensors", file.clone())], Behaviour::Honest);
    let ckpt = pollster::block_on(Checkpoint::open(&server.url("m.safetensors"))).unwrap();
    let log = server.log();
    assert_eq!(log.len(), 1, "one request opens a file whose header fits the prefix: {log:?}");
    assert_eq!(log[0].range, Some((0, PREFIX_LEN - 1)));
    assert_eq!(log[0].sent, PREFIX_LEN);

    // The big tensor: exactly its bytes, in READ_WINDOW pieces, nothing else.
    let t = ckpt.get("b_big").unwrap();
    let start = t.shard.header.data_start() + t.info.data_offsets.0;
    let mut got = vec![0u8; t.info.byte_len() as usize];
    pollster::block_on(ckpt.read_bytes("b_big", &mut got)).unwrap();
    assert_eq!(&got[..], &file[start as usize..start as usize + got.len()]);
    let log = server.log();
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(log[1].range, Some((start, start + t.info.byte_len() - 1)));
    assert_eq!(log[1].sent, t.info.byte_len());

    // The first tensor lies inside the prefix already fetched: no request.
    let mut small = [0u8; 16];
    pollster::block_on(ckpt.read_bytes("a_small", &mut small)).unwrap();
    assert_eq!(small, *b"\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f");
    assert_eq!(server.log().len(), 2);

    // Converted reads stream through the window: 4 MiB in one 8 MiB window.
    let mut f = vec![0f32; 1 << 20];
    pollster::block_on(ckpt.read_f32("b_big", &mut f)).unwrap();
    let log = server.log();
    assert_eq!(log.len(), 3);
    let total_sent: u64 = log.iter().map(|l| l.sent).sum();
    assert!(total_sent < 2 * file.len() as u64 + PREFIX_LEN, "no whole-file downloads");
}

/// A client's progress counts the bytes of the file read so far (the prefix
/// once, then each range's bytes past it), out of the file's size: reading
/// every tensor ends at exactly the file's size.
#[test]
fn progress_reports_the_bytes_read_out_of_the_files_size() {
    use std::sync::{Arc, Mutex};
    let file = big_file();
    let server = serve(&[("m.safetensors", file.clone())], Behaviour::Honest);
    let reports = Arc::new(Mutex::new(Vec::new()));
    let sink = reports.clone();
    let progress = Progress::new(Box::new(move |loaded, total| sink.lock().unwrap().push((loaded, total))));
    let client = HttpClient::default().with_progress(progress);
    let ckpt = pollster::block_on(Checkpoint::open_with(&server.url("m.safetensors"), &client)).unwrap();
    assert_eq!(*reports.lock().unwrap(), [(PREFIX_LEN, file.len() as u64)]);
    for name in ["a_small", "b_big", "c_tail"] {
        let mut buf = vec![0u8; ckpt.get(name).unwrap().info.byte_len() as usize];
        pollster::block_on(ckpt.read_bytes(name, &mut buf)).unwrap();
    }
    let reports = reports.lock().unwrap();
    let sent: u64 = server.log().iter().map(|l| l.sent).sum();
    assert_eq!(reports.last(), Some(&(file.len() as u64, file.len() as u64)), "{reports:?}");
    assert!(sent >= file.len() as u64, "the wire carried at least those bytes ({sent})");
    assert!(reports.windows(2).all(|w| w[0].0 <= w[1].0), "{reports:?}");
}

#[test]
fn a_header_larger_than_the_prefix_takes_exactly_two_requests() {
    let names: Vec<String> = (0..3000).map(|i| format!("blocks.{i}.a_rather_long_parameter_name.weight")).collect();
    let specs: Vec<(TensorSpec, &[u8])> =
        names.iter().map(|n| (TensorSpec::new(n, Dtype::U8, &[1]), &[7u8][..])).collect();
    let file = to_bytes(&specs, &BTreeMap::new());
    let json_len = u64::from_le_bytes(file[..8].try_into().unwrap());
    assert!(json_len > PREFIX_LEN, "the header must outgrow the prefix ({json_len})");
    let server = serve(&[("m.safetensors", file.clone())], Behaviour::Honest);
    let ckpt = pollster::block_on(Checkpoint::open(&server.url("m.safetensors"))).unwrap();
    assert_eq!(ckpt.len(), 3000);
    let log = server.log();
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(log[1].range, Some((8, 8 + json_len - 1)), "the second request is exactly the header");
}

#[test]
fn sharded_checkpoints_over_http_by_folder_and_by_index() {
    let dir = fixture("weights/wan_transformer_sharded");
    let local = pollster::block_on(Checkpoint::open(dir.to_str().unwrap())).unwrap();
    for path in ["", "diffusion_pytorch_model.safetensors.index.json"] {
        let server = Server::serve_dir(&dir, Behaviour::Honest);
        let remote = pollster::block_on(Checkpoint::open(&server.url(path))).unwrap();
        // The index and one request per shard (each shard's header fits the prefix).
        assert_eq!(server.log().len(), 1 + 5, "{path:?}: {:?}", server.log());
        assert_eq!(remote.len(), local.len());
        for t in local.tensors() {
            let r = remote.get(t.name).unwrap();
            assert_eq!((r.info.dtype, &r.info.shape, &r.shard.file), (t.info.dtype, &t.info.shape, &t.shard.file));
            let (mut a, mut b) = (vec![0f32; t.info.numel() as usize], vec![0f32; t.info.numel() as usize]);
            pollster::block_on(local.read_f32(t.name, &mut a)).unwrap();
            pollster::block_on(remote.read_f32(t.name, &mut b)).unwrap();
            assert_eq!(a, b, "{}", t.name);
        }
    }
}

#[test]
fn a_folder_url_finds_a_single_file_after_the_index_names() {
    let server = serve(&[("model.safetensors", big_file())], Behaviour::Honest);
    let ckpt = pollster::block_on(Checkpoint::open(&server.url(""))).unwrap();
    assert_eq!(ckpt.len(), 3);
    let paths: Vec<String> = server.log().into_iter().map(|l| l.path).collect();
    assert_eq!(
        paths,
        [
            "diffusion_pytorch_model.safetensors.index.json",
            "model.safetensors.index.json",
            "diffusion_pytorch_model.safetensors",
            "model.safetensors"
        ]
    );
}

#[test]
fn an_index_over_http_never_requests_paths_outside_its_prefix() {
    let index = r#"{"weight_map":{"a":"../secret.safetensors"}}"#.as_bytes().to_vec();
    let server = serve(&[("ckpt/m.safetensors.index.json", index)], Behaviour::Honest);
    let err = pollster::block_on(Checkpoint::open(&server.url("ckpt/m.safetensors.index.json"))).err().unwrap();
    assert!(matches!(err, Error::Index { source: IndexError::UnsafePath { .. }, .. }), "{err}");
    assert_eq!(server.log().len(), 1, "only the index was requested");
}

#[test]
fn a_server_that_ignores_range_is_refused_without_a_whole_download() {
    let file = big_file();
    let server = serve(&[("m.safetensors", file.clone())], Behaviour::IgnoreRange);
    let err = pollster::block_on(Checkpoint::open(&server.url("m.safetensors"))).err().unwrap();
    assert!(err.to_string().contains("ignores Range"), "{err}");
    // The client stopped reading after the prefix; give the server a moment to notice.
    let t0 = Instant::now();
    while !server.log().first().is_some_and(|l| l.complete) && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let sent = server.log()[0].sent;
    assert!(sent < file.len() as u64, "the server managed to send the whole file ({sent} bytes)");

    // A file small enough to fit the prefix is fine even from such a server.
    let small = std::fs::read(fixture("weights/dtypes.safetensors")).unwrap();
    let server = serve(&[("s.safetensors", small)], Behaviour::IgnoreRange);
    let ckpt = pollster::block_on(Checkpoint::open(&server.url("s.safetensors"))).unwrap();
    assert_eq!(ckpt.len(), 19);
}

#[test]
fn misbehaving_servers_give_errors_not_hangs_or_wrong_bytes() {
    let file = big_file();
    let client = HttpClient::with_timeout(Duration::from_secs(1));
    let open = |b: Behaviour| {
        let server = serve(&[("m.safetensors", file.clone())], b);
        let t0 = Instant::now();
        let r = pollster::block_on(async {
            let ckpt = Checkpoint::open_with(&server.url("m.safetensors"), &client).await?;
            let mut buf = vec![0u8; ckpt.get("b_big")?.info.byte_len() as usize];
            ckpt.read_bytes("b_big", &mut buf).await
        });
        (r, t0.elapsed())
    };
    for b in [Behaviour::ShiftedRange, Behaviour::Truncate, Behaviour::Stall] {
        let (r, took) = open(b);
        let err = r.err().unwrap_or_else(|| panic!("{b:?} was accepted"));
        assert!(matches!(err, Error::Http { .. }), "{b:?}: {err}");
        assert!(took < Duration::from_secs(10), "{b:?} took {took:?}");
    }
    let server = serve(&[], Behaviour::Honest);
    let err = pollster::block_on(Checkpoint::open(&server.url("nope.safetensors"))).err().unwrap();
    assert!(err.to_string().contains("404"), "{err}");
    // Nothing listens on port 9 of 127.0.0.1: connection refused, promptly.
    let err = pollster::block_on(Checkpoint::open_with("http://127.0.0.1:9/m.safetensors", &client)).err().unwrap();
    assert!(matches!(err, Error::Http { .. }), "{err}");
}

/// Every tensor of `a` equals `b`'s, byte for byte.
fn same_tensors(a: &Checkpoint, b: &Checkpoint) {
    assert_eq!(a.len(), b.len());
    for t in a.tensors() {
        let n = t.info.byte_len() as usize;
        let (mut x, mut y) = (vec![0u8; n], vec![0u8; n]);
        pollster::block_on(a.read_bytes(t.name, &mut x)).unwrap();
        pollster::block_on(b.read_bytes(t.name, &mut y)).unwrap();
        assert_eq!(x, y, "{}", t.name);
    }
}

/// With a disk cache a file is downloaded whole, once: a connection cut
/// halfway resumes where it stopped (one `Range: bytes=N-` request), the
/// progress ends at the file's size, and opening it again — by folder, through
/// the names a folder may hold — makes no request at all.
#[test]
fn a_disk_cache_downloads_once_resumes_a_cut_and_then_asks_nothing() {
    let file = big_file();
    let cache = kinema_tests::TempDir::new("http-cache");
    let server = serve(&[("dir/model.safetensors", file.clone())], Behaviour::TruncateFirst);
    let local = Checkpoint::from_source("m", Box::new(kinema_engine::weights::BytesSource::new("m", file.clone())));
    let local = pollster::block_on(local).unwrap();
    let last = std::sync::Arc::new(std::sync::Mutex::new((0, 0)));
    let sink = last.clone();
    let progress = Progress::new(Box::new(move |l, t| *sink.lock().unwrap() = (l, t)));
    let client = HttpClient::default().with_disk_cache(&cache.0).with_progress(progress);
    let remote = pollster::block_on(Checkpoint::open_with(&server.url("dir"), &client)).unwrap();
    same_tensors(&local, &remote);
    let len = file.len() as u64;
    assert_eq!(*last.lock().unwrap(), (len, len), "every byte counted once");
    let log = server.log();
    let downloads: Vec<_> = log.iter().filter(|l| l.path == "dir/model.safetensors").collect();
    assert_eq!(downloads.len(), 2, "{log:?}");
    assert_eq!((downloads[0].range, downloads[0].sent), (None, len / 2), "the first answer is cut halfway");
    assert_eq!(downloads[1].range, Some((len / 2, u64::MAX)), "the second asks for the rest only");
    assert_eq!(downloads[1].sent, len - len / 2);
    // Three names probed first (404 each), then the file, twice for the cut.
    assert_eq!(log.len(), 3 + 2, "{log:?}");
    let home =
        kinema_engine::weights::source::http::disk_cache::path_of(&cache.0, &server.url("dir/model.safetensors"));
    assert_eq!(std::fs::read(home.unwrap()).unwrap(), file, "the cached file is the file");

    let again = HttpClient::default().with_disk_cache(&cache.0);
    let cached = pollster::block_on(Checkpoint::open_with(&server.url("dir"), &again)).unwrap();
    same_tensors(&local, &cached);
    assert_eq!(server.log().len(), log.len(), "the second open asks the server nothing");
    let left: Vec<_> = walk(&cache.0).into_iter().filter(|p| p.ends_with(".part") || p.ends_with(".meta")).collect();
    assert!(left.is_empty(), "no partial files left: {left:?}");
}

/// A download that keeps failing stops with an error that says the bytes are
/// kept, and the next run (here against a correct server) resumes from them.
#[test]
fn a_download_that_fails_is_resumed_by_the_next_run() {
    let file = big_file();
    let len = file.len() as u64;
    let cache = kinema_tests::TempDir::new("http-cache-resume");
    let client = HttpClient::with_timeout(Duration::from_secs(2)).with_disk_cache(&cache.0);
    // Every answer is cut halfway: progress until one byte is left, whose half is nothing.
    let bad = serve(&[("m.safetensors", file.clone())], Behaviour::Truncate);
    let err = pollster::block_on(Checkpoint::open_with(&bad.url("m.safetensors"), &client)).err().unwrap();
    assert!(matches!(err, Error::Http { .. }) && err.to_string().contains("resumes"), "{err}");
    let part = |server: &Server| {
        let home = kinema_engine::weights::source::http::disk_cache::path_of(&cache.0, &server.url("m.safetensors"));
        std::path::PathBuf::from(format!("{}.part", home.unwrap().display()))
    };
    let kept = std::fs::read(part(&bad)).unwrap();
    assert_eq!(kept.len() as u64, len - 1, "all but the last byte kept");
    assert_eq!(kept[..], file[..kept.len()]);

    // The same file on another server: move the part to its address and run again.
    let good = serve(&[("m.safetensors", file.clone())], Behaviour::Honest);
    let target = part(&good);
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    std::fs::rename(part(&bad), &target).unwrap();
    std::fs::rename(format!("{}.meta", part(&bad).display()), format!("{}.meta", target.display())).unwrap();
    let ckpt = pollster::block_on(Checkpoint::open_with(&good.url("m.safetensors"), &client)).unwrap();
    assert_eq!(ckpt.len(), 3);
    let log = good.log();
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!((log[0].range, log[0].sent), (Some((len - 1, u64::MAX)), 1), "one byte asked for, one sent");
}

/// A small file over its cap is refused from the server's length, before its
/// body is saved; nothing is left in the cache.
#[test]
fn a_cached_file_over_its_cap_is_refused_before_it_is_saved() {
    use kinema_engine::diffusion::Folder;
    let big = vec![b' '; (kinema_engine::diffusion::folder::MAX_TEXT_FILE + 1) as usize];
    let server = serve(&[("p/kinema.json", big)], Behaviour::Honest);
    let cache = kinema_tests::TempDir::new("http-cache-cap");
    let folder = Folder::at_with(&server.url("p"), HttpClient::default().with_disk_cache(&cache.0)).unwrap();
    let err = pollster::block_on(folder.read("kinema.json")).err().unwrap();
    assert!(err.to_string().contains("limit"), "{err}");
    assert!(walk(&cache.0).iter().all(|p| !p.contains("kinema.json")), "{:?}", walk(&cache.0));
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out
}
