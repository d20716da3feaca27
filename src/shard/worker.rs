//! The shard event loop: one OS thread driving the replicas of its partitions, its WAL and its
//! share of the network.
//!
//! # One loop turn
//!
//! 1. **Drain inputs**: up to `shard_inputs_per_turn_max` requests and inbound message
//!    batches from the shard's two bounded queues (requests are executed on the replica,
//!    `execute.rs`; partitions opened, `restore.rs`; messages stepped).
//!    The results of the shard's snapshot transfers come back too (`transfer.rs`: chunks
//!    read for a follower it leads, chunks written and imports finished from a leader).
//! 2. **Tick** every active replica when the shard's single timer is due (`tick.rs`: one timer
//!    per shard, none per partition). A tick costs one `Replica::tick` (a few counter updates)
//!    and one `has_ready` check per active partition; an idle follower produces nothing, an
//!    idle leader a heartbeat every `heartbeat_interval_ticks` until it quiesces (decision
//!    0007, `quiescence.rs`): a quiesced replica leaves the active list and costs no tick until
//!    a Ready says it woke (any request or message reaches its replica, which wakes itself).
//!    The shard stands in for the quiesced partitions' heartbeats: one keep-alive per peer of
//!    its quiesced leaders every heartbeat interval, and its quiesced followers wake with
//!    `Replica::leader_node_dead` once no message from their leader's node was stepped here for
//!    `election_timeout_ticks_min` ticks. A shard with nothing awake and nothing else due at a
//!    tick sleeps through ticks (`plan_next_tick`, decision 0007 "The tickless idle shard"):
//!    its next tick is due when the first thing is (keep-alives, a silence deadline, at most a
//!    heartbeat interval away) and stands for every tick slept through. The tick also follows
//!    the partition map (`map.rs`): the partitions it adds on this shard open, those it removed
//!    close; the sources of a split or merge it leads get their generation entry
//!    (`generation.rs`), and the ranges being filled their import (`import.rs`).
//! 3. **Restore** (`restore.rs`): partitions opened with a log in the WAL read it back through
//!    the `ReadScheduler` in chunks of at most `restore_entries_per_turn_max` entries per
//!    turn, then hand their committed entries to `on_log_restored` in chunks of the same size,
//!    so restoring never stalls the other partitions' writes for longer than one chunk.
//! 4. **Durability**: the `WalScheduler` polls the WAL without blocking; every Ready now
//!    durable is acknowledged (`Replica::persisted`) and its persist-gated messages (votes,
//!    append acks) are released. Then the imports this shard's leaders propose top up their
//!    windows of uncommitted chunks (`import.rs`), so that they go into this turn's Readies.
//! 5. **Gather Readies** (`ready.rs`) of every partition touched this turn (all of them on a
//!    tick turn): the WalScheduler turns them into WAL records of ONE submission.
//!    Send-now messages go to the outbox; committed entries go to the application
//!    (`delivery.rs`: `on_replication_received`, in log order) and `Replica::applied` follows;
//!    outcomes answer the proposal waiters; read states answer ReadIndex waiters once applied.
//! 6. **Send**: one batch per peer for the whole turn.
//! 7. **Submit** the turn's records (`Wal::submit` once per turn: one durable write, one
//!    fdatasync for all partitions). After the send, so that a leader's appends do not wait
//!    for its own submission's system call (Raft lets a leader write its log in parallel with
//!    replicating it; a message that waits for durability is released only in step 4).
//!
//! The next turn's submission may go out while the previous one is in flight (the WAL
//! pipelines up to `wal_inflight_batches_max` frames).
//!
//! # A deterministic step
//!
//! `Worker::turn(now)` is that one turn, and the only one: it reads no clock (the tick is
//! due when `now` reaches the worker's `next_tick`; every timestamp it records is `now`), spawns
//! no thread and never waits on the OS (the WAL is polled, the queues are drained with
//! `try_recv`). Given the same inputs and the same `now`s, it does the same thing, in the same
//! order (partitions and peers are visited in a seed-free order, `StableHashMap`).
//!
//! The production thread (`Worker::run`) reads the clock, calls `turn(now)`, and when the
//! turn did nothing sleeps (`waker.rs`) until input is queued, the WAL completes a durable
//! write, or the next tick: input that arrives while a write is in flight is stepped at once,
//! so the next submission is pipelined behind the running one. A WAL backend without a
//! completion descriptor is waited on directly (`Wal::wait_durable`), outside the turn. The
//! simulator drives the same `turn` with virtual time instead, without a thread
//! (`ShardStepper`, feature `sim`).
//!
//! # Failure
//!
//! Two things fail a shard: a WAL error (it poisons the WAL) and a panic on the shard thread
//! (a `StateMachine` callback, or an internal assertion), which is caught at the end of the
//! loop turn it interrupted. Either way the shard stops stepping its replicas — nothing that
//! depends on durability may leave, and a turn cut short may have left a replica, a Ready or
//! the WAL's open frame half done, so none of them is touched again — logs the reason
//! (`tracing::error!`), emits `ShardFailed` and answers every waiter and every later request
//! with `Refusal::ShardFailed` carrying the WAL error or the panic message, until the node
//! restarts and recovers from what is durable (records appended but not submitted are lost, as
//! in a crash). The thread keeps running to answer those refusals and exits with the others.
//! A shard stopped in order answers what still waits with `Refusal::ShutDown`.

