//! Snapshot transfer on a shard: the transfers it sends as a leader ([`sender`]), the ones it
//! receives as a follower ([`receiver`]) and the pump that runs the application's side of both,
//! checksums included ([`chunks`]), off the shard thread ([`pump`]). The worker drives them (`worker/transfer.rs`); the
//! application's API is `state_transfer.rs`.

pub(crate) mod chunks;
pub(crate) mod pump;
pub(crate) mod receiver;
pub(crate) mod sender;

use crate::core::{NodeId, PartitionId};
use crate::shard::StableHashMap;
use pump::Pump;
use receiver::Incoming;
use sender::Sending;

/// A shard's transfers, both ways.
pub(crate) struct Transfers {
    pub(crate) pump: Pump,
    /// By partition and follower, on partitions this shard leads.
    pub(crate) sending: StableHashMap<(PartitionId, NodeId), Sending>,
    /// By partition (one at a time), on partitions this shard follows.
    pub(crate) receiving: StableHashMap<PartitionId, Incoming>,
    /// The low half of the next session id (the high half is the leader's term).
    next_session: u32,
    /// `NodeBug::BoundaryBeforeImport`: finishes submitted once their ticks run out.
    #[cfg(feature = "sim-bugs")]
    pub(crate) late_finishes: Vec<(u32, pump::Job)>,
}

impl Transfers {
    pub(crate) fn new(pump: Pump) -> Self {
        Self {
            pump,
            sending: StableHashMap::default(),
            receiving: StableHashMap::default(),
            next_session: 0,
            #[cfg(feature = "sim-bugs")]
            late_finishes: Vec::new(),
        }
    }

    /// A session id unique per leader: its term, and a counter within it.
    pub(crate) fn session_id(&mut self, term: crate::core::Term) -> u64 {
        self.next_session = self.next_session.wrapping_add(1);
        (term.get() << 32) | u64::from(self.next_session)
    }

    /// Transfers being sent.
    pub(crate) fn active_sends(&self) -> usize {
        self.sending
            .values()
            .filter(|s| matches!(s, Sending::Active(_)))
            .count()
    }
}
