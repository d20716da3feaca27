//! Elastic partitions (Kommander's `CreatePartitionAsync`, `RemovePartitionAsync`,
//! `SplitPartitionAsync`, `MergePartitionsAsync`, `GetNextAvailablePartitionId`; decision 0006
//! points 3, 4 and 6): map changes asked of partition 0's
//! shard on this node, which carries them out when it leads partition 0 (Kommander requires the
//! caller to; there is no forwarding: a follower answers `NotLeader` with the leader it knows).
//! Each change is the whole next map, committed on partition 0; every node's shards then open
//! the partitions it adds and close those it removes (`shard/worker/map.rs`).

use std::future::Future;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::core::{PartitionId, Ticket};
use crate::node::error::PartitionLifecycleError;
use crate::shard::partitions::{CreatePartition, MapChangeAnswer, MapOperation, SplitPlan};
use crate::shard::{Request, SYSTEM_PARTITION};

use super::Raft;
use super::refusal::SHARD_GONE;
use super::timer::{Elapsed, TimerError, race};

impl Raft {
    /// Creates `partition` (Kommander's `CreatePartitionAsync`): active at generation 1, routed
    /// as `spec` says, its first configuration partition 0's committed voters and learners.
    /// This node must lead partition 0. Returns the partition's generation once partition 0
    /// committed the map that holds it (every node then opens it on its own; the
    /// [`PartitionMapChanged`](crate::RaftEvent::PartitionMapChanged) event tells when this
    /// one did). A partition the map holds already answers at once with its generation (an
    /// idempotent retry). Waits at most `timeout` (`None`: `proposal_timeout_ms`).
    ///
    /// # Errors
    ///
    /// [`PartitionLifecycleError::Refused`] for partition 0, a tombstoned id (never reused), a
    /// hash-routed partition without a range or with one outside `0..=i32::MAX`, `start >
    /// end` or overlapping an active range, no map yet, or a map over the limits;
    /// [`PartitionLifecycleError::NotLeader`], [`PartitionLifecycleError::ConcurrentChange`],
    /// [`PartitionLifecycleError::QueueFull`], [`PartitionLifecycleError::RestoreInProgress`]
    /// (retry); [`PartitionLifecycleError::Timeout`] and
    /// [`PartitionLifecycleError::LeadershipLost`] (indeterminate: retry);
    /// [`PartitionLifecycleError::Rejected`], [`PartitionLifecycleError::Fatal`].
    pub fn create_partition(
        &self,
        partition: PartitionId,
        spec: CreatePartition,
        timeout: Option<Duration>,
    ) -> impl Future<Output = Result<u64, PartitionLifecycleError>> + Send + 'static + use<> {
        self.change_map(MapOperation::Create { partition, spec }, timeout)
    }

    /// Removes `partition` (Kommander's `RemovePartitionAsync`): its range becomes a
    /// tombstone at the next generation, which keeps its range and whose id is never reused;
    /// every node closes the partition and deletes its WAL records. This node must lead
    /// partition 0. Returns the tombstone's generation once partition 0 committed it; a
    /// tombstone answers at once with its generation (an idempotent retry). Waits at most
    /// `timeout` (`None`: `proposal_timeout_ms`).
    ///
    /// # Errors
    ///
    /// [`PartitionLifecycleError::Refused`] for partition 0, a partition the map does not
    /// hold, one being split or merged (`Splitting`, `Draining`), no map yet; the others as
    /// [`Raft::create_partition`].
    pub fn remove_partition(
        &self,
        partition: PartitionId,
        timeout: Option<Duration>,
    ) -> impl Future<Output = Result<u64, PartitionLifecycleError>> + Send + 'static + use<> {
        self.change_map(MapOperation::Remove { partition }, timeout)
    }

    /// Splits `source` in two (Kommander's `SplitPartitionAsync`): phase 1 shrinks it to the
    /// hashes below `plan.boundary` (default: Kommander's midpoint) and adds `plan.target`
    /// (default: the next available id) owning the rest, both `Splitting`; the target's first
    /// configuration is partition 0's committed voters and learners. This node must lead
    /// partition 0. Returns the source's generation once partition 0 committed phase 1 and
    /// this node applied it (Kommander answers then too); phase 2 follows on its own once the
    /// target imported the moved range through its log (both `Active`, each at the next
    /// generation; until then both refuse client writes and fenced reads with
    /// `PartitionMoved`). A retry with the explicit target of a split that took effect
    /// answers with the source's generation; a retry with an automatic target is refused while
    /// the source is `Splitting` and, after phase 2, splits it again. Waits at most `timeout`
    /// (`None`: `proposal_timeout_ms`).
    ///
    /// # Errors
    ///
    /// [`PartitionLifecycleError::Refused`] for partition 0, an unknown or removed source, one
    /// not `Active`, a target id taken (tombstones included) or none left, a single-hash
    /// range, a boundary outside `(start, end]`, no map yet, or a map over the limits; the
    /// others as [`Raft::create_partition`].
    pub fn split_partition(
        &self,
        source: PartitionId,
        plan: SplitPlan,
        timeout: Option<Duration>,
    ) -> impl Future<Output = Result<u64, PartitionLifecycleError>> + Send + 'static + use<> {
        self.change_map(MapOperation::Split { source, plan }, timeout)
    }

    /// Merges `source` into `survivor` (Kommander's `MergePartitionsAsync`): phase 1 drains
    /// the source (`Draining`: it refuses every client write from then on) into the survivor,
    /// which keeps serving its own range. This node must lead partition 0. Returns the
    /// survivor's generation once partition 0 committed phase 1 and this node applied it
    /// (Kommander answers then too); phase 2 follows on its own once the survivor imported the
    /// source's range through its log: the survivor owns both ranges at the next generation,
    /// the source is a tombstone that every node closes. A retry answers with the survivor's
    /// generation while the source drains into it and once the source is a tombstone at an
    /// edge of the survivor's range. Waits at most `timeout` (`None`: `proposal_timeout_ms`).
    ///
    /// # Errors
    ///
    /// [`PartitionLifecycleError::Refused`] for partition 0, the same partition twice, either
    /// unknown or not `Active`, partitions routed differently, hash ranges that do not touch,
    /// no map yet; the others as [`Raft::create_partition`].
    pub fn merge_partitions(
        &self,
        survivor: PartitionId,
        source: PartitionId,
        timeout: Option<Duration>,
    ) -> impl Future<Output = Result<u64, PartitionLifecycleError>> + Send + 'static + use<> {
        self.change_map(MapOperation::Merge { survivor, source }, timeout)
    }

    /// The id after the highest one this node's committed map holds, tombstones included
    /// (Kommander's `GetNextAvailablePartitionId`): 1 before the first map; `None` when the
    /// highest id is `u32::MAX`. Another node may create it first: a create of an id that
    /// exists answers with its generation.
    #[must_use]
    pub fn next_available_partition_id(&self) -> Option<PartitionId> {
        self.inner
            .system
            .committed_map()
            .next_available_partition_id()
    }

    /// Asks partition 0's shard on this node for `operation` and waits for the answer.
    fn change_map(
        &self,
        operation: MapOperation,
        timeout: Option<Duration>,
    ) -> impl Future<Output = Result<u64, PartitionLifecycleError>> + Send + 'static + use<> {
        let this = self.clone();
        let waited = self.proposal_timeout(timeout);
        let sent = match self.inner.timer.deadline(Some(waited)) {
            Ok(deadline) => {
                let (reply, answer) = oneshot::channel();
                let request = Request::ChangeMap {
                    operation,
                    ticket: Ticket(self.inner.hlc.now().packed()),
                    reply,
                };
                self.inner
                    .shards
                    .send(SYSTEM_PARTITION, request)
                    .map(|()| (deadline, answer))
                    .map_err(|refusal| this.lifecycle_error(refusal))
            }
            Err(TimerError::Full) => Err(PartitionLifecycleError::QueueFull),
            Err(TimerError::Stopped) => {
                Err(PartitionLifecycleError::Fatal(self.inner.stopped_error()))
            }
        };
        async move {
            let (deadline, answer) = sent?;
            let answer = race(deadline, answer)
                .await
                .map_err(|Elapsed| PartitionLifecycleError::Timeout { waited })?
                .unwrap_or(Err(SHARD_GONE));
            match answer.map_err(|refusal| this.lifecycle_error(refusal))? {
                MapChangeAnswer::Changed { generation, .. }
                | MapChangeAnswer::AlreadyDone { generation } => Ok(generation),
                MapChangeAnswer::Refused(error) => Err(PartitionLifecycleError::Refused(error)),
                MapChangeAnswer::InFlight | MapChangeAnswer::Superseded => {
                    Err(PartitionLifecycleError::ConcurrentChange)
                }
                MapChangeAnswer::Unknown => Err(PartitionLifecycleError::LeadershipLost),
            }
        }
    }
}
