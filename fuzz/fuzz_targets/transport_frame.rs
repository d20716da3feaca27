//! Arbitrary bytes as a peer's stream: frame reader with limits, `Messages`, client protocol
//! and membership call decoders. Must never panic; every decoded body must re-encode to its
//! bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

mod transport_entry;

fuzz_target!(|data: &[u8]| {
    let _ = transport_entry::frame(data);
});
