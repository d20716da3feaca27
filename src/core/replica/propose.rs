//! Proposals on the leader and their tickets: single and batched proposals, two-phase
//! resolution (Commit and Rollback markers), checkpoints, and the uncommitted limits.

use super::*;

/// An operation accepted as leader, waiting for its outcome.
#[derive(Clone, Copy, Debug)]
pub(super) struct PendingOp {
    pub(super) last: LogIndex,
    pub(super) ticket: Ticket,
    pub(super) kind: EntryKind,
}

impl Replica {
    /// Proposes one entry. Returns its index; the outcome arrives in a later Ready.
    ///
    /// # Errors
    ///
    /// See [`Replica::propose_batch`].
    #[cfg(feature = "sim")]
    pub fn propose(
        &mut self,
        ticket: Ticket,
        auto_commit: bool,
        payload: Bytes,
    ) -> Result<LogIndex, Status> {
        self.propose_batch(ticket, auto_commit, std::slice::from_ref(&payload))
            .map(|range| *range.end())
    }

    /// Proposes consecutive entries sharing one ticket. With `auto_commit = false` they are
    /// held from delivery until [`Replica::commit_proposal`] or
    /// [`Replica::rollback_proposal`] resolves the ticket.
    ///
    /// # Errors
    ///
    /// [`Status::NodeIsNotLeader`] (also while a leadership transfer is in progress),
    /// [`Status::Errored`] for an empty batch, [`Status::ActiveProposal`] when a two-phase
    /// proposal with this ticket is still tracked, [`Status::ProposalQueueFull`] when the
    /// uncommitted limits would be exceeded.
    pub fn propose_batch(
        &mut self,
        ticket: Ticket,
        auto_commit: bool,
        payloads: &[Bytes],
    ) -> Result<RangeInclusive<LogIndex>, Status> {
        self.check_can_propose()?;
        if payloads.is_empty() {
            return Err(Status::Errored);
        }
        if !auto_commit && self.holds.contains(ticket) {
            return Err(Status::ActiveProposal);
        }
        let bytes: u64 = payloads
            .iter()
            .map(|p| Entry::size_bytes_for(p.len()))
            .sum();
        self.check_uncommitted_room(payloads.len(), bytes)?;
        self.leader_activity();
        let first = self.log.last_index().next();
        self.log
            .append_proposals(self.term, ticket, auto_commit, payloads);
        if !auto_commit {
            for entry in self.log.range(first, self.log.last_index()) {
                self.holds.on_append(entry);
            }
        }
        self.uncommitted_entries += payloads.len();
        self.uncommitted_bytes += bytes;
        let last = self.log.last_index();
        self.pending_ops.push_back(PendingOp {
            last,
            ticket,
            kind: EntryKind::Normal,
        });
        Ok(first..=last)
    }

    /// Resolves a held two-phase proposal as committed: appends a Commit marker. Idempotent
    /// while the ticket is tracked and after its marker was delivered (among the newest
    /// `resolved_tickets_max` resolutions): returns the existing marker's index, and its
    /// outcome comes again (at once if the marker is committed, else when it commits).
    ///
    /// # Errors
    ///
    /// [`Status::NodeIsNotLeader`], [`Status::ProposalNotFound`] for a ticket this leader's log
    /// does not hold (never proposed, delivered and no longer remembered, or not here: not
    /// final after a leader change, as a later leader's log may hold it), [`Status::Errored`] when the ticket
    /// was rolled back or its proposal is not yet committed, [`Status::ProposalQueueFull`].
    pub fn commit_proposal(&mut self, ticket: Ticket) -> Result<LogIndex, Status> {
        self.resolve(ticket, EntryKind::Commit)
    }

    /// Resolves a held two-phase proposal as rolled back: its entries are never delivered.
    ///
    /// # Errors
    ///
    /// As [`Replica::commit_proposal`]; rolling back a committed ticket is [`Status::Errored`].
    pub fn rollback_proposal(&mut self, ticket: Ticket) -> Result<LogIndex, Status> {
        self.resolve(ticket, EntryKind::Rollback)
    }

    /// Proposes a checkpoint. Once committed and applied it becomes the compaction floor.
    ///
    /// # Errors
    ///
    /// [`Status::NodeIsNotLeader`], [`Status::ActiveProposal`] while any two-phase proposal is
    /// unresolved, [`Status::ProposalQueueFull`].
    pub fn propose_checkpoint(&mut self, ticket: Ticket) -> Result<LogIndex, Status> {
        self.check_can_propose()?;
        if self.holds.any_unresolved() {
            return Err(Status::ActiveProposal);
        }
        self.check_uncommitted_room(1, Entry::size_bytes_for(0))?;
        let index = self.leader_append(EntryKind::Checkpoint, ticket, true, Bytes::new());
        self.pending_ops.push_back(PendingOp {
            last: index,
            ticket,
            kind: EntryKind::Checkpoint,
        });
        Ok(index)
    }

    pub(super) fn check_can_propose(&self) -> Result<(), Status> {
        if self.role != Role::Leader || self.transferee.is_some() {
            return Err(Status::NodeIsNotLeader);
        }
        Ok(())
    }

    pub(super) fn check_uncommitted_room(&self, entries: usize, bytes: u64) -> Result<(), Status> {
        if self.uncommitted_entries + entries > self.config.uncommitted_entries_max
            || self.uncommitted_bytes + bytes > self.config.uncommitted_bytes_max
        {
            return Err(Status::ProposalQueueFull);
        }
        Ok(())
    }

    /// Makes sure the outcome of `op`, whose entry is already in the log, comes: at once when
    /// the entry is committed, else when it commits (unless it is awaited already).
    fn await_outcome(&mut self, op: PendingOp) {
        if op.last <= self.log.committed {
            self.outcomes.push(Outcome {
                ticket: op.ticket,
                kind: op.kind,
                index: op.last,
                status: Status::Success,
            });
        } else if !self
            .pending_ops
            .iter()
            .any(|p| p.last == op.last && p.kind == op.kind)
        {
            // Kept in index order: the commit answers them front to back.
            let at = self.pending_ops.partition_point(|p| p.last < op.last);
            self.pending_ops.insert(at, op);
        }
    }

    pub(super) fn resolve(&mut self, ticket: Ticket, kind: EntryKind) -> Result<LogIndex, Status> {
        self.check_can_propose()?;
        let held = self.holds.get(ticket).copied();
        let resolution = match held {
            Some(held) => held.resolution,
            // Delivered already: asked again after its answer was lost.
            None => self.holds.delivered_resolution(ticket),
        };
        if let Some(resolution) = resolution {
            if resolution.kind != kind {
                return Err(Status::Errored);
            }
            // Asked again (an answer lost, a new leader inheriting the marker): the outcome
            // must still come.
            self.await_outcome(PendingOp {
                last: resolution.index,
                ticket,
                kind,
            });
            return Ok(resolution.index);
        }
        let held = held.ok_or(Status::ProposalNotFound)?;
        if held.last > self.log.committed {
            return Err(Status::Errored);
        }
        self.check_uncommitted_room(1, Entry::size_bytes_for(0))?;
        let index = self.leader_append(kind, ticket, true, Bytes::new());
        self.pending_ops.push_back(PendingOp {
            last: index,
            ticket,
            kind,
        });
        Ok(index)
    }
}
