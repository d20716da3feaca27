//! The checks made after every turn (what applications were handed), at every acknowledgement
//! and crash (the disks), and at the end (healing, liveness, final states, histories).

use std::sync::Arc;

use crate::core::{EntryKind, LogIndex, NodeId, PartitionId};
use crate::shard::SYSTEM_PARTITION;
use crate::shard::partitions::RangeState;
use crate::sim::checkers::Violation;
use crate::sim::network::NetworkConfig;

use super::NodeSimulation;
use super::app::Delivered;
use super::checkers::{
    AcknowledgedWritesDurable, ExactlyOnceInOrderDelivery, FailedWritesNeverCommit,
    Linearizability, LogMatching, RECOVERY, RangeOwnership, RoutedWrite, StateMachineSafety,
};
use super::client::PartitionClients;
use super::report::{RUN_ACKNOWLEDGED_MIN, RUN_READS_MIN};
use super::run::{Event, SETTLE_CHECK_MS};
use super::truth::{Acknowledged, DurableLog, decode_durable};
use super::workload::Op;

impl NodeSimulation {
    // ----- deliveries -----

    /// Judges what `node`'s application was handed since the last look.
    pub(super) fn check_deliveries(&mut self, node: usize) -> Result<(), Violation> {
        let id = self.nodes[node].id;
        for delivered in self.nodes[node].app.take_delivered() {
            self.report.delivered += 1;
            self.trace.event(
                20,
                &[
                    node as u64,
                    u64::from(delivered.partition.0),
                    delivered.index.0,
                    delivered.term.0,
                ],
            );
            let verdict = ExactlyOnceInOrderDelivery::on_delivered(id, &delivered);
            self.checkers
                .judge(ExactlyOnceInOrderDelivery::NAME, verdict)?;
            let verdict = StateMachineSafety::on_delivered(id, &delivered, &mut self.truth.applied);
            self.checkers.judge(StateMachineSafety::NAME, verdict)?;
            if delivered.kind == EntryKind::Normal
                && let Some(op) = delivered.op
            {
                self.truth
                    .applied_ops
                    .entry(op.id())
                    .or_insert((delivered.partition, delivered.index));
                let verdict = FailedWritesNeverCommit::on_applied(
                    op.id(),
                    delivered.partition,
                    delivered.index,
                    &self.truth.failed,
                );
                self.checkers
                    .judge(FailedWritesNeverCommit::NAME, verdict)?;
                if self.config.elastic() {
                    self.check_ownership(node, &delivered, op)?;
                }
            }
        }
        for imported in self.nodes[node].app.take_imported() {
            let at = (imported.partition, imported.index);
            let first = self
                .truth
                .imports
                .entry(at)
                .or_insert_with(|| imported.registers.clone());
            if *first != imported.registers {
                let verdict = Err(format!(
                    "node {id} was handed an import entry at partition {} index {} carrying \
                     {:?}, where one carrying {first:?} was handed before",
                    imported.partition, imported.index, imported.registers
                ));
                self.checkers.judge(StateMachineSafety::NAME, verdict)?;
            }
        }
        Ok(())
    }

    /// `range_ownership` on a workload write `node`'s application was just handed, against
    /// that node's durable log of the partition; a routed write is kept for the end's check of
    /// its key's range (the first hand-over of each).
    fn check_ownership(
        &mut self,
        node: usize,
        delivered: &Delivered,
        op: Op,
    ) -> Result<(), Violation> {
        let (partition, index, term) = (delivered.partition, delivered.index, delivered.term);
        if let Op::Write {
            key, generation, ..
        } = op
            && generation != 0
            && self.truth.routed_ids.insert(op.id())
        {
            self.truth.routed_writes.push(RoutedWrite {
                partition,
                index,
                key,
                generation,
            });
        }
        if !self.checkers.listens(RangeOwnership::NAME) {
            return Ok(());
        }
        let shard = crate::shard::shard_of(partition, self.config.shards);
        let logs = match self.durable(node, shard) {
            Ok(logs) => logs,
            Err(error) => return self.checkers.judge(RECOVERY, Err(error)),
        };
        let Some(log) = logs.get(&partition) else {
            return Ok(());
        };
        let verdict = RangeOwnership::on_applied(partition, index, term, op, log);
        self.checkers.judge(RangeOwnership::NAME, verdict)
    }

