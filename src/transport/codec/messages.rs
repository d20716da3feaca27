//! The body of a `Messages` frame: [`encode_messages`] and [`decode_messages`] (the format is
//! documented in [`crate::transport::codec`]).
//!
//! Encoding never copies an entry payload: the body is a list of chunks in which each
//! payload is the entry's own [`Bytes`] (for entries read back from the WAL, a slice of its
//! mapping). Decoding is total: any byte sequence gives messages or a [`WireError`], and
//! payloads are slices of the received frame.

use bytes::{BufMut, Bytes, BytesMut};

use crate::core::{
    Configuration, ConfigurationError, Entry, EntryKind, LogIndex, Message, MessageBody, NodeId,
    PartitionId, SNAPSHOT_MARKS_BYTES_MAX, SnapshotChunk, SnapshotOutcome, Term, Ticket,
};
use crate::shard::membership::RosterError;

/// Bytes of a message before its tag-specific fields (partition, term, tag).
const MESSAGE_HEAD_BYTES: usize = 4 + 8 + 1;
/// Bytes of an entry header on the wire.
const ENTRY_HEAD_BYTES: usize = 8 + 8 + 8 + 1 + 1 + 4;
/// Bytes of a snapshot chunk's fixed fields (session, seq, last index and term, the
/// configuration's length, CRC, digest flag, the marks' length, data length), without the
/// configuration, the digest and the marks.
const CHUNK_HEAD_BYTES: usize = 8 + 4 + 8 + 8 + 4 + 4 + 1 + 1 + 4;

/// Why a frame body (`Messages`, a client request or response, a membership call or its
/// answer) does not decode, or why a value cannot be encoded within the format's limits.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The body ends in the middle of a field.
    #[error("truncated at byte {0}")]
    Truncated(usize),
    /// More messages than `frame_messages_max`.
    #[error("{count} messages exceed frame_messages_max {max}")]
    TooManyMessages {
        /// Announced count.
        count: u64,
        /// The limit.
        max: usize,
    },
    /// An unknown message tag.
    #[error("unknown message tag {tag} at byte {at}")]
    UnknownTag {
        /// The tag.
        tag: u8,
        /// Its offset.
        at: usize,
    },
    /// An unknown entry kind.
    #[error("unknown entry kind {kind} at byte {at}")]
    UnknownEntryKind {
        /// The code.
        kind: u8,
        /// Its offset.
        at: usize,
    },
    /// A boolean byte other than 0 or 1.
    #[error("invalid boolean {value} at byte {at}")]
    InvalidBool {
        /// The byte.
        value: u8,
        /// Its offset.
        at: usize,
    },
    /// An unknown snapshot acknowledgement outcome.
    #[error("unknown snapshot outcome {value} at byte {at}")]
    UnknownSnapshotOutcome {
        /// The code.
        value: u8,
        /// Its offset.
        at: usize,
    },
    /// A text field that is not UTF-8.
    #[error("text at byte {0} is not UTF-8")]
    InvalidText(usize),
    /// A partition configuration that does not decode or is not valid.
    #[error("invalid configuration at byte {at}: {error}")]
    InvalidConfiguration {
        /// What is wrong with it.
        error: ConfigurationError,
        /// Its offset.
        at: usize,
    },
    /// Bytes after the body's end (its last message, or last field).
    #[error("{0} trailing bytes after the body's end")]
    Trailing(usize),
    /// A length or a count over the format's limit (a membership call's endpoint longer than
    /// `ENDPOINT_BYTES_MAX`, more than `CONFIGURATION_MEMBERS_MAX` endpoints).
    #[error("{field} {value} at byte {at} exceeds {max}")]
    OverLimit {
        /// What is counted.
        field: &'static str,
        /// The length or count.
        value: u64,
        /// The limit.
        max: usize,
        /// Its offset.
        at: usize,
    },
    /// An unknown [`Status`](crate::core::Status) code.
    #[error("unknown status {code} at byte {at}")]
    UnknownStatus {
        /// The code.
        code: u8,
        /// Its offset.
        at: usize,
    },
    /// Partition 0's configuration in a membership call's answer does not hold a roster, or
    /// is not exactly the encoding of its roster.
    #[error("invalid roster at byte {at}: {error}")]
    InvalidRoster {
        /// What is wrong with it.
        error: RosterError,
        /// Its offset.
        at: usize,
    },
}

