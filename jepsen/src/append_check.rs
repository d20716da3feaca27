//! The checks of the append workload's history against the final lists (read from every
//! node once healed and agreeing):
//!
//! - **lost**: every acknowledged append is in its key's final list;
//! - **duplicated**: no value appears twice in a final list;
//! - **invented**: every value in a final list was appended to that key by an append
//!   acknowledged or unknown, never by one answered `failed` (which wrote nothing);
//! - **reordered**: every acknowledged read is a prefix of its key's final list (so any two
//!   reads of a key are prefixes of each other: no reordering, no gap);
//! - **stale**: a read holds every append acknowledged before the read was invoked;
//! - **from the future**: a read holds no value whose append was invoked after the read
//!   completed.
//!
//! An unknown append may be in the list (once) or not: both are counted.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::append::{AppendCommand, AppendOperation, AppendRecord, AppendResult, GARBLED};
use crate::say;

/// Violations printed per kind (the count is always printed).
const SHOWN_MAX: usize = 10;

/// The counts and violations of one check.
#[derive(Debug, Default)]
pub(crate) struct AppendVerdict {
    /// Violations, by kind, each described.
    pub(crate) violations: BTreeMap<&'static str, Vec<String>>,
    /// Acknowledged appends.
    pub(crate) acknowledged: u64,
    /// Unknown appends found in the final lists / not found.
    pub(crate) unknown_present: u64,
    pub(crate) unknown_absent: u64,
    /// Acknowledged reads checked.
    pub(crate) reads: u64,
}

impl AppendVerdict {
    fn violation(&mut self, kind: &'static str, description: String) {
        self.violations.entry(kind).or_default().push(description);
    }

    /// Acknowledged appends missing from the final lists.
    pub(crate) fn lost(&self) -> usize {
        self.violations.get(LOST).map_or(0, Vec::len)
    }
}

const LOST: &str = "lost acknowledged appends";

fn describe(operation: &AppendOperation) -> String {
    let what = match operation.command {
        AppendCommand::Append { key, value } => format!("append {value} to a{key}"),
        AppendCommand::Read { key } => format!("read a{key}"),
    };
    let result = match &operation.result {
        AppendResult::Appended => "ok".to_owned(),
        AppendResult::Unknown => "unknown".to_owned(),
        AppendResult::Read(list) => format!("{} elements", list.len()),
    };
    format!(
        "client {} [{}, {}] {what} -> {result}",
        operation.client, operation.invoked_at, operation.completed_at
    )
}

/// Checks `records` against `finals` (each key's final list).
pub(crate) fn check(records: &[AppendRecord], finals: &BTreeMap<u64, Vec<u64>>) -> AppendVerdict {
    let mut verdict = AppendVerdict::default();
    let operations: Vec<&AppendOperation> = records
        .iter()
        .flat_map(|record| record.operations.iter())
        .collect();
    let garbled: u64 = records
        .iter()
        .filter_map(|record| record.failed.get(GARBLED))
        .sum();
    if garbled > 0 {
        verdict.violation(
            "reads answered ok with a body that is not a list",
            format!("{garbled} reads"),
        );
    }
    // Every append kept (acknowledged or unknown), by value.
    let appends: HashMap<u64, &AppendOperation> = operations
        .iter()
        .filter_map(|operation| match operation.command {
            AppendCommand::Append { value, .. } => Some((value, *operation)),
            AppendCommand::Read { .. } => None,
        })
        .collect();
    let failed: HashSet<u64> = records
        .iter()
        .flat_map(|record| record.failed_values.iter().map(|&(_, value)| value))
        .collect();
    let empty = Vec::new();
    let final_sets: BTreeMap<u64, HashSet<u64>> = finals
        .iter()
        .map(|(&key, list)| (key, list.iter().copied().collect()))
        .collect();

    for (&key, list) in finals {
        let mut seen = HashSet::new();
        for &value in list {
            if !seen.insert(value) {
                verdict.violation("duplicated", format!("{value} twice in a{key}'s list"));
            }
            match appends.get(&value) {
                Some(append) if append.command.key() == key => {}
                Some(append) => verdict.violation(
                    "invented",
                    format!(
                        "{value} in a{key}'s list, appended to another: {}",
                        describe(append)
                    ),
                ),
                None if failed.contains(&value) => verdict.violation(
                    "invented",
                    format!("{value} in a{key}'s list, though its append was answered failed"),
                ),
                None => verdict.violation(
                    "invented",
                    format!("{value} in a{key}'s list, never appended"),
                ),
            }
        }
    }

    // Acknowledged appends of each key, by completion time (for the stale-read check).
    let mut acknowledged_by_key: BTreeMap<u64, Vec<&AppendOperation>> = BTreeMap::new();
    for operation in &operations {
        let AppendCommand::Append { key, value } = operation.command else {
            continue;
        };
        let present = final_sets.get(&key).is_some_and(|set| set.contains(&value));
        match operation.result {
            AppendResult::Appended => {
                verdict.acknowledged += 1;
                acknowledged_by_key.entry(key).or_default().push(operation);
                if !present {
                    verdict.violation(LOST, describe(operation));
                }
            }
            AppendResult::Unknown if present => verdict.unknown_present += 1,
            AppendResult::Unknown => verdict.unknown_absent += 1,
            AppendResult::Read(_) => {}
        }
    }
    for appended in acknowledged_by_key.values_mut() {
        appended.sort_unstable_by_key(|operation| operation.completed_at);
    }

    for operation in &operations {
        let (AppendCommand::Read { key }, AppendResult::Read(list)) =
            (operation.command, &operation.result)
        else {
            continue;
        };
        verdict.reads += 1;
        let final_list = finals.get(&key).unwrap_or(&empty);
        if !final_list.starts_with(list) {
            let at = list
                .iter()
                .zip(final_list)
                .position(|(read, last)| read != last)
                .unwrap_or(final_list.len().min(list.len()));
            verdict.violation(
                "reordered (a read that is not a prefix of the final list)",
                format!(
                    "{}: element {at} is {:?}, the final list's is {:?}",
                    describe(operation),
                    list.get(at),
                    final_list.get(at)
                ),
            );
        }
        let read: HashSet<u64> = list.iter().copied().collect();
        for append in acknowledged_by_key.get(&key).into_iter().flatten() {
            if append.completed_at >= operation.invoked_at {
                break;
            }
            let AppendCommand::Append { value, .. } = append.command else {
                continue;
            };
            if !read.contains(&value) {
                verdict.violation(
                    "stale read (misses an append acknowledged before it began)",
                    format!("{} misses {}", describe(operation), describe(append)),
                );
            }
        }
        for value in list {
            if let Some(append) = appends.get(value)
                && append.invoked_at > operation.completed_at
            {
                verdict.violation(
                    "read from the future (holds an append invoked after it completed)",
                    format!("{} holds {}", describe(operation), describe(append)),
                );
            }
        }
    }
    verdict
}