    // ----- the disks -----

    /// The durable logs of `node`'s `shard` disk, decoded (cached while nothing became durable).
    pub(super) fn durable(
        &mut self,
        node: usize,
        shard: usize,
    ) -> Result<Arc<std::collections::BTreeMap<PartitionId, DurableLog>>, String> {
        let sim_node = &mut self.nodes[node];
        let logs = sim_node.disks[shard].0.durable_logs().map_err(|e| {
            format!(
                "node {} shard {shard}: the durable image does not recover: {e}",
                node + 1
            )
        })?;
        if let Some((source, decoded)) = &sim_node.durable[shard]
            && Arc::ptr_eq(source, &logs)
        {
            return Ok(Arc::clone(decoded));
        }
        let decoded = Arc::new(
            decode_durable(&logs).map_err(|e| format!("node {} shard {shard}: {e}", node + 1))?,
        );
        sim_node.durable[shard] = Some((logs, Arc::clone(&decoded)));
        if let Some(system) = decoded.get(&SYSTEM_PARTITION) {
            for map in &system.maps {
                self.truth.ranges.note(map);
            }
        }
        Ok(decoded)
    }

    /// Whether a majority of the voters' disks hold `ack` now (the first voters of a partition
    /// a map created are those its map entry names). Not judged once a map that
    /// partition 0's disks held made its partition a tombstone: every node deletes its WAL
    /// records (a merged-away partition's writes live on in its survivor, imported through the
    /// survivor's log: the linearizability checker judges the keys' values there).
    pub(super) fn check_durable(&mut self, ack: &Acknowledged) -> Result<(), String> {
        let verdict = self.check_durable_on_disks(ack);
        if verdict.is_err() && self.config.elastic() {
            // Judged again with the maps partition 0's disks hold now (the first voters of a
            // partition a map created).
            self.note_maps();
            if self.truth.ranges.removed(ack.partition) {
                return Ok(());
            }
            return self.check_durable_on_disks(ack);
        }
        verdict
    }

    /// Takes the partition maps every node's disk of partition 0 holds now into the truth's
    /// history (`durable` does, when it decodes a new image).
    pub(super) fn note_maps(&mut self) {
        let shard = crate::shard::shard_of(SYSTEM_PARTITION, self.config.shards);
        for node in 0..self.nodes.len() {
            // A disk that does not recover is the recovery checker's, at the next disk check.
            let _ = self.durable(node, shard);
        }
    }

    fn check_durable_on_disks(&mut self, ack: &Acknowledged) -> Result<(), String> {
        let shard = crate::shard::shard_of(ack.partition, self.config.shards);
        let mut logs = Vec::with_capacity(self.nodes.len());
        for node in 0..self.nodes.len() {
            logs.push(self.durable(node, shard)?);
        }
        let lost = &self.truth.lost_disks;
        let views: Vec<Vec<&DurableLog>> = (0..logs.len())
            .map(|node| {
                let lost = lost
                    .iter()
                    .filter(|(n, s, _)| *n == node && *s == shard)
                    .map(|(_, _, logs)| logs);
                std::iter::once(&logs[node])
                    .chain(lost)
                    .filter_map(|logs| logs.get(&ack.partition))
                    .collect()
            })
            .collect();
        let changes_memberships = self.config.membership_interval_ms_max > 0;
        // A partition a map created (a split's target, a created one) starts with the voters
        // its map entry names; the first map's with the nodes the cluster started with.
        let first_voters: Vec<NodeId> = self
            .truth
            .ranges
            .first_voters(ack.partition)
            .unwrap_or_else(|| {
                (1..=self.config.initial_members as u64)
                    .map(NodeId)
                    .collect()
            });
        AcknowledgedWritesDurable::check(
            ack,
            &views,
            &self.truth.applied,
            &first_voters,
            changes_memberships,
        )
    }

