//! The clients: per partition a few sequential clients, each with at most one operation in
//! flight, writing and reading a few registers through the requests the `Raft` handle sends to
//! a shard (propose, two-phase commit and rollback, ReadIndex), plus a checkpoint now and then.
//! Every answer is judged: `Success` is an acknowledgement (checked durable on a majority at
//! once), a refusal before the write was appended is a definite failure (it must never
//! commit), and everything that leaves the outcome open (leadership lost, a failed or stopped
//! shard, a crash, the client's own timeout) is indeterminate. Reads and writes go into the
//! partition's history for the linearizability checker.
//!
//! With the elastic operator (`elastic.rs`) the clients route keys instead: each picks a key
//! of a small set (so keys are hot), routes it through the partition map it last learnt from a
//! node (`routing.rs`), and sends the write or the read fenced with the generation it routed
//! with, as the handle sends a write whose caller gave one (`Request::Fenced`). A refusal
//! `NotHosted` (the handle's `PartitionMoved`) makes it learn the map of the node that refused.
//! A key's history is one register whichever partition served it, across splits and merges.

use std::collections::HashMap;

use tokio::sync::oneshot::{self, error::TryRecvError};

use crate::core::{LogIndex, PartitionId, Status, Ticket};
use crate::shard::{ProposedEntry, Refusal, ReplicationResult, Reply, Request};

use super::NodeSimulation;
use super::checkers::{AcknowledgedWritesDurable, FailedWritesNeverCommit};
use super::routing::{LearntMap, Route, partition_moved};
use super::run::Event;
use super::truth::Acknowledged;
use super::workload::{LOG_TYPE, Op};
use crate::sim::checkers::Violation;
use crate::sim::linearizability::{Command, History, OperationId, Response};

/// How long the resolver waits before resolving again a ticket its leader did not know.
const NOT_FOUND_RETRY_MS: u64 = 1_000;

/// The pause between two attempts to resolve a held write (commit or roll back): 40 ms,
/// doubling after ten attempts up to 1 s. The resolver never gives up: an unresolved ticket
/// stops the partition's delivery (Kommander's two-phase semantics), and the leader refuses to
/// resolve a ticket before its proposal has committed, which may take as long as the faults
/// last.
fn resolve_backoff(attempt: u32) -> u64 {
    (40_u64 << attempt.saturating_sub(10).min(5)).min(1_000)
}

/// The pause between a client's operations once the faults stopped.
const HEALED_OP_INTERVAL_MS: (u64, u64) = (20, 100);
/// Writes and reads each partition must serve after the faults healed before the run settles:
/// several, so every seed checks reads across the recovered cluster, whatever the faults left.
const HEALED_SERVED: u32 = 3;

type Answer<T> = oneshot::Receiver<Result<T, Refusal>>;

/// A two-phase write acknowledged as held: its operation id and its entry's index.
#[derive(Debug, Clone, Copy)]
pub(super) struct HeldWrite {
    pub(super) id: u64,
    pub(super) index: LogIndex,
}

/// What a client waits for.
enum Awaiting {
    /// An auto-commit write.
    Write {
        op: Op,
        history: OperationId,
        answer: Answer<ReplicationResult>,
    },
    /// The first phase of a two-phase write (held until resolved).
    Held {
        id: u64,
        answer: Answer<ReplicationResult>,
    },
    /// The second phase: commit or roll back the held write `id`.
    Resolve {
        held: HeldWrite,
        commit: bool,
        attempt: u32,
        answer: Answer<ReplicationResult>,
    },
    /// A read of `key`.
    Read {
        key: u64,
        history: OperationId,
        answer: Answer<LogIndex>,
    },
}

struct Pending {
    node: usize,
    /// The partition the operation went to.
    partition: PartitionId,
    /// Distinguishes this operation's timeout event from an earlier one's.
    seq: u64,
    awaiting: Awaiting,
}

#[derive(Default)]
struct Client {
    pending: Option<Pending>,
    /// With keys routed: the partition map last learnt from a node.
    map: LearntMap,
}

