//! A partition's configuration: which nodes vote and which only learn. It changes through the
//! partition's own log (an [`EntryKind::Configuration`](super::EntryKind::Configuration) entry
//! carries the whole new configuration, encoded by [`Configuration::encode`]), one voter at a
//! time (see `replica/membership.rs`).

use bytes::{BufMut, Bytes, BytesMut};

use super::types::NodeId;

/// Most members (voters and learners together) one configuration may list: a bound on what a
/// decoder accepts from the network or the disk, far above any real partition.
pub const CONFIGURATION_MEMBERS_MAX: usize = 256;

/// The longest encoding of a configuration ([`Configuration::encode`]): what a WAL must keep
/// with a floor.
pub const CONFIGURATION_BYTES_MAX: usize = 5 + 8 * CONFIGURATION_MEMBERS_MAX;

/// The encoding's version byte.
const ENCODING_VERSION: u8 = 1;

/// The voters and learners of a partition. Both lists are sorted, without duplicates, disjoint,
/// never contain [`NodeId::ZERO`]; there is at least one voter. Build one with
/// [`Configuration::new`], which checks all of that.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Configuration {
    voters: Vec<NodeId>,
    learners: Vec<NodeId>,
}

/// Why a configuration (given or decoded) is not valid.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigurationError {
    /// No voter: nothing could ever be elected or committed.
    #[error("a configuration needs at least one voter")]
    NoVoter,
    /// Node id 0 is reserved.
    #[error("node id 0 is reserved")]
    ReservedId,
    /// A node is listed twice (voters and learners are disjoint).
    #[error("a node is listed twice")]
    Duplicate,
    /// More members than [`CONFIGURATION_MEMBERS_MAX`].
    #[error("more than {CONFIGURATION_MEMBERS_MAX} members")]
    TooManyMembers,
    /// The bytes are not an encoded configuration (unknown version, truncated, trailing bytes).
    #[error("malformed configuration encoding")]
    Malformed,
}

impl Configuration {
    /// A configuration of `voters` and `learners` (any order).
    ///
    /// # Errors
    ///
    /// [`ConfigurationError`] naming what is wrong: no voter, node id 0, a node listed twice,
    /// more than [`CONFIGURATION_MEMBERS_MAX`] members.
    pub fn new(
        mut voters: Vec<NodeId>,
        mut learners: Vec<NodeId>,
    ) -> Result<Self, ConfigurationError> {
        if voters.is_empty() {
            return Err(ConfigurationError::NoVoter);
        }
        if voters.len() + learners.len() > CONFIGURATION_MEMBERS_MAX {
            return Err(ConfigurationError::TooManyMembers);
        }
        voters.sort_unstable();
        learners.sort_unstable();
        if voters.contains(&NodeId::ZERO) || learners.contains(&NodeId::ZERO) {
            return Err(ConfigurationError::ReservedId);
        }
        let twice = |list: &[NodeId]| list.windows(2).any(|w| w[0] == w[1]);
        if twice(&voters)
            || twice(&learners)
            || voters.iter().any(|v| learners.binary_search(v).is_ok())
        {
            return Err(ConfigurationError::Duplicate);
        }
        Ok(Self { voters, learners })
    }

    /// The voters, sorted.
    #[must_use]
    pub fn voters(&self) -> &[NodeId] {
        &self.voters
    }

    /// The learners, sorted.
    #[must_use]
    pub fn learners(&self) -> &[NodeId] {
        &self.learners
    }

    /// Whether `node` votes.
    #[must_use]
    pub fn is_voter(&self, node: NodeId) -> bool {
        self.voters.binary_search(&node).is_ok()
    }

    /// Whether `node` is a learner.
    #[must_use]
    pub fn is_learner(&self, node: NodeId) -> bool {
        self.learners.binary_search(&node).is_ok()
    }

    /// Whether `node` is a voter or a learner.
    #[must_use]
    pub fn is_member(&self, node: NodeId) -> bool {
        self.is_voter(node) || self.is_learner(node)
    }

    /// Every member, voters first, each list sorted.
    pub fn members(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.voters.iter().chain(&self.learners).copied()
    }

    /// Votes that make a majority of the voters.
    #[must_use]
    pub fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    /// How many nodes vote in one of `self` and `other` but not in both. A change may move at
    /// most one (Raft's single-server change: any majority of the old voters and any majority
    /// of the new ones share a node).
    #[must_use]
    pub fn voter_changes(&self, other: &Self) -> usize {
        let only_here = self.voters.iter().filter(|v| !other.is_voter(**v)).count();
        let only_there = other.voters.iter().filter(|v| !self.is_voter(**v)).count();
        only_here + only_there
    }

