//! Fuzzing of the sharded-index parser: no panics, and every accepted shard
//! path is a plain relative path.
#![no_main]

use kinema_engine::weights::index::{check_relative_path, parse_index};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(index) = parse_index(data) {
        for shard in &index.shards {
            assert!(check_relative_path(shard).is_ok());
            assert!(!shard.split('/').any(|p| p == ".."));
            assert!(!shard.starts_with('/'));
        }
        for shard in index.weight_map.values() {
            assert!(index.shards.contains(shard));
        }
    }
});
