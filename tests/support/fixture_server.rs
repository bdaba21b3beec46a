//! `fixture-server [DIR] [PORT]`: serves `DIR` (default: the test fixtures)
//! on 127.0.0.1 with range requests and CORS, for the browser tests, plus
//! `generated/big.safetensors` (see [`kinema_tests::big_file`]) and the
//! embedded model under `models/` (the repository's `models/`). Prints its
//! base URL, then serves until killed.

use kinema_tests::server::{Behaviour, Server};

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args.next().map(std::path::PathBuf::from).unwrap_or_else(|| kinema_tests::fixture(""));
    let port: u16 = args.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let mut files = kinema_tests::server::read_tree(&dir);
    files.insert("generated/big.safetensors".into(), kinema_tests::big_file());
    let models = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
    for (path, bytes) in kinema_tests::server::read_tree(&models) {
        files.insert(format!("models/{path}"), bytes);
    }
    let server = Server::start_on(files, port, Behaviour::Honest);
    println!("{}", server.base);
    loop {
        std::thread::park();
    }
}
