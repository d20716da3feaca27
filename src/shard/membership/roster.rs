//! The roster: the cluster's members with their role, endpoint, the roster version they joined
//! at and their incarnation, and the roster's version (Kommander's `ClusterMembership`).
//!
//! The roster *is* partition 0's configuration: its voters are the roster's voters, its
//! learners the roster's learners and leaving members, and the rest of the roster travels in
//! the configuration's context (decision 0004, amended). So it changes through partition 0's
//! log one change at a time, after the leader's no-op of its term has committed, and it is
//! kept at the WAL's floor and carried by snapshots exactly as a configuration is.
//!
//! The context's encoding (little-endian):
//!
//! ```text
//! roster := format:u8 (2) version:u64 target_version:u64 count:u16 member*
//! member := node:u64 role:u8 joined_version:u64 incarnation:u64 endpoint_length:u8 endpoint
//! role   := 0 learner | 1 voter | 2 leaving
//! ```
//!
//! Members are sorted by node id. Format 1 (the previous version's) is read as well: it has no
//! `target_version`, read as the roster's version (every partition restates its members once).
//!
//! A configuration without a context is the *genesis* roster, version 0: the nodes the cluster
//! was started with, endpoints not yet recorded. The first leader of partition 0 restates it
//! with the endpoints as version 1.

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes, BytesMut};

use crate::core::{
    CONFIGURATION_CONTEXT_BYTES_MAX, CONFIGURATION_MEMBERS_MAX, Configuration, ConfigurationError,
    NodeId,
};

/// The longest endpoint a member may have, in bytes of UTF-8.
pub const ENDPOINT_BYTES_MAX: usize = 100;

/// The context format's version byte.
const FORMAT: u8 = 2;
/// The previous format: no `target_version`.
const FORMAT_WITHOUT_TARGET_VERSION: u8 = 1;
const HEADER_LEN: usize = 1 + 8 + 8 + 2;
const MEMBER_FIXED_LEN: usize = 8 + 1 + 8 + 8 + 1;

// A full roster always fits a configuration's context.
const _: () = assert!(
    HEADER_LEN + CONFIGURATION_MEMBERS_MAX * (MEMBER_FIXED_LEN + ENDPOINT_BYTES_MAX)
        <= CONFIGURATION_CONTEXT_BYTES_MAX
);

/// A member's role (Kommander's `ClusterMemberRole`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MemberRole {
    /// Receives every partition's log but never votes: a joining node catching up.
    Learner,
    /// Votes in every partition.
    Voter,
    /// On its way out: no longer a voter anywhere, removed once every partition let it go.
    Leaving,
}

impl MemberRole {
    fn code(self) -> u8 {
        match self {
            Self::Learner => 0,
            Self::Voter => 1,
            Self::Leaving => 2,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Self::Learner),
            1 => Some(Self::Voter),
            2 => Some(Self::Leaving),
            _ => None,
        }
    }
}

/// One member of the roster.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Member {
    /// Its node id.
    pub node: NodeId,
    /// Its role.
    pub role: MemberRole,
    /// Where its peers reach it (`host:port`; empty in the genesis roster).
    pub endpoint: String,
    /// The roster version that added it (0: a node the cluster started with).
    pub joined_version: u64,
    /// The incarnation it joined with: a node that comes back with an empty disk presents
    /// another one (decision 0004 §7). 0 in the genesis roster.
    pub incarnation: u64,
}

/// The cluster's members and the roster's version. Members are sorted by node id.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Roster {
    version: u64,
    /// The version of the last change that altered what the partitions converge to
    /// (`Roster::target_version`).
    target_version: u64,
    members: Vec<Member>,
}

