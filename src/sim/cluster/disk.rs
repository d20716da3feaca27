//! The disk model: a durable image per replica that only completed flushes change, and a
//! queue of Ready writes that one flush makes durable together (group commit) after a
//! simulated latency, then acknowledges to the core and releases their gated messages.

use super::*;

/// The durable image of one replica.
#[derive(Debug, Default, Clone)]
pub(super) struct Durable {
    pub(super) hard_state: HardState,
    pub(super) floor: LogIndex,
    pub(super) floor_term: Term,
    /// The configuration in force at the floor, once the floor moved (`None`: the first one).
    pub(super) floor_configuration: Option<Configuration>,
    pub(super) entries: Vec<Entry>,
}

impl Durable {
    pub(super) fn last_index(&self) -> u64 {
        self.floor.0 + self.entries.len() as u64
    }

    pub(super) fn term_at(&self, index: LogIndex) -> Term {
        if index == self.floor {
            return self.floor_term;
        }
        index
            .0
            .checked_sub(self.floor.0 + 1)
            .and_then(|offset| self.entries.get(offset as usize))
            .map_or(Term::ZERO, |entry| entry.term)
    }

    /// The log restarts after a snapshot: the entries after it stay when the log holds the
    /// snapshot's last entry with its term, else every stored entry goes (the WAL's
    /// `Write::InstallSnapshot`).
    pub(super) fn install(&mut self, meta: &Floor) {
        if meta.index < self.floor {
            return;
        }
        if meta.index.0 <= self.last_index() && self.term_at(meta.index) == meta.term {
            self.entries.drain(..(meta.index.0 - self.floor.0) as usize);
        } else {
            self.entries.clear();
        }
        self.floor = meta.index;
        self.floor_term = meta.term;
        self.floor_configuration = Some(meta.configuration.clone());
    }

    pub(super) fn write(&mut self, write: &PendingWrite) {
        if let Some(meta) = &write.installed_snapshot {
            self.install(meta);
        }
        if let Some(hard_state) = write.hard_state {
            self.hard_state = hard_state;
        }
        if let Some(first) = write.entries.first() {
            let keep = first.index.0.saturating_sub(self.floor.0 + 1) as usize;
            self.entries.truncate(keep);
            self.entries.extend(
                write
                    .entries
                    .iter()
                    .filter(|entry| entry.index > self.floor)
                    .cloned(),
            );
        }
        if let Some(floor) = &write.compaction_floor
            && floor.index > self.floor
            && floor.index.0 <= self.last_index()
        {
            let term = self.term_at(floor.index);
            self.entries
                .drain(..(floor.index.0 - self.floor.0) as usize);
            self.floor = floor.index;
            self.floor_term = term;
            self.floor_configuration = Some(floor.configuration.clone());
        }
    }
}

#[derive(Debug)]
pub(super) struct PendingWrite {
    pub(super) partition: usize,
    pub(super) number: u64,
    /// The Ready's `durability_awaited`: the replica is told of this write only then, as the
    /// shard's WalScheduler does.
    pub(super) durability_awaited: bool,
    pub(super) hard_state: Option<HardState>,
    pub(super) entries: Vec<Entry>,
    pub(super) compaction_floor: Option<Floor>,
    pub(super) installed_snapshot: Option<Floor>,
    pub(super) gated: GatedMessages,
}

impl Simulation {
    pub(super) fn start_flush(&mut self, node: usize) {
        let state = &mut self.nodes[node];
        if state.flushing > 0 || state.disk_queue.is_empty() {
            return;
        }
        state.flushing = state.disk_queue.len();
        let latency = self.disk_rng.latency(&self.config.disk_latency);
        let incarnation = state.incarnation;
        self.agenda
            .push(self.now + latency, Event::FlushDone { node, incarnation });
    }

    pub(super) fn complete_flush(&mut self, node: usize) -> Result<(), SimFailure> {
        let count = self.nodes[node].flushing;
        self.nodes[node].flushing = 0;
        let mut touched = Vec::new();
        for _ in 0..count {
            let Some(write) = self.nodes[node].disk_queue.pop_front() else {
                break;
            };
            let replica = &mut self.nodes[node].replicas[write.partition];
            replica.durable.write(&write);
            if let Some(core) = replica.core.as_mut()
                && write.durability_awaited
            {
                core.persisted(write.number);
            }
            // Released with its own number: the gate always opens here.
            if let Ok(messages) = write.gated.release(write.number) {
                self.send(node, messages);
            }
            if !touched.contains(&write.partition) {
                touched.push(write.partition);
            }
        }
        for partition in touched {
            self.drain(node, partition)?;
        }
        self.start_flush(node);
        Ok(())
    }
}
