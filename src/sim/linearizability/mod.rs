//! A linearizability checker for a key-value store's client histories (Wing–Gong–Lowe, with
//! Porcupine's entry list and P-compositionality).
//!
//! A [`History`] records, per operation, the client, the [`Command`] (write, read,
//! compare-and-set on a `u64` key), when it was invoked, and its [`Completion`]: a definite
//! answer at a time, or [`Completion::Unknown`] (it may have taken effect at any time after its
//! invocation, or never). Operations answered with a definite failure are left out
//! ([`History::fail`]). [`check`] asks whether some total order of the operations respects real
//! time (an operation that completed before another was invoked comes first) and gives every
//! answer the sequential store would give, every key starting absent.
//!
//! Keys are independent (a history is linearizable exactly when each key's sub-history is:
//! P-compositionality), so each key is searched alone, smallest key first, with its own budget
//! of `explored_max` states; a search that exceeds it makes the verdict
//! [`Verdict::Inconclusive`], never a pass. The search lives in `search.rs`, the sequential
//! model of one key in `model.rs`.
//!
//! ```
//! use kommander_raft::sim::linearizability::{
//!     check, Command, Completion, History, Operation, Response, Verdict,
//! };
//! let mut history = History::new();
//! let write = history.invoke(1, Command::Write { key: 7, value: 1 }, 0);
//! history.complete(write, Response::Write, 10)?;
//! // Invoked after the write completed, yet it does not see it.
//! history.push(Operation {
//!     client: 2,
//!     command: Command::Read { key: 7 },
//!     invoked_at: 11,
//!     completion: Completion::Returned { response: Response::Read(None), at: 12 },
//! })?;
//! let Verdict::Violation(violation) = check(&history, 10_000) else {
//!     panic!("a stale read must be caught");
//! };
//! assert_eq!(violation.key, 7);
//! println!("{violation}");
//! # Ok::<(), kommander_raft::sim::linearizability::HistoryError>(())
//! ```

mod history;
mod model;
mod search;
mod verdict;

use std::collections::BTreeMap;

pub use history::{Command, Completion, History, HistoryError, Operation, OperationId, Response};
pub use verdict::{Verdict, Violation};

use search::{KeyOutcome, search};

/// Checks that `history` is linearizable, searching each key through at most `explored_max`
/// distinct states (a state is a set of placed operations with the key's value after them).
///
/// The verdict is a [`Verdict::Violation`] if any key has one (the smallest such key), else
/// [`Verdict::Inconclusive`] if any key's search was cut short, else
/// [`Verdict::Linearizable`]. Deterministic: the same history gives the same verdict.
pub fn check(history: &History, explored_max: usize) -> Verdict {
    let mut by_key: BTreeMap<u64, Vec<(OperationId, Operation)>> = BTreeMap::new();
    for (id, operation) in history.operations() {
        // An unknown read may not have happened and changes nothing if it did: no constraint.
        let unknown_read = matches!(operation.command, Command::Read { .. })
            && operation.completion == Completion::Unknown;
        if !unknown_read {
            by_key
                .entry(operation.command.key())
                .or_default()
                .push((id, *operation));
        }
    }
    let mut explored_total = 0;
    let mut inconclusive = None;
    for (key, entries) in by_key {
        let operations: Vec<Operation> = entries.iter().map(|&(_, operation)| operation).collect();
        match search(&operations, explored_max) {
            KeyOutcome::Linearizable { explored } => explored_total += explored,
            KeyOutcome::Inconclusive { explored } => {
                inconclusive.get_or_insert(Verdict::Inconclusive { key, explored });
            }
            KeyOutcome::Violation(dead_end) => {
                let named = |index: usize| entries[index];
                return Verdict::Violation(Box::new(Violation {
                    key,
                    operations: entries.len(),
                    prefix: dead_end.prefix.iter().map(|&index| named(index)).collect(),
                    value: dead_end.value,
                    blocked: named(dead_end.blocked),
                    pending: dead_end.pending.iter().map(|&index| named(index)).collect(),
                }));
            }
        }
    }
    inconclusive.unwrap_or(Verdict::Linearizable {
        explored: explored_total,
    })
}
