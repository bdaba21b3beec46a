//! Optional integrity: shard SHA-256 digests checked against a manifest.
//!
//! A manifest is either `sha256sum` output (`<hex>  <file>` per line) or Git
//! LFS pointer files, as the Hugging Face Hub serves them
//! (`oid sha256:<hex>` and `size <bytes>`).

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::checkpoint::{Checkpoint, READ_WINDOW};
use super::source::read_windowed;
use crate::error::{Error, Result};

/// The digest (and, from LFS pointers, the size) a shard must have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub sha256: String,
    pub size: Option<u64>,
}

/// Expected digests by file name.
#[derive(Debug, Clone, Default)]
pub struct Manifest {
    /// Where the manifest came from, for messages.
    pub name: String,
    pub files: BTreeMap<String, Expected>,
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Manifest {
    /// Parses `sha256sum` output.
    pub fn from_sha256sums(name: &str, text: &str) -> Result<Manifest> {
        let bad =
            |line: usize, why: &str| Error::Manifest { file: name.into(), message: format!("line {line}: {why}") };
        let mut files = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim_end();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (hex, file) = line.split_once(' ').ok_or_else(|| bad(i + 1, "expected \"<sha256>  <file>\""))?;
            if !is_hex64(hex) {
                return Err(bad(i + 1, "the digest must be 64 hex digits"));
            }
            // `sha256sum` writes two spaces, or " *" in binary mode.
            let file = file.trim_start_matches(' ').trim_start_matches('*');
            files.insert(file.to_string(), Expected { sha256: hex.to_ascii_lowercase(), size: None });
        }
        if files.is_empty() {
            return Err(Error::Manifest { file: name.into(), message: "no digests in this manifest".into() });
        }
        Ok(Manifest { name: name.into(), files })
    }

    /// Parses one Git LFS pointer file standing for shard `file`.
    pub fn parse_lfs_pointer(name: &str, text: &str) -> Result<Expected> {
        let bad = |why: &str| Error::Manifest { file: name.into(), message: why.into() };
        if !text.starts_with("version https://git-lfs.github.com/spec/") {
            return Err(bad("not a Git LFS pointer file"));
        }
        let mut sha256 = None;
        let mut size = None;
        for line in text.lines() {
            if let Some(oid) = line.strip_prefix("oid sha256:") {
                sha256 = Some(oid.trim().to_ascii_lowercase()).filter(|h| is_hex64(h));
            } else if let Some(s) = line.strip_prefix("size ") {
                size = s.trim().parse().ok();
            }
        }
        Ok(Expected { sha256: sha256.ok_or_else(|| bad("no valid \"oid sha256:\" line"))?, size })
    }

    /// Reads a manifest from disk: a folder of LFS pointers named like the
    /// shards, one LFS pointer (for a single-file checkpoint), or `sha256sum` output.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn load(path: &std::path::Path, checkpoint: &Checkpoint) -> Result<Manifest> {
        const MAX: u64 = 16 << 20;
        let name = path.display().to_string();
        let read = |p: &std::path::Path| -> Result<String> {
            let shown = p.display().to_string();
            let len = std::fs::metadata(p).map_err(|e| Error::io(&shown, e))?.len();
            if len > MAX {
                return Err(Error::Manifest { file: shown, message: "larger than 16 MiB: not a manifest".into() });
            }
            std::fs::read_to_string(p).map_err(|e| Error::io(&shown, e))
        };
        if path.is_dir() {
            let mut files = BTreeMap::new();
            for shard in checkpoint.shards() {
                let pointer = path.join(&shard.file);
                let shown = pointer.display().to_string();
                files.insert(shard.file.clone(), Manifest::parse_lfs_pointer(&shown, &read(&pointer)?)?);
            }
            return Ok(Manifest { name, files });
        }
        let text = read(path)?;
        if text.starts_with("version https://git-lfs") {
            let [shard] = checkpoint.shards() else {
                return Err(Error::Manifest {
                    file: name,
                    message: "one LFS pointer cannot cover a sharded checkpoint; pass the folder of pointers".into(),
                });
            };
            let expected = Manifest::parse_lfs_pointer(&name, &text)?;
            return Ok(Manifest { name, files: BTreeMap::from([(shard.file.clone(), expected)]) });
        }
        Manifest::from_sha256sums(&name, &text)
    }

    /// The entry for a shard: by its relative path, else the one entry with
    /// the same file name (manifests may list paths from another root).
    pub fn get(&self, file: &str) -> Option<&Expected> {
        let base = |f: &str| f.rsplit(['/', '\\']).next().unwrap_or(f).to_string();
        self.files.get(file).or_else(|| {
            let mut same = self.files.iter().filter(|(k, _)| base(k) == base(file));
            match (same.next(), same.next()) {
                (Some((_, e)), None) => Some(e),
                _ => None,
            }
        })
    }
}

/// Lowercase hex of bytes.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Checkpoint {
    /// SHA-256 of every shard, streamed through the read window. Each must
    /// match the manifest; a shard the manifest does not list is an error.
    /// Returns `(shard, digest)` pairs.
    pub async fn verify(&self, manifest: &Manifest) -> Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        for shard in self.shards() {
            let expected = manifest.get(&shard.file).ok_or_else(|| Error::Manifest {
                file: manifest.name.clone(),
                message: format!("no digest for shard {:?}", shard.file),
            })?;
            if let Some(size) = expected.size.filter(|&s| s != shard.file_len()) {
                return Err(Error::Manifest {
                    file: shard.file.clone(),
                    message: format!(
                        "size mismatch: the manifest says {size} bytes, the file has {}",
                        shard.file_len()
                    ),
                });
            }
            let mut hasher = Sha256::new();
            read_windowed(&*shard.source, 0, shard.file_len(), READ_WINDOW, |piece| {
                hasher.update(piece);
                Ok(())
            })
            .await?;
            let actual = hex(&hasher.finalize());
            if actual != expected.sha256 {
                return Err(Error::DigestMismatch {
                    file: shard.file.clone(),
                    expected: expected.sha256.clone(),
                    actual,
                });
            }
            out.push((shard.file.clone(), actual));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256sums_and_lfs_pointers() {
        let d = "a".repeat(64);
        let m = Manifest::from_sha256sums("m", &format!("{d}  x.safetensors\n{d} *sub/y.safetensors\n")).unwrap();
        assert_eq!(m.get("x.safetensors").unwrap().sha256, d);
        assert_eq!(m.get("y.safetensors").unwrap().sha256, d, "falls back to the base name");
        assert!(Manifest::from_sha256sums("m", "zz  x").is_err());
        assert!(Manifest::from_sha256sums("m", "").is_err());

        let p = format!("version https://git-lfs.github.com/spec/v1\noid sha256:{}\nsize 123\n", "B".repeat(64));
        let e = Manifest::parse_lfs_pointer("p", &p).unwrap();
        assert_eq!(e, Expected { sha256: "b".repeat(64), size: Some(123) });
        assert!(Manifest::parse_lfs_pointer("p", "hello").is_err());
        assert!(
            Manifest::parse_lfs_pointer("p", "version https://git-lfs.github.com/spec/v1\noid sha256:12\n").is_err()
        );
    }

    #[test]
    fn sha256_of_known_input() {
        // FIPS 180-2 test vector.
        assert_eq!(hex(&Sha256::digest(b"abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
