//! `kommander node`: one node of a cluster, configured by a TOML file.
//!
//! ```text
//! load + validate config (exit 2 naming the field) ─► metrics port (optional)
//!   ─► bind the peer port ─► Raft::builder…start
//!   ─► serve peers ─► join the cluster (its peers, or the seeds of `--join`: admitted as
//!      learner, promoted; retried, progress logged; exit 1 after `join_timeout_ms`, 2 for
//!      a join that cannot be done as asked) ─► client port (optional)
//!   ─► main loop: stats line every --stats-interval-secs, checkpoints as due
//!      (checkpoint.rs), leader changes and events logged, and until the node serves (every
//!      partition restored, with a known leader: readiness.rs; what it waits for logged):
//!      then stdout `ready node=<id> peer=<endpoint> listen=<addr> client=<addr|none>`
//!      ... until SIGTERM/SIGINT
//!   ─► close the client port ─► shutdown (appended entries durable) ─► exit 0
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use kommander_raft::transport::tcp::{TcpTransport, TransportError};
use kommander_raft::{
    HostStartError, JoinError, MemberRole, NodeConfig, Raft, RaftEvent, StartError,
};
use signal_hook::consts::{SIGINT, SIGTERM};
use tokio::sync::{broadcast, watch};
use tracing::{debug, error, info, warn};

use crate::applied::AppliedCounter;
use crate::checkpoint::{CHECK_INTERVAL, CheckpointArgs, Checkpointer};
use crate::client_port::{ClientPort, ClientPortConfig};
use crate::leader_log::LeaderLog;
use crate::readiness::Readiness;
use crate::{EXIT_FAILURE, EXIT_USAGE};

/// The end of `kommander node --help`: an example configuration and the environment.
pub(crate) const NODE_HELP: &str = r#"Example node.toml (node 1 of a 3-node cluster; node_id and data_dir are required; every other field not given takes its default):

    node_id = 1
    endpoint = "10.0.0.1:7100"        # where the other nodes reach this one
    cluster_name = "orders"           # nodes of other clusters are refused
    data_dir = "/var/lib/kommander"   # one WAL directory per shard in it
    shards = 2                        # keep it fixed: a data_dir keeps its shard count
    initial_partitions = 8

    [peers]                           # every other node: id = endpoint (none: see --join)
    2 = "10.0.0.2:7100"
    3 = "10.0.0.3:7100"

    [transport]
    listen_address = "0.0.0.0:7100"   # default: endpoint

Environment:
    KOMMANDER_AUTH_SECRET   the cluster's shared secret (at least 16 bytes; overrides
                            transport.auth_secret). Required to listen on a non-loopback
                            address unless transport.allow_unauthenticated = true.
    KOMMANDER_LOG           log filter, RUST_LOG syntax (default: info), logs on stderr.

Growing a cluster: start one node with no [peers] (a one-node cluster), then each new node
with no [peers] and `--join <endpoint of any member>`; it becomes a learner, catches up, is
promoted to voter, then prints `ready`. `kommander cluster members|remove` show and change the
roster through a client port. A machine that lost its disk: start the new machine with the
same node_id, an empty data directory and `--join` a survivor (it votes once its admission
committed).

