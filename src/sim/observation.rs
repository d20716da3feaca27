//! What the checkers see: a replica-independent view of every node's logs, commit indexes,
//! deliveries and leadership claims, updated by a stream of [`Observation`]s.
//!
//! The simulator translates what the core emits (Ready contents, status) into observations;
//! hand-made observation streams drive the checkers' negative-control tests. The view does no
//! checking of its own beyond keeping itself well-formed; every safety property lives in its
//! own checker (see [`super::checkers`]).

/// A node number inside the simulation (`0..nodes`).
pub type NodeIndex = usize;
/// A partition number inside the simulation (`0..partitions`).
pub type PartitionIndex = usize;

/// What an entry is, as far as the delivery rules care.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObservedKind {
    /// The leader's barrier (or any entry that is never delivered to the application).
    Noop,
    /// Application data. `auto_commit = false` data is held until a marker for `ticket` commits.
    Data {
        /// The proposal's ticket.
        ticket: u64,
        /// `false` for a two-phase proposal.
        auto_commit: bool,
    },
    /// Releases the held data of `ticket`.
    CommitMarker {
        /// The ticket released.
        ticket: u64,
    },
    /// Discards the held data of `ticket`: it must never be delivered.
    RollbackMarker {
        /// The ticket discarded.
        ticket: u64,
    },
    /// A checkpoint (becomes the compaction floor once committed).
    Checkpoint,
    /// A new configuration of the partition, decoded from the entry's bytes: bit `n` of each
    /// mask is node index `n` (never delivered).
    Configuration {
        /// The voters.
        voters: u64,
        /// The learners.
        learners: u64,
    },
}

/// One log entry as observed: its position, its term and a digest of its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ObservedEntry {
    /// Log index (1-based).
    pub index: u64,
    /// Term in which a leader created the entry.
    pub term: u64,
    /// Content digest; two entries with the same digest are the same proposal.
    pub id: u64,
    /// The entry's kind.
    pub kind: ObservedKind,
}

impl ObservedEntry {
    /// `(term, id, kind)`: what must agree between two copies of the entry at one index.
    pub fn identity(&self) -> (u64, u64, ObservedKind) {
        (self.term, self.id, self.kind)
    }
}

/// One node's log for one partition: entries above a compaction floor.
#[derive(Debug, Clone, Default)]
pub struct ObservedLog {
    floor_index: u64,
    floor_term: u64,
    entries: Vec<ObservedEntry>,
}

impl ObservedLog {
    /// A log with the given floor (entries at or below it are compacted) and entries above it.
    pub fn new(floor_index: u64, floor_term: u64, entries: Vec<ObservedEntry>) -> Self {
        Self {
            floor_index,
            floor_term,
            entries,
        }
    }

    /// Index of the last entry (the floor when empty).
    pub fn last_index(&self) -> u64 {
        self.floor_index + self.entries.len() as u64
    }

    /// Index at or below which entries are compacted.
    pub fn floor_index(&self) -> u64 {
        self.floor_index
    }

    /// The entry at `index`, unless compacted or beyond the end.
    pub fn get(&self, index: u64) -> Option<&ObservedEntry> {
        if index <= self.floor_index {
            return None;
        }
        self.entries.get((index - self.floor_index - 1) as usize)
    }

    /// Term of the entry at `index` (including the floor's term; `Some(0)` for index 0).
    pub fn term_at(&self, index: u64) -> Option<u64> {
        if index == 0 {
            return Some(0);
        }
        if index == self.floor_index {
            return Some(self.floor_term);
        }
        self.get(index).map(|entry| entry.term)
    }

    /// Entries above the floor, in index order.
    pub fn entries(&self) -> &[ObservedEntry] {
        &self.entries
    }

    /// Replaces the suffix starting at the first entry's index with `entries` (WAL semantics:
    /// writing index k discards everything from k on). Entries at or below the floor are
    /// skipped.
    ///
    /// # Errors
    /// A gap (first index beyond `last_index + 1`) or non-consecutive indexes.
    pub fn append(&mut self, entries: &[ObservedEntry]) -> Result<(), String> {
        let entries: Vec<&ObservedEntry> = entries
            .iter()
            .filter(|entry| entry.index > self.floor_index)
            .collect();
        let Some(first) = entries.first() else {
            return Ok(());
        };
        if first.index > self.last_index() + 1 {
            return Err(format!(
                "append at index {} leaves a gap after last index {}",
                first.index,
                self.last_index()
            ));
        }
        for pair in entries.windows(2) {
            if pair[1].index != pair[0].index + 1 {
                return Err(format!(
                    "appended indexes not consecutive: {} then {}",
                    pair[0].index, pair[1].index
                ));
            }
        }
        self.entries
            .truncate((first.index - self.floor_index - 1) as usize);
        self.entries.extend(entries.into_iter().copied());
        Ok(())
    }

