//! Property tests of the TCP transport's wire path: `encode_messages` → `write_frame` →
//! `FrameReader` → `decode_messages` roundtrips exactly and without copying payloads; any
//! single-byte corruption or truncation is an error, never a panic; limits are enforced from
//! the header (or the count) before anything is allocated for what it announces.

use std::io::{self, Read};
use std::time::Duration;

use bytes::Bytes;
use kommander_raft::core::{
    Configuration, Entry, EntryKind, LogIndex, Message, MessageBody, SNAPSHOT_MARKS_BYTES_MAX,
    SnapshotChunk, SnapshotOutcome, Ticket,
};
use kommander_raft::transport::codec::{
    FrameError, FrameKind, HEADER_BYTES, MAGIC, PROTOCOL_VERSION, UNSTAMPED, WireError,
    decode_frame, decode_messages, encode_messages, parse_header, write_frame,
};
use kommander_raft::transport::tcp::reader::{Deadlines, FrameReader};
use kommander_raft::{NodeId, PartitionId, Term};
use proptest::prelude::*;

const FROM: NodeId = NodeId(7);
const TO: NodeId = NodeId(8);
const FRAME_BYTES_MAX: usize = 1 << 20;
const FRAME_MESSAGES_MAX: usize = 4096;
const DEADLINES: Deadlines = Deadlines {
    frame_timeout: Duration::from_secs(60),
    idle_timeout: Duration::from_secs(60),
};

fn entry(index: u64, kind: EntryKind, payload: &[u8]) -> Entry {
    Entry {
        index: LogIndex(index),
        term: Term(3),
        kind,
        ticket: Ticket(index * 1000 + 1),
        auto_commit: index.is_multiple_of(2),
        payload: Bytes::copy_from_slice(payload),
    }
}

/// One message of each of the 13 bodies, the AppendRequest with every entry kind, the
/// snapshot chunk with its digest (the fuzz seeds are built from it too).
pub(crate) fn sample_messages() -> Vec<Message> {
    let bodies = vec![
        MessageBody::PreVoteRequest {
            last_log_index: LogIndex(10),
            last_log_term: Term(2),
            configuration_version: 0,
        },
        MessageBody::PreVoteResponse { granted: true },
        MessageBody::VoteRequest {
            last_log_index: LogIndex(11),
            last_log_term: Term(3),
            configuration_version: 9,
            transfer: true,
        },
        MessageBody::VoteResponse { granted: false },
        MessageBody::AppendRequest {
            prev_log_index: LogIndex(11),
            prev_log_term: Term(3),
            entries: vec![
                entry(12, EntryKind::Normal, b"payload of a normal entry"),
                entry(13, EntryKind::NoOp, b""),
                entry(14, EntryKind::Commit, b""),
                entry(15, EntryKind::Rollback, b""),
                entry(16, EntryKind::Checkpoint, &[0xAB; 40]),
            ],
            commit: LogIndex(11),
        },
        MessageBody::AppendResponse {
            success: true,
            index: LogIndex(16),
            hint_index: LogIndex(0),
            hint_term: Term(0),
        },
        MessageBody::Heartbeat {
            commit: LogIndex(16),
            read_round: 4,
            quiesce: false,
        },
        MessageBody::HeartbeatResponse { read_round: 4 },
        MessageBody::TimeoutNow,
        MessageBody::ReadIndexRequest { context: 99 },
        MessageBody::ReadIndexResponse {
            context: 99,
            index: LogIndex(16),
            ok: true,
        },
        MessageBody::SnapshotChunk(Box::new(SnapshotChunk {
            session: 5,
            seq: 2,
            last_index: LogIndex(16),
            last_term: Term(3),
            configuration: Configuration::new(vec![NodeId(1), NodeId(2)], vec![NodeId(7)])
                .expect("valid"),
            crc: 0xDEAD_BEEF,
            digest: Some([0x5A; 32]),
            marks: Bytes::from(vec![0x4B; SNAPSHOT_MARKS_BYTES_MAX]),
            data: Bytes::from_static(b"the last chunk of a snapshot"),
        })),
        MessageBody::SnapshotAck {
            session: 5,
            seq: 2,
            outcome: SnapshotOutcome::Installed,
        },
    ];
    bodies
        .into_iter()
        .enumerate()
        .map(|(i, body)| Message {
            partition: PartitionId(i as u32),
            from: FROM,
            to: TO,
            term: Term(3),
            body,
        })
        .collect()
}

