//! Real `kommander node` processes on loopback: start, SIGKILL, SIGTERM, restart, nodes that
//! join a running cluster (`--join`) and the roster through `kommander cluster`; a load
//! generator over the client ports (which learns of nodes added and removed) that records
//! every acknowledged write; the end of a run under load, checked against each node's WAL
//! (`node_log.rs`).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, mpsc};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kommander_raft::transport::tcp::client::{
    ClientConnection, ClientRequest, ClientResponse, ReplicaState,
};
use kommander_raft::{NodeId, PartitionId, Status};

use super::node_log::NodeLog;

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_kommander");
pub(crate) const CLUSTER: &str = "process-test";
pub(crate) const SECRET: &str = "process test shared secret";
pub(crate) const PARTITIONS: u32 = 4;
/// How long anything may take before a test fails.
pub(crate) const PATIENCE: Duration = Duration::from_secs(60);
/// The arguments that turn every checkpoint trigger off: the checks read every acknowledged
/// write back from the WALs, so nothing may be compacted.
pub(crate) const CHECKPOINTS_OFF: [&str; 6] = [
    "--checkpoint-interval-entries",
    "0",
    "--checkpoint-interval-bytes",
    "0",
    "--checkpoint-interval-secs",
    "0",
];

/// A free loopback address below the kernel's ephemeral range (`cli::free_port`): the node
/// binds it next, and again after a restart.
fn free_address() -> String {
    format!("127.0.0.1:{}", crate::cli::free_port())
}

/// One node: its addresses, files and (while running) its process.
pub(crate) struct Node {
    pub(crate) id: u64,
    pub(crate) peer_address: String,
    pub(crate) client_address: String,
    pub(crate) data_dir: PathBuf,
    config_path: PathBuf,
    /// Its command-line arguments besides `--config` and `--client-listen`.
    args: Vec<String>,
    child: Option<Child>,
    /// The running process's `ready` line, once printed.
    ready: Option<mpsc::Receiver<String>>,
    /// Everything the node wrote to stderr, over all its incarnations.
    pub(crate) log: Arc<Mutex<String>>,
    /// The running process's stderr reader, which ends at the pipe's end: joined once the
    /// process exited, so that `log` holds its last lines (its shutdown's).
    log_reader: Option<std::thread::JoinHandle<()>>,
}

impl Node {
    /// Node `id`, not started, with its configuration written at `config_path`.
    fn new(
        id: u64,
        endpoint: &str,
        data_dir: PathBuf,
        config_path: PathBuf,
        args: &[&str],
    ) -> Self {
        Self {
            id,
            peer_address: endpoint.to_owned(),
            client_address: free_address(),
            data_dir,
            config_path,
            args: args.iter().map(|&a| a.to_owned()).collect(),
            child: None,
            ready: None,
            log: Arc::new(Mutex::new(String::new())),
            log_reader: None,
        }
    }

    /// Starts the process and waits for its `ready` line.
    pub(crate) fn start(&mut self) {
        self.spawn();
        if !self.ready_within(PATIENCE) {
            panic!(
                "node {} not ready within {PATIENCE:?}; its log:\n{}",
                self.id,
                self.log.lock().expect("log")
            );
        }
    }

    /// Waits at most `patience` for the running process's `ready` line (each line is taken
    /// once): whether it came.
    pub(crate) fn ready_within(&self, patience: Duration) -> bool {
        let ready = self.ready.as_ref().expect("spawned");
        ready.recv_timeout(patience).is_ok()
    }

