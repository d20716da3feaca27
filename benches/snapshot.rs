//! Snapshot transfer benchmark: a snapshot streamed over loopback TCP next to raw loopback
//! bandwidth, and the write throughput of the other partitions while it streams, all measured
//! in ONE run.
//!
//! ```text
//! cargo bench --bench snapshot                         # 1 GiB snapshot, 5 rounds
//! KOMMANDER_BENCH_SNAPSHOT_MIB=256 KOMMANDER_BENCH_ROUNDS=5 cargo bench --bench snapshot
//! KOMMANDER_BENCH_CHUNK_KIB=512 cargo bench --bench snapshot  # snapshot.chunk_bytes (256 KiB)
//! KOMMANDER_BENCH_CAP_MIB=128 cargo bench --bench snapshot    # snapshot.bytes_per_sec_max (none)
//! KOMMANDER_BENCH_WINDOW=8 cargo bench --bench snapshot       # snapshot.chunks_in_flight_max (16)
//! ```
//!
//! Three `Raft` nodes over `TcpTransport` on loopback (fsync on, default `[snapshot]` settings:
//! 256 KiB chunks, 16 in flight, no rate cap). Partition 1's application state is
//! `KOMMANDER_BENCH_SNAPSHOT_MIB` MiB held in memory (exported as `Bytes`); the follower's import
//! discards what it receives, so the figure is the library's path (read, CRC32C and SHA-256,
//! frames, TCP, checks, writes handed to the application, the WAL's boundary record), not an
//! application's disk.
//! `KOMMANDER_BENCH_WRITERS` closed-loop writers (default 64) write 16 B entries to partitions
//! 2.. on their leaders.
//!
//! A transfer: partition 1's messages to and from node 3 are dropped (a filter over node 3's
//! transport and its peers') while partition 1 gets entries and a checkpoint, so that its floor
//! passes node 3's log; the cut heals and partition 1's leader streams the snapshot to node 3.
//! The other partitions and nodes run on as before, so a transfer and the baseline differ by the
//! transfer alone. It is timed from the leader's `export` call to node 3's `SnapshotInstalled`
//! event. Each round (after one
//! unrecorded warm-up round) measures, one after another:
//!
//! 1. raw loopback TCP bandwidth with 2 MiB writes (a plain `TcpStream` pair), writers
//!    paused, with the CPU it costs per byte, and one thread's SHA-256 rate: together the CPU
//!    bound of a transfer whose two ends share this machine (each end hashes every byte once);
//! 2. a transfer with the writers paused (target ≥ 0.5 × raw);
//! 3. the writers' committed writes/s with all three nodes up and no transfer;
//! 4. a transfer with the writers running: their committed writes/s during it (target ≥ 0.8 ×
//!    the rate of 3) and the transfer's own rate under that load.
//!
//! The table compares the medians. Nothing is asserted (results in `docs/benchmarks.md`,
//! "Snapshot transfer").
#![allow(clippy::print_stdout, missing_docs, unreachable_pub)]

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kommander_raft::core::Message;
use kommander_raft::transport::tcp::TcpTransport;
use kommander_raft::{
    LogEntry, NodeId, PartitionId, Raft, RaftEvent, ReplicateOptions, SnapshotConfig,
    SnapshotExport, SnapshotImport, SnapshotPoint, StateMachine, StateTransfer, Transport,
};
use support::{
    KIB, Load, MIB, checkpoint, env_or, join_all, leader, load_average, loopback_listeners,
    loopback_node_config, median, process_cpu, raw_stream, verdict, writer,
};

/// The partition whose snapshot is streamed.
const SNAPSHOT: PartitionId = PartitionId(1);
/// The size of raw loopback's writes (at which it is fastest here).
const RAW_WRITE_BYTES: usize = 2 << 20;
/// Partitions 2..=WRITTEN+1 carry the writers' load.
const WRITTEN: u32 = 8;
/// The node that falls behind on partition 1 and catches up by snapshot.
const BEHIND: NodeId = NodeId(3);

/// A moment of the run: when, the writes committed and the CPU used until then.
#[derive(Clone, Copy)]
struct Mark {
    at: Instant,
    committed: u64,
    cpu: Duration,
}

impl Mark {
    fn now(load: &Load) -> Self {
        Self {
            at: Instant::now(),
            committed: load.committed.load(Ordering::Relaxed),
            cpu: process_cpu(),
        }
    }

    /// Seconds, committed writes/s and cores used from `self` to `end`.
    fn until(self, end: Self) -> (f64, f64, f64) {
        let seconds = end.at.duration_since(self.at).as_secs_f64();
        (
            seconds,
            (end.committed - self.committed) as f64 / seconds,
            (end.cpu.saturating_sub(self.cpu)).as_secs_f64() / seconds,
        )
    }
}

