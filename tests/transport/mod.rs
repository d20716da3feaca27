//! The TCP transport: in-process nodes talking over real loopback sockets, its peer set
//! changing at runtime, the send path (direct writes and the writer thread), the peers' client endpoints, membership calls, the wire format's properties and the fuzz corpus
//! replay.

mod calls;
mod client_endpoints;
mod cluster;
mod duplicate;
mod duplicate_node;
mod fuzz_corpus;
mod peers;
mod send_path;
mod wire;