const fn tag(body: &MessageBody) -> u8 {
    match body {
        MessageBody::PreVoteRequest { .. } => 1,
        MessageBody::PreVoteResponse { .. } => 2,
        MessageBody::VoteRequest { .. } => 3,
        MessageBody::VoteResponse { .. } => 4,
        MessageBody::AppendRequest { .. } => 5,
        MessageBody::AppendResponse { .. } => 6,
        MessageBody::Heartbeat { .. } => 7,
        MessageBody::HeartbeatResponse { .. } => 8,
        MessageBody::TimeoutNow => 9,
        MessageBody::ReadIndexRequest { .. } => 10,
        MessageBody::ReadIndexResponse { .. } => 11,
        MessageBody::SnapshotChunk { .. } => 12,
        MessageBody::SnapshotAck { .. } => 13,
    }
}

const fn outcome_code(outcome: SnapshotOutcome) -> u8 {
    match outcome {
        SnapshotOutcome::Received => 0,
        SnapshotOutcome::Installed => 1,
        SnapshotOutcome::Refused => 2,
        SnapshotOutcome::Busy => 3,
        SnapshotOutcome::Free => 4,
    }
}

/// The encoded size of `message` (what it adds to a frame body).
#[must_use]
pub fn encoded_len(message: &Message) -> usize {
    MESSAGE_HEAD_BYTES
        + match &message.body {
            MessageBody::PreVoteResponse { .. } | MessageBody::VoteResponse { .. } => 1,
            MessageBody::Heartbeat { .. } => 17,
            MessageBody::PreVoteRequest { .. } => 24,
            MessageBody::VoteRequest { .. } => 25,
            MessageBody::AppendRequest { entries, .. } => {
                28 + entries
                    .iter()
                    .map(|e| ENTRY_HEAD_BYTES + e.payload.len())
                    .sum::<usize>()
            }
            MessageBody::AppendResponse { .. } => 25,
            MessageBody::HeartbeatResponse { .. } | MessageBody::ReadIndexRequest { .. } => 8,
            MessageBody::TimeoutNow => 0,
            MessageBody::ReadIndexResponse { .. } => 17,
            MessageBody::SnapshotChunk(chunk) => {
                let SnapshotChunk {
                    configuration,
                    digest,
                    marks,
                    data,
                    ..
                } = &**chunk;
                CHUNK_HEAD_BYTES
                    + configuration.encoded_len()
                    + digest.map_or(0, |d| d.len())
                    + marks.len().min(usize::from(u8::MAX))
                    + data.len()
            }
            MessageBody::SnapshotAck { .. } => 13,
        }
}

/// Where `message`'s encoding goes: the bytes written into the fixed fields' buffer (all
/// but the payloads that travel as their own chunks: entries', a snapshot chunk's data), and
/// how many payloads travel so (each one chunk, after a chunk of the fields before it).
fn layout(message: &Message) -> (usize, usize) {
    let (carried, payloads) = match &message.body {
        MessageBody::AppendRequest { entries, .. } => entries
            .iter()
            .filter(|e| !e.payload.is_empty())
            .fold((0, 0), |(bytes, n), e| (bytes + e.payload.len(), n + 1)),
        MessageBody::SnapshotChunk(chunk) => {
            (chunk.data.len(), usize::from(!chunk.data.is_empty()))
        }
        _ => (0, 0),
    };
    (encoded_len(message) - carried, payloads)
}

