//! The WAL's integration tests: one binary, one module per concern.

// Test helpers are `pub` for the sibling modules; the binary exports nothing.
#![allow(unreachable_pub)]

mod bad_input;
mod checklist;
mod common;
mod conformance;
mod crash;
mod doc_cases;
mod doc_reader;
mod fuzz_corpus;
mod inspect;
mod reclaim;
mod sim_disk;
mod uring;
