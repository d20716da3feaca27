//! The verdicts of a run: linearizability per key of the recorded register history (the
//! simulator's checker), and, once healed, every replica's state agreeing on every key.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kommander_raft::sim::linearizability::{self, Command, Completion, History, Verdict};

use crate::client::{ClientRecord, KEYS, key_path};
use crate::cluster::{self, NodeNumber};
use crate::http;
use crate::say;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Report {
    /// Linearizable, and the replicas agree.
    Pass,
    /// A linearizability violation, replicas that disagree, or a node that crashed.
    Violation,
    /// The checker's budget ran out on some key (and nothing failed).
    Inconclusive,
}

/// A stale read's deadline while comparing replicas.
const STALE_READ_TIMEOUT: Duration = Duration::from_secs(2);

/// Checks `records` and the healed cluster, printing the counts and the verdicts.
pub(crate) fn check(
    records: &[ClientRecord],
    explored_max: usize,
    converge_timeout: Duration,
    stop: &AtomicBool,
) -> Report {
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
    let mut failed_by: BTreeMap<&str, u64> = BTreeMap::new();
    for record in records {
        for (why, count) in &record.failed {
            *failed_by.entry(why.as_str()).or_default() += count;
        }
    }
    let failed: u64 = failed_by.values().sum();
    let failed_by: Vec<String> = failed_by
        .iter()
        .map(|(why, count)| format!("{why}: {count}"))
        .collect();
    let unknown: u64 = records.iter().map(|record| record.unknown).sum();
    let redirects: u64 = records.iter().map(|record| record.redirects).sum();
    let ok = history
        .operations()
        .filter(|(_, operation)| operation.completion != Completion::Unknown)
        .count();
    say(&format!(
        "history: {} operations ({reads} reads, {writes} writes, {swaps} compare-and-sets): \
         {ok} ok, {unknown} unknown; {failed} failed, left out ({}); {redirects} redirects \
         followed",
        history.len(),
        failed_by.join(", ")
    ));
    let started = Instant::now();
    let verdict = linearizability::check(&history, explored_max);
    let elapsed = started.elapsed().as_secs_f64();
    let mut report = match &verdict {
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
    };
    if !converged(converge_timeout, stop) {
        report = Report::Violation;
    }
    report
}

/// Whether every node's stale read of every key agrees within `timeout` (polled: the
/// replicas may still be catching up).
fn converged(timeout: Duration, stop: &AtomicBool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let mut disagreements = Vec::new();
        for key in 0..KEYS {
            let values: BTreeMap<NodeNumber, String> = cluster::nodes()
                .map(|node| (node, stale_read(node, key)))
                .collect();
            let first = values.values().next();
            if values.values().any(|value| Some(value) != first) {
                disagreements.push(format!("r{key}: {values:?}"));
            }
        }
        if disagreements.is_empty() {
            say(&format!(
                "replicas: all {} nodes agree on all {KEYS} keys (stale reads after healing)",
                cluster::NODES
            ));
            return true;
        }
        if Instant::now() > deadline || stop.load(Ordering::Relaxed) {
            say(&format!(
                "replicas: DISAGREE after {timeout:?}:\n  {}",
                disagreements.join("\n  ")
            ));
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Node `node`'s replica of `key`, as text (`absent`, the value, or why it did not answer).
fn stale_read(node: NodeNumber, key: u64) -> String {
    let path = format!("{}?stale=true", key_path(key));
    match http::request(
        cluster::http_address(node),
        "GET",
        &path,
        &[],
        0,
        STALE_READ_TIMEOUT,
    ) {
        Ok(answer) if answer.status == 404 => "absent".to_owned(),
        Ok(answer) if answer.status == 200 => String::from_utf8_lossy(&answer.body).into_owned(),
        Ok(answer) => format!("status {}", answer.status),
        Err(error) => format!("error: {error}"),
    }
}
