//! Map changes (decision 0006 point 3), carried out by partition 0's established leader's
//! shard as membership changes are: [`Request::ChangeMap`](crate::shard::Request::ChangeMap)
//! plans the next map from the committed one (`shard/partitions/operations.rs`) and proposes
//! it whole as one `_RaftSystem` entry ([`map_proposal`]); a created partition's first
//! configuration is partition 0's committed voters and learners, carried in that entry.
//!
//! One change at a time (a phase 2 proposed by the leader itself counts, `phase_two.rs`):
//! while one is in flight, or while the leader has not applied every
//! committed map (its term's no-op not committed, or committed entries not delivered yet),
//! another is refused `InFlight` — so the committed map a change is planned from is the one
//! the next entry follows. The first map alone is proposed at once by a new leader, as the
//! node always proposed it. The answer waits for the entry's commit *and* for partition 0's
//! shard to apply it: a map of the same version applied before it (two leaders in a row each
//! proposed one) means the change did not take effect (`Superseded`), never `Changed`.

use tokio::sync::oneshot::{self, error::TryRecvError};

use super::Worker;
use crate::core::{Status, Ticket};
use crate::shard::partitions::{
    FirstMembers, MapChangeAnswer, MapLimits, MapOperation, PartitionMap, Planned, map_proposal,
};
use crate::shard::{Refusal, ReplicationResult, Reply, SYSTEM_PARTITION};

/// The map change partition 0's leader proposed and has not answered yet.
#[derive(Debug)]
pub(super) struct MapChangeInFlight {
    /// The map proposed.
    map: PartitionMap,
    /// The generation of the operation's range in it.
    generation: u64,
    /// The outcome of its entry.
    outcome: oneshot::Receiver<Result<ReplicationResult, Refusal>>,
    /// Whether the entry committed (the answer then waits for the map's application).
    committed: bool,
    reply: Reply<MapChangeAnswer>,
}

impl MapChangeInFlight {
    /// Answers the change's caller with `refusal` (the shard stops or failed).
    pub(super) fn refuse(self, refusal: Refusal) {
        let _ = self.reply.send(Err(refusal));
    }
}

impl Worker {
    /// Carries out a map change on partition 0 (see the module docs).
    pub(super) fn change_map(
        &mut self,
        operation: &MapOperation,
        ticket: Ticket,
        reply: Reply<MapChangeAnswer>,
    ) {
        let limits = MapLimits {
            partitions_max: self.config.partitions_max,
            floor_meta_bytes_max: self.config.wal.floor_meta_bytes_max,
        };
        // The first map does not wait for the leader's no-op: no map it could miss can take
        // effect after it (a map is applied only above the known version; two first maps
        // proposed by successive leaders: the second is `Superseded`), and a cluster waiting
        // for it opens no partition meanwhile (whose first configuration the roster changes
        // of that wait would leave behind).
        let first_map = matches!(operation, MapOperation::Initialize { .. });
        let first = match self.map_change_members(first_map) {
            Ok(first) => first,
            Err(answer) => {
                let _ = reply.send(answer);
                return;
            }
        };
        let (map, generation) = match self.maps.map().plan(operation, &first, limits) {
            Ok(Planned::Next { map, generation }) => (map, generation),
            Ok(Planned::AlreadyDone { generation }) => {
                let _ = reply.send(Ok(MapChangeAnswer::AlreadyDone { generation }));
                return;
            }
            Err(error) => {
                let _ = reply.send(Ok(MapChangeAnswer::Refused(error)));
                return;
            }
        };
        self.propose_map(map, generation, ticket, reply);
    }

    /// Partition 0's committed voters and learners (a created partition's first
    /// configuration), when this shard may propose a map change now: it leads partition 0, no
    /// change is in flight, and it applied every committed map (unless `first_map`). Else the
    /// answer to give.
    pub(super) fn map_change_members(
        &mut self,
        first_map: bool,
    ) -> Result<FirstMembers, Result<MapChangeAnswer, Refusal>> {
        let in_flight = self.map_change.is_some();
        let replica = match self.partitions.leading(SYSTEM_PARTITION) {
            Ok(slot) => slot.replica.as_ref(),
            Err(refusal) => return Err(Err(refusal)),
        };
        // Never `None`: `leading` found it.
        let replica = replica.ok_or(Err(Refusal::RestoreInProgress))?;
        let applied_all =
            replica.is_leader_established() && replica.applied_index() >= replica.commit_index();
        if in_flight || !(applied_all || first_map) {
            return Err(Ok(MapChangeAnswer::InFlight));
        }
        let committed = replica.committed_configuration();
        Ok(FirstMembers {
            voters: committed.voters().to_vec(),
            learners: committed.learners().to_vec(),
        })
    }

    /// Proposes `map` on partition 0 as the change in flight, answered on `reply`.
    pub(super) fn propose_map(
        &mut self,
        map: PartitionMap,
        generation: u64,
        ticket: Ticket,
        reply: Reply<MapChangeAnswer>,
    ) {
        let (proposed, outcome) = oneshot::channel();
        self.execute(SYSTEM_PARTITION, map_proposal(&map, ticket, proposed));
        self.map_change = Some(MapChangeInFlight {
            map,
            generation,
            outcome,
            committed: false,
            reply,
        });
        self.answer_map_change();
    }

    /// Answers the change in flight once its outcome is known (each turn, after the Readies:
    /// partition 0's shard applies a committed map before it answers the entry's outcome).
    pub(super) fn answer_map_change(&mut self) {
        let Some(change) = self.map_change.as_mut() else {
            return;
        };
        if !change.committed {
            let answer = match change.outcome.try_recv() {
                Err(TryRecvError::Empty) => return,
                Ok(Ok(result)) if result.status == Status::Success => {
                    change.committed = true;
                    None
                }
                // Leadership lost before the commit (the core's `ReplicationFailed`), or the
                // proposal's waiter dropped: it may still commit.
                Ok(Ok(_)) | Err(TryRecvError::Closed) => Some(Ok(MapChangeAnswer::Unknown)),
                Ok(Err(refusal)) => Some(Err(refusal)),
            };
            if let Some(answer) = answer {
                if let Some(change) = self.map_change.take() {
                    let _ = change.reply.send(answer);
                }
                return;
            }
        }
        let applied = self.maps.map();
        if applied.version < change.map.version {
            // Committed, not delivered here yet.
            return;
        }
        let Some(change) = self.map_change.take() else {
            return;
        };
        let answer = if *applied == change.map {
            MapChangeAnswer::Changed {
                version: change.map.version,
                generation: change.generation,
            }
        } else {
            MapChangeAnswer::Superseded
        };
        let _ = change.reply.send(Ok(answer));
    }
}
