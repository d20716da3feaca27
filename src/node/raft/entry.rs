//! Transport entry points (Kommander's `Handshake`, `RequestVote`, `Vote`, `AppendLogs`,
//! `CompleteAppendLogs`): what a custom transport calls with what it received. Each checks
//! the message kinds, the receiver and the sender before delivering to the runtime.

use crate::core::{Message, MessageBody, NodeId, Status};

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

/// Why a handshake was refused.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The peer belongs to another cluster.
    #[error("cluster name mismatch: this node is in `{expected}`, the peer in `{received}`")]
    ClusterMismatch {
        /// This node's cluster.
        expected: String,
        /// The peer's.
        received: String,
    },
    /// The node id is not in this node's configuration (or is this node's own id).
    #[error("node {0} is not a peer of this node")]
    UnknownNode(NodeId),
    /// The node id is known under another endpoint.
    #[error("node {node} is configured at `{expected}`, not `{received}`")]
    EndpointMismatch {
        /// The node.
        node: NodeId,
        /// Its configured endpoint.
        expected: String,
        /// The endpoint it claimed.
        received: String,
    },
}

impl Raft {
    /// A peer introduces itself on a custom transport: checks its cluster name, node id and
    /// endpoint (a transport accepts the peer's messages only after a successful handshake).
    ///
    /// # Errors
    ///
    /// [`HandshakeError`] naming the mismatch; nothing is recorded.
    pub fn handshake(&self, request: &HandshakeRequest) -> Result<(), HandshakeError> {
        let inner = &self.inner;
        if request.cluster_name != inner.config.cluster_name {
            return Err(HandshakeError::ClusterMismatch {
                expected: inner.config.cluster_name.clone(),
                received: request.cluster_name.clone(),
            });
        }
        let Some(peer) = inner.discovery.peer(request.node_id) else {
            return Err(HandshakeError::UnknownNode(request.node_id));
        };
        if peer.endpoint != request.endpoint {
            return Err(HandshakeError::EndpointMismatch {
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
    /// `Errored` when a message is of another kind or addressed to another node;
    /// `LogsFromAnotherLeader` when its sender is not a configured peer. Nothing is delivered
    /// then.
    pub fn request_vote(&self, messages: Vec<Message>) -> Result<(), Status> {
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
    pub fn vote(&self, messages: Vec<Message>) -> Result<(), Status> {
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
    pub fn append_logs(&self, messages: Vec<Message>) -> Result<(), Status> {
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
    pub fn complete_append_logs(&self, messages: Vec<Message>) -> Result<(), Status> {
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
    ) -> Result<(), Status> {
        let local = self.local_node_id();
        for message in &messages {
            if !accepts(&message.body) || message.to != local {
                return Err(Status::Errored);
            }
            if self.inner.discovery.peer(message.from).is_none() {
                return Err(Status::LogsFromAnotherLeader);
            }
        }
        self.inner.inbound.deliver(messages);
        Ok(())
    }
}
