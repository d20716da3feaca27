//! The store's tests: three in-process nodes on loopback TCP, driven over HTTP.
//!
//! `cargo test -p kommander-kv --profile ci --test main`

mod api;
mod append;
mod bad_input;
mod binary;
mod cluster;
mod compaction;
mod restart;
mod split;
