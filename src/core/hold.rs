//! Kommander's two-phase write model: which `auto_commit = false` proposals are still held,
//! and how a Commit or Rollback marker resolves them.
//!
//! Tracked per ticket for every two-phase proposal in the log above the delivery cursor. The
//! state is derived from the log only (never stored separately), so it is rebuilt on restore
//! and repaired on truncation. The first marker for a ticket in log order wins; the leader
//! never appends a second one.

use std::collections::{HashMap, VecDeque};

use super::entry::{Entry, EntryKind};
use super::types::{LogIndex, Ticket};

/// How a ticket was resolved: by which marker kind, at which index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Resolution {
    pub(crate) kind: EntryKind,
    pub(crate) index: LogIndex,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Held {
    pub(crate) first: LogIndex,
    pub(crate) last: LogIndex,
    pub(crate) resolution: Option<Resolution>,
}

/// What the delivery cursor does with a two-phase entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Deliver,
    Skip,
    Block,
}

#[derive(Debug, Default)]
pub(crate) struct Holds {
    tickets: HashMap<Ticket, Held>,
    /// Resolutions already delivered, the newest last, at most the replica's
    /// `resolved_tickets_max`: a commit or rollback asked again after delivery (its answer
    /// lost) is answered from here. Empty (no allocation) on a partition without two-phase
    /// writes.
    delivered: VecDeque<(Ticket, Resolution)>,
}

impl Holds {
    pub(crate) fn get(&self, ticket: Ticket) -> Option<&Held> {
        self.tickets.get(&ticket)
    }

    /// How `ticket` was resolved, if its marker was delivered and is still remembered.
    pub(crate) fn delivered_resolution(&self, ticket: Ticket) -> Option<Resolution> {
        let newest = self.delivered.iter().rev().find(|(t, _)| *t == ticket);
        newest.map(|(_, resolution)| *resolution)
    }

    pub(crate) fn contains(&self, ticket: Ticket) -> bool {
        self.tickets.contains_key(&ticket)
    }

    /// Whether any two-phase proposal is still unresolved.
    pub(crate) fn any_unresolved(&self) -> bool {
        self.tickets.values().any(|h| h.resolution.is_none())
    }

    /// Records an entry appended to the log (any role).
    #[inline]
    pub(crate) fn on_append(&mut self, entry: &Entry) {
        match entry.kind {
            EntryKind::Normal if !entry.auto_commit => {
                let held = self.tickets.entry(entry.ticket).or_insert(Held {
                    first: entry.index,
                    last: entry.index,
                    resolution: None,
                });
                // A batch shares one ticket and is contiguous; a later reuse of a ticket is
                // refused by the leader while the first is tracked.
                held.last = held.last.max(entry.index);
            }
            EntryKind::Commit | EntryKind::Rollback => {
                if let Some(held) = self.tickets.get_mut(&entry.ticket)
                    && held.resolution.is_none()
                    && held.last < entry.index
                {
                    held.resolution = Some(Resolution {
                        kind: entry.kind,
                        index: entry.index,
                    });
                }
            }
            _ => {}
        }
    }

    /// Undoes the effect of entries removed by a log truncation at `from`.
    pub(crate) fn on_truncate(&mut self, from: LogIndex) {
        self.tickets.retain(|_, held| {
            if held.resolution.is_some_and(|r| r.index >= from) {
                held.resolution = None;
            }
            if held.first >= from {
                return false;
            }
            if held.last >= from {
                held.last = from.prev();
            }
            true
        });
    }

    /// The delivery verdict for a two-phase entry when markers up to `durable_commit` count.
    pub(crate) fn verdict(&self, ticket: Ticket, durable_commit: LogIndex) -> Verdict {
        match self.tickets.get(&ticket).and_then(|h| h.resolution) {
            Some(r) if r.index <= durable_commit => {
                if r.kind == EntryKind::Commit {
                    Verdict::Deliver
                } else {
                    Verdict::Skip
                }
            }
            _ => Verdict::Block,
        }
    }

    /// Forgets a ticket once the delivery cursor passed its marker, remembering its
    /// resolution among the newest `remember` delivered ones.
    pub(crate) fn on_marker_delivered(
        &mut self,
        ticket: Ticket,
        marker: LogIndex,
        remember: usize,
    ) {
        let resolution = self.tickets.get(&ticket).and_then(|h| h.resolution);
        if let Some(resolution) = resolution.filter(|r| r.index == marker) {
            self.tickets.remove(&ticket);
            if remember > 0 {
                if self.delivered.len() == remember {
                    self.delivered.pop_front();
                }
                self.delivered.push_back((ticket, resolution));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::core::types::Term;

    fn entry(index: u64, kind: EntryKind, ticket: u64, auto_commit: bool) -> Entry {
        Entry {
            index: LogIndex(index),
            term: Term(1),
            kind,
            ticket: Ticket(ticket),
            auto_commit,
            payload: Bytes::new(),
        }
    }

    #[test]
    fn first_marker_wins_and_truncation_reverts() {
        let mut holds = Holds::default();
        holds.on_append(&entry(1, EntryKind::Normal, 7, false));
        holds.on_append(&entry(2, EntryKind::Normal, 7, false));
        assert_eq!(holds.verdict(Ticket(7), LogIndex(9)), Verdict::Block);
        holds.on_append(&entry(3, EntryKind::Rollback, 7, true));
        holds.on_append(&entry(4, EntryKind::Commit, 7, true));
        assert_eq!(holds.verdict(Ticket(7), LogIndex(2)), Verdict::Block);
        assert_eq!(holds.verdict(Ticket(7), LogIndex(3)), Verdict::Skip);
        holds.on_truncate(LogIndex(3));
        assert_eq!(holds.verdict(Ticket(7), LogIndex(9)), Verdict::Block);
        holds.on_truncate(LogIndex(2));
        assert_eq!(holds.get(Ticket(7)).map(|h| h.last), Some(LogIndex(1)));
        holds.on_truncate(LogIndex(1));
        assert!(!holds.contains(Ticket(7)));
    }

    #[test]
    fn delivered_resolutions_are_remembered_up_to_the_cap() {
        let mut holds = Holds::default();
        for ticket in 1..=3 {
            let at = ticket * 10;
            holds.on_append(&entry(at, EntryKind::Normal, ticket, false));
            holds.on_append(&entry(at + 1, EntryKind::Commit, ticket, true));
            holds.on_marker_delivered(Ticket(ticket), LogIndex(at + 1), 2);
            assert!(!holds.contains(Ticket(ticket)));
        }
        assert_eq!(
            holds.delivered_resolution(Ticket(1)),
            None,
            "beyond the cap"
        );
        let remembered = holds.delivered_resolution(Ticket(3));
        assert_eq!(
            remembered.map(|r| (r.kind, r.index)),
            Some((EntryKind::Commit, LogIndex(31)))
        );
        assert!(holds.delivered_resolution(Ticket(2)).is_some());
        holds.on_append(&entry(40, EntryKind::Normal, 4, false));
        holds.on_append(&entry(41, EntryKind::Rollback, 4, true));
        holds.on_marker_delivered(Ticket(4), LogIndex(41), 0);
        assert_eq!(
            holds.delivered_resolution(Ticket(4)),
            None,
            "a cap of 0 keeps none"
        );
    }

    #[test]
    fn markers_for_unknown_tickets_are_ignored() {
        let mut holds = Holds::default();
        holds.on_append(&entry(5, EntryKind::Commit, 1, true));
        assert!(!holds.contains(Ticket(1)));
        assert!(!holds.any_unresolved());
    }
}
