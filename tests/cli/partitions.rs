//! `kommander partitions list|create|remove|split|merge|route` against a one-node cluster:
//! each change and what `list` shows after it, the refusals with their exit code and message
//! (an unknown partition, an invalid split plan, a tombstoned id reused), fenced writes after
//! a split (`PartitionMoved` for the old generation), invalid usage, and a wrong secret
//! refused at the handshake.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kommander_raft::transport::tcp::client::{ClientConnection, ClientRequest, ClientResponse};
use kommander_raft::{PartitionId, Status};

use super::{PATIENCE, Running, client_of, free_port, kommander};
use crate::process::harness::client_command_of;

const SECRET: &str = "the secret of the partitions tests";
const CLUSTER: &str = "cli-partitions";

/// Starts a one-node cluster with two partitions; returns it and its client address.
fn start(dir: &Path) -> (Running, String) {
    let config = dir.join("node1.toml");
    let text = format!(
        "node_id = 1\n\
         endpoint = \"127.0.0.1:{}\"\n\
         cluster_name = \"{CLUSTER}\"\n\
         data_dir = \"{}\"\n\
         shards = 1\n\
         initial_partitions = 2\n\
         tick_interval_ms = 5\n",
        free_port(),
        dir.join("data1").display()
    );
    std::fs::write(&config, text).expect("write config");
    let mut command: Command = kommander();
    command
        .env("KOMMANDER_AUTH_SECRET", SECRET)
        .args(["node", "--config"])
        .arg(&config)
        .args(["--client-listen", "127.0.0.1:0"]);
    let mut node = Running::spawn(command, dir, "node1");
    let ready = node.wait_line("ready ");
    (node, client_of(&ready))
}

/// Runs `kommander partitions ARGS --connect CLIENT --cluster-name ...` with the secret.
fn partitions(client: &str, args: &[&str]) -> Output {
    client_command_of("partitions", CLUSTER, SECRET, client, args)
}