/// Encodes `messages` as one `Messages` body: returns its chunks (fixed fields in shared
/// buffers, payloads as the entries' own `Bytes`). The fixed fields' buffer and the list of
/// chunks are allocated once, at their exact sizes: a buffer that grew after a chunk was
/// split off it would allocate again (the chunks still hold the old one).
#[must_use]
pub fn encode_messages(messages: &[Message]) -> Vec<Bytes> {
    let (fields, payloads) = messages
        .iter()
        .map(layout)
        .fold((4, 0), |(fields, payloads), (f, p)| {
            (fields + f, payloads + p)
        });
    let mut meta = BytesMut::with_capacity(fields);
    let mut chunks = Vec::with_capacity(2 * payloads + 1);
    meta.put_u32_le(u32::try_from(messages.len()).unwrap_or(u32::MAX));
    for message in messages {
        meta.put_u32_le(message.partition.get());
        meta.put_u64_le(message.term.get());
        meta.put_u8(tag(&message.body));
        match &message.body {
            MessageBody::PreVoteRequest {
                last_log_index,
                last_log_term,
                configuration_version,
            } => {
                meta.put_u64_le(last_log_index.get());
                meta.put_u64_le(last_log_term.get());
                meta.put_u64_le(*configuration_version);
            }
            MessageBody::PreVoteResponse { granted } | MessageBody::VoteResponse { granted } => {
                meta.put_u8(u8::from(*granted));
            }
            MessageBody::VoteRequest {
                last_log_index,
                last_log_term,
                configuration_version,
                transfer,
            } => {
                meta.put_u64_le(last_log_index.get());
                meta.put_u64_le(last_log_term.get());
                meta.put_u64_le(*configuration_version);
                meta.put_u8(u8::from(*transfer));
            }
            MessageBody::AppendRequest {
                prev_log_index,
                prev_log_term,
                entries,
                commit,
            } => {
                meta.put_u64_le(prev_log_index.get());
                meta.put_u64_le(prev_log_term.get());
                meta.put_u64_le(commit.get());
                meta.put_u32_le(u32::try_from(entries.len()).unwrap_or(u32::MAX));
                for entry in entries {
                    meta.put_u64_le(entry.index.get());
                    meta.put_u64_le(entry.term.get());
                    meta.put_u64_le(entry.ticket.get());
                    meta.put_u8(entry.kind.code());
                    meta.put_u8(u8::from(entry.auto_commit));
                    meta.put_u32_le(u32::try_from(entry.payload.len()).unwrap_or(u32::MAX));
                    if !entry.payload.is_empty() {
                        chunks.push(meta.split().freeze());
                        chunks.push(entry.payload.clone());
                    }
                }
            }
            MessageBody::AppendResponse {
                success,
                index,
                hint_index,
                hint_term,
            } => {
                meta.put_u8(u8::from(*success));
                meta.put_u64_le(index.get());
                meta.put_u64_le(hint_index.get());
                meta.put_u64_le(hint_term.get());
            }
            MessageBody::Heartbeat {
                commit,
                read_round,
                quiesce,
            } => {
                meta.put_u64_le(commit.get());
                meta.put_u64_le(*read_round);
                meta.put_u8(u8::from(*quiesce));
            }
            MessageBody::HeartbeatResponse { read_round } => meta.put_u64_le(*read_round),
            MessageBody::TimeoutNow => {}
            MessageBody::ReadIndexRequest { context } => meta.put_u64_le(*context),
            MessageBody::ReadIndexResponse { context, index, ok } => {
                meta.put_u64_le(*context);
                meta.put_u64_le(index.get());
                meta.put_u8(u8::from(*ok));
            }
            MessageBody::SnapshotChunk(chunk) => {
                let SnapshotChunk {
                    session,
                    seq,
                    last_index,
                    last_term,
                    configuration,
                    crc,
                    digest,
                    marks,
                    data,
                } = &**chunk;
                meta.put_u64_le(*session);
                meta.put_u32_le(*seq);
                meta.put_u64_le(last_index.get());
                meta.put_u64_le(last_term.get());
                let configuration = configuration.encode();
                // At most CONFIGURATION_BYTES_MAX bytes: far below u32::MAX.
                meta.put_u32_le(configuration.len() as u32);
                meta.put_slice(&configuration);
                meta.put_u32_le(*crc);
                meta.put_u8(u8::from(digest.is_some()));
                if let Some(digest) = digest {
                    meta.put_slice(digest);
                }
                // At most SNAPSHOT_MARKS_BYTES_MAX bytes from this node's shard; a longer
                // one (a caller's own message) goes out with a length the receiver refuses.
                meta.put_u8(u8::try_from(marks.len()).unwrap_or(u8::MAX));
                meta.put_slice(&marks[..marks.len().min(usize::from(u8::MAX))]);
                meta.put_u32_le(u32::try_from(data.len()).unwrap_or(u32::MAX));
                if !data.is_empty() {
                    chunks.push(meta.split().freeze());
                    chunks.push(data.clone());
                }
            }
            MessageBody::SnapshotAck {
                session,
                seq,
                outcome,
            } => {
                meta.put_u64_le(*session);
                meta.put_u32_le(*seq);
                meta.put_u8(outcome_code(*outcome));
            }
        }
    }
    if !meta.is_empty() {
        chunks.push(meta.freeze());
    }
    chunks
}

