//! The run: building the cluster, the agenda's events and their dispatch, driving each shard's
//! real loop turn by turn in virtual time, carrying frames, completing disk writes, and the
//! checks made after every turn, at every crash and at the end.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use kommander_wal::WalConfig;

use crate::core::{EntryKind, LogIndex, NodeId, PartitionId};
use crate::node::NodeConfig;
use crate::shard::ShardConfig;
use crate::sim::checkers::Violation;
use crate::sim::event_queue::EventQueue;
use crate::sim::network::{Network, NetworkConfig};
use crate::sim::rng::SimRng;
use crate::sim::trace::TraceHash;

use super::checkers::{
    AcknowledgedWritesDurable, CODEC, ElectionSafety, ExactlyOnceInOrderDelivery,
    FailedWritesNeverCommit, LIVENESS, Linearizability, LogMatching, NodeCheckers, RECOVERY,
    SHARD_FAILURE, StateMachineSafety,
};
use super::client::Clients;
use super::report::{NodeSimFailure, NodeSimReport};
use super::sim_node::{NodeClock, SimNode};
use super::truth::{Acknowledged, DurableLog, Truth, decode_durable};
use super::wire::decode_frame_messages;
use super::{NodeSimConfig, NodeSimulation};

/// Turns one shard runs for one event at most before it yields to the agenda (more work is
/// scheduled at once: a shard with a full queue cannot starve the others).
const TURNS_PER_EVENT_MAX: usize = 64;
/// How often the settle check runs once faults stopped.
const SETTLE_CHECK_MS: u64 = 250;

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
    /// Has every partition served a write and a read since the faults stopped?
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
            truth: Truth::default(),
            checkers: NodeCheckers::default(),
            trace: TraceHash::new(),
            healed_at: None,
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
    pub fn run(mut self) -> Result<NodeSimReport, NodeSimFailure> {
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
                        "{} ms after the faults stopped, not every partition has served a write and a read, and converged: {}",
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
                        let leadership: Vec<String> = (1..=self.config.partitions as u32)
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
                        eprintln!(
                            "  node {} up {} applied {applied:?} {leadership:?} {failures:?}",
                            node.id,
                            node.up()
                        );
                    }
                }
                if self.settled() {
                    let (converged, excused) = self.converged()?;
                    if converged {
                        self.report.behind_floor = excused;
                        return Ok(true);
                    }
                }
                self.agenda
                    .push(self.now + SETTLE_CHECK_MS, Event::CheckSettled);
            }
        }
        Ok(false)
    }

    // ----- nodes -----

    fn shard_config(&self, node: usize) -> ShardConfig {
        let nodes = self.config.nodes as u64;
        let mut config = NodeConfig::new(node as u64 + 1, &self.root);
        config.peers = (1..=nodes)
            .filter(|&peer| peer != node as u64 + 1)
            .map(|peer| (peer, format!("node-{peer}:7000")))
            .collect();
        config.shards = self.config.shards;
        config.tick_interval_ms = self.config.tick_ms;
        config.append_entries_max = self.config.append_entries_max;
        config.inflight_messages_max = self.config.inflight_messages_max;
        config.wal_segment_bytes = self.config.wal_segment_bytes;
        config.wal_batch_bytes_max = 64 << 10;
        config.wal_record_bytes_max = 16 << 10;
        config.wal_inflight_batches_max = 4;
        config.shard_inputs_per_turn_max = 64;
        let mut shard = ShardConfig::from(&config);
        shard.core.seed = self
            .seed
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add((node as u64) << 20)
            .wrapping_add(self.nodes[node].incarnation);
        #[cfg(feature = "sim-bugs")]
        {
            shard.bug = self.bug;
            shard.core.bug = self.core_bug;
        }
        shard
    }

    /// Starts `node`'s next incarnation and opens every partition on it.
    fn start_node(&mut self, node: usize) -> Result<(), Violation> {
        let config = self.shard_config(node);
        let wal: WalConfig = config.wal.clone();
        let epoch_seed = self.seed ^ ((node as u64) << 48) ^ self.nodes[node].incarnation;
        let now = self.nodes[node].clock.at(self.epoch, self.now);
        let started = self.nodes[node].start(config, &wal, epoch_seed, now);
        self.checkers.judge(RECOVERY, started)?;
        self.report.starts += 1;
        let voters: Vec<NodeId> = (1..=self.config.nodes as u64).map(NodeId).collect();
        let running = self.nodes[node].running.as_ref().expect("just started");
        for p in 1..=self.config.partitions as u32 {
            // The answer comes in the shard's turn; what matters is the restore's outcome,
            // which the recovery checker judges from the shards' events.
            let opened = running
                .host
                .open_partition(PartitionId(p), voters.clone(), Vec::new());
            let opened = opened.map(drop).map_err(|refusal| {
                format!(
                    "node {}: partition {p} does not open: {refusal:?}",
                    node + 1
                )
            });
            self.checkers.judge(RECOVERY, opened)?;
        }
        for shard in 0..self.config.shards {
            self.schedule_turn(node, shard, self.now);
        }
        Ok(())
    }

    /// Schedules a turn of `node`'s `shard` at `at` (unless one is due earlier).
    pub(super) fn schedule_turn(&mut self, node: usize, shard: usize, at: u64) {
        let at = at.max(self.now);
        let slot = &mut self.nodes[node].turn_at[shard];
        if slot.is_none_or(|due| at < due) {
            *slot = Some(at);
            self.agenda.push(at, Event::Turn { node, shard });
        }
    }

    fn resume(&mut self, node: usize) {
        self.nodes[node].paused_until = 0;
        for shard in 0..self.config.shards {
            self.schedule_turn(node, shard, self.now);
        }
    }

    /// Runs `shard` of `node` until it has nothing to do (or for [`TURNS_PER_EVENT_MAX`]
    /// turns). `disk_done`: the disk completes what is queued on it during the first turn.
    fn run_shard(&mut self, node: usize, shard: usize, disk_done: bool) -> Result<(), Violation> {
        let sim_node = &mut self.nodes[node];
        if sim_node.paused_until > self.now {
            let until = sim_node.paused_until;
            if disk_done {
                sim_node.disk_busy[shard] = true;
                let incarnation = sim_node.incarnation;
                self.agenda.push(
                    until,
                    Event::DiskDone {
                        node,
                        shard,
                        incarnation,
                    },
                );
            } else {
                self.schedule_turn(node, shard, until);
            }
            return Ok(());
        }
        let now = sim_node.clock.at(self.epoch, self.now);
        let disk = sim_node.disks[shard].0.clone();
        let Some(running) = sim_node.running.as_mut() else {
            return Ok(());
        };
        let stepper = &mut running.shards[shard];
        let mut more = false;
        for turn in 0..TURNS_PER_EVENT_MAX {
            if disk_done && turn == 0 {
                disk.set_stalled(false);
            }
            let worked = stepper.turn(now);
            disk.set_stalled(true);
            if self.tracing {
                let (writes, syncs) = disk.io_counts();
                eprintln!(
                    "{:>8} ms    turn n{} s{shard}: worked {worked}, waiting {}, disk writes {writes} syncs {syncs}",
                    self.now,
                    node + 1,
                    stepper.waiting_on_wal()
                );
            }
            self.report.turns += 1;
            if !worked {
                break;
            }
            more = turn + 1 == TURNS_PER_EVENT_MAX;
        }
        self.after_turns(node, shard, more)
    }

    /// What follows a shard's turns: its failure, its frames, its deliveries, the answers to
    /// clients, its disk, and its next turn.
    fn after_turns(&mut self, node: usize, shard: usize, more: bool) -> Result<(), Violation> {
        let failure = self.nodes[node]
            .running
            .as_ref()
            .and_then(|running| running.shards[shard].failure());
        self.send_frames(node)?;
        self.check_deliveries(node)?;
        self.poll_answers(node)?;
        self.check_events(node)?;
        if let Some(reason) = failure {
            return self.shard_failed(node, shard, &reason);
        }
        let sim_node = &mut self.nodes[node];
        let Some(running) = sim_node.running.as_ref() else {
            return Ok(());
        };
        let stepper = &running.shards[shard];
        let next_tick = sim_node.clock.when(self.epoch, stepper.next_tick());
        let waiting = stepper.waiting_on_wal();
        if waiting && !sim_node.disk_busy[shard] {
            sim_node.disk_busy[shard] = true;
            let slow = self.disk_rng.chance(self.config.disk_slow_per_million);
            let latency = if slow {
                self.disk_rng.between(
                    self.config.disk_latency_ms_max,
                    self.config.disk_slow_ms_max,
                )
            } else {
                self.disk_rng.between(
                    self.config.disk_latency_ms_min,
                    self.config.disk_latency_ms_max,
                )
            } * sim_node.disk_slowdown;
            let incarnation = sim_node.incarnation;
            self.agenda.push(
                self.now + latency,
                Event::DiskDone {
                    node,
                    shard,
                    incarnation,
                },
            );
        }
        self.schedule_turn(node, shard, if more { self.now } else { next_tick });
        Ok(())
    }

    /// A shard failed: expected after an injected disk fault (the node restarts from what its
    /// disks hold after a power cut: after a failed sync nothing unsynced can be trusted), a
    /// violation otherwise.
    fn shard_failed(&mut self, node: usize, shard: usize, reason: &str) -> Result<(), Violation> {
        let expected = self.nodes[node].fault_fired(shard) && reason.starts_with("WAL");
        if !expected {
            return self.checkers.judge(
                SHARD_FAILURE,
                Err(format!("node {} shard {shard} failed: {reason}", node + 1)),
            );
        }
        self.report.disk_faults_fired += 1;
        let mode = kommander_wal::backend::sim::CrashMode::Torn(self.disk_rng.next_u64());
        self.crash_for_a_while(node, Some(mode))?;
        Ok(())
    }

    /// Events a node's shards emitted that the checkers judge (a failed restore).
    fn check_events(&mut self, node: usize) -> Result<(), Violation> {
        for failure in self.nodes[node].events.take_failures() {
            self.checkers
                .judge(RECOVERY, Err(format!("node {}: {failure}", node + 1)))?;
        }
        Ok(())
    }

    // ----- the wire -----

    /// Puts `node`'s outgoing frames on the network (each decoded once here, by the real
    /// codec, for the wire checkers).
    fn send_frames(&mut self, node: usize) -> Result<(), Violation> {
        for (to, frame) in self.nodes[node].outbox.drain() {
            let Some(to) = (to.0 as usize)
                .checked_sub(1)
                .filter(|&to| to < self.nodes.len())
            else {
                continue;
            };
            let messages =
                decode_frame_messages(&frame, self.nodes[node].id, NodeId(to as u64 + 1));
            let messages = match messages {
                Ok(messages) => messages,
                Err(error) => {
                    self.checkers.judge(
                        CODEC,
                        Err(format!(
                            "a frame from node {} does not decode: {error}",
                            node + 1
                        )),
                    )?;
                    continue;
                }
            };
            for message in &messages {
                if self.tracing {
                    eprintln!("{:>8} ms    sent {message:?}", self.now);
                }
                let verdict = self.checkers.election_safety.on_sent(message);
                self.checkers.judge(ElectionSafety::NAME, verdict)?;
            }
            self.report.frames += 1;
            let route = self.network.route(node, to, &mut self.net_rng);
            let incarnation = self.nodes[to].incarnation;
            for delay in [route.first, route.duplicate].into_iter().flatten() {
                self.agenda.push(
                    self.now + delay,
                    Event::Deliver {
                        from: node,
                        to,
                        incarnation,
                        frame: frame.clone(),
                    },
                );
            }
        }
        Ok(())
    }

    fn deliver(
        &mut self,
        from: usize,
        to: usize,
        incarnation: u64,
        frame: Bytes,
    ) -> Result<(), Violation> {
        let receiver = &self.nodes[to];
        if receiver.incarnation != incarnation || !receiver.up() {
            return Ok(());
        }
        if receiver.paused_until > self.now {
            // A stopped process reads nothing; the frame waits in its socket.
            let at = receiver.paused_until;
            self.agenda.push(
                at,
                Event::Deliver {
                    from,
                    to,
                    incarnation,
                    frame,
                },
            );
            return Ok(());
        }
        let messages = match decode_frame_messages(&frame, NodeId(from as u64 + 1), receiver.id) {
            Ok(messages) => messages,
            Err(error) => {
                return self.checkers.judge(
                    CODEC,
                    Err(format!(
                        "a frame to node {} does not decode: {error}",
                        to + 1
                    )),
                );
            }
        };
        let mut shards: Vec<usize> = messages
            .iter()
            .map(|message| crate::shard::shard_of(message.partition, self.config.shards))
            .collect();
        shards.sort_unstable();
        shards.dedup();
        let running = self.nodes[to].running.as_ref().expect("checked up");
        running.host.deliver(messages);
        for shard in shards {
            self.schedule_turn(to, shard, self.now);
        }
        Ok(())
    }

    // ----- deliveries -----

    /// Judges what `node`'s application was handed since the last look.
    fn check_deliveries(&mut self, node: usize) -> Result<(), Violation> {
        let id = self.nodes[node].id;
        for delivered in self.nodes[node].app.take_delivered() {
            self.report.delivered += 1;
            self.trace.event(
                20,
                &[
                    node as u64,
                    u64::from(delivered.partition.0),
                    delivered.index.0,
                    delivered.term.0,
                ],
            );
            let verdict = ExactlyOnceInOrderDelivery::on_delivered(id, &delivered);
            self.checkers
                .judge(ExactlyOnceInOrderDelivery::NAME, verdict)?;
            let verdict = StateMachineSafety::on_delivered(id, &delivered, &mut self.truth.applied);
            self.checkers.judge(StateMachineSafety::NAME, verdict)?;
            if delivered.kind == EntryKind::Normal
                && let Some(op) = delivered.op
            {
                self.truth
                    .applied_ops
                    .entry(op.id())
                    .or_insert((delivered.partition, delivered.index));
                let verdict = FailedWritesNeverCommit::on_applied(
                    op.id(),
                    delivered.partition,
                    delivered.index,
                    &self.truth.failed,
                );
                self.checkers
                    .judge(FailedWritesNeverCommit::NAME, verdict)?;
            }
        }
        Ok(())
    }

    // ----- the disks -----

    /// The durable logs of `node`'s `shard` disk, decoded (cached while nothing became durable).
    fn durable(
        &mut self,
        node: usize,
        shard: usize,
    ) -> Result<Arc<std::collections::BTreeMap<PartitionId, DurableLog>>, String> {
        let sim_node = &mut self.nodes[node];
        let logs = sim_node.disks[shard].0.durable_logs().map_err(|e| {
            format!(
                "node {} shard {shard}: the durable image does not recover: {e}",
                node + 1
            )
        })?;
        if let Some((source, decoded)) = &sim_node.durable[shard]
            && Arc::ptr_eq(source, &logs)
        {
            return Ok(Arc::clone(decoded));
        }
        let decoded = Arc::new(
            decode_durable(&logs).map_err(|e| format!("node {} shard {shard}: {e}", node + 1))?,
        );
        sim_node.durable[shard] = Some((logs, Arc::clone(&decoded)));
        Ok(decoded)
    }

    /// Whether a majority of the disks hold `ack` now.
    pub(super) fn check_durable(&mut self, ack: &Acknowledged) -> Result<(), String> {
        let shard = crate::shard::shard_of(ack.partition, self.config.shards);
        let mut logs = Vec::with_capacity(self.nodes.len());
        for node in 0..self.nodes.len() {
            logs.push(self.durable(node, shard)?);
        }
        let views: Vec<Option<&DurableLog>> =
            logs.iter().map(|logs| logs.get(&ack.partition)).collect();
        AcknowledgedWritesDurable::check(ack, &views, &self.truth.applied)
    }

    /// Every acknowledged write is still durable on a majority, and the durable logs match:
    /// run before every crash and at the end.
    pub(super) fn check_disks(&mut self) -> Result<(), Violation> {
        self.report.disk_checks += 1;
        let listens_durable = self.checkers.listens(AcknowledgedWritesDurable::NAME);
        if listens_durable {
            for ack in self.truth.acknowledged.clone() {
                let verdict = self.check_durable(&ack);
                self.checkers
                    .judge(AcknowledgedWritesDurable::NAME, verdict)?;
            }
        }
        if !self.checkers.listens(LogMatching::NAME) {
            return Ok(());
        }
        for p in 1..=self.config.partitions as u32 {
            let partition = PartitionId(p);
            let shard = crate::shard::shard_of(partition, self.config.shards);
            let mut logs = Vec::with_capacity(self.nodes.len());
            for node in 0..self.nodes.len() {
                match self.durable(node, shard) {
                    Ok(decoded) => logs.push((node, decoded)),
                    Err(error) => return self.checkers.judge(RECOVERY, Err(error)),
                }
            }
            let views: Vec<(usize, &DurableLog)> = logs
                .iter()
                .filter_map(|(node, logs)| logs.get(&partition).map(|log| (*node, log)))
                .collect();
            let verdict = LogMatching::check(partition, &views);
            self.checkers.judge(LogMatching::NAME, verdict)?;
        }
        Ok(())
    }

    // ----- the end -----

    /// The fault phase ends: every fault healed, every node up, the network healthy.
    fn end_faults(&mut self) -> Result<(), Violation> {
        self.healed_at = Some(self.now);
        self.network.heal();
        self.network.set_config(NetworkConfig::healthy());
        self.cut_generation += 1;
        for node in 0..self.nodes.len() {
            let sim_node = &mut self.nodes[node];
            sim_node.disk_slowdown = 1;
            sim_node.disarm();
            if sim_node.up() {
                if sim_node.paused_until > self.now {
                    self.resume(node);
                }
            } else {
                // Its pending restart is superseded.
                sim_node.incarnation += 1;
                self.start_node(node)?;
            }
        }
        self.agenda
            .push(self.now + SETTLE_CHECK_MS, Event::CheckSettled);
        Ok(())
    }

    /// Every partition served a write and a read invoked after the faults stopped.
    fn settled(&self) -> bool {
        self.healed_at.is_some()
            && self
                .clients
                .partitions
                .iter()
                .all(|clients| clients.healed_write && clients.healed_read)
    }

    /// Every node's application applied the same index of every partition, except nodes that
    /// fell behind the compaction floor: their log ends below another node's floor, so only a
    /// snapshot could bring them back, and the shards do not ship snapshots yet (issue 11).
    /// Returns whether converged, and the (node, partition) pairs excused.
    fn converged(&mut self) -> Result<(bool, u64), Violation> {
        let mut excused = 0;
        for p in 1..=self.config.partitions as u32 {
            let partition = PartitionId(p);
            let applied: Vec<LogIndex> = self
                .nodes
                .iter()
                .map(|node| node.app.applied(partition))
                .collect();
            let most = applied.iter().copied().max().unwrap_or_default();
            if applied.iter().all(|&index| index == most) {
                continue;
            }
            let shard = crate::shard::shard_of(partition, self.config.shards);
            let mut ends = Vec::with_capacity(self.nodes.len());
            for node in 0..self.nodes.len() {
                let logs = match self.durable(node, shard) {
                    Ok(logs) => logs,
                    Err(error) => {
                        return self
                            .checkers
                            .judge(RECOVERY, Err(error))
                            .map(|()| (false, 0));
                    }
                };
                let log = logs.get(&partition);
                let floor = log.map_or(LogIndex::ZERO, |log| log.floor);
                let last = log
                    .and_then(|log| log.entries.keys().next_back().copied())
                    .unwrap_or(floor);
                ends.push((floor, last));
            }
            let highest_floor = ends
                .iter()
                .map(|(floor, _)| *floor)
                .max()
                .unwrap_or_default();
            for (node, &index) in applied.iter().enumerate() {
                if index == most {
                    continue;
                }
                if ends[node].1 < highest_floor {
                    excused += 1;
                } else {
                    return Ok((false, 0));
                }
            }
        }
        Ok((true, excused))
    }

    fn unsettled(&self) -> String {
        let partitions: Vec<String> = self
            .clients
            .partitions
            .iter()
            .enumerate()
            .filter(|(_, clients)| !(clients.healed_write && clients.healed_read))
            .map(|(p, clients)| {
                format!(
                    "p{} (write {}, read {})",
                    p + 1,
                    clients.healed_write,
                    clients.healed_read
                )
            })
            .collect();
        if partitions.is_empty() {
            "every partition served; the applications have not converged".to_owned()
        } else {
            partitions.join(", ")
        }
    }

    /// The checks of a settled run: the disks, the applications' final states, and every
    /// partition's history.
    fn final_checks(&mut self) -> Result<(), Violation> {
        self.report.settle_ms = self.now - self.healed_at.unwrap_or(self.now);
        self.check_disks()?;
        for node in 0..self.nodes.len() {
            for p in 1..=self.config.partitions as u32 {
                let partition = PartitionId(p);
                let state = self.nodes[node].app.live(partition);
                let verdict = ExactlyOnceInOrderDelivery::check_final_state(
                    self.nodes[node].id,
                    partition,
                    &state,
                    &self.truth.applied,
                );
                self.checkers
                    .judge(ExactlyOnceInOrderDelivery::NAME, verdict)?;
            }
        }
        if self.checkers.listens(Linearizability::NAME) {
            for p in 0..self.config.partitions {
                let verdict = Linearizability::check(
                    PartitionId(p as u32 + 1),
                    &self.clients.partitions[p].history,
                )
                .map(|explored| self.report.linearizability_states += explored as u64);
                self.checkers.judge(Linearizability::NAME, verdict)?;
            }
        }
        Ok(())
    }

    fn fail(&self, violation: Violation) -> NodeSimFailure {
        NodeSimFailure {
            seed: self.seed,
            at_ms: self.now,
            violation,
            bug: self.bug_name.clone(),
        }
    }
}

/// Runs started in this process (names each run's directory).
static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
