//! Helpers shared by the integration tests: fixture paths, goldens, a
//! safetensors builder for hand-made (often broken) files, and a tiny HTTP
//! server with range support that logs every request.

pub mod checker;
pub mod counting_alloc;
pub mod server;
pub mod session_case;

use std::path::PathBuf;

/// `tests/fixtures/<rel>`.
pub fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(rel)
}

/// `tests/fixtures/weights/golden.json`, made by `tools/fixtures/make_weights_fixtures.py`.
pub fn weights_golden() -> serde_json::Value {
    let text = std::fs::read_to_string(fixture("weights/golden.json")).expect("golden.json");
    serde_json::from_str(&text).expect("golden.json parses")
}

/// A safetensors file from a raw JSON header and data section: the 8-byte
/// length is computed, everything else is exactly as given.
pub fn raw_file(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

/// A fresh empty folder under the system temp dir, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "kinema-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }

    pub fn write(&self, rel: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("create parent");
        }
        std::fs::write(&p, bytes).expect("write temp file");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Copies a fixture folder into a temp dir (for tests that tamper with it).
pub fn copy_fixture_dir(rel: &str, tag: &str) -> TempDir {
    let tmp = TempDir::new(tag);
    for entry in std::fs::read_dir(fixture(rel)).expect("fixture dir") {
        let entry = entry.expect("dir entry");
        std::fs::copy(entry.path(), tmp.path(&entry.file_name().to_string_lossy())).expect("copy");
    }
    tmp
}

/// A 4 MiB+ file: `a_small` (16 × U8, 0..16), `b_big` (2^20 × F32 whose byte
/// `i` is `i % 251`), `c_tail` (4×4 U8, 0..16). Its header fits the HTTP prefix;
/// `b_big` lies beyond it.
pub fn big_file() -> Vec<u8> {
    use kinema_engine::weights::Dtype;
    use kinema_engine::weights::writer::{TensorSpec, to_bytes};
    let small: Vec<u8> = (0..16u8).collect();
    let big: Vec<u8> = (0..4 << 20).map(|i| (i % 251) as u8).collect();
    to_bytes(
        &[
            (TensorSpec::new("a_small", Dtype::U8, &[16]), &small),
            (TensorSpec::new("b_big", Dtype::F32, &[1 << 20]), &big),
            (TensorSpec::new("c_tail", Dtype::U8, &[4, 4]), &small),
        ],
        &std::collections::BTreeMap::new(),
    )
}
