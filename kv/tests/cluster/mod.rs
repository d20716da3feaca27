//! A cluster of in-process store nodes on loopback TCP, and an HTTP client that speaks to
//! them (one connection per request, no redirect followed unless asked).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::StatusCode;
use hyper::header::HeaderMap;
use hyper_util::rt::TokioIo;
use kommander_kv::{Config, KvConfig, KvNode, OUTCOME_HEADER};
use kommander_raft::{NodeConfig, PartitionId, PartitionStatus, SYSTEM_PARTITION};

#[path = "../../../tests/support/ports.rs"]
mod ports;
use ports::free_port;

/// How long the helpers wait for a cluster to settle (an election, a catch-up).
pub(crate) const PATIENCE: Duration = Duration::from_secs(30);

/// How long [`eventually`] sleeps between two polls.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Polls until `poll` answers `Ok`, sleeping [`POLL_INTERVAL`] between polls, and returns its
/// value. An `Err` says what is not reached yet (with the state it observed): once
/// [`PATIENCE`] has passed since the call, the last one is the panic message.
pub(crate) async fn eventually<T, F>(mut poll: impl FnMut() -> F) -> T
where
    F: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        match poll().await {
            Ok(value) => return value,
            Err(not_yet) => assert!(Instant::now() < deadline, "{not_yet}"),
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// An HTTP answer.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Answer {
    /// The `x-kv-outcome` header.
    pub(crate) fn outcome(&self) -> &str {
        self.headers
            .get(OUTCOME_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// A header as text.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the status and the `x-kv-outcome`.
    pub(crate) fn assert_is(&self, status: StatusCode, outcome: &str) {
        assert_eq!((self.status, self.outcome()), (status, outcome), "{self:?}");
    }

    /// The JSON body.
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// One request to `addr`.
pub(crate) async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: impl Into<Bytes>,
    headers: &[(&str, &str)],
) -> Answer {
    try_request(addr, method, path, body, headers)
        .await
        .expect("connect to the store")
}

/// One request to `addr`; `Err` when it cannot be sent (nobody listens there).
pub(crate) async fn try_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: impl Into<Bytes>,
    headers: &[(&str, &str)],
) -> Result<Answer, std::io::Error> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(connection);
    let mut builder = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = builder
        .body(Full::new(body.into()))
        .expect("a valid request");
    let response = sender
        .send_request(request)
        .await
        .map_err(std::io::Error::other)?;
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes();
    Ok(Answer {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

/// Three store nodes.
pub(crate) struct Cluster {
    _dir: tempfile::TempDir,
    configs: Vec<Config>,
    nodes: Vec<Option<KvNode>>,
}

impl Cluster {
    /// Starts three nodes with two partitions; `tweak` adjusts each configuration.
    pub(crate) async fn start(tweak: impl Fn(&mut Config)) -> Self {
        // The nodes' logs (filtered by KOMMANDER_LOG, warnings by default), shown for a failed
        // test.
        let filter = tracing_subscriber::EnvFilter::try_from_env("KOMMANDER_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
        let dir = tempfile::tempdir().expect("temporary directory");
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let configs: Vec<Config> = (1..=3u64)
            .map(|id| {
                let mut node = NodeConfig::new(id, dir.path().join(format!("node{id}")));
                node.endpoint = format!("127.0.0.1:{}", ports[id as usize - 1]);
                node.peers = (1..=3u64)
                    .filter(|peer| *peer != id)
                    .map(|peer| (peer, format!("127.0.0.1:{}", ports[peer as usize - 1])))
                    .collect();
                node.shards = 1;
                node.initial_partitions = 2;
                let kv = KvConfig {
                    http_listen: "127.0.0.1:0".to_owned(),
                    ..KvConfig::default()
                };
                let mut config = Config { node, kv };
                tweak(&mut config);
                config.validate().expect("a valid test configuration");
                config
            })
            .collect();
        let mut cluster = Self {
            _dir: dir,
            configs,
            nodes: vec![None, None, None],
        };
        cluster.start_nodes(&[0, 1, 2]).await;
        cluster
    }

    /// Starts the nodes `which` (stopped ones) at once: each waits for a quorum to join.
    pub(crate) async fn start_nodes(&mut self, which: &[usize]) {
        let starting: Vec<_> = which
            .iter()
            .map(|&i| (i, tokio::spawn(KvNode::start(self.configs[i].clone()))))
            .collect();
        for (i, handle) in starting {
            let node = handle
                .await
                .expect("the start task")
                .expect("the node starts");
            self.nodes[i] = Some(node);
        }
        self.settle().await;
    }

    /// Stops node `i` cleanly.
    pub(crate) async fn stop(&mut self, i: usize) {
        if let Some(node) = self.nodes[i].take() {
            node.shutdown().await;
        }
    }

    /// Node `i`'s snapshot directory.
    pub(crate) fn snapshot_dir(&self, i: usize) -> std::path::PathBuf {
        self.configs[i].snapshot_dir()
    }

    pub(crate) fn node(&self, i: usize) -> &KvNode {
        self.nodes[i].as_ref().expect("a running node")
    }

    /// Node `i`'s HTTP address.
    pub(crate) fn addr(&self, i: usize) -> SocketAddr {
        self.node(i).http_addr()
    }

    fn running(&self) -> impl Iterator<Item = (usize, &KvNode)> {
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.as_ref().map(|n| (i, n)))
    }

    /// The user partitions.
    pub(crate) fn partitions(&self) -> Vec<PartitionId> {
        let (_, node) = self.running().next().expect("a running node");
        node.raft()
            .partition_map()
            .hosted()
            .filter(|p| *p != SYSTEM_PARTITION)
            .collect()
    }

    /// Waits until every running node follows the same partition map, then until every
    /// partition of it has a leader every running node knows (a node whose map lagged would
    /// name a partition a merge removed, which no node leads again).
    pub(crate) async fn settle(&self) {
        // The leader waits get what is left of the maps' patience.
        let deadline = Instant::now() + PATIENCE;
        eventually(|| async {
            let versions: BTreeSet<u64> = self
                .running()
                .map(|(_, node)| node.raft().partition_map().version)
                .collect();
            if versions.len() == 1 {
                Ok(())
            } else {
                Err(format!(
                    "the nodes' maps did not converge in time: versions {versions:?}"
                ))
            }
        })
        .await;
        for partition in self.partitions() {
            for (_, node) in self.running() {
                node.raft()
                    .wait_for_leader(partition, Some(deadline - Instant::now()))
                    .await
                    .expect("a leader in time");
            }
        }
    }

    /// The index of the node leading `key`'s partition (waits for one).
    pub(crate) async fn leader_of(&self, key: &str) -> usize {
        let (_, node) = self.running().next().expect("a running node");
        let partition = node.raft().partition_for_key(key).expect("routed");
        eventually(|| async {
            self.running()
                .find(|(_, n)| n.raft().am_i_leader_quick(partition))
                .map(|(i, _)| i)
                .ok_or_else(|| format!("no leader of {partition}"))
        })
        .await
    }

    /// A node that does not lead `key`'s partition.
    pub(crate) async fn follower_of(&self, key: &str) -> usize {
        let leader = self.leader_of(key).await;
        self.running()
            .map(|(i, _)| i)
            .find(|i| *i != leader)
            .expect("a follower")
    }

    /// `partition`'s status on node `i`.
    pub(crate) async fn status(&self, i: usize, partition: PartitionId) -> PartitionStatus {
        self.node(i)
            .raft()
            .partition_status(partition)
            .await
            .expect("a status")
    }

    /// Sends a request to node `i`, following redirects and retrying `failed` 503s and 504s
    /// (an election, a leader's address not known yet, a node catching up) until
    /// [`PATIENCE`] runs out.
    pub(crate) async fn send(&self, i: usize, method: &str, path: &str, body: &[u8]) -> Answer {
        let deadline = Instant::now() + PATIENCE;
        let mut addr = self.addr(i);
        loop {
            let sent = try_request(addr, method, path, Bytes::copy_from_slice(body), &[]).await;
            let Ok(answer) = sent else {
                // Redirected to a node that stopped: ask node `i` again once it knows better.
                assert!(Instant::now() < deadline, "{method} {path}: {sent:?}");
                addr = self.addr(i);
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            };
            let retry = match answer.status {
                StatusCode::TEMPORARY_REDIRECT => {
                    let location = answer.header("location").expect("a location");
                    let target = location
                        .strip_prefix("http://")
                        .and_then(|rest| rest.split_once('/'))
                        .map(|(host, _)| host)
                        .expect("http://host/path");
                    addr = target.parse().expect("an address");
                    true
                }
                // Definite failures a client retries: no leader yet, a read index not
                // confirmed or not applied in time (a node catching up).
                StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
                    if answer.outcome() == "failed" =>
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    true
                }
                _ => false,
            };
            if !retry || Instant::now() > deadline {
                return answer;
            }
        }
    }

    /// PUT `value` at `key` through node 0 (redirected to the leader); asserts it is
    /// acknowledged.
    pub(crate) async fn put(&self, key: &str, value: &str) {
        let answer = self
            .send(0, "PUT", &format!("/kv/{key}"), value.as_bytes())
            .await;
        assert_eq!(
            (answer.status, answer.outcome()),
            (StatusCode::OK, "ok"),
            "PUT {key}: {answer:?}"
        );
    }

    /// A linearizable GET of `key` on node `i`: the value, `None` when absent.
    pub(crate) async fn get(&self, i: usize, key: &str) -> Option<Bytes> {
        let answer = self.send(i, "GET", &format!("/kv/{key}"), b"").await;
        match answer.status {
            StatusCode::OK => Some(answer.body),
            StatusCode::NOT_FOUND if answer.outcome() == "ok" => None,
            _ => panic!("GET {key} on node {i}: {answer:?}"),
        }
    }
}
