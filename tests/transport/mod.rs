//! The TCP transport: in-process nodes talking over real loopback sockets, the wire format's
//! properties and the fuzz corpus replay.

mod cluster;
mod fuzz_corpus;
mod wire;
