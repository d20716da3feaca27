//! Configuration changes through the partition's own log (Raft thesis §4.1, with the fix of
//! 2015 for single-server changes): a leader appends a configuration entry only once the no-op
//! of its term has committed and no other configuration entry is uncommitted, and the new
//! voters differ from the current ones by at most one node. Every replica is governed by the
//! latest configuration in its log, committed or not; a leader that a committed configuration
//! no longer lists as a voter steps down.

use super::*;

impl Replica {
    /// The configuration in force: the latest in this replica's log, committed or not.
    #[must_use]
    pub fn configuration(&self) -> &Configuration {
        self.configurations.current()
    }

    /// The index of the configuration in force: its entry's, or the log floor's when no
    /// configuration entry is above it.
    #[must_use]
    pub(crate) fn configuration_index(&self) -> LogIndex {
        self.configurations.current_index()
    }

    /// The latest committed configuration (as far as this replica knows the commit index).
    #[must_use]
    pub fn committed_configuration(&self) -> &Configuration {
        // The commit index is at or above the floor, where the history starts.
        self.configurations
            .at(self.log.committed)
            .unwrap_or_else(|| self.configurations.current())
    }

    /// The configuration in force at `index` (for a snapshot at `index`); `None` below the
    /// in-memory floor.
    #[must_use]
    pub fn configuration_at(&self, index: LogIndex) -> Option<&Configuration> {
        if index > self.log.last_index() {
            return None;
        }
        self.configurations.at(index)
    }

    /// Tells the replica the version the layer above gives its committed configuration (the
    /// roster version the configuration follows, for this crate's shards): carried in its
    /// vote requests, and what lifts [`ReplicaConfig::votes_withheld_below_version`]. Never
    /// lowers the version known.
    pub fn set_configuration_version(&mut self, version: u64) {
        self.configuration_version = self.configuration_version.max(version);
    }

    /// Whether this replica withholds its votes and does not campaign: the committed
    /// configuration it knows has a version below
    /// [`ReplicaConfig::votes_withheld_below_version`]. It still grants a candidate whose own
    /// committed configuration reaches that version.
    #[must_use]
    pub fn votes_withheld(&self) -> bool {
        self.configuration_version < self.config.votes_withheld_below_version
    }

    /// Whether a configuration entry is in the log but not yet committed.
    #[must_use]
    pub fn configuration_change_pending(&self) -> bool {
        self.configurations.current_index() > self.log.committed
    }

    /// Proposes `configuration` as the partition's new one. It is in force on this leader at
    /// once (and on each follower as soon as it appends it); its outcome arrives in a later
    /// Ready, as an [`Outcome`] of kind [`EntryKind::Configuration`] with `ticket`.
    ///
    /// # Errors
    ///
    /// [`Status::NodeIsNotLeader`] (also during a leadership transfer),
    /// [`Status::ConcurrentMembershipChange`] while the no-op of this leader's term is not
    /// committed (a configuration of an earlier leader may still be in flight) or another
    /// configuration entry is uncommitted, [`Status::Errored`] when the voters would change by
    /// more than one node, [`Status::ProposalQueueFull`].
    pub fn propose_configuration(
        &mut self,
        ticket: Ticket,
        configuration: Configuration,
    ) -> Result<LogIndex, Status> {
        self.check_can_propose()?;
        #[allow(unused_mut)]
        let mut wait_for_noop = true;
        #[cfg(feature = "sim-bugs")]
        if self.bug(InjectedBug::ConfigurationBeforeNoOpCommits) {
            wait_for_noop = false;
        }
        if wait_for_noop && !self.committed_in_term() {
            return Err(Status::ConcurrentMembershipChange);
        }
        #[allow(unused_mut)]
        let mut one_at_a_time = true;
        #[cfg(feature = "sim-bugs")]
        if self.bug(InjectedBug::ConcurrentConfigurationChanges) {
            one_at_a_time = false;
        }
        if one_at_a_time && self.configuration_change_pending() {
            return Err(Status::ConcurrentMembershipChange);
        }
        if self.configuration().voter_changes(&configuration) > 1 {
            return Err(Status::Errored);
        }
        let payload = configuration.encode();
        self.check_uncommitted_room(1, Entry::size_bytes_for(payload.len()))?;
        let index = self.leader_append(EntryKind::Configuration, ticket, true, payload);
        self.configuration_appended(index, configuration);
        self.pending_ops.push_back(PendingOp {
            last: index,
            ticket,
            kind: EntryKind::Configuration,
        });
        Ok(index)
    }

    /// A configuration entry entered the log at `index`: it governs from now on.
    pub(super) fn configuration_appended(&mut self, index: LogIndex, configuration: Configuration) {
        self.configurations.push(index, configuration);
        self.sync_progress();
    }

    /// Removes every log entry from `index` on, with what was derived from them: holds and
    /// configurations (the one before governs again).
    pub(super) fn truncate_log_from(&mut self, index: LogIndex) {
        self.log.truncate_from(index);
        self.holds.on_truncate(index);
        if self.configurations.truncate_from(index) {
            self.sync_progress();
        }
    }

    /// Makes the leader's view of its peers match the configuration in force: a progress for
    /// every other member (a new one starts probing at the end of the log, counted as active
    /// for the current check-quorum round), none for a node that left.
    pub(super) fn sync_progress(&mut self) {
        let configuration = self.configurations.current();
        let id = self.config.id;
        let next = self.log.last_index().next();
        self.progress
            .retain(|(node, _)| configuration.is_member(*node));
        // Exactly the members' room: a Vec grows to at least 4, and a replica of 3 nodes
        // keeps 2 progresses (88 B each) for life.
        let others = configuration.members().filter(|&node| node != id).count();
        self.progress
            .reserve_exact(others.saturating_sub(self.progress.len()));
        for node in configuration.members().filter(|&node| node != id) {
            let learner = !configuration.is_voter(node);
            match self.progress.binary_search_by_key(&node, |(n, _)| *n) {
                Ok(k) => self.progress[k].1.learner = learner,
                Err(k) => {
                    let mut progress = Progress::new(next, learner);
                    progress.recent_active = true;
                    self.progress.insert(k, (node, progress));
                }
            }
        }
        if self
            .transferee
            .is_some_and(|target| !configuration.is_voter(target))
        {
            self.transferee = None;
        }
    }

    /// A leader that the committed configuration no longer lists as a voter hands over.
    pub(super) fn step_down_if_removed(&mut self) {
        if self.role == Role::Leader
            && !self.configuration_change_pending()
            && !self.configuration().is_voter(self.config.id)
        {
            // Leading, so the step-down cannot fail.
            let _ = self.step_down();
        }
    }

    /// Votes that make a majority of the voters in force.
    pub(super) fn quorum(&self) -> usize {
        self.configuration().quorum()
    }

    /// Whether this replica is the only voter: it commits and confirms reads alone.
    pub(super) fn is_sole_voter(&self) -> bool {
        self.configuration().voters() == [self.config.id]
    }
}
