//! What more than one benchmark measures or prints the same way: settings from the
//! environment, medians, the load average, raw loopback TCP and fdatasync (the physical
//! limits the transport, snapshot transfer and split are compared with), and the pieces of a
//! three-node loopback cluster under closed-loop writers.
#![allow(dead_code, reason = "each benchmark uses part of it")]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::{Duration, Instant};

pub const KIB: usize = 1 << 10;
pub const MIB: f64 = (1 << 20) as f64;

/// The environment variable `name` parsed, or `default`.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

/// The 1, 5 and 15 minute load averages, printed beside every figure.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// CPU time this process has used (every thread, user and system), from `/proc/self/stat`
/// (10 ms resolution).
pub fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name (which may hold spaces) start at state, field 3;
    // utime and stime are fields 14 and 15, in clock ticks of 10 ms.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: u64 = after_name
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}

pub fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "**missed**" }
}

/// A connected loopback pair: (client side, server side), `TCP_NODELAY` on both.
pub fn loopback_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
    let (server, _) = listener.accept().expect("accept");
    client.set_nodelay(true).expect("nodelay");
    server.set_nodelay(true).expect("nodelay");
    (client, server)
}

/// `n` listeners on loopback ports the system picked, and their addresses.
pub fn loopback_listeners(n: usize) -> (Vec<TcpListener>, Vec<String>) {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind"))
        .collect();
    let addrs = listeners
        .iter()
        .map(|l| l.local_addr().expect("addr").to_string())
        .collect();
    (listeners, addrs)
}

/// Writes `chunk`-byte buffers (one `write_all` each, which is one syscall unless the socket
/// buffer is full) for `duration` while a thread drains the other end. Returns (bytes, writes,
/// time until the reader saw the last byte).
pub fn raw_stream(chunk: usize, duration: Duration) -> (u64, u64, Duration) {
    let (mut writer, mut reader) = loopback_pair();
    let drain = std::thread::spawn(move || {
        let mut buf = vec![0u8; 256 * KIB];
        let mut total = 0u64;
        loop {
            match reader.read(&mut buf) {
                Ok(0) => return total,
                Ok(n) => total += n as u64,
                Err(e) => panic!("raw reader: {e}"),
            }
        }
    });
    let buf = vec![0x5au8; chunk];
    let started = Instant::now();
    let mut writes = 0u64;
    while started.elapsed() < duration {
        for _ in 0..64.min(1 + (4 << 20) / chunk) {
            writer.write_all(&buf).expect("raw write");
            writes += 1;
        }
    }
    writer.shutdown(Shutdown::Write).expect("shutdown");
    let bytes = drain.join().expect("reader thread");
    (bytes, writes, started.elapsed())
}

/// `streams` loopback pairs at once, each carrying `bytes` in `chunk`-byte writes while a
/// thread drains its other end: the time from the first write until every reader saw its
/// last byte.
pub fn raw_copy(chunk: usize, bytes: u64, streams: usize) -> Duration {
    let barrier = std::sync::Barrier::new(streams + 1);
    std::thread::scope(|scope| {
        let copies: Vec<_> = (0..streams)
            .map(|_| {
                let (mut writer, mut reader) = loopback_pair();
                let barrier = &barrier;
                scope.spawn(move || {
                    let drain = std::thread::spawn(move || {
                        let mut buf = vec![0u8; 256 * KIB];
                        while reader.read(&mut buf).expect("raw reader") > 0 {}
                    });
                    let buf = vec![0x5au8; chunk];
                    barrier.wait();
                    let mut left = bytes;
                    while left > 0 {
                        let n = chunk.min(usize::try_from(left).unwrap_or(chunk));
                        writer.write_all(&buf[..n]).expect("raw write");
                        left -= n as u64;
                    }
                    writer.shutdown(Shutdown::Write).expect("shutdown");
                    drain.join().expect("reader thread");
                })
            })
            .collect();
        barrier.wait();
        let started = Instant::now();
        for copy in copies {
            copy.join().expect("raw copy");
        }
        started.elapsed()
    })
}

/// `files` threads at once, each writing `bytes` into its own file in `dir` (zero-filled and
/// synced first, untimed, as a WAL segment is before its records) as `chunk`-byte `pwrite`s,
/// each followed by `fdatasync`, like replicas sharing one disk: the time from the first
/// write until the last thread finished.
pub fn raw_durable_copy(dir: &std::path::Path, chunk: usize, bytes: u64, files: usize) -> Duration {
    use std::os::unix::fs::FileExt;
    let barrier = std::sync::Barrier::new(files + 1);
    std::thread::scope(|scope| {
        let writers: Vec<_> = (0..files)
            .map(|_| {
                let barrier = &barrier;
                scope.spawn(move || {
                    let mut file = tempfile::tempfile_in(dir).expect("create the raw WAL file");
                    let zeros = vec![0u8; MIB as usize];
                    let mut left = bytes;
                    while left > 0 {
                        let n = zeros
                            .len()
                            .min(usize::try_from(left).unwrap_or(zeros.len()));
                        file.write_all(&zeros[..n]).expect("zero-fill");
                        left -= n as u64;
                    }
                    file.sync_all().expect("sync");
                    let buf = vec![0xa5u8; chunk];
                    barrier.wait();
                    let mut offset = 0u64;
                    while offset < bytes {
                        let n = chunk.min(usize::try_from(bytes - offset).unwrap_or(chunk));
                        file.write_all_at(&buf[..n], offset).expect("pwrite");
                        file.sync_data().expect("fdatasync");
                        offset += n as u64;
                    }
                })
            })
            .collect();
        barrier.wait();
        let started = Instant::now();
        for writer in writers {
            writer.join().expect("raw WAL writer");
        }
        started.elapsed()
    })
}