    /// The length of [`Configuration::encode`]'s output.
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        5 + 8 * (self.voters.len() + self.learners.len())
    }

    /// The entry payload: `version:u8 voters:u16 learners:u16`, then each id as a
    /// little-endian `u64`, voters first.
    #[must_use]
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.encoded_len());
        out.put_u8(ENCODING_VERSION);
        // `new` bounds both lengths by CONFIGURATION_MEMBERS_MAX, far below u16::MAX.
        out.put_u16_le(self.voters.len() as u16);
        out.put_u16_le(self.learners.len() as u16);
        for node in self.members() {
            out.put_u64_le(node.0);
        }
        out.freeze()
    }

    /// The inverse of [`Configuration::encode`]; total: any bytes give a value or an error.
    ///
    /// # Errors
    ///
    /// [`ConfigurationError::Malformed`] for bytes that are not an encoding, or the error of
    /// [`Configuration::new`] for an encoded configuration that is not valid.
    pub fn decode(bytes: &[u8]) -> Result<Self, ConfigurationError> {
        let [version, v0, v1, l0, l1, ids @ ..] = bytes else {
            return Err(ConfigurationError::Malformed);
        };
        if *version != ENCODING_VERSION {
            return Err(ConfigurationError::Malformed);
        }
        let voters = usize::from(u16::from_le_bytes([*v0, *v1]));
        let learners = usize::from(u16::from_le_bytes([*l0, *l1]));
        if voters + learners > CONFIGURATION_MEMBERS_MAX {
            return Err(ConfigurationError::TooManyMembers);
        }
        if ids.len() != 8 * (voters + learners) {
            return Err(ConfigurationError::Malformed);
        }
        let mut nodes = ids.chunks_exact(8).map(|chunk| {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            NodeId(u64::from_le_bytes(word))
        });
        let voter_ids = nodes.by_ref().take(voters).collect();
        Self::new(voter_ids, nodes.collect())
    }
}

impl std::fmt::Display for Configuration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |nodes: &[NodeId]| {
            nodes
                .iter()
                .map(|n| n.0.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        write!(
            f,
            "voters [{}] learners [{}]",
            list(&self.voters),
            list(&self.learners)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[u64]) -> Vec<NodeId> {
        list.iter().copied().map(NodeId).collect()
    }

    #[test]
    fn invalid_configurations_are_refused_by_name() {
        let cases = [
            (ids(&[]), ids(&[1]), ConfigurationError::NoVoter),
            (ids(&[0, 1]), ids(&[]), ConfigurationError::ReservedId),
            (ids(&[1, 1]), ids(&[]), ConfigurationError::Duplicate),
            (ids(&[1, 2]), ids(&[2]), ConfigurationError::Duplicate),
            (ids(&[1]), ids(&[3, 3]), ConfigurationError::Duplicate),
            (
                (1..=200).map(NodeId).collect(),
                (201..=257).map(NodeId).collect(),
                ConfigurationError::TooManyMembers,
            ),
        ];
        for (voters, learners, expected) in cases {
            assert_eq!(Configuration::new(voters, learners), Err(expected));
        }
    }

    #[test]
    fn encoding_round_trips_and_sorts() {
        let config = Configuration::new(ids(&[3, 1, 2]), ids(&[9, 7])).expect("valid");
        assert_eq!(config.voters(), ids(&[1, 2, 3]).as_slice());
        assert_eq!(config.learners(), ids(&[7, 9]).as_slice());
        assert_eq!(Configuration::decode(&config.encode()), Ok(config.clone()));
        assert_eq!(config.quorum(), 2);
        assert_eq!(config.to_string(), "voters [1,2,3] learners [7,9]");
    }

    #[test]
    fn every_damaged_encoding_is_an_error_not_a_panic() {
        let bytes = Configuration::new(ids(&[1, 2]), ids(&[5]))
            .expect("valid")
            .encode();
        for len in 0..bytes.len() {
            assert!(
                Configuration::decode(&bytes[..len]).is_err(),
                "cut at {len}"
            );
        }
        let mut longer = bytes.to_vec();
        longer.push(0);
        assert_eq!(
            Configuration::decode(&longer),
            Err(ConfigurationError::Malformed)
        );
        let mut version = bytes.to_vec();
        version[0] = 2;
        assert_eq!(
            Configuration::decode(&version),
            Err(ConfigurationError::Malformed)
        );
        let mut duplicate = bytes.to_vec();
        duplicate[13..21].copy_from_slice(&1u64.to_le_bytes());
        assert_eq!(
            Configuration::decode(&duplicate),
            Err(ConfigurationError::Duplicate)
        );
        let mut huge = bytes.to_vec();
        huge[1..3].copy_from_slice(&u16::MAX.to_le_bytes());
        assert_eq!(
            Configuration::decode(&huge),
            Err(ConfigurationError::TooManyMembers)
        );
    }

    #[test]
    fn voter_changes_count_the_symmetric_difference() {
        let a = Configuration::new(ids(&[1, 2, 3]), ids(&[4])).expect("valid");
        let promote = Configuration::new(ids(&[1, 2, 3, 4]), ids(&[])).expect("valid");
        let swap = Configuration::new(ids(&[1, 2, 4]), ids(&[3])).expect("valid");
        let learners_only = Configuration::new(ids(&[1, 2, 3]), ids(&[5, 6])).expect("valid");
        assert_eq!(a.voter_changes(&promote), 1);
        assert_eq!(a.voter_changes(&swap), 2);
        assert_eq!(a.voter_changes(&learners_only), 0);
    }
}
