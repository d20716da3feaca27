//! Transport entry points (Kommander's `Handshake`, `RequestVote`, `Vote`, `AppendLogs`,
//! `CompleteAppendLogs`): what a custom transport calls with what it received. Each checks
//! the message kinds, the receiver and the sender before delivering to the runtime.

use crate::core::{Message, MessageBody, NodeId};
use crate::node::error::PeerError;

use super::Raft;

/// A peer's hello on a custom transport ([`Raft::handshake`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandshakeRequest {
    /// The cluster the peer believes it belongs to.
    pub cluster_name: String,
    /// The peer's node id.
    pub node_id: NodeId,
    /// The peer's endpoint.
    pub endpoint: String,
}

impl Raft {
    /// A peer introduces itself on a custom transport: checks its cluster name, node id and
    /// endpoint (a transport accepts the peer's messages only after a successful handshake).
    ///
    /// # Errors
    ///
    /// [`PeerError::ClusterMismatch`], [`PeerError::UnknownNode`] or
    /// [`PeerError::EndpointMismatch`]; nothing is recorded.
    pub fn handshake(&self, request: &HandshakeRequest) -> Result<(), PeerError> {
        let inner = &self.inner;
        if request.cluster_name != inner.config.cluster_name {
            return Err(PeerError::ClusterMismatch {
                expected: inner.config.cluster_name.clone(),
                received: request.cluster_name.clone(),
            });
        }
        let Some(peer) = inner.discovery.peer(request.node_id) else {
            return Err(PeerError::UnknownNode(request.node_id));
        };
        if peer.endpoint != request.endpoint {
            return Err(PeerError::EndpointMismatch {
                node: request.node_id,
                expected: peer.endpoint.clone(),
                received: request.endpoint.clone(),
            });
        }
        Ok(())
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
