//! `kommander`: run a node of a kommander-raft cluster, try a local cluster, or measure one.
//!
//! ```text
//! kommander node --config node.toml [--join SEED]... [--client-listen 127.0.0.1:7001] [--metrics-listen 127.0.0.1:9100]
//! kommander demo                      # 3 nodes on loopback, a few seconds of writes
//! kommander bench --nodes 3 --partitions 4 --writers 2048 --duration-secs 10 --json out.json
//! kommander wal inspect DATA_DIR [--json] [--entries]
//! kommander cluster members --connect CLIENT_ADDR --cluster-name NAME [--json]
//! kommander cluster remove ID --connect CLIENT_ADDR --cluster-name NAME [--json]
//! kommander partitions list|route KEY --connect CLIENT_ADDR --cluster-name NAME [--json]
//! kommander partitions create [ID] [--start HASH --end HASH] --connect ... --cluster-name ...
//! kommander partitions remove ID | split SOURCE [--target ID] [--boundary HASH]
//!                      | merge SURVIVOR SOURCE --connect ... --cluster-name ... [--json]
//! ```
//!
//! Exit codes: 0 success (and a clean shutdown on SIGTERM/SIGINT), 1 a runtime failure
//! (bind, WAL, join), 2 invalid usage or an invalid configuration (the message names the field;
//! also a non-loopback listen address without `auth_secret`, and a changed shard count),
//! 1 also a refused `cluster` or `partitions` request, 3 `wal inspect` found damage recovery would refuse, 130 `demo`/`bench` interrupted.
//! Logs go to stderr (`tracing`), filtered by the `KOMMANDER_LOG` environment variable
//! (`RUST_LOG` syntax, for example `KOMMANDER_LOG=debug` or `KOMMANDER_LOG=kommander_raft=debug`).

mod applied;
mod bench;
mod checkpoint;
mod client_port;
mod cluster;
mod connect;
mod exporter;
mod leader_log;
mod node;
mod outcome;
mod partitions;
mod readiness;
mod wal;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit code of a runtime failure.
const EXIT_FAILURE: u8 = 1;
/// Exit code of invalid usage or configuration.
const EXIT_USAGE: u8 = 2;

/// kommander-raft: thread-per-core, multi-partition Raft with its own io_uring WAL.
///
/// Logs go to stderr; set KOMMANDER_LOG (RUST_LOG syntax, e.g. `debug`) to change the filter.
#[derive(Debug, Parser)]
#[command(name = "kommander", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one node of a cluster from a TOML configuration file.
    ///
    /// Prints `ready node=<id> peer=<endpoint> listen=<addr> client=<addr|none>` on stdout
    /// once the node has joined its cluster and serves: every partition it hosts restored,
    /// with a known leader, and the node a voter of the roster (`peer`: the configured
    /// endpoint the other nodes use; `listen`: the address the peer port is bound to). Until
    /// then it logs what it waits for every 2 s. SIGTERM or SIGINT stops it cleanly (every
    /// appended entry is durable) with exit code 0.
    #[command(after_long_help = node::NODE_HELP)]
    Node(node::NodeArgs),
    /// Start a 3-node cluster in this process on loopback TCP (WAL in a temporary directory,
    /// removed at exit), write to it for a few seconds with a progress line per second, then
    /// print committed writes/s and commit latency percentiles.
    Demo(bench::DemoArgs),
    /// The load generator behind `demo`: an in-process cluster over loopback TCP, closed-loop
    /// writers on the partitions' leaders; prints throughput and p50/p99/p99.9/max commit
    /// latency, and optionally writes a JSON report.
    Bench(bench::BenchArgs),
    /// Write-ahead log tools (`wal inspect DIR`).
    Wal(wal::WalArgs),
    /// Membership of a running cluster through a node's client port (`cluster members`,
    /// `cluster remove ID`).
    Cluster(cluster::ClusterArgs),
    /// The partition map of a running cluster and its changes through a node's client port
    /// (`partitions list`, `create`, `remove`, `split`, `merge`, `route KEY`).
    Partitions(partitions::PartitionsArgs),
}

/// Default log filter of `demo` and `bench`: warnings, except the transport's, which at the
/// end of a run only report the in-process peers closing their connections.
const BENCH_LOG_FILTER: &str = "warn,kommander_raft::transport::tcp=error";

/// Installs the stderr log subscriber: `KOMMANDER_LOG` if set and valid, else `default`.
fn init_logging(default: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("KOMMANDER_LOG")
        .ok()
        .and_then(|spec| EnvFilter::try_new(spec).ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    // Colours only on a terminal: scripts and tests read the plain text.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Node(args) => {
            init_logging("info");
            node::run(&args)
        }
        Command::Demo(args) => {
            init_logging(BENCH_LOG_FILTER);
            bench::run_demo(&args)
        }
        Command::Bench(args) => {
            init_logging(BENCH_LOG_FILTER);
            bench::run_bench(&args)
        }
        Command::Wal(args) => {
            init_logging("warn");
            wal::run(&args)
        }
        Command::Cluster(args) => {
            init_logging("warn");
            cluster::run(&args)
        }
        Command::Partitions(args) => {
            init_logging("warn");
            partitions::run(&args)
        }
    }
}
