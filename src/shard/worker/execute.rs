//! Request execution: each [`Request`] queued for a partition is carried out on its replica
//! (proposals fenced by the committed partition map, validated and encoded first), or refused
//! with a [`Refusal`]. Operations that complete later (proposals, commits, rollbacks,
//! checkpoints, reads) leave their reply as a waiter on the partition; the Ready that reports
//! their outcome answers it.

use std::num::NonZeroU64;
use std::sync::Arc;

use super::Worker;
use super::partition::{ReadWaiter, Slot, reads_full};
use crate::core::{EntryKind, LogIndex, PartitionId, Status};
use crate::shard::codec::ENTRY_HEADER_LEN;
use crate::shard::partitions::marks::is_reserved_log_type;
use crate::shard::snapshot::sender::Sending;
use crate::shard::{
    FollowerLag, PartitionStatus, Refusal, ReplicationResult, Reply, Request, SYSTEM_PARTITION,
    SnapshotProgress, outcome_key,
};

impl Worker {
    /// Carries out `request` on `partition`'s replica, or refuses it.
    pub(super) fn execute(&mut self, partition: PartitionId, request: Request) {
        self.execute_routed(partition, request, None);
    }

    /// Carries out `request`, which its caller routed with `expected_generation` (`None`:
    /// unfenced; a fenced read keeps it to be judged again when it is answered).
    fn execute_routed(
        &mut self,
        partition: PartitionId,
        request: Request,
        expected_generation: Option<NonZeroU64>,
    ) {
        if let Some(refusal) = self.failure_refusal() {
            request.refuse(refusal);
            return;
        }
        let request = match request {
            Request::ChangeMembership {
                change,
                expected_version,
                ticket,
                reply,
            } => {
                self.change_membership(&change, expected_version, ticket, reply);
                self.partitions.mark_dirty(SYSTEM_PARTITION);
                return;
            }
            Request::ChangeMap {
                operation,
                ticket,
                reply,
            } => {
                self.change_map(&operation, ticket, reply);
                self.partitions.mark_dirty(SYSTEM_PARTITION);
                return;
            }
            // The generation fence, judged now, when the write would be proposed (decision
            // 0006 point 4): a map change committed while it queued is seen. A read is judged
            // again when it is answered (`partitions/fence.rs`).
            Request::Fenced {
                expected_generation,
                request,
            } => {
                let admitted = self.fence_admits(partition, &request, Some(expected_generation));
                #[cfg(feature = "sim-bugs")]
                let admitted =
                    admitted || self.config.bug == Some(crate::shard::NodeBug::SkipGenerationFence);
                if admitted {
                    self.execute_routed(partition, *request, Some(expected_generation));
                } else {
                    request.refuse(Refusal::NotHosted);
                }
                return;
            }
            // A removed, filled or drained range takes no client write, fenced or not.
            request @ (Request::Propose { .. } | Request::Commit { .. })
                if !self.fence_admits(partition, &request, None) =>
            {
                request.refuse(Refusal::NotHosted);
                return;
            }
            other => other,
        };
        let config = Arc::clone(&self.config);
        let Some(slot) = self.partitions.get_mut(partition) else {
            request.refuse(Refusal::NotHosted);
            return;
        };
        if slot.held() {
            request.refuse(Refusal::RestoreInProgress);
            return;
        }
        let Some(replica) = slot.replica.as_mut() else {
            request.refuse(Refusal::RestoreInProgress);
            return;
        };
        match request {
            Request::Propose {
                entries,
                auto_commit,
                ticket,
                reply,
            } => {
                let envelope_max = config.wal.record_bytes_max.saturating_sub(ENTRY_HEADER_LEN);
                let invalid = entries.is_empty()
                    || entries.len() > config.proposal_entries_max
                    || entries.iter().any(|e| {
                        e.log_type_len > config.log_type_bytes_max
                            || is_reserved_log_type(e.log_type())
                            || e.envelope.len() > envelope_max
                    });
                if invalid {
                    let _ = reply.send(Err(Refusal::Replica(Status::Errored)));
                    return;
                }
                let payloads = &mut self.payloads;
                payloads.extend(entries.into_iter().map(|e| e.envelope));
                let proposed = replica.propose_batch(ticket, auto_commit, payloads);
                payloads.clear();
                match proposed {
                    Ok(range) => {
                        slot.add_waiter(outcome_key(EntryKind::Normal, *range.end()), reply);
                    }
                    Err(status) => {
                        let _ = reply.send(Err(Refusal::of_replica(replica, status)));
                    }
                }
            }
            Request::Commit { ticket, reply } => {
                let result = replica.commit_proposal(ticket);
                let result = result.map_err(|s| Refusal::of_replica(replica, s));
                Self::wait_outcome(slot, EntryKind::Commit, result, reply);
            }
            Request::Rollback { ticket, reply } => {
                let result = replica.rollback_proposal(ticket);
                let result = result.map_err(|s| Refusal::of_replica(replica, s));
                Self::wait_outcome(slot, EntryKind::Rollback, result, reply);
            }
            Request::Checkpoint { ticket, reply } => {
                let result = replica.propose_checkpoint(ticket);
                let result = result.map_err(|s| Refusal::of_replica(replica, s));
                Self::wait_outcome(slot, EntryKind::Checkpoint, result, reply);
            }
            // Carried out above.
            Request::ChangeMembership { .. }
            | Request::ChangeMap { .. }
            | Request::Fenced { .. } => {}
            Request::Configuration { reply } => {
                let _ = reply.send(Ok(crate::shard::PartitionConfiguration {
                    current: replica.configuration().clone(),
                    committed: replica.committed_configuration().clone(),
                }));
            }
            Request::Status { reply } => {
                let soft = replica.soft_state();
                let _ = reply.send(Ok(PartitionStatus {
                    role: soft.role,
                    leader: soft.leader,
                    term: soft.term,
                    commit: replica.commit_index(),
                    last_index: replica.last_index(),
                    applied: replica.applied_index(),
                    floor: replica.compaction_floor(),
                    wal_floor: LogIndex(slot.view.floor()),
                }));
            }
            Request::ReadIndex { leader_only, reply } => {
                #[cfg(feature = "sim-bugs")]
                if config.bug == Some(crate::shard::NodeBug::ReadWithoutReadIndex) {
                    // The bug: served from local state, on any replica, without a round.
                    let _ = reply.send(Ok(replica.applied_index()));
                    return;
                }
                if leader_only && !replica.is_leader_established() {
                    // Kommander fails fast on a follower and on an unpublished leader (its
                    // no-op not committed yet), whose read would wait for that commit.
                    let _ = reply.send(Err(Refusal::NotLeader {
                        leader: replica.leader(),
                    }));
                    return;
                }
                let max = config.core.read_index_pending_max;
                if reads_full(&mut slot.reads, &mut slot.reads_waiting_apply, max) {
                    let _ = reply.send(Err(Refusal::QueueFull));
                    return;
                }
                slot.next_read_context += 1;
                let context = slot.next_read_context;
                match replica.read_index(context) {
                    Ok(()) => {
                        let read = ReadWaiter {
                            reply,
                            expected_generation,
                        };
                        slot.reads.insert(context, read);
                    }
                    Err(status) => {
                        let _ = reply.send(Err(Refusal::of_replica(replica, status)));
                    }
                }
            }
            Request::TransferLeadership { target, reply } => {
                let result = replica.transfer_leadership(target);
                let _ = reply.send(result.map_err(|s| Refusal::of_replica(replica, s)));
            }
            Request::StepDown { reply } => {
                let result = replica.step_down();
                let _ = reply.send(result.map_err(|s| Refusal::of_replica(replica, s)));
            }
            Request::SuspendHeartbeats { reply } => {
                let result = replica.suspend_heartbeats();
                let _ = reply.send(result.map_err(|s| Refusal::of_replica(replica, s)));
            }
            Request::ResumeHeartbeats { reply } => {
                let result = replica.resume_heartbeats();
                let _ = reply.send(result.map_err(|s| Refusal::of_replica(replica, s)));
            }
            Request::FollowerLag { node, reply } => {
                let snapshot = match self.transfers.sending.get(&(partition, node)) {
                    Some(Sending::Active(outgoing)) => Some(SnapshotProgress {
                        index: outgoing.floor.index,
                        bytes_sent: outgoing.bytes,
                    }),
                    _ => None,
                };
                let answer = if replica.is_leader() {
                    replica
                        .progress(node)
                        .map(|p| FollowerLag {
                            match_index: p.match_index,
                            leader_last_index: replica.last_index(),
                            snapshot,
                        })
                        .ok_or(Refusal::Replica(Status::Errored))
                } else {
                    Err(Refusal::NotLeader {
                        leader: replica.leader(),
                    })
                };
                let _ = reply.send(answer);
            }
        }
        self.partitions.mark_dirty(partition);
    }

    /// Registers `reply` as a waiter of the operation's outcome, or answers its refusal.
    pub(super) fn wait_outcome(
        slot: &mut Slot,
        kind: EntryKind,
        result: Result<LogIndex, Refusal>,
        reply: Reply<ReplicationResult>,
    ) {
        match result {
            Ok(index) => slot.add_waiter(outcome_key(kind, index), reply),
            Err(refusal) => {
                let _ = reply.send(Err(refusal));
            }
        }
    }
}
