//! What the TCP transport is configured with: [`TcpConfig`] (its addresses, authentication
//! and limits: the `[transport]` table of a node's TOML configuration) and [`TcpCluster`]
//! (this node's id, its cluster's name and its peers). A node derives both from its own
//! configuration (`NodeConfig::tcp_config` and `NodeConfig::tcp_cluster`); the transport reads
//! nothing else.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::handshake::CLUSTER_NAME_BYTES_MAX;
use crate::core::NodeId;

/// Shortest accepted shared secret, in bytes.
pub const AUTH_SECRET_BYTES_MIN: usize = 16;

/// Largest accepted [`TcpConfig::direct_write_quiet_us`] (one second).
const DIRECT_WRITE_QUIET_US_MAX: u64 = 1_000_000;

/// An invalid [`TcpConfig`] or [`TcpCluster`] field. The field is named as in a node's TOML
/// configuration (where [`TcpConfig`] is the `[transport]` table), so a node reports it as its
/// own configuration error unchanged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid config field `{field}`: {reason}")]
pub struct TcpConfigError {
    /// The field, as spelled in a node's TOML configuration (`transport.frame_bytes_max`).
    pub field: &'static str,
    /// What is wrong.
    pub reason: String,
}

fn invalid(field: &'static str, reason: impl Into<String>) -> Result<(), TcpConfigError> {
    Err(TcpConfigError {
        field,
        reason: reason.into(),
    })
}

/// Settings of the TCP transport. Every limit is named here and checked by
/// [`TcpConfig::validate`] (called by `TcpTransport::bind` and by `NodeConfig::validate`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TcpConfig {
    /// Address to listen on (`host:port`). In a node's configuration, empty means the node's
    /// `endpoint` (`NodeConfig::tcp_config` resolves it); the transport needs it set.
    pub listen_address: String,
    /// Shared secret of the cluster (at least 16 bytes). Every connection proves knowledge of
    /// it with HMAC-SHA256 over fresh nonces of both sides. `None`: connections are not
    /// authenticated, and listening is refused on a non-loopback address unless
    /// `allow_unauthenticated` is set.
    pub auth_secret: Option<String>,
    /// Listen on a non-loopback address without `auth_secret` (anyone who can reach the port
    /// can then inject Raft messages).
    pub allow_unauthenticated: bool,
    /// Largest frame (header excluded) sent or accepted, in bytes. Must hold the largest
    /// AppendRequest (`append_bytes_max` and `wal_record_bytes_max` plus headers).
    pub frame_bytes_max: usize,
    /// Messages in one frame at most (checked before the message list is allocated).
    pub frame_messages_max: usize,
    /// Message batches queued per peer; a batch for a full queue is dropped and counted
    /// (Raft retries from its progress state).
    pub peer_queue_batches_max: usize,
    /// Peers at most, at start and in every set given to `TcpTransport::set_peers` (each costs
    /// a writer thread, its queue and an inbound connection). At most `connections_max`.
    pub peers_max: usize,
    /// Inbound connections open at once (authenticated or not); one more is answered with a
    /// `Reject` of code `Busy` and closed.
    pub connections_max: usize,
    /// Inbound connections still in their handshake at once; one more is answered with a
    /// `Reject` of code `Busy` and closed.
    pub handshakes_pending_max: usize,
    /// A connection must finish its handshake within this many milliseconds.
    pub handshake_timeout_ms: u64,
    /// A frame whose first byte arrived must be complete within this many milliseconds
    /// (defeats slow senders).
    pub frame_read_timeout_ms: u64,
    /// An inbound connection with no frame for this long is closed; outbound connections
    /// send an empty frame after a third of it without traffic.
    pub idle_timeout_ms: u64,
    /// Connecting to a peer gives up after this many milliseconds.
    pub connect_timeout_ms: u64,
    /// A write to a peer that makes no progress for this long fails (and reconnects).
    pub write_timeout_ms: u64,
    /// First delay before reconnecting to a peer after a failure (doubled per failure, with
    /// jitter), in milliseconds.
    pub reconnect_backoff_min_ms: u64,
    /// Ceiling of the reconnect delay, in milliseconds.
    pub reconnect_backoff_max_ms: u64,
    /// A peer that still cannot be reached is logged again after this many milliseconds
    /// (with the attempts since), and at once when the reason changes.
    pub connect_failure_log_interval_ms: u64,
    /// Bytes one read from a socket asks for at most (the receive buffer grows by this).
    pub read_chunk_bytes: usize,
    /// A sending thread (a shard) writes a batch on a free peer connection itself, with no
    /// hop to the peer's writer thread, only when nothing was written on that connection for
    /// this many microseconds; within it the batch goes to the writer thread, which coalesces
    /// a stream of batches into few frames. 0: whenever the connection is free. At most
    /// 1 000 000 (one second).
    pub direct_write_quiet_us: u64,
    /// Membership calls this node answers at once (`Call` connections on the peer port, from
    /// their admission in the handshake to their close); one more is answered with a `Reject`
    /// of code `Busy` and closed. At most `connections_max` (each is an inbound connection).
    pub calls_max: usize,
    /// Membership calls this node makes at once (`Transport::call`: a thread and a connection
    /// each); one more is answered `CallError::Busy` at once.
    pub calls_outgoing_max: usize,
    /// A membership call this node makes waits this many milliseconds for its answer once the
    /// call is sent (connecting and the handshake have their own deadlines), then fails with
    /// `CallError::Timeout` (the change may still commit).
    pub call_timeout_ms: u64,
    /// A membership call this node answers waits this many milliseconds for partition 0's
    /// outcome, then is answered `Unknown` (the change may still commit). Less than
    /// `call_timeout_ms`, so that a caller configured alike hears `Unknown` before its own
    /// deadline.
    pub call_answer_timeout_ms: u64,
}

