//! Invalid configurations are rejected at start with an error naming the field.

use std::sync::Arc;

use kommander_raft::node::{ConfigError, NodeConfig, Raft, StartError};
use kommander_raft::shard::{Application, HostStartError, NoEvents, ShardConfig, ShardHost};
use kommander_raft::transport::memory::MemoryNetwork;

use super::harness::Recorder;

fn field_of(result: Result<(), ConfigError>) -> &'static str {
    match result {
        Err(ConfigError::InvalidField { field, .. }) => field,
        other => panic!("expected an invalid field, got {other:?}"),
    }
}

#[test]
fn every_invalid_field_is_named() {
    let dir = tempfile::tempdir().expect("temp dir");
    let base = NodeConfig::new(1, dir.path());
    assert_eq!(base.validate(), Ok(()));
    type Break = Box<dyn Fn(&mut NodeConfig)>;
    let cases: Vec<(&str, Break)> = vec![
        ("node_id", Box::new(|c| c.node_id = 0)),
        (
            "peers",
            Box::new(|c| {
                c.peers.insert(1, "self".into());
            }),
        ),
        ("tick_interval_ms", Box::new(|c| c.tick_interval_ms = 0)),
        (
            "election_timeout_ticks_max",
            Box::new(|c| c.election_timeout_ticks_max = 5),
        ),
        (
            "heartbeat_interval_ticks",
            Box::new(|c| c.heartbeat_interval_ticks = 50),
        ),
        ("shard_commands_max", Box::new(|c| c.shard_commands_max = 0)),
        (
            "shard_inbound_batches_max",
            Box::new(|c| c.shard_inbound_batches_max = 0),
        ),
        (
            "restore_entries_per_turn_max",
            Box::new(|c| c.restore_entries_per_turn_max = 0),
        ),
        (
            "inflight_messages_max",
            Box::new(|c| c.inflight_messages_max = 0),
        ),
        (
            "uncommitted_bytes_max",
            Box::new(|c| c.uncommitted_bytes_max = 0),
        ),
        (
            "wal_segment_bytes",
            Box::new(|c| c.wal_segment_bytes = 1000),
        ),
        (
            "wal_batch_bytes_max",
            Box::new(|c| c.wal_batch_bytes_max = 100),
        ),
        (
            "wal_inflight_batches_max",
            Box::new(|c| c.wal_inflight_batches_max = 0),
        ),
        ("initial_partitions", Box::new(|c| c.initial_partitions = 0)),
        (
            "log_type_bytes_max",
            Box::new(|c| c.log_type_bytes_max = 1 << 20),
        ),
        ("hlc_drift_ms_max", Box::new(|c| c.hlc_drift_ms_max = 0)),
        ("cluster_name", Box::new(|c| c.cluster_name.clear())),
        (
            "resolved_tickets_max",
            Box::new(|c| c.resolved_tickets_max = 1 << 20),
        ),
        (
            "proposal_timeout_ms",
            Box::new(|c| c.proposal_timeout_ms = 0),
        ),
        (
            "leader_wait_timeout_ms",
            Box::new(|c| c.leader_wait_timeout_ms = 0),
        ),
        (
            "leadership_confirmation_timeout_ms",
            Box::new(|c| c.leadership_confirmation_timeout_ms = 0),
        ),
        (
            "checkpoint_retry_backoff_ms",
            Box::new(|c| c.checkpoint_retry_backoff_ms = 0),
        ),
        (
            "checkpoint_retry_backoff_ms_max",
            Box::new(|c| c.checkpoint_retry_backoff_ms_max = 1),
        ),
        (
            "membership.promotion_window_ms",
            Box::new(|c| c.membership.promotion_window_ms = 3_600_001),
        ),
        (
            "membership.call_retry_interval_ms",
            Box::new(|c| c.membership.call_retry_interval_ms = 0),
        ),
    ];
    for (expected, break_it) in cases {
        let mut config = base.clone();
        break_it(&mut config);
        assert_eq!(field_of(config.validate()), expected);
        let network = MemoryNetwork::new();
        let starting = Raft::builder(config.clone())
            .state_machine(Arc::new(Recorder::default()))
            .transport(network.transport(kommander_raft::core::NodeId(1)))
            .start();
        let started = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(starting);
        match started {
            Err(StartError::Config(ConfigError::InvalidField { field, .. })) => {
                assert_eq!(field, expected);
            }
            other => panic!("start with a bad {expected}: {other:?}"),
        }
        assert!(
            !config.data_dir.join("shard-0").exists(),
            "a rejected config changes nothing on disk"
        );
    }
}

#[test]
fn toml_loads_defaults_and_rejects_unknown_invalid_or_missing_required_fields() {
    let config = NodeConfig::from_toml(
        "node_id = 3\ndata_dir = \"/tmp/kr\"\nshards = 2\n[peers]\n1 = \"a:1\"\n2 = \"b:1\"\n",
    )
    .expect("valid TOML config");
    assert_eq!(config.node_id, 3);
    assert_eq!(config.peers.len(), 2);
    assert_eq!(
        config.tick_interval_ms,
        NodeConfig::new(3, "/tmp/kr").tick_interval_ms
    );
    assert!(matches!(
        NodeConfig::from_toml("node_id = 3\nno_such_field = 1\n"),
        Err(ConfigError::Parse(message)) if message.contains("no_such_field")
    ));
    assert_eq!(
        field_of(
            NodeConfig::from_toml("node_id = 3\ndata_dir = \"/tmp/kr\"\nwal_segment_bytes = 5\n")
                .map(|_| ())
        ),
        "wal_segment_bytes"
    );
    // A file must say which node it is and where its data lives: no default node 1, no WAL
    // in a temporary directory.
    assert_eq!(
        field_of(NodeConfig::from_toml("data_dir = \"/tmp/kr\"\n").map(|_| ())),
        "node_id"
    );
    assert_eq!(
        field_of(NodeConfig::from_toml("node_id = 3\n").map(|_| ())),
        "data_dir"
    );
}

#[test]
fn a_changed_shard_count_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = NodeConfig::new(1, dir.path());
    config.shards = 2;
    config.wal_segment_bytes = 1 << 20;
    config.wal_batch_bytes_max = 256 << 10;
    config.wal_record_bytes_max = 64 << 10;
    let network = MemoryNetwork::new();
    let start = |config: &NodeConfig| {
        ShardHost::start(
            ShardConfig::from(config),
            network.transport(kommander_raft::core::NodeId(1)),
            Application::new(Arc::new(Recorder::default())),
            Arc::new(NoEvents),
            Arc::default(),
        )
    };
    start(&config).expect("first start").shutdown();
    config.shards = 3;
    assert!(matches!(
        start(&config),
        Err(HostStartError::ShardCountChanged {
            found: 2,
            configured: 3,
            ..
        })
    ));
}
