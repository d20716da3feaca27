//! The client workload: proposals (single, batched, two-phase), their Commit or Rollback, and
//! checkpoints, sent to the leader a client would find; success outcomes are reported to the
//! checkers as acknowledged writes.

use super::observe::entry_id;
use super::*;

/// A two-phase proposal the client still has to resolve, and how.
#[derive(Debug, Clone, Copy)]
pub(super) struct OpenTicket {
    pub(super) commit: bool,
}

/// The simulated client of one partition: its tickets and what it still waits for.
#[derive(Debug, Default)]
pub(super) struct SimClient {
    pub(super) next_ticket: u64,
    /// Two-phase tickets not yet resolved by a successful marker.
    pub(super) open: BTreeMap<u64, OpenTicket>,
    /// Batch length of every proposal (to name the acknowledged entry).
    pub(super) batches: BTreeMap<u64, u64>,
}

/// The payload of entry `position` of the proposal with `ticket`: 16 bytes, unique.
pub(super) fn payload(ticket: u64, position: u64) -> Bytes {
    let mut bytes = Vec::with_capacity(16);
    bytes.extend_from_slice(&ticket.to_le_bytes());
    bytes.extend_from_slice(&position.to_le_bytes());
    Bytes::from(bytes)
}

impl Simulation {
    /// The node a client would talk to: usually the leader of the highest term, sometimes any;
    /// `None` when that process is stopped (the request would time out).
    pub(super) fn client_target(&mut self, partition: usize) -> Option<usize> {
        let node = match self.leader_of(partition) {
            Some(node) if !self.client_rng.chance(100_000) => node,
            _ => self.client_rng.index(self.nodes.len()),
        };
        (!self.paused(node)).then_some(node)
    }

    pub(super) fn propose(&mut self, partition: usize) -> Result<(), SimFailure> {
        let Some(node) = self.client_target(partition) else {
            return Ok(());
        };
        let client = &mut self.clients[partition];
        client.next_ticket += 1;
        let ticket = client.next_ticket;
        let batch = self.client_rng.between(1, self.config.proposal_batch_max);
        let two_phase = self.client_rng.chance(self.config.two_phase_per_million);
        let commit = !self.client_rng.chance(self.config.rollback_per_million);
        let payloads: Vec<Bytes> = (0..batch)
            .map(|position| payload(ticket, position))
            .collect();
        self.trace.event(
            11,
            &[self.now, node as u64, partition as u64, ticket, batch],
        );
        let Some(core) = self.nodes[node].replicas[partition].core.as_mut() else {
            return Ok(());
        };
        let accepted = core
            .propose_batch(Ticket(ticket), !two_phase, &payloads)
            .is_ok();
        self.clients[partition].batches.insert(ticket, batch);
        if accepted && two_phase {
            self.clients[partition]
                .open
                .insert(ticket, OpenTicket { commit });
            let at = self.now + self.client_rng.between(20, 400);
            self.agenda.push(at, Event::Resolve { partition, ticket });
        }
        self.drain(node, partition)
    }

    pub(super) fn propose_checkpoint(&mut self, partition: usize) -> Result<(), SimFailure> {
        let Some(node) = self.client_target(partition) else {
            return Ok(());
        };
        let client = &mut self.clients[partition];
        client.next_ticket += 1;
        let ticket = client.next_ticket;
        self.trace
            .event(16, &[self.now, node as u64, partition as u64, ticket]);
        if let Some(core) = self.nodes[node].replicas[partition].core.as_mut() {
            // Refusals (not leader, a two-phase proposal open) are normal: try again later.
            let _ = core.propose_checkpoint(Ticket(ticket));
        }
        self.drain(node, partition)
    }

    pub(super) fn resolve(&mut self, partition: usize, ticket: u64) -> Result<(), SimFailure> {
        let Some(open) = self.clients[partition].open.get(&ticket).copied() else {
            return Ok(());
        };
        let target = self.client_target(partition);
        if let Some(node) = target {
            self.trace
                .event(12, &[self.now, node as u64, partition as u64, ticket]);
        }
        if let Some(node) = target
            && let Some(core) = self.nodes[node].replicas[partition].core.as_mut()
        {
            let result = if open.commit {
                core.commit_proposal(Ticket(ticket))
            } else {
                core.rollback_proposal(Ticket(ticket))
            };
            if result == Err(Status::ProposalNotFound)
                && !self.faults_active
                && !self.ticket_unresolved_in_any_log(partition, ticket)
            {
                // Healed, and no replica holds the proposal without a marker after it: it was
                // resolved (the success answer got lost) or can never commit. A leader's "not
                // found" alone is not enough: a stale leader may lack it while the next has it.
                self.clients[partition].open.remove(&ticket);
            }
            self.drain(node, partition)?;
        }
        // Retry until a marker's success comes back (outcomes may be lost with a leader).
        if self.clients[partition].open.contains_key(&ticket) {
            let at = self.now + self.client_rng.between(200, 600);
            self.agenda.push(at, Event::Resolve { partition, ticket });
        }
        Ok(())
    }

    /// Whether any member's log (durable or not) holds data proposed with `ticket` and no
    /// Commit or Rollback marker for it after that data. A node the committed configuration
    /// no longer lists keeps whatever log it had, and no leader will ever resolve it there.
    pub(super) fn ticket_unresolved_in_any_log(&self, partition: usize, ticket: u64) -> bool {
        let view = self.checkers.view();
        let members = view.committed_members(partition);
        (0..view.nodes())
            .filter(|node| members & (1 << node) != 0)
            .any(|node| {
                let mut held = false;
                for entry in view.replica(node, partition).log.entries() {
                    match entry.kind {
                        observation::ObservedKind::Data { ticket: t, .. } if t == ticket => {
                            held = true
                        }
                        observation::ObservedKind::CommitMarker { ticket: t }
                        | observation::ObservedKind::RollbackMarker { ticket: t }
                            if t == ticket && held =>
                        {
                            held = false;
                        }
                        _ => {}
                    }
                }
                held
            })
    }

    pub(super) fn on_outcome(
        &mut self,
        partition: usize,
        outcome: Outcome,
    ) -> Result<(), SimFailure> {
        if outcome.status != Status::Success {
            return Ok(());
        }
        match outcome.kind {
            EntryKind::Normal => {
                let batch = self.clients[partition]
                    .batches
                    .get(&outcome.ticket.0)
                    .copied()
                    .unwrap_or(1);
                let last = payload(outcome.ticket.0, batch - 1);
                self.report.acknowledged += 1;
                self.observe(Observation::Acknowledged {
                    partition,
                    id: entry_id(EntryKind::Normal, outcome.ticket, &last),
                    index: outcome.index.0,
                })?;
            }
            EntryKind::Commit | EntryKind::Rollback => {
                self.clients[partition].open.remove(&outcome.ticket.0);
            }
            _ => {}
        }
        Ok(())
    }

    /// The up node leading `partition` in the highest term, if any.
    pub(super) fn leader_of(&self, partition: usize) -> Option<usize> {
        (0..self.nodes.len())
            .filter(|node| self.nodes[*node].up)
            .filter_map(|node| {
                let core = self.nodes[node].replicas[partition].core.as_ref()?;
                (core.role() == Role::Leader).then(|| (core.term(), node))
            })
            .max()
            .map(|(_, node)| node)
    }
}
