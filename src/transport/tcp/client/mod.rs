//! The client protocol: how an application process outside the cluster asks a node (the
//! `kommander node` binary's client port) to replicate entries, which node leads a partition,
//! and the state of a node's replica. Same frames and handshake as between nodes (connection
//! role `Client`, node id 0; the same cluster name and shared secret).
//!
//! * A client connects with [`ClientConnection`] and sends [`ClientRequest`]s.
//! * A server takes connections from a [`ClientListener`], refuses those over its cap with
//!   [`reject_busy`], runs the handshake with [`AcceptedClient::accept`], reads requests with
//!   [`AcceptedClient::next_request`] and answers each with [`write_response`]; what it does
//!   with a request (propose it on the node, answer from its leader table) is its own business.
//!
//! Request and response bodies travel in `ClientRequest` and `ClientResponse` frames (see
//! [`crate::transport::codec`] for the frame format):
//!
//! ```text
//! ClientRequest  := id:u64 op:u8 op-fields
//!   op 1 Replicate:  partition:u32 log_type_len:u16 log_type payload (rest of the body)
//!   op 2 Leader:     partition:u32
//!   op 3 Status:     partition:u32
//!   op 4 Ping
//!   op 5 Members
//!   op 6 RemoveMember: node:u64
//!   op 7 Partitions
//!   op 8 CreatePartition: partition:u32 routing:u8 has_range:u8 start:i32 end:i32
//!     (partition 0: the next available id; bounds 0 without a range)
//!   op 9 RemovePartition: partition:u32
//!   op 10 SplitPartition: source:u32 target:u32 has_boundary:u8 boundary:i32
//!     (target 0: the next available id; boundary 0 without one)
//!   op 11 MergePartitions: survivor:u32 source:u32
//!   op 12 FencedReplicate: partition:u32 generation:u64 log_type_len:u16 log_type payload
//!   op 13 Route:       key_len:u16 key
//! ClientResponse := id:u64 op:u8 op-fields
//!   op 1 Replicated: status:u8 index:u64 ticket:u64   (index 0: none)
//!   op 2 retired (the first version's Leader answer, without a status)
//!   op 3 Failed:     reason (rest of the body, UTF-8)
//!   op 4 Status:     status:u8 leader:u64 term:u64 commit:u64 last_index:u64 applied:u64
//!   op 5 Leader:     status:u8 leader:u64 endpoint_len:u16 endpoint   (leader 0: unknown)
//!   op 6 Unknown:    reason (rest of the body, UTF-8)
//!   op 7 Pong
//!   op 8 Members:    status:u8 version:u64 count:u16 member*   (count 0 unless Success)
//!     member := node:u64 role:u8 joined_version:u64 incarnation:u64 endpoint_len:u16 endpoint
//!     role   := 0 learner | 1 voter | 2 leaving
//!   op 9 Removed:    status:u8 version:u64 reason (rest of the body, UTF-8; empty on Success)
//!   op 10 Partitions: status:u8 version:u64 count:u32 range*
//!     range := partition:u32 state:u8 routing:u8 start:i32 end:i32 generation:u64
//!              importing_from:u32 exporting_to:u32   (0: none)
//!     state := 0 active | 1 splitting | 2 draining | 3 removed
//!     routing := 0 hash range | 1 unrouted
//!   op 11 PartitionChanged: status:u8 partition:u32 generation:u64 version:u64
//!     reason (rest of the body, UTF-8; empty on Success)
//!   op 12 Routed:    status:u8 partition:u32 generation:u64 version:u64   (partition 0: none)
//! ```
//!
//! `status` is a [`Status`] code ([`Status::code`]). The layouts are versioned by their op
//! codes: a layout that changes gets a new op and its old op is retired, never reused, so a
//! client and a node of different versions refuse each other's answer (an unknown op) instead
//! of misreading it. (The frame header's protocol version is the frame format's, shared with
//! the peers.)
//!
//! A node answers requests in the order they arrived on a connection; a client may pipeline.
//! A `Replicate` may carry an empty log type and an empty payload (both are delivered empty).
//! What the answers to a `Replicate` say about the entry:
//!
//! * `Replicated` with `Success`: committed at `index`.
//! * `Replicated` with a refusal: nothing was written, the same request may succeed later.
//!   `NodeIsNotLeader` (ask `Leader` who leads), `ProposalQueueFull` (back off),
//!   `RestoreInProgress` (retry shortly), `PartitionMoved` (the node hosts no such partition).
//! * `Failed`: a definite refusal, nothing was written, and the same request fails again: a
//!   malformed request, an invalid entry (a log type longer than `log_type_bytes_max`, the
//!   reserved `_RaftSystem`, an entry larger than a WAL record holds), a write to the system
//!   partition 0 (the `kommander node` client port refuses them), a `FencedReplicate` naming
//!   generation 0.
//! * `Unknown`: the node cannot say what became of the entry: its wait for the outcome ran
//!   out, leadership was lost before the entry committed, or the node stopped (or its shard
//!   failed) before the outcome was known. It may be committed, now or later under another
//!   leader, or never: count it neither as written nor as refused (retry only writes that are
//!   safe to apply twice, or read the state to find out).
//!
//! `Members` answers the roster (decision 0004) as the node knows it, `RestoreInProgress`
//! before its partition 0 is open. `RemoveMember` asks the node to take `node` out of the
//! roster (`Raft::remove_member`, through partition 0's leader): `Removed` with `Success` and
//! the roster version that carries the change; a refusal changed nothing
//! (`InsufficientVoters`, `StaleMembership`, `ConcurrentMembershipChange`, `NodeIsNotLeader`,
//! `RestoreInProgress`, `ProposalQueueFull`, `Errored` for an invalid change), `reason`
//! saying why in words; `Unknown` when the outcome is not known (the wait ran out, leadership
//! was lost, the node stopped: the change may still commit).
//!
//! `Partitions` answers the partition map the node's partition 0 committed (the one its
//! shards fence writes with; they open the partitions it adds and close those it removes
//! right after): its version (0: no map yet, no range) and every range, tombstones included,
//! by partition id. `CreatePartition`,
//! `RemovePartition`, `SplitPartition` and `MergePartitions` ask the node for the change
//! (`Raft::create_partition`, `remove_partition`, `split_partition`, `merge_partitions`;
//! the node must lead partition 0, nothing is forwarded): `PartitionChanged` with `Success`,
//! the partition the change names (a created one, the source of a split, the survivor of a
//! merge; an automatic id resolved), its generation and the version of the map the node's
//! partition 0 had committed when it answered (it holds the change, and `Partitions` on that
//! node shows it from then on); a refusal changed nothing (`NodeIsNotLeader`: ask `Leader`
//! of partition 0; `ActiveProposal`: another change is in flight, retry; `Errored`: a rule
//! refused it, such as an unknown partition, an invalid plan or range, a tombstoned id;
//! `ProposalQueueFull`, `RestoreInProgress`), `reason` saying why in words; `Unknown` when
//! the outcome is not known (the change may still commit; a retry answers its generation). A
//! create or split with an automatic id is not idempotent: a retry makes another partition.
//!
//! `FencedReplicate` is a `Replicate` that carries the generation of the partition's range
//! the client routed with (not 0): answered as `Replicate`, and `Replicated` with
//! `PartitionMoved` when the partition's range has another generation, or is being split or
//! merged, when its shard proposes the write (nothing written: read `Partitions` again, route
//! again and retry). `Route` answers which partition the node's committed map routes `key` to (the
//! prefix before its last `/` decides) and that partition's generation: `Routed` with
//! `Success`, or `Errored` (partition 0) when no active range holds the key's hash (no map
//! yet included).
//!
//! `Leader` and `Status` answer `PartitionMoved` for a partition the node does not host, as
//! `Replicate` does; `Status` answers `RestoreInProgress` while the replica restores.
//!
//! A `Leader` answer names the leader's client endpoint whichever node is asked: the endpoint
//! the leader advertised to its peers in their handshakes (the `kommander node` binary
//! advertises its client port as bound, or for `0.0.0.0:P` the host of its peer endpoint with
//! port P; never an unspecified address). It is empty while unknown: the leader has no client
//! port, or the node asked has not connected to it yet (ask again shortly).
//!
//! A connection stays open while requests arrive: the node closes one on which no request
//! arrived for its `transport.idle_timeout_ms` (15 s by default; answers still due are written
//! first). `Ping` keeps a connection open while the client has nothing else to ask and
//! probes it: the node answers `Pong`, in order like every answer. A node at its cap of client
//! connections (`--client-connections-max`) answers the handshake of one more with a
//! `Reject` of code `Busy` and closes it.