mod announce;
mod delivery;
mod execute;
mod generation;
mod import;
mod map;
mod map_change;
mod membership;
mod partition;
mod phase_two;
mod quiescence;
mod ready;
mod restore;
mod tick;
mod transfer;

use std::any::Any;
use std::collections::VecDeque;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use crossbeam::channel::Receiver;
use kommander_wal::{Lsn, Wal};

use super::config::ShardConfig;
use super::membership::MembershipTable;
use super::outbox::Outbox;
use super::partitions::{MapTable, PartitionMap};
use super::read_scheduler::ReadScheduler;
use super::snapshot::Transfers;
use super::snapshot::pump::Pump;
use super::state_transfer::StateTransfer;
use super::transport::Transport;
use super::waker::Waker;
use super::wal_scheduler::WalScheduler;
use super::{
    EventSink, LeaderTable, Opened, RaftEvent, Refusal, Reply, Request, StableHashMap, StateMachine,
};
use crate::core::{Message, NodeId, PartitionId, Ready};
use crate::metrics::ShardMetrics;
use partition::Partitions;

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
    /// Readies that appended WAL records.
    pub readies_persisted: AtomicU64,
    /// Loop turns.
    pub turns: AtomicU64,
    /// Replica ticks: a tick turn ticks the active replicas only (decision 0007).
    pub replica_ticks: AtomicU64,
    /// Replicas quiesced at the last tick.
    pub quiesced_replicas: AtomicU64,
    /// Partitions the tick turns visited: each replica ticked and each partition the
    /// membership work looked at. Grows with the active partitions, not the hosted ones
    /// (issue 15).
    pub partition_visits: AtomicU64,
    /// Tick turns: turns at which the shard's timer was due.
    pub tick_turns: AtomicU64,
    /// Ticks an idle shard slept through: a tick turn after an idle sleep stands for the ticks
    /// since the previous one (tickless idle, decision 0007), all but one of them skipped.
    pub ticks_skipped: AtomicU64,
}

/// Everything a shard thread needs; built by the shard host.
pub(crate) struct ShardParams {
    pub(crate) shard: usize,
    pub(crate) config: Arc<ShardConfig>,
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) app: Arc<dyn StateMachine>,
    pub(crate) transfer: Option<Arc<dyn StateTransfer>>,
    /// Runs the application's snapshot reads and writes.
    pub(crate) pump: Pump,
    pub(crate) events: Arc<dyn EventSink>,
    pub(crate) commands: Receiver<ShardInput>,
    pub(crate) inbound: Receiver<Vec<Message>>,
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) stats: Arc<ShardStats>,
    pub(crate) metrics: ShardMetrics,
    pub(crate) leaders: Arc<LeaderTable>,
    /// The roster and how far the node's partitions follow it.
    pub(crate) membership: Arc<MembershipTable>,
    /// The committed partition map (published by partition 0's shard).
    pub(crate) maps: Arc<MapTable>,
    /// Wakes the loop when input is queued (see [`Waker`]).
    pub(crate) waker: Arc<Waker>,
}

