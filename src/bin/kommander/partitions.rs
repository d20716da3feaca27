//! `kommander partitions list|create|remove|split|merge|route`: the partition map of a running
//! cluster and its changes (decision 0006), through a node's client port
//! (`transport::tcp::client`, ops `Partitions`, `CreatePartition`, `RemovePartition`,
//! `SplitPartition`, `MergePartitions`, `Route`), authenticated like the node (cluster name,
//! `KOMMANDER_AUTH_SECRET`). A change is carried out by partition 0's leader: asked of another
//! node, the command asks that node who leads partition 0 and sends the change there once.
//!
//! Exit codes: 0 done, 1 refused or failed (the node's answer or the connection), 2 invalid
//! usage.

use std::process::ExitCode;

use kommander_raft::transport::tcp::client::{ClientRequest, ClientResponse, PartitionInfo};
use kommander_raft::{
    CreatePartition, PartitionId, RangeState, RoutingMode, SYSTEM_PARTITION, SplitPlan, Status,
};

use crate::connect::{ConnectArgs, Failure, Reported, call, fail};

/// Options of `kommander partitions`.
#[derive(Debug, clap::Args)]
pub(crate) struct PartitionsArgs {
    #[command(subcommand)]
    command: PartitionsCommand,
}

#[derive(Debug, clap::Subcommand)]
enum PartitionsCommand {
    /// Print the partition map the node at --connect committed: its version, then per
    /// partition its id, state (active, splitting, draining, removed: a tombstone whose id is
    /// never reused), routing (hash or unrouted), hash range, generation (what fenced writes
    /// name) and the partner of a split or merge in progress.
    List(ListArgs),
    /// Create partition ID (default: the next available id), active at generation 1: routed
    /// by key over the hashes START..=END with --start and --end, else unrouted (addressed
    /// by id only). Refused for partition 0, a tombstoned id (never reused), a range outside
    /// 0..=2147483647, START > END, or a range overlapping an active one. An id the map holds
    /// already answers with its generation (a retry); an automatic id makes a new partition
    /// at every call.
    Create(CreateArgs),
    /// Remove partition ID: it becomes a tombstone at the next generation (its id is never
    /// reused) and every node closes it and deletes its log. Refused for partition 0, an
    /// unknown partition, or one being split or merged.
    Remove(RemoveArgs),
    /// Split partition SOURCE in two: the new partition (--target, default the next
    /// available id) owns the hashes from --boundary (default the middle of the source's
    /// range) on. Answers once the first phase committed (both refuse writes until the second
    /// phase, which follows on its own: `partitions list` shows both active again). Refused
    /// for partition 0, an unknown or removed source, one not active, a target id taken
    /// (tombstones included), a single-hash range, or a boundary outside (start, end].
    Split(SplitArgs),
    /// Merge partition SOURCE into SURVIVOR: the source drains (it refuses every write), then
    /// the survivor owns both ranges and the source is a tombstone (the second phase follows
    /// on its own). Refused for partition 0, the same partition twice, either unknown or not
    /// active, partitions routed differently, or hash ranges that do not touch.
    Merge(MergeArgs),
    /// Print the partition the node's map routes KEY to (the prefix before its last `/`
    /// decides) and that partition's generation. Refused when no active range holds it.
    Route(RouteArgs),
}

/// Options of `kommander partitions list`.
#[derive(Debug, clap::Args)]
struct ListArgs {
    #[command(flatten)]
    connect: ConnectArgs,
}

/// Options of `kommander partitions create`.
#[derive(Debug, clap::Args)]
struct CreateArgs {
    /// The new partition's id (default: the next available id).
    #[arg(value_name = "ID", value_parser = clap::value_parser!(u32).range(1..))]
    id: Option<u32>,
    /// The first hash it owns (with --end: routed by key).
    #[arg(
        long,
        value_name = "HASH",
        requires = "end",
        allow_negative_numbers = true
    )]
    start: Option<i32>,
    /// The last hash it owns (with --start).
    #[arg(
        long,
        value_name = "HASH",
        requires = "start",
        allow_negative_numbers = true
    )]
    end: Option<i32>,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// Options of `kommander partitions remove`.
