//! Fuzzing of a whole session on the CPU delegate: program + checkpoint +
//! inputs → `Session::new` + `run` (see `kinema_tests::session_case`): no
//! panic, hang or huge allocation on any input, and outputs of the program's shapes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    kinema_tests::session_case::run(data);
});
