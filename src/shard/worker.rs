//! The shard event loop: one OS thread driving the replicas of its partitions, its WAL and its
//! share of the network.
//!
//! # One loop turn
//!
//! 1. **Drain inputs**: up to `shard_inputs_per_turn_max` requests and inbound message
//!    batches from the shard's two bounded queues (requests are executed on the replica,
//!    messages stepped).
//! 2. **Tick** every active replica when the shard's single timer is due (one timer per shard,
//!    none per partition). A tick costs one `Replica::tick` (a few counter updates) and one
//!    `has_ready` check per hosted partition; an idle follower produces nothing, an idle
//!    leader a heartbeat every `heartbeat_interval_ticks`.
//! 3. **Restore** (the ReadScheduler): partitions opened with a log in the WAL read it back in
//!    chunks of at most `restore_entries_per_turn_max` entries per turn, then hand their
//!    committed entries to `on_log_restored` in chunks of the same size, so restoring never
//!    stalls the other partitions' writes for longer than one chunk.
//! 4. **Durability**: poll the WAL without blocking; for every Ready now durable call
//!    `Replica::persisted` and release its persist-gated messages (votes, append acks).
//! 5. **Gather Readies** of every partition touched this turn (all of them on a tick turn) and
//!    hand them to the **WalScheduler**: their hard states, commit indexes, truncations of
//!    conflicting suffixes, entries and compactions become WAL records of ONE submission
//!    (`Wal::submit` once per turn: one durable write, one fdatasync for all partitions).
//!    Send-now messages go to the outbox; committed entries go to the application
//!    (`on_replication_received`, in log order) and `Replica::applied` follows; outcomes answer
//!    the proposal waiters; read states answer ReadIndex waiters once applied.
//! 6. **Send**: one batch per peer for the whole turn.
//!
//! The next turn's submission may go out while the previous one is in flight (the WAL
//! pipelines up to `wal_inflight_batches_max` frames). With nothing to do, the loop sleeps
//! (`waker.rs`) until input is queued, the WAL completes a durable write, or the next tick:
//! input that arrives while a write is in flight is stepped at once, so the next submission
//! is pipelined behind the running one.
//!
//! # Failure
//!
//! A WAL error poisons the WAL; the shard then stops stepping its replicas (nothing that
//! depends on durability may leave), emits `ShardFailed` and answers every waiter and every
//! later request with `Refusal::ShardFailed` (carrying the WAL error) until the node restarts
//! and recovers from what is durable. A shard stopped in order answers what still waits with
//! `Refusal::ShutDown`.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use crossbeam::channel::Receiver;
use kommander_wal::{HardState as WalHardState, Lsn, PartitionId as WalPartitionId, Wal, Write};

use super::codec::{self, ENTRY_HEADER_LEN};
use super::config::ShardConfig;
use super::transport::Transport;
use super::waker::Waker;
use super::{
    EventSink, FollowerLag, LeaderTable, LogEntry, Opened, PartitionStatus, RaftEvent, Refusal,
    ReplicationErrorReason, ReplicationResult, Reply, Request, StateMachine, outcome_key,
};
use crate::core::{
    DurableState, Entry, EntryKind, GatedMessages, HardState, LogIndex, Message, NodeId,
    PartitionId, Ready, Replica, Status, Term,
};

/// Input to a shard from other threads.
#[derive(Debug)]
pub(crate) enum ShardInput {
    /// A request to one partition.
    Request {
        partition: PartitionId,
        request: Request,
    },
    /// Create or restore a partition's replica.
    Open {
        partition: PartitionId,
        voters: Vec<NodeId>,
        learners: Vec<NodeId>,
        reply: Reply<Opened>,
    },
    /// Only wakes the loop (shutdown).
    Wake,
}

/// Counters of one shard, readable from any thread.
#[derive(Debug, Default)]
pub struct ShardStats {
    /// Inbound batches dropped because the shard's inbound queue was full.
    pub inbound_batches_dropped: AtomicU64,
    /// Inbound messages dropped: unknown partition, partition restoring, or shard failed.
    pub inbound_messages_dropped: AtomicU64,
    /// Inbound messages the replica refused (wrong node, malformed, absurd).
    pub inbound_messages_refused: AtomicU64,
    /// WAL submissions (one per loop turn that had something to persist).
    pub wal_submissions: AtomicU64,
    /// Readies persisted through the WAL.
    pub readies_persisted: AtomicU64,
    /// Loop turns.
    pub turns: AtomicU64,
}

