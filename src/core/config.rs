//! Configuration of one replica: identity, membership, timing in ticks and every limit.

use super::configuration::{Configuration, ConfigurationError};
use super::types::{NodeId, PartitionId};

/// The largest `resolved_tickets_max`: the remembered resolutions are searched one by one
/// when a commit or rollback is asked again, and held per partition.
pub(crate) const RESOLVED_TICKETS_MAX: usize = 65_536;

/// Configuration of one [`Replica`](super::Replica). Build it with [`ReplicaConfig::new`] and
/// override fields with struct-update syntax; [`ReplicaConfig::validate`] runs when the replica
/// is created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaConfig {
    /// This replica's node id.
    pub id: NodeId,
    /// The partition this replica belongs to.
    pub partition: PartitionId,
    /// The partition's first configuration's voters: the nodes that vote and count towards
    /// quorums while the log holds no configuration entry and the floor none
    /// ([`DurableState::floor_configuration`](super::DurableState)). `id` may be absent: a node
    /// waiting to be added never campaigns.
    pub voters: Vec<NodeId>,
    /// The first configuration's learners: nodes that receive the log but never vote and never
    /// count (may include `id`).
    pub learners: Vec<NodeId>,
    /// Lower bound (inclusive) of the randomized election timeout, in ticks.
    pub election_timeout_ticks_min: u32,
    /// Upper bound (exclusive) of the randomized election timeout, in ticks.
    pub election_timeout_ticks_max: u32,
    /// Leader heartbeat period, in ticks (must be below `election_timeout_ticks_min`).
    pub heartbeat_interval_ticks: u32,
    /// Leader steps down if a quorum of voters was not heard from within an election timeout;
    /// followers then also ignore vote requests while their leader is alive (leader lease).
    pub check_quorum: bool,
    /// Seed of the deterministic PRNG drawing election timeouts (mixed with id and partition).
    pub seed: u64,
    /// Maximum AppendRequests in flight to one follower in the replicate state.
    pub inflight_messages_max: usize,
    /// Maximum entry bytes in flight to one follower.
    pub inflight_bytes_max: u64,
    /// Maximum entries in one AppendRequest.
    pub append_entries_max: usize,
    /// Maximum entry bytes in one AppendRequest (at least one entry is always sent).
    pub append_bytes_max: u64,
    /// Maximum entries the leader holds uncommitted; further proposals get
    /// [`Status::ProposalQueueFull`](super::Status::ProposalQueueFull).
    pub uncommitted_entries_max: usize,
    /// Maximum uncommitted entry bytes on the leader.
    pub uncommitted_bytes_max: u64,
    /// Maximum pending ReadIndex requests on the leader.
    pub read_index_pending_max: usize,
    /// Entries a leader keeps in memory below the applied checkpoint for followers that still
    /// need them (0: none; such followers need a snapshot).
    pub compaction_retain_entries_max: u64,
    /// Maximum committed entries handed out in one Ready (bounds the work of one loop turn,
    /// e.g. after a restart with a long committed tail; the rest follows in later Readies).
    pub deliver_entries_max: usize,
    /// Two-phase tickets whose resolution the replica remembers after delivering it, so that a
    /// commit or rollback asked again (its answer lost) is answered again rather than
    /// `ProposalNotFound` (0: none; at most `RESOLVED_TICKETS_MAX`, 65 536). The newest are kept; a
    /// restart keeps those the log replays.
    pub resolved_tickets_max: usize,
    /// Largest accepted jump between this replica's term and a message's term. A message
    /// further ahead is treated as garbage: no replica can be that far ahead with pre-vote.
    pub term_gap_max: u64,
    /// A leader idle this many ticks in a row, with every member caught up, quiesces its
    /// partition: it stops heartbeating and its followers stop their election timers
    /// (decision 0007). 0: never (the default here: a quiesced follower campaigns only when
    /// its runtime tells it that the leader's node is dead, [`Replica::leader_node_dead`], so
    /// only a runtime that watches node liveness may turn it on). Otherwise at least
    /// `election_timeout_ticks_min`.
    ///
    /// [`Replica::leader_node_dead`]: super::Replica::leader_node_dead
    pub quiesce_after_ticks: u32,
    /// Votes of a replica whose log may have lost votes it cast (a data directory admitted to
    /// the cluster anew, e.g. after a disk replacement): while neither the configuration this
    /// replica knows committed nor the candidate's carries at least this configuration version
    /// ([`Replica::set_configuration_version`](crate::core::Replica::set_configuration_version)),
    /// the replica grants no vote or pre-vote and does not campaign. The layer above numbers
    /// configurations and sets this to the version that admitted the data directory, so that
    /// the replica votes only once its demotion (the first configuration of that version) is
    /// committed where the vote counts (decision 0004, "A replaced disk's vote"). 0: no
    /// restriction.
    pub votes_withheld_below_version: u64,
    /// Simulator sensitivity hooks (feature `sim-bugs` only): the bug to inject, if any.
    #[cfg(feature = "sim-bugs")]
    pub bug: Option<InjectedBug>,
}

