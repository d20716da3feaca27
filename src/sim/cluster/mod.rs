//! The simulation proper: nodes hosting the core's replicas, a disk per node, the network, the
//! clients and the nemesis, all driven by one agenda on one thread from one seed.
//!
//! Every node keeps, per partition, the core's [`Replica`] (volatile: gone on crash) and a
//! durable image (hard state, log, compaction floor) that only completed disk flushes change.
//! A Ready's writes are queued on the node's disk; a flush completes after a simulated latency
//! and covers every write queued when it started (group commit). Only then is
//! [`Replica::persisted`] called and the Ready's gated messages released, exactly as the Ready
//! contract demands; its other messages leave at once. A crash drops the volatile replica and
//! every queued write; a restart rebuilds the replica from the durable image.
//!
//! The application behind every replica is modelled as durable: what it consumed survives a
//! crash and is handed back on restart, so "delivered exactly once" is checked across
//! restarts, not only within one incarnation.
//!
//! This file holds the cluster's state; each job has a file of its own: `run` (the agenda's
//! events and their dispatch), `drive` (handling Readies, sending), `disk` (durable images,
//! group-commit flushes), `lifecycle` (crash, restart), `nemesis` (fault injection), `client`
//! (the workload), `snapshot` (snapshot transfer), `observe` (what the checkers are told) and
//! `report` (the run's result).

mod client;
mod disk;
mod drive;
mod lifecycle;
mod membership;
mod nemesis;
mod observe;
mod report;
mod run;
mod snapshot;

use std::collections::{BTreeMap, VecDeque};
use std::fmt;

use bytes::Bytes;

use super::checkers::{Checkers, Violation};
use super::config::SimConfig;
use super::event_queue::EventQueue;
use super::network::{Network, NetworkConfig};
use super::observation::{self, Observation, ObservedEntry, ObservedLog};
use super::rng::SimRng;
use super::trace::TraceHash;
use crate::core::{
    Configuration, DurableState, Entry, EntryKind, Floor, GatedMessages, HardState, LogIndex,
    Message, NodeId, Outcome, PartitionId, ProgressState, Ready, Replica, ReplicaConfig, Role,
    Status, Term, Ticket,
};

#[cfg(feature = "sim-bugs")]
pub use crate::core::InjectedBug;
use client::SimClient;
use disk::{Durable, PendingWrite};
pub use report::{SimFailure, SimReport, replay_command};
use run::Event;

#[derive(Debug)]
struct SimReplica {
    core: Option<Replica>,
    durable: Durable,
    /// The application's durable cursor: the `committed_through` it last consumed.
    applied: LogIndex,
    /// Last commit index reported to the checkers (this incarnation).
    observed_commit: u64,
}

#[derive(Debug)]
struct Node {
    up: bool,
    incarnation: u64,
    replicas: Vec<SimReplica>,
    disk_queue: VecDeque<PendingWrite>,
    /// Writes covered by the flush in progress (0: disk idle).
    flushing: usize,
    tick_ms: u64,
    /// Crash as soon as this node sends while it has unflushed writes.
    crash_after_send: bool,
    /// Cut this node off the network the moment its commit index next advances (before the
    /// messages of that step leave): the instant a leader has just committed is when Raft's
    /// figure-8 rule matters.
    isolate_on_commit: bool,
    /// Cut this node off the moment it next becomes leader (before its barrier leaves).
    isolate_on_leadership: bool,
    /// The process is stopped (SIGSTOP) until this time: no ticks, no input handled, nothing
    /// sent; its network connections and disk stay up, so input waits for it.
    paused_until: u64,
}

/// One seeded run of the cluster.
pub struct Simulation {
    seed: u64,
    config: SimConfig,
    bug_name: Option<String>,
    #[cfg(feature = "sim-bugs")]
    bug: Option<InjectedBug>,
    now: u64,
    agenda: EventQueue<Event>,
    network: Network,
    nodes: Vec<Node>,
    clients: Vec<SimClient>,
    checkers: Checkers,
    trace: TraceHash,
    faults_active: bool,
    cut_generation: u64,
    settled_at: Option<u64>,
    net_rng: SimRng,
    disk_rng: SimRng,
    client_rng: SimRng,
    nemesis_rng: SimRng,
    report: SimReport,
}

