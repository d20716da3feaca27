//! The follower: anchored appends, heartbeats.

use super::*;

impl Replica {
    pub(super) fn handle_append(
        &mut self,
        from: NodeId,
        prev_log_index: LogIndex,
        prev_log_term: Term,
        entries: Vec<Entry>,
        commit: LogIndex,
    ) {
        if self.role == Role::Leader {
            // Two leaders in one term cannot exist; a message claiming so is garbage.
            return;
        }
        if self.role != Role::Follower || self.leader != Some(from) {
            self.become_follower(self.term, Some(from));
        }
        self.election_elapsed = 0;
        self.leader_commit = self.leader_commit.max(commit);
        let committed = self.log.committed;
        let (prev_log_index, prev_log_term, entries) = if prev_log_index < committed {
            // Entries up to our commit index are settled; re-anchor at the commit index and
            // keep only what follows it (a duplicated or reordered append).
            let mut entries = entries;
            match entries.iter().position(|e| e.index == committed) {
                Some(k) => {
                    let anchor_term = entries[k].term;
                    (committed, anchor_term, entries.split_off(k + 1))
                }
                None => {
                    self.ack_append(from, committed);
                    return;
                }
            }
        } else {
            (prev_log_index, prev_log_term, entries)
        };
        #[allow(unused_mut)]
        let mut anchored = self.log.term(prev_log_index) == Some(prev_log_term);
        #[cfg(feature = "sim-bugs")]
        if self.bug(InjectedBug::SkipPrevLogCheck) && prev_log_index <= self.log.last_index() {
            anchored = true;
        }
        if !anchored {
            let probe = prev_log_index.min(self.log.last_index());
            let (hint_index, hint_term) = self.log.find_conflict_by_term(probe, prev_log_term);
            self.send_after_persist(
                from,
                MessageBody::AppendResponse {
                    success: false,
                    index: prev_log_index,
                    hint_index,
                    hint_term,
                },
            );
            return;
        }
        let last_new = LogIndex(prev_log_index.0 + entries.len() as u64);
        let mut entries = entries;
        // Skip what we already hold (equal index and term: the same entry, by Log Matching),
        // truncate at the first conflict, append the rest in one go.
        let mut held = 0;
        for e in &entries {
            if e.index > self.log.last_index() {
                break;
            }
            if self.log.term(e.index) == Some(e.term) {
                held += 1;
                continue;
            }
            if e.index <= self.log.committed {
                // Only reachable with an injected bug: never rewrite committed entries.
                return;
            }
            self.truncate_log_from(e.index);
            break;
        }
        if let Some(first) = entries.get(held)
            && (first.index != self.log.last_index().next() || first.term < self.log.last_term())
        {
            return;
        }
        let mut configurations = Vec::new();
        for e in &entries[held..] {
            self.holds.on_append(e);
            // Checked when the message was (`check_message`): a configuration decodes.
            if e.kind == EntryKind::Configuration
                && let Ok(configuration) = Configuration::decode(&e.payload)
            {
                configurations.push((e.index, configuration));
            }
        }
        entries.drain(..held);
        self.log.extend(entries);
        for (index, configuration) in configurations {
            self.configuration_appended(index, configuration);
        }
        let new_commit = commit.min(last_new);
        if new_commit > self.log.committed {
            self.log.committed = new_commit;
        }
        self.ack_append(from, last_new);
    }

    pub(super) fn ack_append(&mut self, to: NodeId, index: LogIndex) {
        let body = MessageBody::AppendResponse {
            success: true,
            index,
            hint_index: LogIndex::ZERO,
            hint_term: Term::ZERO,
        };
        #[cfg(feature = "sim-bugs")]
        if self.bug(InjectedBug::AckBeforePersist) {
            self.send(to, body);
            return;
        }
        self.send_after_persist(to, body);
    }

    pub(super) fn handle_heartbeat(
        &mut self,
        from: NodeId,
        commit: LogIndex,
        read_round: u64,
        quiesce: bool,
    ) {
        if self.role == Role::Leader {
            return;
        }
        if self.role != Role::Follower || self.leader != Some(from) {
            self.become_follower(self.term, Some(from));
        }
        self.election_elapsed = 0;
        self.leader_commit = self.leader_commit.max(commit);
        let last = self.log.last_index();
        if commit > last {
            // The leader only sends a commit index this replica acknowledged: its log lost
            // entries it had made durable (a replaced disk). Index 0, which no append can be
            // rejected at, tells the leader to look for where the log ends.
            self.send(
                from,
                MessageBody::AppendResponse {
                    success: false,
                    index: LogIndex::ZERO,
                    hint_index: last,
                    hint_term: self.log.term(last).unwrap_or(Term::ZERO),
                },
            );
        }
        let capped = commit.min(last);
        if capped > self.log.committed {
            self.log.committed = capped;
        }
        if quiesce {
            self.follower_quiesce(commit);
        }
        self.send(from, MessageBody::HeartbeatResponse { read_round });
    }
}

#[cfg(test)]
mod tests {
    use super::super::restore::tests::{config, durable, normal};
    use super::*;

    fn from(leader: u64, term: u64, body: MessageBody) -> Message {
        Message {
            partition: config().partition,
            from: NodeId(leader),
            to: NodeId(1),
            term: Term(term),
            body,
        }
    }

    fn append(prev: u64, entries: Vec<Entry>, commit: u64) -> MessageBody {
        MessageBody::AppendRequest {
            prev_log_index: LogIndex(prev),
            prev_log_term: Term(if prev == 0 { 0 } else { 3 }),
            entries,
            commit: LogIndex(commit),
        }
    }

    #[test]
    fn the_leader_commit_is_what_the_leader_said_not_what_the_log_holds() {
        let mut replica = Replica::new(config(), durable(Vec::new(), 0, 0)).expect("valid");
        assert_eq!(replica.leader_commit(), LogIndex::ZERO);
        // A follower far behind: the leader's commit is 500, its own stops at its log's end.
        let entries = (1..=2).map(|i| normal(i, 3)).collect();
        replica
            .step(from(2, 3, append(0, entries, 500)))
            .expect("append");
        assert_eq!(replica.commit_index(), LogIndex(2));
        assert_eq!(replica.leader_commit(), LogIndex(500));
        // A heartbeat's commit is capped at what the follower holds: it never lowers it.
        let heartbeat = MessageBody::Heartbeat {
            commit: LogIndex(2),
            read_round: 0,
            quiesce: false,
        };
        replica.step(from(2, 3, heartbeat)).expect("heartbeat");
        assert_eq!(replica.leader_commit(), LogIndex(500));
        // Another leader in a later term starts from nothing.
        replica
            .step(from(3, 4, append(2, Vec::new(), 0)))
            .expect("probe");
        assert_eq!(replica.leader(), Some(NodeId(3)));
        assert_eq!(replica.leader_commit(), LogIndex::ZERO);
    }
}