/// A known Raft bug the simulator must catch (feature `sim-bugs`). With the feature off none of
/// this code exists.
#[cfg(feature = "sim-bugs")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InjectedBug {
    /// Acknowledge before persist: followers send append acks immediately and the leader counts
    /// its own entries as durable as soon as it appends them.
    AckBeforePersist,
    /// Followers accept appends without checking the term at `prev_log_index`.
    SkipPrevLogCheck,
    /// Grant a vote even after voting for another candidate in the same term.
    DoubleVote,
    /// Advance the commit index on a quorum match of an entry from an older term (figure 8).
    CommitOldTermByCounting,
    /// Deliver each batch of committed entries in reverse order.
    DeliverOutOfOrder,
    /// A new leader drops its uncommitted tail and reissues those indices.
    ReuseIndexAfterLeaderChange,
    /// A leader accepts a configuration change before the no-op of its term has committed (the
    /// single-server change bug Ongaro described in 2015).
    ConfigurationBeforeNoOpCommits,
    /// A leader accepts a configuration change while another one is still uncommitted.
    ConcurrentConfigurationChanges,
    /// Candidates ask learners for their votes and count them as if they were voters.
    LearnerVoteCounted,
}

#[cfg(feature = "sim-bugs")]
impl InjectedBug {
    /// Every injectable bug.
    pub const ALL: [Self; 9] = [
        Self::AckBeforePersist,
        Self::SkipPrevLogCheck,
        Self::DoubleVote,
        Self::CommitOldTermByCounting,
        Self::DeliverOutOfOrder,
        Self::ReuseIndexAfterLeaderChange,
        Self::ConfigurationBeforeNoOpCommits,
        Self::ConcurrentConfigurationChanges,
        Self::LearnerVoteCounted,
    ];
}