Exit codes: 0 stopped cleanly, 1 runtime failure (also a join that did not complete within
join_timeout_ms), 2 invalid configuration (named field) or a join that cannot be done as asked
(--join with only this node's own endpoint).
Inspect the data afterwards with `kommander wal inspect <data_dir>`."#;

/// Environment variable overriding `transport.auth_secret` (keeps the secret out of the file).
pub(crate) const AUTH_SECRET_ENV: &str = "KOMMANDER_AUTH_SECRET";

/// How long one `join_cluster` call waits before the node logs that it is still waiting.
const JOIN_PROGRESS_INTERVAL: Duration = Duration::from_secs(5);

/// How often a node that does not serve yet looks at its partitions again (readiness.rs).
const READINESS_CHECK_INTERVAL: Duration = Duration::from_millis(20);

/// Options of `kommander node`.
#[derive(Debug, clap::Args)]
pub(crate) struct NodeArgs {
    /// The node's configuration: a TOML file with the fields of `NodeConfig` (node_id,
    /// endpoint, peers, data_dir, shards, initial_partitions, timing, limits, and a
    /// `[transport]` table with listen_address, auth_secret and the connection limits).
    /// Unknown fields are refused.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Serve the client protocol (`transport::tcp::client`) on this address, e.g.
    /// `127.0.0.1:7101` (port 0 picks a free port, printed in the `ready` line). Without it
    /// the node has no client port. Clients authenticate like peers (same cluster name and
    /// secret).
    #[arg(long, value_name = "ADDR")]
    client_listen: Option<String>,
    /// Serve the node's metrics in Prometheus text format over HTTP on this address, e.g.
    /// `127.0.0.1:9100` (scrape `http://ADDR/metrics`; the names are in docs/metrics.md).
    /// The port must be given (not 0). Without it no metrics are recorded.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
    /// Client connections open at once; further connections are closed on accept.
    #[arg(long, value_name = "N", default_value_t = 64)]
    client_connections_max: usize,
    /// Requests in flight per client connection (answers go back in request order); the
    /// node stops reading a connection that has this many unanswered requests.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    client_inflight_max: usize,
    /// A client's replication not known after this many milliseconds is answered
    /// `ProposalTimeout` (it may still commit).
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    client_request_timeout_ms: u64,
    /// Period of the stats log line (entries applied, transport counters), in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    stats_interval_secs: u64,
    /// Leader changes logged one per line at `info` in a second; the rest of that second's
    /// are summed up in one line.
    #[arg(long, value_name = "N", default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(1..))]
    leader_changes_logged_per_sec: u32,
    /// Join a running cluster through this seed: the peer endpoint (`host:port`) of any of
    /// its members; repeatable. The node needs no `[peers]`: it asks partition 0's leader to
    /// add it as a learner, catches up, and is promoted to voter (progress logged); `ready`
    /// is printed once it is a voter everywhere. A node that joined before restarts with the
    /// same data_dir with or without it. Without it, a node with no `[peers]` and an empty
    /// data_dir is a one-node cluster others can join.
    #[arg(long, value_name = "SEED")]
    join: Vec<String>,
    /// When to checkpoint the partitions this node leads (on by default).
    #[command(flatten)]
    checkpoints: CheckpointArgs,
}

/// A start-up failure: its message and the exit code.
struct ExitError {
    code: u8,
    message: String,
}

impl ExitError {
    fn usage(message: impl Into<String>) -> Self {
        Self {
            code: EXIT_USAGE,
            message: message.into(),
        }
    }

    fn failure(message: impl Into<String>) -> Self {
        Self {
            code: EXIT_FAILURE,
            message: message.into(),
        }
    }
}

/// Runs the node until SIGTERM/SIGINT.
pub(crate) fn run(args: &NodeArgs) -> ExitCode {
    match run_node(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(fatal) => {
            // The one place a fatal error is reported, whatever KOMMANDER_LOG filters.
            eprintln!("kommander node: {}", fatal.message);
            ExitCode::from(fatal.code)
        }
    }
}

/// Reads, parses and validates the configuration; applies [`AUTH_SECRET_ENV`].
fn load_config(args: &NodeArgs) -> Result<NodeConfig, ExitError> {
    let text = std::fs::read_to_string(&args.config).map_err(|e| {
        ExitError::usage(format!(
            "cannot read the configuration {}: {e}",
            args.config.display()
        ))
    })?;
    let mut config = NodeConfig::from_toml(&text)
        .map_err(|e| ExitError::usage(format!("{}: {e}", args.config.display())))?;
    if let Some(secret) = std::env::var_os(AUTH_SECRET_ENV) {
        let secret = secret
            .into_string()
            .map_err(|_| ExitError::usage(format!("{AUTH_SECRET_ENV} is not valid UTF-8")))?;
        config.transport.auth_secret = Some(secret);
        config
            .validate()
            .map_err(|e| ExitError::usage(format!("{e} (from {AUTH_SECRET_ENV})")))?;
    }
    let checks = [
        (
            "--client-connections-max",
            args.client_connections_max as u64,
        ),
        ("--client-inflight-max", args.client_inflight_max as u64),
        (
            "--client-request-timeout-ms",
            args.client_request_timeout_ms,
        ),
        ("--stats-interval-secs", args.stats_interval_secs),
    ];
    for (option, value) in checks {
        if value == 0 {
            return Err(ExitError::usage(format!("{option} must be positive")));
        }
    }
    // The exporter binds on its own and does not say which port the OS picked.
    if args.metrics_listen.is_some_and(|a| a.port() == 0) {
        return Err(ExitError::usage(
            "--metrics-listen needs a port other than 0",
        ));
    }
    Ok(config)
}

fn run_node(args: &NodeArgs) -> Result<(), ExitError> {
    let config = load_config(args)?;
    let node_id = config.node_id;
    // Signals first: from here on SIGTERM/SIGINT mean "stop cleanly", even while joining.
    let (stop_sender, stop) = watch::channel(false);
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])
        .map_err(|e| ExitError::failure(format!("cannot install signal handlers: {e}")))?;
    std::thread::Builder::new()
        .name("kommander-signals".to_owned())
        .spawn(move || {
            for signal in signals.forever() {
                let name = if signal == SIGTERM {
                    "SIGTERM"
                } else {
                    "SIGINT"
                };
                info!(signal = name, "received {name}; shutting down");
                let _ = stop_sender.send(true);
            }
        })
        .map_err(|e| ExitError::failure(format!("cannot start the signal thread: {e}")))?;

    // Before the node starts: the shards take their metric handles from this recorder.
    if let Some(address) = args.metrics_listen {
        crate::exporter::serve(address).map_err(ExitError::failure)?;
    }
    let (tcp_config, tcp_cluster) = (config.tcp_config(), config.tcp_cluster());
    let transport = TcpTransport::bind(&tcp_config, &tcp_cluster).map_err(|e| match e {
        TransportError::Config(_) | TransportError::Unauthenticated(_) => {
            ExitError::usage(e.to_string())
        }
        other => ExitError::failure(other.to_string()),
    })?;
    // One counter per initial partition plus the system partition; later ones share one.
    let app = Arc::new(AppliedCounter::new(config.initial_partitions + 1));
    let client_config = ClientPortConfig {
        transport: tcp_config,
        cluster: tcp_cluster,
        connections_max: args.client_connections_max,
        inflight_max: args.client_inflight_max,
        request_timeout: Duration::from_millis(args.client_request_timeout_ms),
    };
    let starting = Raft::builder(config)
        .state_machine(app.clone())
        .state_transfer(app.clone())
        .transport(transport.clone())
        .start();
    let raft = block_on(starting)?.map_err(|e| match e {
        StartError::Config(e) => ExitError::usage(e.to_string()),
        // `shards` does not match the data directory: the configuration is what is wrong.
        StartError::Shards(e @ HostStartError::ShardCountChanged { .. }) => {
            ExitError::usage(e.to_string())
        }
        other => ExitError::failure(format!("starting the node: {other}")),
    })?;
    let result = serve(args, &raft, &transport, &app, client_config, stop);
    // Whatever happened, stop cleanly: entries appended so far become durable.
    if let Err(fatal) = block_on(raft.shutdown()) {
        warn!("{}; dropping the node", fatal.message);
    }
    transport.shutdown();
    for (partition, digest) in app.digests() {
        info!(
            partition = partition.get(),
            index = digest.index,
            digest = %format!("{:016x}", digest.hash),
            "applied digest"
        );
    }
    match &result {
        Ok(()) => info!(node = node_id, "stopped cleanly"),
        // The error itself is printed once, by `run`.
        Err(_) => warn!(node = node_id, "stopped after a fatal error"),
    }
    result
}

