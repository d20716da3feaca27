//! The leader: heartbeats, check-quorum, pipelined appends, commit (§5.3, §5.4.2).

use super::*;

/// Voters whose match indices the commit rule sorts on the stack; a larger configuration
/// sorts them in the replica's scratch vector.
const VOTERS_INLINE: usize = 8;

impl Replica {
    pub(super) fn tick_leader(&mut self) {
        if !self.tick_leader_quiescence() {
            return;
        }
        self.heartbeat_elapsed = self.heartbeat_elapsed.saturating_add(1);
        if self.heartbeat_elapsed >= self.config.heartbeat_interval_ticks {
            self.heartbeat_elapsed = 0;
            if !self.heartbeats_suspended {
                self.heartbeat_due();
            }
        }
        if self.transferee.is_some() {
            self.transfer_elapsed = self.transfer_elapsed.saturating_add(1);
            if self.transfer_elapsed >= self.config.election_timeout_ticks_min {
                self.transferee = None;
            }
        }
        self.election_elapsed = self.election_elapsed.saturating_add(1);
        if self.election_elapsed >= self.config.election_timeout_ticks_min {
            self.election_elapsed = 0;
            if self.config.check_quorum {
                let id = self.config.id;
                let active = self
                    .configuration()
                    .voters()
                    .iter()
                    .filter(|&&v| {
                        v == id
                            || self
                                .progress
                                .iter()
                                .any(|(n, p)| *n == v && p.recent_active)
                    })
                    .count();
                if active < self.quorum() {
                    self.become_follower(self.term, None);
                    return;
                }
            }
            for (_, p) in &mut self.progress {
                p.recent_active = false;
            }
        }
    }

    pub(super) fn leader_append(
        &mut self,
        kind: EntryKind,
        ticket: Ticket,
        auto_commit: bool,
        payload: Bytes,
    ) -> LogIndex {
        self.leader_activity();
        let index = self.log.last_index().next();
        let entry = Entry {
            index,
            term: self.term,
            kind,
            ticket,
            auto_commit,
            payload,
        };
        self.uncommitted_entries += 1;
        self.uncommitted_bytes += entry.size_bytes();
        self.holds.on_append(&entry);
        self.log.push(entry);
        index
    }

    pub(super) fn peer(&self, node: NodeId) -> Option<&Progress> {
        self.progress
            .iter()
            .find(|(n, _)| *n == node)
            .map(|(_, p)| p)
    }

    pub(super) fn peer_mut(&mut self, node: NodeId) -> Option<&mut Progress> {
        self.progress
            .iter_mut()
            .find(|(n, _)| *n == node)
            .map(|(_, p)| p)
    }

    /// Whether `send_appends` would send anything.
    pub(super) fn leader_has_sends(&self) -> bool {
        if self.role != Role::Leader || self.heartbeats_suspended {
            return false;
        }
        let last = self.log.last_index();
        let (count_max, bytes_max) = (
            self.config.inflight_messages_max,
            self.config.inflight_bytes_max,
        );
        self.has_unassigned_reads()
            || self.progress.iter().any(|(_, p)| {
                p.can_send(count_max, bytes_max)
                    && (p.next_index <= last
                        || (p.state == ProgressState::Probe && p.match_index < last))
            })
    }

    /// Builds appends for every follower that can take more, within its window.
    pub(super) fn send_appends(&mut self) {
        if self.heartbeats_suspended {
            return;
        }
        for k in 0..self.progress.len() {
            loop {
                let (to, p) = &self.progress[k];
                let to = *to;
                let last = self.log.last_index();
                let can = p.can_send(
                    self.config.inflight_messages_max,
                    self.config.inflight_bytes_max,
                );
                let wanted = p.next_index <= last
                    || (p.state == ProgressState::Probe && p.match_index < last);
                if !can || !wanted {
                    break;
                }
                let next = p.next_index;
                let prev = next.prev();
                let Some(prev_term) = self.log.term(prev) else {
                    self.progress[k].1.state = ProgressState::SnapshotRequired;
                    self.snapshot_required.push(to);
                    break;
                };
                let entries = self.log.slice(
                    next,
                    self.config.append_entries_max,
                    self.config.append_bytes_max,
                );
                let bytes: u64 = entries.iter().map(Entry::size_bytes).sum();
                let sent_last = entries.last().map_or(prev, |e| e.index);
                let p = &mut self.progress[k].1;
                match p.state {
                    ProgressState::Probe => p.probe_sent = true,
                    ProgressState::Replicate => {
                        p.next_index = sent_last.next();
                        p.inflights.add(sent_last, bytes);
                    }
                    ProgressState::SnapshotRequired => {}
                }
                let probe = p.state == ProgressState::Probe;
                let commit = self.log.committed;
                if p.state == ProgressState::Replicate {
                    p.appended_at = Some(self.heartbeat_elapsed);
                    p.commit_sent = commit.min(sent_last);
                }
                self.send(
                    to,
                    MessageBody::AppendRequest {
                        prev_log_index: prev,
                        prev_log_term: prev_term,
                        entries,
                        commit,
                    },
                );
                if probe {
                    break;
                }
            }
        }
    }