/// A change of the roster, made by the leader of partition 0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RosterChange {
    /// Admit `node` as a learner. Nothing changes when it is a member with this endpoint and
    /// incarnation already. A member that presents another incarnation (its disk was replaced:
    /// it forgot its votes) becomes a learner again with the new incarnation and endpoint.
    Add {
        /// The node.
        node: NodeId,
        /// Where its peers reach it.
        endpoint: String,
        /// Its incarnation.
        incarnation: u64,
    },
    /// Make a learner a voter (nothing changes for a voter).
    Promote {
        /// The node.
        node: NodeId,
    },
    /// Make a voter a learner (nothing changes for a learner): it keeps receiving every
    /// partition's log (Kommander's `TrySetMemberRole`).
    Demote {
        /// The node.
        node: NodeId,
    },
    /// Start taking `node` out: it stops voting everywhere (nothing changes when it is leaving
    /// already).
    Leave {
        /// The node.
        node: NodeId,
    },
    /// Take `node` out of the roster (nothing changes when it is not a member). A learner or
    /// a leaving member goes at once; a voter is made leaving (as `Leave`): it may lead
    /// partitions, and a node dropped from partition 0 while it leads one would never learn
    /// that it must hand it over. Partition 0's leader removes a leaving member once every
    /// partition let it go.
    Remove {
        /// The node.
        node: NodeId,
    },
    /// Record the members' endpoints (the restatement of the genesis roster).
    Endpoints {
        /// Node id → endpoint, for members only.
        endpoints: Vec<(NodeId, String)>,
    },
}

/// Why a roster change was refused, or a roster does not decode.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RosterError {
    /// The change was computed against another roster version (IRaft's `StaleMembership`).
    #[error("the change expects roster version {expected}, the roster is at {current}")]
    Stale {
        /// The version the caller expected.
        expected: u64,
        /// The roster's version.
        current: u64,
    },
    /// The change would leave no voter (IRaft's `InsufficientVoters`).
    #[error("the change would leave the cluster without a voter")]
    InsufficientVoters,
    /// The change names a node that is not a member (IRaft's `MemberNotFound`), or a leaving
    /// member to promote.
    #[error("node {0} is not a member that can take this change")]
    MemberNotFound(NodeId),
    /// Node id 0 is reserved.
    #[error("node id 0 is reserved")]
    ReservedId,
    /// An endpoint is empty, longer than [`ENDPOINT_BYTES_MAX`] bytes or not valid.
    #[error("invalid endpoint {0:?}")]
    InvalidEndpoint(String),
    /// More than [`CONFIGURATION_MEMBERS_MAX`] members.
    #[error("more than {CONFIGURATION_MEMBERS_MAX} members")]
    TooManyMembers,
    /// The configuration's context is not an encoded roster, or disagrees with its voters and
    /// learners.
    #[error("partition 0's configuration does not hold a valid roster")]
    Malformed,
}

impl Roster {
    /// The roster partition 0's `configuration` holds.
    ///
    /// # Errors
    ///
    /// [`RosterError::Malformed`] when the context is not an encoded roster or disagrees with
    /// the configuration's voters and learners.
    pub fn of(configuration: &Configuration) -> Result<Self, RosterError> {
        if configuration.context().is_empty() {
            let member = |node: NodeId, role| Member {
                node,
                role,
                endpoint: String::new(),
                joined_version: 0,
                incarnation: 0,
            };
            let mut members: Vec<Member> = configuration
                .voters()
                .iter()
                .map(|&n| member(n, MemberRole::Voter))
                .chain(
                    configuration
                        .learners()
                        .iter()
                        .map(|&n| member(n, MemberRole::Learner)),
                )
                .collect();
            members.sort_unstable_by_key(|m| m.node);
            return Ok(Self {
                version: 0,
                target_version: 0,
                members,
            });
        }
        let roster = Self::decode(configuration.context()).ok_or(RosterError::Malformed)?;
        let voters: Vec<NodeId> = roster.voters().collect();
        let learners: Vec<NodeId> = roster
            .members
            .iter()
            .filter(|m| m.role != MemberRole::Voter)
            .map(|m| m.node)
            .collect();
        if voters != configuration.voters() || learners != configuration.learners() {
            return Err(RosterError::Malformed);
        }
        Ok(roster)
    }

    /// Partition 0's configuration holding this roster.
    ///
    /// # Errors
    ///
    /// [`RosterError::InsufficientVoters`] for a roster without a voter (never built by
    /// [`Roster::change`]).
    pub fn configuration(&self) -> Result<Configuration, RosterError> {
        let learners = self
            .members
            .iter()
            .filter(|m| m.role != MemberRole::Voter)
            .map(|m| m.node)
            .collect();
        Configuration::new(self.voters().collect(), learners)
            .and_then(|c| c.with_context(self.encode()))
            .map_err(|error| match error {
                ConfigurationError::NoVoter => RosterError::InsufficientVoters,
                ConfigurationError::TooManyMembers | ConfigurationError::ContextTooLong => {
                    RosterError::TooManyMembers
                }
                _ => RosterError::Malformed,
            })
    }

