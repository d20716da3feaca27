//! Input validation: a message that is for another partition, from a non-member, malformed
//! or absurd is rejected before it can touch any state.

use super::*;

impl Replica {
    pub(super) fn check_message(&self, m: &Message) -> Result<(), Status> {
        if m.partition != self.config.partition {
            return Err(Status::PartitionMoved);
        }
        if m.to != self.config.id {
            return Err(Status::Errored);
        }
        if m.from == self.config.id || !self.config.is_member(m.from) {
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
            }
            | MessageBody::VoteRequest {
                last_log_index,
                last_log_term,
                ..
            } => {
                if !self.config.is_voter(m.from) {
                    return Err(Status::LogsFromAnotherLeader);
                }
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
                if !self.config.is_voter(m.from) {
                    return Err(Status::LogsFromAnotherLeader);
                }
                if !sane(*prev_log_index) || !sane(*commit) || *prev_log_term > m.term {
                    return Err(Status::Errored);
                }
                let mut expected = prev_log_index.next();
                let mut term = *prev_log_term;
                for e in entries {
                    if e.index != expected || e.term < term || e.term > m.term {
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
                if !self.config.is_voter(m.from) || !sane(*commit) {
                    return Err(Status::LogsFromAnotherLeader);
                }
            }
            MessageBody::TimeoutNow => {
                if !self.config.is_voter(m.from) {
                    return Err(Status::LogsFromAnotherLeader);
                }
            }
            MessageBody::SnapshotChunk {
                last_index,
                last_term,
                ..
            } => {
                if !self.config.is_voter(m.from) {
                    return Err(Status::LogsFromAnotherLeader);
                }
                if !sane(*last_index) || *last_term > m.term {
                    return Err(Status::Errored);
                }
            }
            MessageBody::ReadIndexResponse { index, .. } => {
                if !sane(*index) {
                    return Err(Status::Errored);
                }
            }
            MessageBody::PreVoteResponse { .. } | MessageBody::VoteResponse { .. } => {
                if !self.config.is_voter(m.from) {
                    return Err(Status::LogsFromAnotherLeader);
                }
            }
            MessageBody::HeartbeatResponse { .. }
            | MessageBody::ReadIndexRequest { .. }
            | MessageBody::SnapshotAck { .. } => {}
        }
        Ok(())
    }
}
