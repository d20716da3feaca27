//! The wire codec: how Raft messages travel between nodes, for transports other than the
//! built-in ones. The TCP transport speaks exactly this; a custom transport (QUIC, a message
//! bus, a test harness) may reuse all of it or only the `Messages` body.
//!
//! A [`Transport`](crate::Transport) is handed `Vec<Message>` batches for one peer; the peer's
//! side hands what it receives to its node's [`Inbound`](crate::Inbound). In between:
//!
//! ```text
//! sender:   encode_messages(&batch) ─► body chunks
//!           ─► write_frame(stream, Messages, clock.now().packed(), &chunks)
//! receiver: frame bytes ─► decode_frame(&bytes, frame_bytes_max) ─► Frame { kind, stamp, body }
//!           ─► clock.update(stamp) ─► decode_messages(&body, from, to, frame_messages_max)
//!           ─► inbound.deliver(batch)
//! ```
//!
//! (`clock` is the node's hybrid logical clock, [`Inbound::clock`](crate::Inbound::clock).)
//!
//! # Frames
//!
//! A frame is a fixed 24-byte little-endian header followed by `length` body bytes:
//!
//! ```text
//! 0       4         6      7       8        12      20         24
//! | magic | version | kind | flags | length | stamp | checksum | body (length bytes) ...
//! ```
//!
//! `magic` is [`MAGIC`] (`KMDR`), `version` is [`PROTOCOL_VERSION`], `kind` a [`FrameKind`]
//! code, `flags` 0, `stamp` the sender's hybrid logical clock when it built the frame (packed:
//! milliseconds in the high 42 bits, the logical counter in the low 22; the node is the
//! connection's peer; [`UNSTAMPED`], 0, from a sender without a clock), and `checksum` CRC32C
//! over the first 20 header bytes, then the body. Every frame between nodes is stamped, the
//! handshake's included; the receiver merges the stamp into its clock (a stamp further ahead of
//! its wall clock than `hlc_drift_ms_max` is not merged; the frame is processed all the same).
//! [`parse_header`] checks everything but the checksum from the header alone (so a reader
//! refuses an oversized frame before it allocates its body); [`decode_frame`] checks a whole
//! frame held in memory; [`header_for`] and [`write_frame`] build them. A frame authenticates
//! nothing: the TCP transport authenticates the connection (its handshake), not each frame.
//!
//! # The `Messages` body
//!
//! ```text
//! body    := count:u32 message*
//! message := partition:u32 term:u64 tag:u8 fields(tag)
//! append  := prev_index:u64 prev_term:u64 commit:u64 entries:u32 entry*
//! entry   := index:u64 term:u64 ticket:u64 kind:u8 auto_commit:u8 length:u32 payload
//! chunk   := session:u64 seq:u32 last_index:u64 last_term:u64 config_length:u32 config
//!            crc:u32 has_digest:u8 digest:[u8; 32] (when has_digest is 1)
//!            marks_length:u8 marks length:u32 data
//! config  := version:u8 (2) voters:u16 learners:u16 context_length:u32 id:u64* context
//!            (voters first, each sorted; the context opaque, partition 0's roster)
//! ```
//!
//! Integers are little-endian, booleans one byte (0 or 1), `kind` an [`EntryKind`] code (a
//! `Configuration` entry's payload is a `config`; see [`Configuration::encode`]). A chunk's
//! `config` is the configuration in force at `last_index`; one that does not decode, or is not
//! valid, is a [`WireError::InvalidConfiguration`]. A chunk's `marks` are opaque here (the
//! shard's split marks at `last_index`, on the first chunk; empty on the others), at most
//! `SNAPSHOT_MARKS_BYTES_MAX` (34) bytes: a longer
//! `marks_length` is a [`WireError::OverLimit`]. The
//! fields of each [`MessageBody`] follow its tag, in this order:
//!
//! | tag | body | fields |
//! |---|---|---|
//! | 1 | `PreVoteRequest` | `last_log_index:u64 last_log_term:u64 configuration_version:u64` |
//! | 2 | `PreVoteResponse` | `granted:u8` |
//! | 3 | `VoteRequest` | `last_log_index:u64 last_log_term:u64 configuration_version:u64 transfer:u8` |
//! | 4 | `VoteResponse` | `granted:u8` |
//! | 5 | `AppendRequest` | `append` above |
//! | 6 | `AppendResponse` | `success:u8 index:u64 hint_index:u64 hint_term:u64` |
//! | 7 | `Heartbeat` | `commit:u64 read_round:u64 quiesce:u8` |
//! | 8 | `HeartbeatResponse` | `read_round:u64` |
//! | 9 | `TimeoutNow` | none |
//! | 10 | `ReadIndexRequest` | `context:u64` |
//! | 11 | `ReadIndexResponse` | `context:u64 index:u64 ok:u8` |
//! | 12 | `SnapshotChunk` | `chunk` above |
//! | 13 | `SnapshotAck` | `session:u64 seq:u32 outcome:u8` (0 received, 1 installed, 2 refused) |
//!
//! A message travels without its sender and receiver: the connection (or whatever carries the
//! body) says who sent it, so [`decode_messages`] is told `from` and `to`. A transport must
//! therefore establish the sender's identity itself, and must not deliver a batch whose sender
//! it has not authenticated. [`encode_messages`] never copies an entry payload (each payload
//! is the entry's own [`Bytes`](bytes::Bytes), nor a snapshot chunk's data); [`decode_messages`] is total: any bytes give
//! messages or a [`WireError`], never a panic, and payloads are slices of the body.
//!
//! # Membership calls: the `CallRequest` and `CallAnswer` bodies
//!
//! A membership call ([`MembershipCall`](crate::MembershipCall): a roster change one node
//! asks of another by endpoint, `Transport::call`) travels on a connection of its own, opened
//! for it: one `CallRequest` frame from the caller, one `CallAnswer` frame back, then the
//! connection closes (the TCP transport's handshake role `Call`).
//!
//! ```text
//! request  := has_expected:u8 expected_version:u64 (when has_expected is 1) change
//! change   := tag:u8 fields(tag)
//! endpoint := length:u8 bytes                (UTF-8, at most ENDPOINT_BYTES_MAX bytes)
//! answer   := tag:u8 fields(tag)
//! ```
//!
//! | request tag | [`RosterChange`](crate::RosterChange) | fields |
//! |---|---|---|
//! | 1 | `Add` | `node:u64 incarnation:u64 endpoint` |
//! | 2 | `Promote` | `node:u64` |
//! | 3 | `Demote` | `node:u64` |
//! | 4 | `Leave` | `node:u64` |
//! | 5 | `Remove` | `node:u64` |
//! | 6 | `Endpoints` | `count:u16 (node:u64 endpoint)*` (at most [`CONFIGURATION_MEMBERS_MAX`]) |
//!
//! | answer tag | [`CallAnswer`](crate::CallAnswer) | fields |
//! |---|---|---|
//! | 1 | `Done` | `config_length:u32 config`: partition 0's configuration holding the roster ([`Roster::configuration`](crate::Roster::configuration); decoded with [`Roster::of`](crate::Roster::of), and refused unless it is exactly the encoding of its roster) |
//! | 2 | `NotLeader` | `has_leader:u8`, then `leader:u64 endpoint` when it is 1 (the endpoint may be empty) |
//! | 3 | `Refused` | `status:u8`, a [`Status`](crate::Status) code ([`Status::code`](crate::Status::code)) |
//! | 4 | `Unknown` | none |
//!
//! As for a message, the caller is not in the request: the connection authenticated it, and
//! [`decode_call`] is told `from`. [`encode_call`] and [`encode_call_answer`] refuse what
//! the other side would refuse (an endpoint over
//! [`ENDPOINT_BYTES_MAX`](crate::ENDPOINT_BYTES_MAX) bytes, more than
//! [`CONFIGURATION_MEMBERS_MAX`] endpoints: [`WireError::OverLimit`]); [`decode_call`] and
//! [`decode_call_answer`] are total, and every body they accept re-encodes to the same bytes.
//! A request is at most [`CALL_REQUEST_BYTES_MAX`] bytes, an answer at most
//! [`CALL_ANSWER_BYTES_MAX`].

mod calls;
mod frame;
mod messages;

pub use self::calls::{
    CALL_ANSWER_BYTES_MAX, CALL_REQUEST_BYTES_MAX, decode_call, decode_call_answer, encode_call,
    encode_call_answer,
};
pub(crate) use self::frame::verify_checksum;
pub use self::frame::{
    Frame, FrameError, FrameKind, HEADER_BYTES, HeaderFields, MAGIC, PROTOCOL_VERSION, UNSTAMPED,
    WireFrameHeader, decode_frame, header_for, parse_header, write_frame,
};
pub(crate) use self::messages::Cursor;
pub use self::messages::{WireError, decode_messages, encode_messages, encoded_len};
pub use crate::core::{
    CONFIGURATION_CONTEXT_BYTES_MAX, CONFIGURATION_MEMBERS_MAX, Configuration, ConfigurationError,
    Entry, EntryKind, LogIndex, Message, MessageBody, NodeId, PartitionId, SnapshotChunk,
    SnapshotOutcome, Term, Ticket,
};
