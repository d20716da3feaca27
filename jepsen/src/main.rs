//! `kommander-jepsen`: Jepsen-style tests of five real `kommander-kv` processes, each in its
//! own network namespace on a bridge, under a seeded nemesis (iptables partitions, SIGKILL,
//! SIGSTOP), with the register workload checked for linearizability per key, the append
//! workload for lost, duplicated, invented, reordered and stale appends, and the replicas
//! checked to agree once healed. Run as root; see docs/testing.md ("Jepsen-style tests").
//!
//! Exit codes: 0 every check passed, 1 a violation or replicas that disagree,
//! 2 inconclusive (the checker's budget ran out), 3 the harness could not run.

mod append;
mod append_check;
mod bench;
mod check;
mod client;
mod cluster;
mod error;
mod http;
mod nemesis;
mod replicas;
mod rng;

use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};

use crate::append::AppendRecord;
use crate::check::{Report, StaleValue};
use crate::client::{ClientRecord, Shared};
use crate::cluster::{Cluster, NodeSettings};
use crate::error::Error;

/// Jepsen-style tests of real kommander-kv processes in network namespaces (run as root).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Seed of the nemesis schedule and the clients' choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Length of the nemesis schedule and of the workload, in seconds.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Concurrent clients per workload.
    #[arg(long, default_value_t = 5)]
    clients: u64,
    /// The longest pause of a client between two operations, in ms (0: none, for the bench
    /// mode's throughput).
    #[arg(long, default_value_t = 20)]
    think_ms_max: u64,
    /// The workloads the clients run (`both`: `--clients` of each at once).
    #[arg(long, value_enum, default_value_t = Workload::Both)]
    workload: Workload,
    /// The run's directory (configurations, data, one log per node); emptied first.
    /// Default: `/tmp/kommander-jepsen/seed-<seed>`.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// The `kommander-kv` binary. Default: next to this binary.
    #[arg(long)]
    kv_binary: Option<PathBuf>,
    /// Negative control: start the nodes with `kv.unsafe_local_reads` (GETs served from the
    /// local state without ReadIndex); the run must then report a violation.
    #[arg(long)]
    unsafe_local_reads: bool,
    /// Negative control: start the nodes with `kv.unsafe_ack_before_commit` (a leader answers
    /// a write `ok` before it commits); the run must then report lost acknowledged appends.
    #[arg(long)]
    unsafe_ack_before_commit: bool,
    /// Bench mode: no faults; the workloads run `--seconds`, then the throughput and the
    /// latencies per kind of operation are printed (the checks still run).
    #[arg(long)]
    no_nemesis: bool,
    /// The checker's budget of search states per key (past it: inconclusive).
    #[arg(long, default_value_t = 5_000_000)]
    explored_max: usize,
    /// Print the schedule and exit (no root needed, nothing started).
    #[arg(long)]
    schedule_only: bool,
    /// How long the healed replicas have to agree, in seconds.
    #[arg(long, default_value_t = 30)]
    converge_seconds: u64,
}

/// The workloads of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Workload {
    /// Read, write and compare-and-set registers (checked for linearizability).
    Register,
    /// Append to lists and read them (checked for lost, duplicated, reordered appends).
    Append,
    /// Both at once.
    Both,
}

impl Workload {
    fn registers(self) -> bool {
        self != Self::Append
    }

    fn appends(self) -> bool {
        self != Self::Register
    }
}

/// A client's deadline for one request: beyond the store's write timeout, so the store's own
/// `unknown` answer normally comes first.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
const WRITE_TIMEOUT_MS: u64 = 2_000;
const READ_TIMEOUT_MS: u64 = 1_000;

const EXIT_VIOLATION: u8 = 1;
const EXIT_INCONCLUSIVE: u8 = 2;
const EXIT_HARNESS: u8 = 3;

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(Report::Pass) => ExitCode::SUCCESS,
        Ok(Report::Violation) => ExitCode::from(EXIT_VIOLATION),
        Ok(Report::Inconclusive) => ExitCode::from(EXIT_INCONCLUSIVE),
        Err(error) => {
            eprintln!("kommander-jepsen: {error}");
            ExitCode::from(EXIT_HARNESS)
        }
    }
}