    /// Heartbeats every follower (a read round, a quiesce round, a wake, a transfer).
    pub(super) fn broadcast_heartbeat(&mut self) {
        for k in 0..self.progress.len() {
            self.heartbeat(k);
        }
    }

    /// The heartbeat interval's end: heartbeats the followers that need one
    /// (`heartbeat_needed`).
    fn heartbeat_due(&mut self) {
        let last = self.log.last_index();
        for k in 0..self.progress.len() {
            let needed = self.heartbeat_needed(&self.progress[k].1);
            self.progress[k].1.answered = false;
            if needed {
                self.heartbeat(k);
            } else {
                // The skip stands in for the round in the loss detector, as the answer would
                // (`handle_heartbeat_response`): unacknowledged by the next interval's end,
                // what is in flight now makes that interval's heartbeat go, and its answer
                // finds the loss.
                let p = &mut self.progress[k].1;
                p.appended_at = None;
                p.mark_heartbeat_round(last);
            }
        }
    }

    /// Whether the follower `p` needs this interval's heartbeat. It does not when the
    /// heartbeat would tell it nothing new: an append sent to it in the replicate state since
    /// its last heartbeat carried the commit index the heartbeat would (`commit_sent`), no
    /// read round waits on its answer, no quiesce round is on, and it answered something
    /// since the last interval's end (on a lossy link every heartbeat stays); and that append
    /// went recently enough that its election timer cannot run out before the next heartbeat
    /// (the append's age, at most one interval; the next interval; one more for a transport
    /// that coalesces heartbeats and sends them up to an interval late, as the TCP transport
    /// does; and a tick of misalignment between the two nodes' ticks: below
    /// `election_timeout_ticks_min`). A leader whose partition takes writes every interval
    /// then sends mostly appends, not appends and heartbeats (issue 15's 4096 active
    /// partitions: half the messages were heartbeats). Lost appends are found as soon as
    /// before: a later append is rejected, or a skip stands in for a heartbeat round in the
    /// loss detector (`heartbeat_due`), so the next interval's heartbeat, not skipped while
    /// what was in flight at the skip is unacknowledged, finds them with its answer.
    fn heartbeat_needed(&self, p: &Progress) -> bool {
        let Some(appended_at) = p.appended_at else {
            return true;
        };
        let interval = self.config.heartbeat_interval_ticks;
        let age = interval.saturating_sub(appended_at);
        let silence = age
            .saturating_add(interval.saturating_mul(2))
            .saturating_add(1);
        p.state != ProgressState::Replicate
            || !p.answered
            || silence >= self.config.election_timeout_ticks_min
            || p.commit_sent < p.match_index.min(self.log.committed)
            || p.match_index < p.match_at_heartbeat
            || p.read_round < self.read_round
            || self.quiesce_flag()
    }

    /// Heartbeats the follower at `progress[k]`: the commit index it holds, the read round,
    /// the quiesce flag.
    fn heartbeat(&mut self, k: usize) {
        let committed = self.log.committed;
        let read_round = self.read_round;
        let quiesce = self.quiesce_flag();
        let (to, p) = &mut self.progress[k];
        p.appended_at = None;
        let body = MessageBody::Heartbeat {
            commit: p.match_index.min(committed),
            read_round,
            quiesce,
        };
        let to = *to;
        self.send(to, body);
    }