mod connection;
mod partitions;
mod server;

use bytes::{BufMut, Bytes, BytesMut};

pub use self::connection::ClientConnection;
pub use self::partitions::PartitionInfo;
use self::partitions::{
    PARTITION_INFO_BYTES, get_create, get_partition, get_partition_info, get_plan, put_create,
    put_partition_info, put_plan,
};
pub use self::server::{AcceptedClient, ClientListener, ReceivedRequest, write_response};
// The peer port refuses with it too; the client port's server needs it by this path.
use super::handshake::ConnectionHandshakeError;
pub use super::handshake::reject_busy;
use crate::core::{NodeId, PartitionId, Status};
use crate::shard::membership::{Member, MemberRole};
use crate::shard::partitions::{CreatePartition, SplitPlan};
use crate::transport::codec::{Cursor, FrameError, FrameKind, WireError};

/// A request to a node's client port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientRequest {
    /// Replicate one entry (answered once it is committed, or refused).
    Replicate {
        /// The partition.
        partition: PartitionId,
        /// The entry's log type.
        log_type: String,
        /// The entry's payload.
        payload: Bytes,
    },
    /// Which node leads `partition`?
    Leader {
        /// The partition.
        partition: PartitionId,
    },
    /// The state of this node's replica of `partition`.
    Status {
        /// The partition.
        partition: PartitionId,
    },
    /// Keeps the connection open and probes it (answered [`ClientResponse::Pong`]).
    Ping,
    /// The roster as this node knows it (answered [`ClientResponse::Members`]).
    Members,
    /// Take `node` out of the roster (answered [`ClientResponse::Removed`]).
    RemoveMember {
        /// The member to remove.
        node: NodeId,
    },
    /// The partition map this node's partition 0 committed (answered
    /// [`ClientResponse::Partitions`]).
    Partitions,
    /// Create a partition (answered [`ClientResponse::PartitionChanged`]).
    CreatePartition {
        /// Its id (`None`: the next available id in the node's map).
        partition: Option<PartitionId>,
        /// How it is routed, and its hash range.
        spec: CreatePartition,
    },
    /// Remove a partition (answered [`ClientResponse::PartitionChanged`]).
    RemovePartition {
        /// The partition.
        partition: PartitionId,
    },
    /// Split a partition in two (answered [`ClientResponse::PartitionChanged`]).
    SplitPartition {
        /// The partition to split.
        source: PartitionId,
        /// The new partition's id and the first hash it owns (each optional).
        plan: SplitPlan,
    },
    /// Merge `source` into `survivor` (answered [`ClientResponse::PartitionChanged`]).
    MergePartitions {
        /// The partition that takes both ranges.
        survivor: PartitionId,
        /// The partition merged away.
        source: PartitionId,
    },
    /// Replicate one entry, fenced on the generation the client routed with (answered as
    /// [`ClientRequest::Replicate`]; `PartitionMoved` when the fence refuses).
    FencedReplicate {
        /// The partition.
        partition: PartitionId,
        /// The generation of its range in the map the client routed with (not 0).
        generation: u64,
        /// The entry's log type.
        log_type: String,
        /// The entry's payload.
        payload: Bytes,
    },
    /// Which partition does this node's map route `key` to (answered
    /// [`ClientResponse::Routed`])?
    Route {
        /// The key (the prefix before its last `/` decides).
        key: String,
    },
}

