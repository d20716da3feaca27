//! The bench mode's figures (`--no-nemesis`): per kind of operation, the acknowledged
//! operations per second over the run and the latency (completion minus invocation, as the
//! client saw it, redirects included) at p50, p99 and p99.9. Unknown and failed operations
//! are left out of both.

use std::collections::BTreeMap;
use std::time::Duration;

use kommander_raft::sim::linearizability::{Command, Completion};

use crate::append::{AppendCommand, AppendRecord, AppendResult};
use crate::client::ClientRecord;
use crate::say;

/// The value at quantile `q` of `sorted` (nearest rank), `None` when empty.
fn quantile(sorted: &[u64], q: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// Latencies in µs of the acknowledged operations, by kind.
fn latencies(
    registers: &[ClientRecord],
    appends: &[AppendRecord],
) -> BTreeMap<&'static str, Vec<u64>> {
    let mut by_kind: BTreeMap<&'static str, Vec<u64>> = BTreeMap::new();
    for operation in registers.iter().flat_map(|record| &record.operations) {
        let Completion::Returned { at, .. } = operation.completion else {
            continue;
        };
        let kind = match operation.command {
            Command::Read { .. } => "register read",
            Command::Write { .. } => "register write",
            Command::CompareAndSet { .. } => "register compare-and-set",
        };
        by_kind
            .entry(kind)
            .or_default()
            .push(at.saturating_sub(operation.invoked_at));
    }
    for operation in appends.iter().flat_map(|record| &record.operations) {
        if operation.result == AppendResult::Unknown {
            continue;
        }
        let kind = match operation.command {
            AppendCommand::Append { .. } => "append",
            AppendCommand::Read { .. } => "list read",
        };
        by_kind
            .entry(kind)
            .or_default()
            .push(operation.completed_at.saturating_sub(operation.invoked_at));
    }
    for latencies in by_kind.values_mut() {
        latencies.sort_unstable();
    }
    by_kind
}

/// Prints the figures of a run of `elapsed` without faults.
pub(crate) fn report(registers: &[ClientRecord], appends: &[AppendRecord], elapsed: Duration) {
    let seconds = elapsed.as_secs_f64().max(f64::EPSILON);
    let by_kind = latencies(registers, appends);
    let total: usize = by_kind.values().map(Vec::len).sum();
    say(&format!(
        "bench: {total} acknowledged operations in {seconds:.1}s, {:.0} ops/s (latency in ms, \
         as the clients saw it)",
        total as f64 / seconds
    ));
    let ms =
        |value: Option<u64>| value.map_or("-".to_owned(), |us| format!("{:.2}", us as f64 / 1e3));
    for (kind, sorted) in &by_kind {
        say(&format!(
            "bench: {kind:<25} {:>8} ops {:>8.0} ops/s  p50 {:>7}  p99 {:>7}  p99.9 {:>7}",
            sorted.len(),
            sorted.len() as f64 / seconds,
            ms(quantile(sorted, 0.5)),
            ms(quantile(sorted, 0.99)),
            ms(quantile(sorted, 0.999)),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quantile_is_the_nearest_rank() {
        let sorted: Vec<u64> = (1..=1000).collect();
        assert_eq!(quantile(&sorted, 0.5), Some(500));
        assert_eq!(quantile(&sorted, 0.99), Some(990));
        assert_eq!(quantile(&sorted, 0.999), Some(999));
        assert_eq!(quantile(&[7], 0.999), Some(7));
        assert_eq!(quantile(&[], 0.5), None);
    }
}
