//! Split benchmark (issue 13): the time to split a partition holding `KOMMANDER_BENCH_SPLIT_MIB`
//! MiB of application state next to the raw cost of copying the bytes it moves, and the other
//! partitions' write throughput during a split, all measured in ONE run.
//!
//! ```text
//! cargo bench --bench split                                # 1 GiB per source, 5 rounds
//! KOMMANDER_BENCH_SPLIT_MIB=256 KOMMANDER_BENCH_ROUNDS=3 cargo bench --bench split
//! KOMMANDER_BENCH_CHUNK_KIB=512 cargo bench --bench split  # snapshot.chunk_bytes (256 KiB)
//! KOMMANDER_BENCH_WINDOW=8 cargo bench --bench split       # snapshot.chunks_in_flight_max (16)
//! KOMMANDER_BENCH_WRITERS=256 cargo bench --bench split    # closed-loop writers (64)
//! KOMMANDER_BENCH_DIR=/mnt/nvme/x cargo bench --bench split  # WAL and raw files' device
//! ```
//!
//! Three `Raft` nodes in one process over `TcpTransport` on loopback, one shard each, fsync on,
//! the default `[snapshot]` settings (256 KiB chunks, at most 16 in flight), the node settings of
//! `benches/snapshot.rs` (10 ms ticks). Every split of a round has its own source partition
//! (a split shrinks its source for good), so the run opens `2 × (rounds + 1)` source partitions
//! and 8 more for the writers.
//!
//! The application is a key → value store held in memory. Each source partition holds
//! `KOMMANDER_BENCH_SPLIT_MIB` MiB of 1 KiB values under keys `k<n>`, chosen so that their
//! routing hashes fall in the source's range, spread over it; the split cuts at the range's
//! midpoint (Kommander's default), so it moves about half. The state is filled directly,
//! identically on every node, before the nodes start, NOT through the log: loading a GiB per
//! source through the log would take longer than the splits themselves, times the number of
//! sources, and is the cluster bench's subject, not this one's. The three nodes share one
//! immutable copy of the source state's bytes (as a copy-on-write store would share them
//! between readers; each node's export reads and encodes them itself), so the machine holds
//! the state once rather than three times. After phase 2 the source's moved keys are fenced by
//! the map (the source no longer owns their hashes), not deleted from that shared base.
//!
//! `StateTransfer::export_range` streams the source's keys in the moved range, in hash order,
//! as records (`u16` key length, `u32` value length, key, value) cut into chunks of whatever
//! size the library asks for (a record may span chunks); `import_range_begin` starts an empty
//! store for the target, `import_range_chunk` copies each chunk once and indexes its records
//! in a `HashMap` (the values are slices of that copy), `import_range_end` marks it complete.
//!
//! Each round (after one unrecorded warm-up round) measures, one after another:
//!
//! 1. the raw limit of moving the bytes the split moves, the way the split must move them,
//!    writers paused: (a) the WAL's side, three threads at once (the target's three replicas
//!    on this one disk) each writing those bytes in `snapshot.chunk_bytes` `pwrite`s, each
//!    followed by `fdatasync`, into a zero-filled file, as every replica's log must make every
//!    import chunk durable; (b) the network's side, two loopback TCP streams at once (the
//!    target's leader sends every chunk to both followers) each carrying those bytes in
//!    chunk-size writes. The split needs both, so the slower is the bound it is compared with
//!    (the library's WAL may put several chunks under one `fdatasync`, and overlaps the disk
//!    with the network, so the bound is the cost of the plain way, not a ceiling);
//! 2. a split with the writers paused: from the `split_partition` call on partition 0's leader
//!    until every node's map in force shows phase 2 (source and target `Active`, the target's
//!    import done) and every node's application holds every moved key in the target; its MiB/s
//!    (moved bytes over that time) and its ratio to the bound, and where the time went: phase
//!    1 answered; the first import begin on any node (the target's first leader, elected
//!    after a full election timeout, exports once its node's source replica applied the
//!    freeze); the last node's import end (the rest, to phase 2 on every node, is partition
//!    0's leader noticing the end on a tick, and phase 2's commit and application);
//! 3. the writers' committed writes/s with no split (`KOMMANDER_BENCH_WRITERS` closed-loop
//!    writers of 16 B entries to the 8 writers' partitions, on their leaders, on all nodes);
//! 4. a split with the writers running: their committed writes/s during it (ratio to 3) and
//!    the split's own time and MiB/s under that load.
//!
//! After each split its target is removed (its WAL records deleted), its imported stores are
//! dropped and the writers' partitions take a checkpoint (their entries share the WAL's
//! segments with the import's), so memory, and disk as far as the WAL reclaims, hold one
//! split's worth. The table compares the medians and prints the load average; nothing is
//! asserted (results in `docs/benchmarks.md`, "Split").
#![allow(clippy::print_stdout, missing_docs, unreachable_pub)]

