//! TCP transport benchmark: the transport next to the physical limits it runs on, all
//! measured in ONE run so the ratios compare like with like.
//!
//! ```text
//! cargo bench --bench transport                      # 5 rounds of 1 s, 5 s per cluster run
//! KOMMANDER_BENCH_SECONDS=2 KOMMANDER_BENCH_ROUNDS=9 KOMMANDER_BENCH_CLUSTER_SECONDS=10 \
//!     cargo bench --bench transport
//! KOMMANDER_BENCH_MAX=8:1024 cargo bench --bench transport   # partitions:writers at max load
//!                                                            # (default 4:2048, as `kommander bench`)
//! ```
//!
//! Raw and transport loopback measurements alternate over several rounds; the table compares
//! their medians.
//!
//! 1. Raw loopback TCP (a plain `TcpStream` pair, a reader thread draining): bandwidth with
//!    64 KiB writes, and the rate of 256 B writes (one `write` syscall each, `TCP_NODELAY`).
//! 2. The transport (two `TcpTransport`s on loopback, node 1 sending to node 2 through
//!    `Transport::send`, node 2's `Inbound` counting): 64 KiB-payload `AppendRequest`s
//!    (bandwidth, against the raw bandwidth: target ≥ 0.5×), and 256 B `AppendRequest`s
//!    sent one per `send` call and 64 per call (messages/s delivered, against the raw 256 B
//!    write rate: target ≥ 4×, which only batching reaches). The sender keeps at most
//!    `peer_queue_batches_max` batches in flight (sent, not yet delivered), so the bounded
//!    queue never drops; drops are reported anyway.
//! 3. Raw 4 KiB `pwrite`+`fdatasync` p50 in the temp directory, loopback round trip (1-byte
//!    ping-pong) p50, then the `kommander bench` binary (3 nodes over loopback TCP, fsync on)
//!    as a subprocess: at light load (1 writer, 16 B; target: commit p50 at most fsync p50
//!    plus RTT p50 plus 40 µs) and at maximum load (16 B, many writers, several partitions; the goal on the
//!    project's 2-core machines is 1 M committed writes/s).
//!
//! Nothing is asserted: the bench prints figures and ratios (recorded in
//! `docs/benchmarks.md`, "TCP transport").
#![allow(clippy::print_stdout, missing_docs, unreachable_pub)]

mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use kommander_raft::core::{Entry, EntryKind, LogIndex, Message, MessageBody, Ticket};
use kommander_raft::transport::tcp::TcpTransport;
use kommander_raft::transport::{Inbound, Transport};
use kommander_raft::{NodeConfig, NodeId, PartitionId, Term};
use support::{
    KIB, MIB, env_or, load_average, loopback_listeners, loopback_pair, median, raw_stream, verdict,
};

/// Counts what node 2 receives.
#[derive(Default)]
struct Counter {
    messages: AtomicU64,
    payload_bytes: AtomicU64,
}

impl Inbound for Counter {
    fn deliver(&self, messages: Vec<Message>) {
        let bytes: usize = messages
            .iter()
            .map(|m| match &m.body {
                MessageBody::AppendRequest { entries, .. } => {
                    entries.iter().map(|e| e.payload.len()).sum()
                }
                _ => 0,
            })
            .sum();
        self.messages
            .fetch_add(messages.len() as u64, Ordering::Relaxed);
        self.payload_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }
}

struct Pair {
    sender: Arc<TcpTransport>,
    receiver: Arc<TcpTransport>,
    counter: Arc<Counter>,
    queue_batches_max: usize,
    _dir: tempfile::TempDir,
}

