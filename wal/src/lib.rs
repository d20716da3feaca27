//! `kommander-wal`: one write-ahead log holding the interleaved records of many Raft
//! partitions, written in group-committed batch frames through io_uring.
//!
//! See `docs/architecture.md` at the repository root for where this crate sits.

pub mod backend;
pub mod format;
