//! The node's metrics: their names, their descriptions, and the helpers that record them.
//!
//! Everything is recorded through the [`metrics`](https://docs.rs/metrics) facade, so the
//! library works with any recorder the application installs (the `kommander` binary installs
//! the Prometheus exporter: `kommander node --metrics-listen ADDR`). Without a recorder every
//! recording is a no-op. Install the recorder **before** starting the node
//! ([`RaftBuilder::start`](crate::RaftBuilder::start)):
//! the shards and the node take their metric handles when they start, and a handle taken
//! before any recorder exists stays a no-op.
//!
//! Metrics are labelled by `shard` (the index of the shard thread, a handful of values) where
//! the source knows it, never by partition: a node hosts thousands of partitions, and one time
//! series per partition would swamp a Prometheus server. The per-partition view is a
//! [`tokio::sync::watch`] on the `Raft` handle instead. The table of every metric, with its
//! type, unit and labels, is `docs/metrics.md`.
//!
//! This module is a leaf: it imports nothing else of this crate, so every layer may record.

use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Unit};

/// Entries proposed through the `Raft` write path (counter; label `shard`).
pub const PROPOSALS: &str = "kommander_proposals_total";
/// Entries committed and acknowledged to the caller of the `Raft` write path (counter; label
/// `shard`).
pub const COMMITS: &str = "kommander_commits_total";
/// Seconds from a `Raft` write call to its successful commit (histogram; label `shard`).
pub const COMMIT_LATENCY: &str = "kommander_commit_latency_seconds";
/// Seconds from a WAL submission to its durability, the write and its fdatasync (histogram;
/// label `shard`).
pub const WAL_FSYNC_LATENCY: &str = "kommander_wal_fsync_seconds";
/// Records in one WAL submission (histogram; label `shard`).
pub const WAL_BATCH_RECORDS: &str = "kommander_wal_batch_records";
/// Bytes of record payload in one WAL submission (histogram; label `shard`).
pub const WAL_BATCH_BYTES: &str = "kommander_wal_batch_bytes";
/// Requests waiting in a shard's request queue, sampled once per shard tick (gauge; label
/// `shard`).
pub const SHARD_REQUEST_QUEUE_DEPTH: &str = "kommander_shard_request_queue_depth";
/// Inbound message batches waiting in a shard's inbound queue, sampled once per shard tick
/// (gauge; label `shard`).
pub const SHARD_INBOUND_QUEUE_DEPTH: &str = "kommander_shard_inbound_queue_depth";
/// Replicas of a shard that are quiesced (decision 0007: idle, fully replicated, no timer
/// running), sampled once per shard tick (gauge; label `shard`).
pub const QUIESCED_REPLICAS: &str = "kommander_quiesced_replicas";
/// Ticks an idle shard slept through instead of turning (decision 0007, the tickless idle
/// shard; counter; label `shard`).
pub const SHARD_TICKS_SKIPPED: &str = "kommander_shard_ticks_skipped_total";
/// Messages from peers dropped because their shard's inbound queue was full (counter; label
/// `shard`).
pub const INBOUND_MESSAGES_DROPPED: &str = "kommander_inbound_messages_dropped_total";
/// Messages to peers the TCP transport dropped (counter; label `reason`: `queue_full`,
/// `unknown_peer`, `not_connected` or `too_large`).
pub const TRANSPORT_MESSAGES_DROPPED: &str = "kommander_transport_messages_dropped_total";
/// Peers' frame stamps the node's hybrid logical clock refused to merge because they were
/// further ahead of its wall clock than `hlc_drift_ms_max` (counter; the frames were processed
/// all the same).
pub const TRANSPORT_STAMPS_REFUSED: &str = "kommander_transport_stamps_refused_total";
/// Elections a replica of this node ran: it reported itself candidate, or leader, in a term
/// it had not reported before (counter; label `shard`).
pub const ELECTIONS_STARTED: &str = "kommander_elections_started_total";
/// Times a replica of this node learned of a new leader (counter; label `shard`).
pub const LEADER_CHANGES: &str = "kommander_leader_changes_total";
/// Snapshot bytes a shard sent to followers (counter; label `shard`).
pub const SNAPSHOT_BYTES_SENT: &str = "kommander_snapshot_bytes_sent_total";
/// Snapshot bytes a shard received from leaders (counter; label `shard`).
pub const SNAPSHOT_BYTES_RECEIVED: &str = "kommander_snapshot_bytes_received_total";
/// Snapshot transfers a shard is sending (gauge; label `shard`).
pub const SNAPSHOT_TRANSFERS_ACTIVE: &str = "kommander_snapshot_transfers_active";
/// Snapshot transfers that failed and back off, or that could not start (counter; label
/// `shard`); a follower's `Busy` answer (its receive sessions full) is not one.
pub const SNAPSHOT_TRANSFER_FAILURES: &str = "kommander_snapshot_transfer_failures_total";
/// Snapshots installed on this node's followers (counter; label `shard`).
pub const SNAPSHOTS_INSTALLED: &str = "kommander_snapshots_installed_total";

