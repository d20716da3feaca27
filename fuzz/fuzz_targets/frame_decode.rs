//! Frame and record decoding of arbitrary segment bytes: must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = kommander_wal::fuzzing::frame_decode(data);
});