impl std::fmt::Debug for TcpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpConfig")
            .field("listen_address", &self.listen_address)
            .field(
                "auth_secret",
                &self.auth_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("allow_unauthenticated", &self.allow_unauthenticated)
            .field("frame_bytes_max", &self.frame_bytes_max)
            .field("frame_messages_max", &self.frame_messages_max)
            .field("peer_queue_batches_max", &self.peer_queue_batches_max)
            .field("peers_max", &self.peers_max)
            .field("connections_max", &self.connections_max)
            .field("handshakes_pending_max", &self.handshakes_pending_max)
            .field("calls_max", &self.calls_max)
            .field("calls_outgoing_max", &self.calls_outgoing_max)
            .finish_non_exhaustive()
    }
}

impl Default for TcpConfig {
    fn default() -> Self {
        Self {
            listen_address: String::new(),
            auth_secret: None,
            allow_unauthenticated: false,
            frame_bytes_max: 16 << 20,
            frame_messages_max: 65_536,
            peer_queue_batches_max: 4_096,
            peers_max: 64,
            connections_max: 256,
            handshakes_pending_max: 32,
            handshake_timeout_ms: 5_000,
            frame_read_timeout_ms: 5_000,
            idle_timeout_ms: 15_000,
            connect_timeout_ms: 1_000,
            write_timeout_ms: 5_000,
            reconnect_backoff_min_ms: 20,
            reconnect_backoff_max_ms: 2_000,
            connect_failure_log_interval_ms: 60_000,
            read_chunk_bytes: 256 << 10,
            // Longer than the gap between the sends of one write's round trips, shorter than
            // a writer thread's wake-up: a stream of sends is batched, a lone send is direct.
            direct_write_quiet_us: 20,
            calls_max: 16,
            calls_outgoing_max: 16,
            // Longer than the answering side's wait, itself the default proposal timeout.
            call_timeout_ms: 12_000,
            call_answer_timeout_ms: 10_000,
        }
    }
}

impl TcpConfig {
    /// Checks every field on its own and against the others (an empty `listen_address` is
    /// refused by `TcpTransport::bind`, not here: a node on another transport leaves it empty).
    ///
    /// # Errors
    ///
    /// [`TcpConfigError`] naming the first invalid field (under `transport.`).
    pub fn validate(&self) -> Result<(), TcpConfigError> {
        if let Some(secret) = &self.auth_secret
            && secret.len() < AUTH_SECRET_BYTES_MIN
        {
            return invalid(
                "transport.auth_secret",
                format!("at least {AUTH_SECRET_BYTES_MIN} bytes"),
            );
        }
        let positive: [(&'static str, u64); 19] = [
            ("transport.frame_bytes_max", self.frame_bytes_max as u64),
            (
                "transport.frame_messages_max",
                self.frame_messages_max as u64,
            ),
            (
                "transport.peer_queue_batches_max",
                self.peer_queue_batches_max as u64,
            ),
            ("transport.peers_max", self.peers_max as u64),
            ("transport.connections_max", self.connections_max as u64),
            (
                "transport.handshakes_pending_max",
                self.handshakes_pending_max as u64,
            ),
            ("transport.handshake_timeout_ms", self.handshake_timeout_ms),
            (
                "transport.frame_read_timeout_ms",
                self.frame_read_timeout_ms,
            ),
            ("transport.idle_timeout_ms", self.idle_timeout_ms),
            ("transport.connect_timeout_ms", self.connect_timeout_ms),
            ("transport.write_timeout_ms", self.write_timeout_ms),
            (
                "transport.reconnect_backoff_min_ms",
                self.reconnect_backoff_min_ms,
            ),
            (
                "transport.reconnect_backoff_max_ms",
                self.reconnect_backoff_max_ms,
            ),
            (
                "transport.connect_failure_log_interval_ms",
                self.connect_failure_log_interval_ms,
            ),
            ("transport.read_chunk_bytes", self.read_chunk_bytes as u64),
            ("transport.calls_max", self.calls_max as u64),
            (
                "transport.calls_outgoing_max",
                self.calls_outgoing_max as u64,
            ),
            ("transport.call_timeout_ms", self.call_timeout_ms),
            (
                "transport.call_answer_timeout_ms",
                self.call_answer_timeout_ms,
            ),
        ];
        for (field, value) in positive {
            if value == 0 {
                return invalid(field, "must be positive");
            }
        }
        if self.frame_bytes_max > u32::MAX as usize {
            return invalid("transport.frame_bytes_max", "at most 4 GiB - 1");
        }
        if self.handshakes_pending_max > self.connections_max {
            return invalid(
                "transport.handshakes_pending_max",
                "must not exceed connections_max",
            );
        }
        if self.peers_max > self.connections_max {
            return invalid(
                "transport.peers_max",
                "must not exceed connections_max (every peer holds an inbound connection)",
            );
        }
        if self.calls_max > self.connections_max {
            return invalid(
                "transport.calls_max",
                "must not exceed connections_max (every call answered is an inbound connection)",
            );
        }
        if self.call_answer_timeout_ms >= self.call_timeout_ms {
            return invalid(
                "transport.call_answer_timeout_ms",
                "must be less than call_timeout_ms (a caller configured alike would time out \
                 before the answer)",
            );
        }
        if self.direct_write_quiet_us > DIRECT_WRITE_QUIET_US_MAX {
            return invalid(
                "transport.direct_write_quiet_us",
                format!("at most {DIRECT_WRITE_QUIET_US_MAX} (one second)"),
            );
        }
        if self.reconnect_backoff_min_ms > self.reconnect_backoff_max_ms {
            return invalid(
                "transport.reconnect_backoff_min_ms",
                "must not exceed reconnect_backoff_max_ms",
            );
        }
        Ok(())
    }
}

/// This node's place in its cluster, as the TCP transport needs it: who it is, which cluster
/// it belongs to, where its peers are, and the cluster's heartbeat period.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpCluster {
    /// The cluster's name; the handshake refuses nodes (and clients) of another cluster.
    pub cluster_name: String,
    /// This node's id (non-zero: 0 is the id clients present).
    pub node_id: NodeId,
    /// The other nodes at start: id → endpoint (`host:port`), at most
    /// [`TcpConfig::peers_max`]. Only the current peers may connect as peers, and the
    /// transport keeps one outbound connection to each; `TcpTransport::set_peers` replaces
    /// them while the transport runs.
    pub peers: BTreeMap<NodeId, String>,
    /// The nodes' heartbeat period. Heartbeats of all partitions to one peer are coalesced
    /// into one frame per period (a heartbeat leaves up to one period late).
    pub heartbeat_interval: Duration,
}