/// The bytes of one `Messages` frame carrying `messages`.
pub(crate) fn frame_bytes(messages: &[Message]) -> Vec<u8> {
    let mut out = Vec::new();
    write_frame(
        &mut out,
        FrameKind::Messages,
        UNSTAMPED,
        &encode_messages(messages),
    )
    .expect("Vec write");
    out
}

fn arb_entry() -> impl Strategy<Value = Entry> {
    (
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        0u8..5,
        any::<bool>(),
        prop::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(|(index, term, ticket, kind, auto_commit, payload)| Entry {
            index: LogIndex(index),
            term: Term(term),
            kind: EntryKind::from_code(kind).expect("codes 0..5"),
            ticket: Ticket(ticket),
            auto_commit,
            payload: Bytes::from(payload),
        })
}

fn arb_body() -> impl Strategy<Value = MessageBody> {
    let u = any::<u64>;
    prop_oneof![
        (u(), u(), u()).prop_map(|(i, t, v)| MessageBody::PreVoteRequest {
            last_log_index: LogIndex(i),
            last_log_term: Term(t),
            configuration_version: v,
        }),
        any::<bool>().prop_map(|granted| MessageBody::PreVoteResponse { granted }),
        (u(), u(), u(), any::<bool>()).prop_map(|(i, t, v, transfer)| MessageBody::VoteRequest {
            last_log_index: LogIndex(i),
            last_log_term: Term(t),
            configuration_version: v,
            transfer,
        }),
        any::<bool>().prop_map(|granted| MessageBody::VoteResponse { granted }),
        (u(), u(), u(), prop::collection::vec(arb_entry(), 0..6)).prop_map(
            |(i, t, commit, entries)| MessageBody::AppendRequest {
                prev_log_index: LogIndex(i),
                prev_log_term: Term(t),
                entries,
                commit: LogIndex(commit),
            }
        ),
        (any::<bool>(), u(), u(), u()).prop_map(|(success, index, hint_index, hint_term)| {
            MessageBody::AppendResponse {
                success,
                index: LogIndex(index),
                hint_index: LogIndex(hint_index),
                hint_term: Term(hint_term),
            }
        }),
        (u(), u(), any::<bool>()).prop_map(|(commit, read_round, quiesce)| {
            MessageBody::Heartbeat {
                commit: LogIndex(commit),
                read_round,
                quiesce,
            }
        }),
        u().prop_map(|read_round| MessageBody::HeartbeatResponse { read_round }),
        Just(MessageBody::TimeoutNow),
        u().prop_map(|context| MessageBody::ReadIndexRequest { context }),
        (u(), u(), any::<bool>()).prop_map(|(context, index, ok)| {
            MessageBody::ReadIndexResponse {
                context,
                index: LogIndex(index),
                ok,
            }
        }),
        (
            (u(), any::<u32>(), u(), u()),
            any::<u32>(),
            prop::option::of(any::<[u8; 32]>()),
            prop::collection::vec(any::<u8>(), 0..=SNAPSHOT_MARKS_BYTES_MAX),
            prop::collection::vec(any::<u8>(), 0..300),
        )
            .prop_map(
                |((session, seq, last_index, last_term), crc, digest, marks, data)| {
                    MessageBody::SnapshotChunk(Box::new(SnapshotChunk {
                        session,
                        seq,
                        last_index: LogIndex(last_index),
                        last_term: Term(last_term),
                        configuration: Configuration::new(vec![NodeId(3)], Vec::new())
                            .expect("valid"),
                        crc,
                        digest,
                        marks: Bytes::from(marks),
                        data: Bytes::from(data),
                    }))
                }
            ),
        (u(), any::<u32>(), 0..5u8).prop_map(|(session, seq, outcome)| MessageBody::SnapshotAck {
            session,
            seq,
            outcome: [
                SnapshotOutcome::Received,
                SnapshotOutcome::Installed,
                SnapshotOutcome::Refused,
                SnapshotOutcome::Busy,
                SnapshotOutcome::Free,
            ][usize::from(outcome)],
        }),
    ]
}

fn arb_messages() -> impl Strategy<Value = Vec<Message>> {
    prop::collection::vec(
        (any::<u32>(), any::<u64>(), arb_body()).prop_map(|(partition, term, body)| Message {
            partition: PartitionId(partition),
            from: FROM,
            to: TO,
            term: Term(term),
            body,
        }),
        0..16,
    )
}

/// Reads one frame from `bytes` and decodes it as `Messages`.
fn read_messages(bytes: &[u8]) -> Result<Vec<Message>, String> {
    let mut reader = FrameReader::new(FRAME_BYTES_MAX, 4096);
    let frame = reader
        .read_frame(&mut &bytes[..], DEADLINES, &|| false)
        .map_err(|e| format!("frame: {e}"))?;
    if frame.kind != FrameKind::Messages {
        return Err(format!("kind {:?}", frame.kind));
    }
    decode_messages(&frame.body, FROM, TO, FRAME_MESSAGES_MAX).map_err(|e| format!("wire: {e}"))
}

fn payloads(messages: &[Message]) -> Vec<&Bytes> {
    messages
        .iter()
        .flat_map(|m| match &m.body {
            MessageBody::AppendRequest { entries, .. } => {
                entries.iter().map(|e| &e.payload).collect()
            }
            MessageBody::SnapshotChunk(chunk) => vec![&chunk.data],
            _ => Vec::new(),
        })
        .filter(|p| !p.is_empty())
        .collect()
}

#[test]
fn every_body_roundtrips_through_a_frame() {
    let messages = sample_messages();
    let bytes = frame_bytes(&messages);
    assert_eq!(read_messages(&bytes), Ok(messages));
}

#[test]
fn the_senders_stamp_travels_in_the_header_under_the_checksum() {
    let stamp = 0x0651_f3c2_a400_0007; // a packed HLC timestamp: some millisecond, counter 7
    let mut bytes = Vec::new();
    write_frame(
        &mut bytes,
        FrameKind::Messages,
        stamp,
        &encode_messages(&sample_messages()),
    )
    .expect("Vec write");
    let frame = decode_frame(&Bytes::from(bytes.clone()), FRAME_BYTES_MAX).expect("a frame");
    assert_eq!(frame.stamp, stamp);
    let mut reader = FrameReader::new(FRAME_BYTES_MAX, 4096);
    let read = reader
        .read_frame(&mut &bytes[..], DEADLINES, &|| false)
        .expect("read");
    assert_eq!((read.stamp, reader.last_stamp()), (stamp, stamp));
    // Bytes 12..20 are the stamp; the checksum covers them.
    bytes[12] ^= 1;
    assert!(matches!(
        decode_frame(&Bytes::from(bytes), FRAME_BYTES_MAX),
        Err(FrameError::Checksum { .. })
    ));
}

#[test]
fn every_truncation_of_a_frame_is_an_error() {
    let bytes = frame_bytes(&sample_messages());
    for cut in 0..bytes.len() {
        let mut reader = FrameReader::new(FRAME_BYTES_MAX, 64);
        let result = reader.read_frame(&mut &bytes[..cut], DEADLINES, &|| false);
        assert!(
            matches!(result, Err(FrameError::Closed { mid_frame }) if mid_frame == (cut > 0)),
            "cut at {cut} of {}: {result:?}",
            bytes.len()
        );
    }
}

#[test]
fn a_header_announcing_4_gib_is_refused_from_the_header_alone() {
    let mut header = [0u8; HEADER_BYTES];
    header[..4].copy_from_slice(&MAGIC.to_le_bytes());
    header[4..6].copy_from_slice(&PROTOCOL_VERSION.to_le_bytes());
    header[6] = FrameKind::Messages.code();
    header[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        parse_header(&header, 1024),
        Err(FrameError::TooLarge { length, max: 1024 }) if length == u64::from(u32::MAX)
    ));
    /// Yields the header, then fails any further read: the refusal must come from the
    /// 16 bytes alone, before the reader asks for (or makes room for) the body.
    struct HeaderOnly([u8; HEADER_BYTES], bool);
    impl Read for HeaderOnly {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            assert!(!self.1, "the reader asked for the body of a refused frame");
            self.1 = true;
            assert!(buf.len() <= 1024, "read buffer of {} bytes", buf.len());
            buf[..HEADER_BYTES].copy_from_slice(&self.0);
            Ok(HEADER_BYTES)
        }
    }
    let mut reader = FrameReader::new(1024, 1024);
    let result = reader.read_frame(&mut HeaderOnly(header, false), DEADLINES, &|| false);
    assert!(
        matches!(result, Err(FrameError::TooLarge { max: 1024, .. })),
        "{result:?}"
    );
}