/// The shard loop's state.
pub(crate) struct Worker {
    shard: usize,
    node: NodeId,
    config: Arc<ShardConfig>,
    wal: Wal,
    transport: Arc<dyn Transport>,
    app: Arc<dyn StateMachine>,
    transfer: Option<Arc<dyn StateTransfer>>,
    events: Arc<dyn EventSink>,
    commands: Receiver<ShardInput>,
    inbound: Receiver<Vec<Message>>,
    stop: Arc<AtomicBool>,
    stats: Arc<ShardStats>,
    metrics: ShardMetrics,
    leaders: Arc<LeaderTable>,
    membership: Arc<MembershipTable>,
    maps: Arc<MapTable>,
    waker: Arc<Waker>,
    partitions: Partitions,
    /// The version of the partition map this shard last followed (`map.rs`; 0: none).
    map_followed: u64,
    /// Closed partitions whose records wait for the map that removed them (its version) to
    /// be durable on this node (`map.rs`; each partition once, so at most the map's).
    deletions_waiting: Vec<(PartitionId, u64)>,
    /// On partition 0's shard: the newest map published and not yet known durable, with the
    /// WAL position that makes it so (`map.rs`).
    map_written: Option<(Lsn, u64)>,
    /// The leadership table's subscription count when this shard last counted its active
    /// partitions' subscribers (`ready.rs`).
    subscriptions_counted: u64,
    /// The roster version this shard's membership work last looked at every partition for
    /// (`membership.rs`; `None`: no roster yet).
    roster_followed: Option<u64>,
    /// The committed map last looked at by `map_moves_data`, and whether it moves data.
    map_moving: Option<(Arc<PartitionMap>, bool)>,
    /// The range imports this shard's leaders are proposing (`import.rs`).
    imports: StableHashMap<PartitionId, import::ImportJob>,
    /// The map change partition 0's leader proposed and has not answered (`map_change.rs`).
    map_change: Option<map_change::MapChangeInFlight>,
    /// When the shard's single timer is next due (every active replica ticks at the first
    /// turn at or after it): `tick_stride` tick intervals after `last_tick`.
    next_tick: Instant,
    /// When the last tick turn ran (the origin of the tick intervals counted to `next_tick`).
    last_tick: Instant,
    /// How many ticks the next tick turn stands for: 1, or more when the shard is idle and
    /// sleeps through ticks with nothing due (the tickless idle shard, decision 0007).
    tick_stride: u32,
    /// The ticks so far, those slept through included (the clock of the standings,
    /// `membership.rs`, and of the quiescence table).
    ticks: u64,
    /// Restoring partitions, oldest first (restored one after the other).
    restoring: VecDeque<PartitionId>,
    /// Partitions whose WAL compaction waits for the application's durable index (retried
    /// every tick; at most one entry per hosted partition).
    compactions_waiting: Vec<PartitionId>,
    reads: ReadScheduler,
    writes: WalScheduler,
    transfers: Transfers,
    outbox: Outbox,
    /// The Ready every replica's is gathered into (`ready.rs`), empty between gatherings: its
    /// vectors keep their capacity, so a Ready allocates none of its own.
    ready: Ready,
    /// The envelopes of the proposal being carried out (`execute.rs`), empty between
    /// proposals: kept for its capacity (at most `proposal_entries_max`).
    payloads: Vec<bytes::Bytes>,
    /// Why the shard failed (the WAL error); `None` while it serves.
    failure: Option<Arc<str>>,
}

