//! Whether the replicas agree on every committed index: each node's `GET /_debug/applied`
//! gives, per partition, the index its state machine applied through and a digest of its
//! state (every key and value) at exactly that index. A sampler asks every node twice a
//! second during the run, and once more after healing when every node has caught up; two
//! nodes seen at the same (partition, applied index) must report the same digest. The store
//! is deterministic, so equal digests at an index mean the nodes applied the same entries
//! through it.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::cluster::{self, NodeNumber};
use crate::http;
use crate::say;

/// How often the sampler asks every node.
const SAMPLE_INTERVAL: Duration = Duration::from_millis(500);
/// The deadline of one `/_debug/applied` request (a paused node does not answer).
const REQUEST_TIMEOUT: Duration = Duration::from_millis(500);
/// Disagreements printed (all are counted).
const SHOWN_MAX: usize = 10;

/// One partition's state on one node.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Applied {
    partition: u64,
    applied: u64,
    digest: String,
}

/// What was seen at one (partition, index).
#[derive(Debug)]
struct Point {
    digest: String,
    first: NodeNumber,
    /// Nodes seen there (bit `n`: node `n`).
    nodes: u32,
}

/// Every (partition, applied index) seen, with its digest.
#[derive(Debug, Default)]
pub(crate) struct Samples {
    points: HashMap<(u64, u64), Point>,
    disagreements: Vec<String>,
}

impl Samples {
    fn add(&mut self, node: NodeNumber, states: Vec<Applied>) {
        for state in states {
            let point = self
                .points
                .entry((state.partition, state.applied))
                .or_insert_with(|| Point {
                    digest: state.digest.clone(),
                    first: node,
                    nodes: 0,
                });
            point.nodes |= 1 << node;
            if point.digest != state.digest {
                self.disagreements.push(format!(
                    "partition {} at index {}: node {} has digest {}, node {node} {}",
                    state.partition, state.applied, point.first, point.digest, state.digest
                ));
            }
        }
    }

    /// (partition, index) points seen on at least two nodes.
    fn compared(&self) -> usize {
        self.points
            .values()
            .filter(|point| point.nodes.count_ones() >= 2)
            .count()
    }
}

/// Node `node`'s applied states, or `None` when it does not answer.
fn applied(node: NodeNumber) -> Option<Vec<Applied>> {
    let answer = http::request(
        cluster::http_address(node),
        "GET",
        "/_debug/applied",
        &[],
        0,
        REQUEST_TIMEOUT,
    )
    .ok()?;
    if answer.status != 200 {
        return None;
    }
    let body: serde_json::Value = serde_json::from_slice(&answer.body).ok()?;
    body.get("partitions")?
        .as_array()?
        .iter()
        .map(|state| {
            Some(Applied {
                partition: state.get("partition")?.as_u64()?,
                applied: state.get("applied")?.as_u64()?,
                digest: state.get("digest")?.as_str()?.to_owned(),
            })
        })
        .collect()
}

/// Samples every node until `stop` is set (run on its own thread during the workload).
pub(crate) fn sample_until(stop: &AtomicBool) -> Samples {
    let mut samples = Samples::default();
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        for node in cluster::nodes() {
            if let Some(states) = applied(node) {
                samples.add(node, states);
            }
        }
        std::thread::sleep(SAMPLE_INTERVAL.saturating_sub(started.elapsed()));
    }
    samples
}

/// After healing: waits (at most `timeout`) until every node answers at the same applied
/// index in every partition, adds those states to `samples`, and prints the verdict. True
/// when every node caught up and no two nodes ever disagreed at one index.
pub(crate) fn agree(mut samples: Samples, timeout: Duration, stop: &AtomicBool) -> bool {
    let deadline = Instant::now() + timeout;
    let last = loop {
        let states: BTreeMap<NodeNumber, Option<Vec<Applied>>> =
            cluster::nodes().map(|node| (node, applied(node))).collect();
        let indexes: BTreeMap<NodeNumber, Vec<(u64, u64)>> = states
            .iter()
            .filter_map(|(&node, states)| {
                let states = states.as_ref()?;
                Some((
                    node,
                    states.iter().map(|s| (s.partition, s.applied)).collect(),
                ))
            })
            .collect();
        let caught_up = indexes.len() == cluster::NODES
            && indexes.values().all(|i| Some(i) == indexes.values().next());
        if caught_up || Instant::now() > deadline || stop.load(Ordering::Relaxed) {
            for (node, states) in states {
                if let Some(states) = states {
                    samples.add(node, states);
                }
            }
            break if caught_up {
                Ok(indexes.into_values().next().unwrap_or_default())
            } else {
                Err(indexes)
            };
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let compared = samples.compared();
    let mut ok = samples.disagreements.is_empty();
    match &last {
        Ok(indexes) => say(&format!(
            "replica states: after healing every node applied through (partition, index) \
             {indexes:?}; {compared} (partition, index) points seen on two or more nodes \
             during the run and after"
        )),
        Err(indexes) => {
            ok = false;
            say(&format!(
                "replica states: NOT CAUGHT UP after {timeout:?}: (partition, applied index) \
                 per answering node {indexes:?}"
            ));
        }
    }
    if samples.disagreements.is_empty() {
        say("replica states: OK, equal digests wherever two nodes stood at one index");
    } else {
        say(&format!(
            "replica states: DISAGREE at {} points:",
            samples.disagreements.len()
        ));
        for line in samples.disagreements.iter().take(SHOWN_MAX) {
            say(&format!("    {line}"));
        }
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(partition: u64, applied: u64, digest: &str) -> Applied {
        Applied {
            partition,
            applied,
            digest: digest.to_owned(),
        }
    }

    #[test]
    fn two_nodes_at_one_index_with_different_digests_disagree() {
        let mut samples = Samples::default();
        samples.add(1, vec![state(1, 10, "aa"), state(2, 7, "bb")]);
        samples.add(2, vec![state(1, 10, "aa"), state(2, 8, "cc")]);
        assert!(samples.disagreements.is_empty());
        assert_eq!(samples.compared(), 1);
        samples.add(3, vec![state(2, 8, "dd")]);
        assert_eq!(
            samples.disagreements.len(),
            1,
            "{:?}",
            samples.disagreements
        );
        assert_eq!(samples.compared(), 2);
    }
}
