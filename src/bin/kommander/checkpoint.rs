//! When the binary checkpoints: the one policy of `kommander node`, `demo` and `bench`
//! (`--checkpoint-interval-entries`, `--checkpoint-interval-bytes`,
//! `--checkpoint-interval-secs`), and the [`Checkpointer`] that applies it.
//!
//! What a checkpoint bounds. The core keeps every entry above a partition's compaction floor
//! in memory (a leader also up to 8192 below it, for followers a little behind), restore
//! replays every committed entry above the floor, and the WAL reclaims a segment only once
//! every record in it is older than each partition's oldest live record. A committed
//! checkpoint moves the floor: the in-memory log is dropped below it, the WAL is compacted to
//! it, and its segments can be reclaimed. Without checkpoints all three grow with every write.
//!
//! The default: a checkpoint on a partition this node leads once 10 000 entries or 16 MiB of
//! payload were applied since its last one, whichever comes first, or once 60 s passed with at
//! least one entry applied since, checked every 100 ms. So per partition the log above the
//! floor holds about 10 000 entries and 16 MiB at most (plus what arrives in the 100 ms between
//! two checks and while the checkpoint commits), and a restart replays no more. Measured with
//! `scripts/flatness.sh` (`docs/benchmarks.md`, "Memory and disk over 5 minutes"): a 3-node
//! `kommander bench` at ~280 000 writes/s holds 4 000 to 17 000 entries per replica in memory
//! with these defaults, and its RSS and WALs stay flat (~95 MiB, 256 MiB per node); with a
//! check every second instead it held ~70 000 per replica (RSS 250 to 400 MiB), and without
//! checkpoints its RSS grows by ~80 MiB/s and each WAL by a 64 MiB segment every 5 s.
//! The entry rule bounds small entries, whose memory is mostly per-entry overhead; the byte
//! rule bounds large ones (10 000 entries of 512 KiB would be 5 GiB). The time rule bounds the
//! WAL under skewed load: a quiet partition whose live entries exceed one WAL frame pins the
//! oldest segment until its floor moves (`docs/wal-format.md`, "Rewrite"), so without it a
//! partition that received a few MiB and went idle would keep every later segment of its shard
//! on disk. A checkpoint costs one replicated entry and one WAL compaction record: at 10 000
//! entries, 0.01 % of the writes. Why 10 000 and not 50 000: the cost is negligible either
//! way while memory and replay grow with the interval; and not much less: below it the
//! leader's 8192 retained entries dominate the in-memory log, and at a high write rate so does
//! the 100 ms between checks.
//!
//! The applications of the binary only count entries, so a checkpoint loses nothing they need,
//! and a follower that falls more than the leader's retained 8192 entries behind a checkpoint
//! catches up by an empty snapshot. `--checkpoint-interval-entries 0
//! --checkpoint-interval-bytes 0 --checkpoint-interval-secs 0` turns checkpoints off.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kommander_raft::{PartitionId, Raft};
use tracing::{debug, info};

use crate::applied::AppliedCounter;

/// Default of `--checkpoint-interval-entries`.
pub(crate) const INTERVAL_ENTRIES: u64 = 10_000;
/// Default of `--checkpoint-interval-bytes` (16 MiB).
pub(crate) const INTERVAL_BYTES: u64 = 16 << 20;
/// Default of `--checkpoint-interval-secs`.
pub(crate) const INTERVAL_SECS: u64 = 60;
/// How often the checkpointer looks at the applied counters.
pub(crate) const CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// The checkpoint policy, shared by `node`, `demo` and `bench` (see the module documentation
/// for the defaults and what they bound).
#[derive(Clone, Copy, Debug, clap::Args)]
pub(crate) struct CheckpointArgs {
    /// Replicate a checkpoint on each partition this node leads once this many entries were
    /// applied since its last one (checked every 100 ms); the log below a committed
    /// checkpoint is dropped from memory and compacted in the WAL. Bounds the in-memory log
    /// above the floor, the WAL's live records and what a restart replays, per partition.
    /// 0: no entry rule.
    #[arg(long, value_name = "ENTRIES", default_value_t = INTERVAL_ENTRIES)]
    pub(crate) checkpoint_interval_entries: u64,
    /// Also checkpoint once this many payload bytes were applied since the last checkpoint
    /// (bounds large entries). 0: no byte rule.
    #[arg(long, value_name = "BYTES", default_value_t = INTERVAL_BYTES)]
    pub(crate) checkpoint_interval_bytes: u64,
    /// Also checkpoint once this many seconds passed with at least one entry applied since
    /// the last checkpoint (a quiet partition stops pinning old WAL segments). 0: no time
    /// rule. All three 0: never checkpoint (every entry stays in the WAL and in memory).
    #[arg(long, value_name = "SECS", default_value_t = INTERVAL_SECS)]
    pub(crate) checkpoint_interval_secs: u64,
}

impl CheckpointArgs {
    /// Whether any rule is on.
    pub(crate) fn enabled(&self) -> bool {
        self.checkpoint_interval_entries > 0
            || self.checkpoint_interval_bytes > 0
            || self.checkpoint_interval_secs > 0
    }