    /// The version of the roster partition 0's `configuration` holds, read from the context's
    /// header alone (0: the genesis roster, or a context that is not a roster).
    pub(crate) fn version_of(configuration: &Configuration) -> u64 {
        read_versions(&mut Cursor(configuration.context())).map_or(0, |(version, _)| version)
    }

    /// The version: bumped by one by every change (0: the genesis roster).
    #[must_use]
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The version of the last change that altered what the partitions converge to: their
    /// voters and learners ([`Roster::partition_target`]), or an admission, which a
    /// partition whose members match already restates (decision 0004, "A replaced disk's
    /// vote"). A partition's configuration made under an older roster is not reconciled even
    /// when its members match by chance (a demotion and a promotion of the same node it did
    /// not follow); one that only records endpoints alters nothing.
    #[must_use]
    pub fn target_version(&self) -> u64 {
        self.target_version
    }

    /// The members, sorted by node id.
    #[must_use]
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// `node`'s entry, if it is a member.
    #[must_use]
    pub fn member(&self, node: NodeId) -> Option<&Member> {
        self.members
            .binary_search_by_key(&node, |m| m.node)
            .ok()
            .map(|i| &self.members[i])
    }

    /// The voters, in node id order.
    pub fn voters(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.members
            .iter()
            .filter(|m| m.role == MemberRole::Voter)
            .map(|m| m.node)
    }

    /// The members but `node` whose endpoint the roster records, with it: the peers a node's
    /// transport talks to (learners and leaving members receive the log too).
    #[must_use]
    pub fn peers_of(&self, node: NodeId) -> BTreeMap<NodeId, String> {
        self.members
            .iter()
            .filter(|m| m.node != node && !m.endpoint.is_empty())
            .map(|m| (m.node, m.endpoint.clone()))
            .collect()
    }

    /// The configuration every other partition converges to: the roster's voters vote, its
    /// learners learn, leaving members are gone.
    #[must_use]
    pub fn partition_target(&self) -> (Vec<NodeId>, Vec<NodeId>) {
        let learners = self
            .members
            .iter()
            .filter(|m| m.role == MemberRole::Learner)
            .map(|m| m.node)
            .collect();
        (self.voters().collect(), learners)
    }

