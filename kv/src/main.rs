//! `kommander-kv --config FILE`: one node of the replicated key-value store.
//!
//! Prints `ready node=<id> http=<address>` on stdout once it serves; stops cleanly on
//! SIGTERM or SIGINT. Exit codes: 0 stopped cleanly, 1 runtime failure, 2 invalid
//! configuration (the field is named) or bad arguments.

use std::io::Write;
use std::process::ExitCode;

use kommander_kv::{Config, KvNode};
use tracing_subscriber::EnvFilter;

/// Environment variable overriding `transport.auth_secret` (as `kommander node`).
const AUTH_SECRET_ENV: &str = "KOMMANDER_AUTH_SECRET";
/// Log filter, `RUST_LOG` syntax (default `info`); logs go to stderr.
const LOG_ENV: &str = "KOMMANDER_LOG";

const USAGE: &str = "usage: kommander-kv --config FILE

FILE is a node's TOML configuration (the fields of `kommander node --help`) with a [kv] table:

    [kv]
    http_listen = \"127.0.0.1:8001\"   # the HTTP API (required)
    # http_advertise, snapshot_dir, key_bytes_max, body_bytes_max, requests_in_flight_max,
    # write_timeout_ms, read_timeout_ms, partition_moved_retries_max,
    # checkpoint_interval_entries, checkpoint_interval_bytes, checkpoint_check_interval_ms,
    # snapshot_queue_max, snapshot_bytes_max: see kv/README.md

Exit codes: 0 stopped cleanly, 1 runtime failure, 2 invalid configuration or arguments.";

const EXIT_FAILURE: u8 = 1;
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let filter = EnvFilter::try_from_env(LOG_ENV).unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, message)) => {
            eprintln!("kommander-kv: {message}");
            ExitCode::from(code)
        }
    }
}

fn config() -> Result<Config, (u8, String)> {
    let usage = |message: String| (EXIT_USAGE, message);
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = match args.as_slice() {
        [flag, path] if flag == "--config" => path,
        _ => return Err(usage(USAGE.to_owned())),
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| usage(format!("cannot read the configuration {path}: {e}")))?;
    let mut config = Config::from_toml(&text).map_err(|e| usage(format!("{path}: {e}")))?;
    if let Some(secret) = std::env::var_os(AUTH_SECRET_ENV) {
        let secret = secret
            .into_string()
            .map_err(|_| usage(format!("{AUTH_SECRET_ENV} is not valid UTF-8")))?;
        config.node.transport.auth_secret = Some(secret);
        config
            .validate()
            .map_err(|e| usage(format!("{e} (from {AUTH_SECRET_ENV})")))?;
    }
    Ok(config)
}

fn run() -> Result<(), (u8, String)> {
    let config = config()?;
    let failure = |message: String| (EXIT_FAILURE, message);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("kommander-kv")
        .build()
        .map_err(|e| failure(format!("cannot start the tokio runtime: {e}")))?;
    runtime.block_on(async {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .map_err(|e| failure(format!("cannot install the SIGTERM handler: {e}")))?;
        let node = KvNode::start(config).await.map_err(|e| {
            let code = if e.is_configuration() {
                EXIT_USAGE
            } else {
                EXIT_FAILURE
            };
            (code, e.to_string())
        })?;
        ready_line(
            node.raft().local_node_id().get(),
            &node.http_addr().to_string(),
        );
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
        tracing::info!("stopping");
        node.shutdown().await;
        Ok(())
    })
}

/// The line scripts wait for (stdout, flushed).
#[allow(clippy::print_stdout, reason = "the ready line is the binary's output")]
fn ready_line(node: u64, http: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "ready node={node} http={http}");
    let _ = out.flush();
}
