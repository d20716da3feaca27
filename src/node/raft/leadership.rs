//! Leadership and partition-state queries (Kommander's `AmILeaderQuick`, `AmILeader`,
//! `WaitForLeader`, `WaitForLeaderStableAsync`, `GetFollowerLagAsync`): the quick ones read
//! the leadership table, the waits await its changes (`wait.rs`) at most the caller's timeout
//! or `leader_wait_timeout_ms` (Kommander's 10 s), the others ask the shard;
//! `watch_partition` hands out the table's watch of one partition itself.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::core::{NodeId, PartitionId};
use crate::node::discovery::RaftNode;
use crate::node::error::{Fatal, QueryError};
use crate::node::system::SYSTEM_PARTITION;
use tokio::sync::watch;

use crate::shard::{FollowerLag, Leadership, PartitionState, PartitionStatus, Refusal, Request};

use super::Raft;
use super::wait::{WaitStep, until};

impl Raft {
    /// Whether this node leads `partition` and the no-op of its term has committed (so every
    /// entry of earlier terms is committed too), from the leadership table: no round trip, no
    /// wait (Kommander's `AmILeaderQuick`, true once leadership is published).
    #[must_use]
    pub fn am_i_leader_quick(&self, partition: PartitionId) -> bool {
        self.leadership(partition).is_some_and(|l| l.leads())
    }

    /// The leadership of `partition` as its replica on this node last reported it (`None`
    /// before it reported anything).
    #[must_use]
    pub fn leadership(&self, partition: PartitionId) -> Option<Leadership> {
        self.inner.leaders.get(partition)
    }

    /// A receiver of `partition`'s state on this node, woken at every change: its leadership
    /// (role, leader, term, since when, whether the leader's no-op committed; `None` until its
    /// replica reports) and its log progress (last, commit and applied index). For monitoring
    /// and for code that reacts to leadership or progress without asking the shard.
    ///
    /// The shard publishes leadership at every soft-state change and log progress at most once
    /// per loop turn, for the partitions whose indexes moved while someone watches them (the
    /// shard looks for watchers at its ticks: a new receiver sees progress from the next tick
    /// on, so its first may be up to one tick old); a receiver sees the latest value,
    /// not every intermediate one. After shutdown the state stays as it last was.
    ///
    /// # Errors
    ///
    /// [`QueryError::PartitionMoved`] for a partition outside this node's map (once it is
    /// initialized).
    pub fn watch_partition(
        &self,
        partition: PartitionId,
    ) -> Result<watch::Receiver<PartitionState>, QueryError> {
        if self.outside_map(partition) {
            return Err(QueryError::PartitionMoved { partition });
        }
        Ok(self.inner.leaders.subscribe(partition))
    }

    /// Whether `partition` is outside this node's map, once it is initialized: its replica
    /// would never report, and a table entry made for it would outlive its users.
    fn outside_map(&self, partition: PartitionId) -> bool {
        self.is_initialized()
            && partition != SYSTEM_PARTITION
            && self.partition_generation(partition) == 0
    }