/// Histogram bucket upper bounds for latencies, in seconds: 50 µs to 10 s.
pub const LATENCY_BUCKETS_SECONDS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 10.0,
];
/// Histogram bucket upper bounds for records per WAL submission.
pub const BATCH_RECORDS_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0, 16384.0,
];
/// Histogram bucket upper bounds for bytes per WAL submission: 256 B to 64 MiB.
pub const BATCH_BYTES_BUCKETS: &[f64] = &[
    256.0,
    1024.0,
    4096.0,
    16384.0,
    65536.0,
    262_144.0,
    1_048_576.0,
    4_194_304.0,
    16_777_216.0,
    67_108_864.0,
];
/// Every histogram with the buckets it is meant to be exported with (for exporters that need
/// buckets, such as Prometheus histograms).
pub const HISTOGRAM_BUCKETS: [(&str, &[f64]); 4] = [
    (COMMIT_LATENCY, LATENCY_BUCKETS_SECONDS),
    (WAL_FSYNC_LATENCY, LATENCY_BUCKETS_SECONDS),
    (WAL_BATCH_RECORDS, BATCH_RECORDS_BUCKETS),
    (WAL_BATCH_BYTES, BATCH_BYTES_BUCKETS),
];

/// Registers the description and unit of every metric with the installed recorder. Call it
/// once, after installing the recorder (descriptions sent before are lost).
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        PROPOSALS,
        Unit::Count,
        "Entries proposed through the Raft write path."
    );
    describe_counter!(
        COMMITS,
        Unit::Count,
        "Entries committed and acknowledged to the caller of the Raft write path."
    );
    describe_histogram!(
        COMMIT_LATENCY,
        Unit::Seconds,
        "Time from a Raft write call to its successful commit."
    );
    describe_histogram!(
        WAL_FSYNC_LATENCY,
        Unit::Seconds,
        "Time from a WAL submission to its durability (write and fdatasync)."
    );
    describe_histogram!(
        WAL_BATCH_RECORDS,
        Unit::Count,
        "Records in one WAL submission (one durable write for every partition of a shard)."
    );
    describe_histogram!(
        WAL_BATCH_BYTES,
        Unit::Bytes,
        "Bytes of record payload in one WAL submission."
    );
    describe_gauge!(
        SHARD_REQUEST_QUEUE_DEPTH,
        Unit::Count,
        "Requests waiting in the shard's request queue, sampled once per shard tick."
    );
    describe_gauge!(
        SHARD_INBOUND_QUEUE_DEPTH,
        Unit::Count,
        "Inbound message batches waiting in the shard's inbound queue, sampled once per tick."
    );
    describe_gauge!(
        QUIESCED_REPLICAS,
        Unit::Count,
        "Replicas of the shard that are quiesced (idle, fully replicated), sampled once per tick."
    );
    describe_counter!(
        SHARD_TICKS_SKIPPED,
        Unit::Count,
        "Ticks an idle shard slept through: nothing was due at them."
    );
    describe_counter!(
        INBOUND_MESSAGES_DROPPED,
        Unit::Count,
        "Messages from peers dropped because the shard's inbound queue was full."
    );
    describe_counter!(
        TRANSPORT_MESSAGES_DROPPED,
        Unit::Count,
        "Messages to peers dropped by the TCP transport (queue full, unknown peer, not \
         connected, too large)."
    );
    describe_counter!(
        TRANSPORT_STAMPS_REFUSED,
        Unit::Count,
        "Peers' frame stamps the node's clock did not merge (further ahead of its wall clock \
         than hlc_drift_ms_max)."
    );
    describe_counter!(
        ELECTIONS_STARTED,
        Unit::Count,
        "Elections run by this node's replicas (candidate or leader in a new term)."
    );
    describe_counter!(
        LEADER_CHANGES,
        Unit::Count,
        "Times a replica of this node learned of a new leader."
    );
    describe_counter!(
        SNAPSHOT_BYTES_SENT,
        Unit::Bytes,
        "Snapshot bytes sent to followers below the leader's compaction floor."
    );
    describe_counter!(
        SNAPSHOT_BYTES_RECEIVED,
        Unit::Bytes,
        "Snapshot bytes received from leaders."
    );
    describe_gauge!(
        SNAPSHOT_TRANSFERS_ACTIVE,
        Unit::Count,
        "Snapshot transfers being sent."
    );
    describe_counter!(
        SNAPSHOT_TRANSFER_FAILURES,
        Unit::Count,
        "Snapshot transfers that failed or could not start (each backs off, then retries)."
    );
    describe_counter!(
        SNAPSHOTS_INSTALLED,
        Unit::Count,
        "Snapshots installed by this node's followers."
    );
}

