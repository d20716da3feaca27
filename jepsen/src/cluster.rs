//! The five nodes on their own network: a bridge in the host namespace, one network namespace
//! per node joined to it by a veth pair, and one `kommander-kv` process per namespace with its
//! generated configuration (static peers). Owns starting, killing, pausing and restarting
//! those processes, and the teardown, which runs when the [`Cluster`] drops (a panic and a
//! stop on Ctrl-C included) and before the setup (a killed run's leftovers).
//!
//! Every address used is one this harness gives to its own namespaces (`SUBNET`); clients
//! reach the nodes from the host namespace through the bridge.

use std::fs::{File, OpenOptions};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};

use crate::error::Error;
use crate::http;

/// Nodes in the cluster.
pub(crate) const NODES: usize = 5;
/// The bridge joining the namespaces (host namespace).
const BRIDGE: &str = "kjepsen0";
/// The first three octets of the addresses: node `n` is `.n`, the host's bridge end `.254`.
const SUBNET: [u8; 3] = [10, 213, 77];
const HOST_OCTET: u8 = 254;
/// Each node's Raft port and HTTP port, on its own address.
const RAFT_PORT: u16 = 7000;
const HTTP_PORT: u16 = 8000;
/// The store's environment variable for `transport.auth_secret`.
const AUTH_SECRET_ENV: &str = "KOMMANDER_AUTH_SECRET";
/// `kv.body_bytes_max`: also the longest list the append workload's keys grow to (a list
/// must fit one chunk of a range transfer, 256 KiB by default, with its key).
const BODY_BYTES_MAX: usize = 128 << 10;
/// How long a started node has to answer a stale read.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A node's number, 1..=NODES.
pub(crate) type NodeNumber = usize;

/// The store's settings the harness chooses for every node.
#[derive(Debug, Clone)]
pub(crate) struct NodeSettings {
    /// The `kommander-kv` binary.
    pub(crate) binary: PathBuf,
    /// `kv.unsafe_local_reads` (the first negative control).
    pub(crate) unsafe_local_reads: bool,
    /// `kv.unsafe_ack_before_commit` (the second negative control).
    pub(crate) unsafe_ack_before_commit: bool,
    /// `kv.write_timeout_ms`.
    pub(crate) write_timeout_ms: u64,
    /// `kv.read_timeout_ms`.
    pub(crate) read_timeout_ms: u64,
}

/// The running cluster. Dropping it tears everything down.
pub(crate) struct Cluster {
    directory: PathBuf,
    settings: NodeSettings,
    /// Node `n`'s process at `n - 1`; `None` while killed.
    processes: Vec<Option<Child>>,
    /// The peers' shared secret (a node refuses a non-loopback address without one), given
    /// through the environment, not the configuration files.
    auth_secret: String,
    /// Nodes whose process exited by itself (not killed by the nemesis), with the status.
    crashes: Vec<(NodeNumber, String)>,
}

/// Node `node`'s network namespace.
pub(crate) fn namespace(node: NodeNumber) -> String {
    format!("kjepsen-n{node}")
}

/// Node `node`'s address.
pub(crate) fn address(node: NodeNumber) -> Ipv4Addr {
    let [a, b, c] = SUBNET;
    Ipv4Addr::new(a, b, c, u8::try_from(node).unwrap_or(u8::MAX))
}

/// Node `node`'s HTTP API.
pub(crate) fn http_address(node: NodeNumber) -> SocketAddr {
    SocketAddr::new(address(node).into(), HTTP_PORT)
}

/// All node numbers.
pub(crate) fn nodes() -> impl Iterator<Item = NodeNumber> {
    1..=NODES
}

