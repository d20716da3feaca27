//! The run: building the cluster, the agenda's events and their dispatch, driving each shard's
//! real loop turn by turn in virtual time, carrying frames, completing disk writes, and the
//! checks made after every turn, at every crash and at the end.

use std::time::Instant;

use bytes::Bytes;

use crate::core::{NodeId, PartitionId};
use crate::sim::SimFailure;
use crate::sim::checkers::Violation;
use crate::sim::event_queue::EventQueue;
use crate::sim::network::Network;
use crate::sim::rng::SimRng;
use crate::sim::trace::TraceHash;

use super::checkers::{LIVENESS, NodeCheckers};
use super::client::Clients;
use super::report::{NodeSimReport, node_replay_command};
use super::sim_node::{NodeClock, SimNode};
use super::truth::Truth;
use super::{NodeSimConfig, NodeSimulation};

/// Turns one shard runs for one event at most before it yields to the agenda (more work is
/// scheduled at once: a shard with a full queue cannot starve the others).
pub(super) const TURNS_PER_EVENT_MAX: usize = 64;
/// How often the settle check runs once faults stopped.
pub(super) const SETTLE_CHECK_MS: u64 = 250;

/// What happens at a simulated time.
#[derive(Debug)]
pub(super) enum Event {
    /// A shard's loop turn is due (input, tick, or more work).
    Turn { node: usize, shard: usize },
    /// The disk of a shard completes the writes queued on it.
    DiskDone {
        node: usize,
        shard: usize,
        incarnation: u64,
    },
    /// A frame arrives (dropped if the receiver restarted since it was sent: the connection
    /// it travelled on broke).
    Deliver {
        from: usize,
        to: usize,
        incarnation: u64,
        frame: Bytes,
    },
    /// A client starts its next operation.
    ClientOp { p: usize, c: usize },
    /// A client gives up waiting for operation `seq`.
    ClientTimeout { p: usize, c: usize, seq: u64 },
    /// A client commits or rolls back its held write.
    Resolve {
        p: usize,
        c: usize,
        held: super::client::HeldWrite,
        commit: bool,
        attempt: u32,
    },
    /// A checkpoint of a partition.
    Checkpoint { p: usize },
    /// A roster change.
    Membership,
    /// The elastic operator draws its next partition-map operation.
    Elastic,
    /// The elastic operator sends its operation again.
    ElasticRetry,
    /// The elastic operator's attempt `attempt` got no answer in time.
    ElasticTimeout { attempt: u64 },
    /// A node's disks are replaced, or its admission is asked again (`replace.rs`).
    Replace,
    /// The nemesis acts.
    Nemesis,
    /// A fault every seed gets (see `nemesis.rs`).
    Scripted {
        fault: super::nemesis::Fault,
        attempt: u32,
    },
    /// A crashed node restarts.
    Restart { node: usize, incarnation: u64 },
    /// A paused node resumes.
    Resume { node: usize, incarnation: u64 },
    /// A slow disk recovers.
    SlowDiskEnds { node: usize, incarnation: u64 },
    /// Network cuts heal (if no newer cut was made).
    HealCuts { generation: u64 },
    /// The fault phase ends.
    EndFaults,
    /// Has every partition served writes and reads since the faults stopped?
    CheckSettled,
}

impl Event {
    /// One line for a replay's trace.
    fn describe(&self) -> String {
        match self {
            Self::Deliver {
                from, to, frame, ..
            } => {
                format!(
                    "Deliver {{ from: n{}, to: n{}, {} bytes }}",
                    from + 1,
                    to + 1,
                    frame.len()
                )
            }
            other => format!("{other:?}"),
        }
    }
}

