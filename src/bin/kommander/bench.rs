//! `kommander bench` and `kommander demo`: a cluster of `--nodes` nodes in this process,
//! connected over loopback TCP (`TcpTransport`, real sockets and handshakes), each node with
//! its own durable WAL (fsync on) under a fresh temporary directory that is removed at exit
//! (also on Ctrl-C). Closed-loop writers (each waits for its previous write's commit) propose
//! on their partition's leader; writers are spread over the partitions round-robin.
//!
//! Latency is measured from the call of `Raft::replicate_logs` to its success (committed on
//! a quorum, durable on it). Only writes completed inside the measured window (after the
//! warm-up) count; refusals (`NodeIsNotLeader` after a leader change, a full queue) are
//! retried on the current leader and counted as `refused`; writes whose outcome is unknown
//! (leadership lost before they committed: `outcome.rs`) are counted as `unknown`, neither
//! written nor refused, and the writer goes on with its next write.
//!
//! With `--batch-entries N` each proposal carries N entries (`Raft::replicate_batch`): every
//! entry counts as a write, and the latency is the proposal's.
//!
//! Each node checkpoints the partitions it leads as `kommander node` does, by the same
//! `--checkpoint-interval-*` options and defaults (`checkpoint.rs`), so a long run keeps its
//! memory and its WALs bounded; the report counts the checkpoints committed and the snapshots
//! leaders sent to followers they found below their compacted log.
//!
//! `demo` is `bench` with the demo's defaults and a progress line per second.
#![allow(clippy::print_stdout)] // the report is the command's output

use std::collections::{BTreeMap, HashMap};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use kommander_raft::transport::tcp::TcpTransport;
use kommander_raft::{NodeConfig, PartitionId, Raft, RaftEvent, ReplicateOptions, Status};
use signal_hook::consts::{SIGINT, SIGTERM};

use crate::applied::AppliedCounter;
use crate::checkpoint::{CheckpointArgs, Checkpointer};
use crate::outcome::outcome_unknown;
use crate::{EXIT_FAILURE, EXIT_USAGE};

/// Exit code after Ctrl-C / SIGTERM (128 + SIGINT, as shells report it).
const EXIT_INTERRUPTED: u8 = 130;
/// How long start-up (joining, first leaders) may take.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// A writer whose last write is still unanswered this long after the end is abandoned.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// The entries' log type.
const LOG_TYPE: &str = "bench";

/// Options of `kommander bench`.
#[derive(Debug, clap::Args)]
pub(crate) struct BenchArgs {
    /// Nodes in the cluster (every partition is replicated on every node).
    #[arg(long, value_name = "N", default_value_t = 3)]
    nodes: u64,
    /// User partitions (each with its own leader; leaders spread over the nodes).
    #[arg(long, value_name = "N", default_value_t = 4)]
    partitions: u32,
    /// Concurrent closed-loop writers, spread over the partitions round-robin.
    #[arg(long, value_name = "N", default_value_t = 2048)]
    writers: usize,
    /// Bytes of each entry's payload.
    #[arg(long, value_name = "BYTES", default_value_t = 16)]
    payload_bytes: usize,
    /// Entries per proposal (`Raft::replicate_batch`; 1: `replicate_logs`). Each entry counts
    /// as one write; the latency is the proposal's.
    #[arg(long, value_name = "N", default_value_t = 1)]
    batch_entries: usize,
    /// Length of the measured window, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    duration_secs: f64,
    /// Writes before the measured window (not counted), in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 1.0)]
    warmup_secs: f64,
    /// Shard threads per node (0: one per core).
    #[arg(long, value_name = "N", default_value_t = 1)]
    shards: usize,
    /// Write a JSON report to this file (keys: nodes, partitions, writers, payload_bytes,
    /// duration_secs, writes, writes_per_sec, latency_us {p50, p99, p999, max}, refused,
    /// unknown, and more).
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// Print a progress line every second.
    #[arg(long)]
    progress: bool,
    /// Directory to create the temporary WAL directory in (default: the system temp dir).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// When each node checkpoints the partitions it leads (as `kommander node`).
    #[command(flatten)]
    checkpoints: CheckpointArgs,
}