/// A configuration or restore input that cannot be used.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplicaConfigError {
    /// A field has an invalid value.
    #[error("invalid config field `{field}`: {reason}")]
    InvalidField {
        /// The field name.
        field: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// The durable state handed to the replica is inconsistent.
    #[error("invalid durable state: {0}")]
    InvalidDurableState(&'static str),
}

impl ReplicaConfig {
    /// A configuration with the defaults: election timeout 10–20 ticks, heartbeat every 2
    /// ticks, check-quorum on, no quiescence, 256 messages / 8 MiB in flight per follower, 1024 entries / 1 MiB
    /// per append, 65 536 entries / 64 MiB uncommitted, 1024 pending reads, 4096 entries
    /// delivered per Ready, 8192 entries retained below a checkpoint for lagging followers.
    #[must_use]
    pub fn new(id: NodeId, partition: PartitionId, voters: Vec<NodeId>) -> Self {
        Self {
            id,
            partition,
            voters,
            learners: Vec::new(),
            election_timeout_ticks_min: 10,
            election_timeout_ticks_max: 20,
            heartbeat_interval_ticks: 2,
            check_quorum: true,
            seed: 0,
            inflight_messages_max: 256,
            inflight_bytes_max: 8 << 20,
            append_entries_max: 1024,
            append_bytes_max: 1 << 20,
            uncommitted_entries_max: 65_536,
            uncommitted_bytes_max: 64 << 20,
            read_index_pending_max: 1024,
            deliver_entries_max: 4096,
            compaction_retain_entries_max: 8192,
            resolved_tickets_max: 128,
            term_gap_max: 1 << 32,
            quiesce_after_ticks: 0,
            votes_withheld_below_version: 0,
            #[cfg(feature = "sim-bugs")]
            bug: None,
        }
    }

    /// Checks every field.
    ///
    /// # Errors
    ///
    /// [`ReplicaConfigError::InvalidField`] naming the first invalid field.
    pub fn validate(&self) -> Result<(), ReplicaConfigError> {
        let invalid = |field, reason| Err(ReplicaConfigError::InvalidField { field, reason });
        if self.id == NodeId::ZERO {
            return invalid("id", "node id 0 is reserved");
        }
        self.first_configuration()?;
        if self.election_timeout_ticks_min == 0 {
            return invalid("election_timeout_ticks_min", "must be positive");
        }
        if self.election_timeout_ticks_max <= self.election_timeout_ticks_min {
            return invalid(
                "election_timeout_ticks_max",
                "must be greater than election_timeout_ticks_min",
            );
        }
        if self.heartbeat_interval_ticks == 0
            || self.heartbeat_interval_ticks >= self.election_timeout_ticks_min
        {
            return invalid(
                "heartbeat_interval_ticks",
                "must be positive and below election_timeout_ticks_min",
            );
        }
        let positive: [(&'static str, u64); 8] = [
            ("inflight_messages_max", self.inflight_messages_max as u64),
            ("inflight_bytes_max", self.inflight_bytes_max),
            ("append_entries_max", self.append_entries_max as u64),
            ("append_bytes_max", self.append_bytes_max),
            (
                "uncommitted_entries_max",
                self.uncommitted_entries_max as u64,
            ),
            ("uncommitted_bytes_max", self.uncommitted_bytes_max),
            ("read_index_pending_max", self.read_index_pending_max as u64),
            ("deliver_entries_max", self.deliver_entries_max as u64),
        ];
        for (field, value) in positive {
            if value == 0 {
                return invalid(field, "must be positive");
            }
        }
        if self.quiesce_after_ticks != 0
            && self.quiesce_after_ticks < self.election_timeout_ticks_min
        {
            return invalid(
                "quiesce_after_ticks",
                "0 (never) or at least election_timeout_ticks_min",
            );
        }
        if self.term_gap_max == 0 {
            return invalid("term_gap_max", "must be positive");
        }
        if self.resolved_tickets_max > RESOLVED_TICKETS_MAX {
            return invalid(
                "resolved_tickets_max",
                "at most RESOLVED_TICKETS_MAX (65536)",
            );
        }
        Ok(())
    }

    /// The first configuration, from `voters` and `learners`.
    ///
    /// # Errors
    ///
    /// [`ReplicaConfigError::InvalidField`] as [`ReplicaConfig::validate`] reports it.
    pub fn first_configuration(&self) -> Result<Configuration, ReplicaConfigError> {
        let reason = match Configuration::new(self.voters.clone(), self.learners.clone()) {
            Ok(configuration) => return Ok(configuration),
            Err(ConfigurationError::NoVoter) => "at least one voter is required",
            Err(ConfigurationError::ReservedId) => "node id 0 is reserved",
            Err(ConfigurationError::TooManyMembers) => {
                "more members than CONFIGURATION_MEMBERS_MAX"
            }
            Err(_) => "a node is listed twice (voters and learners are disjoint)",
        };
        Err(ReplicaConfigError::InvalidField {
            field: "voters",
            reason,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> ReplicaConfig {
        ReplicaConfig::new(
            NodeId(1),
            PartitionId(1),
            vec![NodeId(1), NodeId(2), NodeId(3)],
        )
    }

    #[test]
    fn defaults_are_valid() {
        assert_eq!(base().validate(), Ok(()));
    }

    #[test]
    fn invalid_fields_are_named() {
        let cases: Vec<(ReplicaConfig, &str)> = vec![
            (
                ReplicaConfig {
                    id: NodeId(0),
                    ..base()
                },
                "id",
            ),
            (
                ReplicaConfig {
                    voters: vec![],
                    ..base()
                },
                "voters",
            ),
            (
                ReplicaConfig {
                    learners: vec![NodeId(2)],
                    ..base()
                },
                "voters",
            ),
            (
                ReplicaConfig {
                    election_timeout_ticks_max: 10,
                    ..base()
                },
                "election_timeout_ticks_max",
            ),
            (
                ReplicaConfig {
                    heartbeat_interval_ticks: 10,
                    ..base()
                },
                "heartbeat_interval_ticks",
            ),
            (
                ReplicaConfig {
                    inflight_messages_max: 0,
                    ..base()
                },
                "inflight_messages_max",
            ),
            (
                ReplicaConfig {
                    append_bytes_max: 0,
                    ..base()
                },
                "append_bytes_max",
            ),
            (
                ReplicaConfig {
                    resolved_tickets_max: RESOLVED_TICKETS_MAX + 1,
                    ..base()
                },
                "resolved_tickets_max",
            ),
        ];
        for (config, expected) in cases {
            match config.validate() {
                Err(ReplicaConfigError::InvalidField { field, .. }) => assert_eq!(field, expected),
                other => panic!("expected an error naming {expected}, got {other:?}"),
            }
        }
    }
}
