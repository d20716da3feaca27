//! A partition's configuration: which nodes vote and which only learn. It changes through the
//! partition's own log (an [`EntryKind::Configuration`](super::EntryKind::Configuration) entry
//! carries the whole new configuration, encoded by [`Configuration::encode`]), one voter at a
//! time (see `replica/membership.rs`).
//!
//! A configuration may carry a *context*: bytes the core keeps, persists and ships with the
//! configuration but never reads (etcd raft's `ConfChange` context). The shard layer keeps
//! partition 0's roster there (endpoints, roles, the roster version), so the roster travels
//! with the configuration through the log, the WAL's floor and snapshots.

use bytes::{BufMut, Bytes, BytesMut};

use super::types::NodeId;

/// Most members (voters and learners together) one configuration may list: a bound on what a
/// decoder accepts from the network or the disk, far above any real partition.
pub const CONFIGURATION_MEMBERS_MAX: usize = 256;

/// The longest context a configuration may carry ([`Configuration::with_context`]): a bound
/// on what a decoder accepts from the network or the disk.
pub const CONFIGURATION_CONTEXT_BYTES_MAX: usize = 32 << 10;

/// The encoding's fixed part: version, the two list lengths, the context's length.
const HEADER_LEN: usize = 1 + 2 + 2 + 4;

/// The longest encoding of a configuration ([`Configuration::encode`]): what a WAL must keep
/// with a floor.
pub const CONFIGURATION_BYTES_MAX: usize =
    HEADER_LEN + 8 * CONFIGURATION_MEMBERS_MAX + CONFIGURATION_CONTEXT_BYTES_MAX;

/// The encoding's version byte.
const ENCODING_VERSION: u8 = 2;

