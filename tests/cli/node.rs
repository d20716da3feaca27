//! `kommander node`: configuration errors, the client port, SIGTERM and restart.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kommander_raft::transport::codec::UNSTAMPED;
use kommander_raft::transport::tcp::client::{
    ClientConnection, ClientError, ClientRequest, ClientResponse, ReplicaState,
};
use kommander_raft::transport::tcp::handshake::{
    self, ConnectionHandshakeError, ConnectionRole, Identity, RejectCode,
};
use kommander_raft::transport::tcp::reader::{Deadlines, FrameReader};
use kommander_raft::{NodeConfig, NodeId, PartitionId, Status};

use super::{PATIENCE, Running, client_of, free_port, kommander};

const SECRET: &str = "the secret of the cli tests";

/// A single-node cluster's TOML under `dir`.
fn single_node_toml(dir: &Path) -> String {
    format!(
        "node_id = 1\n\
         endpoint = \"127.0.0.1:0\"\n\
         cluster_name = \"cli-test\"\n\
         data_dir = \"{}\"\n\
         shards = 1\n\
         initial_partitions = 2\n\
         tick_interval_ms = 5\n",
        dir.join("data").display()
    )
}

fn start_node(dir: &Path, name: &str, secret: Option<&str>, extra: &[&str]) -> (Running, String) {
    let mut command = node_command(dir, "", extra);
    if let Some(secret) = secret {
        command.env("KOMMANDER_AUTH_SECRET", secret);
    }
    spawn_ready(command, dir, name)
}

/// `kommander node` of the single-node cluster under `dir` (its TOML ending with
/// `toml_tail`), with a client port and `extra` arguments.
fn node_command(dir: &Path, toml_tail: &str, extra: &[&str]) -> Command {
    let config = dir.join("node.toml");
    std::fs::write(&config, single_node_toml(dir) + toml_tail).expect("write config");
    let mut command = kommander();
    command
        .arg("node")
        .arg("--config")
        .arg(&config)
        .args(["--client-listen", "127.0.0.1:0"])
        .args(extra);
    command
}

/// Spawns `command` and waits for its `ready` line; returns the node and its client address.
fn spawn_ready(command: Command, dir: &Path, name: &str) -> (Running, String) {
    let mut node = Running::spawn(command, dir, name);
    let ready = node.wait_line("ready ");
    assert!(ready.starts_with("ready node=1 peer=127.0.0.1:"), "{ready}");
    (node, client_of(&ready))
}

fn connect(client: &str, secret: Option<&str>) -> Result<ClientConnection, ClientError> {
    ClientConnection::connect(client, "cli-test", secret, PATIENCE)
}

