//! The nemesis: a schedule of faults drawn from the seed, and applying and healing them.
//!
//! A round applies one fault, holds it, heals it (drops the rules, resumes paused nodes,
//! restarts killed ones, a majority of three of five included) and lets the cluster recover before the next round. Partitions are
//! iptables `DROP` rules on `INPUT` inside the receiving node's namespace, by the sender's
//! address: a two-way cut is a rule on each side, a one-way drop a rule on one side only. The
//! clients' address (the host's end of the bridge) is never dropped.

use std::fmt;
use std::time::Duration;

use crate::cluster::{self, Cluster, NODES, NodeNumber, run_in};
use crate::error::Error;
use crate::rng::Rng;

/// One fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Packets from `.0` to `.1` are dropped, for each pair; `kind` names the shape.
    Partition {
        /// The shape: majority/minority, bridge, ring, one-way.
        kind: &'static str,
        /// The groups, as printed.
        shape: String,
        /// Directed drops (from, to).
        drops: Vec<(NodeNumber, NodeNumber)>,
    },
    /// SIGKILL of these nodes (a minority, or a majority: three of five), restarted on their
    /// data when healed.
    Kill(Vec<NodeNumber>),
    /// SIGSTOP of these nodes (a minority), SIGCONT when healed.
    Pause(Vec<NodeNumber>),
}

/// One round of the schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Round {
    /// The fault.
    pub(crate) fault: Fault,
    /// How long it is held.
    pub(crate) held: Duration,
    /// How long the healed cluster runs before the next round.
    pub(crate) recovery: Duration,
}

impl fmt::Display for Round {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.fault {
            Fault::Partition { kind, shape, .. } => write!(f, "partition {kind} {shape}")?,
            Fault::Kill(nodes) if nodes.len() > NODES / 2 => {
                write!(f, "SIGKILL {nodes:?} (a majority; restarted when healed)")?;
            }
            Fault::Kill(nodes) => write!(f, "SIGKILL {nodes:?} (restarted when healed)")?,
            Fault::Pause(nodes) => write!(f, "SIGSTOP {nodes:?} (SIGCONT when healed)")?,
        }
        write!(
            f,
            " for {:.1}s, then {:.1}s healed",
            self.held.as_secs_f64(),
            self.recovery.as_secs_f64()
        )
    }
}

/// The longest a fault is held, in ms. The shortest is half of it: 5 s, well beyond the
/// election timeout (at most 400 ms with the default 20 ms ticks and 20 ticks), so a pause
/// or a cut makes the others elect a new leader meanwhile.
const HELD_MS_MAX: u64 = 10_000;
/// The healed time after each round, in ms.
const RECOVERY_MS: u64 = 4_000;

/// The rounds that fit in `seconds`, drawn from `seed`.
pub(crate) fn schedule(seed: u64, seconds: u64) -> Vec<Round> {
    let mut rng = Rng::new(seed ^ 0x6E65_6D65_7369_7300);
    let total = Duration::from_secs(seconds);
    let mut rounds = Vec::new();
    let mut used = Duration::ZERO;
    loop {
        let held = Duration::from_millis(rng.between(HELD_MS_MAX / 2, HELD_MS_MAX));
        let recovery = Duration::from_millis(RECOVERY_MS);
        if used + held + recovery > total {
            return rounds;
        }
        used += held + recovery;
        rounds.push(Round {
            fault: fault(&mut rng),
            held,
            recovery,
        });
    }
}

