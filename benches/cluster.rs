//! Whole-cluster benchmark: three in-process nodes (each a `ShardHost` with its shard threads and
//! real WALs, fsync on), connected by the in-memory transport. Closed-loop writers (each waits
//! for its previous write's commit before the next) propose on the partitions' leaders.
//!
//! ```text
//! cargo bench --bench cluster                      # every combination, 2 s each
//! KOMMANDER_BENCH_SECONDS=5 cargo bench --bench cluster
//! KOMMANDER_BENCH_ONLY=256:64:64 cargo bench --bench cluster   # payload:partitions:writers
//! KOMMANDER_BENCH_ONLY=memory cargo bench --bench cluster      # idle-partition memory only
//! KOMMANDER_BENCH_ONLY=memory KOMMANDER_BENCH_PARTITIONS=4096 cargo bench --bench cluster
//! KOMMANDER_BENCH_ONLY=idle-cpu cargo bench --bench cluster    # CPU of idle partitions
//! KOMMANDER_BENCH_TIMING=default KOMMANDER_BENCH_ONLY=idle-cpu cargo bench --bench cluster  # node defaults' ticks
//! KOMMANDER_BENCH_ONLY=16:4096:4096 cargo bench --bench cluster # active scaling: every partition writes
//! KOMMANDER_BENCH_ONLY=16:4096:1024 cargo bench --bench cluster # 1024 of 4096 partitions write
//! KOMMANDER_BENCH_DIR=/mnt/nvme/x cargo bench --bench cluster  # another device
//! ```
//!
//! Prints committed writes/s and commit latency percentiles (p50/p99/p99.9, from the
//! proposal's send to its `Success` answer) for 16 B and 256 B payloads × 1, 64, 1024
//! partitions × 1, 64, 1024 writers, after the memory an idle partition costs (RSS growth per
//! replica while opening `KOMMANDER_BENCH_PARTITIONS` idle partitions on three nodes, default
//! 1024, in two halves, each measured once every replica quiesced: over all of them, and the
//! marginal cost of the second half's).
//!
//! `idle-cpu` (issue 15) opens 48 and then 4096 partitions (or `KOMMANDER_BENCH_PARTITIONS`
//! only) on three nodes, waits until every replica quiesced (the shards' `quiesced_replicas`
//! counter), then measures the process's CPU time (utime + stime of `/proc/self/stat`, in
//! clock ticks of 10 ms) over `KOMMANDER_BENCH_SECONDS` (default 10 s) and prints it as a
//! share of one core, with the load average beside it (a busy machine shows in it); then, per
//! thread group (threads named alike: the shards, the transfer threads...), CPU time, time on a
//! CPU (`schedstat`) and voluntary context switches (wake-ups) per second over the window, and
//! the ticks the idle shards slept through. Results are recorded in `docs/benchmarks.md`
//! (Cluster).
#![allow(clippy::print_stdout, missing_docs, unreachable_pub)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use kommander_raft::core::{NodeId, PartitionId, Role, Status, Ticket};
use kommander_raft::shard::{
    Application, LogEntry, NoEvents, ProposedEntry, Refusal, Request, ShardConfig, ShardHost,
    StateMachine,
};
use kommander_raft::transport::memory::MemoryNetwork;
use tokio::sync::oneshot;

mod support;
use support::in_process_node_config;

/// Counts deliveries; does nothing else (the application must not block the shard).
#[derive(Default)]
struct Counting(AtomicU64);

impl StateMachine for Counting {
    fn on_replication_received(&self, _: PartitionId, _: &LogEntry) -> bool {
        self.0.fetch_add(1, Ordering::Relaxed);
        true
    }
    fn on_log_restored(&self, _: PartitionId, _: &LogEntry) -> bool {
        true
    }
}

struct Bench {
    nodes: Vec<ShardHost>,
    _network: Arc<MemoryNetwork>,
    _dir: tempfile::TempDir,
}

