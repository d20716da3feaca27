//! Input validation: a message that is for another partition, from this node itself,
//! malformed or absurd is rejected before it can touch any state.
//!
//! A message from a node outside the configuration in force is *not* rejected (Raft thesis
//! §4.1): a leader this replica does not yet know as a member (its configuration entry has not
//! arrived) must be followed, and a candidate it does not know may be granted a vote, since
//! safety rests on the candidate counting majorities of its own configuration. Votes are
//! counted, and followers tracked, only for members (`election.rs`, `membership.rs`); which
//! nodes may talk to this one at all is the runtime's business (the cluster's roster).

use super::*;

impl Replica {
    pub(super) fn check_message(&self, m: &Message) -> Result<(), Status> {
        if m.partition != self.config.partition {
            return Err(Status::PartitionMoved);
        }
        if m.to != self.config.id {
            return Err(Status::Errored);
        }
        if m.from == self.config.id || m.from == NodeId::ZERO {
            return Err(Status::LogsFromAnotherLeader);
        }
        if m.term == Term::ZERO || m.term.0 >= INDEX_ABSURD {
            return Err(Status::Errored);
        }
        if m.term > self.term && m.term.0 - self.term.0 > self.config.term_gap_max {
            return Err(Status::Errored);
        }
        let sane = |i: LogIndex| i.0 < INDEX_ABSURD;
        match &m.body {
            MessageBody::PreVoteRequest {
                last_log_index,
                last_log_term,
                ..
            }
            | MessageBody::VoteRequest {
                last_log_index,
                last_log_term,
                ..
            } => {
                if !sane(*last_log_index) || *last_log_term > m.term {
                    return Err(Status::Errored);
                }
            }
            MessageBody::AppendRequest {
                prev_log_index,
                prev_log_term,
                entries,
                commit,
            } => {
                if !sane(*prev_log_index) || !sane(*commit) || *prev_log_term > m.term {
                    return Err(Status::Errored);
                }
                let mut expected = prev_log_index.next();
                let mut term = *prev_log_term;
                for e in entries {
                    if e.index != expected || e.term < term || e.term > m.term {
                        return Err(Status::Errored);
                    }
                    if e.kind == EntryKind::Configuration
                        && Configuration::decode(&e.payload).is_err()
                    {
                        return Err(Status::Errored);
                    }
                    expected = expected.next();
                    term = e.term;
                }
                if !sane(expected) {
                    return Err(Status::Errored);
                }
            }
            MessageBody::AppendResponse {
                index, hint_index, ..
            } => {
                if !sane(*index) || *hint_index > *index {
                    return Err(Status::Errored);
                }
            }
            MessageBody::Heartbeat { commit, .. } => {
                if !sane(*commit) {
                    return Err(Status::Errored);
                }
            }
            MessageBody::SnapshotChunk(chunk) => {
                if !sane(chunk.last_index) || chunk.last_term > m.term {
                    return Err(Status::Errored);
                }
            }
            MessageBody::ReadIndexResponse { index, .. } => {
                if !sane(*index) {
                    return Err(Status::Errored);
                }
            }
            MessageBody::TimeoutNow
            | MessageBody::PreVoteResponse { .. }
            | MessageBody::VoteResponse { .. }
            | MessageBody::HeartbeatResponse { .. }
            | MessageBody::ReadIndexRequest { .. }
            | MessageBody::SnapshotAck { .. } => {}
        }
        Ok(())
    }
}
