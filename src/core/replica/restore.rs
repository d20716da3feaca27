//! Construction: a replica from its configuration and what survived the last crash, with the
//! durable state checked for consistency before anything trusts it.

use super::*;

/// What survived a crash: the runtime reads it back from its WAL and hands it to
/// [`Replica::new`]. A fresh replica starts from [`DurableState::default`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DurableState {
    /// The last durable hard state.
    pub hard_state: HardState,
    /// The compaction floor: entries at or below it are gone (0 when nothing was compacted).
    pub floor: LogIndex,
    /// The term of the entry at `floor`.
    pub floor_term: Term,
    /// The configuration in force at `floor` (kept with the floor when it moved), or `None`
    /// for the first configuration, [`ReplicaConfig::voters`] and
    /// [`ReplicaConfig::learners`]. Configuration entries above the floor govern after it.
    pub floor_configuration: Option<Configuration>,
    /// Every durable entry above `floor`, in order.
    pub entries: Vec<Entry>,
    /// The application's durable applied index: entries up to it are not delivered again. It
    /// may lie beyond the log: an installed snapshot whose boundary did not reach the log
    /// before a crash (the application imported it first). Delivery then resumes once the
    /// commit index passes it; the entries that commit up to it are, by state-machine safety,
    /// the ones the snapshot holds.
    pub applied: LogIndex,
}

impl Replica {
    /// Creates a replica from its configuration and what survived the last crash.
    ///
    /// # Errors
    ///
    /// [`ReplicaConfigError::InvalidField`] for an invalid config,
    /// [`ReplicaConfigError::InvalidDurableState`] when the durable state is inconsistent (gaps,
    /// decreasing terms, applied below the floor, a configuration entry that does not decode).
    pub fn new(config: ReplicaConfig, durable: DurableState) -> Result<Self, ReplicaConfigError> {
        config.validate()?;
        let bad = |reason| Err(ReplicaConfigError::InvalidDurableState(reason));
        let DurableState {
            hard_state,
            floor,
            floor_term,
            floor_configuration,
            entries,
            applied,
        } = durable;
        if floor.0 >= INDEX_ABSURD
            || hard_state.term.0 >= INDEX_ABSURD
            || floor_term.0 >= INDEX_ABSURD
        {
            return bad("floor or term is absurdly large");
        }
        // An installed snapshot is made durable before the replica is told (see
        // `install_snapshot`), while the term learned from the snapshot's sender may still sit
        // in a Ready that was not flushed. A crash in between leaves the floor's term ahead of
        // the durable term: adopt it, with no vote. That is safe: a vote leaves this node only
        // once it is durable, and no vote of that term is.
        let hard_state = if floor_term > hard_state.term {
            HardState {
                term: floor_term,
                vote: None,
                commit: hard_state.commit,
            }
        } else {
            hard_state
        };
        let mut expected = floor.next();
        let mut last_term = floor_term;
        for e in &entries {
            if e.index != expected {
                return bad("entries are not contiguous above the floor");
            }
            if e.term < last_term {
                return bad("entry terms decrease");
            }
            expected = expected.next();
            last_term = e.term;
        }
        if last_term > hard_state.term {
            return bad("an entry's term is above the hard state's term");
        }
        let last = expected.prev();
        if applied < floor || applied.0 >= INDEX_ABSURD {
            return bad("applied index below the floor or absurdly large");
        }
        let base = match floor_configuration {
            Some(configuration) => configuration,
            None => config.first_configuration()?,
        };
        let mut configurations = Configurations::new(floor, base);
        for e in entries
            .iter()
            .filter(|e| e.kind == EntryKind::Configuration)
        {
            let Ok(configuration) = Configuration::decode(&e.payload) else {
                return bad("a configuration entry does not decode");
            };
            configurations.push(e.index, configuration);
        }
        let mut log = RaftLog::new(floor, floor_term, entries);
        // The commit index is written lazily and may run ahead of a log whose unsynced tail was
        // lost; it is only knowledge, re-learned from the leader.
        log.committed = hard_state
            .commit
            .min(last)
            .max(applied.min(last))
            .max(floor);
        let mut holds = Holds::default();
        let mut checkpoints = VecDeque::new();
        for e in log.range(floor.next(), log.last_index()) {
            if e.index > applied {
                holds.on_append(e);
            } else if e.kind == EntryKind::Checkpoint {
                checkpoints.push_back(e.index);
            }
        }
        let seed = config.seed
            ^ config.id.0.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ u64::from(config.partition.0).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
        let mut replica = Self {
            configurations,
            term: hard_state.term,
            vote: hard_state.vote,
            leader: None,
            leader_commit: LogIndex::ZERO,
            role: Role::Follower,
            log,
            holds,
            delivered: applied,
            applied,
            checkpoints,
            checkpoint_floor: floor,
            rng: SplitMix64::new(seed),
            election_elapsed: 0,
            heartbeat_elapsed: 0,
            quiescence: Quiescence::ACTIVE,
            prev_quiesced: false,
            randomized_timeout: 0,
            votes: Vec::new(),
            progress: Vec::new(),
            transferee: None,
            transfer_elapsed: 0,
            heartbeats_suspended: false,
            pending_ops: VecDeque::new(),
            uncommitted_entries: 0,
            uncommitted_bytes: 0,
            read_round: 0,
            reads: VecDeque::new(),
            scratch: Vec::new(),
            messages: Vec::new(),
            persisted_messages: Vec::new(),
            read_states: Vec::new(),
            outcomes: Vec::new(),
            snapshot_required: Vec::new(),
            snapshot_messages: Vec::new(),
            compaction_floor: None,
            installed_snapshot: None,
            prev_hard_state: HardState {
                commit: hard_state.commit,
                ..hard_state
            },
            prev_soft_state: SoftState {
                role: Role::Follower,
                leader: None,
                term: hard_state.term,
                noop_committed: false,
            },
            ready_number: 0,
            pending_persist: VecDeque::new(),
            pending_terms: VecDeque::new(),
            durable_term: hard_state.term,
            configuration_version: 0,
            config,
        };
        replica.sync_progress();
        replica.reset_election_timeout();
        replica.compact_applied_checkpoints();
        Ok(replica)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::core::replica) fn config() -> ReplicaConfig {
        ReplicaConfig::new(
            NodeId(1),
            PartitionId(1),
            vec![NodeId(1), NodeId(2), NodeId(3)],
        )
    }

