//! The verdicts of a run: linearizability per key of the recorded register history (the
//! simulator's checker), and, once healed, every replica's state agreeing on every key (whose
//! agreed values are the append workload's final lists).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kommander_raft::sim::linearizability::{self, Command, Completion, History, Verdict};

use crate::client::{ClientRecord, KEYS};
use crate::cluster::{self, NodeNumber};
use crate::http;
use crate::say;

/// How a run ended (ordered: the worse verdict of two is the larger).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Report {
    /// Linearizable, and the replicas agree.
    Pass,
    /// The checker's budget ran out on some key (and nothing failed).
    Inconclusive,
    /// A linearizability violation, a broken append promise, replicas that disagree, or a
    /// node that crashed.
    Violation,
}

/// A stale read's deadline while comparing replicas.
const STALE_READ_TIMEOUT: Duration = Duration::from_secs(2);

/// Checks the register workload's `records` for linearizability, printing the counts and
/// the verdict.
pub(crate) fn register(records: &[ClientRecord], explored_max: usize) -> Report {
    let mut history = History::new();
    let (mut reads, mut writes, mut swaps) = (0_u64, 0_u64, 0_u64);
    for record in records {
        for operation in &record.operations {
            match operation.command {
                Command::Read { .. } => reads += 1,
                Command::Write { .. } => writes += 1,
                Command::CompareAndSet { .. } => swaps += 1,
            }
            if let Err(error) = history.push(*operation) {
                // The clients record only well-formed operations: a refusal is a harness bug.
                say(&format!(
                    "harness bug, operation refused by the history: {error}"
                ));
                return Report::Violation;
            }
        }
    }
    let (failed, failed_by) = failed_summary(records.iter().map(|record| &record.failed));
    let unknown: u64 = records.iter().map(|record| record.unknown).sum();
    let redirects: u64 = records.iter().map(|record| record.redirects).sum();
    let ok = history
        .operations()
        .filter(|(_, operation)| operation.completion != Completion::Unknown)
        .count();
    say(&format!(
        "history: {} operations ({reads} reads, {writes} writes, {swaps} compare-and-sets): \
         {ok} ok, {unknown} unknown; {failed} failed, left out ({failed_by}); {redirects} \
         redirects followed",
        history.len(),
    ));
    let started = Instant::now();
    let verdict = linearizability::check(&history, explored_max);
    let elapsed = started.elapsed().as_secs_f64();
    match &verdict {
        Verdict::Linearizable { explored } => {
            say(&format!(
                "linearizability: OK on {KEYS} keys ({explored} states explored, {elapsed:.1}s)"
            ));
            Report::Pass
        }
        Verdict::Violation(violation) => {
            say(&format!(
                "linearizability: VIOLATION on key r{} ({elapsed:.1}s); the key's operations \
                 around it (times in µs since the start):\n{violation}",
                violation.key
            ));
            Report::Violation
        }
        Verdict::Inconclusive { key, explored } => {
            say(&format!(
                "linearizability: INCONCLUSIVE: key r{key}'s search passed {explored} states \
                 (--explored-max)"
            ));
            Report::Inconclusive
        }
    }
}

/// The operations left out as failed, summed over the clients' counts by why: the total and
/// `why: count, ...`.
pub(crate) fn failed_summary<'a>(
    counts: impl Iterator<Item = &'a BTreeMap<String, u64>>,
) -> (u64, String) {
    let mut failed_by: BTreeMap<&str, u64> = BTreeMap::new();
    for counts in counts {
        for (why, count) in counts {
            *failed_by.entry(why.as_str()).or_default() += count;
        }
    }
    let failed = failed_by.values().sum();
    let failed_by: Vec<String> = failed_by
        .iter()
        .map(|(why, count)| format!("{why}: {count}"))
        .collect();
    (failed, failed_by.join(", "))
}

/// Whether every node's stale read of every key path in `paths` agrees within `timeout`
/// (polled: the replicas may still be catching up); the agreed values by path when they do.
pub(crate) fn converged(
    paths: &[String],
    timeout: Duration,
    stop: &AtomicBool,
) -> Option<BTreeMap<String, StaleValue>> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut disagreements = Vec::new();
        let mut agreed = BTreeMap::new();
        for path in paths {
            let values: BTreeMap<NodeNumber, StaleValue> = cluster::nodes()
                .map(|node| (node, stale_read(node, path)))
                .collect();
            let first = values.values().next().cloned();
            if values.values().any(|value| Some(value) != first.as_ref()) {
                disagreements.push(format!("{path}: {values:?}"));
            } else if let Some(value) = first {
                agreed.insert(path.clone(), value);
            }
        }
        if disagreements.is_empty() {
            say(&format!(
                "replicas: all {} nodes agree on all {} keys (stale reads after healing)",
                cluster::NODES,
                paths.len()
            ));
            return Some(agreed);
        }
        if Instant::now() > deadline || stop.load(Ordering::Relaxed) {
            say(&format!(
                "replicas: DISAGREE after {timeout:?}:\n  {}",
                disagreements.join("\n  ")
            ));
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A node's replica of a key, read with `?stale=true`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StaleValue {
    Absent,
    Value(Vec<u8>),
    /// The node did not answer with a value: why.
    NoAnswer(String),
}

/// Node `node`'s replica of the key at `path`.
fn stale_read(node: NodeNumber, path: &str) -> StaleValue {
    let path = format!("{path}?stale=true");
    match http::request(
        cluster::http_address(node),
        "GET",
        &path,
        &[],
        0,
        STALE_READ_TIMEOUT,
    ) {
        Ok(answer) if answer.status == 404 => StaleValue::Absent,
        Ok(answer) if answer.status == 200 => StaleValue::Value(answer.body),
        Ok(answer) => StaleValue::NoAnswer(format!("status {}", answer.status)),
        Err(error) => StaleValue::NoAnswer(error.to_string()),
    }
}
