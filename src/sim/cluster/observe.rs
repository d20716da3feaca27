//! What the checkers are told: observed entries (with a content digest), commit advances, and
//! the report counters kept alongside.

use super::*;

/// The content digest the checkers compare: kind, ticket and payload.
pub(super) fn entry_id(kind: EntryKind, ticket: Ticket, payload: &[u8]) -> u64 {
    let mut hash = TraceHash::new();
    let mut words = vec![u64::from(kind.code()), ticket.0, payload.len() as u64];
    words.extend(payload.chunks(8).map(|chunk| {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        u64::from_le_bytes(word)
    }));
    hash.event(0, &words);
    hash.value()
}

/// Node ids as a mask of node indices (the simulator's nodes are ids 1 to 64).
pub(super) fn node_mask(nodes: &[NodeId]) -> u64 {
    nodes
        .iter()
        .filter_map(|node| node.0.checked_sub(1))
        .filter(|bit| *bit < 64)
        .fold(0, |mask, bit| mask | 1 << bit)
}

pub(super) fn observe_entry(entry: &Entry) -> ObservedEntry {
    let kind = match entry.kind {
        EntryKind::Normal => observation::ObservedKind::Data {
            ticket: entry.ticket.0,
            auto_commit: entry.auto_commit,
        },
        EntryKind::NoOp => observation::ObservedKind::Noop,
        EntryKind::Commit => observation::ObservedKind::CommitMarker {
            ticket: entry.ticket.0,
        },
        EntryKind::Rollback => observation::ObservedKind::RollbackMarker {
            ticket: entry.ticket.0,
        },
        EntryKind::Checkpoint => observation::ObservedKind::Checkpoint,
        EntryKind::Configuration => {
            // The core refuses a configuration entry that does not decode; an empty mask here
            // would show in the checkers as a partition nobody may lead.
            let (voters, learners) = Configuration::decode(&entry.payload)
                .map(|c| (node_mask(c.voters()), node_mask(c.learners())))
                .unwrap_or_default();
            observation::ObservedKind::Configuration { voters, learners }
        }
    };
    ObservedEntry {
        index: entry.index.0,
        term: entry.term.0,
        id: entry_id(entry.kind, entry.ticket, &entry.payload),
        kind,
    }
}

impl Simulation {
    pub(super) fn observe(&mut self, observation: Observation) -> Result<(), SimFailure> {
        if let Observation::Role { leader: true, .. } = observation {
            self.report.elections += 1;
        }
        match observation {
            Observation::Delivered { .. } => self.report.delivered += 1,
            Observation::Compacted { .. } => self.report.compactions += 1,
            Observation::SnapshotInstalled { .. } => self.report.snapshots += 1,
            _ => {}
        }
        self.checkers
            .observe(observation)
            .map_err(|violation| self.fail(violation))
    }

    pub(super) fn observe_commit(
        &mut self,
        node: usize,
        partition: usize,
    ) -> Result<(), SimFailure> {
        let replica = &self.nodes[node].replicas[partition];
        let Some(core) = replica.core.as_ref() else {
            return Ok(());
        };
        let commit = core.commit_index().0;
        if commit != replica.observed_commit {
            self.nodes[node].replicas[partition].observed_commit = commit;
            if self.nodes[node].isolate_on_commit {
                self.nodes[node].isolate_on_commit = false;
                self.isolate(node);
            }
            self.observe(Observation::Committed {
                node,
                partition,
                commit,
            })?;
        }
        Ok(())
    }
}