/// A replica's state, as [`ClientResponse::Status`] reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplicaState {
    /// The leader the replica knows, if any.
    pub leader: Option<NodeId>,
    /// Its term.
    pub term: u64,
    /// Its commit index.
    pub commit: u64,
    /// Its last log index.
    pub last_index: u64,
    /// The index the application applied.
    pub applied: u64,
}

/// A node's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientResponse {
    /// The outcome of a [`ClientRequest::Replicate`]: committed, or refused with nothing
    /// written (see the module's documentation for the refusals).
    Replicated {
        /// `Success`, or why not (`NodeIsNotLeader`: ask [`ClientRequest::Leader`]).
        status: Status,
        /// The entry's log index on success.
        index: Option<u64>,
        /// The proposal's ticket (an HLC timestamp).
        ticket: u64,
    },
    /// The answer to a [`ClientRequest::Leader`].
    Leader {
        /// `Success`, or `PartitionMoved` for a partition this node does not host.
        status: Status,
        /// The leader, if this node knows one.
        leader: Option<NodeId>,
        /// Its client endpoint, as it advertised it to its peers (empty when unknown; see the
        /// module's documentation).
        endpoint: String,
    },
    /// A definite refusal: the request had no effect and fails again as it is (malformed; an
    /// invalid entry; a `Replicate` to the system partition 0...).
    Failed {
        /// Why.
        reason: String,
    },
    /// The answer to a [`ClientRequest::Status`].
    Status {
        /// `Success`, or why the state is not available (`RestoreInProgress`,
        /// `PartitionMoved` for a partition this node does not host...).
        status: Status,
        /// The state (zeroes unless `status` is `Success`).
        state: ReplicaState,
    },
    /// The outcome of a [`ClientRequest::Replicate`] is not known: the entry may be committed
    /// (now or later, under another leader) or never.
    Unknown {
        /// Why it is not known.
        reason: String,
    },
    /// The answer to a [`ClientRequest::Ping`].
    Pong,
    /// The answer to a [`ClientRequest::Members`].
    Members {
        /// `Success`, or why the roster is not known (`RestoreInProgress`).
        status: Status,
        /// The roster's version (0 unless `status` is `Success`).
        version: u64,
        /// Its members, by node id (empty unless `status` is `Success`).
        members: Vec<Member>,
    },
    /// The answer to a [`ClientRequest::RemoveMember`].
    Removed {
        /// `Success`, or a refusal (nothing changed); see the module's documentation.
        status: Status,
        /// The roster version carrying the change on `Success`, else 0.
        version: u64,
        /// Why, in words (empty on `Success`).
        reason: String,
    },
    /// The answer to a [`ClientRequest::Partitions`].
    Partitions {
        /// `Success`.
        status: Status,
        /// The map's version (0: no map yet).
        version: u64,
        /// Its ranges, tombstones included, by partition id.
        partitions: Vec<PartitionInfo>,
    },
    /// The answer to a partition change ([`ClientRequest::CreatePartition`],
    /// [`ClientRequest::RemovePartition`], [`ClientRequest::SplitPartition`],
    /// [`ClientRequest::MergePartitions`]).
    PartitionChanged {
        /// `Success`, or a refusal (nothing changed); see the module's documentation.
        status: Status,
        /// The partition the change names (created, removed, split, surviving), `None` for an
        /// automatic id not resolved.
        partition: Option<PartitionId>,
        /// Its generation on `Success`, else 0.
        generation: u64,
        /// On `Success`, the version of the map the node's partition 0 had committed when it
        /// answered (it holds the change), else 0.
        version: u64,
        /// Why, in words (empty on `Success`).
        reason: String,
    },
    /// The answer to a [`ClientRequest::Route`].
    Routed {
        /// `Success`, or `Errored` when no active range holds the key.
        status: Status,
        /// The partition the key routes to.
        partition: Option<PartitionId>,
        /// Its generation (0 unless `status` is `Success`).
        generation: u64,
        /// The version of the map that routed it.
        version: u64,
    },
}

