//! The freeze of a split's or merge's source in its own log (decision 0006, amendment point
//! 1), and the fence that reads it.
//!
//! On every tick, each partition this shard leads that the committed map makes the source of
//! a transfer (a `Splitting` source, a `Draining` range: it names the partner it exports to)
//! at a generation its log has not recorded gets a *generation entry* (`_RaftGeneration`: the
//! generation, and whether it drains), proposed by the shard itself. Each replica tracks the
//! highest generation entry its log held (`WalView::marks`: appended, restored, kept at the
//! floor), and the fence judges a request with the higher of the map's generation and the
//! log's: once the entry commits, every later leader has it, so the source commits no write
//! routed with the old generation from there on, whatever its node's map says.
//!
//! Worked case: nodes A, B, C; partition 1 split at map version 5 (its generation 2 → 3).
//! C's partition 0 is cut off and still at version 4. A leads partition 1, sees version 5,
//! proposes the generation entry 3; it commits on A and C. A crashes, C becomes partition 1's
//! leader: its map says generation 2, its log says 3, so a write routed with 2 is refused.

use std::num::NonZeroU64;

use super::Worker;
use crate::core::PartitionId;
use crate::shard::codec::encode_envelope;
use crate::shard::partitions::marks::{GENERATION_LOG_TYPE, GenerationMark};
use crate::shard::partitions::{Access, RangeState};
use crate::shard::{Request, shard_of};

impl Worker {
    /// Whether the fence lets `request` to `partition`, routed with `expected_generation`
    /// (`None`: unfenced), through: this node's committed map and the partition's log
    /// (`partitions/fence.rs`).
    pub(super) fn fence_admits(
        &self,
        partition: PartitionId,
        request: &Request,
        expected_generation: Option<NonZeroU64>,
    ) -> bool {
        let log = self
            .partitions
            .get(partition)
            .map(|slot| slot.view.marks().generation)
            .unwrap_or_default();
        self.maps
            .map()
            .admits(partition, log, access_of(request), expected_generation)
    }

    /// Proposes the generation entry of every source this shard leads whose log has not
    /// recorded its committed map's generation (see the module docs). A refused proposal is
    /// proposed again at the next tick.
    pub(super) fn propose_generations(&mut self) {
        if self.failed() {
            return;
        }
        let map = self.maps.map();
        let shards = self.config.shard_count;
        for range in &map.partitions {
            let partition = range.partition_id;
            let exporting = range.exporting_to.is_some()
                && matches!(range.state, RangeState::Splitting | RangeState::Draining);
            if !exporting || shard_of(partition, shards) != self.shard {
                continue;
            }
            let mark = GenerationMark {
                generation: range.generation,
                draining: range.state == RangeState::Draining,
            };
            let Some(slot) = self.partitions.get_mut(partition) else {
                continue;
            };
            let recorded = slot.view.marks().generation;
            if recorded.generation >= mark.generation && (recorded.draining || !mark.draining) {
                continue;
            }
            let Some(replica) = slot.replica.as_mut().filter(|r| r.is_leader()) else {
                continue;
            };
            if slot.restore.is_some() || slot.installing {
                continue;
            }
            let ticket = super::membership::system_ticket(replica);
            let payload = encode_envelope(GENERATION_LOG_TYPE, &mark.encode());
            match replica.propose_batch(ticket, true, &[payload]) {
                Ok(_) => {
                    tracing::info!(
                        %partition,
                        generation = mark.generation,
                        draining = mark.draining,
                        "split or merge: the source's generation entry proposed"
                    );
                    self.partitions.mark_dirty(partition);
                }
                Err(status) => {
                    tracing::debug!(%partition, ?status, "generation entry refused; proposed again next tick");
                }
            }
        }
    }
}

/// What `request` does, for the fence.
fn access_of(request: &Request) -> Access {
    match request {
        Request::Propose { .. } | Request::Commit { .. } => Access::Write,
        Request::ReadIndex { .. } => Access::Read,
        Request::Fenced { request, .. } => access_of(request),
        _ => Access::Other,
    }
}