    /// Whether this node leads `partition`, once that is settled: `true` when it leads and
    /// its no-op has committed, `false` when another node is known to lead; otherwise (an
    /// election, a restore of the partition from the WAL, a leader whose no-op has not
    /// committed yet) it waits for the leadership to change, at most `timeout` (`None`: the
    /// node's `leader_wait_timeout_ms`, 10 s by default, Kommander's `AmILeader` bound;
    /// `Some(Duration::MAX)`: no limit). As Kommander, a partition the node has not opened yet
    /// (before [`Raft::join_cluster`] for the system partition, before
    /// [`Raft::is_initialized`] for the others) is `false` at once, and a restoring one is
    /// waited for rather than refused.
    ///
    /// # Errors
    ///
    /// [`QueryError::Timeout`]; [`QueryError::QueueFull`] when a deadline is needed and the
    /// node's timers are all taken; [`QueryError::PartitionMoved`] for a partition outside
    /// this node's map (once it is initialized); [`QueryError::Fatal`] after shutdown.
    pub fn am_i_leader(
        &self,
        partition: PartitionId,
        timeout: Option<Duration>,
    ) -> impl Future<Output = Result<bool, QueryError>> + Send + 'static + use<> {
        let local = self.local_node_id();
        let not_open = !self.inner.stopping() && self.not_open_yet(partition);
        let waited = self.wait(partition, timeout, move |leadership, _| match leadership {
            Some(l) if l.leads() => WaitStep::Done(true),
            Some(l) if l.leader.is_some_and(|leader| leader != local) => WaitStep::Done(false),
            _ => WaitStep::Changed,
        });
        async move {
            if not_open {
                return Ok(false);
            }
            waited.await
        }
    }

    /// Whether `partition` is not open on this node yet: the system partition before
    /// [`Raft::join_cluster`] opened it, a user partition before the first map was applied.
    fn not_open_yet(&self, partition: PartitionId) -> bool {
        if partition == SYSTEM_PARTITION {
            !self.joined()
        } else {
            !self.is_initialized()
        }
    }

    /// The state of `partition`'s replica on this node (role, leader, term, commit, applied),
    /// asked of its shard.
    ///
    /// # Errors
    ///
    /// [`QueryError::RestoreInProgress`], [`QueryError::PartitionMoved`] (not open here),
    /// [`QueryError::QueueFull`] (shard queue), [`QueryError::Fatal`].
    pub fn partition_status(
        &self,
        partition: PartitionId,
    ) -> impl Future<Output = Result<PartitionStatus, QueryError>> + Send + 'static + use<> {
        let asked = self.ask(partition, |reply| Request::Status { reply });
        let this = self.clone();
        async move {
            asked
                .await
                .map_err(|refusal| this.query_error(refusal, partition))
        }
    }

    /// How far the follower at `endpoint` trails this node on `partition`, when this node
    /// leads it (`None`: not the leader, or no progress known for that follower; Kommander's
    /// `GetFollowerLagAsync`): [`FollowerLag::entries_behind`], and the snapshot being
    /// streamed to it when it catches up by one.
    ///
    /// Kommander answers the commit index the follower last reported; a follower here reports
    /// the end of its durable log that matches the leader's ([`FollowerLag::match_index`],
    /// what the leader counts for a quorum), and its commit index follows that within one
    /// heartbeat. Code ported from Kommander reads `match_index` where it read that number
    /// (decision 0005 in `docs/decisions/`).
    ///
    /// # Errors
    ///
    /// As [`Raft::partition_status`].
    pub fn follower_lag(
        &self,
        partition: PartitionId,
        endpoint: &str,
    ) -> impl Future<Output = Result<Option<FollowerLag>, QueryError>> + Send + 'static + use<>
    {
        let this = self.clone();
        let node = self.inner.discovery.peer_at(endpoint).map(|p| p.node_id);
        let asked =
            node.map(|node| self.ask(partition, move |reply| Request::FollowerLag { node, reply }));
        async move {
            let Some(asked) = asked else {
                return Ok(None);
            };
            match asked.await {
                Ok(lag) => Ok(Some(lag)),
                // Not the leader, or no progress known for that follower.
                Err(Refusal::NotLeader { .. } | Refusal::Replica(_)) => Ok(None),
                Err(refusal) => Err(this.query_error(refusal, partition)),
            }
        }
    }

    /// Waits until a leader of `partition` is known here and returns it (Kommander's
    /// `WaitForLeader`), through a restore of the partition, at most `timeout` (`None`: the
    /// node's `leader_wait_timeout_ms`, 10 s by default, Kommander's bound;
    /// `Some(Duration::MAX)`: no limit). Kommander's budget starts once the restore finished;
    /// here the restore counts (pass a longer timeout for a long restore).
    ///
    /// # Errors
    ///
    /// [`QueryError::NotReady`] at once before the partition is open on this node (before
    /// [`Raft::join_cluster`] for the system partition, before [`Raft::is_initialized`] for
    /// the others), as Kommander's `RaftNodeNotReadyException`; otherwise as
    /// [`Raft::am_i_leader`].
    pub fn wait_for_leader(
        &self,
        partition: PartitionId,
        timeout: Option<Duration>,
    ) -> impl Future<Output = Result<RaftNode, QueryError>> + Send + 'static + use<> {
        self.wait_for_leader_stable(partition, Duration::ZERO, timeout)
    }

    /// Waits until the same leader of `partition` has been known here, in the same term, for
    /// at least `min_stable_for`, and returns it (Kommander's `WaitForLeaderStableAsync`), at
    /// most `timeout` (`None`: the node's `leader_wait_timeout_ms`, where Kommander's
    /// overload without a timeout has no limit; `Some(Duration::MAX)`: no limit).
    ///
    /// # Errors
    ///
    /// As [`Raft::wait_for_leader`] (waiting out `min_stable_for` takes a timer slot).
    pub fn wait_for_leader_stable(
        &self,
        partition: PartitionId,
        min_stable_for: Duration,
        timeout: Option<Duration>,
    ) -> impl Future<Output = Result<RaftNode, QueryError>> + Send + 'static + use<> {
        let this = self.clone();
        let waited = self.wait(partition, timeout, move |leadership, now| {
            let Some(l) = leadership else {
                return WaitStep::Changed;
            };
            let Some(leader) = l.leader else {
                return WaitStep::Changed;
            };
            let Some(stable_at) = l.since.checked_add(min_stable_for) else {
                // Never stable within a representable time: wait for a change.
                return WaitStep::Changed;
            };
            if now >= stable_at {
                WaitStep::Done(leader)
            } else {
                WaitStep::ChangedOr(stable_at)
            }
        });
        async move { Ok(this.raft_node(waited.await?)) }
    }

    /// `node` with its endpoint from discovery (empty when unknown).
    pub(super) fn raft_node(&self, node: NodeId) -> RaftNode {
        RaftNode {
            node_id: node,
            endpoint: self.inner.leaders.endpoint_of(node).unwrap_or_default(),
        }
    }

    /// Waits on `partition`'s entry of the leadership table until `verdict` is done, at most
    /// `timeout` (`None`: the node's `leader_wait_timeout_ms`). A partition not open yet ([`QueryError::NotReady`]) and, once the node is initialized,
    /// one outside its map ([`QueryError::PartitionMoved`]) are refused at once (neither
    /// reports, and a table entry made for it would outlive the wait).
    pub(super) fn wait<T, V>(
        &self,
        partition: PartitionId,
        timeout: Option<Duration>,
        verdict: V,
    ) -> impl Future<Output = Result<T, QueryError>> + Send + 'static + use<T, V>
    where
        T: Send + 'static,
        V: FnMut(Option<&Leadership>, Instant) -> WaitStep<T> + Send + 'static,
    {
        let leadership = if self.inner.stopping() {
            Err(QueryError::Fatal(self.inner.stopped_error()))
        } else if self.not_open_yet(partition) {
            Err(QueryError::NotReady { partition })
        } else if self.outside_map(partition) {
            Err(QueryError::PartitionMoved { partition })
        } else {
            Ok(self.inner.leaders.watch_leadership(partition))
        };
        let timer = Arc::clone(&self.inner.timer);
        let timeout = timeout.unwrap_or(Duration::from_millis(
            self.inner.config.leader_wait_timeout_ms,
        ));
        let this = self.clone();
        async move {
            until(&timer, leadership?, Some(timeout), verdict)
                .await
                .map_err(|error| match error {
                    // The wait only sees the node stop; the node knows why.
                    QueryError::Fatal(Fatal::ShutDown) => {
                        QueryError::Fatal(this.inner.stopped_error())
                    }
                    error => error,
                })
        }
    }
}
