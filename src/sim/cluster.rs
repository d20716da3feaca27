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
    Config, DurableState, Entry, EntryKind, GatedMessages, HardState, LogIndex, Message, NodeId,
    Outcome, PartitionId, ProgressState, Ready, Replica, Role, SnapshotMeta, Status, Term, Ticket,
};

#[cfg(feature = "sim-bugs")]
pub use crate::core::InjectedBug;

/// The command that replays a failing seed.
pub fn replay_command(seed: u64, bug: Option<&str>) -> String {
    let bug = bug.map_or(String::new(), |bug| format!("KOMMANDER_SIM_BUG={bug} "));
    format!("{bug}KOMMANDER_SIM_SEED={seed} cargo test --profile ci sim::replay -- --nocapture")
}

/// What one run did (its proof of non-vacuity) and its trace hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimReport {
    /// The seed.
    pub seed: u64,
    /// Hash of every event of the run.
    pub trace_hash: u64,
    /// Events processed.
    pub events: u64,
    /// Proposals that got a success answer.
    pub acknowledged: u64,
    /// Faults the nemesis injected (crashes, cuts, partitions, stalls).
    pub faults: u64,
    /// Node crashes among them.
    pub crashes: u64,
    /// Leadership claims observed.
    pub elections: u64,
    /// Entries delivered to applications (all replicas).
    pub delivered: u64,
    /// Log compactions at a committed checkpoint (all replicas).
    pub compactions: u64,
    /// Snapshots installed on followers that were behind the floor.
    pub snapshots: u64,
    /// Simulated milliseconds until every partition had converged after the faults stopped.
    pub settle_ms: u64,
}

/// A run that violated a property: the seed, when, what, and how to replay it.
#[derive(Debug, Clone)]
pub struct SimFailure {
    /// The seed.
    pub seed: u64,
    /// Simulated time of the violation (ms).
    pub at_ms: u64,
    /// The violated property.
    pub violation: Violation,
    /// The injected bug, if any (by name).
    pub bug: Option<String>,
}

impl fmt::Display for SimFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seed {} at {} ms: {}\n  replay: {}",
            self.seed,
            self.at_ms,
            self.violation,
            replay_command(self.seed, self.bug.as_deref())
        )
    }
}

impl std::error::Error for SimFailure {}

#[derive(Debug)]
enum Event {
    Tick { node: usize },
    Deliver { to: usize, message: Message },
    FlushDone { node: usize, incarnation: u64 },
    Propose { partition: usize },
    Resolve { partition: usize, ticket: u64 },
    Checkpoint { partition: usize },
    SnapshotArrives { transfer: SnapshotTransfer },
    SnapshotWatchdog { transfer: SnapshotTransfer },
    Nemesis,
    Restart { node: usize, incarnation: u64 },
    HealCuts { generation: u64 },
    EndFaults,
    CheckSettled,
}

/// A snapshot on its way from a leader to a follower that needs entries below the floor.
#[derive(Debug, Clone, Copy)]
struct SnapshotTransfer {
    from: usize,
    from_incarnation: u64,
    to: usize,
    partition: usize,
    term: Term,
    meta: SnapshotMeta,
}

/// The durable image of one replica.
#[derive(Debug, Default, Clone)]
struct Durable {
    hard_state: HardState,
    floor: LogIndex,
    floor_term: Term,
    entries: Vec<Entry>,
}

impl Durable {
    fn last_index(&self) -> u64 {
        self.floor.0 + self.entries.len() as u64
    }

    fn term_at(&self, index: LogIndex) -> Term {
        if index == self.floor {
            return self.floor_term;
        }
        index
            .0
            .checked_sub(self.floor.0 + 1)
            .and_then(|offset| self.entries.get(offset as usize))
            .map_or(Term::ZERO, |entry| entry.term)
    }

    /// The log restarts after a snapshot: every stored entry is discarded.
    fn install(&mut self, meta: SnapshotMeta) {
        if meta.index >= self.floor {
            self.entries.clear();
            self.floor = meta.index;
            self.floor_term = meta.term;
        }
    }

    fn write(&mut self, write: &PendingWrite) {
        if let Some(meta) = write.installed_snapshot {
            self.install(meta);
        }
        if let Some(hard_state) = write.hard_state {
            self.hard_state = hard_state;
        }
        if let Some(first) = write.entries.first() {
            let keep = first.index.0.saturating_sub(self.floor.0 + 1) as usize;
            self.entries.truncate(keep);
            self.entries.extend(
                write
                    .entries
                    .iter()
                    .filter(|entry| entry.index > self.floor)
                    .cloned(),
            );
        }
        if let Some(floor) = write.compaction_floor
            && floor > self.floor
            && floor.0 <= self.last_index()
        {
            let term = self.term_at(floor);
            self.entries.drain(..(floor.0 - self.floor.0) as usize);
            self.floor = floor;
            self.floor_term = term;
        }
    }
}