/// Runs `program args`, failing with its stderr.
pub(crate) fn run(program: &str, args: &[&str]) -> Result<(), Error> {
    let command = format!("{program} {}", args.join(" "));
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|error| Error::Command {
            command: command.clone(),
            detail: error.to_string(),
        })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(Error::Command {
            command,
            detail: format!(
                "{}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        })
    }
}

/// Runs `args` inside node `node`'s namespace.
pub(crate) fn run_in(node: NodeNumber, args: &[&str]) -> Result<(), Error> {
    let namespace = namespace(node);
    let mut all = vec!["netns", "exec", namespace.as_str()];
    all.extend_from_slice(args);
    run("ip", &all)
}

/// Removes whatever a run left: processes in the namespaces, the namespaces (their veth pairs
/// go with them), the bridge. Missing pieces are not errors.
pub(crate) fn teardown() {
    for node in nodes() {
        let namespace = namespace(node);
        if let Ok(output) = Command::new("ip")
            .args(["netns", "pids", namespace.as_str()])
            .stderr(Stdio::null())
            .output()
        {
            for pid in String::from_utf8_lossy(&output.stdout).split_whitespace() {
                if let Some(pid) = pid.parse::<i32>().ok().and_then(Pid::from_raw) {
                    let _ = kill_process(pid, Signal::KILL);
                }
            }
        }
        // Deleting a namespace frees its veth pair only later (asynchronously in the
        // kernel): delete the pair first, so that a setup right after finds its names free.
        let _ = Command::new("ip")
            .args(["link", "delete", &format!("kjv{node}")])
            .stderr(Stdio::null())
            .status();
        let _ = Command::new("ip")
            .args(["netns", "delete", namespace.as_str()])
            .stderr(Stdio::null())
            .status();
    }
    let _ = Command::new("ip")
        .args(["link", "delete", BRIDGE])
        .stderr(Stdio::null())
        .status();
}

impl Cluster {
    /// Cleans a stale setup, builds the network, writes each node's configuration into
    /// `directory` and starts the five nodes, waiting until each answers.
    ///
    /// # Errors
    ///
    /// [`Error`] for a network step that failed or a node that did not answer in time (the
    /// setup done so far is torn down).
    pub(crate) fn start(directory: &Path, settings: NodeSettings) -> Result<Self, Error> {
        teardown();
        let mut cluster = Self {
            directory: directory.to_owned(),
            settings,
            processes: nodes().map(|_| None).collect(),
            crashes: Vec::new(),
            auth_secret: format!(
                "kommander-jepsen-{}",
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |since| since.as_nanos())
            ),
        };
        cluster.network()?;
        for node in nodes() {
            cluster.write_config(node)?;
        }
        for node in nodes() {
            cluster.spawn(node)?;
        }
        for node in nodes() {
            wait_ready(node)?;
        }
        Ok(cluster)
    }

    fn network(&self) -> Result<(), Error> {
        let host = format!("{}/24", host_address());
        run("ip", &["link", "add", BRIDGE, "type", "bridge"])?;
        run("ip", &["addr", "add", &host, "dev", BRIDGE])?;
        run("ip", &["link", "set", BRIDGE, "up"])?;
        for node in nodes() {
            let namespace = namespace(node);
            let outside = format!("kjv{node}");
            let inside = format!("kjp{node}");
            let address = format!("{}/24", address(node));
            run("ip", &["netns", "add", &namespace])?;
            run(
                "ip",
                &[
                    "link", "add", &outside, "type", "veth", "peer", "name", &inside,
                ],
            )?;
            run("ip", &["link", "set", &inside, "netns", &namespace])?;
            run("ip", &["link", "set", &outside, "master", BRIDGE])?;
            run("ip", &["link", "set", &outside, "up"])?;
            run(
                "ip",
                &["-n", &namespace, "addr", "add", &address, "dev", &inside],
            )?;
            run("ip", &["-n", &namespace, "link", "set", &inside, "up"])?;
            run("ip", &["-n", &namespace, "link", "set", "lo", "up"])?;
        }
        Ok(())
    }

    fn node_directory(&self, node: NodeNumber) -> PathBuf {
        self.directory.join(format!("node{node}"))
    }

    /// Node `node`'s log (its stderr and stdout, appended across restarts).
    pub(crate) fn log_path(&self, node: NodeNumber) -> PathBuf {
        self.directory.join(format!("node{node}.log"))
    }

    fn write_config(&self, node: NodeNumber) -> Result<(), Error> {
        let directory = self.node_directory(node);
        std::fs::create_dir_all(&directory)
            .map_err(Error::io(format!("create {}", directory.display())))?;
        let peers: String = nodes()
            .filter(|&peer| peer != node)
            .map(|peer| format!("{peer} = \"{}:{RAFT_PORT}\"\n", address(peer)))
            .collect();
        let settings = &self.settings;
        let text = format!(
            "# Generated by kommander-jepsen for node {node}.\n\
             node_id = {node}\n\
             endpoint = \"{address}:{RAFT_PORT}\"\n\
             data_dir = \"{data}\"\n\
             shards = 1\n\
             initial_partitions = 2\n\
             seed = {node}\n\
             \n[peers]\n{peers}\n\
             [kv]\n\
             http_listen = \"{address}:{HTTP_PORT}\"\n\
             write_timeout_ms = {write}\n\
             read_timeout_ms = {read}\n\
             checkpoint_interval_entries = 500\n\
             body_bytes_max = {BODY_BYTES_MAX}\n\
             unsafe_local_reads = {unsafe_reads}\n\
             unsafe_ack_before_commit = {unsafe_ack}\n",
            address = address(node),
            data = directory.join("data").display(),
            write = settings.write_timeout_ms,
            read = settings.read_timeout_ms,
            unsafe_reads = settings.unsafe_local_reads,
            unsafe_ack = settings.unsafe_ack_before_commit,
        );
        let path = self.config_path(node);
        std::fs::write(&path, text).map_err(Error::io(format!("write {}", path.display())))
    }

    fn config_path(&self, node: NodeNumber) -> PathBuf {
        self.directory.join(format!("node{node}.toml"))
    }

    fn spawn(&mut self, node: NodeNumber) -> Result<(), Error> {
        let log_path = self.log_path(node);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(Error::io(format!("open {}", log_path.display())))?;
        let stdout: File = log
            .try_clone()
            .map_err(Error::io(format!("open {}", log_path.display())))?;
        let child = Command::new("ip")
            .arg("netns")
            .arg("exec")
            .arg(namespace(node))
            .arg(&self.settings.binary)
            .arg("--config")
            .arg(self.config_path(node))
            .env(AUTH_SECRET_ENV, &self.auth_secret)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(log)
            .spawn()
            .map_err(|error| Error::Command {
                command: format!("start node {node}"),
                detail: error.to_string(),
            })?;
        self.processes[node - 1] = Some(child);
        Ok(())
    }

    /// Sends `signal` to node `node`'s process (none while it is killed).
    fn signal(&self, node: NodeNumber, signal: Signal) -> Result<(), Error> {
        if let Some(child) = &self.processes[node - 1] {
            // `ip netns exec` execs the store in place: the child's pid is the store's.
            kill_process(Pid::from_child(child), signal).map_err(|error| Error::Command {
                command: format!("kill -{signal:?} node {node}"),
                detail: error.to_string(),
            })?;
        }
        Ok(())
    }

    /// SIGKILLs node `node` and reaps it.
    pub(crate) fn kill(&mut self, node: NodeNumber) -> Result<(), Error> {
        if let Some(mut child) = self.processes[node - 1].take() {
            let _ = child.kill();
            child
                .wait()
                .map_err(Error::io(format!("reap node {node}")))?;
        }
        Ok(())
    }

    /// Starts every node that is not running again (on its data directory), then waits until
    /// each answers: all are started before any is waited for, since a node may need a
    /// quorum of the others to serve (a majority killed comes back together).
    pub(crate) fn restart_stopped(&mut self) -> Result<(), Error> {
        let stopped: Vec<NodeNumber> = nodes()
            .filter(|&node| self.processes[node - 1].is_none())
            .collect();
        for &node in &stopped {
            self.spawn(node)?;
        }
        for node in stopped {
            wait_ready(node)?;
        }
        Ok(())
    }

    /// SIGSTOPs node `node`.
    pub(crate) fn pause(&self, node: NodeNumber) -> Result<(), Error> {
        self.signal(node, Signal::STOP)
    }

    /// SIGCONTs node `node`.
    pub(crate) fn resume(&self, node: NodeNumber) -> Result<(), Error> {
        self.signal(node, Signal::CONT)
    }

    /// Notes the nodes whose process exited by itself (a crash) since the last look; they are
    /// then restarted as killed ones are.
    pub(crate) fn note_crashes(&mut self) {
        for (index, process) in self.processes.iter_mut().enumerate() {
            if let Some(child) = process
                && let Ok(Some(status)) = child.try_wait()
            {
                self.crashes.push((index + 1, status.to_string()));
                *process = None;
            }
        }
    }

    /// The nodes that crashed during the run, with their exit status.
    pub(crate) fn crashes(&self) -> &[(NodeNumber, String)] {
        &self.crashes
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in nodes() {
            let _ = self.resume(node);
            let _ = self.kill(node);
        }
        teardown();
    }
}

/// The host's end of the bridge (the clients' source address).
fn host_address() -> Ipv4Addr {
    let [a, b, c] = SUBNET;
    Ipv4Addr::new(a, b, c, HOST_OCTET)
}

/// Waits until node `node` answers a stale read (its HTTP API serves).
fn wait_ready(node: NodeNumber) -> Result<(), Error> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let answer = http::request(
            http_address(node),
            "GET",
            "/kv/ready?stale=true",
            &[],
            0,
            Duration::from_secs(1),
        );
        if answer.is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Error::Refused(format!(
                "node {node} did not answer within {READY_TIMEOUT:?}; see its log"
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