    /// Starts the process without waiting for it to serve.
    pub(crate) fn spawn(&mut self) {
        assert!(self.child.is_none(), "node {} already running", self.id);
        let mut child = Command::new(BIN)
            .args(["node", "--config"])
            .arg(&self.config_path)
            .args(["--client-listen", &self.client_address])
            .args(&self.args)
            .env("KOMMANDER_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kommander node");
        let (ready_tx, ready_rx) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("ready") {
                    let _ = ready_tx.send(line);
                }
            }
        });
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::clone(&self.log);
        self.log_reader = Some(std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = log.lock().expect("log");
                log.push_str(&line);
                log.push('\n');
            }
        }));
        self.child = Some(child);
        self.ready = Some(ready_rx);
    }

    pub(crate) fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().expect("try_wait").is_none())
    }

    /// SIGKILL: the process gets no chance to flush or close anything.
    pub(crate) fn kill9(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().expect("SIGKILL");
        child.wait().expect("wait");
        self.join_log_reader();
    }

    /// Waits for the stderr reader of the process that just exited to reach the pipe's end.
    fn join_log_reader(&mut self) {
        if let Some(reader) = self.log_reader.take() {
            reader.join().expect("stderr reader");
        }
    }

    /// SIGTERM, then waits for the exit.
    pub(crate) fn terminate(&mut self) -> ExitStatus {
        self.send_sigterm();
        self.await_exit()
    }

    /// SIGTERM, without waiting (see [`Node::await_exit`]).
    pub(crate) fn send_sigterm(&self) {
        let child = self.child.as_ref().expect("running");
        let pid = rustix::process::Pid::from_raw(i32::try_from(child.id()).expect("pid"))
            .expect("non-zero pid");
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM");
    }

    /// Waits for the exit of a node sent SIGTERM (SIGKILL and a panic after `PATIENCE`).
    pub(crate) fn await_exit(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.join_log_reader();
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("node {} ignored SIGTERM for {PATIENCE:?}", self.id);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(crate) fn log_text(&self) -> String {
        self.log.lock().expect("log").clone()
    }

    /// A fresh client connection to this node (`None` when it does not answer).
    pub(crate) fn client(&self) -> Option<ClientConnection> {
        ClientConnection::connect(
            &self.client_address,
            CLUSTER,
            Some(SECRET),
            Duration::from_secs(10),
        )
        .ok()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Writes node `id`'s configuration to `dir` (data directory `dir/{name}`, file
/// `dir/{name}.toml`): its `endpoint`, a `[peers]` table of `peer_lines` (empty: no table)
/// and `extra_toml` as top-level lines. Returns the file and the data directory.
fn write_config(
    dir: &Path,
    name: &str,
    id: u64,
    endpoint: &str,
    peer_lines: &str,
    extra_toml: &str,
) -> (PathBuf, PathBuf) {
    let data_dir = dir.join(name);
    let peers = if peer_lines.is_empty() {
        String::new()
    } else {
        format!("[peers]\n{peer_lines}\n")
    };
    let toml = format!(
        "node_id = {id}\n\
         endpoint = \"{endpoint}\"\n\
         cluster_name = \"{CLUSTER}\"\n\
         data_dir = \"{data}\"\n\
         shards = 1\n\
         initial_partitions = {PARTITIONS}\n\
         tick_interval_ms = 10\n\
         election_timeout_ticks_min = 15\n\
         election_timeout_ticks_max = 30\n\
         heartbeat_interval_ticks = 3\n\
         wal_segment_bytes = 4194304\n\
         {extra_toml}\n\
         {peers}\
         [transport]\n\
         auth_secret = \"{SECRET}\"\n\
         handshake_timeout_ms = 2000\n\
         frame_read_timeout_ms = 2000\n",
        data = data_dir.display(),
    );
    let config_path = dir.join(format!("{name}.toml"));
    std::fs::write(&config_path, toml).expect("write config");
    (config_path, data_dir)
}

/// A cluster of node processes sharing a temporary directory.
pub(crate) struct ProcessCluster {
    pub(crate) nodes: Vec<Node>,
    dir: tempfile::TempDir,
    /// Nodes added by [`ProcessCluster::add_joining`] so far (names their data directories).
    joiners: usize,
}

impl ProcessCluster {
    /// Writes the configurations of `count` nodes (`extra_toml` adds top-level lines) and
    /// starts the first `running` of them, without checkpoints ([`CHECKPOINTS_OFF`]).
    pub(crate) fn start(count: u64, running: usize, extra_toml: &str) -> Self {
        Self::start_with(count, running, extra_toml, &CHECKPOINTS_OFF)
    }

    /// [`ProcessCluster::start`] with the nodes' command-line arguments (besides `--config`
    /// and `--client-listen`). One node (`count` 1) has no peers: a one-node cluster that
    /// others can join ([`ProcessCluster::add_joining`]).
    pub(crate) fn start_with(count: u64, running: usize, extra_toml: &str, args: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let peers: Vec<String> = (0..count).map(|_| free_address()).collect();
        let mut nodes = Vec::new();
        for id in 1..=count {
            let peer_lines: String = (1..=count)
                .filter(|&n| n != id)
                .map(|n| format!("{n} = \"{}\"\n", peers[n as usize - 1]))
                .collect();
            let endpoint = &peers[id as usize - 1];
            let (config_path, data_dir) = write_config(
                dir.path(),
                &format!("node-{id}"),
                id,
                endpoint,
                &peer_lines,
                extra_toml,
            );
            nodes.push(Node::new(id, endpoint, data_dir, config_path, args));
        }
        // Start them all before waiting: each waits for a quorum to join.
        let mut cluster = Self {
            nodes,
            dir,
            joiners: 0,
        };
        std::thread::scope(|scope| {
            for node in cluster.nodes.iter_mut().take(running) {
                scope.spawn(|| node.start());
            }
        });
        cluster
    }

    /// Adds node `id`, not started, that joins the running cluster through `seed` (a
    /// member's peer endpoint: `kommander node --join`): a configuration without `[peers]`,
    /// with its own endpoint (`endpoint`, or a free address) and an empty data directory of
    /// its own, no checkpoints ([`CHECKPOINTS_OFF`]). Its `ready` line comes once it votes
    /// in every partition. Returns it.
    pub(crate) fn add_joining(&mut self, id: u64, endpoint: Option<&str>, seed: &str) -> &mut Node {
        let endpoint = endpoint.map_or_else(free_address, str::to_owned);
        // A data directory never used before, even when an earlier node had this id.
        self.joiners += 1;
        let name = format!("node-{id}-joiner-{}", self.joiners);
        let (config_path, data_dir) = write_config(self.dir.path(), &name, id, &endpoint, "", "");
        assert!(!data_dir.exists(), "{} is not empty", data_dir.display());
        let mut args = CHECKPOINTS_OFF.to_vec();
        args.extend(["--join", seed]);
        self.nodes
            .push(Node::new(id, &endpoint, data_dir, config_path, &args));
        self.nodes.last_mut().expect("just added")
    }

    /// Node `id`.
    pub(crate) fn node(&mut self, id: u64) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.id == id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    /// Takes node `id` out of the cluster (no longer a member: [`ProcessCluster::states`],
    /// [`ProcessCluster::wait_applied`] and the rest leave it out); the caller stops it.
    pub(crate) fn take(&mut self, id: u64) -> Node {
        let position = self
            .nodes
            .iter()
            .position(|n| n.id == id)
            .unwrap_or_else(|| panic!("no node {id}"));
        self.nodes.remove(position)
    }

    /// Every node's client address, by node id (what [`Load::start`] writes through).
    pub(crate) fn clients(&self) -> BTreeMap<u64, String> {
        self.nodes
            .iter()
            .map(|n| (n.id, n.client_address.clone()))
            .collect()
    }

    /// The state of every node's replica of `p` (`None` for stopped or unreachable nodes).
    pub(crate) fn states(&mut self, p: PartitionId) -> Vec<Option<ReplicaState>> {
        self.nodes
            .iter_mut()
            .map(|node| {
                if !node.running() {
                    return None;
                }
                match node
                    .client()?
                    .call(&ClientRequest::Status { partition: p })
                    .ok()?
                {
                    ClientResponse::Status {
                        status: Status::Success,
                        state,
                    } => Some(state),
                    _ => None,
                }
            })
            .collect()
    }

    /// The node leading `p`, once at least two running nodes report it and none reports
    /// another.
    pub(crate) fn agreed_leader(&mut self, p: PartitionId) -> u64 {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let leaders: Vec<u64> = self
                .states(p)
                .into_iter()
                .flatten()
                .filter_map(|s| s.leader.map(NodeId::get))
                .collect();
            if let Some(&first) = leaders.first()
                && leaders.iter().all(|&l| l == first)
                && leaders.len() >= 2
            {
                return first;
            }
            assert!(
                Instant::now() < deadline,
                "{p}: no agreed leader: {leaders:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The end of a run under load: every node applies up to the highest acknowledged index
    /// of every partition, stops cleanly on SIGTERM (exit 0, `shutting down` logged), and
    /// its WAL, opened offline, holds every write of `acked` at its acknowledged index, none
    /// after its partition froze at a newer generation (`NodeLog::assert_holds`). Returns
    /// the logs read.
    pub(crate) fn stop_holding_every_write(&mut self, acked: &[Acked]) -> Vec<NodeLog> {
        let mut highest: BTreeMap<u32, u64> = BTreeMap::new();
        for a in acked {
            let h = highest.entry(a.partition.get()).or_default();
            *h = (*h).max(a.index);
        }
        for (&p, &index) in &highest {
            self.wait_applied(PartitionId(p), index);
        }
        for node in &mut self.nodes {
            let status = node.terminate();
            assert!(
                status.success(),
                "node {} exited with {status}:\n{}",
                node.id,
                node.log_text()
            );
            assert!(
                node.log_text().contains("shutting down"),
                "node {} logged no shutdown",
                node.id
            );
        }
        self.nodes
            .iter()
            .map(|node| {
                let log = NodeLog::read(&node.data_dir);
                log.assert_holds(node.id, acked);
                log
            })
            .collect()
    }

    /// Waits until every node runs and has applied at least `index` of `p`.
    pub(crate) fn wait_applied(&mut self, p: PartitionId, index: u64) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let states = self.states(p);
            if states.iter().all(|s| s.is_some_and(|s| s.applied >= index)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{p}: not every node applied {index}: {states:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// One acknowledged write.
#[derive(Clone, Debug)]
pub(crate) struct Acked {
    pub(crate) partition: PartitionId,
    pub(crate) index: u64,
    pub(crate) payload: Bytes,
    /// When its acknowledgement arrived.
    pub(crate) at: Instant,
    /// The generation of the partition's range the write was routed with (0: unfenced).
    pub(crate) generation: u64,
}

/// The client addresses the writers use, by node id: shared, so that the test adds a node
/// that joined and drops one that left while they run.
type Clients = Arc<RwLock<BTreeMap<u64, String>>>;

/// Writer threads that replicate unique payloads through the client ports, following
/// leadership, and record every acknowledged write.
pub(crate) struct Load {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<Acked>>>,
    count: Arc<AtomicU64>,
    clients: Clients,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    /// Starts `writers` threads over `clients` (node id → client address; never empty).
    pub(crate) fn start(clients: BTreeMap<u64, String>, writers: usize) -> Self {
        assert!(!clients.is_empty(), "a load needs a node to write to");
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let count = Arc::new(AtomicU64::new(0));
        let clients = Arc::new(RwLock::new(clients));
        let threads = (0..writers)
            .map(|w| {
                let (stop, acked, count, clients) = (
                    Arc::clone(&stop),
                    Arc::clone(&acked),
                    Arc::clone(&count),
                    Arc::clone(&clients),
                );
                std::thread::spawn(move || writer(w, &clients, &stop, &acked, &count))
            })
            .collect();
        Self {
            stop,
            acked,
            count,
            clients,
            threads,
        }
    }

    /// Writes through node `id`'s client port at `address` from now on (a node that joined,
    /// or one that came back with another client port).
    pub(crate) fn add_client(&self, id: u64, address: &str) {
        let mut clients = self.clients.write().expect("clients");
        clients.insert(id, address.to_owned());
    }

    /// Stops writing through node `id` (a node taken out of the cluster). At least one node
    /// must remain.
    pub(crate) fn remove_client(&self, id: u64) {
        let mut clients = self.clients.write().expect("clients");
        clients.remove(&id);
        assert!(!clients.is_empty(), "a load needs a node to write to");
    }

    /// Acknowledged writes so far.
    pub(crate) fn acked_count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Waits until `more` writes beyond the current count are acknowledged.
    pub(crate) fn wait_progress(&self, more: u64) {
        let target = self.acked_count() + more;
        let deadline = Instant::now() + PATIENCE;
        while self.acked_count() < target {
            assert!(
                Instant::now() < deadline,
                "load stalled at {} acknowledged writes (wanted {target})",
                self.acked_count()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the writers and returns every acknowledged write.
    pub(crate) fn stop(self) -> Vec<Acked> {
        self.stop.store(true, Ordering::Release);
        for thread in self.threads {
            thread.join().expect("writer thread");
        }
        std::mem::take(&mut *self.acked.lock().expect("acked"))
    }
}

fn writer(
    w: usize,
    clients: &RwLock<BTreeMap<u64, String>>,
    stop: &AtomicBool,
    acked: &Mutex<Vec<Acked>>,
    count: &AtomicU64,
) {
    let mut connections: BTreeMap<u64, ClientConnection> = BTreeMap::new();
    let mut leaders: BTreeMap<u32, u64> = BTreeMap::new();
    let mut seq = 0u64;
    let mut guess = w;
    while !stop.load(Ordering::Acquire) {
        seq += 1;
        let p = PartitionId(1 + (seq % u64::from(PARTITIONS)) as u32);
        let (target, address) = {
            let clients = clients.read().expect("clients");
            // Forget the nodes taken out of the map.
            connections.retain(|id, _| clients.contains_key(id));
            leaders.retain(|_, id| clients.contains_key(id));
            let target = *leaders.entry(p.get()).or_insert_with(|| {
                guess += 1;
                *clients.keys().nth(guess % clients.len()).expect("a node")
            });
            (target, clients[&target].clone())
        };
        let client = match connections.entry(target) {
            std::collections::btree_map::Entry::Occupied(c) => c.into_mut(),
            std::collections::btree_map::Entry::Vacant(v) => {
                match ClientConnection::connect(
                    &address,
                    CLUSTER,
                    Some(SECRET),
                    Duration::from_secs(5),
                ) {
                    Ok(c) => v.insert(c),
                    Err(_) => {
                        // Down (killed): try another node next time.
                        leaders.remove(&p.get());
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                }
            }
        };
        let payload = Bytes::from(format!("w{w}-{seq}"));
        let request = ClientRequest::Replicate {
            partition: p,
            log_type: "load".to_owned(),
            payload: payload.clone(),
        };
        match client.call(&request) {
            Ok(ClientResponse::Replicated {
                status: Status::Success,
                index: Some(index),
                ..
            }) => {
                acked.lock().expect("acked").push(Acked {
                    partition: p,
                    index,
                    payload,
                    at: Instant::now(),
                    generation: 0,
                });
                count.fetch_add(1, Ordering::Relaxed);
            }
            Ok(ClientResponse::Replicated {
                status: Status::NodeIsNotLeader,
                ..
            }) => {
                // Ask this node who leads; fall back to the next node.
                let leader = match client.call(&ClientRequest::Status { partition: p }) {
                    Ok(ClientResponse::Status { state, .. }) => state.leader.map(NodeId::get),
                    _ => None,
                };
                let known = |l: &u64| clients.read().expect("clients").contains_key(l);
                match leader.filter(|l| known(l) && *l != target) {
                    Some(l) => {
                        leaders.insert(p.get(), l);
                    }
                    None => {
                        leaders.remove(&p.get());
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
            }
            // Indeterminate or refused (election, full queue): not acknowledged, not counted.
            Ok(_) => std::thread::sleep(Duration::from_millis(5)),
            Err(_) => {
                connections.remove(&target);
                leaders.remove(&p.get());
            }
        }
    }
}

/// Runs `kommander cluster ARGS --connect CLIENT` with the cluster's name and secret.
pub(crate) fn cluster_command(client: &str, args: &[&str]) -> std::process::Output {
    client_command_of("cluster", CLUSTER, SECRET, client, args)
}

/// Runs `kommander partitions ARGS --connect CLIENT` with the cluster's name and secret.
pub(crate) fn partitions_command(client: &str, args: &[&str]) -> std::process::Output {
    client_command_of("partitions", CLUSTER, SECRET, client, args)
}

/// Runs `kommander COMMAND ARGS --connect CLIENT` (a client command: `cluster`,
/// `partitions`) for the cluster `cluster` with `secret`.
pub(crate) fn client_command_of(
    command: &str,
    cluster: &str,
    secret: &str,
    client: &str,
    args: &[&str],
) -> std::process::Output {
    Command::new(BIN)
        .env("KOMMANDER_AUTH_SECRET", secret)
        .arg(command)
        .args(args)
        .args(["--connect", client, "--cluster-name", cluster])
        .output()
        .unwrap_or_else(|e| panic!("run kommander {command}: {e}"))
}

/// One member as `kommander cluster members --json` prints it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Member {
    pub(crate) id: u64,
    /// `voter`, `learner` or `leaving`.
    pub(crate) role: String,
    pub(crate) endpoint: String,
    pub(crate) incarnation: u64,
}

/// The roster version and the members, by id, of what `kommander cluster members --json`
/// printed (`stdout`).
pub(crate) fn parse_members(stdout: &[u8]) -> (u64, Vec<Member>) {
    let value: serde_json::Value =
        serde_json::from_slice(stdout).expect("cluster members --json prints JSON");
    let members = value["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| Member {
            id: m["id"].as_u64().expect("id"),
            role: m["role"].as_str().expect("role").to_owned(),
            endpoint: m["endpoint"].as_str().expect("endpoint").to_owned(),
            incarnation: m["incarnation"].as_u64().expect("incarnation"),
        })
        .collect();
    (value["version"].as_u64().expect("version"), members)
}

/// The roster as `kommander cluster members --json` prints it through `client`, by id.
pub(crate) fn members(client: &str) -> Vec<Member> {
    let output = cluster_command(client, &["members", "--json"]);
    assert!(
        output.status.success(),
        "cluster members: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    parse_members(&output.stdout).1
}

/// Waits until the roster `client` knows has exactly the voters `voters` and no other
/// member; returns it.
pub(crate) fn wait_voters(client: &str, voters: &[u64]) -> Vec<Member> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let roster = members(client);
        if roster.len() == voters.len()
            && roster
                .iter()
                .zip(voters)
                .all(|(m, &id)| m.id == id && m.role == "voter")
        {
            return roster;
        }
        assert!(
            Instant::now() < deadline,
            "the roster through {client} never became the voters {voters:?}: {roster:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