/// Encodes a request body (the payload is not copied).
#[must_use]
pub fn encode_request(id: u64, request: &ClientRequest) -> Vec<Bytes> {
    let mut head = BytesMut::with_capacity(32);
    head.put_u64_le(id);
    match request {
        ClientRequest::Replicate {
            partition,
            log_type,
            payload,
        } => {
            head.put_u8(1);
            head.put_u32_le(partition.get());
            put_text(&mut head, log_type);
            vec![head.freeze(), payload.clone()]
        }
        ClientRequest::Leader { partition } => {
            head.put_u8(2);
            head.put_u32_le(partition.get());
            vec![head.freeze()]
        }
        ClientRequest::Status { partition } => {
            head.put_u8(3);
            head.put_u32_le(partition.get());
            vec![head.freeze()]
        }
        ClientRequest::Ping => {
            head.put_u8(4);
            vec![head.freeze()]
        }
        ClientRequest::Members => {
            head.put_u8(5);
            vec![head.freeze()]
        }
        ClientRequest::RemoveMember { node } => {
            head.put_u8(6);
            head.put_u64_le(node.get());
            vec![head.freeze()]
        }
        ClientRequest::Partitions => {
            head.put_u8(7);
            vec![head.freeze()]
        }
        ClientRequest::CreatePartition { partition, spec } => {
            head.put_u8(8);
            head.put_u32_le(partition.map_or(0, PartitionId::get));
            put_create(&mut head, spec);
            vec![head.freeze()]
        }
        ClientRequest::RemovePartition { partition } => {
            head.put_u8(9);
            head.put_u32_le(partition.get());
            vec![head.freeze()]
        }
        ClientRequest::SplitPartition { source, plan } => {
            head.put_u8(10);
            head.put_u32_le(source.get());
            put_plan(&mut head, plan);
            vec![head.freeze()]
        }
        ClientRequest::MergePartitions { survivor, source } => {
            head.put_u8(11);
            head.put_u32_le(survivor.get());
            head.put_u32_le(source.get());
            vec![head.freeze()]
        }
        ClientRequest::FencedReplicate {
            partition,
            generation,
            log_type,
            payload,
        } => {
            head.put_u8(12);
            head.put_u32_le(partition.get());
            head.put_u64_le(*generation);
            put_text(&mut head, log_type);
            vec![head.freeze(), payload.clone()]
        }
        ClientRequest::Route { key } => {
            head.put_u8(13);
            put_text(&mut head, key);
            vec![head.freeze()]
        }
    }
}