/// Waits until the node reports itself as `partition`'s leader.
fn wait_leader(client: &mut ClientConnection, partition: PartitionId, endpoint: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match client
            .call(&ClientRequest::Leader { partition })
            .expect("leader")
        {
            ClientResponse::Leader {
                status: Status::Success,
                leader: Some(NodeId(1)),
                endpoint: answered,
            } => {
                assert_eq!(answered, endpoint, "the leader's client endpoint");
                return;
            }
            ClientResponse::Leader {
                status: Status::Success,
                ..
            } => {}
            other => panic!("unexpected answer {other:?}"),
        }
        assert!(Instant::now() < deadline, "no leader for {partition}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Replicates `payload` to `partition` through `client` and returns its index, asserting
/// `Success`.
fn write_ok(client: &mut ClientConnection, partition: PartitionId, payload: Bytes) -> u64 {
    let answer = client
        .call(&ClientRequest::Replicate {
            partition,
            log_type: "t".to_owned(),
            payload,
        })
        .expect("replicate");
    match answer {
        ClientResponse::Replicated {
            status: Status::Success,
            index: Some(index),
            ..
        } => index,
        other => panic!("a write to {partition}: {other:?}"),
    }
}

#[test]
fn node_refuses_an_invalid_config_with_exit_code_2_naming_the_field() {
    let dir = tempfile::tempdir().expect("dir");
    let data_dir = format!("data_dir = \"{}\"\n", dir.path().join("data").display());
    let cases = [
        ("node_id = 0\n", "node_id"),
        ("node_id = 1\nno_such_field = 3\n", "no_such_field"),
        (
            "node_id = 1\nendpoint = \"127.0.0.1:0\"\n[transport]\nauth_secret = \"short\"\n",
            "transport.auth_secret",
        ),
        ("node_id = 1\ntick_interval_ms = 0\n", "tick_interval_ms"),
    ];
    let cases = cases
        .map(|(text, field)| (format!("{data_dir}{text}"), field))
        .into_iter()
        .chain([("node_id = 1\n".to_owned(), "data_dir")]);
    for (text, field) in cases {
        let config = dir.path().join("bad.toml");
        std::fs::write(&config, &text).expect("write config");
        let output = kommander()
            .arg("node")
            .arg("--config")
            .arg(&config)
            .output()
            .expect("run kommander");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{text}: {stderr}");
        assert!(
            stderr.contains(field),
            "{text}: stderr does not name {field}: {stderr}"
        );
        assert!(output.stdout.is_empty(), "{text}: printed on stdout");
    }
    // A missing file, and a secret from the environment that is too short.
    let output = kommander()
        .args(["node", "--config"])
        .arg(dir.path().join("missing.toml"))
        .output()
        .expect("run kommander");
    assert_eq!(output.status.code(), Some(2));
    let config = dir.path().join("good.toml");
    std::fs::write(&config, single_node_toml(dir.path())).expect("write config");
    let output = kommander()
        .args(["node", "--config"])
        .arg(&config)
        .env("KOMMANDER_AUTH_SECRET", "short")
        .output()
        .expect("run kommander");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("transport.auth_secret") && stderr.contains("KOMMANDER_AUTH_SECRET"),
        "{stderr}"
    );
}

/// Runs `kommander node --config <dir>/node.toml` with `toml` to its exit and asserts exit
/// code 2 with `message` printed exactly once on stderr.
fn assert_config_refused_once(dir: &Path, toml: &str, message: &str) {
    let config = dir.join("node.toml");
    std::fs::write(&config, toml).expect("write config");
    let output = kommander()
        .args(["node", "--config"])
        .arg(&config)
        .output()
        .expect("run kommander");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{toml}: {stderr}");
    assert_eq!(
        stderr.matches(message).count(),
        1,
        "{toml}: `{message}` not printed exactly once:\n{stderr}"
    );
}

#[test]
fn node_refuses_a_configuration_it_cannot_run_with_exit_code_2_said_once() {
    let dir = tempfile::tempdir().expect("dir");
    let single = single_node_toml(dir.path());
    assert_config_refused_once(
        dir.path(),
        &format!("{single}no_such_field = 3\n"),
        "unknown field `no_such_field`",
    );
    // A reachable peer port without a secret: refused at bind, yet a configuration error.
    assert_config_refused_once(
        dir.path(),
        &format!("{single}[transport]\nlisten_address = \"0.0.0.0:0\"\n"),
        "refusing to listen on non-loopback address",
    );
    // A data directory created with two shards, configured with one.
    for shard in ["shard-0", "shard-1"] {
        std::fs::create_dir_all(dir.path().join("data").join(shard)).expect("shard dir");
    }
    assert_config_refused_once(
        dir.path(),
        &single,
        "start with the shard count it was created with",
    );
}

#[test]
fn the_ready_line_shows_the_endpoint_peers_use_and_the_listen_address() {
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let config = dir.path().join("node.toml");
    let toml = single_node_toml(dir.path()).replace(
        "endpoint = \"127.0.0.1:0\"",
        &format!("endpoint = \"127.0.0.1:{port}\""),
    );
    std::fs::write(
        &config,
        format!("{toml}[transport]\nlisten_address = \"0.0.0.0:{port}\"\n"),
    )
    .expect("write config");
    let mut command = kommander();
    command
        .args(["node", "--config"])
        .arg(&config)
        .env("KOMMANDER_AUTH_SECRET", SECRET);
    let mut node = Running::spawn(command, dir.path(), "ready");
    let ready = node.wait_line("ready ");
    assert_eq!(
        ready,
        format!("ready node=1 peer=127.0.0.1:{port} listen=0.0.0.0:{port} client=none")
    );
    node.signal("TERM");
    assert!(node.wait_exit().success(), "{}", node.stderr());
    let unreachable = "the endpoint's port is 0";
    assert!(!node.stderr().contains(unreachable), "{}", node.stderr());

    // An endpoint on port 0: the line shows what peers are told, and the log says that
    // nobody reaches the node there.
    let dir = tempfile::tempdir().expect("dir");
    let (mut node, _) = start_node(dir.path(), "port-0", None, &[]);
    assert!(
        node.stderr().contains(unreachable),
        "no warning: {}",
        node.stderr()
    );
    node.signal("TERM");
    assert!(node.wait_exit().success(), "{}", node.stderr());
}

#[test]
fn a_node_that_cannot_join_gives_up_after_join_timeout_ms_with_exit_code_1() {
    let dir = tempfile::tempdir().expect("dir");
    // Node 2 of a two-node cluster whose other node never starts (its port refuses).
    // Its limit lets two "still joining" lines (one per 5 s) come first.
    let toml = single_node_toml(dir.path()).replace("node_id = 1", "node_id = 2");
    let config = dir.path().join("node.toml");
    std::fs::write(
        &config,
        format!(
            "{toml}join_timeout_ms = 12000\n[peers]\n1 = \"127.0.0.1:{}\"\n",
            free_port()
        ),
    )
    .expect("write config");
    let mut command = kommander();
    command
        .args(["node", "--config"])
        .arg(&config)
        .env("KOMMANDER_LOG", "info");
    let started = Instant::now();
    let mut node = Running::spawn(command, dir.path(), "alone");
    let status = node.wait_exit();
    let stderr = node.stderr();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("could not join the cluster within join_timeout_ms (12000 ms)"),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("kommander node: ").count(),
        1,
        "said once: {stderr}"
    );
    assert!(started.elapsed() < PATIENCE, "it gave up");
    // Each progress line reports the time waited so far, not the length of one attempt.
    let waited: Vec<u64> = stderr
        .lines()
        .filter(|line| line.contains("still joining"))
        .filter_map(|line| {
            line.split_whitespace()
                .find_map(|field| field.strip_prefix("waited_ms="))
                .and_then(|ms| ms.parse().ok())
        })
        .collect();
    assert!(waited.len() >= 2, "{stderr}");
    assert!(
        waited.windows(2).all(|pair| pair[1] > pair[0]),
        "the time waited grows: {waited:?}"
    );
}