/// Prints a line of the run's report (stdout is the report).
#[allow(clippy::print_stdout, reason = "the report is the binary's output")]
pub(crate) fn say(line: &str) {
    println!("{line}");
}

fn run(args: &Args) -> Result<Report, Error> {
    let schedule = if args.no_nemesis {
        Vec::new()
    } else {
        nemesis::schedule(args.seed, args.seconds)
    };
    if args.schedule_only {
        print_schedule(&schedule);
        return Ok(Report::Pass);
    }
    if !rustix::process::geteuid().is_root() {
        return Err(Error::Refused(
            "must run as root (it creates network namespaces, a bridge and iptables rules): \
             sudo target/release/kommander-jepsen ..."
                .to_owned(),
        ));
    }
    let binary = match &args.kv_binary {
        Some(binary) => binary.clone(),
        None => std::env::current_exe()
            .map_err(Error::io("locate this binary"))?
            .with_file_name("kommander-kv"),
    };
    if !binary.is_file() {
        return Err(Error::Refused(format!(
            "no kommander-kv binary at {}: build it with \
             `cargo build --release -p kommander-kv`, on its own (or pass --kv-binary)",
            binary.display()
        )));
    }
    ensure_iptables()?;
    let directory = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("/tmp/kommander-jepsen/seed-{}", args.seed)));
    if directory.exists() {
        std::fs::remove_dir_all(&directory)
            .map_err(Error::io(format!("empty {}", directory.display())))?;
    }
    std::fs::create_dir_all(&directory)
        .map_err(Error::io(format!("create {}", directory.display())))?;

    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .map_err(Error::io("install the signal handler"))?;
    }

    say(&format!(
        "kommander-jepsen seed={} seconds={} clients={} workload={:?} no_nemesis={} \
         unsafe_local_reads={} unsafe_ack_before_commit={} dir={}",
        args.seed,
        args.seconds,
        args.clients,
        args.workload,
        args.no_nemesis,
        args.unsafe_local_reads,
        args.unsafe_ack_before_commit,
        directory.display()
    ));
    print_schedule(&schedule);

    let mut cluster = Cluster::start(
        &directory,
        NodeSettings {
            binary,
            unsafe_local_reads: args.unsafe_local_reads,
            unsafe_ack_before_commit: args.unsafe_ack_before_commit,
            write_timeout_ms: WRITE_TIMEOUT_MS,
            read_timeout_ms: READ_TIMEOUT_MS,
        },
    )?;
    say("cluster up: 5 nodes, one network namespace each");

    let client_stop = Arc::new(AtomicBool::new(false));
    let shared = Arc::new(Shared {
        epoch: Instant::now(),
        next_value: AtomicU64::new(1),
        stop: Arc::clone(&client_stop),
        request_timeout: REQUEST_TIMEOUT,
        think_ms_max: args.think_ms_max,
    });
    let register_clients: Vec<_> = (0..args.clients)
        .filter(|_| args.workload.registers())
        .map(|client| {
            let shared = Arc::clone(&shared);
            let seed = args.seed;
            std::thread::spawn(move || client::run(client, seed, &shared))
        })
        .collect();
    let append_clients: Vec<_> = (0..args.clients)
        .filter(|_| args.workload.appends())
        .map(|client| {
            let shared = Arc::clone(&shared);
            let seed = args.seed;
            std::thread::spawn(move || append::run(client, seed, &shared))
        })
        .collect();
    let sampler = {
        let stop = Arc::clone(&client_stop);
        std::thread::spawn(move || replicas::sample_until(&stop))
    };

    let nemesis_result = if args.no_nemesis {
        sleep_unless(&stop, Duration::from_secs(args.seconds));
        Ok(())
    } else {
        run_schedule(&mut cluster, &schedule, &stop, shared.epoch)
    };
    let elapsed = shared.epoch.elapsed();
    client_stop.store(true, Ordering::Relaxed);
    let records: Vec<ClientRecord> = register_clients
        .into_iter()
        .filter_map(|client| client.join().ok())
        .collect();
    let append_records: Vec<AppendRecord> = append_clients
        .into_iter()
        .filter_map(|client| client.join().ok())
        .collect();
    let samples = sampler.join().unwrap_or_default();
    nemesis_result?;
    nemesis::heal(&mut cluster)?;
    say("healed; clients stopped");
    if stop.load(Ordering::Relaxed) {
        return Err(Error::Refused("stopped by a signal (torn down)".to_owned()));
    }

    let crashed = cluster.crashes().to_vec();
    for (node, status) in &crashed {
        say(&format!(
            "node {node} exited by itself ({status}): see {}",
            cluster.log_path(*node).display()
        ));
    }
    let mut report = if crashed.is_empty() {
        Report::Pass
    } else {
        Report::Violation
    };
    if args.no_nemesis {
        bench::report(&records, &append_records, elapsed);
    }
    if args.workload.registers() {
        report = report.max(check::register(&records, args.explored_max));
    }
    if args.workload.appends() {
        print_append_counts(&append_records);
    }
    let converge = Duration::from_secs(args.converge_seconds);
    let mut paths: Vec<String> = Vec::new();
    if args.workload.registers() {
        paths.extend((0..client::KEYS).map(client::key_path));
    }
    if args.workload.appends() {
        paths.extend((0..append::KEYS).map(append::key_path));
    }
    match check::converged(&paths, converge, &stop) {
        None => report = Report::Violation,
        Some(agreed) if args.workload.appends() => {
            report = report.max(check_appends(&append_records, &agreed));
        }
        Some(_) => {}
    }
    if !replicas::agree(samples, converge, &stop) {
        report = Report::Violation;
    }
    say(&format!("logs: {}/node<N>.log", directory.display()));
    Ok(report)
}

