//! Snapshot transfer, both sides: the follower restarts its log at an installed snapshot; the
//! leader resumes replication to a follower once the runtime reports the transfer's end.

use super::*;

impl Replica {
    /// A snapshot chunk or acknowledgement of the current term: a chunk goes to a follower's
    /// runtime (its sender is the leader: a candidate of this term follows it), an
    /// acknowledgement to the leader's. Anything else is garbage (a chunk to a leader of the
    /// same term claims two leaders in one term).
    pub(super) fn hand_over_snapshot_message(&mut self, m: Message) {
        match m.body {
            MessageBody::SnapshotChunk { .. } if self.role != Role::Leader => {
                if self.role != Role::Follower || self.leader != Some(m.from) {
                    self.become_follower(self.term, Some(m.from));
                }
                self.election_elapsed = 0;
                self.snapshot_messages.push(m);
            }
            MessageBody::SnapshotAck { .. } if self.role == Role::Leader => {
                self.snapshot_messages.push(m);
            }
            _ => {}
        }
    }

    /// Follower side of a snapshot transfer: the runtime replaced the application's state with
    /// the leader's state at `floor.index` (whose entry had term `floor.term`, and the
    /// configuration `floor.configuration` in force), received from `leader` in `term`. The
    /// log restarts after `floor.index`: when it holds that entry with that term, the entries
    /// after it stay (Raft §7: they may still be the leader's, and the configurations among
    /// them keep governing); otherwise it is discarded. The next Ready carries [`Ready::installed_snapshot`] for the
    /// WAL, and an `AppendResponse` and the final [`MessageBody::SnapshotAck`] of `session`
    /// (`seq`, [`SnapshotOutcome::Installed`]) to the leader, sent once that boundary is
    /// durable. A snapshot at or below what was already handed to the application is only
    /// acknowledged.
    ///
    /// # Errors
    ///
    /// [`Status::LeaderInOldTerm`] when `term` is below ours, [`Status::LogsFromAnotherLeader`]
    /// when `leader` is this node (or node 0), [`Status::Errored`] for absurd values.
    pub fn install_snapshot(
        &mut self,
        leader: NodeId,
        term: Term,
        floor: Floor,
        (session, seq): (u64, u32),
    ) -> Result<(), Status> {
        let (index, index_term) = (floor.index, floor.term);
        if leader == self.config.id || leader == NodeId::ZERO {
            return Err(Status::LogsFromAnotherLeader);
        }
        if index.0 >= INDEX_ABSURD || term.0 >= INDEX_ABSURD || index_term > term {
            return Err(Status::Errored);
        }
        if term < self.term {
            return Err(Status::LeaderInOldTerm);
        }
        if self.role == Role::Leader && term == self.term {
            return Err(Status::Errored);
        }
        if term > self.term || self.role != Role::Follower || self.leader != Some(leader) {
            self.become_follower(term, Some(leader));
        }
        self.election_elapsed = 0;
        let installed = MessageBody::SnapshotAck {
            session,
            seq,
            outcome: SnapshotOutcome::Installed,
        };
        if index <= self.delivered && index <= self.log.committed {
            // The application and the log already hold it. (An application ahead of a log
            // that ends below `index`, after a snapshot whose boundary a crash lost, still
            // needs the boundary: else the log stays behind and the leader sends the same
            // snapshot for ever.)
            self.ack_append(leader, self.log.committed);
            self.send_after_persist(leader, installed);
            return Ok(());
        }
        if self.log.term(index) == Some(index_term) {
            // The entries up to `index` are the leader's (log matching); the suffix is kept,
            // and what it has not yet handed out for persistence starts after the boundary.
            self.log.committed = self.log.committed.max(index);
            self.log.compact_to(index);
            self.log.unstable_from = self.log.unstable_from.max(index.next());
            // As for a discarded log: the boundary stands for everything up to `index`.
            self.log.persisted = self.log.persisted.max(index);
            self.configurations
                .restart_at(index, floor.configuration.clone());
        } else {
            self.log = RaftLog::new(index, index_term, Vec::new());
            self.log.committed = index;
            self.configurations = Configurations::new(index, floor.configuration.clone());
        }
        self.sync_progress();
        // The application may already hold more (a snapshot installed before a crash that lost
        // its boundary): delivery never goes back.
        let delivered = self.delivered.max(index);
        // Holds are derived from the log above the delivery cursor: rebuilt from what is left
        // of it. Tickets resolved at or below `index` are in the snapshot.
        self.holds = Holds::default();
        for entry in self.log.range(delivered.next(), self.log.last_index()) {
            self.holds.on_append(entry);
        }
        self.checkpoints.clear();
        self.checkpoint_floor = index;
        self.delivered = delivered;
        self.applied = self.applied.max(index);
        self.installed_snapshot = Some(Box::new(floor));
        // The new floor must be durable before the leader counts on it.
        self.send_after_persist(
            leader,
            MessageBody::AppendResponse {
                success: true,
                index,
                hint_index: LogIndex::ZERO,
                hint_term: Term::ZERO,
            },
        );
        self.send_after_persist(leader, installed);
        Ok(())
    }

