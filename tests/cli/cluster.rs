//! `kommander node --join` and `kommander cluster members|remove`: a one-node cluster grown
//! by a joining node, the roster through a client port, a removal and its refusals, a
//! restart without `--join`, and the exit codes of a join that cannot be done.

use std::path::Path;
use std::process::{Command, Output};

use std::time::Instant;

use super::{PATIENCE, Running, client_of, free_port, kommander};
use crate::process::harness::{client_command_of, parse_members};

const SECRET: &str = "the secret of the cluster tests";
const CLUSTER: &str = "cli-cluster";

/// Node `id`'s TOML under `dir`: no `[peers]`, its peer endpoint on `port`.
fn write_config(dir: &Path, id: u64, port: u16, tail: &str) -> std::path::PathBuf {
    let config = dir.join(format!("node{id}.toml"));
    let text = format!(
        "node_id = {id}\n\
         endpoint = \"127.0.0.1:{port}\"\n\
         cluster_name = \"{CLUSTER}\"\n\
         data_dir = \"{}\"\n\
         shards = 1\n\
         initial_partitions = 2\n\
         tick_interval_ms = 5\n{tail}",
        dir.join(format!("data{id}")).display()
    );
    std::fs::write(&config, text).expect("write config");
    config
}

/// `kommander node` of node `id` (a client port on a free port), joining through `seeds`.
fn node_command(config: &Path, seeds: &[String]) -> Command {
    let mut command = kommander();
    command
        .env("KOMMANDER_AUTH_SECRET", SECRET)
        .arg("node")
        .arg("--config")
        .arg(config)
        .args(["--client-listen", "127.0.0.1:0"]);
    for seed in seeds {
        command.args(["--join", seed]);
    }
    command
}

/// Starts node `id` and waits for its `ready` line; returns it and its client address.
fn start(dir: &Path, id: u64, port: u16, seeds: &[String]) -> (Running, String) {
    let config = write_config(dir, id, port, "");
    let name = format!("node{id}-{}", dir.read_dir().map_or(0, Iterator::count));
    let mut node = Running::spawn(node_command(&config, seeds), dir, &name);
    let ready = node.wait_line("ready ");
    assert!(ready.starts_with(&format!("ready node={id} ")), "{ready}");
    (node, client_of(&ready))
}

/// Runs `kommander cluster ARGS --connect CLIENT --cluster-name ...` with the secret.
fn cluster(client: &str, args: &[&str]) -> Output {
    client_command_of("cluster", CLUSTER, SECRET, client, args)
}

/// The roster `cluster members --json` prints: `(id, role, endpoint)` by id, and its version.
fn members(client: &str) -> (u64, Vec<(u64, String, String)>) {
    let output = cluster(client, &["members", "--json"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let (version, members) = parse_members(&output.stdout);
    let members = members
        .into_iter()
        .map(|m| (m.id, m.role, m.endpoint))
        .collect();
    (version, members)
}

/// Waits until `client`'s roster satisfies `holds`; returns it.
fn wait_members(
    client: &str,
    holds: impl Fn(&[(u64, String, String)]) -> bool,
) -> Vec<(u64, String, String)> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (_, roster) = members(client);
        if holds(&roster) {
            return roster;
        }
        assert!(
            Instant::now() < deadline,
            "roster never became as expected: {roster:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn a_node_joins_a_one_node_cluster_and_cluster_remove_takes_it_out() {
    let dir = tempfile::tempdir().expect("dir");
    let (port1, port2) = (free_port(), free_port());
    let (_node1, client1) = start(dir.path(), 1, port1, &[]);
    let (_, alone) = members(&client1);
    assert_eq!(
        alone.len(),
        1,
        "a node without peers is a one-node cluster: {alone:?}"
    );

    // The seed by a DNS name (discovery by DNS: the transport resolves a seed at each
    // attempt and tries every address it names; decision 0005 §11).
    let seed = format!("127.0.0.1:{port1}");
    let by_name = format!("localhost:{port1}");
    let (mut node2, client2) = start(dir.path(), 2, port2, std::slice::from_ref(&by_name));
    // `ready` comes once the joining node is a voter: both nodes' rosters say so.
    let endpoint2 = format!("127.0.0.1:{port2}");
    let grown = vec![
        (1, "voter".to_owned(), seed.clone()),
        (2, "voter".to_owned(), endpoint2.clone()),
    ];
    assert_eq!(members(&client2).1, grown);
    wait_members(&client1, |r| r == grown);
    let log = node2.stderr();
    assert!(log.contains("promoted to voter"), "{log}");
    let text = cluster(&client1, &["members"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.starts_with("roster version "), "{text}");
    assert!(text.contains(&endpoint2), "{text}");

    // A joined node restarts with its data directory and without `--join`.
    node2.signal("TERM");
    assert!(node2.wait_exit().success(), "{}", node2.stderr());
    let (_node2, client2) = start(dir.path(), 2, port2, &[]);
    assert_eq!(members(&client2).1, grown);

    let removed = cluster(&client2, &["remove", "2"]);
    let stdout = String::from_utf8_lossy(&removed.stdout);
    assert!(
        removed.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&removed.stderr)
    );
    assert!(stdout.starts_with("removed: roster version "), "{stdout}");
    wait_members(&client1, |r| r.len() == 1 && r[0].0 == 1);

    // The last voter: refused, exit 1, one message naming the status.
    let refused = cluster(&client1, &["remove", "1", "--json"]);
    assert_eq!(refused.status.code(), Some(1));
    let value: serde_json::Value = serde_json::from_slice(&refused.stdout).expect("JSON");
    assert_eq!(value["status"], "InsufficientVoters", "{value}");
    let refused = cluster(&client1, &["remove", "1"]);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(stderr.matches("InsufficientVoters").count(), 1, "{stderr}");
    assert_eq!(members(&client1).1.len(), 1);

    // Without the secret the handshake fails: exit 1; an id 0 is invalid usage: exit 2.
    let unauthenticated = kommander()
        .args([
            "cluster",
            "members",
            "--connect",
            &client1,
            "--cluster-name",
            CLUSTER,
        ])
        .output()
        .expect("run kommander cluster");
    assert_eq!(unauthenticated.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unauthenticated.stderr).contains("handshake"));
    assert_eq!(cluster(&client1, &["remove", "0"]).status.code(), Some(2));
}

/// Runs node 1 to its exit with `tail` in its TOML and `seeds`; its status and stderr.
fn run_to_exit(dir: &Path, port: u16, tail: &str, seeds: &[String]) -> (Option<i32>, String) {
    let config = write_config(dir, 1, port, tail);
    // (`wait_exit` kills a node that would not exit, and fails.)
    let mut node = Running::spawn(node_command(&config, seeds), dir, "node1");
    let status = node.wait_exit();
    (status.code(), node.stderr())
}

#[test]
fn a_join_that_cannot_be_done_exits_with_one_message() {
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    // Its own endpoint as the only seed: invalid usage.
    let (code, stderr) = run_to_exit(dir.path(), port, "", &[format!("127.0.0.1:{port}")]);
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(stderr.matches("kommander node: ").count(), 1, "{stderr}");
    assert!(stderr.contains("own endpoint"), "{stderr}");

    // A seed nobody listens on: the join times out, exit 1.
    let dir = tempfile::tempdir().expect("dir");
    let silent = format!("127.0.0.1:{}", free_port());
    let (code, stderr) = run_to_exit(dir.path(), port, "join_timeout_ms = 500\n", &[silent]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(stderr.matches("kommander node: ").count(), 1, "{stderr}");
    assert!(stderr.contains("join_timeout_ms"), "{stderr}");
}