mod support;

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kommander_raft::node::partition_map::key_hash;
use kommander_raft::transport::tcp::TcpTransport;
use kommander_raft::{
    LogEntry, LogIndex, PartitionId, PartitionLifecycleError, PartitionMap, Raft, RangeState,
    RangeTransfer, SnapshotConfig, SnapshotExport, SnapshotImport, SnapshotPoint, SplitPlan,
    StateMachine, StateTransfer,
};
use support::{
    KIB, Load, MIB, checkpoint, env_or, join_all, leader, load_average, loopback_listeners,
    loopback_node_config, median, raw_copy, raw_durable_copy, writer,
};

/// The size of every value.
const VALUE_BYTES: usize = 1024;
/// A record's header: the key's length (`u16`) and the value's (`u32`).
const RECORD_HEADER_BYTES: usize = 6;
/// The writers' partitions, after the sources.
const WRITTEN: u32 = 8;
/// Partition 0, which carries the map and takes the split.
const SYSTEM: PartitionId = PartitionId(0);
/// How long a split may take before the bench gives up on it.
const SPLIT_PATIENCE: Duration = Duration::from_secs(600);
/// Every node's replica of the target applies every import entry; the target's leader sends
/// each chunk to this many followers.
const REPLICAS: usize = 3;

/// One key of a source: `k<n>`, whose routing hash is `hash`; its value is the `index`-th
/// slice of the shared values.
#[derive(Clone, Copy)]
struct Record {
    hash: i32,
    n: u64,
}

/// A source partition's state: its records sorted by hash, and the values they share.
struct Source {
    records: Vec<Record>,
    values: Arc<Vec<u8>>,
}

impl Source {
    /// The index range of the records whose hash `plan` moves.
    fn moved(&self, start: i32, end: i32) -> std::ops::Range<usize> {
        self.records.partition_point(|r| r.hash < start)
            ..self.records.partition_point(|r| r.hash <= end)
    }

    /// Record `i`'s header and key, and its value.
    fn encode_head(&self, i: usize, head: &mut Vec<u8>) -> &[u8] {
        use std::io::Write;
        head.clear();
        head.extend_from_slice(&[0; RECORD_HEADER_BYTES]);
        write!(head, "k{}", self.records[i].n).expect("a key into a Vec");
        let key_len = (head.len() - RECORD_HEADER_BYTES) as u16;
        head[..2].copy_from_slice(&key_len.to_le_bytes());
        head[2..RECORD_HEADER_BYTES].copy_from_slice(&(VALUE_BYTES as u32).to_le_bytes());
        &self.values[i * VALUE_BYTES..(i + 1) * VALUE_BYTES]
    }

    /// The encoded size of records `range`.
    fn encoded_bytes(&self, range: std::ops::Range<usize>) -> u64 {
        let mut head = Vec::new();
        range
            .map(|i| {
                let value = self.encode_head(i, &mut head).len();
                (head.len() + value) as u64
            })
            .sum()
    }
}

/// The export of a source's records `next..end`, as one byte stream cut where asked.
struct RangeExport {
    source: Arc<Source>,
    next: usize,
    end: usize,
    /// How far into record `next` the stream is.
    offset: usize,
    head: Vec<u8>,
}

