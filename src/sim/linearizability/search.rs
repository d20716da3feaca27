//! The Wing–Gong–Lowe search over one key's operations, as Porcupine does it.
//!
//! The operations become a doubly linked list of call and return entries in time order. The
//! search walks it from the front: at a call entry it tries to linearize that operation next
//! (the model must accept its answer), and if the pair (set of linearized operations, value)
//! was never reached before, it takes the operation out of the list and starts again from the
//! front; at a return entry it has met an operation whose answer came before it was placed, so
//! it undoes the last placement and tries the entry after it. The cache of reached pairs is
//! Lowe's memoisation: a pair reached twice has the same future, so it is explored once.
//!
//! An operation with an unknown outcome returns at +infinity: it may be placed anywhere after
//! its invocation, and needs no place at all (taking effect after everything else is the same,
//! for every answer in the history, as never taking effect), so the search succeeds as soon as
//! every answered operation is placed.

use std::collections::HashSet;

use super::history::{Completion, Operation};
use super::model::step;

/// End of the entry list.
const NIL: usize = usize::MAX;
/// The list's head sentinel (entry 0); its `next` is the first live entry.
const HEAD: usize = 0;

/// How the search over one key ended. Indices are into the operations it was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum KeyOutcome {
    /// Every answered operation found its place; `explored` distinct states were reached.
    Linearizable { explored: usize },
    /// No order exists; the deepest dead end found.
    Violation(DeadEnd),
    /// More than `explored_max` states were reached before an answer.
    Inconclusive { explored: usize },
}

/// The deepest point the search reached before it had to back up for good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DeadEnd {
    /// The operations placed, in linearization order.
    pub(super) prefix: Vec<usize>,
    /// The key's value after them.
    pub(super) value: Option<u64>,
    /// The operation whose answer came while no placement of it (or of the others) worked.
    pub(super) blocked: usize,
    /// The other unplaced operations invoked before `blocked` completed: the candidates the
    /// search tried after the prefix.
    pub(super) pending: Vec<usize>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    operation: usize,
    is_call: bool,
    /// The call's return entry, or the return's call entry.
    partner: usize,
    prev: usize,
    next: usize,
}

/// The live entries, with the links of removed ones kept so that they can be put back in
/// reverse order of removal (dancing links).
struct EntryList {
    entries: Vec<Entry>,
}

impl EntryList {
    /// Calls and returns of `operations` in time order: earlier first; at equal times calls
    /// before returns (equal stamps are concurrent); unknown outcomes return last.
    fn new(operations: &[Operation]) -> Self {
        // (returns at infinity, time, return after call, operation): a total order.
        let mut events: Vec<(bool, u64, bool, usize)> = Vec::with_capacity(operations.len() * 2);
        for (index, operation) in operations.iter().enumerate() {
            events.push((false, operation.invoked_at, false, index));
            events.push(match operation.completion {
                Completion::Returned { at, .. } => (false, at, true, index),
                Completion::Unknown => (true, 0, true, index),
            });
        }
        events.sort_unstable();
        let mut entries = Vec::with_capacity(events.len() + 1);
        entries.push(Entry {
            operation: usize::MAX,
            is_call: false,
            partner: NIL,
            prev: NIL,
            next: if events.is_empty() { NIL } else { 1 },
        });
        let mut call_entry = vec![NIL; operations.len()];
        for (position, &(_, _, is_return, operation)) in events.iter().enumerate() {
            let index = position + 1;
            let partner = if is_return {
                let call = call_entry[operation];
                assert!(call != NIL, "a call sorts before its return");
                entries[call].partner = index;
                call
            } else {
                call_entry[operation] = index;
                NIL
            };
            entries.push(Entry {
                operation,
                is_call: !is_return,
                partner,
                prev: index - 1,
                next: if index == events.len() {
                    NIL
                } else {
                    index + 1
                },
            });
        }
        Self { entries }
    }

    /// Takes the call entry `call` and its return out of the list.
    fn lift(&mut self, call: usize) {
        let Entry {
            prev,
            next,
            partner,
            ..
        } = self.entries[call];
        self.entries[prev].next = next;
        // A call's return is after it, so a call is never last.
        self.entries[next].prev = prev;
        let Entry { prev, next, .. } = self.entries[partner];
        self.entries[prev].next = next;
        if next != NIL {
            self.entries[next].prev = prev;
        }
    }