/// Everything a shard thread needs; built by the runtime.
pub(crate) struct ShardParams {
    pub(crate) shard: usize,
    pub(crate) config: Arc<ShardConfig>,
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) app: Arc<dyn StateMachine>,
    pub(crate) events: Arc<dyn EventSink>,
    pub(crate) commands: Receiver<ShardInput>,
    pub(crate) inbound: Receiver<Vec<Message>>,
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) stats: Arc<ShardStats>,
    pub(crate) leaders: Arc<LeaderTable>,
    /// Wakes the loop when input is queued (see [`Waker`]).
    pub(crate) waker: Arc<Waker>,
}

/// What this shard last wrote to the WAL for a partition.
#[derive(Clone, Copy, Debug, Default)]
struct WalView {
    known: bool,
    last: u64,
    term: u64,
    vote: Option<u64>,
    commit: u64,
}

/// Reading a partition's log back from the WAL, chunk by chunk.
#[derive(Debug)]
struct ReadJob {
    voters: Vec<NodeId>,
    learners: Vec<NodeId>,
    info: kommander_wal::PartitionInfo,
    next: u64,
    entries: Vec<Entry>,
}

/// Handing restored committed entries to `on_log_restored`, chunk by chunk.
#[derive(Debug, Default)]
struct RestoreDelivery {
    backlog: VecDeque<Entry>,
    through: LogIndex,
    delivered: u64,
}

#[derive(Debug, Default)]
struct Slot {
    replica: Option<Replica>,
    read_job: Option<ReadJob>,
    restore: Option<RestoreDelivery>,
    dirty: bool,
    view: WalView,
    waiters: HashMap<(u8, u64), Vec<Reply<ReplicationResult>>>,
    next_read_context: u64,
    reads: HashMap<u64, Reply<LogIndex>>,
    reads_waiting_apply: Vec<(LogIndex, Reply<LogIndex>)>,
}

impl Slot {
    fn restoring(&self) -> bool {
        self.read_job.is_some() || self.restore.is_some()
    }
}

/// A Ready whose persistence (or whose predecessors' persistence) is in flight.
#[derive(Debug)]
struct PendingPersist {
    lsn: Lsn,
    partition: PartitionId,
    number: u64,
    gated: GatedMessages,
}

/// The shard loop's state.
pub(crate) struct Worker {
    shard: usize,
    node: NodeId,
    config: Arc<ShardConfig>,
    wal: Wal,
    transport: Arc<dyn Transport>,
    app: Arc<dyn StateMachine>,
    events: Arc<dyn EventSink>,
    commands: Receiver<ShardInput>,
    inbound: Receiver<Vec<Message>>,
    stop: Arc<AtomicBool>,
    stats: Arc<ShardStats>,
    leaders: Arc<LeaderTable>,
    waker: Arc<Waker>,
    slots: HashMap<PartitionId, Slot>,
    dirty: Vec<PartitionId>,
    restoring: VecDeque<PartitionId>,
    pending: VecDeque<PendingPersist>,
    outbox: HashMap<NodeId, Vec<Message>>,
    scratch: Vec<u8>,
    appended: bool,
    /// Why the shard failed (the WAL error); `None` while it serves.
    failure: Option<Arc<str>>,
}

impl Worker {
    pub(crate) fn new(params: ShardParams, wal: Wal) -> Self {
        Self {
            shard: params.shard,
            node: params.config.node_id,
            config: params.config,
            wal,
            transport: params.transport,
            app: params.app,
            events: params.events,
            commands: params.commands,
            inbound: params.inbound,
            stop: params.stop,
            stats: params.stats,
            leaders: params.leaders,
            waker: params.waker,
            slots: HashMap::new(),
            dirty: Vec::new(),
            restoring: VecDeque::new(),
            pending: VecDeque::new(),
            outbox: HashMap::new(),
            scratch: Vec::new(),
            appended: false,
            failure: None,
        }
    }