/// A text field: `len:u16 bytes`. A longer text is cut at `u16::MAX` bytes, so the fields
/// after it are read where they are; the node then refuses the cut text (a log type longer
/// than `log_type_bytes_max`, or text that is no longer UTF-8).
fn put_text(out: &mut BytesMut, text: &str) {
    let len = u16::try_from(text.len()).unwrap_or(u16::MAX);
    out.put_u16_le(len);
    out.put_slice(&text.as_bytes()[..usize::from(len)]);
}

/// Decodes a request body.
///
/// # Errors
///
/// [`WireError`] for a malformed body.
pub fn decode_request(body: &Bytes) -> Result<(u64, ClientRequest), WireError> {
    let mut cur = Cursor::new(body);
    let id = cur.u64()?;
    let at = body.len().min(8);
    let request = match cur.u8()? {
        1 => {
            let partition = PartitionId(cur.u32()?);
            let len = usize::from(cur.u16()?);
            let log_type = cur.text(len)?;
            ClientRequest::Replicate {
                partition,
                log_type,
                payload: cur.rest(),
            }
        }
        2 => ClientRequest::Leader {
            partition: PartitionId(cur.u32()?),
        },
        3 => ClientRequest::Status {
            partition: PartitionId(cur.u32()?),
        },
        4 => ClientRequest::Ping,
        5 => ClientRequest::Members,
        6 => ClientRequest::RemoveMember {
            node: NodeId(cur.u64()?),
        },
        7 => ClientRequest::Partitions,
        8 => ClientRequest::CreatePartition {
            partition: get_partition(&mut cur)?,
            spec: get_create(&mut cur)?,
        },
        9 => ClientRequest::RemovePartition {
            partition: PartitionId(cur.u32()?),
        },
        10 => ClientRequest::SplitPartition {
            source: PartitionId(cur.u32()?),
            plan: get_plan(&mut cur)?,
        },
        11 => ClientRequest::MergePartitions {
            survivor: PartitionId(cur.u32()?),
            source: PartitionId(cur.u32()?),
        },
        12 => {
            let partition = PartitionId(cur.u32()?);
            let generation = cur.u64()?;
            let len = usize::from(cur.u16()?);
            let log_type = cur.text(len)?;
            ClientRequest::FencedReplicate {
                partition,
                generation,
                log_type,
                payload: cur.rest(),
            }
        }
        13 => {
            let len = usize::from(cur.u16()?);
            ClientRequest::Route {
                key: cur.text(len)?,
            }
        }
        tag => return Err(WireError::UnknownTag { tag, at }),
    };
    cur.finish()?;
    Ok((id, request))
}