/// Node 1 and node 2 on loopback, both serving (node 1's inbound discards).
fn transport_pair() -> Pair {
    let dir = tempfile::tempdir().expect("dir");
    let (listeners, addrs) = loopback_listeners(2);
    let mut transports = Vec::new();
    let mut queue_batches_max = 0;
    for (i, listener) in listeners.into_iter().enumerate() {
        let node = i as u64 + 1;
        let other = 2 - i as u64;
        let mut config = NodeConfig::new(node, dir.path().join(format!("node-{node}")));
        config.endpoint = addrs[i].clone();
        config.peers = BTreeMap::from([(other, addrs[other as usize - 1].clone())]);
        queue_batches_max = config.transport.peer_queue_batches_max;
        transports.push(
            TcpTransport::with_listener(&config.tcp_config(), &config.tcp_cluster(), listener)
                .expect("transport"),
        );
    }
    let counter = Arc::new(Counter::default());
    transports[0]
        .serve(Arc::new(Counter::default()))
        .expect("serve");
    transports[1].serve(counter.clone()).expect("serve");
    let receiver = transports.pop().expect("node 2");
    let sender = transports.pop().expect("node 1");
    Pair {
        sender,
        receiver,
        counter,
        queue_batches_max,
        _dir: dir,
    }
}

/// An `AppendRequest` carrying one entry of `payload` (shared, never copied by the sender).
fn append(payload: &Bytes, index: u64) -> Message {
    Message {
        partition: PartitionId((index % 64) as u32),
        from: NodeId(1),
        to: NodeId(2),
        term: Term(1),
        body: MessageBody::AppendRequest {
            prev_log_index: LogIndex(index - 1),
            prev_log_term: Term(1),
            entries: vec![Entry {
                index: LogIndex(index),
                term: Term(1),
                kind: EntryKind::Normal,
                ticket: Ticket(index),
                auto_commit: true,
                payload: payload.clone(),
            }],
            commit: LogIndex(index - 1),
        },
    }
}

struct Delivered {
    messages: u64,
    payload_bytes: u64,
    elapsed: Duration,
    dropped: u64,
    frames: u64,
}

