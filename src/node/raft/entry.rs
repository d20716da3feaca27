//! Transport entry points (Kommander's `Handshake`, `RequestVote`, `Vote`, `AppendLogs`,
//! `CompleteAppendLogs`): what a custom transport calls with what it received. Each checks
//! the message kinds, the receiver and the sender before delivering to the runtime; the
//! handshake applies the TCP transport's duplicate-node rule (decision 0005, "Duplicate node
//! ids") with what the node knows: the incarnation each peer's last accepted handshake
//! presented, and when the peer's messages last arrived.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::core::{Message, MessageBody, NodeId};
use crate::node::error::{Fatal, PeerError};
use crate::shard::RaftEvent;
use crate::transport::tcp::duplicate;

use super::Raft;

/// A peer's hello on a custom transport ([`Raft::handshake`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandshakeRequest {
    /// The cluster the peer believes it belongs to.
    pub cluster_name: String,
    /// The peer's node id.
    pub node_id: NodeId,
    /// The peer's incarnation: its data directory's (`identity` file), what the TCP
    /// transport presents in its `Hello`. 0 presents none (never judged a duplicate).
    pub incarnation: u64,
    /// The peer's endpoint.
    pub endpoint: String,
}

impl Raft {
    /// A peer introduces itself on a custom transport: checks its cluster name, node id and
    /// endpoint, and the duplicate-node rule (a transport accepts the peer's messages only
    /// after a successful handshake). As the TCP transport's acceptor: a peer claiming this
    /// node's own id from another incarnation, or a peer whose last accepted handshake here
    /// presented another incarnation while its messages still arrive (within two thirds of
    /// `transport.idle_timeout_ms`), is refused with [`PeerError::DuplicateNode`] and must
    /// stop, unless the roster names its incarnation: then the other process is the one to
    /// stop (this node itself, which then stops with [`Fatal::DuplicateNode`] and refuses the
    /// peer as [`PeerError::UnknownNode`]; or the other peer, whose next handshake here is
    /// refused). A successful handshake records the peer's incarnation.
    ///
    /// # Errors
    ///
    /// [`PeerError::ClusterMismatch`], [`PeerError::UnknownNode`],
    /// [`PeerError::EndpointMismatch`] or [`PeerError::DuplicateNode`]; nothing is recorded.
    pub fn handshake(&self, request: &HandshakeRequest) -> Result<(), PeerError> {
        let inner = &self.inner;
        if request.cluster_name != inner.config.cluster_name {
            return Err(PeerError::ClusterMismatch {
                expected: inner.config.cluster_name.clone(),
                received: request.cluster_name.clone(),
            });
        }
        let node = request.node_id;
        let mine = inner.identity.incarnation();
        if node == self.local_node_id() && duplicate::conflict(mine, request.incarnation) {
            return Err(self.claims_this_node(request.incarnation));
        }
        let Some(peer) = inner.discovery.peer(node) else {
            return Err(PeerError::UnknownNode(node));
        };
        if peer.endpoint != request.endpoint {
            return Err(PeerError::EndpointMismatch {
                node,
                expected: peer.endpoint.clone(),
                received: request.endpoint.clone(),
            });
        }
        let mut handshakes = inner
            .handshakes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(&incumbent) = handshakes.get(&node)
            && duplicate::conflict(incumbent, request.incarnation)
            && self.heard_lately(node)
            && !duplicate::newcomer_keeps(self.roster_incarnation(node), request.incarnation)
        {
            return Err(PeerError::DuplicateNode {
                node,
                incarnation: request.incarnation,
                incumbent,
            });
        }
        handshakes.insert(node, request.incarnation);
        Ok(())
    }

