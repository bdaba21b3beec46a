//! Differential fuzzing of the safetensors header parser against the
//! reference implementation (the `safetensors` crate).
#![no_main]

use kinema_engine::weights::header::{HeaderError, parse_file};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let ours = parse_file(data);
    let theirs = safetensors::SafeTensors::deserialize(data);
    match (&ours, &theirs) {
        (Ok(h), Ok(r)) => {
            assert_eq!(h.tensors.len(), r.len());
            for t in &h.tensors {
                let rt = r.tensor(&t.name).expect("the reference has every tensor we have");
                assert_eq!(t.dtype.name(), format!("{:?}", rt.dtype()));
                assert!(t.shape.iter().map(|&d| d as usize).eq(rt.shape().iter().copied()));
                assert_eq!(t.byte_len() as usize, rt.data().len());
            }
        }
        (Ok(_), Err(e)) => panic!("we accept what the reference refuses: {e:?}"),
        // Deliberate differences: we refuse duplicate keys (the reference keeps
        // the last) and dtypes outside our set (F4, F6_*, F8_E8M0, C64, …).
        (Err(HeaderError::DuplicateKey(_) | HeaderError::UnsupportedDtype { .. }), Ok(_)) => {}
        (Err(e), Ok(_)) => panic!("we refuse what the reference accepts: {e}"),
        (Err(_), Err(_)) => {}
    }
    if let Err(e) = &ours {
        assert!(!e.to_string().contains('\n'));
    }
});
