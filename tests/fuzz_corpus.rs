//! Replays the committed fuzz corpora (`fuzz/corpus/`) with the fuzz targets'
//! own assertions, so every input the fuzzer once found interesting stays
//! checked by `cargo test`, without nightly or cargo-fuzz.

use kinema_engine::weights::header::{HeaderError, parse_file};
use kinema_engine::weights::index::{check_relative_path, parse_index};

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files.into_iter().map(|p| (p.display().to_string(), std::fs::read(&p).unwrap())).collect()
}

#[test]
fn header_corpus_agrees_with_the_reference() {
    let inputs = corpus("header");
    assert!(inputs.len() >= 2);
    for (name, data) in inputs {
        let ours = parse_file(&data);
        let theirs = safetensors::SafeTensors::deserialize(&data);
        match (&ours, &theirs) {
            (Ok(h), Ok(r)) => {
                assert_eq!(h.tensors.len(), r.len(), "{name}");
                for t in &h.tensors {
                    let rt = r.tensor(&t.name).unwrap();
                    assert!(t.shape.iter().map(|&d| d as usize).eq(rt.shape().iter().copied()), "{name}");
                    assert_eq!(t.byte_len() as usize, rt.data().len(), "{name}");
                }
            }
            (Ok(_), Err(e)) => panic!("{name}: we accept what the reference refuses: {e:?}"),
            (Err(HeaderError::DuplicateKey(_) | HeaderError::UnsupportedDtype { .. }), Ok(_)) => {}
            (Err(e), Ok(_)) => panic!("{name}: we refuse what the reference accepts: {e}"),
            (Err(_), Err(_)) => {}
        }
        if let Err(e) = &ours {
            assert!(!e.to_string().contains('\n'), "{name}: the message must be one line: {e}");
        }
    }
}

#[test]
fn index_corpus_keeps_paths_inside() {
    let inputs = corpus("index");
    assert!(inputs.len() >= 2);
    for (name, data) in inputs {
        if let Ok(index) = parse_index(&data) {
            for shard in &index.shards {
                assert!(check_relative_path(shard).is_ok(), "{name}: {shard}");
            }
        }
    }
}

#[test]
fn program_corpus_loads_or_is_refused_in_one_line() {
    let inputs = corpus("program");
    assert!(inputs.len() >= 2);
    let mut accepted = 0;
    for (name, data) in inputs {
        let Ok(text) = std::str::from_utf8(&data) else { continue };
        match kinema_engine::program::Program::from_json(text) {
            Ok(p) => {
                accepted += 1;
                let plan = kinema_engine::plan::Plan::new(&p, None);
                assert!(plan.arena.len >= plan.arena.peak_live, "{name}");
            }
            Err(e) => assert!(!e.to_string().contains('\n'), "{name}: one line: {e}"),
        }
    }
    assert!(accepted >= 2, "the exported seeds load");
}

#[test]
fn session_corpus_runs_or_is_refused_in_one_line() {
    use kinema_tests::session_case::{Outcome, run};
    let inputs = corpus("session");
    assert!(inputs.len() >= 3);
    let ran = inputs.iter().filter(|(_, data)| run(data) == Outcome::Ran).count();
    assert!(ran >= 3, "the seeds run ({ran} did)");
}