    /// A peer of `incarnation` claims this node's own id: it is refused, unless the roster
    /// names it, and then this node stops.
    fn claims_this_node(&self, incarnation: u64) -> PeerError {
        let node = self.local_node_id();
        let mine = self.inner.identity.incarnation();
        if !duplicate::newcomer_keeps(self.roster_incarnation(node), incarnation) {
            return PeerError::DuplicateNode {
                node,
                incarnation,
                incumbent: mine,
            };
        }
        let reason: Arc<str> = format!(
            "a peer of incarnation {incarnation:#x}, the one the roster names, introduced \
             itself to this process (incarnation {mine:#x})"
        )
        .into();
        self.inner.fail(
            Fatal::DuplicateNode {
                node,
                reason: Arc::clone(&reason),
            },
            RaftEvent::DuplicateNode { node, reason },
        );
        PeerError::UnknownNode(node)
    }

    /// The incarnation the roster records for `node`, if it knows the node.
    fn roster_incarnation(&self, node: NodeId) -> Option<u64> {
        self.membership()?.member(node).map(|m| m.incarnation)
    }

    /// Whether `node`'s messages arrived within the liveness window of the TCP transport's
    /// rule (two keepalive periods of `transport.idle_timeout_ms`).
    fn heard_lately(&self, node: NodeId) -> bool {
        let window = Duration::from_millis(duplicate::liveness_window_ms(Duration::from_millis(
            self.inner.config.transport.idle_timeout_ms,
        )));
        self.inner
            .shards
            .last_heard(node)
            .is_some_and(|at| SystemTime::now().duration_since(at).unwrap_or_default() <= window)
    }

    /// Delivers pre-vote and vote requests received by a custom transport.
    ///
    /// # Errors
    ///
    /// [`PeerError::UnexpectedMessage`] for a message of another kind,
    /// [`PeerError::Misaddressed`] for one addressed to another node, [`PeerError::UnknownNode`]
    /// when its sender is not a configured peer. Nothing is delivered then.
    pub fn request_vote(&self, messages: Vec<Message>) -> Result<(), PeerError> {
        self.deliver_checked(messages, |b| {
            matches!(
                b,
                MessageBody::PreVoteRequest { .. } | MessageBody::VoteRequest { .. }
            )
        })
    }

    /// Delivers pre-vote and vote answers received by a custom transport.
    ///
    /// # Errors
    ///
    /// As [`Raft::request_vote`].
    pub fn vote(&self, messages: Vec<Message>) -> Result<(), PeerError> {
        self.deliver_checked(messages, |b| {
            matches!(
                b,
                MessageBody::PreVoteResponse { .. } | MessageBody::VoteResponse { .. }
            )
        })
    }

    /// Delivers leader-to-follower traffic (appends, heartbeats, transfer and read-index
    /// requests) received by a custom transport.
    ///
    /// # Errors
    ///
    /// As [`Raft::request_vote`].
    pub fn append_logs(&self, messages: Vec<Message>) -> Result<(), PeerError> {
        self.deliver_checked(messages, |b| {
            matches!(
                b,
                MessageBody::AppendRequest { .. }
                    | MessageBody::Heartbeat { .. }
                    | MessageBody::TimeoutNow
                    | MessageBody::ReadIndexRequest { .. }
            )
        })
    }

    /// Delivers follower-to-leader answers (append and heartbeat responses, read-index
    /// answers) received by a custom transport.
    ///
    /// # Errors
    ///
    /// As [`Raft::request_vote`].
    pub fn complete_append_logs(&self, messages: Vec<Message>) -> Result<(), PeerError> {
        self.deliver_checked(messages, |b| {
            matches!(
                b,
                MessageBody::AppendResponse { .. }
                    | MessageBody::HeartbeatResponse { .. }
                    | MessageBody::ReadIndexResponse { .. }
            )
        })
    }

    fn deliver_checked(
        &self,
        messages: Vec<Message>,
        accepts: fn(&MessageBody) -> bool,
    ) -> Result<(), PeerError> {
        let local = self.local_node_id();
        for message in &messages {
            if !accepts(&message.body) {
                return Err(PeerError::UnexpectedMessage);
            }
            if message.to != local {
                return Err(PeerError::Misaddressed { to: message.to });
            }
            if self.inner.discovery.peer(message.from).is_none() {
                return Err(PeerError::UnknownNode(message.from));
            }
        }
        self.inner.inbound.deliver(messages);
        Ok(())
    }
}
