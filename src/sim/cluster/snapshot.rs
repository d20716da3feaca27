//! Snapshot transfer, as a runtime would do it: the leader's applied checkpoint travels to a
//! follower behind the compaction floor, may be lost, and ends in an install or a failure report.

use super::*;

/// A snapshot on its way from a leader to a follower that needs entries below the floor.
#[derive(Debug, Clone)]
pub(super) struct SnapshotTransfer {
    pub(super) from: usize,
    pub(super) from_incarnation: u64,
    pub(super) to: usize,
    pub(super) partition: usize,
    pub(super) term: Term,
    pub(super) meta: Floor,
}

impl Simulation {
    /// Ships the leader's applied checkpoint to `target` (application state in a real
    /// runtime): it arrives after a network delay, or is lost like any message.
    pub(super) fn start_snapshot_transfer(
        &mut self,
        from: usize,
        partition: usize,
        target: NodeId,
    ) {
        let Some(core) = self.nodes[from].replicas[partition].core.as_ref() else {
            return;
        };
        let index = core.checkpoint_floor();
        let (term, index_term) = (core.term(), core.term_at(index));
        let configuration = core.configuration_at(index).cloned();
        let to = target.0 as usize - 1;
        let route = self.network.route(from, to, &mut self.net_rng);
        self.trace
            .event(15, &[self.now, from as u64, to as u64, index.0]);
        let (Some(index_term), Some(configuration)) = (
            index_term.filter(|_| index.0 > 0 && to < self.nodes.len()),
            configuration,
        ) else {
            if let Some(core) = self.nodes[from].replicas[partition].core.as_mut() {
                core.report_snapshot_failure(target);
            }
            return;
        };
        let transfer = SnapshotTransfer {
            from,
            from_incarnation: self.nodes[from].incarnation,
            to,
            partition,
            term,
            meta: Floor {
                index,
                term: index_term,
                configuration,
            },
        };
        // A lost transfer is noticed after a timeout.
        let delay = route.first.map_or(500, |delay| delay * 10);
        self.agenda
            .push(self.now + delay, Event::SnapshotArrives { transfer });
    }

    pub(super) fn finish_snapshot_transfer(
        &mut self,
        transfer: SnapshotTransfer,
    ) -> Result<(), SimFailure> {
        let SnapshotTransfer {
            from,
            from_incarnation,
            to,
            partition,
            term,
            meta,
        } = transfer.clone();
        let delivered = self.nodes[to].up && !self.network.is_cut(from, to);
        let installed = delivered
            && self.nodes[to].replicas[partition]
                .core
                .as_mut()
                .is_some_and(|core| {
                    core.install_snapshot(node_id(from), term, meta, (0, 0))
                        .is_ok()
                });
        if installed {
            // The follower's acknowledgement is an ordinary message and may be lost; like a
            // runtime's transfer timeout, re-probe if the leader still waits after a while.
            self.agenda
                .push(self.now + 1_000, Event::SnapshotWatchdog { transfer });
            return self.drain(to, partition);
        }
        if self.nodes[from].up && self.nodes[from].incarnation == from_incarnation {
            if let Some(core) = self.nodes[from].replicas[partition].core.as_mut() {
                core.report_snapshot_failure(node_id(to));
            }
            self.drain(from, partition)?;
        }
        Ok(())
    }
}