    /// Runs until the stop flag is set, then makes everything appended durable.
    pub(crate) fn run(mut self) {
        let tick = self.config.tick_interval;
        let mut next_tick = Instant::now() + tick;
        while !self.stop.load(Ordering::Acquire) {
            self.stats.turns.fetch_add(1, Ordering::Relaxed);
            let mut worked = self.drain_inputs();
            let now = Instant::now();
            let mut scan_all = false;
            if now >= next_tick {
                next_tick = now + tick;
                self.tick_all();
                scan_all = true;
            }
            worked |= self.restore_step();
            worked |= self.poll_durable();
            worked |= self.gather_readies(scan_all);
            self.flush_outbox();
            if worked {
                continue;
            }
            let waiting_on_wal = !self.pending.is_empty() && !self.failed();
            let completion = if waiting_on_wal {
                self.wal.completion_fd()
            } else {
                None
            };
            if waiting_on_wal
                && completion.is_none()
                && let Some(front) = self.pending.front().map(|p| p.lsn)
            {
                // A backend without a completion descriptor: block on the WAL itself.
                let result = self.wal.wait_durable(front);
                self.check_wal(result);
                continue;
            }
            // Sleep until input arrives, the WAL completes a write, or the next tick.
            let timeout = next_tick.saturating_duration_since(Instant::now());
            self.waker.park(completion, timeout, || {
                !self.inbound.is_empty() || (!waiting_on_wal && !self.commands.is_empty())
            });
        }
        if !self.failed() {
            let result = self.wal.sync();
            self.check_wal(result);
        }
        // Whatever is still waiting learns why it will never be answered.
        let refusal = self.failure_refusal().unwrap_or(Refusal::ShutDown);
        self.refuse_waiters(&refusal);
        while let Ok(input) = self.commands.try_recv() {
            match input {
                ShardInput::Request { request, .. } => request.refuse(refusal.clone()),
                ShardInput::Open { reply, .. } => {
                    let _ = reply.send(Err(refusal.clone()));
                }
                ShardInput::Wake => {}
            }
        }
    }

    fn failed(&self) -> bool {
        self.failure.is_some()
    }

    /// The refusal of every request once the shard failed.
    fn failure_refusal(&self) -> Option<Refusal> {
        self.failure.as_ref().map(|reason| Refusal::ShardFailed {
            shard: self.shard,
            reason: Arc::clone(reason),
        })
    }

    fn fail(&mut self, reason: String) {
        if self.failed() {
            return;
        }
        let reason: Arc<str> = reason.into();
        self.failure = Some(Arc::clone(&reason));
        self.events.emit(RaftEvent::ShardFailed {
            shard: self.shard,
            reason: Arc::clone(&reason),
        });
        self.refuse_waiters(&Refusal::ShardFailed {
            shard: self.shard,
            reason,
        });
        self.pending.clear();
        self.outbox.clear();
    }

    /// Answers every operation and read waiting on any partition with `refusal`.
    fn refuse_waiters(&mut self, refusal: &Refusal) {
        for slot in self.slots.values_mut() {
            for (_, waiters) in slot.waiters.drain() {
                for reply in waiters {
                    let _ = reply.send(Err(refusal.clone()));
                }
            }
            for (_, reply) in slot.reads.drain() {
                let _ = reply.send(Err(refusal.clone()));
            }
            for (_, reply) in slot.reads_waiting_apply.drain(..) {
                let _ = reply.send(Err(refusal.clone()));
            }
        }
    }