/// A bounds-checked little-endian reader over a frame body.
pub(crate) struct Cursor<'a> {
    body: &'a Bytes,
    at: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) const fn new(body: &'a Bytes) -> Self {
        Self { body, at: 0 }
    }

    pub(crate) fn u16(&mut self) -> Result<u16, WireError> {
        self.take().map(u16::from_le_bytes)
    }

    pub(crate) fn text(&mut self, len: usize) -> Result<String, WireError> {
        let at = self.at;
        let bytes = self.slice(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| WireError::InvalidText(at))
    }

    /// Everything left.
    pub(crate) fn rest(&mut self) -> Bytes {
        let rest = self.body.slice(self.at.min(self.body.len())..);
        self.at = self.body.len();
        rest
    }

    /// Fails with [`WireError::Trailing`] unless everything was read.
    pub(crate) fn finish(&self) -> Result<(), WireError> {
        match self.remaining() {
            0 => Ok(()),
            trailing => Err(WireError::Trailing(trailing)),
        }
    }

    pub(crate) fn take<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let bytes = self
            .body
            .get(self.at..)
            .and_then(<[u8]>::first_chunk::<N>)
            .ok_or(WireError::Truncated(self.at))?;
        self.at += N;
        Ok(*bytes)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, WireError> {
        self.take::<1>().map(|[b]| b)
    }

    pub(crate) fn u32(&mut self) -> Result<u32, WireError> {
        self.take().map(u32::from_le_bytes)
    }

    pub(crate) fn u64(&mut self) -> Result<u64, WireError> {
        self.take().map(u64::from_le_bytes)
    }

    pub(crate) fn bool(&mut self) -> Result<bool, WireError> {
        let at = self.at;
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(WireError::InvalidBool { value, at }),
        }
    }

    pub(crate) fn slice(&mut self, len: usize) -> Result<Bytes, WireError> {
        let end = self
            .at
            .checked_add(len)
            .filter(|&end| end <= self.body.len())
            .ok_or(WireError::Truncated(self.at))?;
        let bytes = self.body.slice(self.at..end);
        self.at = end;
        Ok(bytes)
    }

    /// The offset of the next byte to read.
    pub(crate) const fn position(&self) -> usize {
        self.at
    }

    pub(crate) fn remaining(&self) -> usize {
        self.body.len().saturating_sub(self.at)
    }
}

