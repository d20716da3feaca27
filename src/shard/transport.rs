//! The two sides of the network as the shards see it: [`Transport`] carries a shard's outgoing
//! message batches (one batch per peer per loop turn), [`Inbound`] is what a transport calls
//! with the batches it received (the shard host's router, which hands each message to the
//! shard owning its partition). The implementations (in-memory, fault-injecting, TCP) live in
//! the transport layer (`src/transport/`).
//!
//! Every frame between nodes carries the sender's hybrid logical clock: [`Inbound::clock`] is
//! the clock a transport stamps with and merges into.
//!
//! Both directions are non-blocking and bounded: a transport that cannot take a batch drops it
//! and counts the drop (Raft tolerates loss: the leader retries from its progress state), and
//! the inbound side drops (and counts) batches for a shard whose inbound queue is full.
//!
//! The set of peers may change while the node runs (membership changes):
//! [`Transport::set_peers`] hands a transport the new set. Beside the message batches, a
//! transport may carry membership calls ([`Transport::call`], [`Inbound::call`]): a roster
//! change asked of a node by endpoint, answered once (see `membership/call.rs`).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::membership::{CallAnswer, CallError, CallReply, CallWait, MembershipCall, Roster};
use crate::clock::HybridLogicalClock;
use crate::core::{Message, NodeId, Status};

/// Sends message batches to peers.
pub trait Transport: Send + Sync + 'static {
    /// Queues `messages` (all addressed to `to`) for delivery. Never blocks; a batch that
    /// cannot be queued (full per-peer queue, unknown peer) is dropped and counted.
    fn send(&self, to: NodeId, messages: Vec<Message>);

    /// Makes `peers` (node id → endpoint, `host:port`; never this node) the nodes this
    /// transport talks to, in place of the set it had (the one it was built with, or the last
    /// one set). The node calls it when its membership changes.
    ///
    /// What a transport that keeps connections to its peers must do once this returns `Ok`:
    ///
    /// * a new peer: batches to it are queued and delivered, and its connections are accepted;
    /// * a removed peer: batches to it are dropped (and counted as for an unknown peer), its
    ///   connections in both directions are closed, and it is refused if it connects again;
    /// * a peer whose endpoint changed: it is reached at the new endpoint only;
    /// * a peer whose endpoint did not change: nothing happens to it (setting the same set
    ///   again reconnects nothing).
    ///
    /// It must not block on the network or on threads ending: the caller may be the node's
    /// coordinator. The default does nothing, which is right for a transport that routes by
    /// node id alone (the in-memory network).
    ///
    /// # Errors
    ///
    /// [`PeerSetError`]: the set is refused as a whole and the transport keeps its previous
    /// peers (more peers than the transport allows, this node's own id or the reserved id 0
    /// among them, or a resource it could not get).
    fn set_peers(&self, peers: &BTreeMap<NodeId, String>) -> Result<(), PeerSetError> {
        let _ = peers;
        Ok(())
    }

    /// Sends `call` to the node at `endpoint` (`host:port`; it need not be a peer, and this
    /// node need not be one of its peers: a joining node calls a seed) and sends its answer,
    /// or why there is none, on `reply`. Never blocks: the transport waits for the answer on
    /// its own (within a deadline of its own) and bounds the calls in progress
    /// ([`CallError::Busy`] over its limit). The answering side hands the call to its
    /// [`Inbound::call`].
    ///
    /// The default answers [`CallError::Unsupported`]: a transport without calls serves a
    /// cluster whose membership changes only on partition 0's leader
    /// (`Request::ChangeMembership`).
    fn call(&self, endpoint: &str, call: MembershipCall, reply: CallReply) {
        let _ = (endpoint, call);
        let _ = reply.send(Err(CallError::Unsupported));
    }
}

/// Why a transport refused a peer set ([`Transport::set_peers`]); it keeps its previous peers.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum PeerSetError {
    /// More peers than the transport's limit.
    #[error("{count} peers are more than {setting} ({max})")]
    TooMany {
        /// Peers in the refused set.
        count: usize,
        /// The limit.
        max: usize,
        /// The setting that holds the limit, as a node's configuration spells it
        /// (`transport.peers_max`).
        setting: &'static str,
    },
    /// The set names this node itself or the reserved id 0.
    #[error("{0} cannot be a peer of this node (its own id, or the reserved id 0)")]
    InvalidPeer(NodeId),
    /// The transport could not get what a new peer needs (a thread).
    #[error("setting up the link to {peer}: {source}")]
    Io {
        /// The peer.
        peer: NodeId,
        /// The error.
        source: std::io::Error,
    },
}

/// The receiving side of a node: what a transport calls with the batches it received.
pub trait Inbound: Send + Sync + 'static {
    /// Hands received messages to the node. Never blocks; messages that cannot be queued are
    /// dropped and counted.
    fn deliver(&self, messages: Vec<Message>);

    /// Hands a membership call that arrived to the node (partition 0's shard carries it out,
    /// or names the leader). Never blocks: the answer is taken from the returned [`CallWait`]
    /// and sent back to the caller. The default refuses every call with `Errored`.
    fn call(&self, call: MembershipCall) -> CallWait {
        let _ = call;
        CallWait::answered(CallAnswer::Refused(Status::Errored))
    }

    /// The node's hybrid logical clock. A transport stamps every frame it sends to a peer
    /// with the sender's [`HybridLogicalClock::now`] and, before it hands a received frame's
    /// messages to [`Inbound::deliver`], merges the frame's stamp into the receiver's clock
    /// with [`HybridLogicalClock::update`] (a stamp too far ahead is not merged; the frame is
    /// delivered all the same). The node's inbound side (`Raft::inbound`) has one; the
    /// default, `None`, leaves frames unstamped and stamps unmerged.
    fn clock(&self) -> Option<&HybridLogicalClock> {
        None
    }

    /// The node's incarnation (its data directory's, decision 0004 point 7), which a
    /// transport presents in its handshakes so that another live process claiming the same
    /// node id can be told from this one reconnecting. The default, 0, presents none: a side
    /// without an incarnation is never judged a duplicate.
    fn incarnation(&self) -> u64 {
        0
    }

    /// The node's roster (partition 0's, when it is open here): which incarnation of a node
    /// id is the member, when two live processes claim the id. The default knows none.
    fn roster(&self) -> Option<Arc<Roster>> {
        None
    }

    /// The transport learned that another live process holds this node's id and this one
    /// must stop (decision 0005, "Duplicate node ids"); `reason` says who said so and why.
    /// The node stops as on a fatal error. Called once. The default does nothing.
    fn duplicate_node(&self, reason: String) {
        let _ = reason;
    }
}
