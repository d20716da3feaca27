//! The store's configuration: one TOML file holding the node's [`NodeConfig`] (every field of
//! `kommander node`'s file) and a `[kv]` table of the store's own settings. Every limit is a
//! named field, validated when the file is read: a bad value is a [`ConfigError`] naming it,
//! and the binary exits 2.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use kommander_raft::NodeConfig;
use serde::Deserialize;

use crate::snapshot::RECORD_OVERHEAD_BYTES;

/// The `[kv]` table: the store's own settings. Every field has a default but
/// [`KvConfig::http_listen`].
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KvConfig {
    /// Where the HTTP API listens, `host:port` (port 0: a free port, see
    /// [`KvNode::http_addr`](crate::KvNode::http_addr)). Required.
    pub http_listen: String,
    /// The `host:port` the other nodes send clients to when they redirect a write to this node
    /// (the leader). Default: the address the API is bound to, which must then not be the
    /// unspecified address (`0.0.0.0`).
    pub http_advertise: Option<String>,
    /// Where the partitions' snapshot files live (default: `kv` in the node's `data_dir`).
    pub snapshot_dir: Option<PathBuf>,
    /// Longest key, in bytes of UTF-8.
    pub key_bytes_max: usize,
    /// Largest request body (a PUT's value, a compare-and-set's JSON), in bytes. Larger ones
    /// are refused with 413 and write nothing.
    pub body_bytes_max: usize,
    /// HTTP requests served at once; one beyond it is refused at once with 503 (nothing
    /// written).
    pub requests_in_flight_max: usize,
    /// How long a write waits for its outcome, in ms; past it the answer is 504 `unknown`
    /// (the write may still commit).
    pub write_timeout_ms: u64,
    /// How long a linearizable read waits for its ReadIndex round and the local application
    /// of the read index, in ms; past it the answer is 504 (a read changes nothing).
    pub read_timeout_ms: u64,
    /// How many times a write refused because its partition moved (a split or merge changed
    /// the map) is routed again with the new map before the store answers 503.
    pub partition_moved_retries_max: u32,
    /// Checkpoint a partition this node leads once this many entries were applied since its
    /// last checkpoint (0: no entry rule). Bounds the log kept per partition.
    pub checkpoint_interval_entries: u64,
    /// Also checkpoint once this many payload bytes were applied since the last checkpoint
    /// (0: no byte rule). At least one of the two rules must be on.
    pub checkpoint_interval_bytes: u64,
    /// How often the checkpoint rules are looked at, in ms.
    pub checkpoint_check_interval_ms: u64,
    /// Snapshots waiting to be written to their files; a checkpoint's snapshot beyond it is
    /// skipped (the log is then compacted at a later checkpoint).
    pub snapshot_queue_max: usize,
    /// Largest snapshot received from a leader or read from a file, in bytes.
    pub snapshot_bytes_max: u64,
    /// TEST ONLY, never in production: answer linearizable GETs from this replica's state
    /// without a ReadIndex round, as `?stale=true` does. The negative control of the
    /// Jepsen harness (`jepsen/`), which must report the stale reads it lets through.
    pub unsafe_local_reads: bool,
    /// TEST ONLY, never in production: answer a PUT or an append `ok` as soon as this node,
    /// believing it leads the key's partition, has handed the entry to the library, before
    /// it is committed (before a quorum holds it durably); the proposal then runs on in the
    /// background, at most `requests_in_flight_max` of them. A leader cut off or killed
    /// loses writes it acknowledged. The second negative control of the Jepsen harness,
    /// which must report the lost acknowledged appends.
    pub unsafe_ack_before_commit: bool,
}

