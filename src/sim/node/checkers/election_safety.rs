//! At most one leader per partition and term, judged from the wire: only a leader sends
//! appends, heartbeats and `TimeoutNow`, so two senders of those in one term of one partition
//! are two leaders, whatever the nodes report about themselves.

use std::collections::HashMap;

use crate::core::{Message, MessageBody, NodeId, PartitionId, Term};

/// The leaders seen on the wire.
#[derive(Debug, Default)]
pub(in crate::sim::node) struct ElectionSafety {
    leaders: HashMap<(PartitionId, Term), NodeId>,
}

impl ElectionSafety {
    pub(in crate::sim::node) const NAME: &'static str = "election_safety";

    /// `message` was put on the wire.
    ///
    /// # Errors
    /// Its sender acts as leader in a term where another node already did.
    pub(in crate::sim::node) fn on_sent(&mut self, message: &Message) -> Result<(), String> {
        let leads = matches!(
            message.body,
            MessageBody::AppendRequest { .. }
                | MessageBody::Heartbeat { .. }
                | MessageBody::TimeoutNow
        );
        if !leads {
            return Ok(());
        }
        let leader = *self
            .leaders
            .entry((message.partition, message.term))
            .or_insert(message.from);
        if leader == message.from {
            return Ok(());
        }
        Err(format!(
            "partition {} term {} has two leaders on the wire: {leader} and {} (sent {})",
            message.partition,
            message.term,
            message.from,
            message.body.name()
        ))
    }

    /// Distinct (partition, term) pairs that had a leader (the report's election count).
    pub(in crate::sim::node) fn terms_led(&self) -> u64 {
        self.leaders.len() as u64
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::ElectionSafety;
    use crate::core::{LogIndex, Message, MessageBody, NodeId, PartitionId, Term};

    /// A message of partition 1 from `from` in `term` (the wire checkers' tests share it).
    pub(in crate::sim::node::checkers) fn message(
        from: u64,
        term: u64,
        body: MessageBody,
    ) -> Message {
        Message {
            partition: PartitionId(1),
            from: NodeId(from),
            to: NodeId(9),
            term: Term(term),
            body,
        }
    }

    #[test]
    fn two_senders_of_leader_messages_in_one_term_are_flagged() {
        let heartbeat = || MessageBody::Heartbeat {
            commit: LogIndex(0),
            read_round: 0,
            quiesce: false,
        };
        let mut checker = ElectionSafety::default();
        assert!(checker.on_sent(&message(1, 2, heartbeat())).is_ok());
        assert!(
            checker
                .on_sent(&message(1, 2, MessageBody::TimeoutNow))
                .is_ok()
        );
        assert!(checker.on_sent(&message(2, 3, heartbeat())).is_ok());
        assert!(
            checker
                .on_sent(&message(2, 2, MessageBody::VoteResponse { granted: true }))
                .is_ok(),
            "a vote is not a leader's message"
        );
        assert!(checker.on_sent(&message(2, 2, heartbeat())).is_err());
        assert_eq!(checker.terms_led(), 2);
    }
}