/// What a successful command printed (fails the test when it did not succeed).
fn succeeds(client: &str, args: &[&str]) -> String {
    let output = partitions(client, args);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "partitions {args:?}: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The JSON a successful `--json` command printed.
fn json(client: &str, args: &[&str]) -> serde_json::Value {
    let mut args = args.to_vec();
    args.push("--json");
    serde_json::from_str(&succeeds(client, &args)).expect("JSON")
}

/// A refused command: exit 1, one message on stderr naming the status and containing
/// `words`; and the same with `--json`: the status and reason on stdout.
fn refused(client: &str, args: &[&str], status: &str, words: &str) {
    let output = partitions(client, args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
    assert_eq!(
        stderr.matches("kommander partitions: refused").count(),
        1,
        "{stderr}"
    );
    assert!(
        stderr.contains(status) && stderr.contains(words),
        "{args:?}: {stderr}"
    );
    let mut json_args = args.to_vec();
    json_args.push("--json");
    let output = partitions(client, &json_args);
    assert_eq!(output.status.code(), Some(1));
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(value["status"], status, "{value}");
    assert!(
        value["reason"].as_str().is_some_and(|r| r.contains(words)),
        "{value}"
    );
}

/// The partitions `list --json` shows, as `(id, state, start, end, generation)`.
fn ranges(client: &str) -> Vec<(u64, String, i64, i64, u64)> {
    let value = json(client, &["list"]);
    value["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .map(|p| {
            (
                p["id"].as_u64().expect("id"),
                p["state"].as_str().expect("state").to_owned(),
                p["start"].as_i64().expect("start"),
                p["end"].as_i64().expect("end"),
                p["generation"].as_u64().expect("generation"),
            )
        })
        .collect()
}

/// Waits until the map `list` shows satisfies `holds`; returns its ranges.
fn wait_ranges(
    client: &str,
    holds: impl Fn(&[(u64, String, i64, i64, u64)]) -> bool,
) -> Vec<(u64, String, i64, i64, u64)> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let ranges = ranges(client);
        if holds(&ranges) {
            return ranges;
        }
        assert!(
            Instant::now() < deadline,
            "the map never became as expected: {ranges:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Fenced writes to partition 1 after its split (generation 3): the current generation is
/// written, the one before the split refused `PartitionMoved`, generation 0 and partition 0
/// `Failed`; nothing is written but the first.
fn fenced_writes(client: &str) {
    let mut connection =
        ClientConnection::connect(client, CLUSTER, Some(SECRET), Duration::from_secs(10))
            .expect("a client connection");
    let mut write = |partition: u32, generation: u64| {
        connection
            .call(&ClientRequest::FencedReplicate {
                partition: PartitionId(partition),
                generation,
                log_type: "t".to_owned(),
                payload: Bytes::from_static(b"fenced"),
            })
            .expect("an answer")
    };
    let written = write(1, 3);
    assert!(
        matches!(
            written,
            ClientResponse::Replicated {
                status: Status::Success,
                index: Some(_),
                ..
            }
        ),
        "{written:?}"
    );
    let moved = write(1, 1);
    assert!(
        matches!(
            moved,
            ClientResponse::Replicated {
                status: Status::PartitionMoved,
                index: None,
                ..
            }
        ),
        "{moved:?}"
    );
    for (partition, generation) in [(1, 0), (0, 1)] {
        let failed = write(partition, generation);
        assert!(
            matches!(failed, ClientResponse::Failed { .. }),
            "partition {partition} generation {generation}: {failed:?}"
        );
    }
}

const HALF: i64 = 1 << 30;
const TOP: i64 = i32::MAX as i64;

#[test]
fn partitions_are_listed_created_removed_split_merged_and_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let (_node, client) = start(dir.path());
    let initial = vec![
        (1, "active".to_owned(), 0, HALF - 1, 1),
        (2, "active".to_owned(), HALF, TOP, 1),
    ];
    assert_eq!(wait_ranges(&client, |r| r.len() == 2), initial);
    let text = succeeds(&client, &["list"]);
    assert!(text.starts_with("map version 1\n"), "{text}");
    assert!(text.contains("\n1 "), "{text}");

    // Create: an explicit id (unrouted), then the next available one.
    let created = json(&client, &["create", "3"]);
    assert_eq!(created["status"], "Success", "{created}");
    assert_eq!(created["partition"], 3);
    assert_eq!(created["generation"], 1);
    let text = succeeds(&client, &["create"]);
    assert!(
        text.starts_with("created partition 4: generation 1"),
        "{text}"
    );

    // Remove, then the tombstoned id cannot be created again.
    let removed = json(&client, &["remove", "4"]);
    assert_eq!(removed["partition"], 4);
    assert_eq!(
        removed["generation"], 2,
        "a tombstone is the next generation"
    );
    let after = ranges(&client);
    assert_eq!(after[3].0, 4);
    assert_eq!(after[3].1, "removed");
    refused(&client, &["create", "4"], "Errored", "never reused");
    refused(&client, &["remove", "9"], "Errored", "not in the map");
    refused(&client, &["split", "9"], "Errored", "9");
    // A boundary at the source's start leaves it nothing: an invalid plan.
    refused(&client, &["split", "1", "--boundary", "0"], "Errored", "");
    refused(
        &client,
        &["create", "6", "--start", "5", "--end", "1"],
        "Errored",
        "[5, 1]",
    );
    refused(&client, &["merge", "1", "1"], "Errored", "");

    // Split partition 1 at a boundary into 5; the second phase follows on its own.
    let boundary = (HALF / 2).to_string();
    let text = succeeds(
        &client,
        &["split", "1", "--target", "5", "--boundary", &boundary],
    );
    assert!(
        text.starts_with("splitting partition 1: generation 2"),
        "{text}"
    );
    let split = wait_ranges(&client, |r| {
        r.iter()
            .all(|p| p.1 == "active" || (p.0 == 4 && p.1 == "removed"))
            && r.len() == 5
    });
    assert_eq!(split[0], (1, "active".to_owned(), 0, HALF / 2 - 1, 3));
    assert_eq!(split[4], (5, "active".to_owned(), HALF / 2, HALF - 1, 2));
    fenced_writes(&client);

    // Route: the node's map decides, with the partition's generation.
    for key in ["orders/17/line/3", "a", "customers/9"] {
        let routed = json(&client, &["route", key]);
        let partition = routed["partition"].as_u64().expect("partition");
        let range = split.iter().find(|p| p.0 == partition).expect("listed");
        assert_eq!(routed["generation"], range.4, "{key}: {routed}");
        assert_eq!(range.1, "active");
    }

    // Merge 5 back into 1: 1 owns both ranges at the next generation, 5 is a tombstone.
    let text = succeeds(&client, &["merge", "1", "5"]);
    assert!(text.starts_with("merging partition 5 into 1"), "{text}");
    let merged = wait_ranges(&client, |r| r.len() == 5 && r[4].1 == "removed");
    assert_eq!(merged[0], (1, "active".to_owned(), 0, HALF - 1, 4));
    refused(&client, &["create", "5"], "Errored", "never reused");

    // Invalid usage: exit 2; a wrong secret: the handshake fails, exit 1.
    assert_eq!(partitions(&client, &["remove", "0"]).status.code(), Some(2));
    assert_eq!(
        partitions(&client, &["create", "--start", "1"])
            .status
            .code(),
        Some(2)
    );
    let wrong = client_command_of("partitions", CLUSTER, "not the secret", &client, &["list"]);
    assert_eq!(wrong.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("handshake"));
    assert_eq!(ranges(&client), merged, "the refusals changed nothing");
}