    /// Every acknowledged write is still durable on a majority, and the durable logs match:
    /// run before every crash and at the end.
    pub(super) fn check_disks(&mut self) -> Result<(), Violation> {
        self.report.disk_checks += 1;
        if self.config.elastic() {
            self.note_maps();
        }
        let listens_durable = self.checkers.listens(AcknowledgedWritesDurable::NAME);
        if listens_durable {
            for ack in self.truth.acknowledged.clone() {
                let verdict = self.check_durable(&ack);
                self.checkers
                    .judge(AcknowledgedWritesDurable::NAME, verdict)?;
            }
        }
        if !self.checkers.listens(LogMatching::NAME) {
            return Ok(());
        }
        // Partition 0 (the roster's) included, and every partition a map ever held.
        for p in 0..=self.highest_partition() {
            let partition = PartitionId(p);
            let shard = crate::shard::shard_of(partition, self.config.shards);
            let mut logs = Vec::with_capacity(self.nodes.len());
            for node in 0..self.nodes.len() {
                match self.durable(node, shard) {
                    Ok(decoded) => logs.push((node, decoded)),
                    Err(error) => return self.checkers.judge(RECOVERY, Err(error)),
                }
            }
            let views: Vec<(usize, &DurableLog)> = logs
                .iter()
                .filter_map(|(node, logs)| logs.get(&partition).map(|log| (*node, log)))
                .collect();
            let verdict = LogMatching::check(partition, &views);
            self.checkers.judge(LogMatching::NAME, verdict)?;
        }
        Ok(())
    }

    // ----- the end -----

    /// The fault phase ends: every fault healed, every node up, the network healthy.
    pub(super) fn end_faults(&mut self) -> Result<(), Violation> {
        self.healed_at = Some(self.now);
        self.network.heal();
        self.network.set_config(NetworkConfig::healthy());
        self.cut_generation += 1;
        for node in 0..self.nodes.len() {
            let sim_node = &mut self.nodes[node];
            sim_node.disk_slowdown = 1;
            sim_node.disarm();
            if sim_node.up() {
                if sim_node.paused_until > self.now {
                    self.resume(node);
                }
            } else if !self.awaits_admission(node) {
                // Its pending restart is superseded.
                self.nodes[node].incarnation += 1;
                self.start_node(node)?;
            }
        }
        self.agenda
            .push(self.now + SETTLE_CHECK_MS, Event::CheckSettled);
        Ok(())
    }

    /// Every partition served writes and reads invoked after the faults stopped (enough of each,
    /// see `PartitionClients::healed`), and the run has the writes and reads that make it
    /// prove something ([`RUN_ACKNOWLEDGED_MIN`], [`RUN_READS_MIN`]).
    pub(super) fn settled(&self) -> bool {
        self.healed_at.is_some()
            && self.clients.partitions.iter().all(PartitionClients::healed)
            && self.floors_reached()
    }

    /// Whether the run has [`RUN_ACKNOWLEDGED_MIN`] acknowledged writes and [`RUN_READS_MIN`]
    /// answered reads.
    fn floors_reached(&self) -> bool {
        self.report.acknowledged >= RUN_ACKNOWLEDGED_MIN && self.report.reads >= RUN_READS_MIN
    }

    /// Every node's application applied the same index of every partition (a node whose log
    /// fell behind its leader's compaction floor catches up through a snapshot): the
    /// configured ones, or with the elastic operator those the final map holds open.
    pub(super) fn converged(&self) -> bool {
        self.diverged().is_none()
    }

