//! Log matching (Raft §5.3): if two logs hold an entry with the same index and term, the logs
//! are identical up to that index.
//!
//! Checked inductively and incrementally: every (partition, index, term) ever written anywhere
//! must always carry the same content and follow an entry of the same term. By induction over
//! the index, equal (index, term) pairs then imply equal prefixes, without comparing logs.

use std::collections::HashMap;

use super::Checker;
use crate::sim::observation::{ClusterView, Observation, ObservedKind};

/// First-seen content and predecessor term of every (partition, index, term).
#[derive(Debug, Default)]
pub struct LogMatching {
    seen: HashMap<(usize, u64, u64), Seen>,
}

/// What the first copy of an (index, term) looked like.
#[derive(Debug)]
struct Seen {
    id: u64,
    kind: ObservedKind,
    previous_term: Option<u64>,
}

impl Checker for LogMatching {
    fn name(&self) -> &'static str {
        "log_matching"
    }

    fn observe(&mut self, observation: &Observation, view: &ClusterView) -> Result<(), String> {
        let Observation::Appended {
            node,
            partition,
            entries,
        } = observation
        else {
            return Ok(());
        };
        let log = &view.replica(*node, *partition).log;
        for entry in entries {
            // The predecessor's term is unknown right above a compaction floor only when the
            // floor itself is unknown; `None` matches anything.
            let previous_term = log.term_at(entry.index - 1);
            let key = (*partition, entry.index, entry.term);
            let seen = self.seen.entry(key).or_insert(Seen {
                id: entry.id,
                kind: entry.kind,
                previous_term,
            });
            if (seen.id, seen.kind) != (entry.id, entry.kind) {
                return Err(format!(
                    "partition {partition} index {} term {}: node {node} holds {:?}/{:?}, \
                     another log held {:?}/{:?}",
                    entry.index, entry.term, entry.id, entry.kind, seen.id, seen.kind
                ));
            }
            match (seen.previous_term, previous_term) {
                (Some(a), Some(b)) if a != b => {
                    return Err(format!(
                        "partition {partition} index {} term {}: node {node} has it after an \
                         entry of term {b}, another log after term {a}",
                        entry.index, entry.term
                    ));
                }
                (None, Some(b)) => seen.previous_term = Some(b),
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::history::*;

    #[test]
    fn same_index_and_term_with_different_content_is_flagged() {
        assert_flagged_by(
            "log_matching",
            2,
            vec![
                append(0, &[data(1, 1, 10), data(2, 1, 20)]),
                append(1, &[data(1, 1, 10), data(2, 1, 99)]),
            ],
        );
    }

    #[test]
    fn same_index_and_term_after_different_prefixes_is_flagged() {
        // Node 1 accepted entry (2, term 3) on top of a different entry 1: the append skipped
        // the prevLog check (Kommander's "unanchored" replication).
        assert_flagged_by(
            "log_matching",
            2,
            vec![
                append(0, &[data(1, 1, 10), data(2, 3, 30)]),
                append(1, &[data(1, 2, 15)]),
                append(1, &[data(2, 3, 30)]),
            ],
        );
    }

    #[test]
    fn overwriting_a_conflicting_suffix_is_legal() {
        run(
            2,
            vec![
                append(0, &[data(1, 1, 10), data(2, 1, 20)]),
                append(1, &[data(1, 1, 10), data(2, 2, 21)]),
                append(0, &[data(2, 2, 21), data(3, 2, 31)]),
            ],
        )
        .expect("legal");
    }
}