impl TcpCluster {
    /// Checks the fields the transport relies on.
    ///
    /// # Errors
    ///
    /// [`TcpConfigError`] naming the first invalid field (as a node's configuration spells it).
    pub fn validate(&self) -> Result<(), TcpConfigError> {
        if self.node_id.get() == 0 {
            return invalid("node_id", "node id 0 is reserved");
        }
        if self.peers.contains_key(&self.node_id) {
            return invalid("peers", "lists this node's own id");
        }
        if self.peers.contains_key(&NodeId(0)) {
            return invalid("peers", "node id 0 is reserved");
        }
        if self.cluster_name.is_empty() {
            return invalid("cluster_name", "must not be empty");
        }
        if self.cluster_name.len() > CLUSTER_NAME_BYTES_MAX {
            return invalid(
                "cluster_name",
                format!("at most {CLUSTER_NAME_BYTES_MAX} bytes"),
            );
        }
        if self.heartbeat_interval.is_zero() {
            return invalid("heartbeat_interval_ticks", "must be positive");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_call_settings_are_checked() {
        assert_eq!(TcpConfig::default().validate(), Ok(()));
        let refused = |config: TcpConfig| config.validate().map_err(|e| e.field);
        assert_eq!(
            refused(TcpConfig {
                calls_max: 0,
                ..TcpConfig::default()
            }),
            Err("transport.calls_max")
        );
        assert_eq!(
            refused(TcpConfig {
                calls_outgoing_max: 0,
                ..TcpConfig::default()
            }),
            Err("transport.calls_outgoing_max")
        );
        assert_eq!(
            refused(TcpConfig {
                connections_max: 8,
                handshakes_pending_max: 8,
                peers_max: 8,
                calls_max: 9,
                ..TcpConfig::default()
            }),
            Err("transport.calls_max")
        );
        assert_eq!(
            refused(TcpConfig {
                call_timeout_ms: 5_000,
                call_answer_timeout_ms: 5_000,
                ..TcpConfig::default()
            }),
            Err("transport.call_answer_timeout_ms")
        );
        assert_eq!(
            refused(TcpConfig {
                call_timeout_ms: 0,
                ..TcpConfig::default()
            }),
            Err("transport.call_timeout_ms")
        );
    }

    #[test]
    fn the_direct_write_quiet_time_is_bounded() {
        let with = |direct_write_quiet_us| TcpConfig {
            direct_write_quiet_us,
            ..TcpConfig::default()
        };
        assert_eq!(
            with(0).validate(),
            Ok(()),
            "0: whenever the connection is free"
        );
        assert_eq!(with(DIRECT_WRITE_QUIET_US_MAX).validate(), Ok(()));
        assert_eq!(
            with(DIRECT_WRITE_QUIET_US_MAX + 1)
                .validate()
                .map_err(|e| e.field),
            Err("transport.direct_write_quiet_us")
        );
    }
}