/// The append workload's counts, as the register workload's.
fn print_append_counts(records: &[AppendRecord]) {
    let operations = records
        .iter()
        .map(|record| record.operations.len())
        .sum::<usize>();
    let (failed, failed_by) = check::failed_summary(records.iter().map(|record| &record.failed));
    let redirects: u64 = records.iter().map(|record| record.redirects).sum();
    say(&format!(
        "append history: {operations} operations kept; {failed} failed, left out \
         ({failed_by}); {redirects} redirects followed"
    ));
}

/// The append checks against the final lists the healed nodes agreed on.
fn check_appends(
    records: &[AppendRecord],
    agreed: &std::collections::BTreeMap<String, StaleValue>,
) -> Report {
    let mut finals = std::collections::BTreeMap::new();
    for key in 0..append::KEYS {
        let list = match agreed.get(&append::key_path(key)) {
            Some(StaleValue::Absent) => Some(Vec::new()),
            Some(StaleValue::Value(body)) => append::parse_list(body),
            Some(StaleValue::NoAnswer(_)) | None => None,
        };
        let Some(list) = list else {
            say(&format!(
                "appends: VIOLATION, a{key}'s final list does not parse"
            ));
            return Report::Violation;
        };
        finals.insert(key, list);
    }
    if append_check::report(&append_check::check(records, &finals)) {
        Report::Pass
    } else {
        Report::Violation
    }
}

fn print_schedule(schedule: &[nemesis::Round]) {
    say("schedule:");
    for (number, round) in schedule.iter().enumerate() {
        say(&format!("  {:>2}. {round}", number + 1));
    }
}

/// Runs every round of `schedule`, stopping early on a signal.
fn run_schedule(
    cluster: &mut Cluster,
    schedule: &[nemesis::Round],
    stop: &AtomicBool,
    epoch: Instant,
) -> Result<(), Error> {
    for (number, round) in schedule.iter().enumerate() {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        say(&format!(
            "[{:>6.1}s] round {}: {round}",
            epoch.elapsed().as_secs_f64(),
            number + 1
        ));
        nemesis::apply(cluster, &round.fault)?;
        sleep_unless(stop, round.held);
        nemesis::heal(cluster)?;
        sleep_unless(stop, round.recovery);
    }
    Ok(())
}

fn sleep_unless(stop: &AtomicBool, duration: Duration) {
    let deadline = Instant::now() + duration;
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Installs iptables with apt when it is missing (and says so).
fn ensure_iptables() -> Result<(), Error> {
    let present = Command::new("iptables")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if present {
        return Ok(());
    }
    say("iptables is missing: installing it with apt-get");
    cluster::run("apt-get", &["update"])?;
    cluster::run("apt-get", &["install", "-y", "iptables"])
}