    /// Leader side: the runtime's snapshot transfer to `node` completed up to `index` (the
    /// follower called [`Replica::install_snapshot`]). Replication resumes with a probe after
    /// `index`, even if the follower's own acknowledgement is lost.
    pub fn report_snapshot_installed(&mut self, node: NodeId, index: LogIndex) {
        if self.role != Role::Leader || index > self.log.last_index() {
            return;
        }
        if let Some(p) = self.peer_mut(node)
            && p.state == ProgressState::SnapshotRequired
        {
            p.become_probe();
            p.next_index = p.next_index.max(index.next());
        }
    }

    /// Leader side: whether `node` waits for a snapshot (it was reported in
    /// `snapshot_required` and neither [`Replica::report_snapshot_installed`] nor
    /// [`Replica::report_snapshot_failure`] has been called for it since).
    #[must_use]
    pub fn awaits_snapshot(&self, node: NodeId) -> bool {
        self.role == Role::Leader
            && self
                .peer(node)
                .is_some_and(|p| p.state == ProgressState::SnapshotRequired)
    }

    /// Leader side: the snapshot transfer to `node` failed; probe it again (it is reported in
    /// `snapshot_required` once more if it still needs entries below the floor).
    pub fn report_snapshot_failure(&mut self, node: NodeId) {
        if self.role != Role::Leader {
            return;
        }
        if let Some(p) = self.peer_mut(node)
            && p.state == ProgressState::SnapshotRequired
        {
            p.become_probe();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::restore::tests::{config, durable, normal};
    use super::*;
    use crate::core::Configuration;

    /// A follower whose application stands past a snapshot's index (a snapshot imported
    /// before a crash lost its boundary) while its log ends below it takes the boundary: a
    /// bare acknowledgement would leave its log behind, and the leader would send the same
    /// snapshot for ever (found by the node simulator's campaign that moves nodes).
    #[test]
    fn an_application_ahead_of_a_short_log_still_takes_the_boundary() {
        let entries = (1..=24).map(|i| normal(i, 1)).collect();
        let mut replica = Replica::new(config(), durable(entries, 24, 30)).expect("valid");
        let voters = vec![NodeId(1), NodeId(2), NodeId(3)];
        let floor = Floor {
            index: LogIndex(29),
            term: Term(3),
            configuration: Configuration::new(voters, Vec::new()).expect("valid"),
        };
        replica
            .install_snapshot(NodeId(2), Term(4), floor, (1, 0))
            .expect("installed");
        assert_eq!(replica.compaction_floor(), LogIndex(29));
        assert!(replica.last_index() >= LogIndex(29));
        let ready = replica.ready();
        assert_eq!(
            ready.installed_snapshot.map(|f| f.index),
            Some(LogIndex(29)),
            "the boundary is persisted"
        );
    }
}
