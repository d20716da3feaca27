//! When `kommander node` serves, and so prints its `ready` line: every partition it hosts (the
//! system partition and every partition of its map) has finished restoring from the WAL and
//! knows a leader, and the node is not a learner (a node joining through seeds is promoted to
//! voter before its join returns; a learner restarted without `--join` is waiting for a
//! promotion nobody asks for, and says so). Joining is not enough: a restarted node finds its partition map on disk and
//! joins at once, then restores its partitions, and a node cut off from the others knows no
//! leader; neither serves a client. Until it serves, the node logs what it waits for.

use std::time::{Duration, Instant};

use kommander_raft::{MemberRole, PartitionId, QueryError, Raft, RangeState, SYSTEM_PARTITION};
use tracing::info;

/// How often the node says what it waits for (the first time after one interval: a restore
/// that takes a moment is not worth a line).
const WAITING_LOG_INTERVAL: Duration = Duration::from_secs(2);

/// Partitions named one by one in the waiting line; the others are counted.
const NAMED_MAX: usize = 8;

/// The partitions a node hosts that have not served yet.
pub(crate) struct Readiness {
    /// Not seen serving yet, in id order.
    waiting: Vec<PartitionId>,
    since: Instant,
    next_log: Instant,
}

impl Readiness {
    /// Every partition `raft` hosts, once it joined: the system partition and the partitions
    /// of its map (but removed ones).
    pub(crate) fn new(raft: &Raft, now: Instant) -> Self {
        let map = raft.partition_map();
        let hosted = map
            .partitions
            .iter()
            .filter(|range| range.state != RangeState::Removed)
            .map(|range| range.partition_id);
        Self {
            waiting: std::iter::once(SYSTEM_PARTITION).chain(hosted).collect(),
            since: now,
            next_log: now + WAITING_LOG_INTERVAL,
        }
    }

    /// Looks again at the partitions still waiting, and says what they wait for when a
    /// line is due; `true` once every partition has served. A partition serves once its
    /// replica knows a leader and answers its state (a restoring one answers
    /// `RestoreInProgress`); its shard is asked only once the leadership table shows a leader
    /// (a restoring replica learns none: it takes no messages), so a node that waits long asks
    /// nothing of its shards but for the line.
    pub(crate) async fn check(&mut self, raft: &Raft, now: Instant) -> bool {
        let mut still = Vec::new();
        for partition in std::mem::take(&mut self.waiting) {
            let serves = raft
                .leadership(partition)
                .is_some_and(|l| l.leader.is_some())
                && raft
                    .partition_status(partition)
                    .await
                    .is_ok_and(|s| s.leader.is_some());
            if !serves {
                still.push(partition);
            }
        }
        self.waiting = still;
        let waited_ms =
            u64::try_from(now.duration_since(self.since).as_millis()).unwrap_or(u64::MAX);
        let learner = raft.local_role() == Some(MemberRole::Learner);
        if self.waiting.is_empty() && !learner {
            info!(
                waited_ms,
                "serving: every partition restored, with a known leader"
            );
            return true;
        }
        if now >= self.next_log {
            self.next_log = now + WAITING_LOG_INTERVAL;
            let mut waiting = self.describe(raft).await;
            if learner {
                if !waiting.is_empty() {
                    waiting.push_str("; ");
                }
                // Restarted without `--join` before its promotion: nothing asks for it.
                waiting.push_str(
                    "waiting: promotion (this node is a learner; restart it with --join to \
                     ask for it)",
                );
            }
            info!(waited_ms, "not serving yet: {waiting}");
        }
        false
    }

    /// What the waiting partitions wait for, in words (their shards are asked).
    async fn describe(&self, raft: &Raft) -> String {
        let mut restoring = Vec::new();
        let mut leaderless = Vec::new();
        let mut failing = Vec::new();
        for &partition in &self.waiting {
            match raft.partition_status(partition).await {
                Err(QueryError::RestoreInProgress) => restoring.push(partition),
                // (Or a leader learnt just now: it serves at the next look.)
                Ok(_) => leaderless.push(partition),
                Err(error) => failing.push(format!("{partition} ({error})")),
            }
        }
        let mut said = Vec::new();
        if !restoring.is_empty() {
            said.push(format!("restoring from the WAL: {}", named(&restoring)));
        }
        if !leaderless.is_empty() {
            said.push(format!(
                "no leader known (no quorum of the cluster reached yet): {}",
                named(&leaderless)
            ));
        }
        if !failing.is_empty() {
            said.push(format!("unavailable: {}", named(&failing)));
        }
        said.join("; ")
    }
}

/// The first [`NAMED_MAX`] of `items`, and how many more.
fn named<T: std::fmt::Display>(items: &[T]) -> String {
    let mut text = items
        .iter()
        .take(NAMED_MAX)
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > NAMED_MAX {
        text.push_str(&format!(" and {} more", items.len() - NAMED_MAX));
    }
    text
}
