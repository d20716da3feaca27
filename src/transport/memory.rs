//! The in-memory transport: several nodes in one process. Sending calls the destination's
//! [`Inbound`] directly, so the per-peer queue is the destination shard's bounded inbound
//! queue (a full one drops and counts, see `ShardHost::deliver`); a batch for a node that is
//! not registered (stopped, or not started yet) is dropped and counted here.
//!
//! Each batch and each call carries the sender's hybrid logical clock as the TCP transport's
//! frames do: the network stamps it with the sender's clock (its registered [`Inbound`]'s
//! [`clock`](Inbound::clock)) and merges the stamp into the receiver's before delivering; a
//! stamp too far ahead is not merged (and counted, [`MemoryNetwork::stamps_refused`]).
//!
//! Membership calls ([`Transport::call`]) go to the node registered at the endpoint called
//! ([`MemoryNetwork::register_endpoint`]): its [`Inbound::call`] queues the change on its
//! partition 0, and the answer is sent back at once when it is known at once, else from a
//! thread of the network that waits for it (at most [`MemoryNetwork::CALL_TIMEOUT`], then
//! the answer is `Unknown`; at most [`MemoryNetwork::CALLS_WAITING_MAX`] such threads at once,
//! one more call is answered `Busy`): the caller never blocks.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::core::{Message, NodeId};
use crate::shard::membership::{CallError, CallReply, MembershipCall};
use crate::shard::{Inbound, Transport};
use crate::transport::stamp;

/// A set of in-process nodes that can reach each other.
#[derive(Default)]
pub struct MemoryNetwork {
    nodes: RwLock<HashMap<NodeId, Arc<dyn Inbound>>>,
    /// Endpoint → the node reached there (membership calls).
    endpoints: RwLock<HashMap<String, NodeId>>,
    dropped_batches: AtomicU64,
    /// Stamps a receiver's clock refused to merge (too far ahead).
    stamps_refused: AtomicU64,
    /// Calls whose answer a thread of the network waits for.
    calls_waiting: Arc<AtomicUsize>,
}

impl std::fmt::Debug for MemoryNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryNetwork")
            .field("dropped_batches", &self.dropped_batches())
            .finish_non_exhaustive()
    }
}

impl MemoryNetwork {
    /// How long the network waits for the answer to a membership call before it answers
    /// `CallAnswer::Unknown` (the change may still commit); longer than a node's default
    /// proposal timeout, 10 s, within which the node asked gives its own answer.
    pub const CALL_TIMEOUT: Duration = Duration::from_secs(12);

    /// Membership calls whose answer the network waits for at once (one thread each); one
    /// more is answered [`CallError::Busy`].
    pub const CALLS_WAITING_MAX: usize = 64;

    /// An empty network.
    #[must_use]
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The transport node `from` sends with.
    #[must_use]
    pub fn transport(self: &Arc<Self>, from: NodeId) -> Arc<MemoryTransport> {
        Arc::new(MemoryTransport {
            from,
            network: Arc::clone(self),
        })
    }

    /// Makes `node` reachable: batches sent to it go to `inbound`. Replaces an earlier
    /// registration (a restarted node).
    pub fn register(&self, node: NodeId, inbound: Arc<dyn Inbound>) {
        if let Ok(mut nodes) = self.nodes.write() {
            nodes.insert(node, inbound);
        }
    }

    /// Makes `endpoint` the address of `node` for membership calls (a node joining through a
    /// seed calls the seed's endpoint). Replaces an earlier node at that endpoint. A call
    /// reaches the node only while it is also [`register`](Self::register)ed.
    pub fn register_endpoint(&self, node: NodeId, endpoint: impl Into<String>) {
        if let Ok(mut endpoints) = self.endpoints.write() {
            endpoints.insert(endpoint.into(), node);
        }
    }

    /// Makes `node` unreachable (a stopped node); later batches to it are dropped and calls
    /// to its endpoint answer [`CallError::Unreachable`].
    pub fn unregister(&self, node: NodeId) {
        if let Ok(mut nodes) = self.nodes.write() {
            nodes.remove(&node);
        }
    }

