//! Recovery (scan + replay) of arbitrary segment images: must never panic, whatever it decides.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = kommander_wal::fuzzing::recovery(data);
});