/// The metric handles of one shard, taken once (each recording is then an atomic operation
/// of the recorder, with no lookup). Cloning shares the handles.
#[derive(Clone)]
pub(crate) struct ShardMetrics {
    proposals: Counter,
    commits: Counter,
    commit_latency: Histogram,
    wal_fsync_latency: Histogram,
    wal_batch_records: Histogram,
    wal_batch_bytes: Histogram,
    request_queue_depth: Gauge,
    inbound_queue_depth: Gauge,
    quiesced_replicas: Gauge,
    ticks_skipped: Counter,
    inbound_messages_dropped: Counter,
    elections_started: Counter,
    leader_changes: Counter,
    snapshot_bytes_sent: Counter,
    snapshot_bytes_received: Counter,
    snapshot_transfers_active: Gauge,
    snapshot_transfer_failures: Counter,
    snapshots_installed: Counter,
}

impl ShardMetrics {
    /// The handles of shard `shard` from the installed recorder (no-ops without one).
    pub(crate) fn new(shard: usize) -> Self {
        let shard = shard.to_string();
        Self {
            proposals: metrics::counter!(PROPOSALS, "shard" => shard.clone()),
            commits: metrics::counter!(COMMITS, "shard" => shard.clone()),
            commit_latency: metrics::histogram!(COMMIT_LATENCY, "shard" => shard.clone()),
            wal_fsync_latency: metrics::histogram!(WAL_FSYNC_LATENCY, "shard" => shard.clone()),
            wal_batch_records: metrics::histogram!(WAL_BATCH_RECORDS, "shard" => shard.clone()),
            wal_batch_bytes: metrics::histogram!(WAL_BATCH_BYTES, "shard" => shard.clone()),
            request_queue_depth: metrics::gauge!(SHARD_REQUEST_QUEUE_DEPTH, "shard" => shard.clone()),
            inbound_queue_depth: metrics::gauge!(SHARD_INBOUND_QUEUE_DEPTH, "shard" => shard.clone()),
            quiesced_replicas: metrics::gauge!(QUIESCED_REPLICAS, "shard" => shard.clone()),
            ticks_skipped: metrics::counter!(SHARD_TICKS_SKIPPED, "shard" => shard.clone()),
            inbound_messages_dropped: metrics::counter!(INBOUND_MESSAGES_DROPPED, "shard" => shard.clone()),
            elections_started: metrics::counter!(ELECTIONS_STARTED, "shard" => shard.clone()),
            leader_changes: metrics::counter!(LEADER_CHANGES, "shard" => shard.clone()),
            snapshot_bytes_sent: metrics::counter!(SNAPSHOT_BYTES_SENT, "shard" => shard.clone()),
            snapshot_bytes_received: metrics::counter!(SNAPSHOT_BYTES_RECEIVED, "shard" => shard.clone()),
            snapshot_transfers_active: metrics::gauge!(SNAPSHOT_TRANSFERS_ACTIVE, "shard" => shard.clone()),
            snapshot_transfer_failures: metrics::counter!(SNAPSHOT_TRANSFER_FAILURES, "shard" => shard.clone()),
            snapshots_installed: metrics::counter!(SNAPSHOTS_INSTALLED, "shard" => shard),
        }
    }

    /// `entries` entries were proposed.
    pub(crate) fn proposed(&self, entries: u64) {
        self.proposals.increment(entries);
    }

    /// `entries` entries committed and were acknowledged `latency` after the write call.
    pub(crate) fn committed(&self, entries: u64, latency: Duration) {
        self.commits.increment(entries);
        self.commit_latency.record(latency);
    }

    /// One WAL submission of `records` records and `bytes` bytes of payload.
    pub(crate) fn wal_submitted(&self, records: usize, bytes: usize) {
        self.wal_batch_records.record(records as f64);
        self.wal_batch_bytes.record(bytes as f64);
    }

    /// A WAL submission became durable `latency` after it was submitted.
    pub(crate) fn wal_durable(&self, latency: Duration) {
        self.wal_fsync_latency.record(latency);
    }

    /// The shard's quiesced replicas at a tick.
    pub(crate) fn quiesced_replicas(&self, replicas: usize) {
        self.quiesced_replicas.set(replicas as f64);
    }

    /// The shard slept through `ticks` ticks (counted at the tick turn after the sleep).
    pub(crate) fn ticks_skipped(&self, ticks: u64) {
        self.ticks_skipped.increment(ticks);
    }