/// Encodes a response body.
#[must_use]
pub fn encode_response(id: u64, response: &ClientResponse) -> Bytes {
    let mut out = BytesMut::with_capacity(32);
    out.put_u64_le(id);
    match response {
        ClientResponse::Replicated {
            status,
            index,
            ticket,
        } => {
            out.put_u8(1);
            out.put_u8(status.code());
            out.put_u64_le(index.unwrap_or(0));
            out.put_u64_le(*ticket);
        }
        ClientResponse::Leader {
            status,
            leader,
            endpoint,
        } => {
            out.put_u8(5);
            out.put_u8(status.code());
            out.put_u64_le(leader.map_or(0, NodeId::get));
            out.put_u16_le(u16::try_from(endpoint.len()).unwrap_or(u16::MAX));
            out.put_slice(endpoint.as_bytes());
        }
        ClientResponse::Failed { reason } => {
            out.put_u8(3);
            out.put_slice(reason.as_bytes());
        }
        ClientResponse::Status { status, state } => {
            out.put_u8(4);
            out.put_u8(status.code());
            out.put_u64_le(state.leader.map_or(0, NodeId::get));
            out.put_u64_le(state.term);
            out.put_u64_le(state.commit);
            out.put_u64_le(state.last_index);
            out.put_u64_le(state.applied);
        }
        ClientResponse::Unknown { reason } => {
            out.put_u8(6);
            out.put_slice(reason.as_bytes());
        }
        ClientResponse::Pong => out.put_u8(7),
        ClientResponse::Members {
            status,
            version,
            members,
        } => {
            out.put_u8(8);
            out.put_u8(status.code());
            out.put_u64_le(*version);
            // A roster holds far fewer members than a u16 counts (`members_max`).
            let count = u16::try_from(members.len()).unwrap_or(u16::MAX);
            out.put_u16_le(count);
            for member in members.iter().take(usize::from(count)) {
                out.put_u64_le(member.node.get());
                out.put_u8(role_code(member.role));
                out.put_u64_le(member.joined_version);
                out.put_u64_le(member.incarnation);
                out.put_u16_le(u16::try_from(member.endpoint.len()).unwrap_or(u16::MAX));
                out.put_slice(member.endpoint.as_bytes());
            }
        }
        ClientResponse::Removed {
            status,
            version,
            reason,
        } => {
            out.put_u8(9);
            out.put_u8(status.code());
            out.put_u64_le(*version);
            out.put_slice(reason.as_bytes());
        }
        ClientResponse::Partitions {
            status,
            version,
            partitions,
        } => {
            out.reserve(partitions.len() * PARTITION_INFO_BYTES);
            out.put_u8(10);
            out.put_u8(status.code());
            out.put_u64_le(*version);
            // A map holds at most `partitions_max` ranges and tombstones, far below a u32.
            let count = u32::try_from(partitions.len()).unwrap_or(u32::MAX);
            out.put_u32_le(count);
            for info in partitions.iter().take(count as usize) {
                put_partition_info(&mut out, info);
            }
        }
        ClientResponse::PartitionChanged {
            status,
            partition,
            generation,
            version,
            reason,
        } => {
            out.put_u8(11);
            out.put_u8(status.code());
            out.put_u32_le(partition.map_or(0, PartitionId::get));
            out.put_u64_le(*generation);
            out.put_u64_le(*version);
            out.put_slice(reason.as_bytes());
        }
        ClientResponse::Routed {
            status,
            partition,
            generation,
            version,
        } => {
            out.put_u8(12);
            out.put_u8(status.code());
            out.put_u32_le(partition.map_or(0, PartitionId::get));
            out.put_u64_le(*generation);
            out.put_u64_le(*version);
        }
    }
    out.freeze()
}