impl SnapshotExport for RangeExport {
    fn read_chunk(&mut self, max: usize) -> io::Result<Option<Bytes>> {
        if self.next == self.end {
            return Ok(None);
        }
        let max = max.max(1);
        let mut chunk = Vec::with_capacity(max);
        while chunk.len() < max && self.next < self.end {
            let value = self.source.encode_head(self.next, &mut self.head);
            let head = &self.head;
            let total = head.len() + value.len();
            let take = (max - chunk.len()).min(total - self.offset);
            let (from, to) = (self.offset, self.offset + take);
            if from < head.len() {
                chunk.extend_from_slice(&head[from..to.min(head.len())]);
            }
            if to > head.len() {
                chunk.extend_from_slice(&value[from.max(head.len()) - head.len()..to - head.len()]);
            }
            self.offset = to;
            if self.offset == total {
                self.next += 1;
                self.offset = 0;
            }
        }
        Ok(Some(Bytes::from(chunk)))
    }
}

/// A target's store, as its import fills it.
#[derive(Default)]
struct Imported {
    store: HashMap<Bytes, Bytes>,
    /// The bytes of a record the last chunk ended inside.
    partial: Vec<u8>,
    /// When the first begin came.
    begun: Option<Instant>,
    /// When the end came.
    ended: Option<Instant>,
}

impl Imported {
    fn take(&mut self, data: &[u8]) -> io::Result<()> {
        let mut buffer = Vec::with_capacity(self.partial.len() + data.len());
        buffer.extend_from_slice(&self.partial);
        buffer.extend_from_slice(data);
        let buffer = Bytes::from(buffer);
        let mut at = 0;
        while buffer.len() - at >= RECORD_HEADER_BYTES {
            let key_len = usize::from(u16::from_le_bytes([buffer[at], buffer[at + 1]]));
            let value_len = u32::from_le_bytes(
                buffer[at + 2..at + RECORD_HEADER_BYTES]
                    .try_into()
                    .expect("four bytes"),
            ) as usize;
            if value_len > VALUE_BYTES {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("a record's value of {value_len} bytes"),
                ));
            }
            let key_at = at + RECORD_HEADER_BYTES;
            let value_at = key_at + key_len;
            if buffer.len() < value_at + value_len {
                break;
            }
            self.store.insert(
                buffer.slice(key_at..value_at),
                buffer.slice(value_at..value_at + value_len),
            );
            at = value_at + value_len;
        }
        self.partial = buffer[at..].to_vec();
        Ok(())
    }
}

/// A node's application: the sources' state (shared, immutable) and the targets' imports.
struct App {
    sources: Arc<BTreeMap<PartitionId, Arc<Source>>>,
    imports: Mutex<HashMap<PartitionId, Imported>>,
}

impl App {
    fn imports(&self) -> std::sync::MutexGuard<'_, HashMap<PartitionId, Imported>> {
        self.imports.lock().expect("imports")
    }
}

impl StateMachine for App {
    fn on_replication_received(&self, _: PartitionId, _: &LogEntry) -> bool {
        true
    }
    fn on_log_restored(&self, _: PartitionId, _: &LogEntry) -> bool {
        true
    }
}

/// Why a snapshot of `partition` is refused: this application has none (`supports` says so).
fn no_snapshots(partition: PartitionId) -> io::Error {
    io::Error::other(format!("no snapshots of {partition} here"))
}

impl StateTransfer for App {
    fn supports(&self, _: PartitionId) -> bool {
        false
    }

    fn export(&self, p: PartitionId, _: SnapshotPoint) -> io::Result<Box<dyn SnapshotExport>> {
        Err(no_snapshots(p))
    }

    fn import(&self, p: PartitionId, _: SnapshotPoint) -> io::Result<Box<dyn SnapshotImport>> {
        Err(no_snapshots(p))
    }

    fn export_range(&self, plan: &RangeTransfer) -> io::Result<Option<Box<dyn SnapshotExport>>> {
        let source = self
            .sources
            .get(&plan.source)
            .ok_or_else(|| io::Error::other(format!("{} holds no state here", plan.source)))?;
        let moved = source.moved(plan.start, plan.end);
        Ok(Some(Box::new(RangeExport {
            source: Arc::clone(source),
            next: moved.start,
            end: moved.end,
            offset: 0,
            head: Vec::new(),
        })))
    }