    /// Batches dropped because their destination was not registered.
    #[must_use]
    pub fn dropped_batches(&self) -> u64 {
        self.dropped_batches.load(Ordering::Relaxed)
    }

    /// Stamps the receivers' clocks refused to merge: further ahead of the receiver's wall
    /// clock than its `hlc_drift_ms_max` (the batch was delivered all the same).
    #[must_use]
    pub fn stamps_refused(&self) -> u64 {
        self.stamps_refused.load(Ordering::Relaxed)
    }

    fn inbound(&self, node: NodeId) -> Option<Arc<dyn Inbound>> {
        self.nodes
            .read()
            .ok()
            .and_then(|nodes| nodes.get(&node).cloned())
    }

    /// The stamp of what `from` sends now (its clock's, once it is registered).
    fn stamp(&self, from: NodeId) -> u64 {
        stamp::stamp(self.inbound(from).as_deref().and_then(Inbound::clock))
    }

    /// Merges `stamp`, from `from`, into `receiver`'s clock.
    fn merge(&self, receiver: &dyn Inbound, from: NodeId, stamp: u64) {
        if stamp::merge(receiver.clock(), from, stamp).is_err() {
            self.stamps_refused.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn deliver(&self, from: NodeId, to: NodeId, messages: Vec<Message>) {
        let stamp = self.stamp(from);
        match self.inbound(to) {
            Some(inbound) => {
                self.merge(inbound.as_ref(), from, stamp);
                inbound.deliver(messages);
            }
            None => {
                self.dropped_batches.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn call(&self, from: NodeId, endpoint: &str, call: MembershipCall, reply: CallReply) {
        let stamp = self.stamp(from);
        let unreachable = |reason: &str| {
            Err(CallError::Unreachable {
                endpoint: endpoint.to_owned(),
                reason: reason.to_owned(),
            })
        };
        let node = self
            .endpoints
            .read()
            .ok()
            .and_then(|endpoints| endpoints.get(endpoint).copied());
        let Some(node) = node else {
            let _ = reply.send(unreachable("no node has this endpoint"));
            return;
        };
        let Some(inbound) = self.inbound(node) else {
            let _ = reply.send(unreachable("the node is not running"));
            return;
        };
        self.merge(inbound.as_ref(), from, stamp);
        // A slot for the thread that may have to wait for the answer, taken before the call is
        // queued: a `Busy` caller knows nothing was asked.
        let waiting = Arc::clone(&self.calls_waiting);
        let taken = waiting.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < Self::CALLS_WAITING_MAX).then_some(n + 1)
        });
        if taken.is_err() {
            let _ = reply.send(Err(CallError::Busy {
                max: Self::CALLS_WAITING_MAX,
            }));
            return;
        }
        let mut wait = inbound.call(call);
        if let Some(answer) = wait.try_answer() {
            waiting.fetch_sub(1, Ordering::AcqRel);
            let _ = reply.send(Ok(answer));
            return;
        }
        let deadline = Instant::now() + Self::CALL_TIMEOUT;
        let spawned = std::thread::Builder::new()
            .name("kommander-memory-call".to_owned())
            .spawn(move || {
                let _ = reply.send(Ok(wait.wait(deadline)));
                waiting.fetch_sub(1, Ordering::AcqRel);
            });
        if spawned.is_err() {
            // The closure (and the reply with it) is gone: the caller sees its reply dropped.
            self.calls_waiting.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// One node's view of a [`MemoryNetwork`].
#[derive(Debug)]
pub struct MemoryTransport {
    from: NodeId,
    network: Arc<MemoryNetwork>,
}

impl MemoryTransport {
    /// The sending node.
    #[must_use]
    pub fn from(&self) -> NodeId {
        self.from
    }
}

impl Transport for MemoryTransport {
    fn send(&self, to: NodeId, messages: Vec<Message>) {
        if !messages.is_empty() {
            self.network.deliver(self.from, to, messages);
        }
    }

    fn call(&self, endpoint: &str, call: MembershipCall, reply: CallReply) {
        self.network.call(self.from, endpoint, call, reply);
    }
}