#[test]
fn message_counts_are_checked_before_the_list_is_allocated() {
    // A count of 4 G messages in a 4-byte body.
    let body = Bytes::from_static(&[0xFF; 4]);
    assert_eq!(
        decode_messages(&body, FROM, TO, 1024),
        Err(WireError::TooManyMessages {
            count: u64::from(u32::MAX),
            max: 1024
        })
    );
    // Within the limit but more than the body can hold: truncation, before allocating.
    let mut body = 1000u32.to_le_bytes().to_vec();
    body.extend_from_slice(&[0; 100]);
    assert!(matches!(
        decode_messages(&Bytes::from(body), FROM, TO, 1024),
        Err(WireError::Truncated(_))
    ));
    // An AppendRequest announcing 4 G entries.
    let append = Message {
        body: MessageBody::AppendRequest {
            prev_log_index: LogIndex(1),
            prev_log_term: Term(1),
            entries: Vec::new(),
            commit: LogIndex(1),
        },
        ..sample_messages()[0].clone()
    };
    let mut body: Vec<u8> = encode_messages(&[append])
        .iter()
        .flat_map(|c| c.to_vec())
        .collect();
    let entries_count_at = body.len() - 4;
    body[entries_count_at..].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        decode_messages(&Bytes::from(body), FROM, TO, 1024),
        Err(WireError::Truncated(_))
    ));
    // A real batch over the limit.
    let messages = sample_messages();
    let body: Vec<u8> = encode_messages(&messages)
        .iter()
        .flat_map(|c| c.to_vec())
        .collect();
    assert_eq!(
        decode_messages(&Bytes::from(body), FROM, TO, messages.len() - 1),
        Err(WireError::TooManyMessages {
            count: messages.len() as u64,
            max: messages.len() - 1
        })
    );
}