    fn import_range_begin(
        &self,
        target: PartitionId,
        _: LogIndex,
        _: &RangeTransfer,
    ) -> io::Result<()> {
        let mut imports = self.imports();
        let begun = imports.get(&target).and_then(|i| i.begun);
        imports.insert(
            target,
            Imported {
                begun: begun.or_else(|| Some(Instant::now())),
                ..Imported::default()
            },
        );
        Ok(())
    }

    fn import_range_chunk(
        &self,
        target: PartitionId,
        _: LogIndex,
        _: &RangeTransfer,
        data: &[u8],
    ) -> io::Result<()> {
        self.imports().entry(target).or_default().take(data)
    }

    fn import_range_end(
        &self,
        target: PartitionId,
        _: LogIndex,
        _: &RangeTransfer,
    ) -> io::Result<()> {
        let mut imports = self.imports();
        let imported = imports.entry(target).or_default();
        if !imported.partial.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the range export ended inside a record",
            ));
        }
        imported.ended = Some(Instant::now());
        Ok(())
    }
}

struct Node {
    raft: Raft,
    transport: Arc<TcpTransport>,
    app: Arc<App>,
}

/// What one split is: its source, target and boundary, and what it moves.
struct Plan {
    source: PartitionId,
    target: PartitionId,
    boundary: i32,
    records: usize,
    bytes: u64,
}

/// One split's timings, from the `split_partition` call.
struct Split {
    seconds: f64,
    phase_one: Duration,
    /// The first import begin on any node.
    begun: Duration,
    /// The last node's import end.
    ended: Duration,
    writes_per_sec: f64,
}

struct Cluster {
    nodes: Vec<Node>,
    rafts: Arc<Vec<Raft>>,
    load: Arc<Load>,
    /// The writers' partitions.
    written: Vec<PartitionId>,
    dir: tempfile::TempDir,
}

