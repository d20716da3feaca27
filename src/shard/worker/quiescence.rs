//! The shard's side of quiescence (decision 0007): which of its replicas are quiesced, the
//! node-level liveness of the peers that lead its quiesced followers (ticks since a message
//! from the node was stepped here: the shard's turn reads no clock), and the peers its quiesced
//! leaders owe a keep-alive. Every table is bounded by the partitions the shard hosts: one
//! registration per quiesced replica.

use crate::core::{NodeId, PartitionId, Replica};
use crate::shard::StableHashMap;

/// How a quiesced replica is registered (so that it can be taken out again).
#[derive(Debug)]
enum Registered {
    /// A follower of this node's partition leader.
    Follower(NodeId),
    /// A leader: the other members of its partition.
    Leader(Vec<NodeId>),
}

/// A peer node leading quiesced followers here: how long it has been silent and which.
#[derive(Debug, Default)]
struct Silence {
    /// Ticks since a message from the node was stepped on this shard.
    ticks: u32,
    followers: StableHashMap<PartitionId, ()>,
}

/// The quiesced replicas of one shard and what they depend on.
#[derive(Debug, Default)]
pub(crate) struct Quiesced {
    registered: StableHashMap<PartitionId, Registered>,
    /// Per leader node: its quiesced followers here.
    silences: StableHashMap<NodeId, Silence>,
    /// Per peer node: the quiesced leaders here it is a member of.
    leaders: StableHashMap<NodeId, StableHashMap<PartitionId, ()>>,
    /// Ticks since the last keep-alives.
    keep_alive_elapsed: u32,
}

/// What one tick of the table asks the shard to do.
#[derive(Debug, Default)]
pub(crate) struct QuiescenceTick {
    /// Quiesced followers whose leader's node was silent for an election timeout: to wake
    /// with `Replica::leader_node_dead`.
    pub(crate) leader_node_dead: Vec<PartitionId>,
    /// (peer, partition): the keep-alive to send each peer, one of the quiesced leaders it is
    /// a member of.
    pub(crate) keep_alives: Vec<(NodeId, PartitionId)>,
}

impl Quiesced {
    /// Replicas registered as quiesced.
    pub(crate) fn len(&self) -> usize {
        self.registered.len()
    }

    /// `replica` of `partition` reported that it quiesced.
    pub(crate) fn register(&mut self, partition: PartitionId, replica: &Replica) {
        self.forget(partition);
        let registered = if replica.is_leader() {
            let me = replica.leader();
            let peers: Vec<NodeId> = replica
                .configuration()
                .members()
                .filter(|&node| Some(node) != me)
                .collect();
            for &peer in &peers {
                self.leaders.entry(peer).or_default().insert(partition, ());
            }
            Registered::Leader(peers)
        } else {
            let Some(leader) = replica.leader() else {
                return;
            };
            let silence = self.silences.entry(leader).or_default();
            if silence.followers.is_empty() {
                // The quiesce heartbeat just came from it.
                silence.ticks = 0;
            }
            silence.followers.insert(partition, ());
            Registered::Follower(leader)
        };
        self.registered.insert(partition, registered);
    }

    /// `partition` woke, or left the shard: it is no longer registered.
    pub(crate) fn forget(&mut self, partition: PartitionId) {
        match self.registered.remove(&partition) {
            Some(Registered::Follower(leader)) => {
                if let Some(silence) = self.silences.get_mut(&leader) {
                    silence.followers.remove(&partition);
                }
            }
            Some(Registered::Leader(peers)) => {
                for peer in peers {
                    if let Some(leaders) = self.leaders.get_mut(&peer) {
                        leaders.remove(&partition);
                    }
                }
            }
            None => {}
        }
    }

    /// A message from `node` was stepped on this shard: the node is alive.
    pub(crate) fn heard(&mut self, node: NodeId) {
        if let Some(silence) = self.silences.get_mut(&node) {
            silence.ticks = 0;
        }
    }

    /// One shard tick: a leader node silent for `silence_ticks_max` ticks is declared dead to
    /// its quiesced followers here (they are forgotten: they wake); every
    /// `keep_alive_interval_ticks`, one keep-alive per peer of a quiesced leader.
    pub(crate) fn tick(
        &mut self,
        silence_ticks_max: u32,
        keep_alive_interval_ticks: u32,
    ) -> QuiescenceTick {
        let mut due = QuiescenceTick::default();
        for silence in self.silences.values_mut() {
            if silence.followers.is_empty() {
                continue;
            }
            silence.ticks = silence.ticks.saturating_add(1);
            if silence.ticks >= silence_ticks_max {
                due.leader_node_dead
                    .extend(silence.followers.drain().map(|(partition, ())| partition));
            }
        }
        for partition in &due.leader_node_dead {
            self.registered.remove(partition);
        }
        self.silences
            .retain(|_, silence| !silence.followers.is_empty());
        self.keep_alive_elapsed = self.keep_alive_elapsed.saturating_add(1);
        if self.keep_alive_elapsed >= keep_alive_interval_ticks {
            self.keep_alive_elapsed = 0;
            self.leaders.retain(|_, leaders| !leaders.is_empty());
            for (&peer, leaders) in &self.leaders {
                if let Some(&partition) = leaders.keys().next() {
                    due.keep_alives.push((peer, partition));
                }
            }
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{DurableState, ReplicaConfig};

    fn follower_of(leader: u64, partition: u32) -> Replica {
        let config = ReplicaConfig::new(
            NodeId(1),
            PartitionId(partition),
            vec![NodeId(1), NodeId(leader)],
        );
        let mut replica = Replica::new(config, DurableState::default()).expect("valid");
        let heartbeat = crate::core::Message {
            partition: PartitionId(partition),
            from: NodeId(leader),
            to: NodeId(1),
            term: crate::core::Term(1),
            body: crate::core::MessageBody::Heartbeat {
                commit: crate::core::LogIndex(0),
                read_round: 0,
                quiesce: false,
            },
        };
        replica.step(heartbeat).expect("heartbeat");
        replica
    }

    #[test]
    fn a_silent_leader_node_is_declared_dead_to_its_followers_only() {
        let mut table = Quiesced::default();
        table.register(PartitionId(1), &follower_of(2, 1));
        table.register(PartitionId(2), &follower_of(2, 2));
        table.register(PartitionId(3), &follower_of(3, 3));
        assert_eq!(table.len(), 3);
        for _ in 0..9 {
            table.heard(NodeId(3));
            let due = table.tick(10, 3);
            assert!(due.leader_node_dead.is_empty());
        }
        table.heard(NodeId(3));
        let mut dead = table.tick(10, 3).leader_node_dead;
        dead.sort_unstable();
        assert_eq!(dead, vec![PartitionId(1), PartitionId(2)]);
        assert_eq!(table.len(), 1, "node 3 is heard: its follower stays");
        table.forget(PartitionId(3));
        assert_eq!(table.len(), 0);
        for _ in 0..20 {
            assert!(table.tick(10, 3).leader_node_dead.is_empty());
        }
    }
}