impl Worker {
    /// A worker over `wal` whose first tick is due one tick interval after `now`.
    pub(crate) fn new(params: ShardParams, wal: Wal, now: Instant) -> Self {
        let writes = WalScheduler::new(
            params.shard,
            params.metrics.clone(),
            params.config.slow_wal_write,
            params.config.commit_lag_entries_max,
        );
        let partitions = Partitions::new(&params.config);
        Self {
            next_tick: now + params.config.tick_interval,
            last_tick: now,
            tick_stride: 1,
            ticks: 0,
            shard: params.shard,
            node: params.config.node_id,
            config: params.config,
            wal,
            transport: params.transport,
            app: params.app,
            transfer: params.transfer,
            transfers: Transfers::new(params.pump),
            events: params.events,
            commands: params.commands,
            inbound: params.inbound,
            stop: params.stop,
            stats: params.stats,
            writes,
            metrics: params.metrics,
            leaders: params.leaders,
            membership: params.membership,
            maps: params.maps,
            waker: params.waker,
            partitions,
            map_followed: 0,
            deletions_waiting: Vec::new(),
            map_written: None,
            subscriptions_counted: 0,
            roster_followed: None,
            map_moving: None,
            imports: StableHashMap::default(),
            map_change: None,
            restoring: VecDeque::new(),
            compactions_waiting: Vec::new(),
            reads: ReadScheduler::default(),
            outbox: Outbox::default(),
            ready: Ready::default(),
            payloads: Vec::new(),
            failure: None,
        }
    }

    /// The production loop: runs turns at the clock's time until the stop flag is set,
    /// sleeping when a turn did nothing, then makes everything appended durable.
    pub(crate) fn run(mut self) {
        while !self.stop.load(Ordering::Acquire) {
            if !self.turn(Instant::now()) {
                self.guarded(Self::wait);
            }
        }
        self.finish();
    }

    /// Stops the shard in order: makes everything appended durable (unless the shard failed)
    /// and answers whatever still waits with why it will never be served.
    pub(crate) fn finish(mut self) {
        self.guarded(Self::sync);
        self.refuse_remaining();
    }

    /// Runs `step`; a panic inside it fails the shard with the panic message. The state it
    /// leaves is only read to answer waiters: a failed shard steps no replica again. Returns
    /// whether `step` panicked.
    fn guarded(&mut self, step: impl FnOnce(&mut Self)) -> bool {
        if let Err(panic) = panic::catch_unwind(AssertUnwindSafe(|| step(self))) {
            self.fail(format!(
                "panic on the shard thread: {}",
                panic_message(&*panic)
            ));
            return true;
        }
        false
    }

    /// One loop turn at `now` (see the module docs), ticking every active replica when the
    /// shard's timer is due. Reads no clock, spawns nothing, never waits. A panic inside fails the
    /// shard (as a WAL error does). Returns whether it did anything (if not, nothing changes
    /// before new input, a WAL completion or the next tick).
    pub(crate) fn turn(&mut self, now: Instant) -> bool {
        let mut worked = false;
        let panicked = self.guarded(|worker| worked = worker.turn_unguarded(now));
        worked || panicked
    }

    fn turn_unguarded(&mut self, now: Instant) -> bool {
        self.stats.turns.fetch_add(1, Ordering::Relaxed);
        let tick = now >= self.next_tick;
        // Whole tick intervals since the last tick turn, its lateness counted (a leader's ticks).
        let mut elapsed = 0;
        if tick {
            elapsed = self.ticks_slept(now);
            // The tick turn stands for every tick since the last one; a late turn counts the
            // ticks it was planned for, not the time it is late by (as an active shard's
            // always did: a stalled shard does not judge its peers silent for its own delay);
            // its leaders tick by `elapsed` (`tick_all`), to heartbeat by the wall clock.
            let stride = self.tick_stride;
            self.stats.tick_turns.fetch_add(1, Ordering::Relaxed);
            if stride > 1 {
                let skipped = u64::from(stride - 1);
                self.stats
                    .ticks_skipped
                    .fetch_add(skipped, Ordering::Relaxed);
                self.metrics.ticks_skipped(skipped);
            }
            self.ticks += u64::from(stride);
            self.last_tick = now;
            // Until the end of the turn plans the next (a panic in between leaves this).
            self.next_tick = now + self.config.tick_interval;
            self.tick_stride = 1;
        }
        let clock = self.ticks + self.ticks_slept(now);
        self.partitions.quiesced.set_clock(clock);
        let mut worked = self.drain_inputs();
        worked |= self.transfer_results();
        let mut recount = false;
        if tick {
            recount = self.tick_all(elapsed);
            self.membership_tick();
            self.follow_map(now);
            if self.map_moves_data() {
                self.drive_phase_two();
                self.propose_generations();
                self.drive_imports();
            }
            self.retry_compactions();
            self.tick_transfers();
        }
        worked |= self.restore_step();
        worked |= self.poll_durable(now);
        worked |= self.refill_imports();
        worked |= self.gather_readies(recount, now);
        worked |= self.start_queued_transfers();
        self.answer_map_change();
        if self.failed() {
            self.outbox.clear();
        } else {
            self.outbox.flush(&*self.transport);
        }
        self.submit_appended(now);
        self.plan_next_tick(now);
        worked
    }

