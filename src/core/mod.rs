//! The sans-IO Raft core: one [`Replica`] per partition, a deterministic state machine with no
//! clock, no I/O, no threads and no async.
//!
//! # Driving a replica
//!
//! Inputs are [`Replica::tick`] (logical time), [`Replica::step`] (a message from a peer),
//! [`Replica::propose`] and friends (from the application, on the leader),
//! [`Replica::persisted`] (a Ready is durable) and [`Replica::applied`] (the application applied
//! delivered entries). Output is a [`Ready`]; its documentation states the obligations in order.
//! A runtime loop looks like this:
//!
//! ```
//! use kommander_raft::core::{ReplicaConfig, DurableState, NodeId, PartitionId, Replica};
//!
//! let config = ReplicaConfig::new(NodeId(1), PartitionId(1), vec![NodeId(1)]);
//! let mut replica = Replica::new(config, DurableState::default()).expect("valid config");
//! for _ in 0..50 {
//!     replica.tick();
//!     while replica.has_ready() {
//!         let ready = replica.ready();
//!         // 1. persist ready.hard_state and ready.entries (WAL), 2. send ready.messages,
//!         // 3. when durable: replica.persisted(ready.number) and send the gated messages,
//!         let _gated = ready.persisted_messages.release(ready.number);
//!         replica.persisted(ready.number);
//!         // 4. deliver ready.committed_entries, then report them applied.
//!         replica.applied(ready.committed_through);
//!     }
//! }
//! assert!(replica.is_leader());
//! ```
//!
//! # Protocol
//!
//! Standard Raft (paper §5, thesis §3, §6.4 ReadIndex, §9.6 pre-vote, §10.2.1 parallel leader
//! write): pre-vote always; check-quorum on by default (with a leader lease on followers);
//! randomized election timeouts from a seeded PRNG; one vote per term, persisted before the
//! vote leaves (votes are gated messages); anchored pipelined AppendEntries with per-follower
//! in-flight windows and fast backtracking (conflict term/index hint); a commit index advanced
//! only by a quorum match on a current-term entry, counting the leader's own *durable* index
//! like a follower's ack; a no-op barrier on election; learners; configuration changes through
//! the log, one voter at a time, once the no-op of the leader's term has committed; leadership
//! transfer (`TimeoutNow`); step-down; ReadIndex confirmed by a heartbeat round.
//!
//! # Kommander's write model
//!
//! Proposals carry a [`Ticket`]. `auto_commit = false` proposals are Raft-committed but held
//! from delivery until a Commit or Rollback marker for their ticket commits; delivery is
//! strictly in log order, so a held proposal holds everything behind it. Rolled-back entries,
//! markers and no-ops are never delivered. Entries are delivered only once committed *and*
//! locally durable, exactly once. A committed checkpoint becomes the compaction floor once
//! applied; a follower needing entries below it is reported in `Ready::snapshot_required`.
//!
//! # Memory
//!
//! The core keeps every entry above the compaction floor in memory (see `log.rs`); the
//! runtime bounds that with checkpoints. A follower that needs entries below the leader's floor
//! is reported once in `Ready::snapshot_required` and is sent nothing until the runtime
//! transfers the application state and calls [`Replica::install_snapshot`] on the follower
//! (whose acknowledgement resumes replication), then [`Replica::report_snapshot_installed`]
//! or [`Replica::report_snapshot_failure`] on the leader.

mod config;
mod configuration;
mod configurations;
mod entry;
mod hold;
mod log;
mod message;
mod progress;
mod ready;
mod replica;
pub(crate) mod rng;
mod status;
mod types;

#[cfg(feature = "sim-bugs")]
pub use config::InjectedBug;
pub use config::{ReplicaConfig, ReplicaConfigError};
pub use configuration::{
    CONFIGURATION_BYTES_MAX, CONFIGURATION_CONTEXT_BYTES_MAX, CONFIGURATION_MEMBERS_MAX,
    Configuration, ConfigurationError,
};
pub use entry::{Entry, EntryKind};
pub use message::{Message, MessageBody, SNAPSHOT_MARKS_BYTES_MAX, SnapshotChunk, SnapshotOutcome};
#[cfg(feature = "sim")]
pub use progress::{ProgressState, ProgressView};
pub use ready::{Floor, GatedMessages, HardState, Ready, Role, SoftState};
#[cfg(feature = "sim")]
pub use ready::{Outcome, ReadState};
pub use replica::{DurableState, Replica};
pub use status::Status;
pub use types::{LogIndex, NodeId, PartitionId, Term, Ticket};