    /// The roster after `change`, with the version bumped, or `None` when the change changes
    /// nothing (an idempotent retry). `expected_version`, when given, must be the current one.
    ///
    /// # Errors
    ///
    /// [`RosterError::Stale`], [`RosterError::InsufficientVoters`] (removing, demoting or
    /// taking out the last voter), [`RosterError::MemberNotFound`] (promoting or demoting a
    /// node that is absent or leaving), [`RosterError::ReservedId`], [`RosterError::InvalidEndpoint`],
    /// [`RosterError::TooManyMembers`].
    pub fn change(
        &self,
        change: &RosterChange,
        expected_version: Option<u64>,
    ) -> Result<Option<Self>, RosterError> {
        if let Some(expected) = expected_version
            && expected != self.version
        {
            return Err(RosterError::Stale {
                expected,
                current: self.version,
            });
        }
        let mut next = self.clone();
        next.version += 1;
        let position = |node: NodeId| self.members.binary_search_by_key(&node, |m| m.node);
        match change {
            RosterChange::Add {
                node,
                endpoint,
                incarnation,
            } => {
                check_node(*node)?;
                check_endpoint(endpoint)?;
                let joining = Member {
                    node: *node,
                    role: MemberRole::Learner,
                    endpoint: endpoint.clone(),
                    joined_version: next.version,
                    incarnation: *incarnation,
                };
                match position(*node) {
                    Ok(i) => {
                        let known = &self.members[i];
                        if known.incarnation == *incarnation && known.endpoint == *endpoint {
                            return Ok(None);
                        }
                        if known.role == MemberRole::Voter && self.voters().count() == 1 {
                            return Err(RosterError::InsufficientVoters);
                        }
                        next.members[i] = joining;
                    }
                    Err(i) => {
                        if self.members.len() >= CONFIGURATION_MEMBERS_MAX {
                            return Err(RosterError::TooManyMembers);
                        }
                        next.members.insert(i, joining);
                    }
                }
            }
            RosterChange::Promote { node } => {
                let i = position(*node).map_err(|_| RosterError::MemberNotFound(*node))?;
                match self.members[i].role {
                    MemberRole::Voter => return Ok(None),
                    MemberRole::Leaving => return Err(RosterError::MemberNotFound(*node)),
                    MemberRole::Learner => next.members[i].role = MemberRole::Voter,
                }
            }
            RosterChange::Demote { node } => {
                let i = position(*node).map_err(|_| RosterError::MemberNotFound(*node))?;
                match self.members[i].role {
                    MemberRole::Learner => return Ok(None),
                    MemberRole::Leaving => return Err(RosterError::MemberNotFound(*node)),
                    MemberRole::Voter if self.voters().count() == 1 => {
                        return Err(RosterError::InsufficientVoters);
                    }
                    MemberRole::Voter => next.members[i].role = MemberRole::Learner,
                }
            }
            RosterChange::Leave { node } => {
                let Ok(i) = position(*node) else {
                    return Ok(None);
                };
                match self.members[i].role {
                    MemberRole::Leaving => return Ok(None),
                    MemberRole::Voter if self.voters().count() == 1 => {
                        return Err(RosterError::InsufficientVoters);
                    }
                    _ => next.members[i].role = MemberRole::Leaving,
                }
            }
            RosterChange::Remove { node } => {
                let Ok(i) = position(*node) else {
                    return Ok(None);
                };
                match self.members[i].role {
                    MemberRole::Voter if self.voters().count() == 1 => {
                        return Err(RosterError::InsufficientVoters);
                    }
                    // A voter may lead partitions: it leaves first, so that it stays in
                    // partition 0 and learns that it must hand them over.
                    MemberRole::Voter => next.members[i].role = MemberRole::Leaving,
                    MemberRole::Learner | MemberRole::Leaving => {
                        next.members.remove(i);
                    }
                }
            }
            RosterChange::Endpoints { endpoints } => {
                let mut changed = false;
                for (node, endpoint) in endpoints {
                    check_endpoint(endpoint)?;
                    let i = position(*node).map_err(|_| RosterError::MemberNotFound(*node))?;
                    changed |= next.members[i].endpoint != *endpoint;
                    next.members[i].endpoint.clone_from(endpoint);
                }
                if !changed {
                    return Ok(None);
                }
            }
        }
        if matches!(change, RosterChange::Add { .. })
            || next.partition_target() != self.partition_target()
        {
            next.target_version = next.version;
        }
        Ok(Some(next))
    }

    /// Partition 0's configuration after `change` ([`Roster::change`] then
    /// [`Roster::configuration`]); `None` when the change changes nothing.
    ///
    /// # Errors
    ///
    /// As [`Roster::change`] and [`Roster::configuration`].
    pub fn configuration_after(
        &self,
        change: &RosterChange,
        expected_version: Option<u64>,
    ) -> Result<Option<Configuration>, RosterError> {
        self.change(change, expected_version)?
            .map(|next| next.configuration())
            .transpose()
    }

    fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(
            HEADER_LEN
                + self
                    .members
                    .iter()
                    .map(|m| MEMBER_FIXED_LEN + m.endpoint.len())
                    .sum::<usize>(),
        );
        out.put_u8(FORMAT);
        out.put_u64_le(self.version);
        out.put_u64_le(self.target_version);
        // At most CONFIGURATION_MEMBERS_MAX members (`change` refuses more).
        out.put_u16_le(self.members.len() as u16);
        for member in &self.members {
            out.put_u64_le(member.node.0);
            out.put_u8(member.role.code());
            out.put_u64_le(member.joined_version);
            out.put_u64_le(member.incarnation);
            // At most ENDPOINT_BYTES_MAX bytes (`change` refuses longer ones).
            out.put_u8(member.endpoint.len() as u8);
            out.put_slice(member.endpoint.as_bytes());
        }
        out.freeze()
    }

    /// The inverse of `encode` (and of format 1's); total: `None` for any bytes that are not
    /// an encoding of a roster with sorted, distinct, non-zero members, valid endpoints and a
    /// target version at most its version.
    fn decode(bytes: &[u8]) -> Option<Self> {
        let mut cursor = Cursor(bytes);
        let (version, target_version) = read_versions(&mut cursor)?;
        if target_version > version {
            return None;
        }
        let count = usize::from(cursor.u16()?);
        if count > CONFIGURATION_MEMBERS_MAX {
            return None;
        }
        let mut members: Vec<Member> = Vec::with_capacity(count);
        for _ in 0..count {
            let node = NodeId(cursor.u64()?);
            let role = MemberRole::from_code(cursor.u8()?)?;
            let joined_version = cursor.u64()?;
            let incarnation = cursor.u64()?;
            let len = usize::from(cursor.u8()?);
            let endpoint = std::str::from_utf8(cursor.take(len)?).ok()?.to_owned();
            let sorted = members.last().is_none_or(|last| last.node < node);
            if node == NodeId::ZERO || !sorted || len > ENDPOINT_BYTES_MAX {
                return None;
            }
            members.push(Member {
                node,
                role,
                endpoint,
                joined_version,
                incarnation,
            });
        }
        cursor.0.is_empty().then_some(Self {
            version,
            target_version,
            members,
        })
    }
}

fn check_node(node: NodeId) -> Result<(), RosterError> {
    if node == NodeId::ZERO {
        return Err(RosterError::ReservedId);
    }
    Ok(())
}

/// Whether `endpoint` may be a member's endpoint: not empty, at most [`ENDPOINT_BYTES_MAX`]
/// bytes, no control character.
///
/// # Errors
///
/// [`RosterError::InvalidEndpoint`].
pub(crate) fn check_endpoint(endpoint: &str) -> Result<(), RosterError> {
    let valid = !endpoint.is_empty()
        && endpoint.len() <= ENDPOINT_BYTES_MAX
        && !endpoint.chars().any(char::is_control);
    if valid {
        Ok(())
    } else {
        Err(RosterError::InvalidEndpoint(endpoint.to_owned()))
    }
}

/// A total reader of little-endian fields.
struct Cursor<'a>(&'a [u8]);

/// The encoding's header up to the member count: the format byte, checked, then the version
/// and the target version (format 1: the version).
fn read_versions(cursor: &mut Cursor<'_>) -> Option<(u64, u64)> {
    let format = cursor.u8()?;
    let version = cursor.u64()?;
    match format {
        FORMAT => Some((version, cursor.u64()?)),
        FORMAT_WITHOUT_TARGET_VERSION => Some((version, version)),
        _ => None,
    }
}

