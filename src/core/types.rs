//! Newtypes for the numbers Raft juggles, so a term can never be passed where an index belongs.
//!
//! This module owns only plain value types; it must not grow behaviour beyond arithmetic helpers.

use std::fmt;

/// A partition (one Raft group): the WAL's id type, so the core, the shards and the log name
/// partitions with one type.
pub use kommander_wal::PartitionId;

macro_rules! newtype {
    ($(#[$doc:meta])* $name:ident($inner:ty), $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub $inner);

        impl $name {
            /// The zero value.
            pub const ZERO: Self = Self(0);

            /// The raw number.
            #[must_use]
            pub const fn get(self) -> $inner {
                self.0
            }
        }

        impl From<$inner> for $name {
            fn from(value: $inner) -> Self {
                Self(value)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }
    };
}

newtype!(
    /// A Raft term. Term 0 is the state before any election; real terms start at 1.
    Term(u64),
    "t"
);
newtype!(
    /// A position in a partition's log. Index 0 is the empty prefix; real entries start at 1.
    LogIndex(u64),
    "i"
);
newtype!(
    /// A node of the cluster. The value 0 is reserved for "no node" and never a member.
    NodeId(u64),
    "n"
);
newtype!(
    /// The caller-supplied ticket of a proposal: an HLC timestamp packed in 64 bits.
    ///
    /// The core treats it as an opaque identifier; it only requires that a ticket is not reused
    /// while an earlier proposal carrying it is still unresolved (see `Replica::propose`).
    Ticket(u64),
    "T"
);

impl LogIndex {
    /// The next index (saturating; an index never reaches `u64::MAX` in practice and messages
    /// claiming such indices are rejected as absurd before arithmetic is done on them).
    #[must_use]
    pub const fn next(self) -> Self {
        Self(self.0.saturating_add(1))
    }

    /// The previous index, saturating at 0.
    #[must_use]
    pub const fn prev(self) -> Self {
        Self(self.0.saturating_sub(1))
    }
}

impl Term {
    /// The next term (saturating).
    #[must_use]
    pub const fn next(self) -> Self {
        Self(self.0.saturating_add(1))
    }
}