/// Runs `future` to completion on a current-thread runtime of its own (starting and stopping
/// the node happen outside the main loop's runtime).
fn block_on<F: std::future::Future>(future: F) -> Result<F::Output, ExitError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| ExitError::failure(format!("cannot start a tokio runtime: {e}")))?;
    Ok(runtime.block_on(future))
}

/// Serves peers, joins, serves clients and logs stats until `stop`.
fn serve(
    args: &NodeArgs,
    raft: &Raft,
    transport: &Arc<TcpTransport>,
    app: &Arc<AppliedCounter>,
    client_config: ClientPortConfig,
    mut stop: watch::Receiver<bool>,
) -> Result<(), ExitError> {
    // Bound and advertised before the transport serves: every peer's handshake tells it.
    let bound_client_port = (args.client_listen.as_deref())
        .map(|address| ClientPort::bind(address, &raft.config().endpoint, transport))
        .transpose()
        .map_err(ExitError::failure)?;
    transport
        .serve(raft.inbound())
        .map_err(|e| ExitError::failure(format!("serving peers: {e}")))?;
    // The main loop's runtime (signals, stats timer, events); the client port's writer
    // threads await answers (with a tokio deadline) through its handle.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("kommander-runtime")
        .enable_time()
        .build()
        .map_err(|e| ExitError::failure(format!("cannot start the tokio runtime: {e}")))?;
    let mut events = raft.subscribe();
    let node = raft.local_node_id().get();
    let endpoint = &raft.config().endpoint;
    let listen = transport.local_addr().to_string();
    if endpoint
        .rsplit_once(':')
        .is_some_and(|(_, port)| port == "0")
    {
        // Port 0 binds a free port, but the endpoint the roster records and peers are told
        // keeps the 0: nobody reaches this node at it.
        warn!(
            node,
            %endpoint,
            %listen,
            "the endpoint's port is 0: no other node can reach this one at it (a one-node \
             cluster only); give the port peers should use"
        );
    }
    info!(node, %endpoint, %listen, "joining the cluster");
    let joined = runtime.block_on(join(raft, &args.join, &mut stop))?;
    if !joined {
        return Ok(());
    }
    match raft.local_role() {
        Some(MemberRole::Voter) if !args.join.is_empty() => {
            info!(node, "joined the cluster: promoted to voter everywhere");
        }
        _ => info!(node, "joined the cluster"),
    }
    let client_port = match bound_client_port {
        Some(bound) => Some(
            bound
                .start(client_config, raft.clone(), runtime.handle().clone())
                .map_err(|e| ExitError::failure(format!("client port: {e}")))?,
        ),
        None => None,
    };
    let client_addr = client_port
        .as_ref()
        .map_or_else(|| "none".to_owned(), |p| p.local_addr().to_string());
    let mut readiness = Readiness::new(raft, Instant::now());
    let mut serving = false;

    let interval = Duration::from_secs(args.stats_interval_secs);
    let mut checkpoints = Checkpointer::new(args.checkpoints, raft.config().initial_partitions);
    let checkpoints_committed = checkpoints.committed();
    info!(node, checkpoints = %args.checkpoints.describe(), "checkpoint policy");
    let duplicate = runtime.block_on(async {
        let mut ticker = tokio::time::interval(interval);
        ticker.tick().await;
        let mut checkpoint_ticker = tokio::time::interval(CHECK_INTERVAL);
        let mut readiness_ticker = tokio::time::interval(READINESS_CHECK_INTERVAL);
        readiness_ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut events_open = true;
        let mut leaders = LeaderLog::new(args.leader_changes_logged_per_sec, Instant::now());
        let mut duplicate = None;
        loop {
            let summary_due = leaders.summary_due();
            tokio::select! {
                _ = stop.changed() => break,
                _ = readiness_ticker.tick(), if !serving => {
                    serving = readiness.check(raft, Instant::now()).await;
                    if serving {
                        ready_line(node, endpoint, &listen, &client_addr);
                    }
                }
                _ = checkpoint_ticker.tick(), if checkpoints.enabled() => {
                    checkpoints.check(raft, app);
                }
                () = sleep_until(summary_due), if summary_due.is_some() => {
                    log_left_out(&mut leaders, Instant::now());
                }
                _ = ticker.tick() => {
                    let applied = app.stats();
                    let net = transport.stats();
                    let clients = client_port.as_ref().map(ClientPort::stats).unwrap_or_default();
                    info!(
                        applied = applied.applied,
                        restored = applied.restored,
                        partitions_active = applied.partitions_active,
                        busiest = ?applied.busiest,
                        frames_sent = net.frames_sent,
                        frames_received = net.frames_received,
                        bytes_sent = net.bytes_sent,
                        bytes_received = net.bytes_received,
                        messages_dropped = net.messages_dropped,
                        connects = net.connects,
                        handshakes_failed = net.handshakes_failed,
                        connections_dropped = net.connections_dropped,
                        client_connections = clients.connections_open,
                        client_requests = clients.requests,
                        checkpoints = checkpoints_committed.load(Ordering::Relaxed),
                        "stats"
                    );
                }
                event = events.recv(), if events_open => {
                    // Kommander exits the process: so does the binary (exit code 1).
                    if let Ok(RaftEvent::DuplicateNode { reason, .. }) = &event {
                        duplicate = Some(reason.clone());
                        break;
                    }
                    events_open = log_event(event, &mut leaders);
                }
            }
        }
        duplicate
    });
    info!(node, "closing the client port and stopping the node");
    if let Some(port) = client_port {
        port.shutdown();
    }
    // Pending client replications get their answers (`Unknown` once the node stopped).
    runtime.block_on(raft.shutdown());
    runtime.shutdown_timeout(Duration::from_secs(1));
    match duplicate {
        Some(reason) => Err(ExitError::failure(format!(
            "another live process holds node id {node}: {reason}"
        ))),
        None => Ok(()),
    }
}