/// Decodes a `Messages` body sent by `from` to `to`.
///
/// # Errors
///
/// [`WireError`] describing the first malformed field; nothing is returned then.
pub fn decode_messages(
    body: &Bytes,
    from: NodeId,
    to: NodeId,
    frame_messages_max: usize,
) -> Result<Vec<Message>, WireError> {
    let mut cur = Cursor::new(body);
    let count = cur.u32()? as usize;
    if count > frame_messages_max {
        return Err(WireError::TooManyMessages {
            count: count as u64,
            max: frame_messages_max,
        });
    }
    // Every message takes at least its head: a count the body cannot hold is truncation,
    // found before the list is allocated.
    if count.saturating_mul(MESSAGE_HEAD_BYTES) > cur.remaining() {
        return Err(WireError::Truncated(body.len()));
    }
    let mut messages = Vec::with_capacity(count);
    for _ in 0..count {
        let partition = PartitionId(cur.u32()?);
        let term = Term(cur.u64()?);
        let at = cur.at;
        let body = match cur.u8()? {
            1 => MessageBody::PreVoteRequest {
                last_log_index: LogIndex(cur.u64()?),
                last_log_term: Term(cur.u64()?),
                configuration_version: cur.u64()?,
            },
            2 => MessageBody::PreVoteResponse {
                granted: cur.bool()?,
            },
            3 => MessageBody::VoteRequest {
                last_log_index: LogIndex(cur.u64()?),
                last_log_term: Term(cur.u64()?),
                configuration_version: cur.u64()?,
                transfer: cur.bool()?,
            },
            4 => MessageBody::VoteResponse {
                granted: cur.bool()?,
            },
            5 => decode_append(&mut cur)?,
            6 => MessageBody::AppendResponse {
                success: cur.bool()?,
                index: LogIndex(cur.u64()?),
                hint_index: LogIndex(cur.u64()?),
                hint_term: Term(cur.u64()?),
            },
            7 => MessageBody::Heartbeat {
                commit: LogIndex(cur.u64()?),
                read_round: cur.u64()?,
                quiesce: cur.bool()?,
            },
            8 => MessageBody::HeartbeatResponse {
                read_round: cur.u64()?,
            },
            9 => MessageBody::TimeoutNow,
            10 => MessageBody::ReadIndexRequest {
                context: cur.u64()?,
            },
            11 => MessageBody::ReadIndexResponse {
                context: cur.u64()?,
                index: LogIndex(cur.u64()?),
                ok: cur.bool()?,
            },
            12 => decode_chunk(&mut cur)?,
            13 => MessageBody::SnapshotAck {
                session: cur.u64()?,
                seq: cur.u32()?,
                outcome: {
                    let at = cur.at;
                    match cur.u8()? {
                        0 => SnapshotOutcome::Received,
                        1 => SnapshotOutcome::Installed,
                        2 => SnapshotOutcome::Refused,
                        3 => SnapshotOutcome::Busy,
                        4 => SnapshotOutcome::Free,
                        value => return Err(WireError::UnknownSnapshotOutcome { value, at }),
                    }
                },
            },
            tag => return Err(WireError::UnknownTag { tag, at }),
        };
        messages.push(Message {
            partition,
            from,
            to,
            term,
            body,
        });
    }
    cur.finish()?;
    Ok(messages)
}

fn decode_chunk(cur: &mut Cursor<'_>) -> Result<MessageBody, WireError> {
    let session = cur.u64()?;
    let seq = cur.u32()?;
    let last_index = LogIndex(cur.u64()?);
    let last_term = Term(cur.u64()?);
    let configuration_len = cur.u32()? as usize;
    let at = cur.at;
    let configuration = Configuration::decode(&cur.slice(configuration_len)?)
        .map_err(|error| WireError::InvalidConfiguration { error, at })?;
    let crc = cur.u32()?;
    let digest = if cur.bool()? {
        Some(cur.take::<32>()?)
    } else {
        None
    };
    let at = cur.at;
    let marks_len = usize::from(cur.u8()?);
    if marks_len > SNAPSHOT_MARKS_BYTES_MAX {
        return Err(WireError::OverLimit {
            field: "snapshot marks length",
            value: marks_len as u64,
            max: SNAPSHOT_MARKS_BYTES_MAX,
            at,
        });
    }
    let marks = cur.slice(marks_len)?;
    let len = cur.u32()? as usize;
    let data = cur.slice(len)?;
    Ok(MessageBody::SnapshotChunk(Box::new(SnapshotChunk {
        session,
        seq,
        last_index,
        last_term,
        configuration,
        crc,
        digest,
        marks,
        data,
    })))
}

fn decode_append(cur: &mut Cursor<'_>) -> Result<MessageBody, WireError> {
    let prev_log_index = LogIndex(cur.u64()?);
    let prev_log_term = Term(cur.u64()?);
    let commit = LogIndex(cur.u64()?);
    let count = cur.u32()? as usize;
    if count.saturating_mul(ENTRY_HEAD_BYTES) > cur.remaining() {
        return Err(WireError::Truncated(cur.body.len()));
    }
    let mut entries = Vec::with_capacity(count);
    for _ in 0..count {
        let index = LogIndex(cur.u64()?);
        let term = Term(cur.u64()?);
        let ticket = Ticket(cur.u64()?);
        let at = cur.at;
        let code = cur.u8()?;
        let kind =
            EntryKind::from_code(code).ok_or(WireError::UnknownEntryKind { kind: code, at })?;
        let auto_commit = cur.bool()?;
        let len = cur.u32()? as usize;
        let payload = cur.slice(len)?;
        entries.push(Entry {
            index,
            term,
            kind,
            ticket,
            auto_commit,
            payload,
        });
    }
    Ok(MessageBody::AppendRequest {
        prev_log_index,
        prev_log_term,
        entries,
        commit,
    })
}
