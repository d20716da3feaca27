//! Replicas of one partition in one process with messages passed in memory and every Ready
//! "persisted" the moment it is produced: the core's own cost with no I/O, no network and no
//! clock. The core benchmark (`benches/core.rs`) and the raft-rs comparison
//! (`benches/peers`) drive it.
//!
//! The Ready contract still holds: gated messages leave only after `persisted` was called for
//! their Ready, and committed entries are delivered and acknowledged with `applied` in order.
//! Checkpoints are proposed periodically so that the in-memory log stays bounded however long
//! a benchmark runs.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::core::{
    DurableState, EntryKind, Message, NodeId, PartitionId, Replica, ReplicaConfig,
    ReplicaConfigError, Status, Ticket,
};

/// Entries delivered on the leader between two checkpoints (bounds the in-memory log).
const CHECKPOINT_INTERVAL_ENTRIES: u64 = 16_384;

/// Ticks allowed for the first election before giving up.
const ELECTION_TICKS_MAX: u32 = 10_000;

/// An in-memory cluster of one partition.
#[derive(Debug)]
pub struct MemoryCluster {
    replicas: Vec<Replica>,
    inbox: VecDeque<Message>,
    leader: usize,
    next_ticket: u64,
    /// Entries delivered on the leader.
    delivered: u64,
    delivered_at_checkpoint: u64,
}

impl MemoryCluster {
    /// `nodes` fresh replicas with default configuration, ticked until one leads and its
    /// barrier is committed.
    ///
    /// # Errors
    /// [`MemoryClusterError::Config`] for an invalid configuration (e.g. `nodes == 0`),
    /// [`MemoryClusterError::NoLeader`] when no leader emerged.
    pub fn new(nodes: usize) -> Result<Self, MemoryClusterError> {
        let voters: Vec<NodeId> = (1..=nodes as u64).map(NodeId).collect();
        let replicas = voters
            .iter()
            .map(|id| {
                let config = ReplicaConfig {
                    seed: id.0,
                    ..ReplicaConfig::new(*id, PartitionId(1), voters.clone())
                };
                Replica::new(config, DurableState::default())
            })
            .collect::<Result<Vec<_>, ReplicaConfigError>>()?;
        let mut cluster = Self {
            replicas,
            inbox: VecDeque::new(),
            leader: 0,
            next_ticket: 0,
            delivered: 0,
            delivered_at_checkpoint: 0,
        };
        for _ in 0..ELECTION_TICKS_MAX {
            for replica in &mut cluster.replicas {
                replica.tick();
            }
            cluster.pump();
            if let Some(leader) = cluster.replicas.iter().position(Replica::is_leader)
                && cluster.replicas[leader].commit_index() >= cluster.replicas[leader].last_index()
            {
                cluster.leader = leader;
                return Ok(cluster);
            }
        }
        Err(MemoryClusterError::NoLeader)
    }

    /// Index of the leading replica.
    pub fn leader(&self) -> usize {
        self.leader
    }

    /// Entries delivered to the leader's application so far.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// Proposes `payloads` as one batch on the leader (one ticket), without running the cluster.
    ///
    /// # Errors
    /// The leader's refusal (e.g. [`Status::ProposalQueueFull`]).
    pub fn propose(&mut self, payloads: &[Bytes]) -> Result<(), Status> {
        self.next_ticket += 1;
        let ticket = Ticket(self.next_ticket);
        self.replicas[self.leader]
            .propose_batch(ticket, true, payloads)
            .map(|_| ())
    }

    /// Proposes `payloads` and runs the cluster until the leader delivered all of them.
    ///
    /// # Errors
    /// The leader's refusal of the proposal.
    pub fn commit(&mut self, payloads: &[Bytes]) -> Result<(), Status> {
        let target = self.delivered + payloads.len() as u64;
        self.propose(payloads)?;
        while self.delivered < target {
            if !self.pump() {
                // Nothing moves without time: a lost leadership would need ticks.
                return Err(Status::NodeIsNotLeader);
            }
        }
        if self.delivered - self.delivered_at_checkpoint >= CHECKPOINT_INTERVAL_ENTRIES {
            self.delivered_at_checkpoint = self.delivered;
            self.next_ticket += 1;
            self.replicas[self.leader].propose_checkpoint(Ticket(self.next_ticket))?;
            self.pump();
        }
        Ok(())
    }

    /// Processes Readies and messages until nothing is left. Returns whether anything moved.
    pub fn pump(&mut self) -> bool {
        let mut moved = false;
        loop {
            let mut progressed = false;
            for node in 0..self.replicas.len() {
                while self.replicas[node].has_ready() {
                    progressed = true;
                    let replica = &mut self.replicas[node];
                    let ready = replica.ready();
                    self.inbox.extend(ready.messages);
                    // "Persisted" at once: acknowledge, then release the gated messages.
                    replica.persisted(ready.number);
                    if let Ok(messages) = ready.persisted_messages.release(ready.number) {
                        self.inbox.extend(messages);
                    }
                    if node == self.leader {
                        self.delivered += ready
                            .committed_entries
                            .iter()
                            .filter(|entry| entry.kind == EntryKind::Normal)
                            .count() as u64;
                    }
                    replica.applied(ready.committed_through);
                }
            }
            while let Some(message) = self.inbox.pop_front() {
                progressed = true;
                let to = message.to.0 as usize - 1;
                if let Some(replica) = self.replicas.get_mut(to) {
                    // A refusal is a protocol outcome; the benchmark only counts deliveries.
                    let _ = replica.step(message);
                }
            }
            if !progressed {
                return moved;
            }
            moved = true;
        }
    }
}

/// Why a [`MemoryCluster`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum MemoryClusterError {
    /// A replica refused its configuration.
    #[error("invalid replica configuration: {0}")]
    Config(#[from] ReplicaConfigError),
    /// No replica became leader within the tick budget.
    #[error("no leader elected")]
    NoLeader,
}

#[cfg(test)]
mod tests {
    use super::MemoryCluster;
    use bytes::Bytes;

    #[test]
    fn three_replicas_elect_commit_and_stay_bounded_by_checkpoints() {
        let mut cluster = MemoryCluster::new(3).expect("a leader");
        let batch = vec![Bytes::from_static(&[7u8; 16]); 512];
        for _ in 0..100 {
            cluster.commit(&batch).expect("committed");
        }
        assert_eq!(cluster.delivered(), 51_200);
        let leader = &cluster.replicas[cluster.leader()];
        assert!(
            leader.checkpoint_floor().0 > 0,
            "checkpoints compact the log"
        );
        // Followers learn the commit index with the next append: at most one batch behind.
        for replica in &cluster.replicas {
            assert!(replica.commit_index().0 + 512 >= leader.commit_index().0);
        }
    }
}