/// Joins (through `seeds` when there are some: `--join`), logging progress until it is done.
/// `Ok(false)`: stopped first.
async fn join(
    raft: &Raft,
    seeds: &[String],
    stop: &mut watch::Receiver<bool>,
) -> Result<bool, ExitError> {
    let started = Instant::now();
    let limit = Duration::from_millis(raft.config().join_timeout_ms);
    let mut role_logged = None;
    loop {
        let left = limit.saturating_sub(started.elapsed());
        let wait = Some(left.min(JOIN_PROGRESS_INTERVAL));
        // Both calls are idempotent: each round continues where the last one stopped.
        let joining: Pin<Box<dyn Future<Output = Result<(), JoinError>> + Send>> =
            if seeds.is_empty() {
                Box::pin(raft.join_cluster(wait))
            } else {
                Box::pin(raft.join_cluster_with_seeds(seeds.to_vec(), wait))
            };
        tokio::select! {
            result = joining => match result {
                Ok(()) => return Ok(true),
                Err(JoinError::Timeout { leader, .. }) => {
                    let waited_ms = started.elapsed().as_millis() as u64;
                    let role = raft.local_role();
                    if started.elapsed() >= limit {
                        return Err(ExitError::failure(join_timed_out(limit, seeds, role, leader)));
                    }
                    if !seeds.is_empty() && role != role_logged {
                        role_logged = role;
                        if role == Some(MemberRole::Learner) {
                            info!(waited_ms, "admitted as a learner; catching up before promotion");
                        }
                    }
                    info!(
                        waited_ms,
                        join_timeout_ms = limit.as_millis() as u64,
                        system_leader = ?leader,
                        "still joining: {}",
                        join_waits_for(seeds, role)
                    );
                }
                Err(JoinError::Invalid { reason }) => {
                    return Err(ExitError::usage(format!("cannot join as asked: {reason}")));
                }
                Err(other) => return Err(ExitError::failure(format!("joining the cluster: {other}"))),
            },
            _ = stop.changed() => return Ok(false),
        }
    }
}