    fn check_wal<T>(&mut self, result: kommander_wal::Result<T>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.fail(format!("WAL: {error}"));
                None
            }
        }
    }

    fn mark_dirty(&mut self, partition: PartitionId) {
        if let Some(slot) = self.slots.get_mut(&partition)
            && !slot.dirty
        {
            slot.dirty = true;
            self.dirty.push(partition);
        }
    }

    // ----- inputs -----

    fn drain_inputs(&mut self) -> bool {
        let budget = self.config.shard_inputs_per_turn_max;
        let mut worked = false;
        for _ in 0..budget {
            let Ok(input) = self.commands.try_recv() else {
                break;
            };
            worked = true;
            match input {
                ShardInput::Request { partition, request } => self.execute(partition, request),
                ShardInput::Open {
                    partition,
                    voters,
                    learners,
                    reply,
                } => self.open(partition, voters, learners, reply),
                ShardInput::Wake => {}
            }
        }
        for _ in 0..budget {
            let Ok(batch) = self.inbound.try_recv() else {
                break;
            };
            worked = true;
            for message in batch {
                self.step(message);
            }
        }
        worked
    }

    fn step(&mut self, message: Message) {
        let partition = message.partition;
        let failed = self.failed();
        let accepted = match self.slots.get_mut(&partition) {
            Some(slot) if !failed && !slot.restoring() && message.to == self.node => {
                match slot.replica.as_mut() {
                    Some(replica) => {
                        if replica.step(message).is_err() {
                            self.stats
                                .inbound_messages_refused
                                .fetch_add(1, Ordering::Relaxed);
                        }
                        true
                    }
                    None => false,
                }
            }
            _ => false,
        };
        if accepted {
            self.mark_dirty(partition);
        } else {
            self.stats
                .inbound_messages_dropped
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    fn open(
        &mut self,
        partition: PartitionId,
        voters: Vec<NodeId>,
        learners: Vec<NodeId>,
        reply: Reply<Opened>,
    ) {
        if let Some(refusal) = self.failure_refusal() {
            let _ = reply.send(Err(refusal));
            return;
        }
        if let Some(slot) = self.slots.get(&partition) {
            let _ = reply.send(Ok(Opened {
                shard: self.shard,
                restoring: slot.restoring(),
            }));
            return;
        }
        if self.slots.len() >= self.config.partitions_max {
            let _ = reply.send(Err(Refusal::QueueFull));
            return;
        }
        let config = self
            .config
            .partition_config(partition, voters.clone(), learners.clone());
        if config.validate().is_err() {
            // An invalid membership (this node in neither list, duplicates).
            let _ = reply.send(Err(Refusal::Replica(Status::Errored)));
            return;
        }
        self.events.emit(RaftEvent::RestoreStarted { partition });
        let wal_partition = WalPartitionId(u64::from(partition.0));
        match self.wal.partition(wal_partition) {
            Ok(info) => {
                let slot = Slot {
                    read_job: Some(ReadJob {
                        voters,
                        learners,
                        info,
                        next: info.first_index,
                        entries: Vec::new(),
                    }),
                    view: WalView {
                        known: true,
                        last: info.last_index,
                        term: info.hard_state.map_or(0, |h| h.term),
                        vote: info.hard_state.and_then(|h| h.vote),
                        commit: info.commit_index.unwrap_or(0),
                    },
                    ..Slot::default()
                };
                self.slots.insert(partition, slot);
                self.restoring.push_back(partition);
                let _ = reply.send(Ok(Opened {
                    shard: self.shard,
                    restoring: true,
                }));
            }
            Err(kommander_wal::Error::UnknownPartition { .. }) => {
                match Replica::new(config, DurableState::default()) {
                    Ok(replica) => {
                        let slot = Slot {
                            replica: Some(replica),
                            ..Slot::default()
                        };
                        self.slots.insert(partition, slot);
                        self.events.emit(RaftEvent::RestoreFinished {
                            partition,
                            entries_delivered: 0,
                        });
                        let _ = reply.send(Ok(Opened {
                            shard: self.shard,
                            restoring: false,
                        }));
                    }
                    Err(_) => {
                        let _ = reply.send(Err(Refusal::Replica(Status::Errored)));
                    }
                }
            }
            Err(error) => {
                self.fail(format!("WAL: {error}"));
                if let Some(refusal) = self.failure_refusal() {
                    let _ = reply.send(Err(refusal));
                }
            }
        }
    }

    fn execute(&mut self, partition: PartitionId, request: Request) {
        if let Some(refusal) = self.failure_refusal() {
            request.refuse(refusal);
            return;
        }
        let config = Arc::clone(&self.config);
        let Some(slot) = self.slots.get_mut(&partition) else {
            request.refuse(Refusal::NotHosted);
            return;
        };
        if slot.restoring() {
            request.refuse(Refusal::RestoreInProgress);
            return;
        }
        let Some(replica) = slot.replica.as_mut() else {
            request.refuse(Refusal::RestoreInProgress);
            return;
        };
        match request {
            Request::Propose {
                entries,
                auto_commit,
                ticket,
                reply,
            } => {
                let record_payload_max = config
                    .wal
                    .record_bytes_max
                    .saturating_sub(ENTRY_HEADER_LEN + 2);
                let invalid = entries.is_empty()
                    || entries.len() > config.proposal_entries_max
                    || entries.iter().any(|e| {
                        e.log_type.len() > config.log_type_bytes_max
                            || e.log_type.len() + e.payload.len() > record_payload_max
                    });
                if invalid {
                    let _ = reply.send(Err(Refusal::Replica(Status::Errored)));
                    return;
                }
                let payloads: Vec<Bytes> = entries
                    .iter()
                    .map(|e| codec::encode_envelope(&e.log_type, &e.payload))
                    .collect();
                match replica.propose_batch(ticket, auto_commit, &payloads) {
                    Ok(range) => slot
                        .waiters
                        .entry(outcome_key(EntryKind::Normal, *range.end()))
                        .or_default()
                        .push(reply),
                    Err(status) => {
                        let _ = reply.send(Err(Refusal::of_replica(replica, status)));
                    }
                }
            }
            Request::Commit { ticket, reply } => {
                let result = replica.commit_proposal(ticket);
                let result = result.map_err(|s| Refusal::of_replica(replica, s));
                Self::wait_outcome(slot, EntryKind::Commit, result, reply);
            }
            Request::Rollback { ticket, reply } => {
                let result = replica.rollback_proposal(ticket);
                let result = result.map_err(|s| Refusal::of_replica(replica, s));
                Self::wait_outcome(slot, EntryKind::Rollback, result, reply);
            }
            Request::Checkpoint { ticket, reply } => {
                let result = replica.propose_checkpoint(ticket);
                let result = result.map_err(|s| Refusal::of_replica(replica, s));
                Self::wait_outcome(slot, EntryKind::Checkpoint, result, reply);
            }
            Request::Status { reply } => {
                let soft = replica.soft_state();
                let _ = reply.send(Ok(PartitionStatus {
                    role: soft.role,
                    leader: soft.leader,
                    term: soft.term,
                    commit: replica.commit_index(),
                    last_index: replica.last_index(),
                    applied: replica.applied_index(),
                    floor: replica.compaction_floor(),
                }));
            }
            Request::ReadIndex { reply } => {
                if slot.reads.len() >= config.core.read_index_pending_max {
                    let _ = reply.send(Err(Refusal::QueueFull));
                    return;
                }
                slot.next_read_context += 1;
                let context = slot.next_read_context;
                match replica.read_index(context) {
                    Ok(()) => {
                        slot.reads.insert(context, reply);
                    }
                    Err(status) => {
                        let _ = reply.send(Err(Refusal::of_replica(replica, status)));
                    }
                }
            }
            Request::TransferLeadership { target, reply } => {
                let result = replica.transfer_leadership(target);
                let _ = reply.send(result.map_err(|s| Refusal::of_replica(replica, s)));
            }
            Request::StepDown { reply } => {
                let result = replica.step_down();
                let _ = reply.send(result.map_err(|s| Refusal::of_replica(replica, s)));
            }
            Request::SuspendHeartbeats { reply } => {
                let result = replica.suspend_heartbeats();
                let _ = reply.send(result.map_err(|s| Refusal::of_replica(replica, s)));
            }
            Request::ResumeHeartbeats { reply } => {
                let result = replica.resume_heartbeats();
                let _ = reply.send(result.map_err(|s| Refusal::of_replica(replica, s)));
            }
            Request::FollowerLag { node, reply } => {
                let answer = if replica.is_leader() {
                    replica
                        .progress(node)
                        .map(|p| FollowerLag {
                            match_index: p.match_index,
                            leader_last_index: replica.last_index(),
                        })
                        .ok_or(Refusal::Replica(Status::Errored))
                } else {
                    Err(Refusal::NotLeader {
                        leader: replica.leader(),
                    })
                };
                let _ = reply.send(answer);
            }
        }
        self.mark_dirty(partition);
    }

    fn wait_outcome(
        slot: &mut Slot,
        kind: EntryKind,
        result: Result<LogIndex, Refusal>,
        reply: Reply<ReplicationResult>,
    ) {
        match result {
            Ok(index) => slot
                .waiters
                .entry(outcome_key(kind, index))
                .or_default()
                .push(reply),
            Err(refusal) => {
                let _ = reply.send(Err(refusal));
            }
        }
    }

    fn tick_all(&mut self) {
        if self.failed() {
            return;
        }
        for slot in self.slots.values_mut() {
            if slot.restoring() {
                continue;
            }
            if let Some(replica) = slot.replica.as_mut() {
                replica.tick();
            }
        }
    }

    // ----- restore (the ReadScheduler) -----

    /// Reads or delivers at most `restore_entries_per_turn_max` entries of restoring
    /// partitions, oldest restore first.
    fn restore_step(&mut self) -> bool {
        if self.failed() || self.restoring.is_empty() {
            return false;
        }
        let mut budget = self.config.restore_entries_per_turn_max;
        let mut worked = false;
        while budget > 0 {
            let Some(&partition) = self.restoring.front() else {
                break;
            };
            worked = true;
            let Some(slot) = self.slots.get_mut(&partition) else {
                self.restoring.pop_front();
                continue;
            };
            if let Some(job) = slot.read_job.as_mut() {
                match read_chunk(&self.wal, partition, job, &mut budget) {
                    Ok(false) => {}
                    Ok(true) => self.finish_read(partition),
                    Err(reason) => {
                        self.slots.remove(&partition);
                        self.restoring.pop_front();
                        self.events
                            .emit(RaftEvent::RestoreFailed { partition, reason });
                    }
                }
                continue;
            }
            let Some(delivery) = slot.restore.as_mut() else {
                self.restoring.pop_front();
                continue;
            };
            while budget > 0 {
                let Some(entry) = delivery.backlog.pop_front() else {
                    break;
                };
                budget -= 1;
                delivery.delivered += 1;
                deliver_one(&*self.app, &*self.events, partition, &entry, true);
            }
            let has_ready = slot.replica.as_ref().is_some_and(Replica::has_ready);
            if delivery.backlog.is_empty() && !has_ready && !slot.dirty {
                let through = delivery.through;
                let delivered = delivery.delivered;
                slot.restore = None;
                if let Some(replica) = slot.replica.as_mut() {
                    replica.applied(through);
                }
                self.restoring.pop_front();
                // `applied` may allow a compaction: let the gather see it this turn.
                self.mark_dirty(partition);
                self.events.emit(RaftEvent::RestoreFinished {
                    partition,
                    entries_delivered: delivered,
                });
            } else if budget > 0 {
                // Waiting for this partition's Readies (gathered later in the turn).
                break;
            }
        }
        worked
    }

    fn finish_read(&mut self, partition: PartitionId) {
        let Some(slot) = self.slots.get_mut(&partition) else {
            return;
        };
        let Some(job) = slot.read_job.take() else {
            return;
        };
        let info = job.info;
        let floor = LogIndex(info.first_index.saturating_sub(1));
        let wal_partition = WalPartitionId(u64::from(partition.0));
        let floor_term = if floor.0 == 0 {
            Term(0)
        } else {
            Term(self.wal.term_at(wal_partition, floor.0).unwrap_or(0))
        };
        let durable = DurableState {
            hard_state: HardState {
                term: Term(info.hard_state.map_or(0, |h| h.term)),
                vote: info.hard_state.and_then(|h| h.vote).map(NodeId),
                commit: LogIndex(info.commit_index.unwrap_or(0)),
            },
            floor,
            floor_term,
            entries: job.entries,
            // The application rebuilds its state from `on_log_restored`: everything above the
            // floor is delivered again, exactly once per incarnation.
            applied: floor,
        };
        let config = self
            .config
            .partition_config(partition, job.voters, job.learners);
        match Replica::new(config, durable) {
            Ok(replica) => {
                slot.replica = Some(replica);
                slot.restore = Some(RestoreDelivery {
                    through: floor,
                    ..RestoreDelivery::default()
                });
                self.mark_dirty(partition);
            }
            Err(error) => {
                self.slots.remove(&partition);
                self.restoring.retain(|p| *p != partition);
                self.events.emit(RaftEvent::RestoreFailed {
                    partition,
                    reason: error.to_string(),
                });
            }
        }
    }

    // ----- durability -----

    fn poll_durable(&mut self) -> bool {
        if self.failed() || self.pending.is_empty() {
            return false;
        }
        let result = self.wal.poll_durable();
        let Some(durable) = self.check_wal(result) else {
            return false;
        };
        let mut worked = false;
        while self.pending.front().is_some_and(|p| p.lsn <= durable) {
            let Some(done) = self.pending.pop_front() else {
                break;
            };
            worked = true;
            let Some(replica) = self
                .slots
                .get_mut(&done.partition)
                .and_then(|s| s.replica.as_mut())
            else {
                continue;
            };
            replica.persisted(done.number);
            if let Ok(messages) = done.gated.release(done.number) {
                for message in messages {
                    self.outbox.entry(message.to).or_default().push(message);
                }
            }
            self.mark_dirty(done.partition);
        }
        worked
    }

    // ----- Readies and the WalScheduler -----

    fn gather_readies(&mut self, scan_all: bool) -> bool {
        if self.failed() {
            return false;
        }
        let mut candidates = std::mem::take(&mut self.dirty);
        if scan_all {
            candidates.clear();
            candidates.extend(self.slots.keys().copied());
        }
        let mut worked = false;
        for partition in candidates {
            if let Some(slot) = self.slots.get_mut(&partition) {
                slot.dirty = false;
            }
            // A Ready can make another one possible (e.g. applied → compaction); a few rounds
            // per turn keep latency low without starving other partitions.
            for _ in 0..4 {
                let ready = match self
                    .slots
                    .get_mut(&partition)
                    .and_then(|s| s.replica.as_mut())
                {
                    Some(replica) if replica.has_ready() => replica.ready(),
                    _ => break,
                };
                worked = true;
                self.handle_ready(partition, ready);
                if self.failed() {
                    return true;
                }
            }
            if self
                .slots
                .get(&partition)
                .and_then(|s| s.replica.as_ref())
                .is_some_and(Replica::has_ready)
            {
                // More to do: next turn (after the other partitions had theirs).
                self.mark_dirty(partition);
            }
        }
        if self.appended {
            self.appended = false;
            self.stats.wal_submissions.fetch_add(1, Ordering::Relaxed);
            let result = self.wal.submit();
            self.check_wal(result);
        }
        worked
    }

    fn handle_ready(&mut self, partition: PartitionId, mut ready: Ready) {
        let Some(slot) = self.slots.get_mut(&partition) else {
            return;
        };
        if let Some(soft) = ready.soft_state {
            if let Some(changed) = self.leaders.update(partition, soft) {
                self.events.emit(changed);
            }
            // Forwarded reads may never be answered by a deposed leader. The commit of the
            // leader's no-op is the one change that deposes nobody (role, leader and term are
            // those of the previous report).
            if !soft.noop_committed {
                for (_, reply) in slot.reads.drain() {
                    let _ = reply.send(Err(Refusal::NotLeader {
                        leader: soft.leader,
                    }));
                }
            }
        }
        if ready.installed_snapshot.is_some() {
            // The runtime never calls `Replica::install_snapshot` (snapshot transfer is not
            // implemented), so this cannot happen; refuse to guess how to persist it.
            self.fail(format!(
                "partition {partition}: snapshot installation is not supported by the runtime"
            ));
            return;
        }
        if ready.must_persist() {
            let writes = wal_writes(partition, &ready, &mut slot.view, &mut self.scratch);
            let writes = writes.writes(&self.scratch);
            if !writes.is_empty() {
                let result = self.wal.append(&writes);
                if self.check_wal(result).is_none() {
                    return;
                }
                self.appended = true;
            }
            self.stats.readies_persisted.fetch_add(1, Ordering::Relaxed);
        }
        let Some(slot) = self.slots.get_mut(&partition) else {
            return;
        };
        for message in ready.messages.drain(..) {
            self.outbox.entry(message.to).or_default().push(message);
        }
        let gated = std::mem::take(&mut ready.persisted_messages);
        if ready.must_persist() || !gated.is_empty() {
            self.pending.push_back(PendingPersist {
                lsn: self.wal.next_lsn(),
                partition,
                number: ready.number,
                gated,
            });
        }
        // Committed entries are durable locally (contract of `Ready`): deliver now.
        if let Some(delivery) = slot.restore.as_mut() {
            delivery.backlog.extend(ready.committed_entries.drain(..));
            delivery.through = delivery.through.max(ready.committed_through);
        } else {
            for entry in &ready.committed_entries {
                deliver_one(&*self.app, &*self.events, partition, entry, false);
            }
            if let Some(replica) = slot.replica.as_mut() {
                if ready.committed_through > replica.applied_index() {
                    replica.applied(ready.committed_through);
                }
                let applied = replica.applied_index();
                let (done, waiting): (Vec<_>, Vec<_>) =
                    std::mem::take(&mut slot.reads_waiting_apply)
                        .into_iter()
                        .partition(|(index, _)| *index <= applied);
                slot.reads_waiting_apply = waiting;
                for (index, reply) in done {
                    let _ = reply.send(Ok(index));
                }
            }
        }
        for outcome in ready.outcomes {
            if let Some(waiters) = slot
                .waiters
                .remove(&outcome_key(outcome.kind, outcome.index))
            {
                for reply in waiters {
                    let _ = reply.send(Ok(ReplicationResult {
                        status: outcome.status,
                        ticket: outcome.ticket,
                        index: outcome.index,
                    }));
                }
            }
        }
        let applied = slot
            .replica
            .as_ref()
            .map_or(LogIndex::ZERO, Replica::applied_index);
        for read in ready.read_states {
            let Some(reply) = slot.reads.remove(&read.context) else {
                continue;
            };
            match read.result {
                Ok(index) if index <= applied => {
                    let _ = reply.send(Ok(index));
                }
                Ok(index) => slot.reads_waiting_apply.push((index, reply)),
                Err(status) => {
                    let refusal = match slot.replica.as_ref() {
                        Some(replica) => Refusal::of_replica(replica, status),
                        None => Refusal::Replica(status),
                    };
                    let _ = reply.send(Err(refusal));
                }
            }
        }
        for node in ready.snapshot_required {
            self.events.emit(RaftEvent::ReplicationError {
                partition,
                index: LogIndex::ZERO,
                reason: ReplicationErrorReason::SnapshotRequired(node),
            });
        }
    }

    fn flush_outbox(&mut self) {
        if self.failed() {
            self.outbox.clear();
            return;
        }
        for (to, messages) in self.outbox.drain() {
            if !messages.is_empty() {
                self.transport.send(to, messages);
            }
        }
    }
}

/// Reads up to `budget` entries of a restoring partition. `Ok(true)` when the log is read.
fn read_chunk(
    wal: &Wal,
    partition: PartitionId,
    job: &mut ReadJob,
    budget: &mut usize,
) -> Result<bool, String> {
    let wal_partition = WalPartitionId(u64::from(partition.0));
    while job.next <= job.info.last_index {
        if *budget == 0 {
            return Ok(false);
        }
        *budget -= 1;
        let index = job.next;
        let record = wal
            .entry(wal_partition, index)
            .map_err(|e| format!("reading entry {index}: {e}"))?;
        let term = wal
            .term_at(wal_partition, index)
            .map_err(|e| format!("reading the term of entry {index}: {e}"))?;
        let entry = codec::decode_record(LogIndex(index), Term(term), &record)
            .map_err(|e| format!("decoding entry {index}: {e}"))?;
        job.entries.push(entry);
        job.next += 1;
    }
    Ok(true)
}

/// Hands one committed entry to the application (live or restored) and reports a negative
/// verdict or an undecodable entry as a replication error.
fn deliver_one(
    app: &dyn StateMachine,
    events: &dyn EventSink,
    partition: PartitionId,
    entry: &Entry,
    restored: bool,
) {
    let reason = match LogEntry::decode(entry) {
        Ok(log_entry) => {
            let accepted = if restored {
                app.on_log_restored(partition, &log_entry)
            } else {
                app.on_replication_received(partition, &log_entry)
            };
            if accepted {
                return;
            }
            ReplicationErrorReason::Rejected
        }
        Err(error) => ReplicationErrorReason::Malformed(error),
    };
    events.emit(RaftEvent::ReplicationError {
        partition,
        index: entry.index,
        reason,
    });
}

/// The WAL records of one Ready, described by offsets into the encoding scratch buffer (so the
/// borrowed [`Write`]s can be built after encoding).
struct ReadyWrites {
    hard_state: Option<WalHardState>,
    truncate_after: Option<u64>,
    entries: Vec<(u64, u64, std::ops::Range<usize>)>,
    commit: Option<u64>,
    compact_to: Option<u64>,
    partition: WalPartitionId,
}

impl ReadyWrites {
    fn writes<'a>(&self, scratch: &'a [u8]) -> Vec<Write<'a>> {
        let partition = self.partition;
        let mut writes = Vec::with_capacity(self.entries.len() + 4);
        if let Some(state) = self.hard_state {
            writes.push(Write::HardState { partition, state });
        }
        if let Some(index) = self.truncate_after {
            writes.push(Write::TruncateAfter { partition, index });
        }
        for (index, term, range) in &self.entries {
            writes.push(Write::Entry {
                partition,
                index: *index,
                term: *term,
                payload: &scratch[range.clone()],
            });
        }
        if let Some(index) = self.commit {
            writes.push(Write::CommitIndex { partition, index });
        }
        if let Some(index) = self.compact_to {
            writes.push(Write::CompactTo { partition, index });
        }
        writes
    }
}

