//! Phase 2 of a split or merge (decision 0006, amendment "split and merge, precisely"),
//! proposed by partition 0's established leader's shard on every tick from the committed map:
//! for each range importing from a source, once this node's replica of that range's partition
//! applied the end of an import of the source's current generation
//! ([`SplitProgress::import_applied`](crate::shard::partitions::SplitProgress::import_applied)),
//! it proposes the phase-2 map (`partitions::phase_2`) as the one map change in flight
//! (`map_change.rs`), answered to nobody.
//!
//! Nothing is held in memory beyond the change in flight: whether phase 2 is due is read from
//! the committed map and this node's logs each tick, so a new leader of partition 0 finishes a
//! split or merge its predecessor began, and a phase 2 whose entry was lost is proposed again.
//! A phase-2 map that lost to another of the same version (`Superseded`) is planned again
//! from the map that won.

use tokio::sync::oneshot;

use super::Worker;
use super::membership::system_ticket;
use crate::shard::SYSTEM_PARTITION;
use crate::shard::partitions::phase_2;

impl Worker {
    /// The tick's phase-2 work (see the module docs).
    pub(super) fn drive_phase_two(&mut self) {
        // Leading partition 0, its no-op committed, every committed map applied, no change
        // in flight.
        if self.failed() || self.map_change_members(false).is_err() {
            return;
        }
        let map = self.maps.map();
        let progress = self.maps.progress();
        let imported = |target| progress.import_applied(target);
        // The bug: every transfer counts as imported as soon as its phase 1 is committed.
        #[cfg(feature = "sim-bugs")]
        let skipped = self.config.bug == Some(crate::shard::NodeBug::PhaseTwoBeforePhaseOne);
        #[cfg(feature = "sim-bugs")]
        let imported = |target| match skipped {
            true => crate::shard::partitions::transfer_into(&map, target),
            false => imported(target),
        };
        let Some((next, generation)) = phase_2(&map, imported) else {
            return;
        };
        let Some(ticket) = self.partitions.replica(SYSTEM_PARTITION).map(system_ticket) else {
            return;
        };
        tracing::info!(
            version = next.version,
            "partition map: the import ended; proposing phase 2"
        );
        // Nobody waits for the answer: the next tick reads the outcome from the map.
        let (reply, _) = oneshot::channel();
        self.propose_map(next, generation, ticket, reply);
    }
}
