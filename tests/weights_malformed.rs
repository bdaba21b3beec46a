//! Malformed checkpoints: every rule of the format and of sharded indexes,
//! each case asserting its specific error. Header cases are also run through
//! the reference implementation (the `safetensors` crate), which must refuse
//! them too: the rules are the reference's, checked from the header alone.

use kinema_engine::Error;
use kinema_engine::weights::header::{HeaderError, parse_file};
use kinema_engine::weights::{BytesSource, Checkpoint, IndexError};
use kinema_tests::{TempDir, raw_file};

fn e(tensor: &str) -> String {
    tensor.to_string()
}

/// (name, file, expected error). `reference_refuses` is false only where
/// Kinema is deliberately stricter than the reference.
fn header_cases() -> Vec<(&'static str, Vec<u8>, HeaderError, bool)> {
    let f32x2 = r#""dtype":"F32","shape":[2],"data_offsets":[0,8]"#;
    let mut v = vec![
        ("empty file", vec![], HeaderError::TooShort { len: 0 }, true),
        ("7 bytes", vec![1, 0, 0, 0, 0, 0, 0], HeaderError::TooShort { len: 7 }, true),
        (
            "header over 100 MB",
            [100_000_001u64.to_le_bytes().as_slice(), b"{}"].concat(),
            HeaderError::TooLarge { len: 100_000_001 },
            true,
        ),
        ("length u64::MAX", u64::MAX.to_le_bytes().to_vec(), HeaderError::TooLarge { len: u64::MAX }, true),
        (
            "header past the end",
            [100u64.to_le_bytes().as_slice(), b"{}"].concat(),
            HeaderError::PastEnd { len: 100, file_len: 10 },
            true,
        ),
        (
            "not UTF-8",
            raw_file("{\"\u{7f}", &[]).into_iter().map(|b| if b == 0x7f { 0xff } else { b }).collect(),
            HeaderError::NotUtf8 { at: 2 },
            true,
        ),
        ("truncated JSON", raw_file(r#"{"a":"#, &[]), HeaderError::NotJson(String::new()), true),
        ("JSON array", raw_file("[]", &[]), HeaderError::NotJson(String::new()), true),
        ("trailing garbage", raw_file("{} x", &[]), HeaderError::NotJson(String::new()), true),
        (
            "duplicate tensor",
            raw_file(&format!(r#"{{"a":{{{f32x2}}},"a":{{{f32x2}}}}}"#), &[0; 8]),
            HeaderError::DuplicateKey(e("a")),
            false,
        ),
        (
            "metadata value not a string",
            raw_file(r#"{"__metadata__":{"k":1}}"#, &[]),
            HeaderError::BadMetadata(String::new()),
            true,
        ),
        (
            "metadata not an object",
            raw_file(r#"{"__metadata__":["k"]}"#, &[]),
            HeaderError::BadMetadata(String::new()),
            true,
        ),
        (
            "entry not an object",
            raw_file(r#"{"a":3}"#, &[]),
            HeaderError::BadEntry { tensor: e("a"), reason: String::new() },
            true,
        ),
        (
            "missing dtype",
            raw_file(r#"{"a":{"shape":[],"data_offsets":[0,0]}}"#, &[]),
            HeaderError::BadEntry { tensor: e("a"), reason: String::new() },
            true,
        ),
        (
            "dtype not a string",
            raw_file(r#"{"a":{"dtype":4,"shape":[],"data_offsets":[0,4]}}"#, &[0; 4]),
            HeaderError::BadEntry { tensor: e("a"), reason: String::new() },
            true,
        ),
        (
            "missing shape",
            raw_file(r#"{"a":{"dtype":"F32","data_offsets":[0,4]}}"#, &[0; 4]),
            HeaderError::BadEntry { tensor: e("a"), reason: String::new() },
            true,
        ),
        (
            "missing offsets",
            raw_file(r#"{"a":{"dtype":"F32","shape":[]}}"#, &[0; 4]),
            HeaderError::BadEntry { tensor: e("a"), reason: String::new() },
            true,
        ),
        (
            "negative dimension",
            raw_file(r#"{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}}"#, &[]),
            HeaderError::BadShape { tensor: e("a") },
            true,
        ),
        (
            "fractional dimension",
            raw_file(r#"{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}"#, &[0; 4]),
            HeaderError::BadShape { tensor: e("a") },
            true,
        ),
        (
            "shape not an array",
            raw_file(r#"{"a":{"dtype":"F32","shape":3,"data_offsets":[0,12]}}"#, &[0; 12]),
            HeaderError::BadShape { tensor: e("a") },
            true,
        ),
        (
            "one offset",
            raw_file(r#"{"a":{"dtype":"F32","shape":[],"data_offsets":[4]}}"#, &[0; 4]),
            HeaderError::BadOffsets { tensor: e("a") },
            true,
        ),
        (
            "three offsets",
            raw_file(r#"{"a":{"dtype":"F32","shape":[],"data_offsets":[0,4,8]}}"#, &[0; 8]),
            HeaderError::BadOffsets { tensor: e("a") },
            true,
        ),
        (
            "negative offset",
            raw_file(r#"{"a":{"dtype":"F32","shape":[],"data_offsets":[-4,0]}}"#, &[]),
            HeaderError::BadOffsets { tensor: e("a") },
            true,
        ),
        (
            "element count overflows",
            raw_file(r#"{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}}"#, &[]),
            HeaderError::ShapeOverflow { tensor: e("a"), shape: vec![1 << 32, 1 << 32] },
            true,
        ),
        (
            "byte count overflows",
            raw_file(r#"{"a":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,0]}}"#, &[]),
            HeaderError::ShapeOverflow { tensor: e("a"), shape: vec![1 << 62] },
            true,
        ),
        (
            "offsets reversed",
            raw_file(r#"{"a":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}}"#, &[0; 4]),
            HeaderError::ReversedOffsets { tensor: e("a"), start: 4, end: 0 },
            true,
        ),
        (
            "byte length differs from shape",
            raw_file(r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#, &[0; 4]),
            HeaderError::ByteLengthMismatch { tensor: e("a"), expected: 8, actual: 4 },
            true,
        ),
        (
            "first tensor not at 0",
            raw_file(r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}}"#, &[0; 8]),
            HeaderError::Gap { tensor: e("a"), start: 4, expected: 0 },
            true,
        ),
        (
            "gap between tensors",
            raw_file(
                r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[8,12]}}"#,
                &[0; 12],
            ),
            HeaderError::Gap { tensor: e("b"), start: 8, expected: 4 },
            true,
        ),
        (
            "overlapping tensors",
            raw_file(
                r#"{"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]},"b":{"dtype":"U8","shape":[8],"data_offsets":[4,12]}}"#,
                &[0; 12],
            ),
            HeaderError::Overlap { tensor: e("b"), start: 4, expected: 8 },
            true,
        ),
        (
            "aliased tensors",
            raw_file(
                r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}"#,
                &[0; 4],
            ),
            HeaderError::Overlap { tensor: e("b"), start: 0, expected: 4 },
            true,
        ),
        (
            "data section longer than the tensors",
            raw_file(r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}"#, &[0; 5]),
            HeaderError::DataSizeMismatch { covered: 4, data_len: 5 },
            true,
        ),
        (
            "data section shorter than the tensors",
            raw_file(r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}"#, &[0; 3]),
            HeaderError::DataSizeMismatch { covered: 4, data_len: 3 },
            true,
        ),
    ];
    for dtype in ["F4", "F6_E2M3", "F8_E8M0", "C64", "f32", "Float32", ""] {
        let header = format!(r#"{{"a":{{"dtype":"{dtype}","shape":[0],"data_offsets":[0,0]}}}}"#);
        // The reference knows some of these (F4, C64, …); Kinema refuses them all.
        let reference_refuses = !["F4", "F6_E2M3", "F8_E8M0", "C64"].contains(&dtype);
        v.push((
            "unsupported dtype",
            raw_file(&header, &[]),
            HeaderError::UnsupportedDtype { tensor: e("a"), dtype: dtype.into() },
            reference_refuses,
        ));
    }
    v
}

/// Variants carrying free text (serde messages) compare by variant only.
fn same_error(got: &HeaderError, want: &HeaderError) -> bool {
    match (got, want) {
        (HeaderError::NotJson(_), HeaderError::NotJson(_))
        | (HeaderError::BadMetadata(_), HeaderError::BadMetadata(_)) => true,
        (HeaderError::BadEntry { tensor: a, .. }, HeaderError::BadEntry { tensor: b, .. }) => a == b,
        _ => got == want,
    }
}

#[test]
fn every_header_rule_has_its_error() {
    for (name, file, want, reference_refuses) in header_cases() {
        let got = parse_file(&file).expect_err(name);
        assert!(same_error(&got, &want), "{name}: got {got:?}, want {want:?}");
        assert!(!got.to_string().contains('\n'), "{name}: one-line message");
        if reference_refuses {
            assert!(safetensors::SafeTensors::deserialize(&file).is_err(), "{name}: the reference accepts it");
        }
    }
}

#[test]
fn header_errors_name_the_file() {
    for (name, file, want, _) in header_cases() {
        let source = Box::new(BytesSource::new("bad.safetensors", file));
        let err = pollster::block_on(Checkpoint::from_source("bad.safetensors", source)).err().expect(name);
        match &err {
            Error::Header { file, source } => {
                assert_eq!(file, "bad.safetensors");
                assert!(same_error(source, &want), "{name}: {source:?}");
            }
            other => panic!("{name}: {other}"),
        }
        assert!(err.to_string().starts_with("bad.safetensors: "), "{err}");
    }
}

#[test]
fn valid_edge_cases_agree_with_the_reference() {
    let cases = [
        raw_file("{}", &[]),
        raw_file("  {}  ", &[]),
        raw_file(r#"{"__metadata__":null}"#, &[]),
        raw_file(r#"{"__metadata__":{"a":"b"},"x":{"dtype":"BOOL","shape":[],"data_offsets":[0,1]}}"#, &[1]),
        // Out-of-order entries, an empty tensor between two others, unknown extra keys.
        raw_file(
            r#"{"b":{"dtype":"F16","shape":[1,2],"data_offsets":[4,8]},"e":{"dtype":"I64","shape":[0,9],"data_offsets":[4,4],"x":1},"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}"#,
            &[0; 8],
        ),
    ];
    for file in cases {
        let ours = parse_file(&file).unwrap_or_else(|e| panic!("{e}"));
        let theirs = safetensors::SafeTensors::deserialize(&file).expect("the reference accepts it");
        let mut names: Vec<String> = theirs.names().into_iter().map(str::to_string).collect();
        names.sort();
        let mut ours_names: Vec<String> = ours.tensors.iter().map(|t| t.name.clone()).collect();
        ours_names.sort();
        assert_eq!(ours_names, names);
        for t in &ours.tensors {
            let r = theirs.tensor(&t.name).unwrap();
            assert_eq!(t.shape, r.shape().iter().map(|&d| d as u64).collect::<Vec<_>>());
            assert_eq!(t.byte_len() as usize, r.data().len());
        }
    }
}

// ---- sharded indexes -------------------------------------------------------

fn shard(tensors: &[&str]) -> Vec<u8> {
    let entries: Vec<String> = tensors
        .iter()
        .enumerate()
        .map(|(i, t)| format!(r#""{t}":{{"dtype":"F32","shape":[1],"data_offsets":[{},{}]}}"#, 4 * i, 4 * i + 4))
        .collect();
    raw_file(&format!("{{{}}}", entries.join(",")), &vec![0; 4 * tensors.len()])
}

/// A folder with shards `s1` (a, b) and `s2` (c), an index, and a valid shard outside the folder.
fn sharded(index: &str) -> (TempDir, Result<Checkpoint, Error>) {
    let tmp = TempDir::new("index");
    tmp.write("ckpt/s1.safetensors", shard(&["a", "b"]));
    tmp.write("ckpt/s2.safetensors", shard(&["c"]));
    tmp.write("outside.safetensors", shard(&["a"]));
    let path = tmp.write("ckpt/model.safetensors.index.json", index);
    let result = pollster::block_on(Checkpoint::open(path.to_str().unwrap()));
    (tmp, result)
}

fn index_error(index: &str) -> IndexError {
    match sharded(index).1 {
        Err(Error::Index { source, .. }) => source,
        Err(e) => panic!("{index}: not an index error: {e}"),
        Ok(_) => panic!("{index}: accepted"),
    }
}

#[test]
fn a_good_index_opens() {
    let (_tmp, ckpt) = sharded(
        r#"{"metadata":{"total_size":12},"weight_map":{"a":"s1.safetensors","b":"s1.safetensors","c":"s2.safetensors"}}"#,
    );
    let ckpt = ckpt.unwrap();
    assert_eq!(ckpt.len(), 3);
    assert_eq!(ckpt.get("c").unwrap().shard.file, "s2.safetensors");
}

#[test]
fn every_index_rule_has_its_error() {
    let cases: Vec<(&str, IndexError)> = vec![
        ("{", IndexError::NotJson(String::new())),
        ("[]", IndexError::NotJson(String::new())),
        (r#"{"metadata":{}}"#, IndexError::MissingWeightMap),
        (r#"{"weight_map":[]}"#, IndexError::MissingWeightMap),
        (r#"{"metadata":3,"weight_map":{}}"#, IndexError::BadMetadata),
        (r#"{"weight_map":{"a":1}}"#, IndexError::BadEntry { tensor: e("a") }),
        (r#"{"weight_map":{"a":"s1.safetensors","a":"s2.safetensors"}}"#, IndexError::DuplicateKey(e("a"))),
        (r#"{"weight_map":{},"weight_map":{}}"#, IndexError::DuplicateKey(e("weight_map"))),
        (
            r#"{"weight_map":{"a":"../outside.safetensors"}}"#,
            IndexError::UnsafePath { path: e("../outside.safetensors") },
        ),
        (
            r#"{"weight_map":{"a":"sub/../../outside.safetensors"}}"#,
            IndexError::UnsafePath { path: e("sub/../../outside.safetensors") },
        ),
        (r#"{"weight_map":{"a":"/etc/passwd"}}"#, IndexError::UnsafePath { path: e("/etc/passwd") }),
        (
            r#"{"weight_map":{"a":"..\\outside.safetensors"}}"#,
            IndexError::UnsafePath { path: e("..\\outside.safetensors") },
        ),
        (
            r#"{"weight_map":{"a":"http://example.com/x.safetensors"}}"#,
            IndexError::UnsafePath { path: e("http://example.com/x.safetensors") },
        ),
        (
            r#"{"weight_map":{"a":"%2e%2e/outside.safetensors"}}"#,
            IndexError::UnsafePath { path: e("%2e%2e/outside.safetensors") },
        ),
        (
            r#"{"weight_map":{"a":"s3.safetensors"}}"#,
            IndexError::MissingShard { shard: e("s3.safetensors"), reason: String::new() },
        ),
        (
            r#"{"weight_map":{"c":"s1.safetensors"}}"#,
            IndexError::TensorNotInShard { tensor: e("c"), shard: e("s1.safetensors") },
        ),
    ];
    for (index, want) in cases {
        let got = index_error(index);
        let same = match (&got, &want) {
            (IndexError::NotJson(_), IndexError::NotJson(_)) => true,
            (IndexError::MissingShard { shard: a, .. }, IndexError::MissingShard { shard: b, .. }) => a == b,
            _ => got == want,
        };
        assert!(same, "{index}: got {got:?}, want {want:?}");
    }
}

#[test]
fn a_bad_shard_behind_an_index_names_the_shard() {
    let tmp = TempDir::new("badshard");
    tmp.write("s1.safetensors", raw_file(r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#, &[0; 4]));
    let path = tmp.write("m.safetensors.index.json", r#"{"weight_map":{"a":"s1.safetensors"}}"#);
    let err = pollster::block_on(Checkpoint::open(path.to_str().unwrap())).err().unwrap();
    assert!(matches!(err, Error::Header { source: HeaderError::ByteLengthMismatch { .. }, .. }), "{err}");
    assert!(err.to_string().contains("s1.safetensors"), "{err}");
}

#[test]
fn folders_and_paths() {
    let tmp = TempDir::new("folders");
    std::fs::create_dir_all(tmp.path("empty")).unwrap();
    let err = pollster::block_on(Checkpoint::open(tmp.path("empty").to_str().unwrap())).err().unwrap();
    assert!(err.to_string().contains("no .safetensors file"), "{err}");
    tmp.write("two/a.safetensors", shard(&["a"]));
    tmp.write("two/b.safetensors", shard(&["b"]));
    let err = pollster::block_on(Checkpoint::open(tmp.path("two").to_str().unwrap())).err().unwrap();
    assert!(err.to_string().contains("several .safetensors files"), "{err}");
    let err = pollster::block_on(Checkpoint::open(tmp.path("missing.safetensors").to_str().unwrap())).err().unwrap();
    assert!(matches!(err, Error::Io { .. }) && err.to_string().contains("missing.safetensors"), "{err}");
    // Not regular files: a FIFO (opening it would block) and a device.
    let fifo = tmp.path("fifo.safetensors");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    for path in [fifo.to_str().unwrap(), "/dev/zero"] {
        let err = pollster::block_on(Checkpoint::open(path)).err().unwrap();
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }
    // One file in a folder is found without an index.
    tmp.write("one/x.safetensors", shard(&["x", "y"]));
    let ckpt = pollster::block_on(Checkpoint::open(tmp.path("one").to_str().unwrap())).unwrap();
    assert_eq!(ckpt.len(), 2);
}
