//! The whole-node simulator: several nodes' real shard loops, on one thread, in virtual time.
//!
//! Each node runs the shard layer that ships ([`ShardHost::start_stepped`](crate::shard::ShardHost::start_stepped): the production
//! `Worker::turn`, its Ready → WAL translation, persist-gated release, restore and delivery),
//! each shard over a real [`Wal`](kommander_wal::Wal) on the WAL's simulated disk, the nodes
//! connected by a faulty network whose frames pass through the real wire codec. Clients write
//! and read a few registers per partition through the shard requests the `Raft` handle sends
//! (propose, two-phase commit and rollback, checkpoint, ReadIndex), a nemesis injects network,
//! process, disk and clock faults, and the checkers judge from the simulator's own truth: the
//! simulated disks (what a power cut would leave), the application it hosts, the frames on the
//! wire and the answers the clients got - never from what a node says about itself.
//!
//! Files: `config` (the knobs), `sim_node` (one node's disks, clock and lifecycle), `wire` (the
//! transport through the codec), `app` (the application), `workload` (the operations),
//! `client` (issuing them and judging answers), `routing` (with the elastic operator, the
//! clients' key routing through the map they last learnt), `maps` (the first partition map proposed;
//! the shards open its partitions), `elastic` (partitions created, removed, split and merged
//! under the faults; the clients then route keys through the map), `nemesis` (faults), `configuration_cut` (the
//! cut around a configuration change), `replace` (a node's disks replaced, the node admitted
//! again with a new incarnation), `run` (the agenda and its
//! dispatch), `turns` (driving each shard's loop, its disk and its frames), `checks` (the checks
//! after turns, at crashes and at the end), `truth` (what happened), `checkers/` (one file per property), `report` (the result).

mod app;
mod checkers;
mod checks;
mod client;
mod config;
mod configuration_cut;
mod elastic;
mod hazard_provocation;
mod maps;
mod membership;
mod nemesis;
mod replace;
mod report;
mod routing;
mod run;
mod sim_node;
mod truth;
mod turns;
mod wire;
mod workload;

use std::fmt;
use std::path::PathBuf;
use std::time::Instant;

pub use checkers::CHECKERS;
pub use config::NodeSimConfig;
pub use report::{
    FaultCounts, NodeSimReport, RUN_ACKNOWLEDGED_MIN, RUN_READS_MIN, node_replay_command,
};

#[cfg(feature = "sim-bugs")]
pub use crate::shard::NodeBug;

use super::event_queue::EventQueue;
use super::network::Network;
use super::rng::SimRng;
use super::trace::TraceHash;
use checkers::NodeCheckers;
use client::Clients;
use run::Event;
use sim_node::SimNode;
use truth::Truth;

/// One seeded run of the whole-node simulation.
pub struct NodeSimulation {
    seed: u64,
    config: NodeSimConfig,
    /// The injected bug's name, if any (for the replay command).
    bug_name: Option<String>,
    #[cfg(feature = "sim-bugs")]
    bug: Option<NodeBug>,
    #[cfg(feature = "sim-bugs")]
    core_bug: Option<crate::core::InjectedBug>,
    /// Simulated milliseconds since the start.
    now: u64,
    /// The `Instant` simulated time 0 maps to (nodes add their own drift and jumps).
    epoch: Instant,
    agenda: EventQueue<Event>,
    network: Network,
    nodes: Vec<SimNode>,
    clients: Clients,
    /// The membership operator.
    membership: membership::Operator,
    /// The replacement of nodes' disks.
    replacer: replace::Replacer,
    /// The first partition map's proposal.
    maps: maps::MapProposer,
    /// The elastic operator (create, remove, split, merge).
    elastic: elastic::ElasticOperator,
    /// The configuration entries seen on the wire (the cuts around them).
    configuration_watch: configuration_cut::ConfigurationWatch,
    /// What the provocation of Ongaro's hazard follows on the wire.
    hazard: hazard_provocation::HazardWatch,
    truth: Truth,
    checkers: NodeCheckers,
    trace: TraceHash,
    /// When the fault phase ended (faults healed; the liveness bound runs).
    healed_at: Option<u64>,
    /// Per link (`from * nodes + to`), when its last frame is delivered: once the faults stop,
    /// a link delivers in order, as the one TCP connection it stands for does.
    link_clock: Vec<u64>,
    /// Print every event as it is handled (replays).
    tracing: bool,
    /// Generation of network cuts (a heal event of an older generation does nothing).
    cut_generation: u64,
    net_rng: SimRng,
    disk_rng: SimRng,
    client_rng: SimRng,
    nemesis_rng: SimRng,
    report: NodeSimReport,
    /// The run's files (removed when the run ends).
    root: PathBuf,
}

impl fmt::Debug for NodeSimulation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeSimulation")
            .field("seed", &self.seed)
            .field("now", &self.now)
            .field("report", &self.report)
            .finish_non_exhaustive()
    }
}

impl Drop for NodeSimulation {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.crash();
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
