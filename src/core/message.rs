//! The messages replicas exchange. Every message names its partition, sender, receiver and the
//! sender's term; bodies are one-way (a response is another message in the other direction).

use bytes::Bytes;

use super::configuration::Configuration;
use super::entry::Entry;
use super::types::{LogIndex, NodeId, PartitionId, Term};

/// The longest [`MessageBody::SnapshotChunk`] `marks`: the wire codec refuses a longer one.
/// The shard's encoding of a partition's split marks is at most this long (asserted where it
/// is defined).
pub const SNAPSHOT_MARKS_BYTES_MAX: usize = 34;

/// A message between two replicas of one partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The partition (Raft group) this message belongs to.
    pub partition: PartitionId,
    /// Sender.
    pub from: NodeId,
    /// Receiver.
    pub to: NodeId,
    /// The sender's term (for pre-votes: the term the sender would campaign in).
    pub term: Term,
    /// What the message says.
    pub body: MessageBody,
}

/// The body of a [`Message`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageBody {
    /// "Would you vote for me in `term`?" Sent without changing the sender's term (thesis §9.6).
    PreVoteRequest {
        /// Index of the candidate's last entry.
        last_log_index: LogIndex,
        /// Term of the candidate's last entry.
        last_log_term: Term,
        /// The version of the candidate's committed configuration
        /// (`Replica::set_configuration_version`).
        configuration_version: u64,
    },
    /// Answer to a pre-vote. When granted the message term is the request's term, otherwise the
    /// responder's own term.
    PreVoteResponse {
        /// Whether the pre-vote is granted.
        granted: bool,
    },
    /// A real vote request for `term`.
    VoteRequest {
        /// Index of the candidate's last entry.
        last_log_index: LogIndex,
        /// Term of the candidate's last entry.
        last_log_term: Term,
        /// The version of the candidate's committed configuration
        /// (`Replica::set_configuration_version`).
        configuration_version: u64,
        /// Set when the election was triggered by a leadership transfer (`TimeoutNow`): voters
        /// then disregard their leader lease.
        transfer: bool,
    },
    /// Answer to a vote request. Sent only after the vote is durable.
    VoteResponse {
        /// Whether the vote is granted.
        granted: bool,
    },
    /// Anchored AppendEntries: `entries` follow the entry (`prev_log_index`, `prev_log_term`).
    AppendRequest {
        /// Index of the entry immediately before `entries`.
        prev_log_index: LogIndex,
        /// Term of that entry.
        prev_log_term: Term,
        /// Consecutive entries starting at `prev_log_index + 1` (may be empty: a probe).
        entries: Vec<Entry>,
        /// The leader's commit index.
        commit: LogIndex,
    },
    /// Answer to an append. Sent only after the appended entries are durable.
    AppendResponse {
        /// `true`: the follower's log matches the leader's up to `index`.
        /// `false`: the anchor at `index` (the request's `prev_log_index`) did not match.
        success: bool,
        /// On success the follower's match index; on rejection the rejected `prev_log_index`.
        index: LogIndex,
        /// On rejection: the follower's best guess of where the logs may agree (fast
        /// backtracking, §5.3 optimisation): an index whose term is ≤ `hint_term`.
        hint_index: LogIndex,
        /// On rejection: the term of the follower's entry at `hint_index`.
        hint_term: Term,
    },
    /// Leader heartbeat; carries the leader's commit index (capped at the follower's match) and
    /// the current ReadIndex round.
    Heartbeat {
        /// Commit index the follower may adopt (never above what it is known to hold).
        commit: LogIndex,
        /// ReadIndex round this heartbeat confirms (0: none).
        read_round: u64,
        /// The leader is idle and every member caught up: a follower whose log ends at
        /// `commit` quiesces (decision 0007). Also set on the keep-alives a quiesced leader's
        /// runtime sends (`Replica::keep_alive`).
        quiesce: bool,
    },
    /// Answer to a heartbeat.
    HeartbeatResponse {
        /// Echo of the heartbeat's `read_round`.
        read_round: u64,
    },
    /// "Start an election now" (leadership transfer; sent by the leader to the target).
    TimeoutNow,
    /// A follower asks the leader for a read index on behalf of its caller.
    ReadIndexRequest {
        /// The caller's context, echoed in the response.
        context: u64,
    },
    /// The leader's answer to a [`MessageBody::ReadIndexRequest`].
    ReadIndexResponse {
        /// The caller's context.
        context: u64,
        /// The confirmed read index (meaningful only if `ok`).
        index: LogIndex,
        /// Whether the leader confirmed the read.
        ok: bool,
    },
    /// One chunk of a snapshot a leader streams to a follower whose log ends below the
    /// leader's compaction floor. The core only checks its term; the runtimes on both sides
    /// run the transfer (the core hands it over in `Ready::snapshot_messages`). Boxed: the
    /// chunk is four times the size of every other body, and every message is moved several
    /// times between a replica and the wire.
    SnapshotChunk(Box<SnapshotChunk>),
    /// A follower's answer to a [`MessageBody::SnapshotChunk`].
    SnapshotAck {
        /// The transfer.
        session: u64,
        /// The chunk answered.
        seq: u32,
        /// What became of it.
        outcome: SnapshotOutcome,
    },
}

