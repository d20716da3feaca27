//! The checks made after every turn (what applications were handed), at every acknowledgement
//! and crash (the disks), and at the end (healing, liveness, final states, histories).

use std::sync::Arc;

use crate::core::{EntryKind, LogIndex, NodeId, PartitionId};
use crate::sim::checkers::Violation;
use crate::sim::network::NetworkConfig;

use super::NodeSimulation;
use super::checkers::{
    AcknowledgedWritesDurable, ExactlyOnceInOrderDelivery, FailedWritesNeverCommit,
    Linearizability, LogMatching, RECOVERY, StateMachineSafety,
};
use super::client::PartitionClients;
use super::run::{Event, SETTLE_CHECK_MS};
use super::truth::{Acknowledged, DurableLog, decode_durable};

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
            }
        }
        Ok(())
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
        Ok(decoded)
    }

    /// Whether a majority of the voters' disks hold `ack` now.
    pub(super) fn check_durable(&mut self, ack: &Acknowledged) -> Result<(), String> {
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
        let first_voters: Vec<NodeId> = (1..=self.config.initial_members as u64)
            .map(NodeId)
            .collect();
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
        // Partition 0 (the roster's) included.
        for p in 0..=self.config.partitions as u32 {
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
    /// see `PartitionClients::healed`).
    pub(super) fn settled(&self) -> bool {
        self.healed_at.is_some() && self.clients.partitions.iter().all(PartitionClients::healed)
    }

    /// Every node's application applied the same index of every partition (a node whose log
    /// fell behind its leader's compaction floor catches up through a snapshot).
    pub(super) fn converged(&self) -> bool {
        (1..=self.config.partitions as u32).all(|p| {
            let partition = PartitionId(p);
            let mut applied = self
                .nodes
                .iter()
                .map(|node| self.last_handed(partition, node.app.applied(partition)));
            let first = applied.next().unwrap_or_default();
            applied.all(|index| index == first)
        })
    }

    /// The last index at or below `index` whose entry some application was handed. An import
    /// leaves an application at its snapshot's index, which may hold an entry no application
    /// is handed (a no-op, a marker), where the nodes that delivered the log stand at the
    /// handed entry before it: the same state.
    fn last_handed(&self, partition: PartitionId, mut index: LogIndex) -> LogIndex {
        while index > LogIndex::ZERO && !self.truth.applied.contains_key(&(partition, index)) {
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
        if partitions.is_empty() {
            "every partition served; the applications have not converged".to_owned()
        } else {
            partitions.join(", ")
        }
    }

    /// The checks of a settled run: the disks, the applications' final states, and every
    /// partition's history.
    pub(super) fn final_checks(&mut self) -> Result<(), Violation> {
        self.report.settle_ms = self.now - self.healed_at.unwrap_or(self.now);
        self.check_disks()?;
        for node in 0..self.nodes.len() {
            for p in 1..=self.config.partitions as u32 {
                let partition = PartitionId(p);
                let state = self.nodes[node].app.live(partition);
                let verdict = ExactlyOnceInOrderDelivery::check_final_state(
                    self.nodes[node].id,
                    partition,
                    &state,
                    &self.truth.applied,
                );
                self.checkers
                    .judge(ExactlyOnceInOrderDelivery::NAME, verdict)?;
            }
        }
        if self.checkers.listens(Linearizability::NAME) {
            for p in 0..self.config.partitions {
                let verdict = Linearizability::check(
                    PartitionId(p as u32 + 1),
                    &self.clients.partitions[p].history,
                )
                .map(|explored| self.report.linearizability_states += explored as u64);
                self.checkers.judge(Linearizability::NAME, verdict)?;
            }
        }
        Ok(())
    }
}