/// Decodes a response body.
///
/// # Errors
///
/// [`WireError`] for a malformed body.
pub fn decode_response(body: &Bytes) -> Result<(u64, ClientResponse), WireError> {
    let mut cur = Cursor::new(body);
    let id = cur.u64()?;
    let at = body.len().min(8);
    let status = |cur: &mut Cursor<'_>| {
        let code = cur.u8()?;
        Status::from_code(code).ok_or(WireError::UnknownTag {
            tag: code,
            at: body.len().min(9),
        })
    };
    let response = match cur.u8()? {
        1 => {
            let status = status(&mut cur)?;
            let index = cur.u64()?;
            ClientResponse::Replicated {
                status,
                index: (index != 0).then_some(index),
                ticket: cur.u64()?,
            }
        }
        3 => ClientResponse::Failed {
            reason: String::from_utf8_lossy(&cur.rest()).into_owned(),
        },
        4 => ClientResponse::Status {
            status: status(&mut cur)?,
            state: ReplicaState {
                leader: Some(NodeId(cur.u64()?)).filter(|n| n.get() != 0),
                term: cur.u64()?,
                commit: cur.u64()?,
                last_index: cur.u64()?,
                applied: cur.u64()?,
            },
        },
        5 => {
            let status = status(&mut cur)?;
            let leader = cur.u64()?;
            let len = usize::from(cur.u16()?);
            ClientResponse::Leader {
                status,
                leader: (leader != 0).then_some(NodeId(leader)),
                endpoint: cur.text(len)?,
            }
        }
        6 => ClientResponse::Unknown {
            reason: String::from_utf8_lossy(&cur.rest()).into_owned(),
        },
        7 => ClientResponse::Pong,
        8 => {
            let status = status(&mut cur)?;
            let version = cur.u64()?;
            let count = cur.u16()?;
            let mut members = Vec::new();
            for _ in 0..count {
                let node = NodeId(cur.u64()?);
                let at = cur.position();
                let code = cur.u8()?;
                let role = role_from_code(code).ok_or(WireError::UnknownTag { tag: code, at })?;
                let joined_version = cur.u64()?;
                let incarnation = cur.u64()?;
                let len = usize::from(cur.u16()?);
                members.push(Member {
                    node,
                    role,
                    endpoint: cur.text(len)?,
                    joined_version,
                    incarnation,
                });
            }
            ClientResponse::Members {
                status,
                version,
                members,
            }
        }
        9 => ClientResponse::Removed {
            status: status(&mut cur)?,
            version: cur.u64()?,
            reason: String::from_utf8_lossy(&cur.rest()).into_owned(),
        },
        10 => {
            let status = status(&mut cur)?;
            let version = cur.u64()?;
            let count = cur.u32()? as usize;
            // A count the body cannot hold is truncation, found before anything is
            // allocated for it.
            if count.saturating_mul(PARTITION_INFO_BYTES) > cur.remaining() {
                return Err(WireError::Truncated(cur.position()));
            }
            let partitions = (0..count)
                .map(|_| get_partition_info(&mut cur))
                .collect::<Result<_, _>>()?;
            ClientResponse::Partitions {
                status,
                version,
                partitions,
            }
        }
        11 => ClientResponse::PartitionChanged {
            status: status(&mut cur)?,
            partition: get_partition(&mut cur)?,
            generation: cur.u64()?,
            version: cur.u64()?,
            reason: String::from_utf8_lossy(&cur.rest()).into_owned(),
        },
        12 => ClientResponse::Routed {
            status: status(&mut cur)?,
            partition: get_partition(&mut cur)?,
            generation: cur.u64()?,
            version: cur.u64()?,
        },
        tag => return Err(WireError::UnknownTag { tag, at }),
    };
    cur.finish()?;
    Ok((id, response))
}

/// A member's role on the wire (`Members`).
const fn role_code(role: MemberRole) -> u8 {
    match role {
        MemberRole::Learner => 0,
        MemberRole::Voter => 1,
        MemberRole::Leaving => 2,
    }
}

/// The role of a wire code, `None` for an unknown one.
const fn role_from_code(code: u8) -> Option<MemberRole> {
    match code {
        0 => Some(MemberRole::Learner),
        1 => Some(MemberRole::Voter),
        2 => Some(MemberRole::Leaving),
        _ => None,
    }
}

/// Why a client call (or, on the server, a client connection) failed.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Connecting failed.
    #[error("connecting to {address}: {source}")]
    Connect {
        /// The address.
        address: String,
        /// The socket error.
        source: std::io::Error,
    },
    /// The handshake failed (wrong cluster, wrong secret...).
    #[error("handshake: {0}")]
    Handshake(#[from] ConnectionHandshakeError),
    /// The connection failed or timed out.
    #[error("connection: {0}")]
    Frame(#[from] FrameError),
    /// The node sent a malformed or unexpected frame.
    #[error("bad response: {0}")]
    BadResponse(String),
    /// The client sent a frame of a kind the protocol does not allow.
    #[error("bad request: unexpected {0:?} frame on the client port")]
    BadRequest(FrameKind),
}

#[cfg(test)]
mod tests;
