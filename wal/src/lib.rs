//! `kommander-wal`: one write-ahead log holding the interleaved records of many Raft
//! partitions, written in group-committed, 4 KiB-aligned batch frames.
//!
//! * [`Wal`] is the log: append records for any number of partitions, submit once per loop
//!   turn, poll or wait for durability; read entries as `Bytes` borrowing the mapped segment.
//! * [`Write`] is one write of a batch; [`PartitionId`], [`Lsn`], [`TermVote`] and
//!   [`PartitionInfo`] are the values the log takes and reports; [`WalConfig`] its limits.
//! * [`backend`] holds the I/O backends (blocking, simulated; io_uring in its own module),
//!   chosen through [`WalConfig::backend`].
//! * [`inspect()`] reports what a WAL directory holds and what recovery would do with it,
//!   without changing anything (`kommander wal inspect DIR`).
//! * [`fuzzing`] holds the fuzz targets' entry points and the format's decoders for tests;
//!   it is not a stable API.
//!
//! The on-disk format and the recovery decision table are in `docs/wal-format.md`.
//!
//! ```
//! use kommander_wal::{TermVote, PartitionId, Wal, WalConfig};
//!
//! # fn main() -> Result<(), kommander_wal::Error> {
//! let dir = std::env::temp_dir().join(format!("kommander-wal-doctest-{}", std::process::id()));
//! # let _ = std::fs::remove_dir_all(&dir);
//! let config = WalConfig { segment_bytes: 1 << 20, batch_bytes_max: 64 << 10,
//!                          record_bytes_max: 16 << 10, ..WalConfig::default() };
//! let mut wal = Wal::open(&dir, config.clone())?;
//! let p = PartitionId(7);
//! wal.set_term_vote(p, TermVote { term: 1, vote: Some(2) })?;
//! wal.append_entry(p, 1, 1, b"hello")?;
//! let ticket = wal.append_entry(p, 2, 1, b"world")?;
//! wal.submit()?;                       // one durable write for all three records
//! wal.wait_durable(ticket)?;
//! assert_eq!(&wal.entry(p, 2)?[..], b"world");
//! drop(wal);
//! let wal = Wal::open(&dir, config)?;  // recovery
//! assert_eq!(wal.partition(p)?.last_index, 2);
//! # drop(wal); let _ = std::fs::remove_dir_all(&dir);
//! # Ok(()) }
//! ```

pub mod backend;
mod config;
mod directory;
mod error;
mod format;
pub mod fuzzing;
pub mod inspect;
mod preparer;
mod recovery;
mod segment;
mod state;
mod types;
mod wal;

pub use config::WalConfig;
pub use directory::MARKER_NAME;
pub use error::{Error, Result};
pub use inspect::{InspectOptions, InspectReport, inspect};
pub use types::{Lsn, PartitionId, PartitionInfo, TermVote, Write};
pub use wal::Wal;