#[test]
fn leader_changes_are_logged_at_the_default_level() {
    let dir = tempfile::tempdir().expect("dir");
    let (mut node, _) = start_node(dir.path(), "leaders", None, &[]);
    // The single node elects itself on the system partition and both user partitions.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let stderr = node.stderr();
        let logged: Vec<&str> = stderr
            .lines()
            .filter(|line| line.contains("leader changed") && line.contains("leader=n1"))
            .collect();
        if ["p0", "p1", "p2"].iter().all(|p| {
            logged
                .iter()
                .any(|line| line.contains(&format!("partition={p}")))
        }) {
            break;
        }
        assert!(Instant::now() < deadline, "{stderr}");
        std::thread::sleep(Duration::from_millis(20));
    }
    node.signal("TERM");
    assert!(node.wait_exit().success(), "{}", node.stderr());
}

#[test]
fn leader_changes_over_the_rate_are_summed_up_once_their_second_is_over() {
    let dir = tempfile::tempdir().expect("dir");
    // Three partitions elect at once (six changes: no leader, then this node, each), one a
    // second is logged. No stats line and no later change comes to carry the sum of those
    // left out: it comes on its own once their second is over.
    let extra = [
        "--leader-changes-logged-per-sec",
        "1",
        "--stats-interval-secs",
        "3600",
    ];
    let (mut node, _) = start_node(dir.path(), "summed", None, &extra);
    let deadline = Instant::now() + PATIENCE;
    let summed = loop {
        let stderr = node.stderr();
        if let Some(line) = stderr
            .lines()
            .find(|line| line.contains("leader changes of the last second not logged"))
        {
            break line.to_owned();
        }
        assert!(Instant::now() < deadline, "never summed up:\n{stderr}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let left_out: u32 = summed
        .split_whitespace()
        .find_map(|field| field.strip_prefix("left_out="))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {summed}"));
    assert!(left_out >= 1, "{summed}");
    node.signal("TERM");
    assert!(node.wait_exit().success(), "{}", node.stderr());
}

#[test]
fn node_serves_clients_and_stops_cleanly_on_sigterm_then_restores() {
    let dir = tempfile::tempdir().expect("dir");
    let (mut node, endpoint) = start_node(dir.path(), "first", Some(SECRET), &[]);
    let p1 = PartitionId(1);

    // Authentication: the secret (from KOMMANDER_AUTH_SECRET) is required; nodes are refused.
    let error = connect(&endpoint, None).expect_err("no secret");
    assert!(matches!(error, ClientError::Handshake(_)), "{error}");
    let mut stream = std::net::TcpStream::connect(&endpoint).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    let mut reader = FrameReader::new(1 << 16, 1 << 16);
    let peer = Identity {
        cluster: "cli-test".to_owned(),
        node: NodeId(2),
        incarnation: 0,
        secret: Some(Bytes::from_static(SECRET.as_bytes())),
        client_endpoint: None,
    };
    let deadlines = Deadlines {
        frame_timeout: PATIENCE,
        idle_timeout: PATIENCE,
    };
    let refused = handshake::connect(
        &mut stream,
        &mut reader,
        &peer,
        UNSTAMPED,
        ConnectionRole::Peer,
        None,
        deadlines,
    )
    .expect_err("a peer on the client port");
    assert!(
        matches!(
            refused,
            ConnectionHandshakeError::Rejected {
                code: RejectCode::Role,
                ..
            }
        ),
        "{refused}"
    );

    let mut client = connect(&endpoint, Some(SECRET)).expect("client");
    wait_leader(&mut client, p1, &endpoint);
    let first_index = write_ok(&mut client, p1, Bytes::from_static(b"first"));

    // Pipelined: 200 requests sent before reading; answered in order, indexes consecutive.
    let ids: Vec<u64> = (0..200)
        .map(|i| {
            client
                .send(&ClientRequest::Replicate {
                    partition: p1,
                    log_type: "t".to_owned(),
                    payload: Bytes::from(format!("entry {i}")),
                })
                .expect("send")
        })
        .collect();
    for (i, id) in ids.iter().enumerate() {
        let (answered, response) = client.receive().expect("answer");
        assert_eq!(answered, *id, "answers in request order");
        match response {
            ClientResponse::Replicated {
                status: Status::Success,
                index: Some(index),
                ..
            } => assert_eq!(index, first_index + 1 + i as u64),
            other => panic!("request {i}: {other:?}"),
        }
    }
    // An unknown partition: `PartitionMoved` from every request; the connection stays.
    let p77 = PartitionId(77);
    let answers = [
        ClientRequest::Replicate {
            partition: p77,
            log_type: "t".to_owned(),
            payload: Bytes::from_static(b"x"),
        },
        ClientRequest::Leader { partition: p77 },
        ClientRequest::Status { partition: p77 },
    ]
    .map(|request| client.call(&request).expect("answer"));
    assert!(
        matches!(
            answers,
            [
                ClientResponse::Replicated {
                    status: Status::PartitionMoved,
                    index: None,
                    ..
                },
                ClientResponse::Leader {
                    status: Status::PartitionMoved,
                    leader: None,
                    ..
                },
                ClientResponse::Status {
                    status: Status::PartitionMoved,
                    ..
                },
            ]
        ),
        "{answers:?}"
    );
    // Invalid entries (an oversize log type, an oversize payload): definite refusals.
    let invalid = [
        ("x".repeat(4000), Bytes::from_static(b"x")),
        ("t".to_owned(), Bytes::from(vec![0; 1 << 20])),
    ];
    for (log_type, payload) in invalid {
        let answer = client
            .call(&ClientRequest::Replicate {
                partition: p1,
                log_type,
                payload,
            })
            .expect("answer");
        let ClientResponse::Failed { reason } = &answer else {
            panic!("an invalid entry must be refused with `Failed`: {answer:?}");
        };
        assert!(
            reason.starts_with("invalid entry: ") && reason.ends_with("(nothing was written)"),
            "{reason}"
        );
    }

    node.signal("TERM");
    let status = node.wait_exit();
    let stderr = node.stderr();
    assert!(status.success(), "exit {status}; stderr:\n{stderr}");
    assert!(stderr.contains("received SIGTERM"), "{stderr}");
    assert!(stderr.contains("stopped cleanly"), "{stderr}");
    drop(client);

    // `wal inspect` on the stopped node's data directory: every acknowledged entry is there.
    let data = dir.path().join("data");
    let output = kommander()
        .args(["wal", "inspect", "--json"])
        .arg(&data)
        .output()
        .expect("run wal inspect");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    let shard = &report["shards"]["shard-0"];
    assert_eq!(shard["recovery"]["outcome"], "opens", "{shard}");
    let p1_report = shard["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .find(|p| p["id"] == 1)
        .unwrap_or_else(|| panic!("no partition 1: {shard}"));
    assert_eq!(
        p1_report["entries"],
        201 + 1,
        "201 writes and the leader's no-op: {p1_report}"
    );
    let output = kommander()
        .args(["wal", "inspect"])
        .arg(data.join("shard-0"))
        .output()
        .expect("run wal inspect");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && text.contains("recovery: opens as is"),
        "{text}"
    );
    let output = kommander()
        .args(["wal", "inspect"])
        .arg(dir.path())
        .output()
        .expect("run wal inspect");
    assert_eq!(output.status.code(), Some(2), "not a WAL directory");

    // Restart on the same data directory: every acknowledged entry is restored.
    let (mut node, endpoint) = start_node(dir.path(), "second", Some(SECRET), &[]);
    let deadline = Instant::now() + PATIENCE;
    while !node
        .stderr()
        .contains("restored partition=p1 entries_delivered=201")
    {
        assert!(
            Instant::now() < deadline,
            "no restore line:\n{}",
            node.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut client = connect(&endpoint, Some(SECRET)).expect("client");
    wait_leader(&mut client, p1, &endpoint);
    node.signal("INT");
    assert!(node.wait_exit().success(), "{}", node.stderr());
}

#[test]
fn node_refuses_client_writes_to_the_system_partition() {
    let dir = tempfile::tempdir().expect("dir");
    let (mut node, endpoint) = start_node(dir.path(), "system", None, &[]);
    let p0 = PartitionId(0);
    let mut client = connect(&endpoint, None).expect("client");
    wait_leader(&mut client, p0, &endpoint);
    let last_index = |client: &mut ClientConnection| match client
        .call(&ClientRequest::Status { partition: p0 })
        .expect("status")
    {
        ClientResponse::Status {
            status: Status::Success,
            state,
        } => state.last_index,
        other => panic!("status of p0: {other:?}"),
    };
    let before = last_index(&mut client);
    let answer = client
        .call(&ClientRequest::Replicate {
            partition: p0,
            log_type: "t".to_owned(),
            payload: Bytes::from_static(b"not for the system log"),
        })
        .expect("answer");
    let ClientResponse::Failed { reason } = &answer else {
        panic!("a write to p0 must be refused: {answer:?}");
    };
    assert!(
        reason.contains("system partition") && reason.contains("nothing was written"),
        "{reason}"
    );
    // Nothing reached the system log, and the connection serves on.
    assert_eq!(last_index(&mut client), before);
    wait_leader(&mut client, PartitionId(1), &endpoint);
    write_ok(&mut client, PartitionId(1), Bytes::from_static(b"fine"));
    // An empty log type and an empty payload are a valid entry.
    let empty = client
        .call(&ClientRequest::Replicate {
            partition: PartitionId(1),
            log_type: String::new(),
            payload: Bytes::new(),
        })
        .expect("answer");
    assert!(
        matches!(
            empty,
            ClientResponse::Replicated {
                status: Status::Success,
                index: Some(_),
                ..
            }
        ),
        "{empty:?}"
    );
    node.signal("TERM");
    assert!(node.wait_exit().success(), "{}", node.stderr());
}

/// Asserts, right after the `ready` line, that every partition of the single node (P0 and
/// the two user partitions) answers its state and knows the node as its leader.
fn assert_serving(client: &mut ClientConnection, endpoint: &str) {
    for partition in (0..=2).map(PartitionId) {
        let status = client
            .call(&ClientRequest::Status { partition })
            .expect("status");
        assert!(
            matches!(
                status,
                ClientResponse::Status {
                    status: Status::Success,
                    state: ReplicaState {
                        leader: Some(NodeId(1)),
                        ..
                    },
                }
            ),
            "{partition} right after `ready`: {status:?}"
        );
        let leader = client
            .call(&ClientRequest::Leader { partition })
            .expect("leader");
        assert_eq!(
            leader,
            ClientResponse::Leader {
                status: Status::Success,
                leader: Some(NodeId(1)),
                endpoint: endpoint.to_owned(),
            },
            "{partition} right after `ready`"
        );
    }
}

#[test]
fn the_ready_line_comes_once_every_partition_is_restored_and_has_a_leader() {
    let dir = tempfile::tempdir().expect("dir");
    let (mut node, endpoint) = start_node(dir.path(), "first", None, &[]);
    let mut client = connect(&endpoint, None).expect("client");
    assert_serving(&mut client, &endpoint);
    for i in 0..300 {
        client
            .send(&ClientRequest::Replicate {
                partition: PartitionId(1 + i % 2),
                log_type: "t".to_owned(),
                payload: Bytes::from(format!("entry {i}")),
            })
            .expect("send");
    }
    for _ in 0..300 {
        let (_, answer) = client.receive().expect("answer");
        assert!(
            matches!(
                answer,
                ClientResponse::Replicated {
                    status: Status::Success,
                    ..
                }
            ),
            "{answer:?}"
        );
    }
    node.signal("TERM");
    assert!(node.wait_exit().success(), "{}", node.stderr());
    drop(client);

    // A restart joins at once (the partition map is on disk); `ready` waits for the restores
    // and the elections.
    let (mut node, endpoint) = start_node(dir.path(), "second", None, &[]);
    let mut client = connect(&endpoint, None).expect("client");
    assert_serving(&mut client, &endpoint);
    assert!(
        node.stderr()
            .contains("serving: every partition restored, with a known leader"),
        "{}",
        node.stderr()
    );
    node.signal("TERM");
    assert!(node.wait_exit().success(), "{}", node.stderr());
}

#[test]
fn a_client_over_the_connection_cap_is_refused_busy() {
    let dir = tempfile::tempdir().expect("dir");
    let (mut node, endpoint) =
        start_node(dir.path(), "busy", None, &["--client-connections-max", "1"]);
    let mut first = connect(&endpoint, None).expect("client");
    assert_eq!(
        first.call(&ClientRequest::Ping).expect("pong"),
        ClientResponse::Pong
    );
    let refused = connect(&endpoint, None).expect_err("over the cap");
    assert!(
        matches!(
            &refused,
            ClientError::Handshake(ConnectionHandshakeError::Rejected {
                code: RejectCode::Busy,
                reason,
            }) if reason.contains("--client-connections-max")
        ),
        "{refused}"
    );
    // Room again once the first one closed.
    drop(first);
    let deadline = Instant::now() + PATIENCE;
    let mut second = loop {
        match connect(&endpoint, None) {
            Ok(client) => break client,
            Err(error) => assert!(Instant::now() < deadline, "{error}"),
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        second.call(&ClientRequest::Ping).expect("pong"),
        ClientResponse::Pong
    );
    node.signal("TERM");
    assert!(node.wait_exit().success(), "{}", node.stderr());
}

#[test]
fn a_ping_keeps_a_client_connection_open_and_an_idle_one_is_closed_quietly() {
    let dir = tempfile::tempdir().expect("dir");
    let mut command = node_command(dir.path(), "[transport]\nidle_timeout_ms = 1000\n", &[]);
    command.env("KOMMANDER_LOG", "info,kommander::client_port=debug");
    let (mut node, endpoint) = spawn_ready(command, dir.path(), "idle");
    let mut pinging = connect(&endpoint, None).expect("client");
    let mut idle = connect(&endpoint, None).expect("client");
    // Longer than the idle timeout.
    for _ in 0..8 {
        assert_eq!(
            pinging.call(&ClientRequest::Ping).expect("pong"),
            ClientResponse::Pong
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    write_ok(
        &mut pinging,
        PartitionId(1),
        Bytes::from_static(b"still open"),
    );
    assert!(
        idle.call(&ClientRequest::Ping).is_err(),
        "the idle connection was closed"
    );
    let stderr = node.stderr();
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("DEBUG") && l.contains("closing an idle client connection")),
        "{stderr}"
    );
    assert!(
        !stderr
            .lines()
            .any(|l| l.contains("WARN") && l.contains("client connection")),
        "an idle client is not a fault:\n{stderr}"
    );
    node.signal("TERM");
    assert!(node.wait_exit().success(), "{}", node.stderr());
}

#[test]
fn node_checkpoints_the_partitions_it_leads_when_asked() {
    let dir = tempfile::tempdir().expect("dir");
    let checkpointing = ["--checkpoint-interval-entries", "50"];
    let (mut node, endpoint) = start_node(dir.path(), "first", None, &checkpointing);
    let p1 = PartitionId(1);
    let mut client = connect(&endpoint, None).expect("client");
    wait_leader(&mut client, p1, &endpoint);
    for i in 0..120 {
        write_ok(&mut client, p1, Bytes::from(format!("entry {i}")));
    }
    let deadline = Instant::now() + PATIENCE;
    while !node.stderr().contains("checkpoint committed partition=p1") {
        assert!(
            Instant::now() < deadline,
            "no checkpoint:\n{}",
            node.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    node.signal("TERM");
    assert!(node.wait_exit().success(), "{}", node.stderr());
    drop(client);

    // After a restart only the entries above the checkpoint are restored.
    let (mut node, endpoint) = start_node(dir.path(), "second", None, &[]);
    let mut client = connect(&endpoint, None).expect("client");
    let deadline = Instant::now() + PATIENCE;
    // Restored once its replica answers (`RestoreInProgress` until then).
    while !matches!(
        client
            .call(&ClientRequest::Status { partition: p1 })
            .expect("status"),
        ClientResponse::Status {
            status: Status::Success,
            ..
        }
    ) {
        assert!(
            Instant::now() < deadline,
            "p1 not restored:\n{}",
            node.stderr()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(100));
    node.signal("TERM");
    assert!(node.wait_exit().success(), "{}", node.stderr());
    let stderr = node.stderr();
    let restored: u64 = stderr
        .lines()
        .filter(|l| l.contains("restored partition=p1 "))
        .filter_map(|l| {
            l.split("entries_delivered=")
                .nth(1)?
                .trim()
                .parse::<u64>()
                .ok()
        })
        .sum();
    assert!(restored < 120, "{restored} entries restored:\n{stderr}");
}

#[test]
fn the_example_configuration_in_node_help_is_valid() {
    let output = kommander()
        .args(["node", "--help"])
        .output()
        .expect("run kommander node --help");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    let example: String = help
        .lines()
        .skip_while(|l| !l.starts_with("Example node.toml"))
        .skip(1)
        .take_while(|l| !l.starts_with("Environment"))
        .map(|l| format!("{}\n", l.trim()))
        .collect();
    assert!(example.contains("[peers]"), "{help}");
    let config = NodeConfig::from_toml(&example).unwrap_or_else(|e| panic!("{e}:\n{example}"));
    assert_eq!(config.peers.len(), 2);
    assert_eq!(config.listen_address(), "0.0.0.0:7100");
}

/// `GET /metrics` over plain TCP: the body of the answer.
fn scrape(address: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).expect("connect to the metrics port");
    stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .expect("send the request");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read the answer");
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_owned()
}

/// The sum over every label set of the samples named exactly `name`.
fn sample_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let series_name = series.split('{').next()?;
            (series_name == name).then(|| value.parse::<f64>().ok())?
        })
        .sum()
}

#[test]
fn node_serves_its_metrics_in_prometheus_text_format() {
    let dir = tempfile::tempdir().expect("dir");
    let metrics_address = format!("127.0.0.1:{}", free_port());
    let (mut node, endpoint) = start_node(
        dir.path(),
        "metrics",
        None,
        &["--metrics-listen", &metrics_address],
    );
    assert!(
        node.stderr().contains("serving metrics at"),
        "{}",
        node.stderr()
    );
    let p1 = PartitionId(1);
    let mut client = connect(&endpoint, None).expect("client");
    wait_leader(&mut client, p1, &endpoint);
    let writes = 25;
    for i in 0..writes {
        write_ok(&mut client, p1, Bytes::from(format!("entry {i}")));
    }

    let text = scrape(&metrics_address);
    let proposals = sample_sum(&text, "kommander_proposals_total");
    let commits = sample_sum(&text, "kommander_commits_total");
    assert!(
        proposals >= f64::from(writes),
        "proposals {proposals}:\n{text}"
    );
    assert!(commits >= f64::from(writes), "commits {commits}:\n{text}");
    let fsyncs = sample_sum(&text, "kommander_wal_fsync_seconds_count");
    assert!(fsyncs > 0.0, "no fsync latency recorded:\n{text}");
    assert!(
        sample_sum(&text, "kommander_commit_latency_seconds_count") >= f64::from(writes),
        "{text}"
    );
    assert!(
        text.contains("# TYPE kommander_wal_fsync_seconds histogram"),
        "{text}"
    );
    assert!(text.contains("# HELP kommander_proposals_total "), "{text}");

    node.signal("TERM");
    assert!(node.wait_exit().success(), "{}", node.stderr());
}

#[test]
fn node_refuses_metrics_listen_without_a_port() {
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("node.toml");
    std::fs::write(&config, single_node_toml(dir.path())).expect("write config");
    let output = kommander()
        .args(["node", "--metrics-listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .output()
        .expect("run kommander");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--metrics-listen"), "{stderr}");
}

/// Kommander exits a process whose node id another live process holds: in a running two-node
/// cluster, a second process claiming node 1 (another data directory) reaches node 2, which
/// holds a live connection from node 1; it is refused (the running one keeps the id: nobody
/// can tell from a static cluster's roster) and exits with code 1 saying why, while the
/// cluster keeps serving.
#[test]
fn a_second_process_with_a_taken_node_id_exits_with_code_1() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().expect("dir")).collect();
    let ports = [free_port(), free_port(), free_port()];
    let config = |at: usize, node: u64, peer: u64, peer_port: u16| {
        let toml = single_node_toml(dirs[at].path())
            .replace("node_id = 1", &format!("node_id = {node}"))
            .replace("127.0.0.1:0", &format!("127.0.0.1:{}", ports[at]));
        let path = dirs[at].path().join("node.toml");
        std::fs::write(
            &path,
            format!("{toml}[peers]\n{peer} = \"127.0.0.1:{peer_port}\"\n"),
        )
        .expect("write config");
        let mut command = kommander();
        command
            .args(["node", "--config"])
            .arg(&path)
            .args(["--client-listen", "127.0.0.1:0"]);
        command
    };
    let mut first = Running::spawn(config(0, 1, 2, ports[1]), dirs[0].path(), "node-1");
    let mut second = Running::spawn(config(1, 2, 1, ports[0]), dirs[1].path(), "node-2");
    let ready = first.wait_line("ready ");
    second.wait_line("ready ");
    let mut impostor = Running::spawn(config(2, 1, 2, ports[1]), dirs[2].path(), "impostor");
    let status = impostor.wait_exit();
    let stderr = impostor.stderr();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("another live process holds its id"),
        "{stderr}"
    );
    // The cluster still has its leader, and node 1 answers.
    let mut client = connect(&client_of(&ready), None).expect("node 1 still serves");
    let answer = client
        .call(&ClientRequest::Leader {
            partition: PartitionId(1),
        })
        .expect("leader");
    assert!(
        matches!(
            answer,
            ClientResponse::Leader {
                status: Status::Success,
                leader: Some(_),
                ..
            }
        ),
        "{answer:?}"
    );
}