    /// A snapshot's boundary at (`index`, `term`): the log restarts after `index`, keeping the
    /// entries after it when it holds `index` with `term` (Raft §7), else discarding them.
    pub fn install(&mut self, index: u64, term: u64) {
        if self.term_at(index) == Some(term) && index >= self.floor_index {
            self.compact(index);
        } else {
            *self = Self::new(index, term, Vec::new());
        }
    }

    /// Drops entries at or below `floor` (a committed checkpoint).
    pub fn compact(&mut self, floor: u64) {
        if floor <= self.floor_index {
            return;
        }
        let Some(term) = self.term_at(floor) else {
            return;
        };
        let drop = ((floor - self.floor_index) as usize).min(self.entries.len());
        self.entries.drain(..drop);
        self.floor_index = floor;
        self.floor_term = term;
    }
}

/// What is known about one replica (node × partition).
#[derive(Debug, Clone, Default)]
pub struct ReplicaView {
    /// The node is running (not crashed).
    pub up: bool,
    /// Restart count of the node.
    pub incarnation: u64,
    /// The replica's current term.
    pub term: u64,
    /// The replica claims leadership in `term`.
    pub leader: bool,
    /// The replica's log (durable and not yet durable entries).
    pub log: ObservedLog,
    /// The replica's commit index.
    pub commit: u64,
    /// Index of the last entry delivered to the application (0 when none).
    pub delivered: u64,
}

/// An entry the cluster has committed, recorded the first time any replica's commit covered it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommittedEntry {
    /// The entry as the first committing replica held it.
    pub entry: ObservedEntry,
    /// Term of that replica when its commit index first covered the entry.
    pub commit_term: u64,
}

/// Everything the checkers can see.
#[derive(Debug, Clone)]
pub struct ClusterView {
    replicas: Vec<Vec<ReplicaView>>,
    committed: Vec<Vec<Option<CommittedEntry>>>,
    /// The voters every partition starts with (bit `n`: node index `n`).
    first_voters: u64,
}

/// One thing that happened, reported to the view and the checkers.
#[derive(Debug, Clone)]
pub enum Observation {
    /// The replica's role or term changed (`leader` = it claims leadership in `term`).
    Role {
        /// Node.
        node: NodeIndex,
        /// Partition.
        partition: PartitionIndex,
        /// Current term.
        term: u64,
        /// Leader in `term`.
        leader: bool,
    },
    /// The replica wrote entries to its log, replacing the suffix from the first one's index.
    Appended {
        /// Node.
        node: NodeIndex,
        /// Partition.
        partition: PartitionIndex,
        /// The entries, consecutive.
        entries: Vec<ObservedEntry>,
    },
    /// The replica's commit index moved.
    Committed {
        /// Node.
        node: NodeIndex,
        /// Partition.
        partition: PartitionIndex,
        /// New commit index.
        commit: u64,
    },
    /// The replica handed one entry to the application.
    Delivered {
        /// Node.
        node: NodeIndex,
        /// Partition.
        partition: PartitionIndex,
        /// The entry delivered.
        entry: ObservedEntry,
    },
    /// The replica compacted its log up to `floor`.
    Compacted {
        /// Node.
        node: NodeIndex,
        /// Partition.
        partition: PartitionIndex,
        /// New floor.
        floor: u64,
    },
    /// The node crashed: everything volatile is gone.
    Crashed {
        /// Node.
        node: NodeIndex,
    },
    /// The node restarted; this is one partition's state recovered from durable storage.
    Restarted {
        /// Node.
        node: NodeIndex,
        /// Partition.
        partition: PartitionIndex,
        /// Durable term.
        term: u64,
        /// Durable log.
        log: ObservedLog,
        /// Commit index after restart.
        commit: u64,
        /// Last index the application had durably consumed.
        delivered: u64,
    },
    /// The replica installed a snapshot: its log restarts after `index` (whose entry had
    /// `term`; the entries after it stay if the log held it with that term), and the
    /// application's state now covers everything up to `index`.
    SnapshotInstalled {
        /// Node.
        node: NodeIndex,
        /// Partition.
        partition: PartitionIndex,
        /// Last index the snapshot covers.
        index: u64,
        /// Term of the entry at `index`.
        term: u64,
    },
    /// A client got a success answer: its proposal `id` is committed at `index`.
    Acknowledged {
        /// Partition.
        partition: PartitionIndex,
        /// Content digest of the proposal.
        id: u64,
        /// Index the answer named.
        index: u64,
    },
}

impl ClusterView {
    /// A view of `nodes` running nodes with `partitions` empty replicas each, whose
    /// partitions start with the voters in the mask `first_voters`.
    pub fn new(nodes: usize, partitions: usize, first_voters: u64) -> Self {
        let replica = ReplicaView {
            up: true,
            ..ReplicaView::default()
        };
        Self {
            replicas: vec![vec![replica; partitions]; nodes],
            committed: vec![Vec::new(); partitions],
            first_voters,
        }
    }