/// Prints `verdict`; true when it found no violation.
pub(crate) fn report(verdict: &AppendVerdict) -> bool {
    say(&format!(
        "appends: {} acknowledged, unknown {} in the lists and {} not; {} reads checked; \
         {} lost acknowledged appends",
        verdict.acknowledged,
        verdict.unknown_present,
        verdict.unknown_absent,
        verdict.reads,
        verdict.lost()
    ));
    if verdict.violations.is_empty() {
        say(
            "appends: OK (nothing lost, duplicated, invented, reordered, stale or from the future)",
        );
        return true;
    }
    for (kind, descriptions) in &verdict.violations {
        say(&format!(
            "appends: VIOLATION, {kind}: {}",
            descriptions.len()
        ));
        for description in descriptions.iter().take(SHOWN_MAX) {
            say(&format!("    {description}"));
        }
        if descriptions.len() > SHOWN_MAX {
            say(&format!(
                "    ... and {} more",
                descriptions.len() - SHOWN_MAX
            ));
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(
        client: u64,
        command: AppendCommand,
        at: (u64, u64),
        result: AppendResult,
    ) -> AppendOperation {
        AppendOperation {
            client,
            command,
            invoked_at: at.0,
            completed_at: at.1,
            result,
        }
    }

    fn append(value: u64, at: (u64, u64), result: AppendResult) -> AppendOperation {
        op(0, AppendCommand::Append { key: 0, value }, at, result)
    }

    fn read(at: (u64, u64), list: &[u64]) -> AppendOperation {
        op(
            1,
            AppendCommand::Read { key: 0 },
            at,
            AppendResult::Read(list.to_vec()),
        )
    }

    fn verdict(operations: Vec<AppendOperation>, failed: &[u64], last: &[u64]) -> AppendVerdict {
        let record = AppendRecord {
            operations,
            failed_values: failed.iter().map(|&value| (0, value)).collect(),
            ..AppendRecord::default()
        };
        check(&[record], &BTreeMap::from([(0, last.to_vec())]))
    }

    fn kinds(verdict: &AppendVerdict) -> Vec<&'static str> {
        verdict.violations.keys().copied().collect()
    }

    #[test]
    fn a_history_that_keeps_every_promise_passes() {
        let ok = verdict(
            vec![
                append(1, (0, 10), AppendResult::Appended),
                read((5, 12), &[]),
                read((11, 20), &[1]),
                append(2, (15, 30), AppendResult::Unknown),
                append(3, (16, 31), AppendResult::Unknown),
                read((40, 50), &[1, 3]),
            ],
            &[4],
            &[1, 3],
        );
        assert!(ok.violations.is_empty(), "{:?}", ok.violations);
        assert_eq!((ok.unknown_present, ok.unknown_absent), (1, 1));
    }

    #[test]
    fn each_broken_promise_is_reported_as_what_it_is() {
        let lost = verdict(vec![append(1, (0, 10), AppendResult::Appended)], &[], &[]);
        assert_eq!(kinds(&lost), vec![LOST]);
        assert_eq!(lost.lost(), 1);

        let twice = verdict(
            vec![append(1, (0, 10), AppendResult::Unknown)],
            &[],
            &[1, 1],
        );
        assert_eq!(kinds(&twice), vec!["duplicated"]);

        let failed_written = verdict(vec![], &[7], &[7]);
        assert_eq!(kinds(&failed_written), vec!["invented"]);

        let reordered = verdict(
            vec![
                append(1, (0, 10), AppendResult::Appended),
                append(2, (0, 10), AppendResult::Appended),
                read((20, 30), &[2, 1]),
            ],
            &[],
            &[1, 2],
        );
        assert_eq!(
            kinds(&reordered),
            vec!["reordered (a read that is not a prefix of the final list)"]
        );

        let stale = verdict(
            vec![
                append(1, (0, 10), AppendResult::Appended),
                read((20, 30), &[]),
            ],
            &[],
            &[1],
        );
        assert_eq!(
            kinds(&stale),
            vec!["stale read (misses an append acknowledged before it began)"]
        );

        let future = verdict(
            vec![
                read((0, 10), &[1]),
                append(1, (20, 30), AppendResult::Appended),
            ],
            &[],
            &[1],
        );
        assert_eq!(
            kinds(&future),
            vec!["read from the future (holds an append invoked after it completed)"]
        );
    }
}
