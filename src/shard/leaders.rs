//! The one leadership table of a node: per partition, what its replica last reported (role,
//! leader, term, since when, and whether the leader's no-op of its term has committed), and
//! how far its log has come (last, commit and applied index).
//!
//! The shards write it on every soft-state change of a replica, and its log progress at most
//! once per loop turn for the partitions whose indexes moved while someone subscribes (a new
//! subscriber's first progress may be a tick old); anyone reads it without a round trip to the
//! shard. Each partition's entry is a `tokio::sync::watch` channel of its [`PartitionState`],
//! so waiters
//! ([`LeaderTable::subscribe`]) are woken by the change itself: nothing polls. Receiving from a
//! watch works on any executor.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Instant;

use tokio::sync::watch;

use crate::core::{LogIndex, NodeId, PartitionId, Role, SoftState, Term};

/// The leadership of one partition as its replica on this node last reported it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Leadership {
    /// This replica's role.
    pub role: Role,
    /// The leader it knows for `term`, if any.
    pub leader: Option<NodeId>,
    /// Its term.
    pub term: Term,
    /// Since when this replica has known this leader in this term (reset when either changes).
    pub since: Instant,
    /// Whether the leader's no-op of `term` has committed (known on the leader only): until
    /// then a new leader's log may still hold entries of earlier terms it has not committed.
    pub noop_committed: bool,
}

impl Leadership {
    /// Whether this replica leads and its no-op of the term has committed (Kommander's
    /// published leadership).
    #[must_use]
    pub fn leads(&self) -> bool {
        self.role == Role::Leader && self.noop_committed
    }
}

/// How far the log of one partition's replica on this node has come.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogProgress {
    /// The index of its last log entry (durable or not).
    pub last_index: LogIndex,
    /// Its commit index: entries up to it are committed.
    pub commit_index: LogIndex,
    /// Entries up to it were delivered to the application.
    pub applied_index: LogIndex,
}

/// What the table holds of one partition: its leadership (`None` until its replica reports)
/// and its log progress (zero until then).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PartitionState {
    /// The leadership its replica last reported.
    pub leadership: Option<Leadership>,
    /// How far its log has come, as of the end of a shard loop turn.
    pub progress: LogProgress,
}

/// Resolves a node's endpoint, for the leader-changed events (the node's discovery implements
/// it: the shard never imports the node).
pub trait EndpointLookup: Send + Sync + 'static {
    /// The endpoint of `node`, when known.
    fn endpoint_of(&self, node: NodeId) -> Option<String>;
}

type StateChannel = Arc<watch::Sender<PartitionState>>;

/// The latest [`PartitionState`] of every partition of a node, written by the shards and read
/// (or awaited) by any thread.
pub struct LeaderTable {
    partitions: RwLock<HashMap<PartitionId, StateChannel>>,
    endpoints: Option<Arc<dyn EndpointLookup>>,
    /// Subscriptions taken so far, on any partition: a shard counts a partition's subscribers
    /// again only when this moved (`worker/ready.rs`).
    subscriptions: AtomicU64,
}

impl std::fmt::Debug for LeaderTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderTable").finish_non_exhaustive()
    }
}

impl Default for LeaderTable {
    /// A table whose events carry no endpoints.
    fn default() -> Self {
        Self {
            partitions: RwLock::new(HashMap::new()),
            endpoints: None,
            subscriptions: AtomicU64::new(0),
        }
    }
}

impl LeaderTable {
    /// A table whose leader-changed events carry the endpoints `endpoints` resolves.
    #[must_use]
    pub fn new(endpoints: Arc<dyn EndpointLookup>) -> Self {
        Self {
            endpoints: Some(endpoints),
            ..Self::default()
        }
    }

    /// The latest leadership of `partition`, if its replica reported one.
    #[must_use]
    pub fn get(&self, partition: PartitionId) -> Option<Leadership> {
        let partitions = self
            .partitions
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        partitions
            .get(&partition)
            .and_then(|entry| entry.borrow().leadership)
    }

    /// A receiver of `partition`'s state, woken at every change of its leadership or of its
    /// log progress.
    #[must_use]
    pub fn subscribe(&self, partition: PartitionId) -> watch::Receiver<PartitionState> {
        let receiver = self.watch_leadership(partition);
        // After the receiver exists: a shard that reads the new count finds it.
        self.subscriptions.fetch_add(1, Ordering::Release);
        receiver
    }

    /// A receiver of `partition`'s state for a wait on its leadership alone (published at
    /// every soft-state change): unlike [`LeaderTable::subscribe`], it does not make the
    /// shards count every active partition's subscribers again at their next tick.
    pub(crate) fn watch_leadership(
        &self,
        partition: PartitionId,
    ) -> watch::Receiver<PartitionState> {
        self.with_entry(partition, |entry| entry.subscribe())
    }

    /// How many subscriptions were taken so far, on any partition.
    pub(crate) fn subscriptions(&self) -> u64 {
        self.subscriptions.load(Ordering::Acquire)
    }

    /// The endpoint of `node`, when the lookup knows it.
    #[must_use]
    pub fn endpoint_of(&self, node: NodeId) -> Option<String> {
        self.endpoints.as_ref()?.endpoint_of(node)
    }