/// The application: holds partition 1's state (the same bytes on every node); its exports
/// mark when the transfer started, its imports discard.
struct App {
    state: Bytes,
    load: Arc<Load>,
    /// When partition 1 was last exported.
    exported: Mutex<Option<Mark>>,
}

impl StateMachine for App {
    fn on_replication_received(&self, _: PartitionId, _: &LogEntry) -> bool {
        true
    }
    fn on_log_restored(&self, _: PartitionId, _: &LogEntry) -> bool {
        true
    }
}

impl StateTransfer for App {
    fn export(
        &self,
        partition: PartitionId,
        _: SnapshotPoint,
    ) -> std::io::Result<Box<dyn SnapshotExport>> {
        if partition != SNAPSHOT {
            return Ok(Box::new(Bytes::new()));
        }
        *self.exported.lock().expect("export mark") = Some(Mark::now(&self.load));
        Ok(Box::new(self.state.clone()))
    }

    fn import(&self, _: PartitionId, _: SnapshotPoint) -> std::io::Result<Box<dyn SnapshotImport>> {
        Ok(Box::new(Discard))
    }
}

struct Discard;

impl SnapshotImport for Discard {
    fn write_chunk(&mut self, _: &[u8]) -> std::io::Result<()> {
        Ok(())
    }
    fn finish(self: Box<Self>) -> std::io::Result<()> {
        Ok(())
    }
}

/// Node 3's transport for partition 1, both ways: while `cut` is set, partition 1's messages
/// to and from node 3 are dropped (the other partitions' go through).
struct Cut {
    inner: Arc<TcpTransport>,
    node: NodeId,
    cut: Arc<AtomicBool>,
}

impl Transport for Cut {
    fn send(&self, to: NodeId, mut messages: Vec<Message>) {
        if self.cut.load(Ordering::Relaxed) && (to == BEHIND || self.node == BEHIND) {
            messages.retain(|m| m.partition != SNAPSHOT);
        }
        self.inner.send(to, messages);
    }
}

struct Node {
    raft: Raft,
    transport: Arc<TcpTransport>,
    app: Arc<App>,
}

struct Cluster {
    nodes: Vec<Node>,
    /// Every node's handle, for the writers.
    rafts: Arc<Vec<Raft>>,
    load: Arc<Load>,
    cut: Arc<AtomicBool>,
    /// Fires (and is replaced) each time node 3 installs partition 1's snapshot.
    installed: tokio::sync::mpsc::Receiver<Mark>,
    state_bytes: u64,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Three nodes over loopback TCP, joined.
    async fn start(state_bytes: usize, snapshot: SnapshotConfig) -> Self {
        let dir = tempfile::tempdir().expect("bench dir");
        let (listeners, addrs) = loopback_listeners(3);
        let load = Arc::new(Load::default());
        let cut = Arc::new(AtomicBool::new(false));
        let state = Bytes::from(vec![0x5a; state_bytes]);
        let (installed_tx, installed) = tokio::sync::mpsc::channel(4);
        let mut nodes = Vec::new();
        for (listener, node) in listeners.into_iter().zip(1..=3u64) {
            let mut config = loopback_node_config(node, &addrs, dir.path());
            config.initial_partitions = WRITTEN + 1;
            config.wal_segment_bytes = 64 << 20;
            config.compaction_retain_entries_max = 4;
            config.snapshot = snapshot;
            let transport =
                TcpTransport::with_listener(&config.tcp_config(), &config.tcp_cluster(), listener)
                    .expect("transport");
            let app = Arc::new(App {
                state: state.clone(),
                load: Arc::clone(&load),
                exported: Mutex::new(None),
            });
            let raft = Raft::builder(config)
                .state_machine(app.clone())
                .state_transfer(app.clone())
                .transport(Arc::new(Cut {
                    inner: Arc::clone(&transport),
                    node: NodeId(node),
                    cut: Arc::clone(&cut),
                }))
                .start()
                .await
                .expect("start");
            transport.serve(raft.inbound()).expect("serve");
            if NodeId(node) == BEHIND {
                let mut events = raft.subscribe();
                let (load, installed) = (Arc::clone(&load), installed_tx.clone());
                tokio::spawn(async move {
                    while let Ok(event) = events.recv().await {
                        if matches!(event, RaftEvent::SnapshotInstalled { partition, .. } if partition == SNAPSHOT)
                        {
                            let _ = installed.send(Mark::now(&load)).await;
                        }
                    }
                });
            }
            nodes.push(Node {
                raft,
                transport,
                app,
            });
        }
        let rafts: Vec<Raft> = nodes.iter().map(|n| n.raft.clone()).collect();
        join_all(&rafts).await;
        Self {
            rafts: Arc::new(rafts),
            nodes,
            load,
            cut,
            installed,
            state_bytes: state_bytes as u64,
            _dir: dir,
        }
    }

