//! When `kommander node` serves, and so prints its `ready` line: every partition it hosts (the
//! system partition and every partition of its map) has finished restoring from the WAL and
//! knows a leader, and the node is a voter of the cluster's roster. A node joining through
//! seeds is promoted to voter before its join returns; a learner restarted without `--join`
//! is waiting for a promotion nobody asks for, a leaving member is on its way out, and a node
//! the roster does not list (removed) serves no one: each says so. Joining is not enough: a
//! restarted node finds its partition map on disk and joins at once, then restores its
//! partitions, and a node cut off from the others knows no leader; neither serves a client.
//! Until it serves, the node logs what it waits for.

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
        let membership = membership_wait(raft.membership().is_some(), raft.local_role());
        if self.waiting.is_empty() && membership.is_none() {
            info!(
                waited_ms,
                "serving: every partition restored, with a known leader, this node a voter"
            );
            return true;
        }
        if now >= self.next_log {
            self.next_log = now + WAITING_LOG_INTERVAL;
            let said = self.describe(raft).await;
            let waiting = said.into_iter().chain(membership.map(str::to_owned));
            info!(
                waited_ms,
                "not serving yet: {}",
                waiting.collect::<Vec<_>>().join("; ")
            );
        }
        false
    }

    /// What the waiting partitions wait for, in words, one item per reason (their shards are
    /// asked).
    async fn describe(&self, raft: &Raft) -> Vec<String> {
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
            said.push(format!(
                "restoring {} from the WAL: {}",
                partitions(restoring.len()),
                named(&restoring)
            ));
        }
        if !leaderless.is_empty() {
            said.push(format!(
                "no leader known (no quorum of the cluster reached yet) for {}: {}",
                partitions(leaderless.len()),
                named(&leaderless)
            ));
        }
        if !failing.is_empty() {
            said.push(format!(
                "{} unavailable: {}",
                partitions(failing.len()),
                named(&failing)
            ));
        }
        said
    }
}

/// What the node's place in the roster still waits for (`None`: it is a voter), given
/// whether a roster is known at all and the node's role in it.
fn membership_wait(roster_known: bool, role: Option<MemberRole>) -> Option<&'static str> {
    match (roster_known, role) {
        (_, Some(MemberRole::Voter)) => None,
        // Restarted without `--join` before its promotion: nothing asks for it.
        (_, Some(MemberRole::Learner)) => Some(
            "waiting: promotion (this node is a learner; restart it with --join to ask for it)",
        ),
        (_, Some(MemberRole::Leaving)) => {
            Some("leaving: this node is on its way out of the cluster's roster")
        }
        (false, None) => Some("waiting: the cluster's roster (none committed here yet)"),
        (true, None) => Some(
            "not admitted: the cluster's roster does not list this node (removed from it? \
             `kommander cluster members` shows the roster)",
        ),
    }
}

/// `count` partitions, in words.
fn partitions(count: usize) -> String {
    if count == 1 {
        "1 partition".to_owned()
    } else {
        format!("{count} partitions")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_voter_serves_and_every_other_place_in_the_roster_is_said() {
        assert_eq!(membership_wait(true, Some(MemberRole::Voter)), None);
        let waits = [
            (true, Some(MemberRole::Learner), "promotion"),
            (true, Some(MemberRole::Leaving), "leaving"),
            (false, None, "roster"),
            (true, None, "does not list this node"),
        ];
        for (roster_known, role, words) in waits {
            let said = membership_wait(roster_known, role);
            assert!(
                said.is_some_and(|s| s.contains(words)),
                "{roster_known} {role:?}: {said:?}"
            );
        }
    }

    #[test]
    fn many_partitions_are_counted_and_the_first_ones_named() {
        let ids: Vec<PartitionId> = (0..10).map(PartitionId).collect();
        assert_eq!(partitions(ids.len()), "10 partitions");
        assert_eq!(partitions(1), "1 partition");
        assert_eq!(named(&ids), "p0, p1, p2, p3, p4, p5, p6, p7 and 2 more");
        assert_eq!(named(&ids[..2]), "p0, p1");
    }
}