    /// Whether the tick's split and merge work (phase 2, generation entries, imports) has
    /// anything to do: the committed map moves data between ranges (a range imports or
    /// exports), or an import of this shard's is still to drop. Each of them walks the whole
    /// map, so an idle map costs a tick one look per new map instead (issue 15).
    fn map_moves_data(&mut self) -> bool {
        let map = self.maps.map();
        let known = self
            .map_moving
            .as_ref()
            .filter(|(seen, _)| Arc::ptr_eq(seen, &map))
            .map(|&(_, moving)| moving);
        let moving = known.unwrap_or_else(|| {
            let moving = map
                .partitions
                .iter()
                .any(|range| range.importing_from.is_some() || range.exporting_to.is_some());
            self.map_moving = Some((map, moving));
            moving
        });
        moving || !self.imports.is_empty()
    }

    /// Whether a Ready waits for a WAL write to become durable (its acknowledgement and gated
    /// messages are released by a later turn's poll).
    pub(crate) fn waiting_on_wal(&self) -> bool {
        // The WAL's own submissions count too (the rewrite of records pinning its oldest
        // segment, which a restore may wait for).
        let in_flight = self.wal.durable_lsn() < self.wal.next_lsn();
        (self.writes.oldest_waiting().is_some() || in_flight) && !self.failed()
    }

    /// Why the shard failed (a WAL error or a panic), if it did.
    #[cfg(feature = "sim")]
    pub(crate) fn failure(&self) -> Option<Arc<str>> {
        self.failure.clone()
    }

    /// Sleeps until input arrives, the WAL completes a write, or the next tick (production
    /// only: never called from a turn).
    fn wait(&mut self) {
        let waiting_on_wal = self.waiting_on_wal();
        let completion = if waiting_on_wal {
            self.wal.completion_fd()
        } else {
            None
        };
        if waiting_on_wal
            && completion.is_none()
            && let Some(oldest) = self.writes.oldest_waiting()
        {
            // A backend without a completion descriptor: block on the WAL itself.
            let result = self.wal.wait_durable(oldest);
            self.check_wal(result);
            return;
        }
        let timeout = self.next_tick.saturating_duration_since(Instant::now());
        self.waker.park(completion, timeout, || {
            !self.inbound.is_empty()
                || self.transfers.pump.has_done()
                || (!waiting_on_wal && !self.commands.is_empty())
        });
    }

    /// At the stop: writes the commit indexes the WAL lags behind, then makes everything
    /// appended durable (unless the shard failed).
    fn sync(&mut self) {
        if self.failed() {
            return;
        }
        let (writes, wal) = (&mut self.writes, &mut self.wal);
        let result = self
            .partitions
            .slots_mut()
            .try_for_each(|(partition, slot)| {
                writes.write_lagging_commit(wal, partition, &mut slot.view)
            })
            .and_then(|()| self.wal.sync());
        self.check_wal(result);
    }