    /// The first partition whose applications stand at different entries, and each node's
    /// last handed index of it.
    fn diverged(&self) -> Option<(PartitionId, Vec<LogIndex>)> {
        let partitions: Vec<PartitionId> = match &self.elastic.final_map {
            Some(map) => map
                .partitions
                .iter()
                .filter(|range| range.state != RangeState::Removed)
                .map(|range| range.partition_id)
                .collect(),
            None => (1..=self.config.partitions as u32)
                .map(PartitionId)
                .collect(),
        };
        partitions.into_iter().find_map(|partition| {
            let applied: Vec<LogIndex> = self
                .nodes
                .iter()
                .map(|node| self.last_handed(partition, node.app.applied(partition)))
                .collect();
            let first = applied.first().copied().unwrap_or_default();
            (!applied.iter().all(|&index| index == first)).then_some((partition, applied))
        })
    }

    /// The highest user partition id: the configured ones, or one a map held.
    pub(super) fn highest_partition(&self) -> u32 {
        (self.config.partitions as u32).max(self.truth.ranges.highest_partition())
    }

    /// With the elastic operator, whether the map has settled too (without, `true`): no map
    /// operation waits for a retry, every node's disk holds the same latest map of partition
    /// 0, no split or merge is under way in it (liveness: the next leader of partition 0
    /// finishes what a crashed one began), and every node's disks hold exactly the partitions
    /// it holds open (a created one opened everywhere, a removed or merged-away one closed and
    /// its WAL records deleted). Otherwise says why in `elastic.unsettled`; once settled the
    /// map is `elastic.final_map`.
    pub(super) fn elastic_settled(&mut self) -> Result<bool, Violation> {
        if !self.config.elastic() {
            return Ok(true);
        }
        self.elastic.final_map = None;
        let why = self.elastic_unsettled()?;
        let settled = why.is_none();
        self.elastic.unsettled = why;
        Ok(settled)
    }

    fn elastic_unsettled(&mut self) -> Result<Option<String>, Violation> {
        if self.elastic.busy() {
            return Ok(Some(
                "a partition-map operation waits for its retry".to_owned(),
            ));
        }
        let system_shard = crate::shard::shard_of(SYSTEM_PARTITION, self.config.shards);
        let mut latest = Vec::with_capacity(self.nodes.len());
        let mut hosted = Vec::with_capacity(self.nodes.len());
        for node in 0..self.nodes.len() {
            let mut open = std::collections::BTreeSet::new();
            for shard in 0..self.config.shards {
                let logs = match self.durable(node, shard) {
                    Ok(logs) => logs,
                    Err(error) => return self.checkers.judge(RECOVERY, Err(error)).map(|()| None),
                };
                if shard == system_shard {
                    latest.push(
                        logs.get(&SYSTEM_PARTITION)
                            .and_then(|log| log.maps.last().cloned()),
                    );
                }
                open.extend(logs.keys().copied().filter(|p| *p != SYSTEM_PARTITION));
            }
            hosted.push(open);
        }
        let versions: Vec<Option<u64>> = latest
            .iter()
            .map(|map| map.as_ref().map(|map| map.version))
            .collect();
        let Some(Some(map)) = latest.first().cloned() else {
            return Ok(Some(format!(
                "partition 0's disks hold the maps {versions:?}"
            )));
        };
        if latest.iter().any(|other| other.as_ref() != Some(&map)) {
            return Ok(Some(format!(
                "partition 0's disks hold the maps {versions:?}"
            )));
        }
        let moving: Vec<String> = map
            .partitions
            .iter()
            .filter(|r| matches!(r.state, RangeState::Splitting | RangeState::Draining))
            .map(|r| format!("{} {:?}", r.partition_id, r.state))
            .collect();
        if !moving.is_empty() {
            return Ok(Some(format!(
                "map version {} has a split or merge under way: {moving:?}",
                map.version
            )));
        }
        let expected: std::collections::BTreeSet<PartitionId> = map
            .partitions
            .iter()
            .filter(|range| range.state != RangeState::Removed)
            .map(|range| range.partition_id)
            .collect();
        for (node, open) in hosted.iter().enumerate() {
            if *open != expected {
                return Ok(Some(format!(
                    "node {}'s disks hold partitions {open:?}, map version {} holds {expected:?} \
                     open",
                    node + 1,
                    map.version
                )));
            }
        }
        self.elastic.final_map = Some(map);
        Ok(None)
    }