/// One partition's clients.
#[derive(Default)]
pub(super) struct PartitionClients {
    /// The clients, and last the resolver: it commits or rolls back the clients' held writes
    /// one after the other, so that a client goes on with its operations meanwhile (an
    /// unresolved ticket stops delivery, so a client waiting on a read would wait forever).
    clients: Vec<Client>,
    /// Reads and writes of registers, for the linearizability checker (two-phase writes are
    /// judged by the other checkers only).
    pub(super) history: History,
    checkpoint: Option<(usize, Answer<ReplicationResult>)>,
    /// Since the faults healed: writes acknowledged and reads answered.
    pub(super) healed_writes: u32,
    pub(super) healed_reads: u32,
}

impl PartitionClients {
    /// Whether the partition served enough writes and reads since the faults healed.
    pub(super) fn healed(&self) -> bool {
        self.healed_writes >= HEALED_SERVED && self.healed_reads >= HEALED_SERVED
    }
}

/// Every partition's clients.
#[derive(Default)]
pub(super) struct Clients {
    pub(super) partitions: Vec<PartitionClients>,
    /// Per partition, the node believed to lead it (from answers only: a routing hint, never
    /// judged).
    leader_hints: HashMap<PartitionId, usize>,
    /// With keys routed through the map: every client's reads and writes, one register per
    /// key whichever partition served it.
    pub(super) routed_history: History,
    next_id: u64,
    next_seq: u64,
}

impl Clients {
    /// A fresh request id (also a ticket).
    pub(super) fn take_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    pub(super) fn new(partitions: usize, clients: usize) -> Self {
        Self {
            partitions: (0..partitions)
                .map(|_| PartitionClients {
                    // The clients, then the resolver (see `PartitionClients::clients`).
                    clients: (0..=clients).map(|_| Client::default()).collect(),
                    ..PartitionClients::default()
                })
                .collect(),
            leader_hints: HashMap::new(),
            routed_history: History::default(),
            next_id: 1,
            next_seq: 0,
        }
    }
}

/// Whether a refusal proves the request was never carried out (so a write refused this way
/// was never appended anywhere and must never commit).
fn definite(refusal: &Refusal) -> bool {
    match refusal {
        Refusal::NotLeader { .. }
        | Refusal::QueueFull
        | Refusal::RestoreInProgress
        | Refusal::NotHosted
        | Refusal::Replica(_) => true,
        Refusal::ShardFailed { .. } | Refusal::ShutDown => false,
    }
}

/// The proposal of `op`'s entry.
fn propose(op: Op, auto_commit: bool, reply: Reply<ReplicationResult>) -> Request {
    Request::Propose {
        entries: smallvec::smallvec![ProposedEntry::new(LOG_TYPE, &op.encode())],
        auto_commit,
        ticket: Ticket(op.id()),
        reply,
    }
}

fn partition_id(p: usize) -> PartitionId {
    PartitionId(p as u32 + 1)
}

impl NodeSimulation {
    /// The node a request to `partition` goes to: the hinted leader mostly, any node
    /// sometimes (followers must refuse correctly too).
    pub(super) fn target(&mut self, partition: PartitionId) -> usize {
        match self.clients.leader_hints.get(&partition) {
            Some(&node) if !self.client_rng.chance(150_000) => node,
            _ => self.client_rng.index(self.nodes.len()),
        }
    }

    /// Sends `request` for `partition` to `node`; schedules the shard's turn.
    pub(super) fn send_to(
        &mut self,
        node: usize,
        partition: PartitionId,
        request: Request,
    ) -> Result<(), Refusal> {
        let Some(running) = self.nodes[node].running.as_ref() else {
            request.refuse(Refusal::ShutDown);
            return Err(Refusal::ShutDown);
        };
        running.host.send(partition, request)?;
        let shard = crate::shard::shard_of(partition, self.config.shards);
        self.schedule_turn(node, shard, self.now);
        Ok(())
    }

