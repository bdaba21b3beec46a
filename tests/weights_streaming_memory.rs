//! Streaming: loading a multi-hundred-MB sharded checkpoint keeps the
//! process's heap and anonymous memory far below the checkpoint's size.
//!
//! This binary counts every heap allocation (a global allocator wrapper) and
//! samples `RssAnon` from /proc. It holds one test so nothing else allocates
//! alongside it.

use std::collections::BTreeMap;
use std::io::Write;

use half::f16;
use kinema_engine::weights::writer::{TensorSpec, header_bytes};
use kinema_engine::weights::{Checkpoint, Dtype};
use kinema_tests::TempDir;
use kinema_tests::counting_alloc::{self, Counting};

#[global_allocator]
static ALLOC: Counting = Counting;

const MIB: usize = 1 << 20;
const SHARDS: usize = 4;
const TENSORS_PER_SHARD: usize = 6;
const ELEMS: usize = 4 * MIB; // 16 MiB of f32 per tensor: 384 MiB in all

/// Element `i` of tensor `t`: cheap to regenerate, different per tensor.
fn value(t: usize, i: usize) -> f32 {
    ((i % 1000) as f32) * 0.25 + t as f32
}

/// Writes the checkpoint with a 1 MiB buffer, never holding a tensor.
fn write_checkpoint(tmp: &TempDir) -> u64 {
    let mut weight_map = serde_json::Map::new();
    let mut total = 0u64;
    for s in 0..SHARDS {
        let file = format!("model-{:05}-of-{SHARDS:05}.safetensors", s + 1);
        let specs: Vec<TensorSpec> = (0..TENSORS_PER_SHARD)
            .map(|k| TensorSpec::new(format!("layer{}.weight", s * TENSORS_PER_SHARD + k), Dtype::F32, &[ELEMS as u64]))
            .collect();
        let mut out = std::io::BufWriter::with_capacity(MIB, std::fs::File::create(tmp.path(&file)).unwrap());
        out.write_all(&header_bytes(&specs, &BTreeMap::new())).unwrap();
        for (k, spec) in specs.iter().enumerate() {
            let t = s * TENSORS_PER_SHARD + k;
            let mut chunk = Vec::with_capacity(MIB);
            for i in 0..ELEMS {
                chunk.extend_from_slice(&value(t, i).to_le_bytes());
                if chunk.len() == MIB {
                    out.write_all(&chunk).unwrap();
                    chunk.clear();
                }
            }
            out.write_all(&chunk).unwrap();
            weight_map.insert(spec.name.clone(), file.clone().into());
            total += spec.byte_len();
        }
        out.flush().unwrap();
    }
    let index = serde_json::json!({"metadata": {"total_size": total}, "weight_map": weight_map});
    tmp.write("model.safetensors.index.json", index.to_string());
    total
}

fn rss_anon() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[test]
fn loading_a_384_mib_sharded_checkpoint_stays_small() {
    let tmp = TempDir::new("stream");
    let total = write_checkpoint(&tmp);
    assert_eq!(total, (SHARDS * TENSORS_PER_SHARD * ELEMS * 4) as u64);

    let rss_before = rss_anon();
    let heap_before = counting_alloc::reset_peak();
    let mut rss_peak = rss_before;

    let ckpt = pollster::block_on(Checkpoint::open(tmp.0.to_str().unwrap())).unwrap();
    assert_eq!((ckpt.shards().len(), ckpt.len(), ckpt.total_bytes()), (SHARDS, SHARDS * TENSORS_PER_SHARD, total));

    // Every tensor goes through the staging window, as an upload to the GPU
    // would; its values are checked on the way. One tensor per shard is also
    // converted whole into a caller's f16 buffer (a tensor's size, not the
    // checkpoint's).
    let mut f16s = vec![f16::ZERO; ELEMS];
    for (n, t) in ckpt.tensors().enumerate() {
        let id: usize = t.name.trim_start_matches("layer").trim_end_matches(".weight").parse().unwrap();
        let mut i = 0;
        pollster::block_on(ckpt.stream(t.name, 8 * MIB, |bytes| {
            for c in bytes.chunks_exact(4 * 4096) {
                // Spot-check one value per 4096.
                assert_eq!(f32::from_le_bytes(c[..4].try_into().unwrap()), value(id, i));
                i += 4096;
            }
            Ok(())
        }))
        .unwrap();
        if n % TENSORS_PER_SHARD == 0 {
            pollster::block_on(ckpt.read_f16(t.name, &mut f16s)).unwrap();
            assert_eq!(f16s[1234], f16::from_f32(value(id, 1234)));
        }
        rss_peak = rss_peak.max(rss_anon());
    }

    let heap_peak = counting_alloc::peak() - heap_before;
    let rss_growth = rss_peak.saturating_sub(rss_before);
    eprintln!(
        "checkpoint {} MiB; peak heap during loading {:.1} MiB; RssAnon growth {:.1} MiB",
        total >> 20,
        heap_peak as f64 / MIB as f64,
        rss_growth as f64 / MIB as f64
    );
    // The f16 buffer (8 MiB) plus one 8 MiB staging window, plus small change.
    assert!(heap_peak < 24 * MIB, "peak heap {heap_peak} bytes");
    assert!(rss_growth < 48 * MIB, "RssAnon grew {rss_growth} bytes");
}
