//! Linearizable reads (Kommander's `ConfirmLeadershipAsync` and
//! `ConfirmLocalApplicationAsync`): a ReadIndex round (Raft thesis §6.4) gives a read index —
//! the leader's commit index, confirmed by a heartbeat round a quorum of its term
//! acknowledged — and the call returns once this node's application has applied it. A read of
//! the application's local state made after the call returns is then linearizable: it
//! reflects every write acknowledged before the call started.
//!
//! Each call is one `Request::ReadIndex` to the partition's shard, raced with one deadline of
//! the node's timer. The shard bounds the reads waiting per partition
//! (`read_index_pending_max`); a caller that gives up (timeout, dropped future) closes its
//! answer channel, and the shard forgets its waiter.

use std::future::Future;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::core::{LogIndex, PartitionId};
use crate::node::error::QueryError;
use crate::shard::Request;

use super::Raft;
use super::refusal::SHARD_GONE;
use super::timer::{Elapsed, TimerError, race};

impl Raft {
    /// Confirms that this node leads `partition` and returns a read index: the leader's commit
    /// index, confirmed by a heartbeat round a quorum of its term acknowledged after the call,
    /// once this node's application has applied it (Kommander's `ConfirmLeadershipAsync`).
    /// Reading the application's local state for `partition` after this returns sees every
    /// write acknowledged before the call: a linearizable read on the leader.
    ///
    /// Calls reaching the shard in the same loop turn share one heartbeat round; unlike
    /// Kommander, a confirmation is never reused from an earlier heartbeat (that would be a
    /// lease, which relies on bounded clock drift). Waits at most `timeout` (`None`: the
    /// node's `leadership_confirmation_timeout_ms`, 2 s by default, Kommander's
    /// `LeadershipConfirmationTimeout`; `Some(Duration::MAX)`: until the answer, which a
    /// leader cut off from its quorum gives once check-quorum, on by default, deposes it).
    ///
    /// # Errors
    ///
    /// [`QueryError::NotLeader`] at once on a follower (naming the leader it knows; the call is
    /// not forwarded) and on a leader whose leadership is not published yet (the no-op of its
    /// term has not committed: [`Raft::am_i_leader_quick`] is `false`), as Kommander fails
    /// fast; also when this node loses leadership before the round completes.
    /// [`QueryError::Timeout`] when no quorum confirmed it (or the application did not apply
    /// the index) within `timeout`. [`QueryError::QueueFull`] when `read_index_pending_max`
    /// reads wait on the partition, or the shard queue or the node's timers are full.
    /// [`QueryError::RestoreInProgress`], [`QueryError::PartitionMoved`] (not open here),
    /// [`QueryError::Fatal`]. Never a success without a confirmed round.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future abandons the read; nothing changes on the node.
    pub fn confirm_leadership(
        &self,
        partition: PartitionId,
        timeout: Option<Duration>,
    ) -> impl Future<Output = Result<LogIndex, QueryError>> + Send + 'static + use<> {
        self.read_index(partition, true, timeout)
    }

    /// Returns a read index fetched from `partition`'s leader once this node's application has
    /// applied it (Kommander's `ConfirmLocalApplicationAsync`): on a follower, a linearizable
    /// read of the local state (it sees every write acknowledged before the call) without
    /// sending the read itself to the leader. On the leader it is
    /// [`Raft::confirm_leadership`], except that a leader whose no-op has not committed yet
    /// waits for it instead of refusing.
    ///
    /// Kommander answers `false` on every failure; this call says which one. Waits at most
    /// `timeout` (`None`: `leadership_confirmation_timeout_ms`, as
    /// [`Raft::confirm_leadership`]).
    ///
    /// # Errors
    ///
    /// [`QueryError::NotLeader`] when no read index could be had from a leader: none is known
    /// (an election), the leader refused (it was deposed, or its pending reads are full), or
    /// this node's leader or term changed before the answer came (a read asked of a deposed
    /// leader is never answered). Retry, here or on the leader it names.
    /// [`QueryError::Timeout`] when the answer did not come (the leader is unreachable), or
    /// this node's application did not apply the index (it is behind), within `timeout`.
    /// [`QueryError::QueueFull`] when `read_index_pending_max` reads wait on the partition on
    /// this node, or the shard queue or the node's timers are full.
    /// [`QueryError::RestoreInProgress`], [`QueryError::PartitionMoved`] (not open here),
    /// [`QueryError::Fatal`]. Never a success without a round confirmed by the leader.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future abandons the read; nothing changes on the node.
    pub fn confirm_local_application(
        &self,
        partition: PartitionId,
        timeout: Option<Duration>,
    ) -> impl Future<Output = Result<LogIndex, QueryError>> + Send + 'static + use<> {
        self.read_index(partition, false, timeout)
    }

    /// One ReadIndex request to `partition`'s shard, its answer awaited at most `timeout`.
    fn read_index(
        &self,
        partition: PartitionId,
        leader_only: bool,
        timeout: Option<Duration>,
    ) -> impl Future<Output = Result<LogIndex, QueryError>> + Send + 'static + use<> {
        let started = Instant::now();
        let this = self.clone();
        let timeout = timeout.unwrap_or(Duration::from_millis(
            self.inner.config.leadership_confirmation_timeout_ms,
        ));
        // The deadline first: a full timer table refuses the read before the shard sees it.
        let sent = match self.inner.timer.deadline(Some(timeout)) {
            Ok(deadline) => {
                let (reply, answer) = oneshot::channel();
                self.inner
                    .shards
                    .send(partition, Request::ReadIndex { leader_only, reply })
                    .map(|()| (deadline, answer))
                    .map_err(|refusal| this.query_error(refusal, partition))
            }
            Err(TimerError::Full) => Err(QueryError::QueueFull),
            Err(TimerError::Stopped) => Err(QueryError::Fatal(self.inner.stopped_error())),
        };
        async move {
            let (deadline, answer) = sent?;
            race(deadline, answer)
                .await
                .map_err(|Elapsed| QueryError::Timeout {
                    waited: started.elapsed(),
                })?
                .unwrap_or(Err(SHARD_GONE))
                .map_err(|refusal| this.query_error(refusal, partition))
        }
    }
}