    fn next_op_at(&mut self) -> u64 {
        // Once the faults stopped, every partition is probed often: the liveness bound asks
        // for writes and reads on each.
        let (low, high) = match self.healed_at {
            Some(_) => (HEALED_OP_INTERVAL_MS.0, HEALED_OP_INTERVAL_MS.1),
            None => (
                self.config.op_interval_ms_min,
                self.config.op_interval_ms_max,
            ),
        };
        self.now + self.client_rng.between(low, high)
    }

    /// Starts client `c` of partition slot `p`'s next operation.
    pub(super) fn start_op(&mut self, p: usize, c: usize) -> Result<(), Violation> {
        if self.clients.partitions[p].clients[c].pending.is_some() {
            return Ok(());
        }
        if self.config.elastic() {
            return self.start_routed_op(p, c);
        }
        let partition = partition_id(p);
        let node = self.target(partition);
        let id = self.clients.take_id();
        let config = &self.config;
        let read = self.client_rng.chance(config.read_per_million);
        let two_phase = !read && self.client_rng.chance(config.two_phase_per_million);
        let key = self.client_rng.below(config.keys);
        let (request, awaiting) = if read {
            self.read_request(p, c, key)
        } else if two_phase {
            let (reply, answer) = oneshot::channel();
            let request = propose(Op::Held { id }, false, reply);
            (request, Awaiting::Held { id, answer })
        } else {
            self.write_request(p, c, key, id, 0)
        };
        self.report.operations += 1;
        self.send_op(p, c, node, partition, request, awaiting)
    }

    /// Starts client `c` of slot `p`'s next operation on a key routed through the map it
    /// learnt (see the module docs); without a route, it learns a node's map and tries later.
    fn start_routed_op(&mut self, p: usize, c: usize) -> Result<(), Violation> {
        let key = self.client_rng.below(self.config.keys);
        let route = self.clients.partitions[p].clients[c].map.route(key);
        let Some(Route {
            partition,
            generation,
        }) = route
        else {
            let node = self.client_rng.index(self.nodes.len());
            self.learn_map(p, c, node);
            let at = self.next_op_at();
            self.agenda.push(at, Event::ClientOp { p, c });
            return Ok(());
        };
        let node = self.target(partition);
        let id = self.clients.take_id();
        let read = self.client_rng.chance(self.config.read_per_million);
        let (request, awaiting) = if read {
            self.read_request(p, c, key)
        } else {
            self.write_request(p, c, key, id, generation.get())
        };
        let request = Request::Fenced {
            expected_generation: generation,
            request: Box::new(request),
        };
        self.report.operations += 1;
        self.send_op(p, c, node, partition, request, awaiting)
    }

    /// Client `c` of slot `p` learns `node`'s committed partition map (if the node is up).
    fn learn_map(&mut self, p: usize, c: usize, node: usize) {
        if let Some(running) = self.nodes[node].running.as_ref() {
            self.clients.partitions[p].clients[c]
                .map
                .learn(running.maps.map());
        }
    }

    /// The history client `c` of slot `p` records into, and the client's id there.
    fn history(&mut self, p: usize, c: usize) -> (&mut History, u64) {
        let clients = self.clients.partitions[p].clients.len();
        if self.config.elastic() {
            ((&mut self.clients.routed_history), (p * clients + c) as u64)
        } else {
            (&mut self.clients.partitions[p].history, c as u64)
        }
    }

    /// A read of `key` (entered in the history).
    fn read_request(&mut self, p: usize, c: usize, key: u64) -> (Request, Awaiting) {
        let (reply, answer) = oneshot::channel();
        let now = self.now;
        let (record, client) = self.history(p, c);
        let history = record.invoke(client, Command::Read { key }, now);
        // Half confirm leadership (the leader only), half read through any replica.
        let leader_only = self.client_rng.chance(500_000);
        (
            Request::ReadIndex { leader_only, reply },
            Awaiting::Read {
                key,
                history,
                answer,
            },
        )
    }