/// The voters and learners of a partition. Both lists are sorted, without duplicates, disjoint,
/// never contain [`NodeId::ZERO`]; there is at least one voter. Build one with
/// [`Configuration::new`], which checks all of that, and add a context with
/// [`Configuration::with_context`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Configuration {
    voters: Vec<NodeId>,
    learners: Vec<NodeId>,
    context: Bytes,
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
    /// A context longer than [`CONFIGURATION_CONTEXT_BYTES_MAX`].
    #[error("a context of more than {CONFIGURATION_CONTEXT_BYTES_MAX} bytes")]
    ContextTooLong,
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
        Ok(Self {
            voters,
            learners,
            context: Bytes::new(),
        })
    }

    /// The same members with `context` (replacing any context), bytes the core never reads.
    ///
    /// # Errors
    ///
    /// [`ConfigurationError::ContextTooLong`] over [`CONFIGURATION_CONTEXT_BYTES_MAX`] bytes.
    pub fn with_context(mut self, context: Bytes) -> Result<Self, ConfigurationError> {
        if context.len() > CONFIGURATION_CONTEXT_BYTES_MAX {
            return Err(ConfigurationError::ContextTooLong);
        }
        self.context = context;
        Ok(self)
    }

    /// The context (empty when none was given).
    #[must_use]
    pub fn context(&self) -> &Bytes {
        &self.context
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
        HEADER_LEN + 8 * (self.voters.len() + self.learners.len()) + self.context.len()
    }

    /// The entry payload: `version:u8 voters:u16 learners:u16 context:u32` (the lengths, all
    /// little-endian), then each id as a little-endian `u64`, voters first, then the context.
    #[must_use]
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.encoded_len());
        out.put_u8(ENCODING_VERSION);
        // `new` bounds both lengths by CONFIGURATION_MEMBERS_MAX, far below u16::MAX, and
        // `with_context` the context by CONFIGURATION_CONTEXT_BYTES_MAX, far below u32::MAX.
        out.put_u16_le(self.voters.len() as u16);
        out.put_u16_le(self.learners.len() as u16);
        out.put_u32_le(self.context.len() as u32);
        for node in self.members() {
            out.put_u64_le(node.0);
        }
        out.put_slice(&self.context);
        out.freeze()
    }

    /// The inverse of [`Configuration::encode`]; total: any bytes give a value or an error.
    ///
    /// # Errors
    ///
    /// [`ConfigurationError::Malformed`] for bytes that are not an encoding, or the error of
    /// [`Configuration::new`] for an encoded configuration that is not valid.
    pub fn decode(bytes: &[u8]) -> Result<Self, ConfigurationError> {
        let [version, v0, v1, l0, l1, c0, c1, c2, c3, rest @ ..] = bytes else {
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
        let context_len = u32::from_le_bytes([*c0, *c1, *c2, *c3]) as usize;
        if context_len > CONFIGURATION_CONTEXT_BYTES_MAX {
            return Err(ConfigurationError::ContextTooLong);
        }
        if rest.len() != 8 * (voters + learners) + context_len {
            return Err(ConfigurationError::Malformed);
        }
        let (ids, context) = rest.split_at(8 * (voters + learners));
        let mut nodes = ids.chunks_exact(8).map(|chunk| {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            NodeId(u64::from_le_bytes(word))
        });
        let voter_ids: Vec<NodeId> = nodes.by_ref().take(voters).collect();
        let learner_ids: Vec<NodeId> = nodes.collect();
        // `encode` writes each list sorted: any other order is not an encoding (one
        // configuration, one byte string).
        let sorted = |list: &[NodeId]| list.windows(2).all(|w| w[0] <= w[1]);
        if !sorted(&voter_ids) || !sorted(&learner_ids) {
            return Err(ConfigurationError::Malformed);
        }
        Self::new(voter_ids, learner_ids)?.with_context(Bytes::copy_from_slice(context))
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
        let with_context = config
            .clone()
            .with_context(Bytes::from_static(b"roster"))
            .expect("short");
        assert_ne!(with_context, config);
        assert_eq!(with_context.encode().len(), with_context.encoded_len());
        assert_eq!(
            Configuration::decode(&with_context.encode()),
            Ok(with_context)
        );
        assert_eq!(config.quorum(), 2);
        assert_eq!(config.to_string(), "voters [1,2,3] learners [7,9]");
    }

    #[test]
    fn every_damaged_encoding_is_an_error_not_a_panic() {
        let bytes = Configuration::new(ids(&[1, 2]), ids(&[5]))
            .expect("valid")
            .with_context(Bytes::from_static(b"ctx"))
            .expect("short")
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
        version[0] = 1;
        assert_eq!(
            Configuration::decode(&version),
            Err(ConfigurationError::Malformed)
        );
        let mut duplicate = bytes.to_vec();
        duplicate[17..25].copy_from_slice(&1u64.to_le_bytes());
        assert_eq!(
            Configuration::decode(&duplicate),
            Err(ConfigurationError::Duplicate)
        );
        let mut unsorted = bytes.to_vec();
        unsorted[9..17].copy_from_slice(&2u64.to_le_bytes());
        unsorted[17..25].copy_from_slice(&1u64.to_le_bytes());
        assert_eq!(
            Configuration::decode(&unsorted),
            Err(ConfigurationError::Malformed)
        );
        let mut huge = bytes.to_vec();
        huge[1..3].copy_from_slice(&u16::MAX.to_le_bytes());
        assert_eq!(
            Configuration::decode(&huge),
            Err(ConfigurationError::TooManyMembers)
        );
        let mut long_context = bytes.to_vec();
        long_context[5..9].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            Configuration::decode(&long_context),
            Err(ConfigurationError::ContextTooLong)
        );
        let too_long = Bytes::from(vec![0; CONFIGURATION_CONTEXT_BYTES_MAX + 1]);
        assert_eq!(
            Configuration::new(ids(&[1]), ids(&[])).and_then(|c| c.with_context(too_long)),
            Err(ConfigurationError::ContextTooLong)
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