    async fn stop(self) {
        for node in self.nodes {
            node.raft.shutdown().await;
            node.transport.shutdown();
        }
    }

    /// Writes `payload` to `p` on its leader, retrying until one accepts it.
    async fn write(&self, p: PartitionId, payload: &Bytes) {
        loop {
            if let Some(raft) = leader(&self.rafts, p) {
                let options = ReplicateOptions::default();
                if raft
                    .replicate_logs(p, "b", payload.clone(), options)
                    .await
                    .is_ok()
                {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Partition 1 is cut off from node 3 while it takes entries and a checkpoint, so that
    /// its floor passes node 3's log; then the cut heals and node 3 catches up by snapshot.
    /// The writers keep writing to the other partitions, on all three nodes, when `loaded`.
    async fn transfer(&mut self, loaded: bool) -> Transfer {
        self.load.pause(!loaded).await;
        self.cut.store(true, Ordering::Relaxed);
        for k in 0..64u32 {
            self.write(SNAPSHOT, &Bytes::from(k.to_le_bytes().to_vec()))
                .await;
        }
        checkpoint(&self.rafts, SNAPSHOT).await;
        for node in &self.nodes {
            *node.app.exported.lock().expect("export mark") = None;
        }
        self.cut.store(false, Ordering::Relaxed);
        let done = self.installed.recv().await.expect("installed");
        let started = self
            .nodes
            .iter()
            .find_map(|n| *n.app.exported.lock().expect("export mark"))
            .expect("a leader exported partition 1");
        let (seconds, writes_per_sec, cores) = started.until(done);
        Transfer {
            bytes_per_sec: self.state_bytes as f64 / seconds,
            seconds,
            writes_per_sec,
            cores,
        }
    }

    /// Committed writes/s and cores used over `duration` with no transfer.
    async fn baseline(&self, duration: Duration) -> (f64, f64) {
        self.load.pause(false).await;
        let start = Mark::now(&self.load);
        tokio::time::sleep(duration).await;
        let (_, writes_per_sec, cores) = start.until(Mark::now(&self.load));
        (writes_per_sec, cores)
    }
}

struct Transfer {
    bytes_per_sec: f64,
    seconds: f64,
    writes_per_sec: f64,
    /// CPU cores the process used meanwhile.
    cores: f64,
}

/// Bytes/s one thread hashes with SHA-256 (over `data`, at most 256 MiB of it).
fn sha256_rate(data: &[u8]) -> f64 {
    use sha2::Digest;
    let data = &data[..data.len().min(256 << 20)];
    let started = Instant::now();
    std::hint::black_box(sha2::Sha256::digest(data));
    data.len() as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let seconds: f64 = env_or("KOMMANDER_BENCH_SECONDS", 2.0);
    let rounds: usize = env_or("KOMMANDER_BENCH_ROUNDS", 5).max(1);
    let state_mib: usize = env_or("KOMMANDER_BENCH_SNAPSHOT_MIB", 1024);
    let writers: u32 = env_or("KOMMANDER_BENCH_WRITERS", 64);
    let cap_mib: u64 = env_or("KOMMANDER_BENCH_CAP_MIB", 0);
    let defaults = SnapshotConfig::default();
    let snapshot = SnapshotConfig {
        chunk_bytes: env_or("KOMMANDER_BENCH_CHUNK_KIB", defaults.chunk_bytes / KIB) * KIB,
        chunks_in_flight_max: env_or("KOMMANDER_BENCH_WINDOW", defaults.chunks_in_flight_max),
        bytes_per_sec_max: cap_mib << 20,
        ..defaults
    };
    let duration = Duration::from_secs_f64(seconds);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "snapshot bench: {state_mib} MiB snapshot, {rounds} rounds (+1 warm-up), {writers} \
         writers on {WRITTEN} partitions, {seconds} s per raw and baseline measurement, rate \
         cap {cap_mib} MiB/s (0: none); load average at start {}",
        load_average()
    );
    runtime.block_on(async {
        let mut cluster = Cluster::start(state_mib << 20, snapshot).await;
        cluster.load.paused.store(true, Ordering::Relaxed);
        let tasks: Vec<_> = (0..writers)
            .map(|w| {
                let p = PartitionId(2 + w % WRITTEN);
                tokio::spawn(writer(Arc::clone(&cluster.rafts), Arc::clone(&cluster.load), p))
            })
            .collect();

        let chunk_bytes = cluster.nodes[0].raft.config().snapshot.chunk_bytes;
        let cores = std::thread::available_parallelism().map_or(1, usize::from) as f64;
        let mut raw = Vec::new();
        let mut bounds = Vec::new();
        let mut quiet = Vec::new();
        let mut baseline = Vec::new();
        let mut loaded = Vec::new();
        let mut loaded_writes = Vec::new();
        let mut write_ratios = Vec::new();
        for round in 0..=rounds {
            cluster.load.pause(true).await;
            let cpu = process_cpu();
            let (bytes, _, elapsed) =
                tokio::task::block_in_place(|| raw_stream(RAW_WRITE_BYTES, duration));
            let raw_cpu_per_byte = (process_cpu() - cpu).as_secs_f64() / bytes as f64;
            let raw_rate = bytes as f64 / elapsed.as_secs_f64();
            let sha_rate = tokio::task::block_in_place(|| sha256_rate(&cluster.nodes[0].app.state));
            // Both ends of a transfer run on this machine's cores: a SHA-256 pass each, and
            // what moving the bytes through loopback TCP costs.
            let bound = cores / (2.0 / sha_rate + raw_cpu_per_byte);
            let q = cluster.transfer(false).await;
            let (base, base_cores) = cluster.baseline(duration).await;
            let l = cluster.transfer(true).await;
            println!(
                "  {}: raw {} KiB writes {:.0} MiB/s ({:.2} core-s/GiB), SHA-256 {:.0} MiB/s, \
                 CPU bound {:.0} MiB/s; transfer {:.0} MiB/s ({:.2} s, {:.2} cores); writes \
                 {:.0}/s without a transfer ({:.2} cores), {:.0}/s during one ({:.2} s, {:.0} \
                 MiB/s, {:.2} cores); load {}",
                if round == 0 { "warm-up".to_owned() } else { format!("round {round}") },
                RAW_WRITE_BYTES / KIB,
                raw_rate / MIB,
                raw_cpu_per_byte * MIB * 1024.0,
                sha_rate / MIB,
                bound / MIB,
                q.bytes_per_sec / MIB,
                q.seconds,
                q.cores,
                base,
                base_cores,
                l.writes_per_sec,
                l.seconds,
                l.bytes_per_sec / MIB,
                l.cores,
                load_average()
            );
            if round > 0 {
                raw.push(raw_rate);
                bounds.push(bound);
                quiet.push(q.bytes_per_sec);
                baseline.push(base);
                loaded.push(l.bytes_per_sec);
                loaded_writes.push(l.writes_per_sec);
                write_ratios.push(l.writes_per_sec / base);
            }
        }
        cluster.load.stop.store(true, Ordering::Relaxed);
        cluster.load.pause(false).await;
        for task in tasks {
            task.await.expect("writer");
        }
        cluster.stop().await;

        let (raw, bound) = (median(&raw), median(&bounds));
        let (quiet, loaded) = (median(&quiet), median(&loaded));
        let (baseline, during) = (median(&baseline), median(&loaded_writes));
        println!("  load average at the end {}", load_average());
        println!();
        println!("| figure | measured | ratio | target | |");
        println!("|---|---|---|---|---|");
        println!(
            "| raw loopback TCP, {} KiB writes | {:.0} MiB/s | – | – | |",
            RAW_WRITE_BYTES / KIB,
            raw / MIB
        );
        println!(
            "| CPU bound of a transfer with both ends on these {cores} cores (a SHA-256 pass each, loopback's CPU per byte) | {:.0} MiB/s | {:.2} × raw | – | |",
            bound / MIB,
            bound / raw
        );
        let ratio = quiet / raw;
        println!(
            "| snapshot transfer, {state_mib} MiB in {} KiB chunks, writers paused | {:.0} MiB/s | {ratio:.2} × raw, {:.2} × the CPU bound | ≥ 0.5 × raw | {} |",
            chunk_bytes / KIB,
            quiet / MIB,
            quiet / bound,
            verdict(ratio >= 0.5)
        );
        println!(
            "| snapshot transfer beside {writers} writers | {:.0} MiB/s | {:.2} × raw | – | |",
            loaded / MIB,
            loaded / raw
        );
        // Each round's transfer against the baseline just before it (the machine's speed drifts
        // from round to round more than within one).
        let ratio = median(&write_ratios);
        println!(
            "| other partitions' committed 16 B writes/s: without a transfer / during one (medians; ratio: the median of each round's) | {baseline:.0} / {during:.0} | {ratio:.2} × | ≥ 0.8 × | {} |",
            verdict(ratio >= 0.8)
        );
    });
}