/// Options of `kommander demo`.
#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {
    /// Length of the measured window, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    duration_secs: f64,
    /// Concurrent closed-loop writers (many: each waits for its write's commit, and one
    /// fsync commits the writes of all of them that arrived meanwhile).
    #[arg(long, value_name = "N", default_value_t = 2048)]
    writers: usize,
    /// User partitions.
    #[arg(long, value_name = "N", default_value_t = 4)]
    partitions: u32,
    /// Directory to create the temporary WAL directory in (default: the system temp dir).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// When each node checkpoints the partitions it leads (as `kommander node`).
    #[command(flatten)]
    checkpoints: CheckpointArgs,
}

/// What to run.
#[derive(Clone, Debug)]
struct Workload {
    nodes: u64,
    partitions: u32,
    writers: usize,
    payload_bytes: usize,
    batch_entries: usize,
    duration: Duration,
    warmup: Duration,
    shards: usize,
    progress: bool,
    dir: Option<PathBuf>,
    checkpoints: CheckpointArgs,
}

impl Workload {
    fn from_args(args: &BenchArgs) -> Result<Self, String> {
        Self {
            nodes: args.nodes,
            partitions: args.partitions,
            writers: args.writers,
            payload_bytes: args.payload_bytes,
            batch_entries: args.batch_entries,
            duration: seconds("--duration-secs", args.duration_secs, false)?,
            warmup: seconds("--warmup-secs", args.warmup_secs, true)?,
            shards: args.shards,
            progress: args.progress,
            dir: args.dir.clone(),
            checkpoints: args.checkpoints,
        }
        .validated()
    }

    fn demo(args: &DemoArgs) -> Result<Self, String> {
        Self {
            nodes: 3,
            partitions: args.partitions,
            writers: args.writers,
            payload_bytes: 16,
            batch_entries: 1,
            duration: seconds("--duration-secs", args.duration_secs, false)?,
            warmup: Duration::from_millis(500),
            shards: 1,
            progress: true,
            dir: args.dir.clone(),
            checkpoints: args.checkpoints,
        }
        .validated()
    }

    fn validated(self) -> Result<Self, String> {
        if !(1..=16).contains(&self.nodes) {
            return Err("--nodes must be between 1 and 16".to_owned());
        }
        if self.partitions == 0 {
            return Err("--partitions must be positive".to_owned());
        }
        if self.writers == 0 {
            return Err("--writers must be positive".to_owned());
        }
        if self.batch_entries == 0 {
            return Err("--batch-entries must be positive".to_owned());
        }
        Ok(self)
    }
}

fn seconds(option: &str, value: f64, zero_ok: bool) -> Result<Duration, String> {
    let valid = value.is_finite() && value <= 86_400.0 && (value > 0.0 || zero_ok && value == 0.0);
    if valid {
        Ok(Duration::from_secs_f64(value))
    } else {
        Err(format!(
            "{option} must be {} and at most 86400",
            if zero_ok { "0 or more" } else { "positive" }
        ))
    }
}