impl NodeSimulation {
    /// A run of `seed` with `config`, listening to every checker.
    #[must_use]
    pub fn new(seed: u64, config: NodeSimConfig) -> Self {
        let mut rng = SimRng::new(seed);
        let root = std::env::temp_dir().join(format!(
            "kommander-node-sim-{}-{seed}-{}",
            std::process::id(),
            RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let nodes = (0..config.nodes)
            .map(|node| {
                // Each node's clock runs 2 % slow to 2 % fast.
                let clock = NodeClock {
                    micros_per_ms: rng.between(980, 1_020),
                    jumped_us: 0,
                };
                SimNode::new(
                    NodeId(node as u64 + 1),
                    config.shards,
                    root.join(format!("node-{}", node + 1)),
                    clock,
                )
            })
            .collect();
        Self {
            seed,
            bug_name: None,
            #[cfg(feature = "sim-bugs")]
            bug: None,
            #[cfg(feature = "sim-bugs")]
            core_bug: None,
            now: 0,
            epoch: Instant::now(),
            agenda: EventQueue::new(),
            network: Network::new(config.nodes, config.network.clone()),
            nodes,
            clients: Clients::new(config.partitions, config.clients_per_partition),
            membership: super::membership::Operator::default(),
            replacer: super::replace::Replacer::default(),
            maps: super::maps::MapProposer::default(),
            elastic: super::elastic::ElasticOperator::default(),
            configuration_watch: super::configuration_cut::ConfigurationWatch::default(),
            hazard: super::hazard_provocation::HazardWatch::default(),
            truth: Truth::default(),
            checkers: NodeCheckers::default(),
            trace: TraceHash::new(),
            healed_at: None,
            link_clock: vec![0; config.nodes * config.nodes],
            tracing: false,
            cut_generation: 0,
            net_rng: rng.fork(),
            disk_rng: rng.fork(),
            client_rng: rng.fork(),
            nemesis_rng: rng.fork(),
            report: NodeSimReport::new(seed, &config),
            root,
            config,
        }
    }

    /// Listens to `checker` only (see [`super::CHECKERS`]): the sensitivity tests.
    #[must_use]
    pub fn listening_only_to(mut self, checker: &'static str) -> Self {
        self.checkers = NodeCheckers::only(checker);
        self
    }

    /// Injects a node-level bug into every node's shards.
    #[cfg(feature = "sim-bugs")]
    #[must_use]
    pub fn with_bug(mut self, bug: super::NodeBug) -> Self {
        self.bug = Some(bug);
        self.bug_name = Some(format!("{bug:?}"));
        self
    }

    /// Injects one of the core's known bugs into every replica.
    #[cfg(feature = "sim-bugs")]
    #[must_use]
    pub fn with_core_bug(mut self, bug: crate::core::InjectedBug) -> Self {
        self.core_bug = Some(bug);
        self.bug_name = Some(format!("{bug:?}"));
        self
    }

    /// Runs the scenario: the fault phase, then healing and the liveness bound, then the
    /// final checks.
    ///
    /// # Errors
    /// The first violated property (of the checkers listened to), with the seed and the
    /// command that replays it.
    pub fn run(mut self) -> Result<NodeSimReport, SimFailure> {
        match self.run_inner() {
            Ok(()) => {
                self.report.trace_hash = self.trace.value();
                self.report.events = self.trace.events();
                self.report.elections = self.checkers.election_safety.terms_led();
                self.report.ignored_violations = self.checkers.ignored;
                Ok(self.report.clone())
            }
            Err(violation) => Err(self.fail(violation)),
        }
    }

    fn run_inner(&mut self) -> Result<(), Violation> {
        for node in 0..self.nodes.len() {
            self.start_node(node)?;
        }
        for p in 0..self.config.partitions {
            for c in 0..self.config.clients_per_partition {
                let at = self.client_rng.between(100, 400);
                self.agenda.push(at, Event::ClientOp { p, c });
            }
            let at = self.client_rng.between(
                self.config.checkpoint_interval_ms_min,
                self.config.checkpoint_interval_ms_max,
            );
            self.agenda.push(at, Event::Checkpoint { p });
        }
        if self.config.membership_interval_ms_max > 0 {
            let at = self.client_rng.between(
                self.config.membership_interval_ms_min,
                self.config.membership_interval_ms_max,
            );
            self.agenda.push(at, Event::Membership);
        }
        if self.config.elastic() {
            let at = self.client_rng.between(
                self.config.elastic_interval_ms_min,
                self.config.elastic_interval_ms_max,
            );
            self.agenda.push(at, Event::Elastic);
        }
        self.schedule_replacement();
        let first_fault = self.nemesis_rng.between(
            self.config.fault_interval_ms_min,
            self.config.fault_interval_ms_max,
        );
        self.agenda.push(first_fault, Event::Nemesis);
        self.schedule_scripted_faults();
        self.agenda
            .push(self.config.fault_phase_ms, Event::EndFaults);
        let deadline = self.config.fault_phase_ms + self.config.settle_ms_max;
        while let Some((at, event)) = self.agenda.pop() {
            if at > deadline {
                return self.checkers.judge(
                    LIVENESS,
                    Err(format!(
                        "{} ms after the faults stopped, not every partition has served its writes and reads, and converged: {}",
                        self.config.settle_ms_max,
                        self.unsettled()
                    )),
                );
            }
            self.now = at;
            if self.handle(event)? {
                return self.final_checks();
            }
        }
        Ok(())
    }

    /// Prints every event of the run on stderr as it is handled (a replay's trace).
    #[must_use]
    pub fn tracing(mut self, on: bool) -> Self {
        self.tracing = on;
        self
    }

    /// Handles one event; `true` when the run is over (settled).
    fn handle(&mut self, event: Event) -> Result<bool, Violation> {
        if self.tracing {
            eprintln!("{:>8} ms  {}", self.now, event.describe());
        }
        match event {
            Event::Turn { node, shard } => {
                self.trace.event(1, &[self.now, node as u64, shard as u64]);
                if self.nodes[node].turn_at[shard] == Some(self.now) {
                    self.nodes[node].turn_at[shard] = None;
                    self.run_shard(node, shard, false)?;
                }
            }
            Event::DiskDone {
                node,
                shard,
                incarnation,
            } => {
                self.trace.event(2, &[self.now, node as u64, shard as u64]);
                if self.nodes[node].incarnation == incarnation {
                    self.nodes[node].disk_busy[shard] = false;
                    self.run_shard(node, shard, true)?;
                }
            }
            Event::Deliver {
                from,
                to,
                incarnation,
                frame,
            } => {
                self.trace
                    .event(3, &[self.now, from as u64, to as u64, frame.len() as u64]);
                self.deliver(from, to, incarnation, frame)?;
            }
            Event::ClientOp { p, c } => {
                self.trace.event(4, &[self.now, p as u64, c as u64]);
                if !self.settled() {
                    self.start_op(p, c)?;
                }
            }
            Event::ClientTimeout { p, c, seq } => {
                self.trace.event(5, &[self.now, p as u64, c as u64, seq]);
                self.client_timeout(p, c, seq)?;
            }
            Event::Resolve {
                p,
                c,
                held,
                commit,
                attempt,
            } => {
                self.trace.event(
                    6,
                    &[
                        self.now,
                        p as u64,
                        held.id,
                        u64::from(commit),
                        u64::from(attempt),
                    ],
                );
                self.resolve(p, c, held, commit, attempt);
            }
            Event::Checkpoint { p } => {
                self.trace.event(7, &[self.now, p as u64]);
                if self.healed_at.is_none() {
                    self.checkpoint(p);
                }
            }
            Event::Membership => {
                self.trace.event(19, &[self.now]);
                self.change_membership();
            }
            Event::Elastic => {
                self.trace.event(30, &[self.now]);
                self.elastic_draw();
            }
            Event::ElasticRetry => {
                self.trace.event(31, &[self.now]);
                self.elastic_retry();
            }
            Event::ElasticTimeout { attempt } => {
                self.trace.event(32, &[self.now, attempt]);
                self.elastic_timeout(attempt);
            }
            Event::Replace => {
                self.trace.event(24, &[self.now]);
                self.replace()?;
            }
            Event::Nemesis => {
                self.trace.event(8, &[self.now]);
                if self.healed_at.is_none() {
                    self.nemesis()?;
                }
            }
            Event::Scripted { fault, attempt } => {
                self.trace.event(15, &[self.now, u64::from(attempt)]);
                if self.healed_at.is_none() {
                    self.scripted(fault, attempt)?;
                }
            }
            Event::Restart { node, incarnation } => {
                self.trace.event(9, &[self.now, node as u64, incarnation]);
                if self.nodes[node].incarnation == incarnation && !self.nodes[node].up() {
                    self.start_node(node)?;
                }
            }
            Event::Resume { node, incarnation } => {
                self.trace.event(10, &[self.now, node as u64]);
                if self.nodes[node].incarnation == incarnation {
                    self.resume(node);
                }
            }
            Event::SlowDiskEnds { node, incarnation } => {
                self.trace.event(11, &[self.now, node as u64]);
                if self.nodes[node].incarnation == incarnation {
                    self.nodes[node].disk_slowdown = 1;
                }
            }
            Event::HealCuts { generation } => {
                self.trace.event(12, &[self.now, generation]);
                if generation == self.cut_generation {
                    self.network.heal();
                }
            }
            Event::EndFaults => {
                self.trace.event(13, &[self.now]);
                self.end_faults()?;
            }
            Event::CheckSettled => {
                self.trace.event(14, &[self.now]);
                if self.tracing {
                    eprintln!("settled: {} ({})", self.settled(), self.unsettled());
                    for node in &self.nodes {
                        let applied: Vec<u64> = (1..=self.config.partitions as u32)
                            .map(|p| node.app.applied(PartitionId(p)).0)
                            .collect();
                        let leadership: Vec<String> = (0..=self.config.partitions as u32)
                            .map(|p| {
                                node.running
                                    .as_ref()
                                    .and_then(|r| r.host.leadership(PartitionId(p)))
                                    .map_or("-".to_owned(), |l| {
                                        format!("{:?}/{}/{:?}", l.role, l.term, l.leader)
                                    })
                            })
                            .collect();
                        let failures: Vec<String> = node.running.as_ref().map_or(Vec::new(), |r| {
                            r.shards
                                .iter()
                                .map(|s| format!("{:?}", s.failure()))
                                .collect()
                        });
                        let roster = node
                            .running
                            .as_ref()
                            .and_then(|r| r.host.membership().roster())
                            .map_or("-".to_owned(), |r| {
                                let members: Vec<String> = r
                                    .members()
                                    .iter()
                                    .map(|m| format!("{}:{:?}", m.node, m.role))
                                    .collect();
                                format!("v{} {}", r.version(), members.join(","))
                            });
                        eprintln!(
                            "  node {} up {} applied {applied:?} {leadership:?} {failures:?} \
                             roster {roster}",
                            node.id,
                            node.up()
                        );
                    }
                }
                if self.settled() && self.elastic_settled()? && self.converged() {
                    for node in &self.nodes {
                        let (exports, imports) = node.app.transfers();
                        self.report.snapshot_exports += exports;
                        self.report.snapshot_imports += imports;
                    }
                    return Ok(true);
                }
                self.agenda
                    .push(self.now + SETTLE_CHECK_MS, Event::CheckSettled);
            }
        }
        Ok(false)
    }

    fn fail(&self, violation: Violation) -> SimFailure {
        SimFailure {
            seed: self.seed,
            at_ms: self.now,
            violation,
            bug: self.bug_name.clone(),
            replay: format!(
                "{}{}",
                if self.config.elastic() {
                    "KOMMANDER_NODE_SIM_ELASTIC=1 "
                } else {
                    ""
                },
                node_replay_command(self.seed, self.bug_name.as_deref())
            ),
        }
    }
}

/// Runs started in this process (names each run's directory).
static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