    /// Puts back what `lift(call)` took out; lifts are undone last first.
    fn unlift(&mut self, call: usize) {
        let ret = self.entries[call].partner;
        let Entry { prev, next, .. } = self.entries[ret];
        self.entries[prev].next = ret;
        if next != NIL {
            self.entries[next].prev = ret;
        }
        let Entry { prev, next, .. } = self.entries[call];
        self.entries[prev].next = call;
        self.entries[next].prev = call;
    }

    /// The unplaced operations whose call entries come before entry `until`.
    fn calls_before(&self, until: usize) -> Vec<usize> {
        let mut calls = Vec::new();
        let mut entry = self.entries[HEAD].next;
        while entry != until && entry != NIL {
            if self.entries[entry].is_call {
                calls.push(self.entries[entry].operation);
            }
            entry = self.entries[entry].next;
        }
        calls
    }
}

/// Which operations are placed, one bit each; with the value, the memoisation key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Placed(Box<[u64]>);

impl Placed {
    fn new(operations: usize) -> Self {
        Self(vec![0; operations.div_ceil(64)].into_boxed_slice())
    }

    fn set(&mut self, operation: usize) {
        self.0[operation / 64] |= 1 << (operation % 64);
    }

    fn clear(&mut self, operation: usize) {
        self.0[operation / 64] &= !(1 << (operation % 64));
    }
}