impl fmt::Debug for Simulation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Simulation")
            .field("seed", &self.seed)
            .field("now", &self.now)
            .field("report", &self.report)
            .finish()
    }
}

fn node_id(node: usize) -> NodeId {
    NodeId(node as u64 + 1)
}

fn partition_id(partition: usize) -> PartitionId {
    PartitionId(partition as u32 + 1)
}

impl Simulation {
    /// A run of `seed` with `config`, without injected bugs.
    pub fn new(seed: u64, config: SimConfig) -> Self {
        let mut rng = SimRng::new(seed);
        let nodes = (0..config.nodes)
            .map(|_| Node {
                up: true,
                incarnation: 0,
                replicas: (0..config.partitions)
                    .map(|_| SimReplica {
                        core: None,
                        durable: Durable::default(),
                        applied: LogIndex::ZERO,
                        observed_commit: 0,
                    })
                    .collect(),
                disk_queue: VecDeque::new(),
                flushing: 0,
                // Per-node clock drift: ticks of 9 to 11 ms when tick_ms is 10.
                tick_ms: config.tick_ms * 9 / 10 + rng.below(config.tick_ms / 5 + 1),
                crash_after_send: false,
                isolate_on_commit: false,
                isolate_on_leadership: false,
                paused_until: 0,
            })
            .collect();
        Self {
            seed,
            bug_name: None,
            #[cfg(feature = "sim-bugs")]
            bug: None,
            now: 0,
            agenda: EventQueue::new(),
            network: Network::new(config.nodes, config.network.clone()),
            nodes,
            clients: (0..config.partitions)
                .map(|_| SimClient::default())
                .collect(),
            checkers: Checkers::all(
                config.nodes,
                config.partitions,
                (1 << config.initial_voters) - 1,
            ),
            trace: TraceHash::new(),
            faults_active: true,
            cut_generation: 0,
            settled_at: None,
            net_rng: rng.fork(),
            disk_rng: rng.fork(),
            client_rng: rng.fork(),
            nemesis_rng: rng.fork(),
            report: SimReport {
                seed,
                trace_hash: 0,
                events: 0,
                acknowledged: 0,
                faults: 0,
                crashes: 0,
                elections: 0,
                delivered: 0,
                compactions: 0,
                snapshots: 0,
                membership_changes: 0,
                settle_ms: 0,
            },
            config,
        }
    }

    /// Listens to the safety checker `checker` only (the sensitivity tests); the others are
    /// not run.
    #[must_use]
    pub fn listening_only_to(mut self, checker: &str) -> Self {
        self.checkers = self.checkers.only(checker);
        self
    }

    /// A run of `seed` with `config` and one injected bug.
    #[cfg(feature = "sim-bugs")]
    pub fn with_bug(seed: u64, config: SimConfig, bug: InjectedBug) -> Self {
        let mut simulation = Self::new(seed, config);
        simulation.bug = Some(bug);
        simulation.bug_name = Some(format!("{bug:?}"));
        simulation
    }

    fn replica_config(&self, node: usize, partition: usize) -> ReplicaConfig {
        let voters = (0..self.config.initial_voters).map(node_id).collect();
        #[allow(unused_mut)]
        let mut config = ReplicaConfig {
            seed: self
                .seed
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .wrapping_add(self.nodes[node].incarnation),
            append_entries_max: self.config.append_entries_max,
            inflight_messages_max: self.config.inflight_messages_max,
            compaction_retain_entries_max: self.config.compaction_retain_entries_max,
            ..ReplicaConfig::new(node_id(node), partition_id(partition), voters)
        };
        #[cfg(feature = "sim-bugs")]
        {
            config.bug = self.bug;
        }
        config
    }

    /// Whether `node` is stopped right now (input for it is deferred until it resumes).
    fn paused(&self, node: usize) -> bool {
        self.now < self.nodes[node].paused_until
    }
}