    /// An auto-commit write of `key` (entered in the history), routed with `generation`.
    fn write_request(
        &mut self,
        p: usize,
        c: usize,
        key: u64,
        id: u64,
        generation: u64,
    ) -> (Request, Awaiting) {
        let (reply, answer) = oneshot::channel();
        let op = Op::Write {
            key,
            value: id,
            generation,
        };
        let now = self.now;
        let (record, client) = self.history(p, c);
        let history = record.invoke(client, Command::Write { key, value: id }, now);
        (
            propose(op, true, reply),
            Awaiting::Write {
                op,
                history,
                answer,
            },
        )
    }

    /// Sends client `c`'s operation to `partition` on `node` and waits for its answer.
    fn send_op(
        &mut self,
        p: usize,
        c: usize,
        node: usize,
        partition: PartitionId,
        request: Request,
        awaiting: Awaiting,
    ) -> Result<(), Violation> {
        match self.send_to(node, partition, request) {
            Ok(()) => {
                self.await_answer(p, c, node, partition, awaiting);
                Ok(())
            }
            Err(refusal) => self.settle_refused(p, c, partition, awaiting, &refusal),
        }
    }

    fn await_answer(
        &mut self,
        p: usize,
        c: usize,
        node: usize,
        partition: PartitionId,
        awaiting: Awaiting,
    ) {
        let seq = self.clients.next_seq;
        self.clients.next_seq += 1;
        self.clients.partitions[p].clients[c].pending = Some(Pending {
            node,
            partition,
            seq,
            awaiting,
        });
        self.agenda.push(
            self.now + self.config.op_timeout_ms,
            Event::ClientTimeout { p, c, seq },
        );
    }

    /// A request refused when it was queued (never reached a replica).
    fn settle_refused(
        &mut self,
        p: usize,
        c: usize,
        partition: PartitionId,
        awaiting: Awaiting,
        refusal: &Refusal,
    ) -> Result<(), Violation> {
        self.note_refusal(partition, refusal);
        let at = self.next_op_at();
        self.agenda.push(at, Event::ClientOp { p, c });
        match awaiting {
            Awaiting::Write { op, history, .. } => {
                self.forget(p, c, history);
                self.failed(partition, op.id(), format!("{refusal:?}"))
            }
            Awaiting::Held { id, .. } => self.failed(partition, id, format!("{refusal:?}")),
            Awaiting::Read { history, .. } => {
                self.forget(p, c, history);
                Ok(())
            }
            Awaiting::Resolve { .. } => Ok(()),
        }
    }

    fn note_refusal(&mut self, partition: PartitionId, refusal: &Refusal) {
        let hints = &mut self.clients.leader_hints;
        match refusal {
            Refusal::NotLeader {
                leader: Some(leader),
            } => {
                hints.insert(partition, leader.0 as usize - 1);
            }
            // No leader known there, or the node is down: ask another next time.
            Refusal::NotLeader { leader: None } | Refusal::ShutDown => {
                hints.remove(&partition);
            }
            _ => {}
        }
    }

    /// Operation `id`, sent to `partition`, got a definite failure.
    fn failed(&mut self, partition: PartitionId, id: u64, answer: String) -> Result<(), Violation> {
        let verdict = FailedWritesNeverCommit::on_failed(id, &answer, &self.truth.applied_ops);
        self.truth.failed.insert(id, (partition, self.now, answer));
        self.report.failed += 1;
        self.checkers.judge(FailedWritesNeverCommit::NAME, verdict)
    }

    /// Looks at the answers of every client waiting on `node`.
    pub(super) fn poll_answers(&mut self, node: usize) -> Result<(), Violation> {
        for p in 0..self.clients.partitions.len() {
            for c in 0..self.clients.partitions[p].clients.len() {
                let waiting_here = self.clients.partitions[p].clients[c]
                    .pending
                    .as_ref()
                    .is_some_and(|pending| pending.node == node);
                if waiting_here {
                    self.poll_client(p, c)?;
                }
            }
            self.poll_checkpoint(p, node);
        }
        self.poll_membership(node);
        self.poll_elastic(node)?;
        self.poll_replacement(node)
    }

