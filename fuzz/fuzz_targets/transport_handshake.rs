//! Arbitrary bytes as the connector's side of a handshake, fed to the acceptor (without and
//! with a shared secret). Must never panic, whatever it decides.
#![no_main]

use libfuzzer_sys::fuzz_target;

mod transport_entry;

fuzz_target!(|data: &[u8]| {
    let _ = transport_entry::handshake(data);
});