    fn entry(index: u64, term: u64, kind: EntryKind, ticket: u64, auto_commit: bool) -> Entry {
        Entry {
            index: LogIndex(index),
            term: Term(term),
            kind,
            ticket: Ticket(ticket),
            auto_commit,
            payload: Bytes::new(),
        }
    }

    pub(in crate::core::replica) fn normal(index: u64, term: u64) -> Entry {
        entry(index, term, EntryKind::Normal, index, true)
    }

    pub(in crate::core::replica) fn durable(
        entries: Vec<Entry>,
        commit: u64,
        applied: u64,
    ) -> DurableState {
        DurableState {
            hard_state: HardState {
                term: Term(3),
                vote: None,
                commit: LogIndex(commit),
            },
            entries,
            applied: LogIndex(applied),
            ..DurableState::default()
        }
    }

    #[test]
    fn inconsistent_durable_state_is_refused() {
        let cases = [
            durable(vec![normal(1, 1), normal(3, 1)], 0, 0),
            durable(vec![normal(1, 2), normal(2, 1)], 0, 0),
            durable(vec![normal(1, 4)], 0, 0),
            // Applied below the floor (beyond the log is allowed: see `DurableState::applied`).
            DurableState {
                floor: LogIndex(2),
                floor_term: Term(1),
                ..durable(vec![normal(3, 1)], 3, 1)
            },
            durable(
                vec![Entry {
                    kind: EntryKind::Configuration,
                    payload: Bytes::from_static(b"\x01garbage"),
                    ..normal(1, 1)
                }],
                0,
                0,
            ),
        ];
        for state in cases {
            let result = Replica::new(config(), state.clone());
            assert!(
                matches!(result, Err(ReplicaConfigError::InvalidDurableState(_))),
                "{state:?} must be refused"
            );
        }
    }

    #[test]
    fn a_snapshot_floor_ahead_of_the_durable_term_is_adopted_without_a_vote() {
        // Crash after a snapshot was made durable but before the term learned from its sender
        // was flushed (found by the simulator, seed 6634).
        let state = DurableState {
            hard_state: HardState {
                term: Term(44),
                vote: Some(NodeId(2)),
                commit: LogIndex(3144),
            },
            floor: LogIndex(3234),
            floor_term: Term(45),
            applied: LogIndex(3234),
            ..DurableState::default()
        };
        let replica = Replica::new(config(), state).expect("restorable");
        assert_eq!(replica.term(), Term(45));
        assert_eq!(replica.vote(), None);
        assert_eq!(replica.last_index(), LogIndex(3234));
        let mut later = DurableState {
            hard_state: HardState {
                term: Term(2),
                ..HardState::default()
            },
            floor: LogIndex(1),
            floor_term: Term(3),
            applied: LogIndex(1),
            ..DurableState::default()
        };
        later.entries = vec![normal(2, 4)];
        assert!(
            matches!(
                Replica::new(config(), later),
                Err(ReplicaConfigError::InvalidDurableState(_))
            ),
            "an entry above the durable term is still refused"
        );
    }

    #[test]
    fn restore_delivers_committed_entries_after_applied_once_and_keeps_holds() {
        let entries = vec![
            normal(1, 1),
            normal(2, 1),
            entry(3, 1, EntryKind::Normal, 77, false),
            normal(4, 1),
            entry(5, 2, EntryKind::Commit, 77, true),
            normal(6, 2),
        ];
        let mut replica =
            Replica::new(config(), durable(entries, 9, 1)).expect("valid durable state");
        assert_eq!(
            replica.commit_index(),
            LogIndex(6),
            "lazy commit clamped to the log"
        );
        let ready = replica.ready();
        let delivered: Vec<u64> = ready.committed_entries.iter().map(|e| e.index.0).collect();
        assert_eq!(
            delivered,
            vec![2, 3, 4, 6],
            "after applied, held one resolved by marker"
        );
        assert_eq!(ready.committed_through, LogIndex(6));
        replica.applied(ready.committed_through);
        assert!(!replica.has_ready());
    }

    #[test]
    fn restore_holds_an_unresolved_two_phase_entry() {
        let entries = vec![entry(1, 1, EntryKind::Normal, 5, false), normal(2, 1)];
        let mut replica = Replica::new(config(), durable(entries, 2, 0)).expect("valid");
        assert!(!replica.has_ready(), "held: nothing deliverable");
        let ready = replica.ready();
        assert!(ready.committed_entries.is_empty());
        assert_eq!(ready.committed_through, LogIndex(0));
    }
}