#[derive(Debug)]
struct PendingWrite {
    partition: usize,
    number: u64,
    hard_state: Option<HardState>,
    entries: Vec<Entry>,
    compaction_floor: Option<LogIndex>,
    installed_snapshot: Option<SnapshotMeta>,
    gated: GatedMessages,
}

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

#[derive(Debug, Clone, Copy)]
struct OpenTicket {
    commit: bool,
}

#[derive(Debug, Default)]
struct Client {
    next_ticket: u64,
    /// Two-phase tickets not yet resolved by a successful marker.
    open: BTreeMap<u64, OpenTicket>,
    /// Batch length of every proposal (to name the acknowledged entry).
    batches: BTreeMap<u64, u64>,
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
    clients: Vec<Client>,
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

/// The content digest the checkers compare: kind, ticket and payload.
fn entry_id(kind: EntryKind, ticket: Ticket, payload: &[u8]) -> u64 {
    let mut hash = TraceHash::new();
    let mut words = vec![u64::from(kind.code()), ticket.0, payload.len() as u64];
    words.extend(payload.chunks(8).map(|chunk| {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        u64::from_le_bytes(word)
    }));
    hash.event(0, &words);
    hash.value()
}

fn observe_entry(entry: &Entry) -> ObservedEntry {
    let kind = match entry.kind {
        EntryKind::Normal => observation::EntryKind::Data {
            ticket: entry.ticket.0,
            auto_commit: entry.auto_commit,
        },
        EntryKind::NoOp => observation::EntryKind::Noop,
        EntryKind::Commit => observation::EntryKind::CommitMarker {
            ticket: entry.ticket.0,
        },
        EntryKind::Rollback => observation::EntryKind::RollbackMarker {
            ticket: entry.ticket.0,
        },
        EntryKind::Checkpoint => observation::EntryKind::Checkpoint,
    };
    ObservedEntry {
        index: entry.index.0,
        term: entry.term.0,
        id: entry_id(entry.kind, entry.ticket, &entry.payload),
        kind,
    }
}

/// The payload of entry `position` of the proposal with `ticket`: 16 bytes, unique.
fn payload(ticket: u64, position: u64) -> Bytes {
    let mut bytes = Vec::with_capacity(16);
    bytes.extend_from_slice(&ticket.to_le_bytes());
    bytes.extend_from_slice(&position.to_le_bytes());
    Bytes::from(bytes)
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
            clients: (0..config.partitions).map(|_| Client::default()).collect(),
            checkers: Checkers::all(config.nodes, config.partitions),
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
                settle_ms: 0,
            },
            config,
        }
    }

    /// A run of `seed` with `config` and one injected bug.
    #[cfg(feature = "sim-bugs")]
    pub fn with_bug(seed: u64, config: SimConfig, bug: InjectedBug) -> Self {
        let mut simulation = Self::new(seed, config);
        simulation.bug = Some(bug);
        simulation.bug_name = Some(format!("{bug:?}"));
        simulation
    }

    fn replica_config(&self, node: usize, partition: usize) -> Config {
        let voters = (0..self.config.nodes).map(node_id).collect();
        #[allow(unused_mut)]
        let mut config = Config {
            seed: self
                .seed
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .wrapping_add(self.nodes[node].incarnation),
            append_entries_max: self.config.append_entries_max,
            inflight_messages_max: self.config.inflight_messages_max,
            compaction_retain_entries_max: self.config.compaction_retain_entries_max,
            ..Config::new(node_id(node), partition_id(partition), voters)
        };
        #[cfg(feature = "sim-bugs")]
        {
            config.bug = self.bug;
        }
        config
    }

    fn fail(&self, violation: Violation) -> SimFailure {
        SimFailure {
            seed: self.seed,
            at_ms: self.now,
            violation,
            bug: self.bug_name.clone(),
        }
    }

    fn observe(&mut self, observation: Observation) -> Result<(), SimFailure> {
        if let Observation::Role { leader: true, .. } = observation {
            self.report.elections += 1;
        }
        match observation {
            Observation::Delivered { .. } => self.report.delivered += 1,
            Observation::Compacted { .. } => self.report.compactions += 1,
            Observation::SnapshotInstalled { .. } => self.report.snapshots += 1,
            _ => {}
        }
        self.checkers
            .observe(observation)
            .map_err(|violation| self.fail(violation))
    }

    /// Runs the whole scenario: the fault phase, then healing and the liveness bound.
    ///
    /// # Errors
    /// The first violated property (safety or liveness), with the seed and replay command.
    pub fn run(mut self) -> Result<SimReport, SimFailure> {
        for node in 0..self.nodes.len() {
            self.start_node(node)?;
            let first_tick = self.net_rng.below(self.nodes[node].tick_ms) + 1;
            self.agenda.push(first_tick, Event::Tick { node });
        }
        for partition in 0..self.config.partitions {
            let at = self.client_rng.between(50, 300);
            self.agenda.push(at, Event::Propose { partition });
            let at = self.client_rng.between(
                self.config.checkpoint_interval_ms_min,
                self.config.checkpoint_interval_ms_max,
            );
            self.agenda.push(at, Event::Checkpoint { partition });
        }
        let first_fault = self.nemesis_rng.between(
            self.config.fault_interval_ms_min,
            self.config.fault_interval_ms_max,
        );
        self.agenda.push(first_fault, Event::Nemesis);
        self.agenda
            .push(self.config.fault_phase_ms, Event::EndFaults);
        let deadline = self.config.fault_phase_ms + self.config.settle_ms_max;
        while let Some((at, event)) = self.agenda.pop() {
            if at > deadline {
                break;
            }
            self.now = at;
            self.report.events += 1;
            self.handle(event)?;
            if self.settled_at.is_some() {
                break;
            }
        }
        let Some(settled_at) = self.settled_at else {
            let violation = match self.checkers.check_converged() {
                Err(violation) => violation,
                Ok(()) => Violation {
                    checker: "liveness",
                    detail: "converged state never observed".to_owned(),
                },
            };
            return Err(self.fail(Violation {
                checker: "liveness",
                detail: format!(
                    "not converged {} ms after the faults stopped: {}",
                    self.config.settle_ms_max, violation.detail
                ),
            }));
        };
        self.report.settle_ms = settled_at - self.config.fault_phase_ms;
        self.report.trace_hash = self.trace.value();
        Ok(self.report)
    }

    /// Whether `node` is stopped right now (input for it is deferred until it resumes).
    fn paused(&self, node: usize) -> bool {
        self.now < self.nodes[node].paused_until
    }

    fn handle(&mut self, event: Event) -> Result<(), SimFailure> {
        // A stopped process handles nothing: what arrives for it waits, in arrival order.
        let deferred_to = match &event {
            Event::Deliver { to, .. } => Some(*to),
            Event::FlushDone { node, .. } => Some(*node),
            Event::SnapshotArrives { transfer } => Some(transfer.to),
            _ => None,
        };
        if let Some(node) = deferred_to
            && self.paused(node)
        {
            let resume = self.nodes[node].paused_until;
            self.agenda.push(resume, event);
            return Ok(());
        }
        match event {
            Event::Tick { node } => {
                self.trace.event(1, &[self.now, node as u64]);
                let next = self.now + self.nodes[node].tick_ms;
                self.agenda.push(next, Event::Tick { node });
                if self.nodes[node].up && !self.paused(node) {
                    for partition in 0..self.config.partitions {
                        if let Some(core) = self.nodes[node].replicas[partition].core.as_mut() {
                            core.tick();
                        }
                        self.drain(node, partition)?;
                    }
                }
            }
            Event::Deliver { to, message } => {
                self.trace.event(
                    2,
                    &[
                        self.now,
                        to as u64,
                        message.from.0,
                        u64::from(message.partition.0),
                        message.term.0,
                    ],
                );
                // A cut drops what is still on the wire too, not only what is sent later.
                let from = message.from.0 as usize - 1;
                if self.nodes[to].up && !self.network.is_cut(from, to) {
                    let partition = message.partition.0 as usize - 1;
                    if let Some(core) = self.nodes[to].replicas[partition].core.as_mut() {
                        // A rejected message is a protocol outcome, not a simulator error.
                        let _ = core.step(message);
                    }
                    self.drain(to, partition)?;
                }
            }
            Event::FlushDone { node, incarnation } => {
                self.trace.event(3, &[self.now, node as u64, incarnation]);
                if self.nodes[node].up && self.nodes[node].incarnation == incarnation {
                    self.complete_flush(node)?;
                }
            }
            Event::Propose { partition } => {
                if self.faults_active {
                    let pause = self.client_rng.between(
                        self.config.proposal_interval_ms_min,
                        self.config.proposal_interval_ms_max,
                    );
                    self.agenda
                        .push(self.now + pause, Event::Propose { partition });
                    self.propose(partition)?;
                }
            }
            Event::Resolve { partition, ticket } => self.resolve(partition, ticket)?,
            Event::Checkpoint { partition } => {
                if self.faults_active {
                    let pause = self.client_rng.between(
                        self.config.checkpoint_interval_ms_min,
                        self.config.checkpoint_interval_ms_max,
                    );
                    self.agenda
                        .push(self.now + pause, Event::Checkpoint { partition });
                    self.propose_checkpoint(partition)?;
                }
            }
            Event::SnapshotWatchdog { transfer } => {
                let leader = &mut self.nodes[transfer.from];
                if leader.up && leader.incarnation == transfer.from_incarnation {
                    let waiting = leader.replicas[transfer.partition]
                        .core
                        .as_mut()
                        .filter(|core| {
                            core.progress(node_id(transfer.to))
                                .is_some_and(|p| p.state == ProgressState::SnapshotRequired)
                        })
                        .map(|core| core.report_snapshot_failure(node_id(transfer.to)));
                    if waiting.is_some() {
                        self.trace.event(18, &[self.now, transfer.to as u64]);
                        self.drain(transfer.from, transfer.partition)?;
                    }
                }
            }
            Event::SnapshotArrives { transfer } => {
                self.trace
                    .event(17, &[self.now, transfer.from as u64, transfer.to as u64]);
                self.finish_snapshot_transfer(transfer)?;
            }
            Event::Nemesis => {
                if self.faults_active {
                    self.nemesis()?;
                    let pause = if self.nemesis_rng.chance(self.config.fault_calm_per_million) {
                        self.nemesis_rng.between(
                            self.config.fault_interval_ms_max,
                            self.config.fault_calm_ms_max,
                        )
                    } else {
                        self.nemesis_rng.between(
                            self.config.fault_interval_ms_min,
                            self.config.fault_interval_ms_max,
                        )
                    };
                    self.agenda.push(self.now + pause, Event::Nemesis);
                }
            }
            Event::Restart { node, incarnation } => {
                self.trace.event(5, &[self.now, node as u64]);
                if !self.nodes[node].up && self.nodes[node].incarnation == incarnation {
                    self.start_node(node)?;
                }
            }
            Event::HealCuts { generation } => {
                if generation == self.cut_generation {
                    self.trace.event(6, &[self.now]);
                    self.network.heal();
                }
            }
            Event::EndFaults => {
                self.trace.event(7, &[self.now]);
                self.faults_active = false;
                self.network.heal();
                self.network.set_config(NetworkConfig::healthy());
                for node in 0..self.nodes.len() {
                    self.nodes[node].crash_after_send = false;
                    self.nodes[node].isolate_on_commit = false;
                    self.nodes[node].isolate_on_leadership = false;
                    self.nodes[node].paused_until = self.now;
                    if !self.nodes[node].up {
                        self.start_node(node)?;
                    }
                }
                self.agenda.push(self.now + 1_000, Event::CheckSettled);
            }
            Event::CheckSettled => {
                if self.checkers.check_converged().is_ok()
                    && self.clients.iter().all(|client| client.open.is_empty())
                {
                    self.settled_at = Some(self.now);
                } else {
                    self.agenda.push(self.now + 500, Event::CheckSettled);
                }
            }
        }
        Ok(())
    }

    /// (Re)starts `node`: every replica from its durable image.
    fn start_node(&mut self, node: usize) -> Result<(), SimFailure> {
        self.nodes[node].up = true;
        for partition in 0..self.config.partitions {
            let config = self.replica_config(node, partition);
            let replica = &self.nodes[node].replicas[partition];
            let durable = replica.durable.clone();
            let applied = replica.applied;
            let state = DurableState {
                hard_state: durable.hard_state,
                floor: durable.floor,
                floor_term: durable.floor_term,
                entries: durable.entries.clone(),
                applied,
            };
            let log = ObservedLog::new(
                durable.floor.0,
                durable.floor_term.0,
                durable.entries.iter().map(observe_entry).collect(),
            );
            let core = Replica::new(config, state);
            let commit = core
                .as_ref()
                .map_or(durable.hard_state.commit, Replica::commit_index);
            if self.nodes[node].incarnation > 0 {
                // Observed before a refusal is reported: the checkers judge what survived
                // (e.g. delivered entries missing from the durable log) by their own rules.
                self.observe(Observation::Restarted {
                    node,
                    partition,
                    term: durable.hard_state.term.0,
                    log,
                    commit: commit.0,
                    delivered: applied.0,
                })?;
            }
            let core = core.map_err(|error| {
                self.fail(Violation {
                    checker: "restart",
                    detail: format!("node {node} partition {partition}: restore refused: {error}"),
                })
            })?;
            let replica = &mut self.nodes[node].replicas[partition];
            replica.core = Some(core);
            replica.observed_commit = commit.0;
            self.observe_commit(node, partition)?;
            self.drain(node, partition)?;
        }
        Ok(())
    }

    fn crash(&mut self, node: usize) -> Result<(), SimFailure> {
        if !self.nodes[node].up {
            return Ok(());
        }
        self.trace.event(8, &[self.now, node as u64]);
        self.report.crashes += 1;
        let state = &mut self.nodes[node];
        state.up = false;
        state.incarnation += 1;
        state.disk_queue.clear();
        state.flushing = 0;
        state.crash_after_send = false;
        state.paused_until = 0;
        for replica in &mut state.replicas {
            replica.core = None;
        }
        self.observe(Observation::Crashed { node })?;
        if self.faults_active {
            let down = self.nemesis_rng.between(1, self.config.down_ms_max);
            let incarnation = self.nodes[node].incarnation;
            self.agenda
                .push(self.now + down, Event::Restart { node, incarnation });
        }
        Ok(())
    }

    fn send(&mut self, from: usize, messages: Vec<Message>) {
        for message in messages {
            let to = message.to.0 as usize - 1;
            if to >= self.nodes.len() {
                continue;
            }
            let route = self.network.route(from, to, &mut self.net_rng);
            self.trace.event(
                9,
                &[
                    self.now,
                    from as u64,
                    to as u64,
                    route.first.unwrap_or(u64::MAX),
                    route.duplicate.unwrap_or(u64::MAX),
                ],
            );
            if let Some(delay) = route.duplicate {
                self.agenda.push(
                    self.now + delay,
                    Event::Deliver {
                        to,
                        message: message.clone(),
                    },
                );
            }
            if let Some(delay) = route.first {
                self.agenda
                    .push(self.now + delay, Event::Deliver { to, message });
            }
        }
    }

    /// Processes every pending Ready of one replica, in order.
    fn drain(&mut self, node: usize, partition: usize) -> Result<(), SimFailure> {
        loop {
            if !self.nodes[node].up {
                return Ok(());
            }
            let Some(core) = self.nodes[node].replicas[partition].core.as_mut() else {
                return Ok(());
            };
            if !core.has_ready() {
                return Ok(());
            }
            let ready = core.ready();
            self.process_ready(node, partition, ready)?;
        }
    }

    fn process_ready(
        &mut self,
        node: usize,
        partition: usize,
        ready: Ready,
    ) -> Result<(), SimFailure> {
        let Ready {
            number,
            soft_state,
            hard_state,
            entries,
            compaction_floor,
            messages,
            persisted_messages,
            committed_entries,
            committed_through,
            read_states: _,
            outcomes,
            snapshot_required,
            installed_snapshot,
        } = ready;
        self.trace.event(
            10,
            &[
                self.now,
                node as u64,
                partition as u64,
                number,
                entries.len() as u64,
                messages.len() as u64,
                persisted_messages.len() as u64,
                committed_entries.len() as u64,
            ],
        );
        if let Some(soft) = soft_state {
            self.observe(Observation::Role {
                node,
                partition,
                term: soft.term.0,
                leader: soft.role == Role::Leader,
            })?;
            if soft.role == Role::Leader && self.nodes[node].isolate_on_leadership {
                self.nodes[node].isolate_on_leadership = false;
                self.isolate(node);
            }
        }
        if let Some(meta) = installed_snapshot {
            // The runtime makes the transferred state durable before it tells the core
            // (application state and the log's new floor), so both survive a crash from here on.
            let replica = &mut self.nodes[node].replicas[partition];
            replica.durable.install(meta);
            replica.applied = replica.applied.max(meta.index);
            self.observe(Observation::SnapshotInstalled {
                node,
                partition,
                index: meta.index.0,
                term: meta.term.0,
            })?;
        }
        if !entries.is_empty() {
            self.observe(Observation::Appended {
                node,
                partition,
                entries: entries.iter().map(observe_entry).collect(),
            })?;
        }
        self.observe_commit(node, partition)?;
        let must_persist = hard_state.is_some()
            || !entries.is_empty()
            || compaction_floor.is_some()
            || installed_snapshot.is_some()
            || !persisted_messages.is_empty();
        if must_persist {
            self.nodes[node].disk_queue.push_back(PendingWrite {
                partition,
                number,
                hard_state,
                entries,
                compaction_floor,
                installed_snapshot,
                gated: persisted_messages,
            });
            self.start_flush(node);
        }
        // A Ready with nothing to persist is not acknowledged: `persisted(n)` vouches for every
        // Ready up to n, and earlier writes of this replica may still be on their way to disk.
        let sent = !messages.is_empty();
        self.send(node, messages);
        if sent && self.nodes[node].crash_after_send && self.nodes[node].flushing > 0 {
            return self.crash(node);
        }
        for entry in &committed_entries {
            self.observe(Observation::Delivered {
                node,
                partition,
                entry: observe_entry(entry),
            })?;
        }
        if committed_through > self.nodes[node].replicas[partition].applied {
            let replica = &mut self.nodes[node].replicas[partition];
            replica.applied = committed_through;
            if let Some(core) = replica.core.as_mut() {
                core.applied(committed_through);
            }
        }
        if let Some(floor) = compaction_floor {
            self.observe(Observation::Compacted {
                node,
                partition,
                floor: floor.0,
            })?;
        }
        for outcome in outcomes {
            self.on_outcome(partition, outcome)?;
        }
        for target in snapshot_required {
            self.start_snapshot_transfer(node, partition, target);
        }
        Ok(())
    }

    /// Ships the leader's applied checkpoint to `target` (application state in a real
    /// runtime): it arrives after a network delay, or is lost like any message.
    fn start_snapshot_transfer(&mut self, from: usize, partition: usize, target: NodeId) {
        let Some(core) = self.nodes[from].replicas[partition].core.as_ref() else {
            return;
        };
        let index = core.checkpoint_floor();
        let (term, index_term) = (core.term(), core.term_at(index));
        let to = target.0 as usize - 1;
        let route = self.network.route(from, to, &mut self.net_rng);
        self.trace
            .event(15, &[self.now, from as u64, to as u64, index.0]);
        let Some(index_term) = index_term.filter(|_| index.0 > 0 && to < self.nodes.len()) else {
            if let Some(core) = self.nodes[from].replicas[partition].core.as_mut() {
                core.report_snapshot_failure(target);
            }
            return;
        };
        let transfer = SnapshotTransfer {
            from,
            from_incarnation: self.nodes[from].incarnation,
            to,
            partition,
            term,
            meta: SnapshotMeta {
                index,
                term: index_term,
            },
        };
        // A lost transfer is noticed after a timeout.
        let delay = route.first.map_or(500, |delay| delay * 10);
        self.agenda
            .push(self.now + delay, Event::SnapshotArrives { transfer });
    }

    fn finish_snapshot_transfer(&mut self, transfer: SnapshotTransfer) -> Result<(), SimFailure> {
        let SnapshotTransfer {
            from,
            from_incarnation,
            to,
            partition,
            term,
            meta,
        } = transfer;
        let delivered = self.nodes[to].up && !self.network.is_cut(from, to);
        let installed = delivered
            && self.nodes[to].replicas[partition]
                .core
                .as_mut()
                .is_some_and(|core| {
                    core.install_snapshot(node_id(from), term, meta.index, meta.term)
                        .is_ok()
                });
        if installed {
            // The follower's acknowledgement is an ordinary message and may be lost; like a
            // runtime's transfer timeout, re-probe if the leader still waits after a while.
            self.agenda
                .push(self.now + 1_000, Event::SnapshotWatchdog { transfer });
            return self.drain(to, partition);
        }
        if self.nodes[from].up && self.nodes[from].incarnation == from_incarnation {
            if let Some(core) = self.nodes[from].replicas[partition].core.as_mut() {
                core.report_snapshot_failure(node_id(to));
            }
            self.drain(from, partition)?;
        }
        Ok(())
    }

    fn propose_checkpoint(&mut self, partition: usize) -> Result<(), SimFailure> {
        let Some(node) = self.client_target(partition) else {
            return Ok(());
        };
        let client = &mut self.clients[partition];
        client.next_ticket += 1;
        let ticket = client.next_ticket;
        self.trace
            .event(16, &[self.now, node as u64, partition as u64, ticket]);
        if let Some(core) = self.nodes[node].replicas[partition].core.as_mut() {
            // Refusals (not leader, a two-phase proposal open) are normal: try again later.
            let _ = core.propose_checkpoint(Ticket(ticket));
        }
        self.drain(node, partition)
    }

    fn observe_commit(&mut self, node: usize, partition: usize) -> Result<(), SimFailure> {
        let replica = &self.nodes[node].replicas[partition];
        let Some(core) = replica.core.as_ref() else {
            return Ok(());
        };
        let commit = core.commit_index().0;
        if commit != replica.observed_commit {
            self.nodes[node].replicas[partition].observed_commit = commit;
            if self.nodes[node].isolate_on_commit {
                self.nodes[node].isolate_on_commit = false;
                self.isolate(node);
            }
            self.observe(Observation::Committed {
                node,
                partition,
                commit,
            })?;
        }
        Ok(())
    }

    fn start_flush(&mut self, node: usize) {
        let state = &mut self.nodes[node];
        if state.flushing > 0 || state.disk_queue.is_empty() {
            return;
        }
        state.flushing = state.disk_queue.len();
        let latency = if self.disk_rng.chance(self.config.disk_slow_per_million) {
            self.disk_rng.between(
                self.config.disk_latency_ms_max,
                self.config.disk_slow_ms_max,
            )
        } else {
            self.disk_rng.between(
                self.config.disk_latency_ms_min,
                self.config.disk_latency_ms_max,
            )
        };
        let incarnation = state.incarnation;
        self.agenda
            .push(self.now + latency, Event::FlushDone { node, incarnation });
    }

    fn complete_flush(&mut self, node: usize) -> Result<(), SimFailure> {
        let count = self.nodes[node].flushing;
        self.nodes[node].flushing = 0;
        let mut touched = Vec::new();
        for _ in 0..count {
            let Some(write) = self.nodes[node].disk_queue.pop_front() else {
                break;
            };
            let replica = &mut self.nodes[node].replicas[write.partition];
            replica.durable.write(&write);
            if let Some(core) = replica.core.as_mut() {
                core.persisted(write.number);
            }
            // Released with its own number: the gate always opens here.
            if let Ok(messages) = write.gated.release(write.number) {
                self.send(node, messages);
            }
            if !touched.contains(&write.partition) {
                touched.push(write.partition);
            }
        }
        for partition in touched {
            self.drain(node, partition)?;
        }
        self.start_flush(node);
        Ok(())
    }

    /// The node a client would talk to: usually the leader of the highest term, sometimes any.
    /// The node a client talks to, or `None` when that process is stopped (the request
    /// would time out).
    fn client_target(&mut self, partition: usize) -> Option<usize> {
        let node = match self.leader_of(partition) {
            Some(node) if !self.client_rng.chance(100_000) => node,
            _ => self.client_rng.index(self.nodes.len()),
        };
        (!self.paused(node)).then_some(node)
    }

    fn propose(&mut self, partition: usize) -> Result<(), SimFailure> {
        let Some(node) = self.client_target(partition) else {
            return Ok(());
        };
        let client = &mut self.clients[partition];
        client.next_ticket += 1;
        let ticket = client.next_ticket;
        let batch = self.client_rng.between(1, self.config.proposal_batch_max);
        let two_phase = self.client_rng.chance(self.config.two_phase_per_million);
        let commit = !self.client_rng.chance(self.config.rollback_per_million);
        let payloads: Vec<Bytes> = (0..batch)
            .map(|position| payload(ticket, position))
            .collect();
        self.trace.event(
            11,
            &[self.now, node as u64, partition as u64, ticket, batch],
        );
        let Some(core) = self.nodes[node].replicas[partition].core.as_mut() else {
            return Ok(());
        };
        let accepted = core
            .propose_batch(Ticket(ticket), !two_phase, &payloads)
            .is_ok();
        self.clients[partition].batches.insert(ticket, batch);
        if accepted && two_phase {
            self.clients[partition]
                .open
                .insert(ticket, OpenTicket { commit });
            let at = self.now + self.client_rng.between(20, 400);
            self.agenda.push(at, Event::Resolve { partition, ticket });
        }
        self.drain(node, partition)
    }

    fn resolve(&mut self, partition: usize, ticket: u64) -> Result<(), SimFailure> {
        let Some(open) = self.clients[partition].open.get(&ticket).copied() else {
            return Ok(());
        };
        let target = self.client_target(partition);
        if let Some(node) = target {
            self.trace
                .event(12, &[self.now, node as u64, partition as u64, ticket]);
        }
        if let Some(node) = target
            && let Some(core) = self.nodes[node].replicas[partition].core.as_mut()
        {
            let result = if open.commit {
                core.commit_proposal(Ticket(ticket))
            } else {
                core.rollback_proposal(Ticket(ticket))
            };
            if result == Err(Status::ProposalNotFound)
                && !self.faults_active
                && !self.ticket_unresolved_in_any_log(partition, ticket)
            {
                // Healed, and no replica holds the proposal without a marker after it: it was
                // resolved (the success answer got lost) or can never commit. A leader's "not
                // found" alone is not enough: a stale leader may lack it while the next has it.
                self.clients[partition].open.remove(&ticket);
            }
            self.drain(node, partition)?;
        }
        // Retry until a marker's success comes back (outcomes may be lost with a leader).
        if self.clients[partition].open.contains_key(&ticket) {
            let at = self.now + self.client_rng.between(200, 600);
            self.agenda.push(at, Event::Resolve { partition, ticket });
        }
        Ok(())
    }

    /// Whether any replica's log (durable or not) holds data proposed with `ticket` and no
    /// Commit or Rollback marker for it after that data.
    fn ticket_unresolved_in_any_log(&self, partition: usize, ticket: u64) -> bool {
        let view = self.checkers.view();
        (0..view.nodes()).any(|node| {
            let mut held = false;
            for entry in view.replica(node, partition).log.entries() {
                match entry.kind {
                    observation::EntryKind::Data { ticket: t, .. } if t == ticket => held = true,
                    observation::EntryKind::CommitMarker { ticket: t }
                    | observation::EntryKind::RollbackMarker { ticket: t }
                        if t == ticket && held =>
                    {
                        held = false;
                    }
                    _ => {}
                }
            }
            held
        })
    }

    fn on_outcome(&mut self, partition: usize, outcome: Outcome) -> Result<(), SimFailure> {
        if outcome.status != Status::Success {
            return Ok(());
        }
        match outcome.kind {
            EntryKind::Normal => {
                let batch = self.clients[partition]
                    .batches
                    .get(&outcome.ticket.0)
                    .copied()
                    .unwrap_or(1);
                let last = payload(outcome.ticket.0, batch - 1);
                self.report.acknowledged += 1;
                self.observe(Observation::Acknowledged {
                    partition,
                    id: entry_id(EntryKind::Normal, outcome.ticket, &last),
                    index: outcome.index.0,
                })?;
            }
            EntryKind::Commit | EntryKind::Rollback => {
                self.clients[partition].open.remove(&outcome.ticket.0);
            }
            _ => {}
        }
        Ok(())
    }

    /// The up node leading `partition` in the highest term, if any.
    fn leader_of(&self, partition: usize) -> Option<usize> {
        (0..self.nodes.len())
            .filter(|node| self.nodes[*node].up)
            .filter_map(|node| {
                let core = self.nodes[node].replicas[partition].core.as_ref()?;
                (core.role() == Role::Leader).then(|| (core.term(), node))
            })
            .max()
            .map(|(_, node)| node)
    }

    /// One nemesis action. The mix leans on the leader (as Jepsen's partition-leader and
    /// kill-leader nemeses do): isolating or killing fresh leaders leaves divergent,
    /// uncommitted tails in several terms, which is where Raft's subtle rules matter.
    fn nemesis(&mut self) -> Result<(), SimFailure> {
        let nodes = self.nodes.len();
        let pick = self.nemesis_rng.below(100);
        let partition = self.nemesis_rng.index(self.config.partitions);
        let random_node = self.nemesis_rng.index(nodes);
        let target = self.leader_of(partition).unwrap_or(random_node);
        self.report.faults += 1;
        self.trace.event(13, &[self.now, pick, target as u64]);
        match pick {
            0..=11 => self.crash(random_node)?,
            12..=21 => self.crash(target)?,
            22..=36 => {
                // Crash at the worst moment: right after sending, before the disk flush.
                let node = if pick.is_multiple_of(2) {
                    target
                } else {
                    random_node
                };
                self.nodes[node].crash_after_send = true;
            }
            37..=38 => self.nodes[target].isolate_on_commit = true,
            39..=40 => self.nodes[random_node].isolate_on_leadership = true,
            41..=43 => {
                // Power loss: every node at once, unflushed writes everywhere lost.
                for node in 0..nodes {
                    self.crash(node)?;
                }
            }
            44..=58 => {
                self.network.partition(&[target]);
                self.schedule_heal();
            }
            59..=70 => {
                let minority = self.nemesis_rng.between(1, (nodes as u64 - 1) / 2) as usize;
                let mut side = Vec::new();
                while side.len() < minority {
                    let node = self.nemesis_rng.index(nodes);
                    if !side.contains(&node) {
                        side.push(node);
                    }
                }
                self.network.partition(&side);
                self.schedule_heal();
            }
            71..=84 => {
                for _ in 0..self.nemesis_rng.between(1, nodes as u64) {
                    let from = self.nemesis_rng.index(nodes);
                    let to = self.nemesis_rng.index(nodes);
                    self.network.cut_one_way(from, to);
                }
                self.schedule_heal();
            }
            85..=92 => {
                // Stop the process (SIGSTOP): a paused leader wakes up still believing it
                // leads, with a backlog of stale input.
                let node = if pick.is_multiple_of(2) {
                    target
                } else {
                    random_node
                };
                let pause = self.nemesis_rng.between(100, 3_000);
                self.nodes[node].paused_until = self.now + pause;
            }
            _ => self.network.heal(),
        }
        Ok(())
    }

    /// Cuts `node` off from every other node until the next heal.
    fn isolate(&mut self, node: usize) {
        self.trace.event(14, &[self.now, node as u64]);
        self.network.partition(&[node]);
        self.schedule_heal();
    }

    fn schedule_heal(&mut self) {
        self.cut_generation += 1;
        let at = self.now + self.nemesis_rng.between(200, self.config.cut_ms_max);
        self.agenda.push(
            at,
            Event::HealCuts {
                generation: self.cut_generation,
            },
        );
    }
}
