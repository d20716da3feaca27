//! The shard's side of quiescence (decision 0007): which of its replicas are quiesced, the
//! node-level liveness of the peers that lead its quiesced followers (the tick at which a
//! message from the node was last stepped here: the shard's turn reads no clock, it counts
//! ticks), and the peers its quiesced leaders owe a keep-alive. Every table is bounded by the
//! partitions the shard hosts: one registration per quiesced replica.
//!
//! Deadlines are kept as ticks of the shard's tick clock, not as counters, so that an idle
//! shard may sleep through ticks (decision 0007, "The tickless idle shard"): the tick turn after
//! the sleep moves the clock by every tick it stands for and judges the silences and the
//! keep-alives exactly as that many single ticks would, and [`Quiesced::next_due`] tells the
//! shard how long it may sleep.

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

/// A peer node leading quiesced followers here: since when it has been silent and which.
#[derive(Debug, Default)]
struct Silence {
    /// The shard's tick clock when a message from the node was last stepped on this shard.
    heard_at: u64,
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
    /// The tick at which the next keep-alives are due.
    keep_alive_at: u64,
    /// The shard's tick clock at this turn (see [`Quiesced::set_clock`]).
    clock: u64,
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

    /// Sets the shard's tick clock for this turn: the ticks so far, counting the ones an idle
    /// shard slept through since its last tick turn. Never goes back.
    pub(crate) fn set_clock(&mut self, clock: u64) {
        debug_assert!(clock >= self.clock, "the tick clock went back");
        self.clock = self.clock.max(clock);
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
                silence.heard_at = self.clock;
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
            silence.heard_at = self.clock;
        }
    }

    /// The shard's tick at the clock set last ([`Quiesced::set_clock`]; one tick turn may
    /// stand for several ticks): a leader node silent for `silence_ticks_max` ticks is
    /// declared dead to its quiesced followers here (they are forgotten: they wake); every
    /// `keep_alive_interval_ticks`, one keep-alive per peer of a quiesced leader.
    pub(crate) fn tick(
        &mut self,
        silence_ticks_max: u32,
        keep_alive_interval_ticks: u32,
    ) -> QuiescenceTick {
        let clock = self.clock;
        let mut due = QuiescenceTick::default();
        for silence in self.silences.values_mut() {
            if silence.followers.is_empty() {
                continue;
            }
            if clock.saturating_sub(silence.heard_at) >= u64::from(silence_ticks_max) {
                due.leader_node_dead
                    .extend(silence.followers.drain().map(|(partition, ())| partition));
            }
        }
        for partition in &due.leader_node_dead {
            self.registered.remove(partition);
        }
        self.silences
            .retain(|_, silence| !silence.followers.is_empty());
        if clock >= self.keep_alive_at {
            self.keep_alive_at = clock.saturating_add(u64::from(keep_alive_interval_ticks));
            self.leaders.retain(|_, leaders| !leaders.is_empty());
            for (&peer, leaders) in &self.leaders {
                if let Some(&partition) = leaders.keys().next() {
                    due.keep_alives.push((peer, partition));
                }
            }
        }
        due
    }

    /// The first tick at which [`Quiesced::tick`] has something to do: the next keep-alives
    /// (while a quiesced leader has a peer) or the first silence deadline of a leader node of
    /// quiesced followers. `None`: nothing is due, however long the shard sleeps.
    pub(crate) fn next_due(&self, silence_ticks_max: u32) -> Option<u64> {
        let silence = self
            .silences
            .values()
            .filter(|silence| !silence.followers.is_empty())
            .map(|silence| {
                silence
                    .heard_at
                    .saturating_add(u64::from(silence_ticks_max))
            })
            .min();
        let keep_alive = self
            .leaders
            .values()
            .any(|leaders| !leaders.is_empty())
            .then_some(self.keep_alive_at);
        silence.into_iter().chain(keep_alive).min()
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
        for clock in 1..10 {
            table.set_clock(clock);
            table.heard(NodeId(3));
            let due = table.tick(10, 3);
            assert!(due.leader_node_dead.is_empty());
        }
        table.set_clock(10);
        table.heard(NodeId(3));
        let mut dead = table.tick(10, 3).leader_node_dead;
        dead.sort_unstable();
        assert_eq!(dead, vec![PartitionId(1), PartitionId(2)]);
        assert_eq!(table.len(), 1, "node 3 is heard: its follower stays");
        table.forget(PartitionId(3));
        assert_eq!(table.len(), 0);
        for clock in 11..30 {
            table.set_clock(clock);
            assert!(table.tick(10, 3).leader_node_dead.is_empty());
        }
    }

    /// A tick turn after an idle sleep stands for the ticks slept through: the silence counts
    /// them, from the tick at which the leader's node was last heard (not from the last tick
    /// turn), and `next_due` names the tick it runs out at.
    #[test]
    fn a_tick_standing_for_skipped_ticks_judges_the_silence_as_single_ticks_would() {
        let mut table = Quiesced::default();
        table.register(PartitionId(1), &follower_of(2, 1));
        assert_eq!(table.next_due(10), Some(10), "silent since tick 0");
        // Heard between two ticks, while the shard slept through them.
        table.set_clock(4);
        table.heard(NodeId(2));
        assert_eq!(table.next_due(10), Some(14));
        // One tick turn standing for ticks 1 to 13: one short of the deadline.
        table.set_clock(13);
        assert!(table.tick(10, 3).leader_node_dead.is_empty());
        table.set_clock(14);
        assert_eq!(table.tick(10, 3).leader_node_dead, vec![PartitionId(1)]);
        assert_eq!(table.next_due(10), None, "nothing left to wake for");
    }
}