    /// The members (voters and learners, as a mask of node indices) of `partition`'s latest
    /// committed configuration: the last configuration entry the cluster committed, or the
    /// first voters.
    pub fn committed_members(&self, partition: PartitionIndex) -> u64 {
        self.committed[partition]
            .iter()
            .rev()
            .flatten()
            .find_map(|committed| match committed.entry.kind {
                ObservedKind::Configuration { voters, learners } => Some(voters | learners),
                _ => None,
            })
            .unwrap_or(self.first_voters)
    }

    /// Number of nodes.
    pub fn nodes(&self) -> usize {
        self.replicas.len()
    }

    /// Number of partitions.
    pub fn partitions(&self) -> usize {
        self.committed.len()
    }

    /// The view of one replica.
    pub fn replica(&self, node: NodeIndex, partition: PartitionIndex) -> &ReplicaView {
        &self.replicas[node][partition]
    }

    /// The entry committed at `index` in `partition`, if known.
    pub fn committed(&self, partition: PartitionIndex, index: u64) -> Option<&CommittedEntry> {
        let slot = usize::try_from(index).ok()?.checked_sub(1)?;
        self.committed[partition].get(slot)?.as_ref()
    }

    /// Highest index any replica of `partition` has reported committed.
    pub fn committed_len(&self, partition: PartitionIndex) -> u64 {
        self.committed[partition].len() as u64
    }

    /// Applies an observation to the view.
    ///
    /// # Errors
    /// The observation is malformed (a log gap), which is itself a defect worth reporting.
    pub fn apply(&mut self, observation: &Observation) -> Result<(), String> {
        match observation {
            Observation::Role {
                node,
                partition,
                term,
                leader,
            } => {
                let replica = &mut self.replicas[*node][*partition];
                replica.term = *term;
                replica.leader = *leader;
            }
            Observation::Appended {
                node,
                partition,
                entries,
            } => self.replicas[*node][*partition].log.append(entries)?,
            Observation::Committed {
                node,
                partition,
                commit,
            } => {
                let replica = &mut self.replicas[*node][*partition];
                let previous = replica.commit;
                replica.commit = *commit;
                let (log, term) = (&replica.log, replica.term);
                let committed = &mut self.committed[*partition];
                while (committed.len() as u64) < *commit {
                    committed.push(None);
                }
                // Record the newly covered entries; a slot stays empty only while every replica
                // that committed it had it compacted.
                let first = previous.max(log.floor_index()) + 1;
                for index in first..=(*commit).min(log.last_index()) {
                    let slot = &mut committed[(index - 1) as usize];
                    if slot.is_none() {
                        *slot = log.get(index).map(|entry| CommittedEntry {
                            entry: *entry,
                            commit_term: term,
                        });
                    }
                }
            }
            Observation::Delivered {
                node,
                partition,
                entry,
            } => self.replicas[*node][*partition].delivered = entry.index,
            Observation::Compacted {
                node,
                partition,
                floor,
            } => self.replicas[*node][*partition].log.compact(*floor),
            Observation::Crashed { node } => {
                for replica in &mut self.replicas[*node] {
                    replica.up = false;
                    replica.leader = false;
                }
            }
            Observation::Restarted {
                node,
                partition,
                term,
                log,
                commit,
                delivered,
            } => {
                let replica = &mut self.replicas[*node][*partition];
                *replica = ReplicaView {
                    up: true,
                    incarnation: replica.incarnation + 1,
                    term: *term,
                    leader: false,
                    log: log.clone(),
                    commit: *commit,
                    delivered: *delivered,
                };
            }
            Observation::SnapshotInstalled {
                node,
                partition,
                index,
                term,
            } => {
                let replica = &mut self.replicas[*node][*partition];
                replica.log.install(*index, *term);
                replica.commit = replica.commit.max(*index);
                replica.delivered = replica.delivered.max(*index);
            }
            Observation::Acknowledged { .. } => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{ObservedEntry, ObservedKind, ObservedLog};

    fn log(terms: &[u64]) -> ObservedLog {
        let entries = terms
            .iter()
            .enumerate()
            .map(|(k, &term)| ObservedEntry {
                index: k as u64 + 1,
                term,
                id: 0,
                kind: ObservedKind::Noop,
            })
            .collect();
        ObservedLog::new(0, 0, entries)
    }

    #[test]
    fn install_keeps_the_suffix_after_a_matching_entry_only() {
        let mut matching = log(&[1, 1, 2, 2]);
        matching.install(2, 1);
        assert_eq!((matching.floor_index(), matching.last_index()), (2, 4));
        assert_eq!(matching.term_at(3), Some(2));
        let mut conflicting = log(&[1, 1, 2, 2]);
        conflicting.install(3, 3);
        assert_eq!(
            (conflicting.floor_index(), conflicting.last_index()),
            (3, 3)
        );
        assert_eq!(conflicting.term_at(3), Some(3));
        let mut beyond = log(&[1, 1]);
        beyond.install(5, 2);
        assert_eq!((beyond.floor_index(), beyond.last_index()), (5, 5));
    }
}
