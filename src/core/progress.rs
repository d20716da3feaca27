//! What the leader knows about each follower: match/next indices, probe or replicate state and
//! the in-flight window (messages and bytes).

use std::collections::VecDeque;

use super::types::LogIndex;

/// How the leader currently replicates to a follower.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProgressState {
    /// Searching for the match point: one append at a time.
    Probe,
    /// Streaming appends optimistically within the in-flight window.
    Replicate,
    /// The follower needs entries below the compaction floor.
    SnapshotRequired,
}

/// A read-only view of a follower's progress (for lag reporting).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ProgressView {
    /// Highest index known to match the leader's log.
    pub match_index: LogIndex,
    /// Next index to send.
    pub next_index: LogIndex,
    /// Replication state.
    pub state: ProgressState,
    /// Whether the follower is a learner.
    pub learner: bool,
}

/// In-flight appends to one follower: (last index, bytes) in send order.
#[derive(Debug, Default)]
pub(crate) struct Inflights {
    queue: VecDeque<(LogIndex, u64)>,
    bytes: u64,
}

impl Inflights {
    pub(crate) fn full(&self, messages_max: usize, bytes_max: u64) -> bool {
        self.queue.len() >= messages_max || self.bytes >= bytes_max
    }

    /// Gives back the capacity beyond the appends in flight.
    pub(crate) fn shrink_to_fit(&mut self) {
        self.queue.shrink_to_fit();
    }

    /// Bytes of room beyond the appends in flight.
    #[cfg(feature = "sim")]
    pub(crate) fn spare_capacity_bytes(&self) -> usize {
        (self.queue.capacity() - self.queue.len()) * std::mem::size_of::<(LogIndex, u64)>()
    }

    pub(crate) fn add(&mut self, last: LogIndex, bytes: u64) {
        self.queue.push_back((last, bytes));
        self.bytes += bytes;
    }

    /// Frees every in-flight message whose last index is at or below `index`.
    pub(crate) fn free_to(&mut self, index: LogIndex) {
        while let Some(&(last, bytes)) = self.queue.front() {
            if last > index {
                break;
            }
            self.bytes -= bytes;
            self.queue.pop_front();
        }
    }