/// The WalScheduler's translation of a Ready into records: the hard state (term, vote) when it
/// changed; a truncation when the entries replace a stored suffix (a log conflict); the
/// entries; the commit index when it changed (written in the same frame, so it costs no extra
/// sync); the compaction to just above a new floor.
fn wal_writes(
    partition: PartitionId,
    ready: &Ready,
    view: &mut WalView,
    scratch: &mut Vec<u8>,
) -> ReadyWrites {
    scratch.clear();
    let mut out = ReadyWrites {
        hard_state: None,
        truncate_after: None,
        entries: Vec::with_capacity(ready.entries.len()),
        commit: None,
        compact_to: None,
        partition: WalPartitionId(u64::from(partition.0)),
    };
    if let Some(hard) = ready.hard_state {
        let vote = hard.vote.map(|v| v.0);
        if !view.known || (hard.term.0, vote) != (view.term, view.vote) {
            out.hard_state = Some(WalHardState {
                term: hard.term.0,
                vote,
            });
            view.term = hard.term.0;
            view.vote = vote;
        }
    }
    if let Some(first) = ready.entries.first() {
        if view.known && first.index.0 <= view.last {
            out.truncate_after = Some(first.index.0 - 1);
        }
        for entry in &ready.entries {
            let start = scratch.len();
            codec::encode_record(entry, scratch);
            out.entries
                .push((entry.index.0, entry.term.0, start..scratch.len()));
        }
        if let Some(last) = ready.entries.last() {
            view.last = last.index.0;
        }
    }
    if let Some(hard) = ready.hard_state
        && hard.commit.0 != view.commit
    {
        out.commit = Some(hard.commit.0);
        view.commit = hard.commit.0;
    }
    if let Some(floor) = ready.compaction_floor {
        out.compact_to = Some(floor.0 + 1);
    }
    view.known = true;
    out
}