/// The bench's base directory (`KOMMANDER_BENCH_DIR`, default the system temp dir).
fn base_dir() -> PathBuf {
    std::env::var_os("KOMMANDER_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from)
}

impl Cluster {
    async fn start(
        sources: Arc<BTreeMap<PartitionId, Arc<Source>>>,
        partitions: u32,
        snapshot: SnapshotConfig,
    ) -> Self {
        let dir = tempfile::tempdir_in(base_dir()).expect("bench dir");
        let (listeners, addrs) = loopback_listeners(REPLICAS);
        let (mut nodes, mut rafts) = (Vec::new(), Vec::new());
        for (listener, node) in listeners.into_iter().zip(1..=REPLICAS as u64) {
            let mut config = loopback_node_config(node, &addrs, dir.path());
            config.initial_partitions = partitions;
            config.snapshot = snapshot;
            let transport =
                TcpTransport::with_listener(&config.tcp_config(), &config.tcp_cluster(), listener)
                    .expect("transport");
            let app = Arc::new(App {
                sources: Arc::clone(&sources),
                imports: Mutex::new(HashMap::new()),
            });
            let raft = Raft::builder(config)
                .state_machine(app.clone())
                .state_transfer(app.clone())
                .transport(transport.clone())
                .start()
                .await
                .expect("start");
            transport.serve(raft.inbound()).expect("serve");
            rafts.push(raft.clone());
            nodes.push(Node {
                raft,
                transport,
                app,
            });
        }
        join_all(&rafts).await;
        Self {
            rafts: Arc::new(rafts),
            nodes,
            load: Arc::new(Load::default()),
            written: (partitions - WRITTEN + 1..=partitions)
                .map(PartitionId)
                .collect(),
            dir,
        }
    }

    async fn stop(self) {
        for node in self.nodes {
            node.raft.shutdown().await;
            node.transport.shutdown();
        }
    }

    /// Runs a map change on partition 0's leader until one takes it.
    async fn change_map<F, Fut>(&self, what: &str, change: F) -> u64
    where
        F: Fn(Raft) -> Fut,
        Fut: Future<Output = Result<u64, PartitionLifecycleError>>,
    {
        loop {
            if let Some(raft) = leader(&self.rafts, SYSTEM) {
                match change(raft).await {
                    Ok(generation) => return generation,
                    Err(
                        error @ (PartitionLifecycleError::Refused(_)
                        | PartitionLifecycleError::Rejected { .. }
                        | PartitionLifecycleError::Fatal(_)),
                    ) => panic!("{what}: {error}"),
                    Err(_) => {}
                }
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Whether node `i`'s map shows `plan`'s phase 2 and its application holds every moved
    /// key in the target.
    fn split_done(&self, i: usize, plan: &Plan) -> bool {
        let map: Arc<PartitionMap> = self.nodes[i].raft.partition_map();
        let active = |p| {
            map.get(p).is_some_and(|r| {
                r.state == RangeState::Active
                    && r.importing_from.is_none()
                    && r.exporting_to.is_none()
            })
        };
        active(plan.source)
            && active(plan.target)
            && map
                .get(plan.target)
                .is_some_and(|r| r.start == plan.boundary)
            && self.nodes[i]
                .app
                .imports()
                .get(&plan.target)
                .is_some_and(|imported| {
                    imported.ended.is_some() && imported.store.len() == plan.records
                })
    }

    /// Splits `plan.source` and waits until the split is done on every node (see the module
    /// docs), then removes the target and drops its imports.
    async fn split(&self, plan: &Plan) -> Split {
        let started = Instant::now();
        let committed = self.load.committed.load(Ordering::Relaxed);
        let split = SplitPlan {
            target: Some(plan.target),
            boundary: Some(plan.boundary),
        };
        self.change_map("split", |raft| {
            raft.split_partition(plan.source, split, None)
        })
        .await;
        let phase_one = started.elapsed();
        while !(0..self.nodes.len()).all(|i| self.split_done(i, plan)) {
            assert!(
                started.elapsed() < SPLIT_PATIENCE,
                "the split of {} into {} did not finish within {SPLIT_PATIENCE:?}",
                plan.source,
                plan.target
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let done = Instant::now();
        let writes = self.load.committed.load(Ordering::Relaxed) - committed;
        let (mut begun, mut ended) = (done, started);
        for node in &self.nodes {
            let imports = node.app.imports();
            let imported = &imports[&plan.target];
            begun = begun.min(imported.begun.expect("begun"));
            ended = ended.max(imported.ended.expect("ended"));
        }
        self.change_map("remove the target", |raft| {
            raft.remove_partition(plan.target, None)
        })
        .await;
        for node in &self.nodes {
            node.app.imports().remove(&plan.target);
        }
        // The writers' entries share the WAL's segments with the import's: their partitions'
        // checkpoints let the WAL reclaim the split's segments.
        for &p in &self.written {
            checkpoint(&self.rafts, p).await;
        }
        let seconds = done.duration_since(started).as_secs_f64();
        Split {
            seconds,
            phase_one,
            begun: begun.duration_since(started),
            ended: ended.duration_since(started),
            writes_per_sec: writes as f64 / seconds,
        }
    }

    /// Committed writes/s over `duration` with no split.
    async fn baseline(&self, duration: Duration) -> f64 {
        self.load.pause(false).await;
        let (started, committed) = (Instant::now(), self.load.committed.load(Ordering::Relaxed));
        tokio::time::sleep(duration).await;
        (self.load.committed.load(Ordering::Relaxed) - committed) as f64
            / started.elapsed().as_secs_f64()
    }
}

/// The sources' state: for each of partitions `1..=count` of an initial map of `partitions`,
/// keys `k<n>` whose hash falls in its range until their records hold `state_bytes`, sorted by
/// hash; the values (pseudo-random bytes) are shared.
fn fill(count: u32, partitions: u32, state_bytes: u64) -> BTreeMap<PartitionId, Arc<Source>> {
    let map = PartitionMap::initial(partitions).expect("initial map");
    let ends: Vec<i32> = map.partitions.iter().map(|r| r.end).collect();
    let per_source = usize::try_from(state_bytes).expect("state size") / (VALUE_BYTES + 12) + 1;
    let mut values = vec![0u8; per_source * VALUE_BYTES];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for word in values.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        word.copy_from_slice(&x.to_le_bytes()[..word.len()]);
    }
    let mut records: Vec<Vec<Record>> =
        (0..count).map(|_| Vec::with_capacity(per_source)).collect();
    let mut bytes = vec![0u64; count as usize];
    let mut full = 0;
    let mut key = String::new();
    let mut n = 0u64;
    while full < count {
        use std::fmt::Write;
        key.clear();
        write!(key, "k{n}").expect("a key into a String");
        let hash = key_hash(&key);
        let p = ends.partition_point(|&end| end < hash);
        if p < count as usize && bytes[p] < state_bytes && records[p].len() < per_source {
            records[p].push(Record { hash, n });
            bytes[p] += (RECORD_HEADER_BYTES + key.len() + VALUE_BYTES) as u64;
            if bytes[p] >= state_bytes || records[p].len() == per_source {
                full += 1;
            }
        }
        n += 1;
    }
    let values = Arc::new(values);
    records
        .into_iter()
        .zip(1..)
        .map(|(mut records, p)| {
            records.sort_unstable_by_key(|r| r.hash);
            (
                PartitionId(p),
                Arc::new(Source {
                    records,
                    values: Arc::clone(&values),
                }),
            )
        })
        .collect()
}

fn main() {
    let seconds: f64 = env_or("KOMMANDER_BENCH_SECONDS", 2.0);
    let rounds: usize = env_or("KOMMANDER_BENCH_ROUNDS", 5).max(1);
    let state_mib: u64 = env_or("KOMMANDER_BENCH_SPLIT_MIB", 1024);
    let writers: u32 = env_or("KOMMANDER_BENCH_WRITERS", 64);
    let defaults = SnapshotConfig::default();
    let snapshot = SnapshotConfig {
        chunk_bytes: env_or("KOMMANDER_BENCH_CHUNK_KIB", defaults.chunk_bytes / KIB) * KIB,
        chunks_in_flight_max: env_or("KOMMANDER_BENCH_WINDOW", defaults.chunks_in_flight_max),
        ..defaults
    };
    let duration = Duration::from_secs_f64(seconds);
    // Two splits a round (alone and under load), each of its own source.
    let source_count = 2 * (rounds as u32 + 1);
    let partitions = source_count + WRITTEN;
    println!(
        "split bench: {state_mib} MiB per source, {rounds} rounds (+1 warm-up), {writers} \
         writers on {WRITTEN} partitions, {seconds} s per baseline; load average at start {}",
        load_average()
    );
    let filling = Instant::now();
    let sources = Arc::new(fill(source_count, partitions, state_mib << 20));
    let initial = PartitionMap::initial(partitions).expect("initial map");
    let plans: Vec<Plan> = sources
        .iter()
        .zip(partitions + 1..)
        .map(|((&source, state), target)| {
            let range = initial.get(source).expect("a source's range");
            let boundary = range.start + (range.end - range.start) / 2;
            let moved = state.moved(boundary, range.end);
            Plan {
                source,
                target: PartitionId(target),
                boundary,
                records: moved.len(),
                bytes: state.encoded_bytes(moved),
            }
        })
        .collect();
    println!(
        "  filled {source_count} sources in {:.1} s; each split moves {:.0} MiB ({} keys)",
        filling.elapsed().as_secs_f64(),
        plans[0].bytes as f64 / MIB,
        plans[0].records
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let cluster = Cluster::start(Arc::clone(&sources), partitions, snapshot).await;
        let chunk_bytes = cluster.nodes[0].raft.config().snapshot.chunk_bytes;
        let window = cluster.nodes[0].raft.config().snapshot.chunks_in_flight_max;
        cluster.load.paused.store(true, Ordering::Relaxed);
        let tasks: Vec<_> = (0..writers)
            .map(|w| {
                let p = cluster.written[(w % WRITTEN) as usize];
                tokio::spawn(writer(Arc::clone(&cluster.rafts), Arc::clone(&cluster.load), p))
            })
            .collect();
        let dir = cluster.dir.path().to_owned();

        let (mut wal, mut tcp, mut bounds) = (Vec::new(), Vec::new(), Vec::new());
        let (mut quiet, mut quiet_ratios) = (Vec::new(), Vec::new());
        let (mut baseline, mut during, mut write_ratios, mut loaded) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (round, pair) in plans.chunks(2).enumerate() {
            let (alone, under_load) = (&pair[0], &pair[1]);
            cluster.load.pause(true).await;
            let bytes = alone.bytes;
            let wal_time = tokio::task::block_in_place(|| {
                raw_durable_copy(&dir, chunk_bytes, bytes, REPLICAS)
            });
            let tcp_time =
                tokio::task::block_in_place(|| raw_copy(chunk_bytes, bytes, REPLICAS - 1));
            let (wal_rate, tcp_rate) = (
                bytes as f64 / wal_time.as_secs_f64(),
                bytes as f64 / tcp_time.as_secs_f64(),
            );
            let bound = wal_rate.min(tcp_rate);
            let q = cluster.split(alone).await;
            let q_rate = alone.bytes as f64 / q.seconds;
            let base = cluster.baseline(duration).await;
            let l = cluster.split(under_load).await;
            let l_rate = under_load.bytes as f64 / l.seconds;
            println!(
                "  {}: raw {} KiB pwrite+fdatasync ×{REPLICAS} {:.0} MiB/s, loopback ×{} \
                 {:.0} MiB/s; split alone {:.2} s ({:.0} MiB/s, {:.2} × the bound; phase 1 \
                 {:.0} ms, first begin {:.0} ms, last end {:.0} ms); writes {base:.0}/s \
                 without a split, {:.0}/s during one ({:.2} s, {:.0} MiB/s; phase 1 {:.0} ms, \
                 first begin {:.0} ms, last end {:.0} ms); load {}",
                if round == 0 { "warm-up".to_owned() } else { format!("round {round}") },
                chunk_bytes / KIB,
                wal_rate / MIB,
                REPLICAS - 1,
                tcp_rate / MIB,
                q.seconds,
                q_rate / MIB,
                q_rate / bound,
                q.phase_one.as_secs_f64() * 1e3,
                q.begun.as_secs_f64() * 1e3,
                q.ended.as_secs_f64() * 1e3,
                l.writes_per_sec,
                l.seconds,
                l_rate / MIB,
                l.phase_one.as_secs_f64() * 1e3,
                l.begun.as_secs_f64() * 1e3,
                l.ended.as_secs_f64() * 1e3,
                load_average()
            );
            if round > 0 {
                wal.push(wal_rate);
                tcp.push(tcp_rate);
                bounds.push(bound);
                quiet.push(q_rate);
                quiet_ratios.push(q_rate / bound);
                baseline.push(base);
                during.push(l.writes_per_sec);
                write_ratios.push(l.writes_per_sec / base);
                loaded.push(l_rate);
            }
        }
        cluster.load.stop.store(true, Ordering::Relaxed);
        cluster.load.pause(false).await;
        for task in tasks {
            task.await.expect("writer");
        }
        cluster.stop().await;

        let moved_mib = plans[0].bytes as f64 / MIB;
        let bound = median(&bounds);
        println!("  load average at the end {}", load_average());
        println!();
        println!("| figure | median | ratio |");
        println!("|---|---|---|");
        println!(
            "| raw: {moved_mib:.0} MiB as {} KiB pwrite+fdatasync, {REPLICAS} files at once | {:.0} MiB/s | – |",
            chunk_bytes / KIB,
            median(&wal) / MIB
        );
        println!(
            "| raw: {moved_mib:.0} MiB over {} loopback TCP streams at once, {} KiB writes | {:.0} MiB/s | – |",
            REPLICAS - 1,
            chunk_bytes / KIB,
            median(&tcp) / MIB
        );
        println!("| bound: the slower of the two | {:.0} MiB/s | – |", bound / MIB);
        println!(
            "| split of {state_mib} MiB ({moved_mib:.0} MiB moved, {} KiB chunks, {window} in flight), writers paused | {:.0} MiB/s | {:.2} × the bound (median of each round's) |",
            chunk_bytes / KIB,
            median(&quiet) / MIB,
            median(&quiet_ratios)
        );
        println!(
            "| the same split beside {writers} writers | {:.0} MiB/s | {:.2} × the split alone |",
            median(&loaded) / MIB,
            median(&loaded) / median(&quiet)
        );
        println!(
            "| other partitions' committed 16 B writes/s: without a split / during one (ratio: the median of each round's) | {:.0} / {:.0} | {:.2} × |",
            median(&baseline),
            median(&during),
            median(&write_ratios)
        );
    });
}
