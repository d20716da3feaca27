//! Snapshot transfer on a shard: the transfers it sends as a leader ([`sender`]), the ones it
//! receives as a follower ([`receiver`]) and the pump that runs the application's side of both,
//! checksums included ([`chunks`]), off the shard thread ([`pump`]). The worker drives them (`worker/transfer.rs`); the
//! application's API is `state_transfer.rs`.

pub(crate) mod chunks;
pub(crate) mod pump;
pub(crate) mod receiver;
pub(crate) mod sender;

use std::collections::VecDeque;
use std::time::Duration;

use crate::core::{NodeId, PartitionId};
use crate::shard::StableHashMap;
use pump::Pump;
use receiver::Incoming;
use sender::Sending;

/// The bytes a shard may still send under a cap of so many a second: refilled each tick; a
/// read takes a whole chunk's worth and may leave it below zero, so the rate averages out to
/// the cap.
#[derive(Debug, Default)]
pub(crate) struct SendBudget {
    bytes: i64,
}

impl SendBudget {
    /// Whether another chunk may be read, taking `chunk_bytes` if so (`per_sec` 0: no cap).
    pub(crate) fn take(&mut self, per_sec: u64, chunk_bytes: usize) -> bool {
        if per_sec == 0 {
            return true;
        }
        if self.bytes <= 0 {
            return false;
        }
        self.bytes -= chunk_bytes as i64;
        true
    }

    /// One tick of `tick` under a cap of `per_sec`: the budget grows by the tick's share, up to
    /// one chunk or one tick's share, whichever is more (an idle shard saves up no burst).
    pub(crate) fn refill(&mut self, per_sec: u64, tick: Duration, chunk_bytes: usize) {
        let share =
            i64::try_from(u128::from(per_sec) * tick.as_micros() / 1_000_000).unwrap_or(i64::MAX);
        let ceiling = share.max(i64::try_from(chunk_bytes).unwrap_or(i64::MAX));
        self.bytes = self.bytes.saturating_add(share).min(ceiling);
    }
}

/// A shard's transfers, both ways.
pub(crate) struct Transfers {
    pub(crate) pump: Pump,
    /// By partition and follower, on partitions this shard leads.
    pub(crate) sending: StableHashMap<(PartitionId, NodeId), Sending>,
    /// By partition (one at a time), on partitions this shard follows.
    pub(crate) receiving: StableHashMap<PartitionId, Incoming>,
    /// The low half of the next session id (the high half is the leader's term).
    next_session: u32,
    /// The place of the next transfer queued behind `snapshot.transfers_max`.
    next_queued: u64,
    /// The transfers in `sending` waiting for a free one (`Sending::Queued`).
    queued: usize,
    /// The leaders (partition, leader, session) whose first chunk this shard answered `Busy`,
    /// oldest first, one per partition (so at most this shard's partitions): told `Free` as
    /// receive sessions end.
    busy: VecDeque<(PartitionId, NodeId, u64)>,
    /// What `snapshot.bytes_per_sec_max` still lets the shard send.
    pub(crate) budget: SendBudget,
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
            next_queued: 0,
            queued: 0,
            busy: VecDeque::new(),
            budget: SendBudget::default(),
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

    /// Queues the transfer of `partition` to `follower` behind those already waiting for a
    /// free transfer.
    pub(crate) fn queue(&mut self, partition: PartitionId, follower: NodeId, backoff: u32) {
        self.next_queued += 1;
        let order = self.next_queued;
        let before = self
            .sending
            .insert((partition, follower), Sending::Queued { order, backoff });
        if !matches!(before, Some(Sending::Queued { .. })) {
            self.queued += 1;
        }
    }

    /// Takes the transfer that has waited longest for a free one, with the back-off its next
    /// failure waits (a scan of the transfers, only while one waits).
    pub(crate) fn take_queued(&mut self) -> Option<((PartitionId, NodeId), u32)> {
        if self.queued == 0 {
            return None;
        }
        let (&key, _) = self
            .sending
            .iter()
            .filter_map(|(key, sending)| match sending {
                Sending::Queued { order, .. } => Some((key, *order)),
                _ => None,
            })
            .min_by_key(|&(_, order)| order)?;
        match self.sending.remove(&key) {
            Some(Sending::Queued { backoff, .. }) => {
                self.queued -= 1;
                Some((key, backoff))
            }
            _ => None,
        }
    }

    /// Whether a transfer waits for a free one.
    pub(crate) fn any_queued(&self) -> bool {
        self.queued > 0
    }

    /// Records that the first chunk `leader` sent of `partition` (its `session`) was answered
    /// `Busy`; a partition's earlier record goes (its place in the line with it).
    pub(crate) fn note_busy(&mut self, partition: PartitionId, leader: NodeId, session: u64) {
        self.busy.retain(|&(p, ..)| p != partition);
        self.busy.push_back((partition, leader, session));
    }