impl<'a> Cursor<'a> {
    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        if self.0.len() < len {
            return None;
        }
        let (head, rest) = self.0.split_at(len);
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }

    fn u64(&mut self) -> Option<u64> {
        let mut word = [0u8; 8];
        word.copy_from_slice(self.take(8)?);
        Some(u64::from_le_bytes(word))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[u64]) -> Vec<NodeId> {
        list.iter().copied().map(NodeId).collect()
    }

    fn genesis(voters: &[u64]) -> Roster {
        Roster::of(&Configuration::new(ids(voters), Vec::new()).expect("valid")).expect("genesis")
    }

    fn changed(roster: &Roster, change: RosterChange) -> Roster {
        roster
            .change(&change, Some(roster.version()))
            .expect("accepted")
            .expect("a change")
    }

    /// The genesis roster of nodes 1 and 2 with node 1's endpoint recorded (version 1).
    fn with_one_endpoint() -> Roster {
        changed(
            &genesis(&[1, 2]),
            RosterChange::Endpoints {
                endpoints: vec![(NodeId(1), "a:1".into())],
            },
        )
    }

    /// A configuration of `voters` and `learners` whose context is `context`.
    fn carrying(voters: &[u64], learners: &[u64], context: impl Into<Bytes>) -> Configuration {
        Configuration::new(ids(voters), ids(learners))
            .and_then(|c| c.with_context(context.into()))
            .expect("valid")
    }

    #[test]
    fn a_configuration_without_context_is_the_genesis_roster() {
        let roster = genesis(&[3, 1, 2]);
        assert_eq!(roster.version(), 0);
        assert_eq!(roster.voters().collect::<Vec<_>>(), ids(&[1, 2, 3]));
        assert!(roster.members().iter().all(|m| m.endpoint.is_empty()));
    }

    #[test]
    fn the_roster_round_trips_through_partition_zeros_configuration() {
        let mut roster = genesis(&[1, 2]);
        roster = changed(
            &roster,
            RosterChange::Endpoints {
                endpoints: vec![(NodeId(1), "a:1".into()), (NodeId(2), "b:1".into())],
            },
        );
        roster = changed(
            &roster,
            RosterChange::Add {
                node: NodeId(5),
                endpoint: "e:1".into(),
                incarnation: 77,
            },
        );
        roster = changed(&roster, RosterChange::Leave { node: NodeId(2) });
        assert_eq!(roster.version(), 3);
        let configuration = roster.configuration().expect("valid");
        assert_eq!(configuration.voters(), ids(&[1]).as_slice());
        assert_eq!(configuration.learners(), ids(&[2, 5]).as_slice());
        let back = Roster::of(&Configuration::decode(&configuration.encode()).expect("decodes"))
            .expect("a roster");
        assert_eq!(back, roster);
        assert_eq!(back.member(NodeId(5)).map(|m| m.joined_version), Some(2));
        assert_eq!(roster.partition_target(), (ids(&[1]), ids(&[5])));
    }

    #[test]
    fn the_target_version_follows_the_partitions_target_and_admissions_only() {
        let roster = genesis(&[1, 2]);
        assert_eq!(roster.target_version(), 0);
        let endpoints = changed(
            &roster,
            RosterChange::Endpoints {
                endpoints: vec![(NodeId(1), "a:1".into()), (NodeId(2), "b:1".into())],
            },
        );
        assert_eq!((endpoints.version(), endpoints.target_version()), (1, 0));
        let added = changed(
            &endpoints,
            RosterChange::Add {
                node: NodeId(3),
                endpoint: "c:1".into(),
                incarnation: 1,
            },
        );
        assert_eq!(added.target_version(), 2);
        // A learner admitted again: its partitions' members do not change, its vote does.
        let readmitted = changed(
            &added,
            RosterChange::Add {
                node: NodeId(3),
                endpoint: "c:1".into(),
                incarnation: 2,
            },
        );
        assert_eq!(readmitted.partition_target(), added.partition_target());
        assert_eq!(readmitted.target_version(), 3);
        let leaving = changed(&readmitted, RosterChange::Leave { node: NodeId(2) });
        assert_eq!(leaving.target_version(), 4);
        // A leaving member is out of every partition's target already.
        let gone = changed(&leaving, RosterChange::Remove { node: NodeId(2) });
        assert_eq!((gone.version(), gone.target_version()), (5, 4));
        let back = Roster::of(&gone.configuration().expect("valid")).expect("a roster");
        assert_eq!(back, gone);
    }

    /// The previous format, without a target version, reads as a roster whose every
    /// partition's configuration is restated once: its target version is its version.
    #[test]
    fn a_roster_of_the_previous_format_reads_with_its_version_as_target() {
        let roster = with_one_endpoint();
        let configuration = roster.configuration().expect("valid");
        // The header: format, version, then the target version.
        let target_version = 1 + 8..1 + 8 + 8;
        let mut previous = configuration.context().to_vec();
        previous[0] = FORMAT_WITHOUT_TARGET_VERSION;
        previous.drain(target_version.clone());
        let previous = carrying(&[1, 2], &[], previous);
        let read = Roster::of(&previous).expect("a roster");
        assert_eq!(read.members(), roster.members());
        assert_eq!((read.version(), read.target_version()), (1, 1));
        assert_eq!(Roster::version_of(&previous), 1);
        // A target version above the version is not a roster.
        let mut ahead = configuration.context().to_vec();
        ahead[target_version].copy_from_slice(&2u64.to_le_bytes());
        let ahead = carrying(&[1, 2], &[], ahead);
        assert_eq!(Roster::of(&ahead), Err(RosterError::Malformed));
    }

    #[test]
    fn refusals_are_named_and_retries_change_nothing() {
        let roster = genesis(&[1]);
        let add = RosterChange::Add {
            node: NodeId(2),
            endpoint: "b:1".into(),
            incarnation: 9,
        };
        assert_eq!(
            roster.change(&add, Some(4)),
            Err(RosterError::Stale {
                expected: 4,
                current: 0
            })
        );
        let with_two = changed(&roster, add.clone());
        assert_eq!(with_two.change(&add, None), Ok(None), "a retried add");
        assert_eq!(
            with_two.change(&RosterChange::Remove { node: NodeId(1) }, None),
            Err(RosterError::InsufficientVoters)
        );
        assert_eq!(
            with_two.change(&RosterChange::Leave { node: NodeId(1) }, None),
            Err(RosterError::InsufficientVoters)
        );
        assert_eq!(
            with_two.change(&RosterChange::Promote { node: NodeId(7) }, None),
            Err(RosterError::MemberNotFound(NodeId(7)))
        );
        assert_eq!(
            with_two.change(&RosterChange::Remove { node: NodeId(7) }, None),
            Ok(None)
        );
        let bad_endpoint = RosterChange::Add {
            node: NodeId(3),
            endpoint: "x".repeat(ENDPOINT_BYTES_MAX + 1),
            incarnation: 1,
        };
        assert!(matches!(
            with_two.change(&bad_endpoint, None),
            Err(RosterError::InvalidEndpoint(_))
        ));
        let promoted = changed(&with_two, RosterChange::Promote { node: NodeId(2) });
        assert_eq!(
            promoted.change(&RosterChange::Promote { node: NodeId(2) }, None),
            Ok(None)
        );
        let demoted = changed(&promoted, RosterChange::Demote { node: NodeId(1) });
        assert_eq!(demoted.voters().collect::<Vec<_>>(), ids(&[2]));
        assert_eq!(
            demoted.change(&RosterChange::Demote { node: NodeId(2) }, None),
            Err(RosterError::InsufficientVoters)
        );
        // Two voters: one may go, leaving first; then it goes.
        let one_left = changed(&promoted, RosterChange::Remove { node: NodeId(1) });
        assert_eq!(one_left.voters().collect::<Vec<_>>(), ids(&[2]));
        assert_eq!(
            one_left.member(NodeId(1)).map(|m| m.role),
            Some(MemberRole::Leaving)
        );
        let gone = changed(&one_left, RosterChange::Remove { node: NodeId(1) });
        assert_eq!(gone.member(NodeId(1)), None);
    }

    #[test]
    fn a_new_incarnation_is_a_learner_again() {
        let roster = genesis(&[1, 2]);
        let replaced = changed(
            &roster,
            RosterChange::Add {
                node: NodeId(2),
                endpoint: "b:2".into(),
                incarnation: 3,
            },
        );
        let member = replaced.member(NodeId(2)).expect("member");
        assert_eq!(member.role, MemberRole::Learner);
        assert_eq!(member.incarnation, 3);
        assert_eq!(replaced.voters().collect::<Vec<_>>(), ids(&[1]));
    }

    #[test]
    fn every_damaged_context_is_refused_not_a_panic() {
        let roster = with_one_endpoint();
        let configuration = roster.configuration().expect("valid");
        let context = configuration.context().clone();
        for len in 0..context.len() {
            let cut = carrying(&[1, 2], &[], context.slice(..len));
            if len > 0 {
                assert_eq!(
                    Roster::of(&cut),
                    Err(RosterError::Malformed),
                    "cut at {len}"
                );
            }
        }
        // The context disagrees with the configuration's voters.
        let other = carrying(&[1], &[2], context.clone());
        assert_eq!(Roster::of(&other), Err(RosterError::Malformed));
        // Unsorted members.
        let mut swapped = context.to_vec();
        let first = HEADER_LEN;
        swapped[first..first + 8].copy_from_slice(&9u64.to_le_bytes());
        let swapped = carrying(&[2, 9], &[], swapped);
        assert_eq!(Roster::of(&swapped), Err(RosterError::Malformed));
    }
}