/// Searches for a linearization of `operations` (all on one key, which starts absent),
/// reaching at most `explored_max` distinct states.
pub(super) fn search(operations: &[Operation], explored_max: usize) -> KeyOutcome {
    let answered =
        |index: usize| matches!(operations[index].completion, Completion::Returned { .. });
    let mut unplaced_answered = (0..operations.len()).filter(|&i| answered(i)).count();
    if unplaced_answered == 0 {
        return KeyOutcome::Linearizable { explored: 0 };
    }
    let mut list = EntryList::new(operations);
    let mut placed = Placed::new(operations.len());
    let mut reached: HashSet<(Placed, Option<u64>)> = HashSet::new();
    // The placements made, as (call entry, value before it).
    let mut stack: Vec<(usize, Option<u64>)> = Vec::new();
    let mut value: Option<u64> = None;
    let mut deepest: Option<DeadEnd> = None;
    let mut entry = list.entries[HEAD].next;
    loop {
        // An answered operation is unplaced, so its return entry is still ahead: never NIL.
        let Entry {
            operation,
            is_call,
            next,
            ..
        } = list.entries[entry];
        if is_call {
            let op = &operations[operation];
            let response = match &op.completion {
                Completion::Returned { response, .. } => Some(response),
                Completion::Unknown => None,
            };
            if let Some(after) = step(value, &op.command, response) {
                placed.set(operation);
                if reached.insert((placed.clone(), after)) {
                    if reached.len() > explored_max {
                        return KeyOutcome::Inconclusive {
                            explored: reached.len(),
                        };
                    }
                    stack.push((entry, value));
                    value = after;
                    if answered(operation) {
                        unplaced_answered -= 1;
                        if unplaced_answered == 0 {
                            return KeyOutcome::Linearizable {
                                explored: reached.len(),
                            };
                        }
                    }
                    list.lift(entry);
                    entry = list.entries[HEAD].next;
                    continue;
                }
                placed.clear(operation);
            }
            entry = next;
        } else {
            // `operation` was answered before it could be placed after the current prefix.
            if deepest
                .as_ref()
                .is_none_or(|dead_end| stack.len() > dead_end.prefix.len())
            {
                deepest = Some(DeadEnd {
                    prefix: stack
                        .iter()
                        .map(|&(call, _)| list.entries[call].operation)
                        .collect(),
                    value,
                    blocked: operation,
                    pending: list
                        .calls_before(entry)
                        .into_iter()
                        .filter(|&other| other != operation)
                        .collect(),
                });
            }
            let Some((call, before)) = stack.pop() else {
                let dead_end = deepest.expect("recorded at this return entry");
                return KeyOutcome::Violation(dead_end);
            };
            let undone = list.entries[call].operation;
            value = before;
            placed.clear(undone);
            if answered(undone) {
                unplaced_answered += 1;
            }
            list.unlift(call);
            entry = list.entries[call].next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::linearizability::history::{Command, Response};

    fn operation(command: Command, invoked_at: u64, completion: Completion) -> Operation {
        Operation {
            client: 0,
            command,
            invoked_at,
            completion,
        }
    }

    fn read(value: Option<u64>, invoked_at: u64, at: u64) -> Operation {
        operation(
            Command::Read { key: 0 },
            invoked_at,
            Completion::Returned {
                response: Response::Read(value),
                at,
            },
        )
    }

    fn write(value: u64, invoked_at: u64, completion: Completion) -> Operation {
        operation(Command::Write { key: 0, value }, invoked_at, completion)
    }

    /// The live entries from the head, as (operation, is_call), checking the back links.
    fn walk(list: &EntryList) -> Vec<(usize, bool)> {
        let mut seen = Vec::new();
        let mut previous = HEAD;
        let mut entry = list.entries[HEAD].next;
        while entry != NIL {
            assert_eq!(list.entries[entry].prev, previous, "back link of {entry}");
            seen.push((list.entries[entry].operation, list.entries[entry].is_call));
            previous = entry;
            entry = list.entries[entry].next;
        }
        seen
    }

    #[test]
    fn entries_are_in_time_order_calls_first_at_a_tie_unknown_returns_last() {
        let operations = [
            write(1, 10, Completion::Unknown),
            read(None, 0, 10),
            read(None, 5, 30),
        ];
        let list = EntryList::new(&operations);
        assert_eq!(
            walk(&list),
            vec![
                (1, true),
                (2, true),
                (0, true),
                (1, false),
                (2, false),
                (0, false)
            ]
        );
    }

    #[test]
    fn lifts_are_undone_exactly_in_reverse_order() {
        let operations = [
            read(None, 0, 10),
            read(None, 1, 2),
            read(None, 3, 20),
            write(4, 5, Completion::Unknown),
        ];
        let mut list = EntryList::new(&operations);
        let original = walk(&list);
        // Lift a call whose return follows it directly, then others around it.
        let calls: Vec<usize> = (1..list.entries.len())
            .filter(|&entry| list.entries[entry].is_call)
            .collect();
        for &call in &calls {
            list.lift(call);
            assert!(
                walk(&list)
                    .iter()
                    .all(|&(op, _)| op != list.entries[call].operation)
            );
        }
        assert!(walk(&list).is_empty());
        for &call in calls.iter().rev() {
            list.unlift(call);
        }
        assert_eq!(walk(&list), original);
    }

    #[test]
    fn a_dead_end_names_the_prefix_the_blocked_operation_and_the_candidates() {
        // w1 completes; then w2 and a read of 1 run concurrently with w3; a later read of 1 is
        // impossible once w2 (completed before it) is placed.
        let returned = |at| Completion::Returned {
            response: Response::Write,
            at,
        };
        let operations = [
            write(1, 0, returned(10)),
            write(2, 20, returned(30)),
            write(3, 20, Completion::Unknown),
            read(Some(1), 40, 50),
        ];
        let KeyOutcome::Violation(dead_end) = search(&operations, 1_000) else {
            panic!("the read of 1 after w2 completed is impossible");
        };
        assert_eq!(dead_end.blocked, 3);
        assert_eq!(dead_end.prefix, vec![0, 1, 2]);
        assert_eq!(dead_end.value, Some(3));
        assert!(dead_end.pending.is_empty());
        // Without w2 it is linearizable: w3 may never have happened.
        let fine = [operations[0], operations[2], operations[3]];
        assert!(matches!(
            search(&fine, 1_000),
            KeyOutcome::Linearizable { .. }
        ));
    }

    #[test]
    fn the_budget_counts_distinct_states() {
        let operations = [read(None, 0, 10), read(None, 0, 10)];
        assert_eq!(
            search(&operations, 1),
            KeyOutcome::Inconclusive { explored: 2 }
        );
        assert_eq!(
            search(&operations, 2),
            KeyOutcome::Linearizable { explored: 2 }
        );
    }
}
