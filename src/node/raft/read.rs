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
//!
//! A fenced read ([`ReadOptions::expected_generation`]) is a `Request::Fenced` around the
//! `ReadIndex`: the shard judges the generation fence when the request is carried out, and
//! again when the read is answered, once this node's application applied the read index —
//! on a follower only then does the partition's log hold every generation entry committed
//! before the read began (`shard/partitions/fence.rs`).

use std::future::Future;
use std::num::NonZeroU64;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::core::{LogIndex, PartitionId};
use crate::node::error::QueryError;
use crate::shard::Request;

use super::Raft;
use super::refusal::SHARD_GONE;
use super::timer::{Elapsed, TimerError, race};

/// Options of [`Raft::confirm_leadership_with`] and [`Raft::confirm_local_application_with`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// The generation of the partition's range the caller routed with (0, the default: none,
    /// an unfenced read, Kommander's only kind). When non-zero, the read is refused with
    /// [`QueryError::PartitionMoved`] unless the partition's range has that generation — in
    /// this node's committed map and in the generation entries of the partition's log — both
    /// when the partition's shard starts the read and when it answers it, once this node's
    /// application applied the read index. So a read routed before a split or a merge moved
    /// the key is refused wherever it is served, a follower whose partition-0 map lags
    /// included, where an unfenced one is answered from the old owner's state.
    pub expected_generation: u64,
    /// How long to wait (`None`: the node's `leadership_confirmation_timeout_ms`, 2 s by
    /// default; `Some(Duration::MAX)`: until the answer).
    pub timeout: Option<Duration>,
}

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
        self.read_index(
            partition,
            true,
            ReadOptions {
                expected_generation: 0,
                timeout,
            },
        )
    }

    /// [`Raft::confirm_leadership`], fenced when `options.expected_generation` is non-zero:
    /// the read index is returned only while `partition`'s range has the generation the
    /// caller routed with (see [`ReadOptions::expected_generation`]).
    ///
    /// # Errors
    ///
    /// Those of [`Raft::confirm_leadership`], and [`QueryError::PartitionMoved`] when the
    /// fence refuses the read: the range moved (a split, a merge, a removal) since the caller
    /// routed, or it is being filled by a split or drained by a merge. Refresh the map and
    /// route again.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future abandons the read; nothing changes on the node.
    pub fn confirm_leadership_with(
        &self,
        partition: PartitionId,
        options: ReadOptions,
    ) -> impl Future<Output = Result<LogIndex, QueryError>> + Send + 'static + use<> {
        self.read_index(partition, true, options)
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
        self.read_index(
            partition,
            false,
            ReadOptions {
                expected_generation: 0,
                timeout,
            },
        )
    }

    /// [`Raft::confirm_local_application`], fenced when `options.expected_generation` is
    /// non-zero: the read index is returned only while `partition`'s range has the generation
    /// the caller routed with, judged again on this node once its application applied the
    /// read index (see [`ReadOptions::expected_generation`]), so a follower whose own map
    /// lags still refuses a read routed before a split moved the key.
    ///
    /// # Errors
    ///
    /// Those of [`Raft::confirm_local_application`], and [`QueryError::PartitionMoved`] when
    /// the fence refuses the read: the range moved (a split, a merge, a removal) since the
    /// caller routed, or it is being filled by a split or drained by a merge. Refresh the map
    /// and route again.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future abandons the read; nothing changes on the node.
    pub fn confirm_local_application_with(
        &self,
        partition: PartitionId,
        options: ReadOptions,
    ) -> impl Future<Output = Result<LogIndex, QueryError>> + Send + 'static + use<> {
        self.read_index(partition, false, options)
    }

    /// One ReadIndex request to `partition`'s shard (fenced when the options name a
    /// generation), its answer awaited at most the options' timeout.
    fn read_index(
        &self,
        partition: PartitionId,
        leader_only: bool,
        options: ReadOptions,
    ) -> impl Future<Output = Result<LogIndex, QueryError>> + Send + 'static + use<> {
        let started = Instant::now();
        let this = self.clone();
        let timeout = options.timeout.unwrap_or(Duration::from_millis(
            self.inner.config.leadership_confirmation_timeout_ms,
        ));
        // The deadline first: a full timer table refuses the read before the shard sees it.
        let sent = match self.inner.timer.deadline_from(started, Some(timeout)) {
            Ok(deadline) => {
                let (reply, answer) = oneshot::channel();
                let read = Request::ReadIndex { leader_only, reply };
                let request = match NonZeroU64::new(options.expected_generation) {
                    Some(expected_generation) => Request::Fenced {
                        expected_generation,
                        request: Box::new(read),
                    },
                    None => read,
                };
                self.inner
                    .shards
                    .send(partition, request)
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