    /// The depths of the shard's queues, sampled once per tick.
    pub(crate) fn queue_depths(&self, requests: usize, inbound: usize) {
        self.request_queue_depth.set(requests as f64);
        self.inbound_queue_depth.set(inbound as f64);
    }

    /// `messages` messages from peers were dropped: the shard's inbound queue was full.
    pub(crate) fn inbound_dropped(&self, messages: usize) {
        self.inbound_messages_dropped
            .increment(u64::try_from(messages).unwrap_or(u64::MAX));
    }

    /// A replica ran an election (candidate or leader in a new term).
    pub(crate) fn election_started(&self) {
        self.elections_started.increment(1);
    }

    /// A replica learned of a new leader.
    pub(crate) fn leader_changed(&self) {
        self.leader_changes.increment(1);
    }

    /// A snapshot chunk of `bytes` bytes was sent.
    pub(crate) fn snapshot_bytes_sent(&self, bytes: usize) {
        self.snapshot_bytes_sent.increment(bytes as u64);
    }

    /// A snapshot chunk of `bytes` bytes was received.
    pub(crate) fn snapshot_bytes_received(&self, bytes: usize) {
        self.snapshot_bytes_received.increment(bytes as u64);
    }

    /// The shard now sends `active` transfers.
    pub(crate) fn snapshot_transfers(&self, active: usize) {
        self.snapshot_transfers_active.set(active as f64);
    }

    /// A transfer failed or could not start.
    pub(crate) fn snapshot_failed(&self) {
        self.snapshot_transfer_failures.increment(1);
    }

    /// A follower installed a snapshot.
    pub(crate) fn snapshot_installed(&self) {
        self.snapshots_installed.increment(1);
    }
}

/// Why the TCP transport dropped messages to a peer (Raft resends from its progress state).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TransportDrop {
    /// The peer's bounded send queue was full.
    QueueFull,
    /// The destination is not a configured peer.
    UnknownPeer,
    /// Queued while the link was reconnecting (stale by the time it connects).
    NotConnected,
    /// Larger than `frame_bytes_max` (a validated configuration never produces one).
    TooLarge,
}

/// The TCP transport's metric handles, taken once when it starts.
#[derive(Clone)]
pub(crate) struct TransportMetrics {
    queue_full: Counter,
    unknown_peer: Counter,
    not_connected: Counter,
    too_large: Counter,
    stamps_refused: Counter,
}

impl TransportMetrics {
    /// The handles from the installed recorder (no-ops without one).
    pub(crate) fn new() -> Self {
        let dropped = |reason: &'static str| metrics::counter!(TRANSPORT_MESSAGES_DROPPED, "reason" => reason);
        Self {
            queue_full: dropped("queue_full"),
            unknown_peer: dropped("unknown_peer"),
            not_connected: dropped("not_connected"),
            too_large: dropped("too_large"),
            stamps_refused: metrics::counter!(TRANSPORT_STAMPS_REFUSED),
        }
    }

    /// `messages` messages to a peer were dropped for `reason`.
    pub(crate) fn dropped(&self, reason: TransportDrop, messages: usize) {
        let counter = match reason {
            TransportDrop::QueueFull => &self.queue_full,
            TransportDrop::UnknownPeer => &self.unknown_peer,
            TransportDrop::NotConnected => &self.not_connected,
            TransportDrop::TooLarge => &self.too_large,
        };
        counter.increment(u64::try_from(messages).unwrap_or(u64::MAX));
    }

    /// A peer's frame stamp was not merged (too far ahead of the wall clock).
    pub(crate) fn stamp_refused(&self) {
        self.stamps_refused.increment(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_prometheus_conventions() {
        let counters = [
            PROPOSALS,
            COMMITS,
            INBOUND_MESSAGES_DROPPED,
            TRANSPORT_MESSAGES_DROPPED,
            TRANSPORT_STAMPS_REFUSED,
            ELECTIONS_STARTED,
            LEADER_CHANGES,
        ];
        for name in counters {
            assert!(name.ends_with("_total"), "{name}");
        }
        for (name, buckets) in HISTOGRAM_BUCKETS {
            assert!(!name.ends_with("_total"), "{name}");
            assert!(buckets.windows(2).all(|w| w[0] < w[1]), "{name}: buckets");
        }
        for name in counters
            .into_iter()
            .chain(HISTOGRAM_BUCKETS.map(|(name, _)| name))
            .chain([
                SHARD_REQUEST_QUEUE_DEPTH,
                SHARD_INBOUND_QUEUE_DEPTH,
                QUIESCED_REPLICAS,
            ])
        {
            assert!(name.starts_with("kommander_"), "{name}");
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{name}"
            );
        }
    }
}