    /// Records `partition`'s new soft state, reported at `now`, and wakes its waiters (only if
    /// something changed). Returns whether the leader or the term changed (the
    /// [`RaftEvent::LeaderChanged`](super::RaftEvent::LeaderChanged) announcing it waits until
    /// the leader serves: the worker's `announce.rs`).
    pub(crate) fn update(&self, partition: PartitionId, soft: SoftState, now: Instant) -> bool {
        let mut changed = false;
        self.with_entry(partition, |entry| {
            entry.send_if_modified(|state| {
                let current = &mut state.leadership;
                let same_leader =
                    current.is_some_and(|c| c.leader == soft.leader && c.term == soft.term);
                changed = !same_leader;
                let next = Some(Leadership {
                    role: soft.role,
                    leader: soft.leader,
                    term: soft.term,
                    since: match current {
                        Some(c) if same_leader => c.since,
                        _ => now,
                    },
                    noop_committed: soft.noop_committed,
                });
                let modified = *current != next;
                *current = next;
                modified
            })
        });
        changed
    }

    /// `partition`'s channel, for a shard to keep and publish its progress through without
    /// taking the table's lock (entries are never removed, so a kept channel stays the one
    /// subscribers get).
    pub(crate) fn state_of(&self, partition: PartitionId) -> StateChannel {
        self.with_entry(partition, Arc::clone)
    }

    /// Publishes `progress` on a partition's channel, waking subscribers only if it moved.
    pub(crate) fn publish_progress(state: &watch::Sender<PartitionState>, progress: LogProgress) {
        state.send_if_modified(|value| {
            let modified = value.progress != progress;
            value.progress = progress;
            modified
        });
    }

    /// Runs `f` on `partition`'s entry, created (nothing reported) if absent.
    fn with_entry<R>(&self, partition: PartitionId, f: impl FnOnce(&StateChannel) -> R) -> R {
        {
            let partitions = self
                .partitions
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(entry) = partitions.get(&partition) {
                return f(entry);
            }
        }
        let mut partitions = self
            .partitions
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        f(partitions
            .entry(partition)
            .or_insert_with(|| Arc::new(watch::Sender::new(PartitionState::default()))))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    struct Names;

    impl EndpointLookup for Names {
        fn endpoint_of(&self, node: NodeId) -> Option<String> {
            Some(format!("node-{node}"))
        }
    }

    fn soft(role: Role, leader: Option<u64>, term: u64, noop_committed: bool) -> SoftState {
        SoftState {
            role,
            leader: leader.map(NodeId),
            term: Term(term),
            noop_committed,
        }
    }

    #[test]
    fn a_subscription_is_counted_and_a_leadership_wait_is_not() {
        let table = LeaderTable::default();
        let p = PartitionId(3);
        let _waiting = table.watch_leadership(p);
        assert_eq!(table.subscriptions(), 0);
        let subscribed = table.subscribe(p);
        assert_eq!(table.subscriptions(), 1);
        // The count is of subscriptions taken, not of receivers alive: a shard that saw it
        // move counts the receivers themselves.
        drop(subscribed);
        assert_eq!(table.subscriptions(), 1);
        let _again = table.subscribe(PartitionId(4));
        assert_eq!(table.subscriptions(), 2);
    }

    #[test]
    fn a_change_only_when_the_leader_or_term_changes_and_since_survives_role_changes() {
        let table = LeaderTable::new(Arc::new(Names));
        let p = PartitionId(3);
        assert_eq!(table.get(p), None);
        // The first report is a change.
        assert!(table.update(p, soft(Role::Candidate, None, 1, false), Instant::now()));
        assert!(table.update(p, soft(Role::Leader, Some(1), 1, false), Instant::now()));
        let elected = table.get(p).expect("reported");
        assert!(!elected.leads(), "the no-op has not committed yet");
        // The no-op commits: same leader and term, no change, `since` kept.
        assert!(!table.update(p, soft(Role::Leader, Some(1), 1, true), Instant::now()));
        let ready = table.get(p).expect("reported");
        assert!(ready.leads());
        assert_eq!(ready.since, elected.since);
        assert_eq!(table.endpoint_of(NodeId(1)).as_deref(), Some("node-n1"));
    }

    #[test]
    fn a_subscriber_is_woken_by_the_change_itself() {
        let table = Arc::new(LeaderTable::default());
        let p = PartitionId(1);
        // Subscribed before the partition reported anything.
        let mut leadership = table.subscribe(p);
        let writer = Arc::clone(&table);
        let thread = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            writer.update(p, soft(Role::Follower, Some(2), 4, false), Instant::now());
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        // No timer exists here: only the watch can wake this wait.
        let seen = runtime.block_on(async {
            *leadership
                .wait_for(|s| s.leadership.is_some_and(|l| l.leader.is_some()))
                .await
                .expect("table alive")
        });
        thread.join().expect("writer");
        assert_eq!(seen.leadership.map(|l| l.leader), Some(Some(NodeId(2))));
    }

    #[test]
    fn progress_wakes_subscribers_only_when_it_moves_and_keeps_the_leadership() {
        let table = LeaderTable::default();
        let p = PartitionId(2);
        let mut state = table.subscribe(p);
        table.update(p, soft(Role::Leader, Some(1), 3, true), Instant::now());
        assert!(state.has_changed().expect("table alive"));
        state.mark_unchanged();
        let progress = LogProgress {
            last_index: LogIndex(7),
            commit_index: LogIndex(6),
            applied_index: LogIndex(5),
        };
        LeaderTable::publish_progress(&table.state_of(p), progress);
        assert!(state.has_changed().expect("table alive"));
        let seen = *state.borrow_and_update();
        assert_eq!(seen.progress, progress);
        assert_eq!(
            seen.leadership.map(|l| (l.leader, l.term)),
            Some((Some(NodeId(1)), Term(3)))
        );
        // The same progress again wakes nobody; the leadership read stays the same.
        LeaderTable::publish_progress(&table.state_of(p), progress);
        assert!(!state.has_changed().expect("table alive"));
        assert_eq!(table.get(p), seen.leadership);
    }
}