/// What a join still waits for, in words.
fn join_waits_for(seeds: &[String], role: Option<MemberRole>) -> &'static str {
    match (seeds.is_empty(), role) {
        (true, _) => {
            "waiting for the cluster's partition map (a quorum of the configured nodes must \
             answer)"
        }
        (false, None) => "waiting for partition 0's leader to admit this node (through the seeds)",
        (false, Some(MemberRole::Learner)) => "waiting: promotion (a learner, catching up)",
        (false, Some(_)) => "waiting until every partition here lists this node as a voter",
    }
}

/// The message of a join that ran out of `join_timeout_ms`.
fn join_timed_out(
    limit: Duration,
    seeds: &[String],
    role: Option<MemberRole>,
    leader: Option<kommander_raft::NodeId>,
) -> String {
    let leader = leader.map_or_else(|| "none known".to_owned(), |l| l.to_string());
    if seeds.is_empty() {
        format!(
            "could not join the cluster within join_timeout_ms ({} ms): no quorum of the \
             configured nodes answered (system partition leader: {leader})",
            limit.as_millis(),
        )
    } else {
        format!(
            "could not join the cluster through {} within join_timeout_ms ({} ms): still {} \
             (system partition leader: {leader})",
            seeds.join(", "),
            limit.as_millis(),
            join_waits_for(seeds, role),
        )
    }
}