    /// At the stop: answers whatever still waits with why it will never be served.
    fn refuse_remaining(&mut self) {
        let refusal = self.failure_refusal().unwrap_or(Refusal::ShutDown);
        for (_, slot) in self.partitions.slots_mut() {
            slot.refuse_waiters(&refusal);
        }
        if let Some(change) = self.map_change.take() {
            change.refuse(refusal.clone());
        }
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

    /// Fails the shard: it stops stepping its replicas, sends nothing more and refuses every
    /// waiter and every later request with `ShardFailed { reason }`.
    fn fail(&mut self, reason: String) {
        if self.failed() {
            return;
        }
        tracing::error!(
            shard = self.shard,
            %reason,
            "shard failed: its partitions refuse every request until the node restarts"
        );
        let reason: Arc<str> = reason.into();
        self.failure = Some(Arc::clone(&reason));
        self.events.emit(RaftEvent::ShardFailed {
            shard: self.shard,
            reason: Arc::clone(&reason),
        });
        let refusal = Refusal::ShardFailed {
            shard: self.shard,
            reason,
        };
        for (_, slot) in self.partitions.slots_mut() {
            slot.refuse_waiters(&refusal);
        }
        if let Some(change) = self.map_change.take() {
            change.refuse(refusal.clone());
        }
        self.writes.clear();
        self.outbox.clear();
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
        // Any message from a node is a sign of its life for the quiesced followers it leads.
        self.partitions.quiesced.heard(message.from);
        let failed = self.failed();
        let accepted = match self.partitions.touch(partition) {
            Some(touched) if !failed && !touched.slot.held() && message.to == self.node => {
                match touched.slot.replica.as_mut() {
                    Some(replica) => {
                        if replica.step(message).is_err() {
                            self.stats
                                .inbound_messages_refused
                                .fetch_add(1, Ordering::Relaxed);
                        }
                        touched.list();
                        true
                    }
                    None => false,
                }
            }
            _ => false,
        };
        if !accepted {
            self.stats
                .inbound_messages_dropped
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Writes the WAL compactions that waited for the application's durable index, as far as
    /// it now allows.
    fn retry_compactions(&mut self) {
        if self.failed() || self.compactions_waiting.is_empty() {
            return;
        }
        let mut waiting = std::mem::take(&mut self.compactions_waiting);
        let mut result = Ok(());
        waiting.retain(|&partition| {
            let Some(slot) = self.partitions.get_mut(partition) else {
                return false;
            };
            if result.is_ok()
                && let Some(first) = slot.view.compaction(self.app.durable_index(partition))
            {
                result = self.writes.compact(&mut self.wal, partition, first);
            }
            slot.view.compaction_waits()
        });
        self.compactions_waiting = waiting;
        self.check_wal(result);
    }

    // ----- durability -----

    /// Acknowledges every Ready the WAL made durable since the last poll.
    fn poll_durable(&mut self, now: Instant) -> bool {
        if self.failed() {
            return false;
        }
        let result = self.writes.poll_durable(
            &mut self.wal,
            &mut self.outbox,
            now,
            persisted(&mut self.partitions),
        );
        let durable = self.check_wal(result).unwrap_or(false);
        self.note_map_durable();
        durable
    }
}

/// What a durable Ready does to its partition: `Replica::persisted`, and the partition's next
/// Ready gathered this turn if that left one (a follower's durable append usually leaves
/// none: the acknowledgement it gated leaves with the WalScheduler, and nothing a gathering
/// publishes reads the durable index). Answers whether the partition is still hosted.
fn persisted(partitions: &mut Partitions) -> impl FnMut(PartitionId, u64) -> bool + '_ {
    move |partition, number| {
        let Some(touched) = partitions.touch(partition) else {
            return false;
        };
        let Some(replica) = touched.slot.replica.as_mut() else {
            return false;
        };
        replica.persisted(number);
        if replica.has_ready() {
            touched.list();
        }
        true
    }
}

/// The text of a panic's payload (`panic!` with a message gives a `&str` or a `String`).
fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(message) = payload.downcast_ref::<&str>() {
        message
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message
    } else {
        "a panic without a message"
    }
}