    /// `every 10000 entries, 16777216 bytes or 60 s per partition` (the rules that are on), or
    /// `off`.
    pub(crate) fn describe(&self) -> String {
        let mut rules = Vec::new();
        if self.checkpoint_interval_entries > 0 {
            rules.push(format!("{} entries", self.checkpoint_interval_entries));
        }
        if self.checkpoint_interval_bytes > 0 {
            rules.push(format!("{} bytes", self.checkpoint_interval_bytes));
        }
        if self.checkpoint_interval_secs > 0 {
            rules.push(format!("{} s", self.checkpoint_interval_secs));
        }
        match rules.split_last() {
            None => "off".to_owned(),
            Some((last, [])) => format!("every {last} per partition"),
            Some((last, rest)) => format!("every {} or {last} per partition", rest.join(", ")),
        }
    }
}

/// What a partition had applied at its last checkpoint (or at start).
#[derive(Clone, Copy, Debug)]
struct Mark {
    entries: u64,
    bytes: u64,
    at: Instant,
}

/// Replicates a checkpoint on each initial partition this node leads when one of the
/// [`CheckpointArgs`] rules says it is due. Partition 0 is never checkpointed: its log holds
/// the partition map.
pub(crate) struct Checkpointer {
    policy: CheckpointArgs,
    /// Per partition (index = partition id): the applied counters at its last checkpoint.
    last: Vec<Mark>,
    /// Checkpoints committed so far.
    committed: Arc<AtomicU64>,
}

impl Checkpointer {
    pub(crate) fn new(policy: CheckpointArgs, partitions: u32) -> Self {
        let start = Mark {
            entries: 0,
            bytes: 0,
            at: Instant::now(),
        };
        Self {
            policy,
            last: vec![start; partitions as usize + 1],
            committed: Arc::new(AtomicU64::new(0)),
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.policy.enabled()
    }

    /// The count of committed checkpoints (shared with the tasks that await them).
    pub(crate) fn committed(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.committed)
    }

    /// Whether a partition with these applied counters is due at `now`.
    fn due(&self, last: &Mark, entries: u64, bytes: u64, now: Instant) -> bool {
        let p = &self.policy;
        let new_entries = entries.saturating_sub(last.entries);
        let over = |value: u64, limit: u64| limit > 0 && value >= limit;
        over(new_entries, p.checkpoint_interval_entries)
            || over(
                bytes.saturating_sub(last.bytes),
                p.checkpoint_interval_bytes,
            )
            || (new_entries > 0
                && over(
                    now.saturating_duration_since(last.at).as_secs(),
                    p.checkpoint_interval_secs,
                ))
    }

    /// Starts the checkpoints that are due (spawned on the current tokio runtime; their
    /// outcome is logged and the committed ones counted).
    pub(crate) fn check(&mut self, raft: &Raft, app: &AppliedCounter) {
        if !self.enabled() {
            return;
        }
        let now = Instant::now();
        for p in 1..self.last.len() {
            let partition = PartitionId(u32::try_from(p).unwrap_or(u32::MAX));
            let (entries, bytes) = (app.applied(partition), app.applied_bytes(partition));
            if !self.due(&self.last[p], entries, bytes, now) || !raft.am_i_leader_quick(partition) {
                continue;
            }
            self.last[p] = Mark {
                entries,
                bytes,
                at: now,
            };
            let checkpoint = raft.replicate_checkpoint(partition);
            let committed = Arc::clone(&self.committed);
            tokio::spawn(async move {
                match checkpoint.await {
                    Ok(written) => {
                        committed.fetch_add(1, Ordering::Relaxed);
                        info!(
                            %partition,
                            index = written.log_index.get(),
                            "checkpoint committed"
                        );
                    }
                    Err(error) => debug!(%partition, %error, "checkpoint refused"),
                }
            });
        }
    }

    /// Checks every [`CHECK_INTERVAL`] until dropped (cancelled) — for a caller without a
    /// loop of its own.
    pub(crate) async fn run(mut self, raft: Raft, app: Arc<AppliedCounter>) {
        if !self.enabled() {
            return;
        }
        let mut ticker = tokio::time::interval(CHECK_INTERVAL);
        loop {
            ticker.tick().await;
            self.check(&raft, &app);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(entries: u64, bytes: u64, secs: u64) -> CheckpointArgs {
        CheckpointArgs {
            checkpoint_interval_entries: entries,
            checkpoint_interval_bytes: bytes,
            checkpoint_interval_secs: secs,
        }
    }

    #[test]
    fn each_rule_makes_a_checkpoint_due_on_its_own() {
        let start = Instant::now();
        let last = Mark {
            entries: 100,
            bytes: 1000,
            at: start,
        };
        let c = Checkpointer::new(policy(10, 500, 60), 1);
        assert!(!c.due(&last, 109, 1499, start));
        assert!(c.due(&last, 110, 1000, start), "entries");
        assert!(c.due(&last, 101, 1500, start), "bytes");
        let later = start + Duration::from_secs(60);
        assert!(c.due(&last, 101, 1001, later), "time, with a new entry");
        assert!(!c.due(&last, 100, 1000, later), "time, nothing new");
    }

    #[test]
    fn zero_turns_a_rule_off() {
        let start = Instant::now();
        let last = Mark {
            entries: 0,
            bytes: 0,
            at: start,
        };
        let off = Checkpointer::new(policy(0, 0, 0), 1);
        assert!(!off.enabled());
        assert!(!off.due(&last, u64::MAX, u64::MAX, start + Duration::from_secs(3600)));
        assert_eq!(policy(0, 0, 0).describe(), "off");
        assert_eq!(
            policy(10, 0, 0).describe(),
            "every 10 entries per partition"
        );
        assert_eq!(
            policy(10, 20, 30).describe(),
            "every 10 entries, 20 bytes or 30 s per partition"
        );
    }
}