    fn poll_checkpoint(&mut self, p: usize, node: usize) {
        let clients = &mut self.clients.partitions[p];
        let Some((target, answer)) = clients.checkpoint.as_mut() else {
            return;
        };
        if *target != node {
            return;
        }
        match answer.try_recv() {
            Err(TryRecvError::Empty) => {}
            Ok(Ok(result)) => {
                if result.status == Status::Success {
                    self.report.checkpoints += 1;
                }
                clients.checkpoint = None;
            }
            Ok(Err(_)) | Err(TryRecvError::Closed) => clients.checkpoint = None,
        }
    }

    fn poll_client(&mut self, p: usize, c: usize) -> Result<(), Violation> {
        let Some(mut pending) = self.clients.partitions[p].clients[c].pending.take() else {
            return Ok(());
        };
        let ready = match &mut pending.awaiting {
            Awaiting::Write { answer, .. }
            | Awaiting::Held { answer, .. }
            | Awaiting::Resolve { answer, .. } => match answer.try_recv() {
                Err(TryRecvError::Empty) => None,
                Ok(result) => Some(Answered::Write(Some(result))),
                Err(TryRecvError::Closed) => Some(Answered::Write(None)),
            },
            Awaiting::Read { answer, .. } => match answer.try_recv() {
                Err(TryRecvError::Empty) => None,
                Ok(result) => Some(Answered::Read(Some(result))),
                Err(TryRecvError::Closed) => Some(Answered::Read(None)),
            },
        };
        match ready {
            None => {
                self.clients.partitions[p].clients[c].pending = Some(pending);
                Ok(())
            }
            Some(answered) => self.answered(p, c, pending, answered),
        }
    }

    /// The client gave up waiting (its operation's outcome stays unknown).
    pub(super) fn client_timeout(&mut self, p: usize, c: usize, seq: u64) -> Result<(), Violation> {
        let current = self.clients.partitions[p].clients[c]
            .pending
            .as_ref()
            .is_some_and(|pending| pending.seq == seq);
        if !current {
            return Ok(());
        }
        let pending = self.clients.partitions[p].clients[c]
            .pending
            .take()
            .expect("checked above");
        self.report.timeouts += 1;
        let answered = match pending.awaiting {
            Awaiting::Read { .. } => Answered::Read(None),
            _ => Answered::Write(None),
        };
        self.answered(p, c, pending, answered)
    }