/// Runs `kommander bench`.
pub(crate) fn run_bench(args: &BenchArgs) -> ExitCode {
    match Workload::from_args(args) {
        Ok(workload) => execute(&workload, args.json.as_ref()),
        Err(message) => {
            eprintln!("kommander bench: {message}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// Runs `kommander demo`.
pub(crate) fn run_demo(args: &DemoArgs) -> ExitCode {
    match Workload::demo(args) {
        Ok(workload) => execute(&workload, None),
        Err(message) => {
            eprintln!("kommander demo: {message}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn execute(workload: &Workload, json: Option<&PathBuf>) -> ExitCode {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [SIGINT, SIGTERM] {
        // A second signal while the first is being handled exits at once.
        let installed = signal_hook::flag::register_conditional_shutdown(
            signal,
            i32::from(EXIT_INTERRUPTED),
            Arc::clone(&stop),
        )
        .and_then(|_| signal_hook::flag::register(signal, Arc::clone(&stop)));
        if let Err(error) = installed {
            eprintln!("kommander: cannot install signal handlers: {error}");
            return ExitCode::from(EXIT_FAILURE);
        }
    }
    let outcome = match run(workload, &stop) {
        Ok(outcome) => outcome,
        Err(message) => {
            eprintln!("kommander: {message}");
            return ExitCode::from(if stop.load(Ordering::Relaxed) {
                EXIT_INTERRUPTED
            } else {
                EXIT_FAILURE
            });
        }
    };
    outcome.print();
    if let Some(path) = json {
        let text = outcome.json(workload).to_string();
        if let Err(error) = std::fs::write(path, text + "\n") {
            eprintln!("kommander: cannot write {}: {error}", path.display());
            return ExitCode::from(EXIT_FAILURE);
        }
        println!("JSON report written to {}", path.display());
    }
    if stop.load(Ordering::Relaxed) {
        println!("interrupted: the numbers cover the time before the signal");
        return ExitCode::from(EXIT_INTERRUPTED);
    }
    ExitCode::SUCCESS
}

/// One node of the in-process cluster.
struct BenchNode {
    raft: Raft,
    transport: Arc<TcpTransport>,
    app: Arc<AppliedCounter>,
}

/// The cluster and its directory (removed on drop, after the nodes stopped).
struct Cluster {
    nodes: Vec<BenchNode>,
    dir: tempfile::TempDir,
}

async fn start_cluster(workload: &Workload) -> Result<Cluster, String> {
    let base = workload.dir.clone().unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::Builder::new()
        .prefix("kommander-bench-")
        .tempdir_in(&base)
        .map_err(|e| {
            format!(
                "cannot create a temporary directory in {}: {e}",
                base.display()
            )
        })?;
    let listeners = (0..workload.nodes)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("cannot bind a loopback port: {e}"))?;
    let addrs = listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.to_string()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("loopback port: {e}"))?;
    let mut nodes = Vec::new();
    for (i, listener) in listeners.into_iter().enumerate() {
        let node = i as u64 + 1;
        let mut config = NodeConfig::new(node, dir.path().join(format!("node-{node}")));
        config.cluster_name = "kommander-bench".to_owned();
        config.endpoint = addrs[i].clone();
        config.peers = (1..=workload.nodes)
            .filter(|&n| n != node)
            .map(|n| (n, addrs[n as usize - 1].clone()))
            .collect::<BTreeMap<_, _>>();
        config.shards = workload.shards;
        config.initial_partitions = workload.partitions;
        config.tick_interval_ms = 10;
        config.election_timeout_ticks_min = 20;
        config.election_timeout_ticks_max = 40;
        config.heartbeat_interval_ticks = 5;
        config.seed = node;
        let transport =
            TcpTransport::with_listener(&config.tcp_config(), &config.tcp_cluster(), listener)
                .map_err(|e| format!("node {node}: transport: {e}"))?;
        let app = Arc::new(AppliedCounter::new(workload.partitions + 1));
        let raft = Raft::builder(config)
            .state_machine(app.clone())
            .state_transfer(app.clone())
            .state_transfer(app.clone())
            .transport(transport.clone())
            .start()
            .await
            .map_err(|e| format!("node {node}: {e}"))?;
        transport
            .serve(raft.inbound())
            .map_err(|e| format!("node {node}: serving peers: {e}"))?;
        nodes.push(BenchNode {
            raft,
            transport,
            app,
        });
    }
    Ok(Cluster { nodes, dir })
}

impl Cluster {
    /// Shuts every node down (appended entries made durable), stops the transports and
    /// removes the directory.
    async fn stop(self) {
        for node in &self.nodes {
            node.raft.shutdown().await;
        }
        for node in &self.nodes {
            node.transport.shutdown();
        }
        drop(self.nodes);
        if let Err(error) = self.dir.close() {
            eprintln!("kommander: cannot remove the temporary directory: {error}");
        }
    }

    /// The node index leading `partition`, from the nodes' published views.
    fn leader_of(&self, partition: PartitionId) -> Option<usize> {
        self.nodes
            .iter()
            .position(|n| n.raft.am_i_leader_quick(partition))
    }
}

/// Resolves when `stop` is set (polled: it is set from a signal handler).
async fn stopped(stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Joins every node and waits for a leader on every partition.
async fn wait_ready(cluster: &Cluster, partitions: u32) -> Result<(), String> {
    let joins: Vec<_> = cluster
        .nodes
        .iter()
        .map(|n| tokio::spawn(n.raft.join_cluster(Some(START_TIMEOUT))))
        .collect();
    for (i, join) in joins.into_iter().enumerate() {
        join.await
            .map_err(|e| format!("node {}: join task: {e}", i + 1))?
            .map_err(|e| format!("node {}: {e}", i + 1))?;
    }
    let deadline = Instant::now() + START_TIMEOUT;
    for p in 1..=partitions {
        while cluster.leader_of(PartitionId(p)).is_none() {
            if Instant::now() > deadline {
                return Err(format!(
                    "no leader for partition {p} within {START_TIMEOUT:?}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    Ok(())
}

/// What the writers measured.
struct Recorded {
    writes: u64,
    /// Refused writes (nothing written), by status.
    refused: HashMap<Status, u64>,
    /// Writes whose outcome is unknown (they may have committed), by status.
    unknown: HashMap<Status, u64>,
    latency: Histogram<u64>,
    /// Since the last progress line.
    interval_writes: u64,
    interval_latency: Histogram<u64>,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("1 us .. 1 h at 3 digits is valid")
}

/// The result of a run.
struct BenchOutcome {
    nodes: u64,
    partitions: u32,
    writers: usize,
    payload_bytes: usize,
    batch_entries: usize,
    shards: usize,
    measured: Duration,
    writes: u64,
    refused: HashMap<Status, u64>,
    unknown: HashMap<Status, u64>,
    latency: Histogram<u64>,
    /// Checkpoints committed over the whole run (warm-up included), all nodes.
    checkpoints: u64,
    /// The policy, described.
    checkpoint_policy: String,
    /// Snapshots sent to followers found below their leader's compacted log.
    snapshots_sent: u64,
}

/// The total of `counts`.
fn total(counts: &HashMap<Status, u64>) -> u64 {
    counts.values().sum()
}

/// `Status count` of `counts`, most frequent first.
fn by_status(counts: &HashMap<Status, u64>) -> String {
    let mut counts: Vec<(String, u64)> = counts
        .iter()
        .map(|(status, &count)| (format!("{status:?}"), count))
        .collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    counts
        .iter()
        .map(|(status, count)| format!("{status} {count}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl BenchOutcome {
    fn writes_per_sec(&self) -> f64 {
        self.writes as f64 / self.measured.as_secs_f64().max(1e-9)
    }

    fn quantile(&self, q: f64) -> u64 {
        if self.latency.is_empty() {
            0
        } else {
            self.latency.value_at_quantile(q)
        }
    }

    fn print(&self) {
        println!(
            "committed {} writes in {:.2} s: {:.0} writes/s",
            self.writes,
            self.measured.as_secs_f64(),
            self.writes_per_sec()
        );
        println!(
            "latency us: p50 {}  p99 {}  p99.9 {}  max {}",
            self.quantile(0.5),
            self.quantile(0.99),
            self.quantile(0.999),
            self.latency.max(),
        );
        if !self.refused.is_empty() {
            println!(
                "refused and retried: {} ({})",
                total(&self.refused),
                by_status(&self.refused)
            );
        }
        if !self.unknown.is_empty() {
            println!(
                "outcome unknown (may have committed; not counted as writes): {} ({})",
                total(&self.unknown),
                by_status(&self.unknown)
            );
        }
        println!(
            "checkpoints committed: {} (policy: {}); snapshots sent to followers below a compacted log: {}",
            self.checkpoints, self.checkpoint_policy, self.snapshots_sent
        );
    }

    fn json(&self, workload: &Workload) -> serde_json::Value {
        serde_json::json!({
            "nodes": self.nodes,
            "partitions": self.partitions,
            "writers": self.writers,
            "payload_bytes": self.payload_bytes,
            "batch_entries": self.batch_entries,
            "duration_secs": self.measured.as_secs_f64(),
            "writes": self.writes,
            "writes_per_sec": self.writes_per_sec(),
            "latency_us": {
                "p50": self.quantile(0.5) as f64,
                "p99": self.quantile(0.99) as f64,
                "p999": self.quantile(0.999) as f64,
                "max": self.latency.max() as f64,
                "mean": self.latency.mean(),
            },
            "refused": total(&self.refused),
            "unknown": total(&self.unknown),
            "shards": self.shards,
            "checkpoints": self.checkpoints,
            "snapshots_sent": self.snapshots_sent,
            "warmup_secs": workload.warmup.as_secs_f64(),
            "transport": "tcp-loopback",
        })
    }
}

fn run(workload: &Workload, stop: &Arc<AtomicBool>) -> Result<BenchOutcome, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| format!("cannot start the tokio runtime: {e}"))?;
    let cluster = runtime.block_on(start_cluster(workload))?;
    println!(
        "{} nodes on loopback TCP, {} shard(s) each, {} partitions, {} writers, {} B payloads{}, \
         WAL (fsync on) under {}",
        workload.nodes,
        workload.shards,
        workload.partitions,
        workload.writers,
        workload.payload_bytes,
        if workload.batch_entries > 1 {
            format!(" in batches of {}", workload.batch_entries)
        } else {
            String::new()
        },
        cluster.dir.path().display()
    );
    runtime.block_on(async {
        let ready = tokio::select! {
            ready = wait_ready(&cluster, workload.partitions) => ready,
            () = stopped(stop) => Err("interrupted while starting".to_owned()),
        };
        let result = match ready {
            Ok(()) => Ok(drive(&cluster, workload, stop).await),
            Err(message) => Err(message),
        };
        cluster.stop().await;
        result
    })
}

/// Runs the writers (and the progress line) for the warm-up and the measured window.
async fn drive(cluster: &Cluster, workload: &Workload, stop: &Arc<AtomicBool>) -> BenchOutcome {
    let recorded = Arc::new(Mutex::new(Recorded {
        writes: 0,
        refused: HashMap::new(),
        unknown: HashMap::new(),
        latency: histogram(),
        interval_writes: 0,
        interval_latency: histogram(),
    }));
    let rafts: Arc<Vec<Raft>> = Arc::new(cluster.nodes.iter().map(|n| n.raft.clone()).collect());
    let payload = Bytes::from(vec![0x5a; workload.payload_bytes]);
    let checkpointers: Vec<_> = cluster
        .nodes
        .iter()
        .map(|node| {
            let checkpointer = Checkpointer::new(workload.checkpoints, workload.partitions);
            let committed = checkpointer.committed();
            let task = tokio::spawn(checkpointer.run(node.raft.clone(), Arc::clone(&node.app)));
            (task, committed)
        })
        .collect();
    let snapshots_sent = Arc::new(AtomicU64::new(0));
    let watchers: Vec<_> = cluster
        .nodes
        .iter()
        .map(|node| {
            let events = node.raft.subscribe();
            tokio::spawn(count_snapshots_sent(events, Arc::clone(&snapshots_sent)))
        })
        .collect();
    let started = Instant::now();
    let measure_from = started + workload.warmup;
    let measure_until = measure_from + workload.duration;
    let mut tasks = Vec::with_capacity(workload.writers);
    for w in 0..workload.writers {
        let partition = PartitionId(1 + (w as u32 % workload.partitions));
        let writer = Writer {
            rafts: Arc::clone(&rafts),
            partition,
            payload: payload.clone(),
            batch_entries: workload.batch_entries,
            recorded: Arc::clone(&recorded),
            stop: Arc::clone(stop),
            measure_from,
            measure_until,
        };
        tasks.push(tokio::spawn(writer.run()));
    }
    if workload.progress {
        let rafts: Vec<Raft> = cluster.nodes.iter().map(|n| n.raft.clone()).collect();
        let window = (measure_from, measure_until);
        progress(&recorded, &rafts, workload.partitions, stop, window).await;
    }
    // No per-write deadline (it would cost a timer per write); a write that is still
    // unanswered this long after the window is abandoned with its writer.
    let mut abandoned = 0;
    let end = measure_until.max(Instant::now()) + WRITE_TIMEOUT;
    for task in tasks {
        let abort = task.abort_handle();
        if tokio::time::timeout_at(end.into(), task).await.is_err() {
            abort.abort();
            abandoned += 1;
        }
    }
    if abandoned > 0 {
        eprintln!(
            "kommander: {abandoned} writers were still waiting for an answer {WRITE_TIMEOUT:?} \
             after the end and were abandoned"
        );
    }
    let ended = Instant::now().min(measure_until);
    let mut checkpoints = 0;
    for (task, committed) in checkpointers {
        task.abort();
        checkpoints += committed.load(Ordering::Relaxed);
    }
    for watcher in watchers {
        watcher.abort();
    }
    let recorded = take(&recorded);
    BenchOutcome {
        nodes: workload.nodes,
        partitions: workload.partitions,
        writers: workload.writers,
        payload_bytes: workload.payload_bytes,
        batch_entries: workload.batch_entries,
        shards: workload.shards,
        measured: ended.saturating_duration_since(measure_from),
        writes: recorded.writes,
        refused: recorded.refused,
        unknown: recorded.unknown,
        latency: recorded.latency,
        checkpoints,
        checkpoint_policy: workload.checkpoints.describe(),
        snapshots_sent: snapshots_sent.load(Ordering::Relaxed),
    }
}

/// Counts the snapshots one node sent until the task is aborted.
async fn count_snapshots_sent(
    mut events: tokio::sync::broadcast::Receiver<RaftEvent>,
    count: Arc<AtomicU64>,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        match events.recv().await {
            Ok(RaftEvent::SnapshotSent { .. }) => {
                count.fetch_add(1, Ordering::Relaxed);
            }
            Ok(_) | Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => return,
        }
    }
}

fn take(shared: &Mutex<Recorded>) -> Recorded {
    let mut guard = shared.lock().unwrap_or_else(PoisonError::into_inner);
    Recorded {
        writes: guard.writes,
        refused: std::mem::take(&mut guard.refused),
        unknown: std::mem::take(&mut guard.unknown),
        latency: std::mem::replace(&mut guard.latency, histogram()),
        interval_writes: 0,
        interval_latency: histogram(),
    }
}

/// Prints one line per second of the measured window: writes/s in that second, its p50, and
/// the entries the nodes hold in memory (what checkpoints bound).
async fn progress(
    recorded: &Mutex<Recorded>,
    rafts: &[Raft],
    partitions: u32,
    stop: &AtomicBool,
    (measure_from, measure_until): (Instant, Instant),
) {
    tokio::time::sleep_until(measure_from.into()).await;
    {
        let mut r = recorded.lock().unwrap_or_else(PoisonError::into_inner);
        r.interval_writes = 0;
        r.interval_latency.reset();
    }
    let mut last = Instant::now();
    let mut ticker = tokio::time::interval_at(
        (last + Duration::from_secs(1)).into(),
        Duration::from_secs(1),
    );
    while !stop.load(Ordering::Relaxed) && Instant::now() < measure_until {
        tokio::select! {
            _ = ticker.tick() => {}
            () = tokio::time::sleep_until(measure_until.into()) => break,
            () = stopped(stop) => break,
        }
        let now = Instant::now();
        let (writes, p50) = {
            let mut r = recorded.lock().unwrap_or_else(PoisonError::into_inner);
            let p50 = if r.interval_latency.is_empty() {
                0
            } else {
                r.interval_latency.value_at_quantile(0.5)
            };
            let writes = r.interval_writes;
            r.interval_writes = 0;
            r.interval_latency.reset();
            (writes, p50)
        };
        let per_sec = writes as f64 / now.duration_since(last).as_secs_f64().max(1e-9);
        last = now;
        println!(
            "{:>5.1} s  {:>10.0} writes/s  p50 {:>6} us  log in memory {:>9} entries",
            now.duration_since(measure_from).as_secs_f64(),
            per_sec,
            p50,
            entries_in_memory(rafts, partitions).await
        );
    }
}

/// Entries above the in-memory floor (`last_index - floor`), summed over every node and user
/// partition (a partition that does not answer counts 0).
async fn entries_in_memory(rafts: &[Raft], partitions: u32) -> u64 {
    let mut total = 0;
    for raft in rafts {
        for p in 1..=partitions {
            if let Ok(status) = raft.partition_status(PartitionId(p)).await {
                total += status.last_index.get().saturating_sub(status.floor.get());
            }
        }
    }
    total
}

/// One closed-loop writer on one partition.
struct Writer {
    rafts: Arc<Vec<Raft>>,
    partition: PartitionId,
    payload: Bytes,
    /// Entries per proposal.
    batch_entries: usize,
    recorded: Arc<Mutex<Recorded>>,
    stop: Arc<AtomicBool>,
    measure_from: Instant,
    measure_until: Instant,
}

impl Writer {
    fn leader(&self) -> Option<usize> {
        self.rafts
            .iter()
            .position(|r| r.am_i_leader_quick(self.partition))
    }

    async fn run(self) {
        let options = ReplicateOptions::default();
        let mut leader = self.leader().unwrap_or(0);
        // One clock read per write: a write begins when the one before it ended (the
        // bookkeeping between them, a histogram record, counts in its latency). Three reads
        // per write were 2 % of the bench's CPU.
        let mut begin = Instant::now();
        while !self.stop.load(Ordering::Relaxed) && begin < self.measure_until {
            let raft = &self.rafts[leader];
            let written = if self.batch_entries == 1 {
                raft.replicate_logs(self.partition, LOG_TYPE, self.payload.clone(), options)
                    .await
            } else {
                let payloads = vec![self.payload.clone(); self.batch_entries];
                raft.replicate_batch(self.partition, LOG_TYPE, payloads, options)
                    .await
            };
            let end = Instant::now();
            let measured = end >= self.measure_from && end < self.measure_until;
            let Err(error) = written else {
                if measured {
                    let micros = u64::try_from(end.duration_since(begin).as_micros())
                        .unwrap_or(u64::MAX)
                        .max(1);
                    let mut r = self.recorded.lock().unwrap_or_else(PoisonError::into_inner);
                    r.writes += self.batch_entries as u64;
                    r.interval_writes += self.batch_entries as u64;
                    // Values beyond the histogram's bound are clamped to it.
                    r.latency.saturating_record(micros);
                    r.interval_latency.saturating_record(micros);
                }
                begin = end;
                continue;
            };
            if measured {
                let mut r = self.recorded.lock().unwrap_or_else(PoisonError::into_inner);
                let counts = if outcome_unknown(&error) {
                    &mut r.unknown
                } else {
                    &mut r.refused
                };
                *counts.entry(error.status()).or_insert(0) += 1;
            }
            // Leadership moved or the leader's queue is full: find the leader, back off.
            leader = self.leader().unwrap_or((leader + 1) % self.rafts.len());
            tokio::time::sleep(Duration::from_millis(1)).await;
            begin = Instant::now();
        }
    }
}
