//! No election in a quiesced partition while its leader's node is alive and connected
//! (decision 0007), judged from the wire once the faults healed: after a leader's quiesce
//! heartbeats (the flag set, `Heartbeat { quiesce: true }`) have been on the wire for longer
//! than an election timeout and a round trip, with no other message of a leader of that
//! partition since (an append, a plain heartbeat, a `TimeoutNow`: the leader woke), a vote
//! request of that partition from another node, while the leader's node runs the incarnation
//! that quiesced it, is an election the node liveness should have prevented.
//!
//! Before the faults heal the network may cut or drop the keep-alives, and a follower whose
//! shard declared the leader's node dead during a cut may still campaign right after the heal,
//! racing the leader's wake-up: neither is judged (the grace covers the latter).

use std::collections::HashMap;

use crate::core::{Message, MessageBody, NodeId, PartitionId, Term};

/// A partition whose leader was seen quiescing it.
#[derive(Clone, Copy, Debug)]
struct QuiescedBy {
    leader: NodeId,
    term: Term,
    /// The leader's incarnation when it quiesced the partition.
    incarnation: u64,
    /// When its first quiesce heartbeat of this spell was sent, in simulated milliseconds.
    since_ms: u64,
}

/// The quiesced partitions seen on the wire.
#[derive(Debug, Default)]
pub(in crate::sim::node) struct QuiescedNoElection {
    quiesced: HashMap<PartitionId, QuiescedBy>,
}

impl QuiescedNoElection {
    pub(in crate::sim::node) const NAME: &'static str = "quiesced_no_election";

    /// `message` was put on the wire at `now_ms`, the faults healed at `healed_at_ms` (if
    /// they did), and `incarnation_up(node)` is the incarnation `node` runs when it is up and
    /// running. `grace_ms`: an election timeout and a round trip.
    ///
    /// # Errors
    /// A vote request in a partition its leader quiesced (see the module docs).
    pub(in crate::sim::node) fn on_sent(
        &mut self,
        message: &Message,
        now_ms: u64,
        healed_at_ms: Option<u64>,
        grace_ms: u64,
        incarnation_up: impl Fn(NodeId) -> Option<u64>,
    ) -> Result<(), String> {
        let partition = message.partition;
        match message.body {
            MessageBody::Heartbeat { quiesce: true, .. } => {
                let Some(healed) = healed_at_ms.filter(|&healed| now_ms >= healed) else {
                    return Ok(());
                };
                let Some(incarnation) = incarnation_up(message.from) else {
                    return Ok(());
                };
                let same = self.quiesced.get(&partition).is_some_and(|q| {
                    q.leader == message.from
                        && q.term == message.term
                        && q.incarnation == incarnation
                });
                if !same {
                    self.quiesced.insert(
                        partition,
                        QuiescedBy {
                            leader: message.from,
                            term: message.term,
                            incarnation,
                            since_ms: now_ms.max(healed),
                        },
                    );
                }
                Ok(())
            }
            MessageBody::AppendRequest { .. }
            | MessageBody::Heartbeat { .. }
            | MessageBody::TimeoutNow => {
                self.quiesced.remove(&partition);
                Ok(())
            }
            MessageBody::VoteRequest { .. } => {
                let Some(quiesced) = self.quiesced.get(&partition).copied() else {
                    return Ok(());
                };
                let settled = now_ms >= quiesced.since_ms.saturating_add(grace_ms);
                let leader_alive = incarnation_up(quiesced.leader) == Some(quiesced.incarnation);
                if message.from == quiesced.leader
                    || message.term <= quiesced.term
                    || !settled
                    || !leader_alive
                {
                    return Ok(());
                }
                Err(format!(
                    "partition {partition}: node {} asks for votes in term {} while its leader \
                     {} (term {}) quiesced it {} ms ago, alive and connected",
                    message.from,
                    message.term,
                    quiesced.leader,
                    quiesced.term,
                    now_ms - quiesced.since_ms
                ))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::QuiescedNoElection;
    use crate::core::{LogIndex, MessageBody, NodeId, Term};
    use crate::sim::node::checkers::election_safety::tests::message;

    fn heartbeat(quiesce: bool) -> MessageBody {
        MessageBody::Heartbeat {
            commit: LogIndex(3),
            read_round: 1,
            quiesce,
        }
    }

    fn vote() -> MessageBody {
        MessageBody::VoteRequest {
            last_log_index: LogIndex(3),
            last_log_term: Term(2),
            configuration_version: 0,
            transfer: false,
        }
    }

    #[test]
    fn an_election_in_a_quiesced_partition_with_its_leader_alive_is_flagged() {
        let up = |_: NodeId| Some(0);
        let mut checker = QuiescedNoElection::default();
        let quiesce = message(1, 2, heartbeat(true));
        assert!(checker.on_sent(&quiesce, 1_000, Some(500), 300, up).is_ok());
        // Within the grace: a follower woken during the faults may still campaign.
        assert!(
            checker
                .on_sent(&message(2, 3, vote()), 1_200, Some(500), 300, up)
                .is_ok()
        );
        assert!(
            checker
                .on_sent(&message(2, 3, vote()), 1_400, Some(500), 300, up)
                .is_err()
        );
        // The leader's node restarted: not judged.
        let restarted = |node: NodeId| Some(u64::from(node == NodeId(1)));
        assert!(
            checker
                .on_sent(&message(2, 3, vote()), 1_400, Some(500), 300, restarted)
                .is_ok()
        );
        // Down: not judged.
        let down = |node: NodeId| (node != NodeId(1)).then_some(0);
        assert!(
            checker
                .on_sent(&message(2, 3, vote()), 1_400, Some(500), 300, down)
                .is_ok()
        );
    }

    #[test]
    fn a_woken_leader_or_the_fault_phase_is_not_judged() {
        let up = |_: NodeId| Some(0);
        let mut checker = QuiescedNoElection::default();
        // Before the heal nothing is recorded.
        assert!(
            checker
                .on_sent(&message(1, 2, heartbeat(true)), 100, None, 300, up)
                .is_ok()
        );
        assert!(
            checker
                .on_sent(&message(2, 3, vote()), 9_000, None, 300, up)
                .is_ok()
        );
        assert!(
            checker
                .on_sent(&message(1, 2, heartbeat(true)), 1_000, Some(500), 300, up)
                .is_ok()
        );
        // The leader woke (a plain heartbeat): an election after it is Raft's business.
        assert!(
            checker
                .on_sent(&message(1, 2, heartbeat(false)), 1_100, Some(500), 300, up)
                .is_ok()
        );
        assert!(
            checker
                .on_sent(&message(2, 3, vote()), 5_000, Some(500), 300, up)
                .is_ok()
        );
    }
}
