//! `kommander cluster members|remove`: the roster of a running cluster, and taking a member
//! out of it, through a node's client port (`transport::tcp::client`, ops `Members` and
//! `RemoveMember`), authenticated like the node (cluster name, `KOMMANDER_AUTH_SECRET`).
//!
//! Exit codes: 0 done, 1 refused or failed (the node's answer or the connection), 2 invalid
//! usage.

use std::process::ExitCode;

use kommander_raft::transport::tcp::client::{ClientRequest, ClientResponse};
use kommander_raft::{Member, MemberRole, NodeId, Status};

use crate::connect::{ConnectArgs, Reported, fail};

/// Options of `kommander cluster`.
#[derive(Debug, clap::Args)]
pub(crate) struct ClusterArgs {
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(Debug, clap::Subcommand)]
enum ClusterCommand {
    /// Print the roster as the node at --connect knows it: its version, then per member its
    /// id, role (voter, learner, leaving), peer endpoint, the roster version that added it
    /// and its incarnation.
    Members(MembersArgs),
    /// Take member ID out of the roster (through partition 0's leader): a learner is gone at
    /// once, a voter is leaving until every partition let it go (`cluster members` shows
    /// it). Stop the node afterwards. Refused for the last voter.
    Remove(RemoveArgs),
}

/// Options of `kommander cluster members`.
#[derive(Debug, clap::Args)]
struct MembersArgs {
    #[command(flatten)]
    connect: ConnectArgs,
}

/// Options of `kommander cluster remove`.
#[derive(Debug, clap::Args)]
struct RemoveArgs {
    /// The node id of the member to remove.
    #[arg(value_name = "ID", value_parser = clap::value_parser!(u64).range(1..))]
    id: u64,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// Runs `kommander cluster ...`.
pub(crate) fn run(args: &ClusterArgs) -> ExitCode {
    let (connect, request) = match &args.command {
        ClusterCommand::Members(members) => (&members.connect, ClientRequest::Members),
        ClusterCommand::Remove(remove) => (
            &remove.connect,
            ClientRequest::RemoveMember {
                node: NodeId(remove.id),
            },
        ),
    };
    match connect.ask(&request) {
        Ok(response) => report(&response).print("cluster", connect.json),
        Err(failure) => fail("cluster", failure),
    }
}

/// What the node's answer means.
fn report(response: &ClientResponse) -> Reported {
    let (ok, text, value) = match response {
        ClientResponse::Members {
            status: Status::Success,
            version,
            members,
        } => (
            true,
            members_text(*version, members),
            serde_json::json!({
                "version": version,
                "members": members.iter().map(member_json).collect::<Vec<_>>(),
            }),
        ),
        ClientResponse::Members { status, .. } => (
            false,
            format!("the node knows no roster yet ({status})"),
            serde_json::json!({ "status": status.to_string() }),
        ),
        ClientResponse::Removed {
            status: Status::Success,
            version,
            ..
        } => (
            true,
            format!("removed: roster version {version}"),
            serde_json::json!({ "status": "Success", "version": version }),
        ),
        ClientResponse::Removed { status, reason, .. } => (
            false,
            format!("refused ({status}): {reason}"),
            serde_json::json!({ "status": status.to_string(), "reason": reason }),
        ),
        other => return Reported::common(other),
    };
    Reported { ok, text, value }
}

/// The roster as a table.
fn members_text(version: u64, members: &[Member]) -> String {
    let mut text = format!(
        "roster version {version}\n{:<8} {:<8} {:<24} {:>7} {:>20}",
        "id", "role", "endpoint", "joined", "incarnation"
    );
    for member in members {
        text.push_str(&format!(
            "\n{:<8} {:<8} {:<24} {:>7} {:>20}",
            member.node.get(),
            role_name(member.role),
            if member.endpoint.is_empty() {
                "-"
            } else {
                &member.endpoint
            },
            member.joined_version,
            member.incarnation
        ));
    }
    text
}

fn member_json(member: &Member) -> serde_json::Value {
    serde_json::json!({
        "id": member.node.get(),
        "role": role_name(member.role),
        "endpoint": member.endpoint,
        "joined_version": member.joined_version,
        "incarnation": member.incarnation,
    })
}

const fn role_name(role: MemberRole) -> &'static str {
    match role {
        MemberRole::Learner => "learner",
        MemberRole::Voter => "voter",
        MemberRole::Leaving => "leaving",
    }
}