    pub(super) fn handle_append_response(
        &mut self,
        from: NodeId,
        success: bool,
        index: LogIndex,
        hint_index: LogIndex,
        hint_term: Term,
    ) {
        if self.role != Role::Leader || index > self.log.last_index() {
            return;
        }
        let next_probe = if hint_term > Term::ZERO {
            self.log.find_conflict_by_term(hint_index, hint_term).0
        } else {
            hint_index
        };
        let last = self.log.last_index();
        let Some(p) = self.peer_mut(from) else {
            return;
        };
        p.recent_active = true;
        p.answered = true;
        if success {
            let advanced = p.on_success(index);
            if p.state == ProgressState::Probe || p.state == ProgressState::SnapshotRequired {
                p.become_replicate();
            }
            let caught_up = p.match_index == last;
            if advanced {
                self.maybe_commit();
                self.compact_memory();
            }
            if caught_up && self.transferee == Some(from) {
                self.send(from, MessageBody::TimeoutNow);
            }
        } else if index == LogIndex::ZERO {
            // No append is rejected at index 0: a follower whose log ends at `hint_index`,
            // below what it acknowledged (a replaced disk), asks to be probed from there.
            p.on_lost_entries(hint_index);
        } else {
            p.on_reject(index, next_probe.next());
        }
    }

    pub(super) fn handle_heartbeat_response(&mut self, from: NodeId, read_round: u64) {
        if self.role != Role::Leader {
            return;
        }
        let last = self.log.last_index();
        let Some(p) = self.peer_mut(from) else {
            return;
        };
        p.recent_active = true;
        p.answered = true;
        // Learners' answers count for quiescence only (`confirm_reads` counts voters).
        if read_round > p.read_round {
            p.read_round = read_round;
        }
        match p.state {
            ProgressState::Probe => p.probe_sent = false,
            ProgressState::Replicate => {
                // What was in flight at the previous heartbeat answer is still unacknowledged:
                // it was lost (or the follower is stuck); find the match point again.
                if p.match_index < p.match_at_heartbeat {
                    p.become_probe();
                }
                p.mark_heartbeat_round(last);
            }
            ProgressState::SnapshotRequired => {}
        }
        self.confirm_reads();
        self.finish_quiescing();
    }

    /// Advances the commit index to the highest index a quorum of voters holds durably, if that
    /// entry is from the current term (§5.4.2: never by counting replicas of an older term).
    pub(super) fn maybe_commit(&mut self) {
        let id = self.config.id;
        let quorum = self.quorum();
        let voters = self.configurations.current().voters();
        // The voters' match indices, on the stack for the usual few voters: a heap buffer
        // would be one more cache line to miss per commit at many active partitions.
        let mut inline = [LogIndex::ZERO; VOTERS_INLINE];
        let matched = if voters.len() <= VOTERS_INLINE {
            &mut inline[..voters.len()]
        } else {
            self.scratch.clear();
            self.scratch.resize(voters.len(), LogIndex::ZERO);
            &mut self.scratch[..]
        };
        for (slot, &voter) in matched.iter_mut().zip(voters) {
            *slot = if voter == id {
                self.log.persisted
            } else {
                self.progress
                    .iter()
                    .find(|(n, _)| *n == voter)
                    .map_or(LogIndex::ZERO, |(_, p)| p.match_index)
            };
        }
        matched.sort_unstable_by(|a, b| b.cmp(a));
        // A configuration has at least one voter, so the quorum's position exists.
        let candidate = matched[quorum - 1];
        if candidate <= self.log.committed {
            return;
        }
        #[allow(unused_mut)]
        let mut current_term_only = true;
        #[cfg(feature = "sim-bugs")]
        if self.bug(InjectedBug::CommitOldTermByCounting) {
            current_term_only = false;
        }
        if current_term_only && self.log.term(candidate) != Some(self.term) {
            return;
        }
        let old = self.log.committed;
        self.log.committed = candidate;
        for e in self.log.range(old.next(), candidate) {
            self.uncommitted_entries = self.uncommitted_entries.saturating_sub(1);
            self.uncommitted_bytes = self.uncommitted_bytes.saturating_sub(e.size_bytes());
        }
        while let Some(op) = self.pending_ops.front() {
            if op.last > candidate {
                break;
            }
            self.outcomes.push(Outcome {
                ticket: op.ticket,
                kind: op.kind,
                index: op.last,
                status: Status::Success,
            });
            self.pending_ops.pop_front();
        }
        if self.is_sole_voter() {
            self.confirm_reads();
        }
        self.step_down_if_removed();
    }

    pub(super) fn committed_in_term(&self) -> bool {
        self.log.term(self.log.committed) == Some(self.term)
    }
}