fn fault(rng: &mut Rng) -> Fault {
    let all: Vec<NodeNumber> = cluster::nodes().collect();
    let order = rng.shuffled(&all);
    let minority = rng.between(1, (NODES as u64 - 1) / 2) as usize;
    match rng.below(7) {
        0 => {
            let (small, large) = order.split_at(2);
            Fault::Partition {
                kind: "majority/minority",
                shape: format!("{small:?} | {large:?}"),
                drops: cut(small, large),
            }
        }
        1 => {
            // Two halves that only the bridge node hears both of.
            let (left, rest) = order.split_at(2);
            let (right, bridge) = rest.split_at(2);
            Fault::Partition {
                kind: "bridge",
                shape: format!("{left:?} | {right:?}, bridged by {bridge:?}"),
                drops: cut(left, right),
            }
        }
        2 => {
            // Each node hears only its two neighbours in the ring.
            let mut drops = Vec::new();
            for (position, &node) in order.iter().enumerate() {
                for (other_position, &other) in order.iter().enumerate() {
                    let distance = position.abs_diff(other_position);
                    if node != other && distance != 1 && distance != NODES - 1 {
                        drops.push((other, node));
                    }
                }
            }
            Fault::Partition {
                kind: "ring",
                shape: format!("{order:?} (each hears its neighbours)"),
                drops,
            }
        }
        3 => {
            // The senders are heard by nobody else; they still hear everyone.
            let (senders, receivers) = order.split_at(minority);
            let drops = senders
                .iter()
                .flat_map(|&from| receivers.iter().map(move |&to| (from, to)))
                .collect();
            Fault::Partition {
                kind: "one-way",
                shape: format!("{senders:?} -> {receivers:?} dropped"),
                drops,
            }
        }
        4 => {
            let mut nodes = order[..minority].to_vec();
            nodes.sort_unstable();
            Fault::Kill(nodes)
        }
        5 => {
            // A majority: no quorum until they come back on their data.
            let mut nodes = order[..NODES / 2 + 1].to_vec();
            nodes.sort_unstable();
            Fault::Kill(nodes)
        }
        _ => {
            let mut nodes = order[..minority].to_vec();
            nodes.sort_unstable();
            Fault::Pause(nodes)
        }
    }
}

/// Both directions between every node of `left` and every node of `right`.
fn cut(left: &[NodeNumber], right: &[NodeNumber]) -> Vec<(NodeNumber, NodeNumber)> {
    let mut drops = Vec::new();
    for &a in left {
        for &b in right {
            drops.push((a, b));
            drops.push((b, a));
        }
    }
    drops
}

/// Applies `fault`.
///
/// # Errors
///
/// [`Error`] for an iptables rule or a signal that failed.
pub(crate) fn apply(cluster: &mut Cluster, fault: &Fault) -> Result<(), Error> {
    match fault {
        Fault::Partition { drops, .. } => {
            for &(from, to) in drops {
                let source = cluster::address(from).to_string();
                run_in(
                    to,
                    &["iptables", "-A", "INPUT", "-s", &source, "-j", "DROP"],
                )?;
            }
        }
        Fault::Kill(nodes) => {
            for &node in nodes {
                cluster.kill(node)?;
            }
        }
        Fault::Pause(nodes) => {
            for &node in nodes {
                cluster.pause(node)?;
            }
        }
    }
    Ok(())
}

/// Heals everything: no rule left, every node running and resumed (a node that crashed by
/// itself is noted, then restarted).
///
/// # Errors
///
/// [`Error`] for a rule that cannot be flushed or a node that does not come back.
pub(crate) fn heal(cluster: &mut Cluster) -> Result<(), Error> {
    cluster.note_crashes();
    for node in cluster::nodes() {
        run_in(node, &["iptables", "-F", "INPUT"])?;
        cluster.resume(node)?;
    }
    cluster.restart_stopped()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_one_schedule_that_fits_its_time() {
        let rounds = schedule(7, 120);
        assert_eq!(rounds, schedule(7, 120));
        assert_ne!(rounds, schedule(8, 120));
        let total: Duration = rounds.iter().map(|round| round.held + round.recovery).sum();
        assert!(total <= Duration::from_secs(120), "{total:?}");
        assert!(rounds.len() >= 120 / 14, "{} rounds", rounds.len());
    }

    #[test]
    fn faults_leave_a_majority_untouched_or_connected_but_for_a_majority_kill() {
        let mut majority_kills = 0;
        for seed in 0..200 {
            let mut rng = Rng::new(seed);
            match fault(&mut rng) {
                Fault::Kill(nodes) if nodes.len() > NODES / 2 => {
                    assert_eq!(nodes.len(), NODES / 2 + 1, "{nodes:?}");
                    assert!(nodes.windows(2).all(|pair| pair[0] < pair[1]), "{nodes:?}");
                    majority_kills += 1;
                }
                Fault::Kill(nodes) | Fault::Pause(nodes) => {
                    assert!(!nodes.is_empty() && nodes.len() <= NODES / 2, "{nodes:?}");
                }
                Fault::Partition { drops, kind, .. } => {
                    assert!(!drops.is_empty(), "{kind}");
                    assert!(drops.iter().all(|(from, to)| from != to), "{kind}");
                    if kind == "ring" {
                        // Each node loses exactly its two non-neighbours.
                        for node in cluster::nodes() {
                            let lost = drops.iter().filter(|(_, to)| *to == node).count();
                            assert_eq!(lost, NODES - 3, "{drops:?}");
                        }
                    }
                }
            }
        }
        assert!(majority_kills > 0, "no seed of 200 kills a majority");
    }
}