/// The progress of closed-loop writers ([`writer`]), shared with what measures them.
#[derive(Default)]
pub struct Load {
    /// Writes committed so far.
    pub committed: std::sync::atomic::AtomicU64,
    /// While set, the writers wait.
    pub paused: std::sync::atomic::AtomicBool,
    /// Once set, the writers return.
    pub stop: std::sync::atomic::AtomicBool,
}

impl Load {
    /// Pauses or resumes the writers (a pause lets the writes in flight finish, a resume lets
    /// the writers find their leaders).
    pub async fn pause(&self, paused: bool) {
        use std::sync::atomic::Ordering;
        if self.paused.swap(paused, Ordering::Relaxed) != paused {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The node that leads `p`.
pub fn leader(
    rafts: &[kommander_raft::Raft],
    p: kommander_raft::PartitionId,
) -> Option<kommander_raft::Raft> {
    rafts.iter().find(|r| r.am_i_leader_quick(p)).cloned()
}

/// A closed-loop writer of 16 B entries to partition `p`, on its leader, until `load.stop`.
pub async fn writer(
    rafts: std::sync::Arc<Vec<kommander_raft::Raft>>,
    load: std::sync::Arc<Load>,
    p: kommander_raft::PartitionId,
) {
    use std::sync::atomic::Ordering;
    let payload = bytes::Bytes::from_static(b"0123456789abcdef");
    while !load.stop.load(Ordering::Relaxed) {
        if load.paused.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        }
        let written = match leader(&rafts, p) {
            Some(raft) => raft
                .replicate_logs(
                    p,
                    "w",
                    payload.clone(),
                    kommander_raft::ReplicateOptions::default(),
                )
                .await
                .is_ok(),
            None => false,
        };
        if written {
            load.committed.fetch_add(1, Ordering::Relaxed);
        } else {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

/// A checkpoint of `p` on its leader, asked again until one commits it.
pub async fn checkpoint(rafts: &[kommander_raft::Raft], p: kommander_raft::PartitionId) {
    loop {
        if let Some(raft) = leader(rafts, p)
            && raft.replicate_checkpoint(p).await.is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Node `node`'s configuration in a cluster of `addrs.len()` nodes on loopback (node `n` at
/// `addrs[n - 1]`), storing under `dir/node-<node>`: one shard, 10 ms ticks, elections after
/// 30–60 ticks, heartbeats every 5, seeded by its id.
pub fn loopback_node_config(
    node: u64,
    addrs: &[String],
    dir: &std::path::Path,
) -> kommander_raft::NodeConfig {
    let mut config = kommander_raft::NodeConfig::new(node, dir.join(format!("node-{node}")));
    config.endpoint = addrs[node as usize - 1].clone();
    config.peers = (1..=addrs.len() as u64)
        .filter(|&n| n != node)
        .map(|n| (n, addrs[n as usize - 1].clone()))
        .collect();
    config.shards = 1;
    config.tick_interval_ms = 10;
    config.election_timeout_ticks_min = 30;
    config.election_timeout_ticks_max = 60;
    config.heartbeat_interval_ticks = 5;
    config.seed = node;
    config
}

/// Node `node`'s configuration in an in-process three-node cluster (no endpoints: the nodes
/// talk over the in-memory transport or a driver's queue), its data under `dir`, `shards`
/// shard threads; with `bench_timing`, 10 ms ticks, elections after 20–40 and heartbeats every
/// 5 (else `NodeConfig`'s defaults), seeded by its id.
pub fn in_process_node_config(
    node: u64,
    dir: &std::path::Path,
    shards: usize,
    bench_timing: bool,
) -> kommander_raft::NodeConfig {
    let mut config = kommander_raft::NodeConfig::new(node, dir.join(format!("node-{node}")));
    config.peers = (1..=3)
        .filter(|&n| n != node)
        .map(|n| (n, String::new()))
        .collect();
    config.shards = shards;
    if bench_timing {
        config.tick_interval_ms = 10;
        config.election_timeout_ticks_min = 20;
        config.election_timeout_ticks_max = 40;
        config.heartbeat_interval_ticks = 5;
    }
    config.seed = node;
    config
}

/// Joins every node of `rafts` to the cluster at once, and waits until all joined.
pub async fn join_all(rafts: &[kommander_raft::Raft]) {
    let joins: Vec<_> = rafts
        .iter()
        .map(|raft| tokio::spawn(raft.join_cluster(None)))
        .collect();
    for join in joins {
        join.await.expect("join task").expect("joined");
    }
}