    fn answered(
        &mut self,
        p: usize,
        c: usize,
        pending: Pending,
        answered: Answered,
    ) -> Result<(), Violation> {
        if self.tracing {
            eprintln!(
                "{:>8} ms    p{} client {c} answered by node {}: {answered:?}",
                self.now,
                p + 1,
                pending.node + 1
            );
        }
        let partition = pending.partition;
        if answered.partition_moved() && self.config.elastic() {
            // The handle's `PartitionMoved`: the client learns the map of the node that refused.
            self.learn_map(p, c, pending.node);
        }
        let next = self.next_op_at();
        let resolver = self.clients.partitions[p].clients.len() - 1;
        let mut next_event = (c != resolver).then_some((next, Event::ClientOp { p, c }));
        let result = match (pending.awaiting, answered) {
            (Awaiting::Write { op, history, .. }, Answered::Write(answer)) => match answer {
                Some(Ok(result)) if result.status == Status::Success => {
                    if self.complete(p, c, history, Response::Write) {
                        self.clients.partitions[p].healed_writes += 1;
                    }
                    self.acknowledged(partition, pending.node, op, result.index, true)
                }
                Some(Err(refusal)) if definite(&refusal) => {
                    self.note_refusal(partition, &refusal);
                    self.forget(p, c, history);
                    self.failed(partition, op.id(), format!("{refusal:?}"))
                }
                _ => {
                    self.report.indeterminate += 1;
                    Ok(())
                }
            },
            (Awaiting::Held { id, .. }, Answered::Write(answer)) => match answer {
                Some(Ok(result)) if result.status == Status::Success => {
                    let at = self.now + self.client_rng.between(5, 200);
                    let commit = !self.client_rng.chance(self.config.rollback_per_million);
                    let held = HeldWrite {
                        id,
                        index: result.index,
                    };
                    let c = resolver;
                    self.agenda.push(
                        at,
                        Event::Resolve {
                            p,
                            c,
                            held,
                            commit,
                            attempt: 0,
                        },
                    );
                    // Held: checked now, kept only once committed (a rolled-back entry may go).
                    self.acknowledged(
                        partition,
                        pending.node,
                        Op::Held { id },
                        result.index,
                        false,
                    )
                }
                Some(Err(refusal)) if definite(&refusal) => {
                    self.note_refusal(partition, &refusal);
                    self.failed(partition, id, format!("{refusal:?}"))
                }
                _ => {
                    // It may be held in the log: an unresolved ticket stops the partition's
                    // delivery (Kommander's two-phase semantics), so roll it back, as the
                    // library's `Timeout` docs tell an application to.
                    self.report.indeterminate += 1;
                    let held = HeldWrite {
                        id,
                        index: LogIndex::ZERO,
                    };
                    let at = self.now + resolve_backoff(0);
                    let c = resolver;
                    self.agenda.push(
                        at,
                        Event::Resolve {
                            p,
                            c,
                            held,
                            commit: false,
                            attempt: 0,
                        },
                    );
                    Ok(())
                }
            },
            (
                Awaiting::Resolve {
                    held,
                    commit,
                    attempt,
                    ..
                },
                Answered::Write(answer),
            ) => match answer {
                Some(Ok(result)) if result.status == Status::Success => {
                    if commit {
                        self.truth.acknowledged.push(Acknowledged {
                            partition,
                            index: held.index,
                            op: Op::Held { id: held.id },
                            at: self.now,
                        });
                        Ok(())
                    } else {
                        self.report.rolled_back += 1;
                        self.failed(partition, held.id, "a successful rollback".to_owned())
                    }
                }
                // Anything else leaves the ticket held, or may: resolve again (on the leader
                // named, if any) until the ticket is settled either way. `ProposalNotFound`
                // included, less often: it says only that this leader's log does not hold the
                // ticket now, and a later leader whose log holds it may commit the held entry,
                // which then stops the partition's delivery until someone resolves it (found by
                // this simulator).
                other => {
                    let delay = match &other {
                        Some(Err(Refusal::Replica(Status::ProposalNotFound))) => NOT_FOUND_RETRY_MS,
                        Some(Err(refusal)) => {
                            self.note_refusal(partition, refusal);
                            resolve_backoff(attempt)
                        }
                        _ => resolve_backoff(attempt),
                    };
                    let attempt = attempt + 1;
                    let resolve = Event::Resolve {
                        p,
                        c,
                        held,
                        commit,
                        attempt,
                    };
                    next_event = Some((self.now + delay, resolve));
                    Ok(())
                }
            },
            (Awaiting::Read { key, history, .. }, Answered::Read(answer)) => match answer {
                Some(Ok(_index)) => {
                    let value = self.nodes[pending.node].app.read(partition, key);
                    self.report.reads += 1;
                    if self.complete(p, c, history, Response::Read(value)) {
                        self.clients.partitions[p].healed_reads += 1;
                    }
                    self.clients
                        .leader_hints
                        .entry(partition)
                        .or_insert(pending.node);
                    Ok(())
                }
                other => {
                    if let Some(Err(refusal)) = &other {
                        self.note_refusal(partition, refusal);
                    }
                    // A read without an answer has no effect: it leaves the history.
                    self.forget(p, c, history);
                    Ok(())
                }
            },
            _ => unreachable!("answers are read with the receiver of their own kind"),
        };
        if let Some((at, event)) = next_event {
            self.agenda.push(at, event);
        }
        result
    }

