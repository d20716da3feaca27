//! What more than one benchmark measures or prints the same way: settings from the
//! environment, medians, the load average, and raw loopback TCP (the physical limit the
//! transport and snapshot transfer are compared with).
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
