//! The WAL's integration tests: one binary, one module per concern.

mod common;
mod conformance;