/// Sends batches of `per_send` messages carrying `payload_bytes` each for `duration`, with at
/// most `window` batches undelivered (never more than the queue holds, so nothing is
/// dropped); waits until everything sent arrived.
fn transport_stream(
    payload_bytes: usize,
    per_send: u64,
    window: usize,
    duration: Duration,
) -> Delivered {
    let pair = transport_pair();
    let window = window.min(pair.queue_batches_max) as u64 * per_send;
    let payload = Bytes::from(vec![0x5au8; payload_bytes]);
    // Wait for the connection (the writer connects in the background).
    let ready = Instant::now() + Duration::from_secs(10);
    let mut probe = 0;
    while pair.counter.messages.load(Ordering::Relaxed) == 0 {
        assert!(Instant::now() < ready, "the transport did not connect");
        probe += 1;
        pair.sender.send(NodeId(2), vec![append(&payload, probe)]);
        std::thread::sleep(Duration::from_millis(5));
    }
    // Probes sent before the connection was up may have been dropped: let the others land.
    std::thread::sleep(Duration::from_millis(50));
    let base_messages = pair.counter.messages.load(Ordering::Relaxed);
    let base_bytes = pair.counter.payload_bytes.load(Ordering::Relaxed);
    let base_stats = pair.sender.stats();
    let started = Instant::now();
    let mut sent = 0u64;
    let mut index = probe + 1;
    while started.elapsed() < duration {
        for _ in 0..64 {
            let delivered = pair.counter.messages.load(Ordering::Relaxed) - base_messages;
            if sent + per_send - delivered > window {
                std::thread::yield_now();
                continue;
            }
            let batch = (index..index + per_send)
                .map(|i| append(&payload, i))
                .collect();
            pair.sender.send(NodeId(2), batch);
            index += per_send;
            sent += per_send;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let dropped = || pair.sender.stats().messages_dropped - base_stats.messages_dropped;
    while pair.counter.messages.load(Ordering::Relaxed) - base_messages + dropped() < sent {
        assert!(Instant::now() < deadline, "messages lost in the transport");
        std::thread::yield_now();
    }
    let elapsed = started.elapsed();
    let stats = pair.sender.stats();
    let result = Delivered {
        messages: pair.counter.messages.load(Ordering::Relaxed) - base_messages,
        payload_bytes: pair.counter.payload_bytes.load(Ordering::Relaxed) - base_bytes,
        elapsed,
        dropped: dropped(),
        frames: stats.frames_sent - base_stats.frames_sent,
    };
    pair.sender.shutdown();
    pair.receiver.shutdown();
    result
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("histogram bounds")
}

fn micros(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

/// Rounds of 4 KiB `pwrite` + `fdatasync` by `files` threads at once, each on its own
/// pre-written 4 MiB file in `dir` (like the nodes of a loopback cluster sharing one disk):
/// (p50, p99) in µs of the time until `quorum` of them finished a round.
fn raw_fsync(dir: &Path, files: usize, quorum: usize) -> (f64, f64) {
    const BLOCKS: u64 = 1024;
    const ROUNDS: u64 = 600;
    let barrier = std::sync::Barrier::new(files);
    let times: Vec<Vec<Duration>> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..files)
            .map(|_| {
                scope.spawn(|| {
                    let file = tempfile::tempfile_in(dir).expect("create the fsync file");
                    file.write_all_at(&vec![0u8; BLOCKS as usize * 4 * KIB], 0)
                        .expect("prefill");
                    file.sync_all().expect("sync");
                    let block = vec![0xa5u8; 4 * KIB];
                    (0..ROUNDS)
                        .map(|i| {
                            barrier.wait();
                            let begin = Instant::now();
                            file.write_all_at(&block, (i % BLOCKS) * 4096)
                                .expect("pwrite");
                            file.sync_data().expect("fdatasync");
                            begin.elapsed()
                        })
                        .collect()
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().expect("fsync thread"))
            .collect()
    });
    let mut h = histogram();
    for round in 100..ROUNDS as usize {
        let mut finished: Vec<Duration> = times.iter().map(|t| t[round]).collect();
        finished.sort_unstable();
        h.saturating_record(finished[quorum - 1].as_nanos() as u64);
    }
    (micros(&h, 0.5), micros(&h, 0.99))
}

/// 1-byte ping-pong on a loopback pair: (p50, p99) in µs.
fn loopback_rtt() -> (f64, f64) {
    let (mut ping, mut pong) = loopback_pair();
    let echo = std::thread::spawn(move || {
        let mut byte = [0u8; 1];
        while pong.read_exact(&mut byte).is_ok() {
            if pong.write_all(&byte).is_err() {
                break;
            }
        }
    });
    let mut h = histogram();
    let mut byte = [7u8; 1];
    for i in 0..20_000 {
        let begin = Instant::now();
        ping.write_all(&byte).expect("ping");
        ping.read_exact(&mut byte).expect("pong");
        if i >= 1000 {
            h.saturating_record(begin.elapsed().as_nanos() as u64);
        }
    }
    drop(ping);
    echo.join().expect("echo thread");
    (micros(&h, 0.5), micros(&h, 0.99))
}

/// The JSON report of `kommander bench`.
struct ClusterRun {
    partitions: u64,
    writers: u64,
    writes_per_sec: f64,
    p50: f64,
    p99: f64,
}

/// Runs `kommander bench` (16 B payloads); `Err` says why there is no figure.
fn cluster(partitions: u32, writers: usize, seconds: f64) -> Result<ClusterRun, String> {
    let Some(binary) = option_env!("CARGO_BIN_EXE_kommander") else {
        return Err("kommander binary not built".to_owned());
    };
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let json = dir.path().join("report.json");
    let output = std::process::Command::new(binary)
        .arg("bench")
        .args(["--payload-bytes", "16"])
        .args(["--partitions", &partitions.to_string()])
        .args(["--writers", &writers.to_string()])
        .args(["--duration-secs", &seconds.to_string()])
        .arg("--json")
        .arg(&json)
        .output()
        .map_err(|e| format!("running {binary}: {e}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!(
            "kommander bench failed ({}): {}",
            output.status,
            stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("")
        ));
    }
    let text = std::fs::read_to_string(&json).map_err(|e| format!("reading the report: {e}"))?;
    let report: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("parsing the report: {e}"))?;
    let number = |path: &[&str]| {
        path.iter()
            .try_fold(&report, |v, key| v.get(key))
            .and_then(serde_json::Value::as_f64)
            .ok_or_else(|| format!("the report has no {}: {text}", path.join(".")))
    };
    Ok(ClusterRun {
        partitions: number(&["partitions"])? as u64,
        writers: number(&["writers"])? as u64,
        writes_per_sec: number(&["writes_per_sec"])?,
        p50: number(&["latency_us", "p50"])?,
        p99: number(&["latency_us", "p99"])?,
    })
}

fn main() {
    let seconds: f64 = env_or("KOMMANDER_BENCH_SECONDS", 1.0);
    let rounds: usize = env_or("KOMMANDER_BENCH_ROUNDS", 5).max(1);
    let cluster_seconds: f64 = env_or("KOMMANDER_BENCH_CLUSTER_SECONDS", 5.0);
    let duration = Duration::from_secs_f64(seconds);
    let (max_partitions, max_writers) = std::env::var("KOMMANDER_BENCH_MAX")
        .ok()
        .and_then(|s| {
            let (p, w) = s.split_once(':')?;
            Some((p.parse().ok()?, w.parse().ok()?))
        })
        .unwrap_or((4u32, 2048usize));
    println!(
        "transport bench: {rounds} rounds of {seconds} s per loopback measurement, \
         {cluster_seconds} s per cluster run; load average at start {}",
        load_average()
    );

    // Raw and transport measurements alternate, round after round, and the medians are
    // compared: on a shared machine the load drifts between consecutive measurements.
    let mut raw_bandwidths = Vec::new();
    let mut bulk_bandwidths = Vec::new();
    let mut raw_smalls = Vec::new();
    // One message per `send` (the worst case: a shard turn with one message for the peer),
    // and 64 (a turn in which 64 partitions have something for the peer).
    let per_sends = [1u64, 64];
    let mut small_rates: Vec<Vec<f64>> = vec![Vec::new(); per_sends.len()];
    let mut per_frame: Vec<Vec<f64>> = vec![Vec::new(); per_sends.len()];
    for round in 1..=rounds {
        let (bytes, _, elapsed) = raw_stream(64 * KIB, duration);
        raw_bandwidths.push(bytes as f64 / elapsed.as_secs_f64());
        let bulk = transport_stream(64 * KIB, 1, 256, duration);
        bulk_bandwidths.push(bulk.payload_bytes as f64 / bulk.elapsed.as_secs_f64());
        let (_, writes, elapsed) = raw_stream(256, duration);
        raw_smalls.push(writes as f64 / elapsed.as_secs_f64());
        println!(
            "  round {round}: raw 64 KiB writes {:.0} MiB/s, transport 64 KiB AppendRequests \
             {:.0} MiB/s ({} messages in {} frames, {} dropped); raw 256 B writes {:.0} k/s",
            raw_bandwidths[round - 1] / MIB,
            bulk_bandwidths[round - 1] / MIB,
            bulk.messages,
            bulk.frames,
            bulk.dropped,
            raw_smalls[round - 1] / 1e3,
        );
        for (i, &per_send) in per_sends.iter().enumerate() {
            let run = transport_stream(256, per_send, usize::MAX, duration);
            let rate = run.messages as f64 / run.elapsed.as_secs_f64();
            small_rates[i].push(rate);
            per_frame[i].push(run.messages as f64 / run.frames.max(1) as f64);
            println!(
                "  round {round}: transport 256 B AppendRequests, {per_send} per send: \
                 {:.0} k messages/s ({} in {} frames, {} dropped)",
                rate / 1e3,
                run.messages,
                run.frames,
                run.dropped
            );
        }
    }
    let raw_bandwidth = median(&raw_bandwidths);
    let bulk_bandwidth = median(&bulk_bandwidths);
    let raw_small = median(&raw_smalls);

    let (fsync_p50, fsync_p99) = raw_fsync(&std::env::temp_dir(), 1, 1);
    println!("  raw 4 KiB pwrite+fdatasync: p50 {fsync_p50:.1} µs, p99 {fsync_p99:.1} µs");
    // The loopback cluster's three nodes share this disk: a commit needs the second of three
    // concurrent flushes.
    let (quorum_p50, quorum_p99) = raw_fsync(&std::env::temp_dir(), 3, 2);
    println!(
        "  3 concurrent pwrite+fdatasync, 2nd to finish: p50 {quorum_p50:.1} µs, p99 {quorum_p99:.1} µs"
    );
    let (rtt_p50, rtt_p99) = loopback_rtt();
    println!("  loopback 1-byte round trip: p50 {rtt_p50:.1} µs, p99 {rtt_p99:.1} µs");
    let light = cluster(1, 1, cluster_seconds);
    let max = cluster(max_partitions, max_writers, cluster_seconds);
    for (name, run) in [("light", &light), ("max", &max)] {
        match run {
            Ok(r) => println!(
                "  cluster {name} load ({} partitions, {} writers): {:.0} writes/s, p50 {:.1} µs, p99 {:.1} µs",
                r.partitions, r.writers, r.writes_per_sec, r.p50, r.p99
            ),
            Err(why) => println!("  cluster {name} load: skipped: {why}"),
        }
    }
    println!("  load average at the end {}", load_average());

    println!();
    println!("| figure | measured | ratio | target | |");
    println!("|---|---|---|---|---|");
    println!(
        "| raw loopback TCP, 64 KiB writes | {:.0} MiB/s | – | – | |",
        raw_bandwidth / MIB
    );
    println!(
        "| raw loopback TCP, 256 B writes (one syscall each) | {:.0} k writes/s | – | – | |",
        raw_small / 1e3
    );
    let ratio = bulk_bandwidth / raw_bandwidth;
    println!(
        "| transport, 64 KiB-payload AppendRequests | {:.0} MiB/s | {ratio:.2} × raw | ≥ 0.5 × | {} |",
        bulk_bandwidth / MIB,
        verdict(ratio >= 0.5)
    );
    for (i, per_send) in per_sends.iter().enumerate() {
        let rate = median(&small_rates[i]);
        let ratio = rate / raw_small;
        println!(
            "| transport, 256 B AppendRequests, {per_send} per send | {:.0} k messages/s ({:.0} per frame) | {ratio:.2} × raw writes | ≥ 4 × | {} |",
            rate / 1e3,
            median(&per_frame[i]),
            verdict(ratio >= 4.0)
        );
    }
    println!(
        "| raw 4 KiB pwrite+fdatasync (p50 / p99) | {fsync_p50:.1} µs / {fsync_p99:.1} µs | – | – | |"
    );
    println!(
        "| loopback 1-byte round trip (p50 / p99) | {rtt_p50:.1} µs / {rtt_p99:.1} µs | – | – | |"
    );
    println!(
        "| 3 concurrent 4 KiB pwrite+fdatasync on the same disk, 2nd to finish (p50 / p99) | {quorum_p50:.1} µs / {quorum_p99:.1} µs | {:.2} × one fsync | – | |",
        quorum_p50 / fsync_p50
    );
    let bound = fsync_p50 + rtt_p50 + 40.0;
    let shared_disk_bound = quorum_p50 + rtt_p50 + 40.0;
    match &light {
        Ok(r) => println!(
            "| 3-node cluster, 1 writer, 16 B: commit p50 / p99 | {:.1} µs / {:.1} µs ({:.0} writes/s) | {:.2} × (fsync p50 + RTT p50 + 40 µs = {bound:.1} µs); {:.2} × with the shared-disk quorum flush ({shared_disk_bound:.1} µs) | ≤ 1 × | {} |",
            r.p50,
            r.p99,
            r.writes_per_sec,
            r.p50 / bound,
            r.p50 / shared_disk_bound,
            verdict(r.p50 <= bound)
        ),
        Err(why) => println!(
            "| 3-node cluster, 1 writer, 16 B: commit p50 | skipped: {why} | – | ≤ {bound:.1} µs | |"
        ),
    }
    match &max {
        Ok(r) => println!(
            "| 3-node cluster, {} partitions, {} writers, 16 B: committed writes/s (p50 / p99) | {:.0} ({:.0} µs / {:.0} µs) | {:.2} × goal | 1 M/s | {} |",
            r.partitions,
            r.writers,
            r.writes_per_sec,
            r.p50,
            r.p99,
            r.writes_per_sec / 1e6,
            verdict(r.writes_per_sec >= 1e6)
        ),
        Err(why) => println!(
            "| 3-node cluster, max load, 16 B: committed writes/s | skipped: {why} | – | 1 M/s | |"
        ),
    }
}