#[derive(Debug, clap::Args)]
struct RemoveArgs {
    /// The partition to remove.
    #[arg(value_name = "ID", value_parser = clap::value_parser!(u32).range(1..))]
    id: u32,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// Options of `kommander partitions split`.
#[derive(Debug, clap::Args)]
struct SplitArgs {
    /// The partition to split.
    #[arg(value_name = "SOURCE", value_parser = clap::value_parser!(u32).range(1..))]
    source: u32,
    /// The new partition's id (default: the next available id).
    #[arg(long, value_name = "ID", value_parser = clap::value_parser!(u32).range(1..))]
    target: Option<u32>,
    /// The first hash the new partition owns (default: the middle of the source's range).
    #[arg(long, value_name = "HASH", allow_negative_numbers = true)]
    boundary: Option<i32>,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// Options of `kommander partitions merge`.
#[derive(Debug, clap::Args)]
struct MergeArgs {
    /// The partition that takes both ranges.
    #[arg(value_name = "SURVIVOR", value_parser = clap::value_parser!(u32).range(1..))]
    survivor: u32,
    /// The partition merged away.
    #[arg(value_name = "SOURCE", value_parser = clap::value_parser!(u32).range(1..))]
    source: u32,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// Options of `kommander partitions route`.
#[derive(Debug, clap::Args)]
struct RouteArgs {
    /// The key.
    #[arg(value_name = "KEY")]
    key: String,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// Runs `kommander partitions ...`.
pub(crate) fn run(args: &PartitionsArgs) -> ExitCode {
    let (connect, request) = match &args.command {
        PartitionsCommand::List(list) => (&list.connect, ClientRequest::Partitions),
        PartitionsCommand::Route(route) => (
            &route.connect,
            ClientRequest::Route {
                key: route.key.clone(),
            },
        ),
        PartitionsCommand::Create(create) => (
            &create.connect,
            ClientRequest::CreatePartition {
                partition: create.id.map(PartitionId),
                spec: match (create.start, create.end) {
                    (Some(start), Some(end)) => CreatePartition::hash_range(start, end),
                    _ => CreatePartition::unrouted(),
                },
            },
        ),
        PartitionsCommand::Remove(remove) => (
            &remove.connect,
            ClientRequest::RemovePartition {
                partition: PartitionId(remove.id),
            },
        ),
        PartitionsCommand::Split(split) => (
            &split.connect,
            ClientRequest::SplitPartition {
                source: PartitionId(split.source),
                plan: SplitPlan {
                    target: split.target.map(PartitionId),
                    boundary: split.boundary,
                },
            },
        ),
        PartitionsCommand::Merge(merge) => (
            &merge.connect,
            ClientRequest::MergePartitions {
                survivor: PartitionId(merge.survivor),
                source: PartitionId(merge.source),
            },
        ),
    };
    match ask_leader(connect, &request) {
        Ok(response) => report(&request, &response).print("partitions", connect.json),
        Err(failure) => fail("partitions", failure),
    }
}

/// Sends `request` to `--connect`; a change refused there with `NodeIsNotLeader` is sent
/// once more to partition 0's leader, when that node names its client endpoint.
fn ask_leader(connect: &ConnectArgs, request: &ClientRequest) -> Result<ClientResponse, Failure> {
    let mut connection = connect.connect_to(&connect.connect)?;
    let response = call(&mut connection, &connect.connect, request)?;
    if !matches!(
        response,
        ClientResponse::PartitionChanged {
            status: Status::NodeIsNotLeader,
            ..
        }
    ) {
        return Ok(response);
    }
    let leader = call(
        &mut connection,
        &connect.connect,
        &ClientRequest::Leader {
            partition: SYSTEM_PARTITION,
        },
    )?;
    match leader {
        ClientResponse::Leader {
            status: Status::Success,
            endpoint,
            ..
        } if !endpoint.is_empty() && endpoint != connect.connect => {
            let mut connection = connect.connect_to(&endpoint)?;
            call(&mut connection, &endpoint, request)
        }
        // No leader known, or no endpoint for it: the refusal says so.
        _ => Ok(response),
    }
}

/// What the node's answer to `request` means.
fn report(request: &ClientRequest, response: &ClientResponse) -> Reported {
    let (ok, text, value) = match response {
        ClientResponse::Partitions {
            version,
            partitions,
            ..
        } => (
            true,
            map_text(*version, partitions),
            serde_json::json!({
                "version": version,
                "partitions": partitions.iter().map(info_json).collect::<Vec<_>>(),
            }),
        ),
        ClientResponse::Routed {
            status: Status::Success,
            partition: Some(partition),
            generation,
            version,
        } => (
            true,
            format!(
                "partition {}, generation {generation} (map version {version})",
                partition.get()
            ),
            serde_json::json!({
                "status": "Success",
                "partition": partition.get(),
                "generation": generation,
                "version": version,
            }),
        ),
        ClientResponse::Routed {
            status, version, ..
        } => (
            false,
            format!("refused ({status}): no active range holds the key (map version {version})"),
            serde_json::json!({ "status": status.to_string(), "version": version }),
        ),
        ClientResponse::PartitionChanged {
            status: Status::Success,
            partition: Some(partition),
            generation,
            version,
            ..
        } => (
            true,
            changed_text(request, *partition, *generation, *version),
            serde_json::json!({
                "status": "Success",
                "partition": partition.get(),
                "generation": generation,
                "version": version,
            }),
        ),
        ClientResponse::PartitionChanged {
            status,
            partition,
            reason,
            ..
        } => (
            false,
            format!("refused ({status}): {reason}"),
            serde_json::json!({
                "status": status.to_string(),
                "partition": partition.map(PartitionId::get),
                "reason": reason,
            }),
        ),
        other => return Reported::common(other),
    };
    Reported { ok, text, value }
}

/// What a change that took effect did, in words.
fn changed_text(
    request: &ClientRequest,
    partition: PartitionId,
    generation: u64,
    version: u64,
) -> String {
    let partition = partition.get();
    let (done, then) = match request {
        ClientRequest::CreatePartition { .. } => (format!("created partition {partition}"), ""),
        ClientRequest::RemovePartition { .. } => (format!("removed partition {partition}"), ""),
        ClientRequest::SplitPartition { .. } => (
            format!("splitting partition {partition}"),
            " (the second phase follows on its own)",
        ),
        ClientRequest::MergePartitions { source, .. } => (
            format!("merging partition {} into {partition}", source.get()),
            " (the second phase follows on its own)",
        ),
        _ => (format!("changed partition {partition}"), ""),
    };
    format!("{done}: generation {generation}, map version {version}{then}")
}

/// The map as a table.
fn map_text(version: u64, partitions: &[PartitionInfo]) -> String {
    if version == 0 {
        return "no partition map yet (map version 0)".to_owned();
    }
    let mut text = format!(
        "map version {version}\n{:<10} {:<9} {:<8} {:>10} {:>10} {:>10}  transfer",
        "id", "state", "routing", "start", "end", "generation"
    );
    for info in partitions {
        let transfer = match (info.importing_from, info.exporting_to) {
            (Some(from), _) => format!("from {}", from.get()),
            (None, Some(to)) => format!("to {}", to.get()),
            (None, None) => "-".to_owned(),
        };
        text.push_str(&format!(
            "\n{:<10} {:<9} {:<8} {:>10} {:>10} {:>10}  {transfer}",
            info.partition.get(),
            state_name(info.state),
            routing_name(info.routing),
            info.start,
            info.end,
            info.generation,
        ));
    }
    text
}

fn info_json(info: &PartitionInfo) -> serde_json::Value {
    serde_json::json!({
        "id": info.partition.get(),
        "state": state_name(info.state),
        "routing": routing_name(info.routing),
        "start": info.start,
        "end": info.end,
        "generation": info.generation,
        "importing_from": info.importing_from.map(PartitionId::get),
        "exporting_to": info.exporting_to.map(PartitionId::get),
    })
}

const fn state_name(state: RangeState) -> &'static str {
    match state {
        RangeState::Active => "active",
        RangeState::Splitting => "splitting",
        RangeState::Draining => "draining",
        RangeState::Removed => "removed",
    }
}

const fn routing_name(routing: RoutingMode) -> &'static str {
    match routing {
        RoutingMode::HashRange => "hash",
        RoutingMode::Unrouted => "unrouted",
    }
}