impl Default for KvConfig {
    fn default() -> Self {
        Self {
            http_listen: String::new(),
            http_advertise: None,
            snapshot_dir: None,
            key_bytes_max: 1024,
            body_bytes_max: 64 << 10,
            requests_in_flight_max: 1024,
            write_timeout_ms: 5_000,
            read_timeout_ms: 2_000,
            partition_moved_retries_max: 3,
            checkpoint_interval_entries: 10_000,
            checkpoint_interval_bytes: 16 << 20,
            checkpoint_check_interval_ms: 100,
            snapshot_queue_max: 4,
            snapshot_bytes_max: 1 << 30,
            unsafe_local_reads: false,
            unsafe_ack_before_commit: false,
        }
    }
}

/// A configuration that cannot be used: which field, and why.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file does not parse, or the node's part is invalid.
    #[error("{0}")]
    Node(#[from] kommander_raft::ConfigError),
    /// The `[kv]` table does not parse (the message names the field).
    #[error("the [kv] table does not parse: {0}")]
    Parse(String),
    /// A `[kv]` field has an invalid value.
    #[error("invalid config field `kv.{field}`: {reason}")]
    InvalidField {
        /// The field's name in the `[kv]` table.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// The whole configuration of one store node.
#[derive(Clone, Debug)]
pub struct Config {
    /// The Raft node's configuration.
    pub node: NodeConfig,
    /// The store's own settings.
    pub kv: KvConfig,
}

impl Config {
    /// Parses a TOML text: the `[kv]` table into [`KvConfig`], everything else into
    /// [`NodeConfig::from_toml`]; then validates both.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Node`] for text that does not parse or an invalid node field,
    /// [`ConfigError::Parse`] for a `[kv]` table that does not parse (an unknown field too),
    /// [`ConfigError::InvalidField`] as [`Config::validate`].
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let mut table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| kommander_raft::ConfigError::Parse(e.to_string()))?;
        let kv = match table.remove("kv") {
            Some(value) => value
                .try_into::<KvConfig>()
                .map_err(|e| ConfigError::Parse(e.to_string()))?,
            None => KvConfig::default(),
        };
        let node_text = toml::to_string(&table).map_err(|e| ConfigError::Parse(e.to_string()))?;
        let node = NodeConfig::from_toml(&node_text)?;
        let config = Self { node, kv };
        config.validate()?;
        Ok(config)
    }

    /// Checks every `[kv]` limit, and those that depend on the node's.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidField`] naming the first bad field; [`ConfigError::Node`] for
    /// the node's part.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.node.validate()?;
        let kv = &self.kv;
        let invalid = |field: &'static str, reason: &str| {
            Err(ConfigError::InvalidField {
                field,
                reason: reason.to_owned(),
            })
        };
        if kv.http_listen.parse::<SocketAddr>().is_err() {
            return invalid("http_listen", "must be an address `ip:port`");
        }
        if let Some(advertise) = &kv.http_advertise
            && advertise
                .rsplit_once(':')
                .is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err())
        {
            return invalid("http_advertise", "must be `host:port`");
        }
        let positive = [
            ("key_bytes_max", kv.key_bytes_max as u64),
            ("body_bytes_max", kv.body_bytes_max as u64),
            ("requests_in_flight_max", kv.requests_in_flight_max as u64),
            ("write_timeout_ms", kv.write_timeout_ms),
            ("read_timeout_ms", kv.read_timeout_ms),
            (
                "checkpoint_check_interval_ms",
                kv.checkpoint_check_interval_ms,
            ),
            ("snapshot_queue_max", kv.snapshot_queue_max as u64),
            ("snapshot_bytes_max", kv.snapshot_bytes_max),
        ];
        if let Some((field, _)) = positive.into_iter().find(|(_, value)| *value == 0) {
            return invalid(field, "must be positive");
        }
        if kv.key_bytes_max > usize::from(u16::MAX) {
            return invalid("key_bytes_max", "at most 65535 (a key's length is 16 bits)");
        }
        if kv.body_bytes_max > u32::MAX as usize {
            return invalid("body_bytes_max", "below 4 GiB");
        }
        if kv.checkpoint_interval_entries == 0 && kv.checkpoint_interval_bytes == 0 {
            return invalid(
                "checkpoint_interval_entries",
                "0 with checkpoint_interval_bytes 0 too: without checkpoints the log grows for ever",
            );
        }
        // A split's or merge's range moves in chunks of whole records (store.rs): the largest
        // record must fit one chunk.
        let record_max = RECORD_OVERHEAD_BYTES + kv.key_bytes_max + kv.body_bytes_max;
        if record_max > self.node.snapshot.chunk_bytes {
            return Err(ConfigError::InvalidField {
                field: "body_bytes_max",
                reason: format!(
                    "key_bytes_max + body_bytes_max + {RECORD_OVERHEAD_BYTES} ({record_max}) must \
                     fit snapshot.chunk_bytes ({}): a key moved by a split travels in one chunk",
                    self.node.snapshot.chunk_bytes
                ),
            });
        }
        Ok(())
    }

    /// Where the snapshot files live.
    #[must_use]
    pub fn snapshot_dir(&self) -> PathBuf {
        self.kv
            .snapshot_dir
            .clone()
            .unwrap_or_else(|| self.node.data_dir.join("kv"))
    }

    /// [`KvConfig::write_timeout_ms`] as a duration.
    pub(crate) fn write_timeout(&self) -> Duration {
        Duration::from_millis(self.kv.write_timeout_ms)
    }

    /// [`KvConfig::read_timeout_ms`] as a duration.
    pub(crate) fn read_timeout(&self) -> Duration {
        Duration::from_millis(self.kv.read_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODE: &str = "node_id = 1\ndata_dir = \"/tmp/kv-config-test\"\n";

    #[test]
    fn the_kv_table_is_split_from_the_node_fields() {
        let text = format!(
            "{NODE}initial_partitions = 3\n[kv]\nhttp_listen = \"127.0.0.1:0\"\nkey_bytes_max = 10\n"
        );
        let config = Config::from_toml(&text).expect("valid");
        assert_eq!(config.node.initial_partitions, 3);
        assert_eq!(config.kv.key_bytes_max, 10);
        assert_eq!(
            config.snapshot_dir(),
            PathBuf::from("/tmp/kv-config-test/kv")
        );
    }

    #[test]
    fn each_bad_value_names_its_field() {
        let cases = [
            ("http_listen = \"nowhere\"", "http_listen"),
            (
                "http_listen = \"127.0.0.1:0\"\nbody_bytes_max = 0",
                "body_bytes_max",
            ),
            (
                "http_listen = \"127.0.0.1:0\"\nwrite_timeout_ms = 0",
                "write_timeout_ms",
            ),
            (
                "http_listen = \"127.0.0.1:0\"\ncheckpoint_interval_entries = 0\ncheckpoint_interval_bytes = 0",
                "checkpoint_interval_entries",
            ),
            (
                "http_listen = \"127.0.0.1:0\"\nbody_bytes_max = 1000000",
                "body_bytes_max",
            ),
            (
                "http_listen = \"127.0.0.1:0\"\nhttp_advertise = \"x\"",
                "http_advertise",
            ),
        ];
        for (kv, field) in cases {
            let text = format!("{NODE}[kv]\n{kv}\n");
            match Config::from_toml(&text) {
                Err(ConfigError::InvalidField { field: named, .. }) => {
                    assert_eq!(named, field, "{kv}");
                }
                other => panic!("{kv}: expected an invalid {field}, got {other:?}"),
            }
        }
        let unknown = format!("{NODE}[kv]\nhttp_listen = \"127.0.0.1:0\"\nspeed = 3\n");
        assert!(matches!(
            Config::from_toml(&unknown),
            Err(ConfigError::Parse(_))
        ));
        let node = "node_id = 1\n[kv]\nhttp_listen = \"127.0.0.1:0\"\n";
        assert!(matches!(Config::from_toml(node), Err(ConfigError::Node(_))));
    }
}