/// The line tests and scripts wait for (stdout, flushed), printed once the node serves
/// (readiness.rs): `peer` is the configured endpoint
/// the other nodes reach this one at, `listen` the address the peer port is bound to (which
/// may be `0.0.0.0:…`).
#[allow(clippy::print_stdout)]
fn ready_line(node: u64, peer: &str, listen: &str, client: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "ready node={node} peer={peer} listen={listen} client={client}"
    );
    let _ = out.flush();
}

/// Sleeps until `due` (`None`: for ever; the caller's `select!` guard keeps it from being
/// polled then).
async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await,
        None => std::future::pending().await,
    }
}

/// Sums up the leader changes of a second that is over which were not logged one by one.
fn log_left_out(leaders: &mut LeaderLog, now: Instant) {
    if let Some(left_out) = leaders.left_out(now) {
        info!(
            left_out,
            "leader changes of the last second not logged one by one (over \
             --leader-changes-logged-per-sec)"
        );
    }
}

/// Logs one event; `false` once the event channel is closed.
fn log_event(
    event: Result<RaftEvent, broadcast::error::RecvError>,
    leaders: &mut LeaderLog,
) -> bool {
    match event {
        Ok(RaftEvent::LeaderChanged {
            partition,
            leader,
            term,
            ..
        }) => {
            let now = Instant::now();
            log_left_out(leaders, now);
            if leaders.admit(now) {
                let leader = leader.map_or_else(|| "none".to_owned(), |l| l.to_string());
                info!(%partition, %leader, %term, "leader changed");
            }
        }
        Ok(RaftEvent::ShardFailed { shard, reason }) => {
            error!(shard, %reason, "shard failed: its partitions refuse every request");
        }
        Ok(RaftEvent::RestoreFailed { partition, reason }) => {
            error!(%partition, %reason, "restore failed: the partition stays closed");
        }
        Ok(RaftEvent::RestoreFinished {
            partition,
            entries_delivered,
        }) if entries_delivered > 0 => info!(%partition, entries_delivered, "restored"),
        Ok(RaftEvent::SnapshotSent {
            partition,
            follower,
            index,
            bytes,
        }) => info!(%partition, %follower, %index, bytes, "snapshot sent"),
        Ok(RaftEvent::SnapshotInstalled {
            partition,
            leader,
            index,
            bytes,
        }) => info!(%partition, %leader, %index, bytes, "snapshot installed"),
        Ok(RaftEvent::ReplicationError {
            partition,
            index,
            entry,
            reason,
        }) => {
            let log_type = entry.as_ref().map_or("", |e| e.log_type());
            warn!(%partition, %index, log_type, ?reason, "replication error");
        }
        Ok(other) => debug!(?other, "event"),
        Err(broadcast::error::RecvError::Lagged(missed)) => {
            debug!(missed, "event log lagged");
        }
        Err(broadcast::error::RecvError::Closed) => return false,
    }
    true
}