/// A snapshot chunk's marks: up to `SNAPSHOT_MARKS_BYTES_MAX` bytes round-trip; a longer
/// length is refused from the length byte alone, a body ending inside the marks is truncated.
#[test]
fn snapshot_marks_over_their_limit_are_refused() {
    let chunk = |marks: Vec<u8>| Message {
        body: MessageBody::SnapshotChunk(Box::new(SnapshotChunk {
            session: 1,
            seq: 0,
            last_index: LogIndex(9),
            last_term: Term(2),
            configuration: Configuration::new(vec![NodeId(1)], Vec::new()).expect("valid"),
            crc: 0,
            digest: None,
            marks: Bytes::from(marks),
            data: Bytes::new(),
        })),
        ..sample_messages()[0].clone()
    };
    let body = |message: &Message| -> Vec<u8> {
        encode_messages(std::slice::from_ref(message))
            .iter()
            .flat_map(|c| c.to_vec())
            .collect()
    };
    let longest = chunk(vec![0xA5; SNAPSHOT_MARKS_BYTES_MAX]);
    let encoded = body(&longest);
    assert_eq!(
        decode_messages(&Bytes::from(encoded.clone()), FROM, TO, 16),
        Ok(vec![longest])
    );
    // The marks' length byte sits before the marks and the data's length (4 bytes).
    let length_at = encoded.len() - 4 - SNAPSHOT_MARKS_BYTES_MAX - 1;
    assert_eq!(usize::from(encoded[length_at]), SNAPSHOT_MARKS_BYTES_MAX);
    for announced in [SNAPSHOT_MARKS_BYTES_MAX + 1, usize::from(u8::MAX)] {
        let mut longer = encoded.clone();
        longer[length_at] = u8::try_from(announced).expect("a byte");
        assert_eq!(
            decode_messages(&Bytes::from(longer), FROM, TO, 16),
            Err(WireError::OverLimit {
                field: "snapshot marks length",
                value: announced as u64,
                max: SNAPSHOT_MARKS_BYTES_MAX,
                at: length_at,
            })
        );
    }
    // A caller's own message with longer marks goes out with a length the receiver refuses.
    let too_long = body(&chunk(vec![1; 300]));
    assert!(matches!(
        decode_messages(&Bytes::from(too_long), FROM, TO, 16),
        Err(WireError::OverLimit { value: 255, .. })
    ));
    for cut in length_at + 1..length_at + 1 + SNAPSHOT_MARKS_BYTES_MAX {
        assert!(matches!(
            decode_messages(&Bytes::from(encoded[..cut].to_vec()), FROM, TO, 16),
            Err(WireError::Truncated(_))
        ));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Any batch roundtrips exactly (from/to set by the decoder); payloads go out as the
    /// entries' own buffers and come back as slices of the received frame.
    #[test]
    fn any_batch_roundtrips(messages in arb_messages()) {
        let chunks = encode_messages(&messages);
        for payload in payloads(&messages) {
            prop_assert!(
                chunks.iter().any(|c| c.as_ptr() == payload.as_ptr() && c.len() == payload.len()),
                "a payload was copied into the frame"
            );
        }
        let mut bytes = Vec::new();
        write_frame(&mut bytes, FrameKind::Messages, UNSTAMPED, &chunks).expect("Vec write");
        let mut reader = FrameReader::new(FRAME_BYTES_MAX, 4096);
        let mut stream = &bytes[..];
        let frame = reader.read_frame(&mut stream, DEADLINES, &|| false).expect("frame");
        prop_assert_eq!(frame.kind, FrameKind::Messages);
        let decoded = decode_messages(&frame.body, FROM, TO, FRAME_MESSAGES_MAX).expect("decode");
        let body = frame.body.as_ptr_range();
        for payload in payloads(&decoded) {
            prop_assert!(body.contains(&payload.as_ptr()), "a payload was copied out of the frame");
        }
        prop_assert_eq!(&decoded, &messages);
        // Nothing after the frame.
        let next = reader.read_frame(&mut stream, DEADLINES, &|| false);
        prop_assert!(matches!(next, Err(FrameError::Closed { mid_frame: false })), "{:?}", next);
    }

    /// Any single-byte change of a frame (header or body) is refused by the reader; the same
    /// change inside the body, decoded without the checksum, is an error or a batch that
    /// re-encodes to exactly those bytes; never a panic.
    #[test]
    fn any_single_byte_corruption_is_rejected(
        messages in arb_messages(),
        at in any::<prop::sample::Index>(),
        xor in 1u8..=255,
    ) {
        let mut bytes = frame_bytes(&messages);
        let at = at.index(bytes.len());
        bytes[at] ^= xor;
        let result = read_messages(&bytes);
        prop_assert!(result.is_err(), "corrupt byte {} of {} accepted: {:?}", at, bytes.len(), result);
        if at >= HEADER_BYTES {
            let body = Bytes::copy_from_slice(&bytes[HEADER_BYTES..]);
            if let Ok(decoded) = decode_messages(&body, FROM, TO, FRAME_MESSAGES_MAX) {
                let again: Vec<u8> = encode_messages(&decoded).iter().flat_map(|c| c.to_vec()).collect();
                prop_assert_eq!(&again[..], &body[..]);
            }
        }
    }

    /// A frame or a body cut anywhere is an error.
    #[test]
    fn any_truncation_is_an_error(messages in arb_messages(), cut in any::<prop::sample::Index>()) {
        let bytes = frame_bytes(&messages);
        let cut = cut.index(bytes.len());
        prop_assert!(read_messages(&bytes[..cut]).is_err());
        let body_cut = cut.saturating_sub(HEADER_BYTES);
        let body = Bytes::copy_from_slice(&bytes[HEADER_BYTES..HEADER_BYTES + body_cut]);
        prop_assert!(decode_messages(&body, FROM, TO, FRAME_MESSAGES_MAX).is_err());
    }

    /// Whatever the header announces beyond `frame_bytes_max` is refused from the header.
    #[test]
    fn oversized_headers_are_refused(length in 1025u32.., kind in prop::sample::select(vec![1u8, 2, 3, 4, 5, 6, 16, 17])) {
        let mut header = [0u8; HEADER_BYTES];
        header[..4].copy_from_slice(&MAGIC.to_le_bytes());
        header[4..6].copy_from_slice(&PROTOCOL_VERSION.to_le_bytes());
        header[6] = kind;
        header[8..12].copy_from_slice(&length.to_le_bytes());
        let refused = matches!(parse_header(&header, 1024), Err(FrameError::TooLarge { .. }));
        prop_assert!(refused);
    }

    /// Batches over `frame_messages_max` are refused by count.
    #[test]
    fn message_limit_is_enforced(messages in arb_messages(), max in 0usize..16) {
        let body: Vec<u8> = encode_messages(&messages).iter().flat_map(|c| c.to_vec()).collect();
        let result = decode_messages(&Bytes::from(body), FROM, TO, max);
        if messages.len() > max {
            prop_assert_eq!(result, Err(WireError::TooManyMessages { count: messages.len() as u64, max }));
        } else {
            prop_assert_eq!(result, Ok(messages));
        }
    }
}