    pub(crate) fn reset(&mut self) {
        self.queue.clear();
        self.bytes = 0;
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

/// The leader's record of one follower.
#[derive(Debug)]
pub(crate) struct Progress {
    pub(crate) match_index: LogIndex,
    pub(crate) next_index: LogIndex,
    pub(crate) state: ProgressState,
    /// In Probe: an append is outstanding; wait for its answer (or a heartbeat answer).
    pub(crate) probe_sent: bool,
    pub(crate) inflights: Inflights,
    /// Heard from since the last check-quorum round.
    pub(crate) recent_active: bool,
    pub(crate) learner: bool,
    /// `match_index` at the previous heartbeat answer: no progress over a whole heartbeat
    /// round while behind means appends were lost; fall back to probing.
    pub(crate) match_at_heartbeat: LogIndex,
    /// Highest ReadIndex round this follower confirmed.
    pub(crate) read_round: u64,
    /// The leader's `heartbeat_elapsed` when it last sent this follower an append in the
    /// replicate state since its last heartbeat (`None`: none since): a recent enough one
    /// stands in for the next heartbeat (`Replica::heartbeat_needed`).
    pub(crate) appended_at: Option<u32>,
    /// The commit index the follower learns from the last append sent to it (the leader's,
    /// capped at the append's last entry).
    pub(crate) commit_sent: LogIndex,
    /// Whether the follower answered (an append or a heartbeat) since the last heartbeat
    /// interval's end: only a follower whose link proved healthy has a heartbeat skipped (on
    /// a lossy link the heartbeats stay, each one more chance to reach it and to hear back).
    pub(crate) answered: bool,
}

impl Progress {
    pub(crate) fn new(next_index: LogIndex, learner: bool) -> Self {
        Self {
            match_index: LogIndex::ZERO,
            next_index,
            state: ProgressState::Probe,
            probe_sent: false,
            inflights: Inflights::default(),
            recent_active: false,
            learner,
            match_at_heartbeat: LogIndex::ZERO,
            read_round: 0,
            appended_at: None,
            commit_sent: LogIndex::ZERO,
            answered: false,
        }
    }

    pub(crate) fn view(&self) -> ProgressView {
        ProgressView {
            match_index: self.match_index,
            next_index: self.next_index,
            state: self.state,
            learner: self.learner,
        }
    }

    pub(crate) fn become_probe(&mut self) {
        self.state = ProgressState::Probe;
        self.next_index = self.match_index.next();
        self.probe_sent = false;
        self.appended_at = None;
        self.inflights.reset();
    }

    pub(crate) fn become_replicate(&mut self) {
        self.state = ProgressState::Replicate;
        self.next_index = self.match_index.next();
        self.probe_sent = false;
        self.appended_at = None;
        self.inflights.reset();
    }

    /// Ends a heartbeat round for the loss detector (in the replicate state, at a heartbeat's
    /// answer or at a skipped heartbeat, `last` the leader's last index): what is in flight
    /// now must be acknowledged by the next round's end, else appends were lost.
    pub(crate) fn mark_heartbeat_round(&mut self, last: LogIndex) {
        self.match_at_heartbeat = if self.match_index < last {
            self.next_index.prev()
        } else {
            LogIndex::ZERO
        };
    }

    /// Records a successful append up to `index`; returns whether the match advanced.
    pub(crate) fn on_success(&mut self, index: LogIndex) -> bool {
        let advanced = index > self.match_index;
        if advanced {
            self.match_index = index;
        }
        if self.next_index <= index {
            self.next_index = index.next();
        }
        self.inflights.free_to(index);
        self.probe_sent = false;
        advanced
    }

    /// The follower's log ends at `last`, below the index it acknowledged (it lost entries):
    /// the match index follows it down (commits already made stand) and probing starts after
    /// it. A stale report (the log reaches the match index again) costs only a probe.
    pub(crate) fn on_lost_entries(&mut self, last: LogIndex) {
        if last < self.match_index && self.state != ProgressState::SnapshotRequired {
            self.match_index = last;
            self.match_at_heartbeat = LogIndex::ZERO;
            self.become_probe();
        }
    }

    /// Handles a rejection of the append anchored at `rejected`; `next` is where the leader
    /// should probe next. Returns false for a stale rejection.
    pub(crate) fn on_reject(&mut self, rejected: LogIndex, next: LogIndex) -> bool {
        if self.state == ProgressState::Replicate {
            if rejected <= self.match_index {
                return false;
            }
            self.become_probe();
            self.next_index = next.max(self.match_index.next());
            return true;
        }
        if self.next_index.prev() != rejected {
            return false;
        }
        self.next_index = next.max(self.match_index.next()).min(rejected);
        self.probe_sent = false;
        true
    }

    /// Whether a new append may be sent now.
    pub(crate) fn can_send(&self, messages_max: usize, bytes_max: u64) -> bool {
        match self.state {
            ProgressState::Probe => !self.probe_sent,
            ProgressState::Replicate => !self.inflights.full(messages_max, bytes_max),
            ProgressState::SnapshotRequired => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inflight_window_counts_messages_and_bytes() {
        let mut w = Inflights::default();
        w.add(LogIndex(5), 100);
        w.add(LogIndex(9), 100);
        assert!(w.full(2, 1000));
        assert!(w.full(10, 200));
        w.free_to(LogIndex(5));
        assert!(!w.full(2, 200));
        w.free_to(LogIndex(100));
        assert!(w.is_empty());
    }

    #[test]
    fn stale_rejections_are_ignored() {
        let mut p = Progress::new(LogIndex(11), false);
        assert!(
            !p.on_reject(LogIndex(5), LogIndex(3)),
            "probe expects rejection of 10"
        );
        assert!(p.on_reject(LogIndex(10), LogIndex(4)));
        assert_eq!(p.next_index, LogIndex(4));
        p.on_success(LogIndex(6));
        p.become_replicate();
        assert!(
            !p.on_reject(LogIndex(6), LogIndex(1)),
            "at or below match: stale"
        );
        assert!(p.on_reject(LogIndex(9), LogIndex(8)));
        assert_eq!(p.state, ProgressState::Probe);
        assert_eq!(p.next_index, LogIndex(8));
    }
}