    /// The last index at or below `index` whose entry some application was handed. An import
    /// leaves an application at its snapshot's index, which may hold an entry no application
    /// is handed (a no-op, a marker), where the nodes that delivered the log stand at the
    /// handed entry before it: the same state.
    fn last_handed(&self, partition: PartitionId, mut index: LogIndex) -> LogIndex {
        while index > LogIndex::ZERO
            && !self.truth.applied.contains_key(&(partition, index))
            && !self.truth.imports.contains_key(&(partition, index))
        {
            index = index.prev();
        }
        index
    }

    pub(super) fn unsettled(&self) -> String {
        let partitions: Vec<String> = self
            .clients
            .partitions
            .iter()
            .enumerate()
            .filter(|(_, clients)| !clients.healed())
            .map(|(p, clients)| {
                format!(
                    "p{} (write {}, read {})",
                    p + 1,
                    clients.healed_writes,
                    clients.healed_reads
                )
            })
            .collect();
        if !partitions.is_empty() {
            return partitions.join(", ");
        }
        if !self.floors_reached() {
            return format!(
                "every partition served; the run has {} acknowledged writes and {} reads of the \
                 {RUN_ACKNOWLEDGED_MIN} and {RUN_READS_MIN} it needs",
                self.report.acknowledged, self.report.reads
            );
        }
        match &self.elastic.unsettled {
            Some(why) => format!("every partition served; {why}"),
            None => {
                let detail = self
                    .diverged()
                    .map(|(partition, applied)| {
                        format!(": {partition} last handed {applied:?} (node 1, 2, ...)")
                    })
                    .unwrap_or_default();
                format!("every partition served; the applications have not converged{detail}")
            }
        }
    }

    /// The checks of a settled run: the disks, the applications' final states, and every
    /// partition's history.
    pub(super) fn final_checks(&mut self) -> Result<(), Violation> {
        self.report.settle_ms = self.now - self.healed_at.unwrap_or(self.now);
        self.check_disks()?;
        for node in 0..self.nodes.len() {
            for p in 1..=self.highest_partition() {
                let partition = PartitionId(p);
                let state = self.nodes[node].app.live(partition);
                let verdict = ExactlyOnceInOrderDelivery::check_final_state(
                    self.nodes[node].id,
                    partition,
                    &state,
                    &self.truth.applied,
                    &self.truth.imports,
                );
                self.checkers
                    .judge(ExactlyOnceInOrderDelivery::NAME, verdict)?;
            }
        }
        let (splits, merges) = self.truth.ranges.completed();
        self.report.splits_completed = splits;
        self.report.merges_completed = merges;
        let verdict = RangeOwnership::check_ranges(&self.truth.routed_writes, &self.truth.ranges);
        self.checkers.judge(RangeOwnership::NAME, verdict)?;
        if self.checkers.listens(Linearizability::NAME) && self.config.elastic() {
            let verdict = Linearizability::check(None, &self.clients.routed_history)
                .map(|explored| self.report.linearizability_states += explored as u64);
            self.checkers.judge(Linearizability::NAME, verdict)?;
        } else if self.checkers.listens(Linearizability::NAME) {
            for p in 0..self.config.partitions {
                let verdict = Linearizability::check(
                    Some(PartitionId(p as u32 + 1)),
                    &self.clients.partitions[p].history,
                )
                .map(|explored| self.report.linearizability_states += explored as u64);
                self.checkers.judge(Linearizability::NAME, verdict)?;
            }
        }
        Ok(())
    }
}