    /// The leader that has waited longest to be told `Free`, among the partitions not
    /// receiving a transfer now; those receiving one leave the line (their transfer came).
    pub(crate) fn next_busy(&mut self) -> Option<(PartitionId, NodeId, u64)> {
        while let Some(waiting) = self.busy.pop_front() {
            if !self.receiving.contains_key(&waiting.0) {
                return Some(waiting);
            }
        }
        None
    }

    /// Ends every transfer received for `partition`, and forgets its leader waiting for room.
    pub(crate) fn end_receives(&mut self, partition: PartitionId) {
        self.receiving.remove(&partition);
        self.busy.retain(|&(p, ..)| p != partition);
    }

    /// Ends every transfer sent for `partition`, waiting or not. Returns whether there was any.
    pub(crate) fn end_sends(&mut self, partition: PartitionId) -> bool {
        let before = self.sending.len();
        self.sending.retain(|&(p, _), _| p != partition);
        self.queued = self
            .sending
            .values()
            .filter(|s| matches!(s, Sending::Queued { .. }))
            .count();
        self.sending.len() != before
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{Incoming, SendBudget, Transfers};
    use crate::core::{Configuration, Floor, LogIndex, NodeId, PartitionId, Term};
    use crate::shard::partitions::marks::LogMarks;
    use crate::shard::snapshot::pump::Pump;

    #[test]
    fn queued_transfers_come_out_longest_waiting_first_with_their_back_off() {
        let mut transfers = Transfers::new(Pump::inline());
        let follower = NodeId(2);
        let order = [9, 2, 7, 4, 1, 8, 3, 6].map(PartitionId);
        for (k, &partition) in order.iter().enumerate() {
            transfers.queue(partition, follower, 10 + k as u32);
        }
        for (k, &partition) in order.iter().enumerate() {
            let taken = transfers.take_queued();
            assert_eq!(taken, Some(((partition, follower), 10 + k as u32)));
        }
        assert_eq!(transfers.take_queued(), None);
        assert!(
            transfers.sending.is_empty(),
            "a transfer taken leaves no state"
        );
        // Queued twice, it waits once; a partition's end takes its waiting transfers along.
        let (a, b) = (PartitionId(1), PartitionId(2));
        transfers.queue(a, follower, 1);
        transfers.queue(a, follower, 1);
        transfers.queue(b, follower, 1);
        assert!(transfers.end_sends(a));
        assert!(transfers.any_queued());
        assert_eq!(transfers.take_queued(), Some(((b, follower), 1)));
        assert!(!transfers.any_queued());
        assert_eq!(transfers.take_queued(), None);
    }

    #[test]
    fn leaders_answered_busy_are_told_free_longest_waiting_first_once_each() {
        let mut transfers = Transfers::new(Pump::inline());
        let (a, b, c) = (PartitionId(1), PartitionId(2), PartitionId(3));
        transfers.note_busy(a, NodeId(2), 10);
        transfers.note_busy(b, NodeId(3), 20);
        transfers.note_busy(c, NodeId(2), 30);
        // Answered busy again (a later session): one place, at the back of the line.
        transfers.note_busy(a, NodeId(4), 11);
        // A partition receiving a transfer now leaves the line: its transfer came.
        let floor = Floor {
            index: LogIndex(5),
            term: Term(1),
            configuration: Configuration::new(vec![NodeId(1)], Vec::new()).expect("valid"),
        };
        let incoming = Incoming::new(NodeId(3), 21, Term(1), floor, LogMarks::default());
        transfers.receiving.insert(b, incoming);
        assert_eq!(transfers.next_busy(), Some((c, NodeId(2), 30)));
        // A partition's end takes its place in the line along.
        transfers.note_busy(c, NodeId(2), 31);
        transfers.end_receives(c);
        assert_eq!(transfers.next_busy(), Some((a, NodeId(4), 11)));
        assert_eq!(transfers.next_busy(), None);
    }

    #[test]
    fn a_capped_budget_averages_out_to_the_cap_and_saves_up_no_burst() {
        let tick = Duration::from_millis(10);
        let mut budget = SendBudget::default();
        assert!(budget.take(0, 1 << 20), "no cap");
        // 1 000 B/s in 16 B chunks: 10 B a tick, a chunk every 1.6 ticks.
        let (per_sec, chunk) = (1_000, 16);
        let mut taken = 0;
        for _ in 0..1_000 {
            budget.refill(per_sec, tick, chunk);
            while budget.take(per_sec, chunk) {
                taken += 1;
            }
        }
        // 10 s at 1 000 B/s: 10 000 B, 625 chunks (one more that went below zero).
        assert!((625..=626).contains(&taken), "{taken} chunks");
        // Idle for a second: one chunk's worth, not a second's.
        let mut idle = SendBudget::default();
        for _ in 0..100 {
            idle.refill(per_sec, tick, chunk);
        }
        assert!(idle.take(per_sec, chunk));
        assert!(!idle.take(per_sec, chunk));
    }
}