fn base_dir() -> PathBuf {
    std::env::var_os("KOMMANDER_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from)
}

/// Whether the nodes keep `NodeConfig`'s default timing (20 ms ticks, heartbeats every 3,
/// elections after 10–20: `KOMMANDER_BENCH_TIMING=default`) rather than the bench's 10 ms ticks,
/// heartbeats every 5 and elections after 20–40.
fn default_timing() -> bool {
    std::env::var("KOMMANDER_BENCH_TIMING").is_ok_and(|timing| timing == "default")
}

fn start(partitions: u32, shards: usize) -> Bench {
    let dir = tempfile::tempdir_in(base_dir()).expect("bench dir");
    let network = MemoryNetwork::new();
    let voters: Vec<NodeId> = (1..=3).map(NodeId).collect();
    let mut nodes = Vec::new();
    for node in 1..=3u64 {
        let mut config = in_process_node_config(node, dir.path(), shards, !default_timing());
        config.wal_segment_bytes = 64 << 20;
        let runtime = ShardHost::start(
            ShardConfig::from(&config),
            network.transport(NodeId(node)),
            Application::new(Arc::new(Counting::default())),
            Arc::new(NoEvents),
            Arc::default(),
        )
        .expect("node starts");
        network.register(NodeId(node), runtime.inbound());
        nodes.push(runtime);
    }
    for runtime in &nodes {
        let answers: Vec<_> = (0..partitions)
            .map(|p| {
                runtime
                    .open_partition(PartitionId(p), voters.clone(), Vec::new())
                    .expect("queued")
            })
            .collect();
        for answer in answers {
            answer.blocking_recv().expect("answer").expect("opened");
        }
    }
    Bench {
        nodes,
        _network: network,
        _dir: dir,
    }
}

fn leader_of(nodes: &[ShardHost], partition: PartitionId) -> Option<usize> {
    nodes.iter().position(|runtime| {
        let (reply, answer) = oneshot::channel();
        runtime.send(partition, Request::Status { reply }).is_ok()
            && answer
                .blocking_recv()
                .ok()
                .and_then(Result::ok)
                .is_some_and(|s| s.role == Role::Leader)
    })
}

fn wait_leaders(nodes: &[ShardHost], partitions: u32) -> Vec<usize> {
    let deadline = Instant::now() + Duration::from_secs(60);
    (0..partitions)
        .map(|p| {
            loop {
                if let Some(i) = leader_of(nodes, PartitionId(p)) {
                    break i;
                }
                assert!(Instant::now() < deadline, "no leader for p{p}");
                std::thread::sleep(Duration::from_millis(10));
            }
        })
        .collect()
}

struct Outcome {
    writes: u64,
    errors: u64,
    elapsed: Duration,
    latency: Histogram<u64>,
    /// The process's CPU time over the timed window (every thread: shards, WAL, writers).
    cpu: Duration,
    /// Shard turns and WAL writes of every shard of the three nodes over the window.
    turns: u64,
    wal_writes: u64,
}

/// Shard turns and WAL writes of every shard of `nodes` so far.
fn turns_and_wal_writes(nodes: &[ShardHost]) -> (u64, u64) {
    nodes.iter().fold((0, 0), |(turns, wal), node| {
        let stats = node.stats();
        (turns + stats.turns, wal + stats.wal_submissions)
    })
}

fn run(payload_bytes: usize, partitions: u32, writers: usize, seconds: f64) -> Outcome {
    let shards = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let bench = start(partitions, shards);
    let leaders = Arc::new(std::sync::Mutex::new(wait_leaders(
        &bench.nodes,
        partitions,
    )));
    let nodes = Arc::new(bench.nodes.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let ticket = Arc::new(AtomicU64::new(1));
    let payload = Bytes::from(vec![0x5a; payload_bytes]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime");
    let (turns_before, wal_before) = turns_and_wal_writes(&nodes);
    let cpu_before = process_cpu();
    let started = Instant::now();
    let duration = Duration::from_secs_f64(seconds);
    // One histogram for every writer (they share the runtime's one thread): 4096 of their own,
    // grown to ~80 KiB each, spread every write's record over 320 MiB of cold lines.
    let latency = Arc::new(std::sync::Mutex::new(
        Histogram::<u64>::new(3).expect("histogram"),
    ));
    let results = runtime.block_on(async {
        let mut tasks = Vec::new();
        for w in 0..writers {
            let nodes = Arc::clone(&nodes);
            let leaders = Arc::clone(&leaders);
            let stop = Arc::clone(&stop);
            let ticket = Arc::clone(&ticket);
            let payload = payload.clone();
            let latency = Arc::clone(&latency);
            let partition = PartitionId((w as u32) % partitions);
            tasks.push(tokio::spawn(async move {
                let (mut writes, mut errors) = (0u64, 0u64);
                while !stop.load(Ordering::Relaxed) && started.elapsed() < duration {
                    let leader = leaders.lock().expect("leaders")[partition.0 as usize];
                    let (reply, answer) = oneshot::channel();
                    let begin = Instant::now();
                    let request = Request::Propose {
                        entries: smallvec::smallvec![ProposedEntry::new("b", &payload)],
                        auto_commit: true,
                        ticket: Ticket(ticket.fetch_add(1, Ordering::Relaxed)),
                        reply,
                    };
                    let sent = nodes[leader].send(partition, request);
                    let result = match sent {
                        Ok(()) => answer.await.unwrap_or(Err(Refusal::ShutDown)),
                        Err(refusal) => Err(refusal),
                    };
                    match result {
                        Ok(r) if r.status == Status::Success => {
                            writes += 1;
                            let micros = begin.elapsed().as_micros() as u64;
                            latency
                                .lock()
                                .expect("latency")
                                .record(micros.max(1))
                                .expect("record");
                        }
                        Ok(_) | Err(_) => {
                            // Leadership moved (rare in a healthy run): try the next node.
                            errors += 1;
                            tokio::task::yield_now().await;
                            let mut leaders = leaders.lock().expect("leaders");
                            let slot = &mut leaders[partition.0 as usize];
                            *slot = (*slot + 1) % nodes.len();
                        }
                    }
                }
                (writes, errors)
            }));
        }
        let mut out = Vec::new();
        for task in tasks {
            out.push(task.await.expect("writer task"));
        }
        out
    });
    let elapsed = started.elapsed();
    let cpu = process_cpu().saturating_sub(cpu_before);
    let (turns_after, wal_after) = turns_and_wal_writes(&nodes);
    stop.store(true, Ordering::Relaxed);
    let (mut writes, mut errors) = (0, 0);
    for (w, e) in results {
        writes += w;
        errors += e;
    }
    let latency = latency.lock().expect("latency").clone();
    for node in nodes.iter() {
        node.shutdown();
    }
    drop(bench);
    Outcome {
        writes,
        errors,
        elapsed,
        latency,
        cpu,
        turns: turns_after - turns_before,
        wal_writes: wal_after - wal_before,
    }
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// `KOMMANDER_BENCH_PARTITIONS`, if set.
fn partitions_knob() -> Option<u32> {
    std::env::var("KOMMANDER_BENCH_PARTITIONS")
        .ok()
        .and_then(|s| s.parse().ok())
}

/// Replicas quiesced on every node together.
fn quiesced_replicas(nodes: &[ShardHost]) -> u64 {
    nodes
        .iter()
        .map(|node| node.stats().quiesced_replicas)
        .sum()
}

/// Ticks the idle shards of every node slept through (tickless idle).
fn ticks_skipped(nodes: &[ShardHost]) -> u64 {
    nodes.iter().map(|node| node.stats().ticks_skipped).sum()
}

/// Waits until `replicas` replicas are quiesced (the shards count them at their ticks).
fn wait_quiesced(nodes: &[ShardHost], replicas: u64) -> Duration {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(300);
    while quiesced_replicas(nodes) < replicas {
        assert!(
            Instant::now() < deadline,
            "only {} of {replicas} replicas quiesced",
            quiesced_replicas(nodes)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    started.elapsed()
}

/// Opens partitions `partitions` on every node and waits until they have leaders and every
/// replica of the `hosted` partitions (partition 0 included) is quiesced.
fn open_idle(nodes: &[ShardHost], partitions: std::ops::RangeInclusive<u32>, hosted: u32) {
    let voters: Vec<NodeId> = (1..=3).map(NodeId).collect();
    for runtime in nodes {
        for p in partitions.clone() {
            runtime
                .open_partition(PartitionId(p), voters.clone(), Vec::new())
                .expect("queued")
                .blocking_recv()
                .expect("answer")
                .expect("opened");
        }
    }
    wait_leaders(nodes, hosted + 1);
    wait_quiesced(nodes, u64::from(hosted + 1) * 3);
}

/// The idle partitions' memory: the RSS grown by opening `KOMMANDER_BENCH_PARTITIONS` idle
/// partitions in two halves, each measured once every replica quiesced. The marginal figure
/// (the second half's growth per replica) is what one more idle replica costs; the whole
/// figure also spreads the shards' buffers that grow with the first batches (WAL write
/// buffers, table capacities) over the replicas.
fn idle_partition_memory() {
    let partitions = partitions_knob().unwrap_or(1024).max(2);
    let half = partitions / 2;
    let bench = start(1, 2);
    std::thread::sleep(Duration::from_millis(500));
    let before = rss_bytes();
    open_idle(&bench.nodes, 1..=half, half);
    let first_half = rss_bytes();
    open_idle(&bench.nodes, half + 1..=partitions, partitions);
    let all = rss_bytes();
    let mib = |bytes: u64| bytes as f64 / (1 << 20) as f64;
    let per_replica = |grown: u64, partitions: u32| grown / (u64::from(partitions) * 3);
    println!(
        "idle partitions: {partitions} partitions x 3 replicas, all quiesced: RSS {:.1} MiB -> \
         {:.1} MiB at {half} -> {:.1} MiB at {partitions}: {} bytes per replica over all, {} \
         bytes per replica marginal (the second {} partitions)",
        mib(before),
        mib(first_half),
        mib(all),
        per_replica(all.saturating_sub(before), partitions),
        per_replica(all.saturating_sub(first_half), partitions - half),
        partitions - half,
    );
    for node in &bench.nodes {
        node.shutdown();
    }
}

/// The process's CPU time so far (user + system, every thread), from `/proc/self/stat` in
/// clock ticks of 10 ms (`USER_HZ`, 100 on Linux).
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // The command name (field 2) may hold spaces: count the fields after its closing paren.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<u64> = after_name
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|field| field.parse().ok())
        .collect();
    Duration::from_millis(fields.iter().sum::<u64>() * 10)
}

/// The load averages over 1, 5 and 15 minutes.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// One thread's counters: CPU time (utime + stime of `/proc/self/task/<tid>/stat`, clock ticks
/// of 10 ms), time on a CPU (`schedstat`, nanoseconds: finer than the clock ticks) and
/// voluntary context switches (`status`: each one a sleep, so a wake-up).
#[derive(Clone, Copy, Default)]
struct ThreadCounters {
    cpu: Duration,
    on_cpu: Duration,
    voluntary_switches: u64,
}

/// Every thread of the process by thread id: its name and counters (threads that exit between
/// two reads are left out).
fn thread_counters() -> BTreeMap<u64, (String, ThreadCounters)> {
    let mut threads = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return threads;
    };
    for task in tasks.flatten() {
        let Some(tid) = task
            .file_name()
            .to_str()
            .and_then(|t| t.parse::<u64>().ok())
        else {
            continue;
        };
        let path = task.path();
        let Ok(stat) = std::fs::read_to_string(path.join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = stat[open + 1..close].to_owned();
        let ticks: u64 = stat[close + 1..]
            .split_whitespace()
            .skip(11)
            .take(2)
            .filter_map(|field| field.parse::<u64>().ok())
            .sum();
        let on_cpu = std::fs::read_to_string(path.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next().and_then(|n| n.parse().ok()))
            .map_or(Duration::ZERO, Duration::from_nanos);
        let voluntary_switches = std::fs::read_to_string(path.join("status"))
            .ok()
            .and_then(|status| {
                status.lines().find_map(|line| {
                    line.strip_prefix("voluntary_ctxt_switches:")
                        .and_then(|n| n.trim().parse().ok())
                })
            })
            .unwrap_or(0);
        threads.insert(
            tid,
            (
                name,
                ThreadCounters {
                    cpu: Duration::from_millis(ticks * 10),
                    on_cpu,
                    voluntary_switches,
                },
            ),
        );
    }
    threads
}

/// The threads' counters between `before` and `after`, grouped by name without its trailing
/// number (`kommander-shard` holds every shard thread; Linux cuts names at 15 bytes), with the
/// group's thread count, busiest first.
fn thread_groups(
    before: &BTreeMap<u64, (String, ThreadCounters)>,
    after: &BTreeMap<u64, (String, ThreadCounters)>,
) -> Vec<(String, usize, ThreadCounters)> {
    let mut groups: BTreeMap<String, (usize, ThreadCounters)> = BTreeMap::new();
    for (tid, (name, now)) in after {
        let then = before.get(tid).map(|(_, c)| *c).unwrap_or_default();
        let group = name
            .trim_end_matches(|c: char| c.is_ascii_digit())
            .trim_end_matches('-')
            .to_owned();
        let entry = groups.entry(group).or_default();
        entry.0 += 1;
        entry.1.cpu += now.cpu.saturating_sub(then.cpu);
        entry.1.on_cpu += now.on_cpu.saturating_sub(then.on_cpu);
        entry.1.voluntary_switches += now
            .voluntary_switches
            .saturating_sub(then.voluntary_switches);
    }
    let mut groups: Vec<_> = groups
        .into_iter()
        .map(|(name, (threads, counters))| (name, threads, counters))
        .collect();
    groups.sort_by_key(|group| std::cmp::Reverse(group.2.on_cpu));
    groups
}

/// `partitions` idle partitions on three nodes, all quiesced: the process's CPU over
/// `seconds`, as a share of one core, then per thread group (where the idle CPU goes).
fn idle_cpu(partitions: u32, seconds: f64) {
    let shards = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let bench = start(partitions, shards);
    wait_leaders(&bench.nodes, partitions);
    let waited = wait_quiesced(&bench.nodes, u64::from(partitions) * 3);
    let skipped_before = ticks_skipped(&bench.nodes);
    let threads_before = thread_counters();
    let (cpu_before, started) = (process_cpu(), Instant::now());
    std::thread::sleep(Duration::from_secs_f64(seconds));
    let (cpu, elapsed) = (process_cpu() - cpu_before, started.elapsed());
    let threads_after = thread_counters();
    let skipped = ticks_skipped(&bench.nodes) - skipped_before;
    let share = 100.0 * cpu.as_secs_f64() / elapsed.as_secs_f64();
    println!(
        "{partitions:>10} {:>9} {:>10.1} {:>10.2} {:>9.3} {:>15}",
        u64::from(partitions) * 3,
        waited.as_secs_f64(),
        cpu.as_secs_f64(),
        share,
        load_average()
    );
    let per_second = |count: u64| count as f64 / elapsed.as_secs_f64();
    println!(
        "{:>14} {:>7} {:>9} {:>11} {:>12} {:>13}",
        "  thread group", "threads", "cpu s", "on-cpu ms", "% core", "wakeups/s"
    );
    for (group, threads, counters) in thread_groups(&threads_before, &threads_after) {
        println!(
            "  {group:<16} {threads:>5} {:>9.2} {:>11.1} {:>12.3} {:>13.1}",
            counters.cpu.as_secs_f64(),
            counters.on_cpu.as_secs_f64() * 1e3,
            100.0 * counters.on_cpu.as_secs_f64() / elapsed.as_secs_f64(),
            per_second(counters.voluntary_switches)
        );
    }
    println!(
        "  shard ticks skipped: {:.1}/s over every shard",
        per_second(skipped)
    );
    for node in &bench.nodes {
        node.shutdown();
    }
}

fn main() {
    // `cargo test --benches` passes `--bench`-less args; run a tiny smoke configuration then.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let seconds: f64 = std::env::var("KOMMANDER_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if smoke { 0.2 } else { 2.0 });
    let only = std::env::var("KOMMANDER_BENCH_ONLY").ok();
    let mut combos = Vec::new();
    for payload in [16usize, 256] {
        for partitions in [1u32, 64, 1024] {
            for writers in [1usize, 64, 1024] {
                combos.push((payload, partitions, writers));
            }
        }
    }
    if smoke {
        combos = vec![(16, 4, 4)];
    }
    if !smoke && only.as_deref().is_none_or(|o| o == "memory") {
        // First, in a fresh process: freed memory of earlier runs would hide the growth.
        idle_partition_memory();
    }
    if only.as_deref() == Some("memory") {
        return;
    }
    if only.as_deref() == Some("idle-cpu") {
        let seconds: f64 = std::env::var("KOMMANDER_BENCH_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(10.0);
        println!(
            "idle cpu: 3 nodes in-process, every replica quiesced, {seconds} s measured, \
             {} shards per node",
            std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
        );
        println!(
            "{:>10} {:>9} {:>10} {:>10} {:>9} {:>15}",
            "partitions", "replicas", "quiesce s", "cpu s", "% core", "load avg"
        );
        let counts = partitions_knob().map_or_else(|| vec![48, 4096], |count| vec![count]);
        for partitions in counts {
            idle_cpu(partitions, seconds);
        }
        return;
    }
    if let Some(only) = only {
        let parts: Vec<usize> = only.split(':').filter_map(|s| s.parse().ok()).collect();
        if let [payload, partitions, writers] = parts[..] {
            combos = vec![(payload, partitions as u32, writers)];
        }
    }
    println!(
        "cluster: 3 nodes in-process, in-memory transport, real WAL (fsync on) under {}, {} \
         shards per node, {seconds} s per row",
        base_dir().display(),
        std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
    );
    // cores: the process's CPU time over the window per second (every thread); turns/s and
    // wal/s: shard turns and WAL writes per second over every shard of the three nodes.
    println!(
        "{:>8} {:>10} {:>8} {:>12} {:>9} {:>9} {:>9} {:>7} {:>6} {:>8} {:>8} {:>15}",
        "payload",
        "partitions",
        "writers",
        "writes/s",
        "p50 us",
        "p99 us",
        "p99.9 us",
        "errors",
        "cores",
        "turns/s",
        "wal/s",
        "load avg"
    );
    for (payload, partitions, writers) in combos {
        let outcome = run(payload, partitions, writers, seconds);
        let seconds = outcome.elapsed.as_secs_f64();
        println!(
            "{:>8} {:>10} {:>8} {:>12.0} {:>9} {:>9} {:>9} {:>7} {:>6.2} {:>8.0} {:>8.0} {:>15}",
            payload,
            partitions,
            writers,
            outcome.writes as f64 / seconds,
            outcome.latency.value_at_quantile(0.5),
            outcome.latency.value_at_quantile(0.99),
            outcome.latency.value_at_quantile(0.999),
            outcome.errors,
            outcome.cpu.as_secs_f64() / seconds,
            outcome.turns as f64 / seconds,
            outcome.wal_writes as f64 / seconds,
            load_average()
        );
    }
}