/// The body of a [`MessageBody::SnapshotChunk`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotChunk {
    /// The transfer, unique per leader and follower.
    pub session: u64,
    /// The chunk's position in the transfer: 0, 1, 2, ...
    pub seq: u32,
    /// The snapshot's last index.
    pub last_index: LogIndex,
    /// The term of the entry at `last_index`.
    pub last_term: Term,
    /// The configuration in force at `last_index` (the follower's log restarts with it).
    pub configuration: Configuration,
    /// CRC32C of `data`.
    pub crc: u32,
    /// The SHA-256 of the whole snapshot, on the last chunk only.
    pub digest: Option<[u8; 32]>,
    /// What the runtime keeps beside the snapshot, on the first chunk (`seq` 0) only
    /// (empty on the others): opaque to the core, at most `SNAPSHOT_MARKS_BYTES_MAX`
    /// (34) bytes. The shard puts a user partition's split marks at `last_index` here
    /// (decision 0006).
    pub marks: Bytes,
    /// The chunk's bytes.
    pub data: Bytes,
}

/// What a follower did with a snapshot chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotOutcome {
    /// Written; the next chunks may come.
    Received,
    /// The last chunk: the snapshot is installed and its boundary durable.
    Installed,
    /// The transfer ended here (a stale term, a chunk out of order, a checksum that does not
    /// match, a cap, an import that failed).
    Refused,
    /// Answers a first chunk when the follower receives as many transfers as it takes at once
    /// (`snapshot.sessions_max`): nothing of it was kept, the leader waits for `Free` (or, if
    /// that is lost, for `snapshot.ack_timeout_ticks`) and sends it again. Not a failure: the
    /// leader's back-off does not grow.
    Busy,
    /// The follower that answered `Busy` has room for a transfer now: start it again.
    Free,
}

impl MessageBody {
    /// A short name for traces and tests.
    #[must_use]
    pub const fn name(&self) -> &'static str {
        match self {
            Self::PreVoteRequest { .. } => "PreVoteRequest",
            Self::PreVoteResponse { .. } => "PreVoteResponse",
            Self::VoteRequest { .. } => "VoteRequest",
            Self::VoteResponse { .. } => "VoteResponse",
            Self::AppendRequest { .. } => "AppendRequest",
            Self::AppendResponse { .. } => "AppendResponse",
            Self::Heartbeat { .. } => "Heartbeat",
            Self::HeartbeatResponse { .. } => "HeartbeatResponse",
            Self::TimeoutNow => "TimeoutNow",
            Self::ReadIndexRequest { .. } => "ReadIndexRequest",
            Self::ReadIndexResponse { .. } => "ReadIndexResponse",
            Self::SnapshotChunk { .. } => "SnapshotChunk",
            Self::SnapshotAck { .. } => "SnapshotAck",
        }
    }
}
