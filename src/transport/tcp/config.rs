//! [`TcpConfig`]: the TCP transport's addresses, authentication and limits (the `[transport]`
//! table of a node's TOML configuration).

use serde::{Deserialize, Serialize};

/// Shortest accepted shared secret, in bytes.
pub const AUTH_SECRET_BYTES_MIN: usize = 16;

/// Settings of the TCP transport. Every limit is named here and checked by
/// [`TcpConfig::validate`] (called by `NodeConfig::validate`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TcpConfig {
    /// Address to listen on (`host:port`). Empty: the node's `endpoint`.
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
    /// Inbound connections open at once (authenticated or not); more are closed on accept.
    pub connections_max: usize,
    /// Inbound connections still in their handshake at once; more are closed on accept.
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
    /// Bytes one read from a socket asks for at most (the receive buffer grows by this).
    pub read_chunk_bytes: usize,
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
            .field("connections_max", &self.connections_max)
            .field("handshakes_pending_max", &self.handshakes_pending_max)
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
            connections_max: 256,
            handshakes_pending_max: 32,
            handshake_timeout_ms: 5_000,
            frame_read_timeout_ms: 5_000,
            idle_timeout_ms: 15_000,
            connect_timeout_ms: 1_000,
            write_timeout_ms: 5_000,
            reconnect_backoff_min_ms: 20,
            reconnect_backoff_max_ms: 2_000,
            read_chunk_bytes: 256 << 10,
        }
    }
}

impl TcpConfig {
    /// Checks every field. `largest_message_bytes` is the largest message the node's
    /// configuration lets a replica send (the frame limit must hold it).
    ///
    /// # Errors
    ///
    /// `(field, reason)` naming the first invalid field (as spelled in TOML, under
    /// `transport.`).
    pub fn validate(&self, largest_message_bytes: u64) -> Result<(), (&'static str, String)> {
        if let Some(secret) = &self.auth_secret
            && secret.len() < AUTH_SECRET_BYTES_MIN
        {
            return Err((
                "transport.auth_secret",
                format!("at least {AUTH_SECRET_BYTES_MIN} bytes"),
            ));
        }
        let positive: [(&'static str, u64); 13] = [
            ("transport.frame_bytes_max", self.frame_bytes_max as u64),
            (
                "transport.frame_messages_max",
                self.frame_messages_max as u64,
            ),
            (
                "transport.peer_queue_batches_max",
                self.peer_queue_batches_max as u64,
            ),
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
            ("transport.read_chunk_bytes", self.read_chunk_bytes as u64),
        ];
        for (field, value) in positive {
            if value == 0 {
                return Err((field, "must be positive".to_owned()));
            }
        }
        if self.frame_bytes_max > u32::MAX as usize {
            return Err(("transport.frame_bytes_max", "at most 4 GiB - 1".to_owned()));
        }
        if (self.frame_bytes_max as u64) < largest_message_bytes {
            return Err((
                "transport.frame_bytes_max",
                format!(
                    "must hold the largest AppendRequest this configuration allows \
                     ({largest_message_bytes} bytes)"
                ),
            ));
        }
        if self.handshakes_pending_max > self.connections_max {
            return Err((
                "transport.handshakes_pending_max",
                "must not exceed connections_max".to_owned(),
            ));
        }
        if self.reconnect_backoff_min_ms > self.reconnect_backoff_max_ms {
            return Err((
                "transport.reconnect_backoff_min_ms",
                "must not exceed reconnect_backoff_max_ms".to_owned(),
            ));
        }
        Ok(())
    }
}
