//! The in-memory transport: several nodes in one process. Sending calls the destination's
//! [`Inbound`] directly, so the per-peer queue is the destination shard's bounded inbound
//! queue (a full one drops and counts, see `ShardHost::deliver`); a batch for a node that is
//! not registered (stopped, or not started yet) is dropped and counted here.
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

/// A set of in-process nodes that can reach each other.
#[derive(Default)]
pub struct MemoryNetwork {
    nodes: RwLock<HashMap<NodeId, Arc<dyn Inbound>>>,
    /// Endpoint → the node reached there (membership calls).
    endpoints: RwLock<HashMap<String, NodeId>>,
    dropped_batches: AtomicU64,
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

    fn inbound(&self, node: NodeId) -> Option<Arc<dyn Inbound>> {
        self.nodes
            .read()
            .ok()
            .and_then(|nodes| nodes.get(&node).cloned())
    }

    fn deliver(&self, to: NodeId, messages: Vec<Message>) {
        match self.inbound(to) {
            Some(inbound) => inbound.deliver(messages),
            None => {
                self.dropped_batches.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn call(&self, endpoint: &str, call: MembershipCall, reply: CallReply) {
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
            self.network.deliver(to, messages);
        }
    }

    fn call(&self, endpoint: &str, call: MembershipCall, reply: CallReply) {
        self.network.call(endpoint, call, reply);
    }
}