    /// Resolves client `c`'s held write `id`: commit mostly, roll back sometimes.
    pub(super) fn resolve(
        &mut self,
        p: usize,
        c: usize,
        held: HeldWrite,
        commit: bool,
        attempt: u32,
    ) {
        if self.clients.partitions[p].clients[c].pending.is_some() {
            // Busy with another ticket: try once it is answered.
            let at = self.now + resolve_backoff(attempt);
            self.agenda.push(
                at,
                Event::Resolve {
                    p,
                    c,
                    held,
                    commit,
                    attempt,
                },
            );
            return;
        }
        let partition = partition_id(p);
        let node = self.target(partition);
        let (reply, answer) = oneshot::channel();
        let ticket = Ticket(held.id);
        let request = if commit {
            Request::Commit { ticket, reply }
        } else {
            Request::Rollback { ticket, reply }
        };
        let awaiting = Awaiting::Resolve {
            held,
            commit,
            attempt,
            answer,
        };
        match self.send_to(node, partition, request) {
            Ok(()) => self.await_answer(p, c, node, partition, awaiting),
            Err(_) => {
                let at = self.now + resolve_backoff(attempt);
                let event = Event::Resolve {
                    p,
                    c,
                    held,
                    commit,
                    attempt: attempt + 1,
                };
                self.agenda.push(at, event);
            }
        }
    }

    /// Records the answer to `history` (client `c` of slot `p`'s); whether the operation
    /// started after the faults healed.
    fn complete(&mut self, p: usize, c: usize, history: OperationId, response: Response) -> bool {
        let now = self.now;
        let (record, _) = self.history(p, c);
        record
            .complete(history, response, now)
            .expect("an answer to an operation the client sent");
        let invoked = record.get(history).expect("just completed").invoked_at;
        self.healed_at.is_some_and(|healed| invoked >= healed)
    }

    /// Leaves `history` (client `c` of slot `p`'s) out of the check: it did not take effect.
    fn forget(&mut self, p: usize, c: usize, history: OperationId) {
        let (record, _) = self.history(p, c);
        record
            .fail(history)
            .expect("a failure of an operation the client sent");
    }

    /// Asks partition slot `p`'s hinted leader for a checkpoint.
    pub(super) fn checkpoint(&mut self, p: usize) {
        let at = self.now
            + self.client_rng.between(
                self.config.checkpoint_interval_ms_min,
                self.config.checkpoint_interval_ms_max,
            );
        self.agenda.push(at, Event::Checkpoint { p });
        if self.clients.partitions[p].checkpoint.is_some() {
            return;
        }
        let partition = partition_id(p);
        let node = self.target(partition);
        let id = self.clients.take_id();
        let (reply, answer) = oneshot::channel();
        if self
            .send_to(
                node,
                partition,
                Request::Checkpoint {
                    ticket: Ticket(id),
                    reply,
                },
            )
            .is_ok()
        {
            self.clients.partitions[p].checkpoint = Some((node, answer));
        }
    }

    /// A proposal answered `Success` at `index`: it must be durable on a majority right now
    /// and, when `kept`, at every later check.
    fn acknowledged(
        &mut self,
        partition: PartitionId,
        node: usize,
        op: Op,
        index: LogIndex,
        kept: bool,
    ) -> Result<(), Violation> {
        self.report.acknowledged += 1;
        if self.tracing {
            eprintln!(
                "{:>8} ms    acknowledged by node {} at p{partition} {index}: {op:?}",
                self.now,
                node + 1,
            );
        }
        self.clients.leader_hints.insert(partition, node);
        let ack = Acknowledged {
            partition,
            index,
            op,
            at: self.now,
        };
        if kept {
            self.truth.acknowledged.push(ack);
        }
        if !self.checkers.listens(AcknowledgedWritesDurable::NAME) {
            return Ok(());
        }
        let verdict = self.check_durable(&ack);
        self.checkers
            .judge(AcknowledgedWritesDurable::NAME, verdict)
    }
}

/// An answer, or `None` when the answer channel closed (the node crashed) or the client gave up.
#[derive(Debug)]
enum Answered {
    Write(Option<Result<ReplicationResult, Refusal>>),
    Read(Option<Result<LogIndex, Refusal>>),
}

impl Answered {
    /// Whether the answer says the partition moved (`routing::partition_moved`).
    fn partition_moved(&self) -> bool {
        match self {
            Self::Write(answer) => partition_moved(answer.as_ref()),
            Self::Read(answer) => partition_moved(answer.as_ref()),
        }
    }
}
