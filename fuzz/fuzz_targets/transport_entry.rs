//! Entry points of the transport fuzz targets, shared with the default-run corpus replay
//! (`tests/transport/fuzz_corpus.rs` includes this file with `#[path]`), so the fuzzer and the
//! replay exercise exactly the same code.
//!
//! Both entry points must never panic and never allocate more than the limits below allow,
//! whatever the bytes. They also assert the codecs' roundtrip properties on everything that
//! decodes: a decoded body re-encodes to the same bytes (the encodings are canonical).

// Each target and the replay test use a part of this module.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::time::Duration;

use bytes::Bytes;
use kommander_raft::core::NodeId;
use kommander_raft::transport::codec::{
    FrameKind, HEADER_BYTES, UNSTAMPED, decode_call, decode_call_answer, decode_frame,
    decode_messages, encode_call, encode_call_answer, encode_messages,
};
use kommander_raft::transport::tcp::client::{
    ClientResponse, decode_request, decode_response, encode_request, encode_response,
};
use kommander_raft::transport::tcp::handshake::{
    self, Admission, ConnectionRole, HANDSHAKE_FRAME_BYTES_MAX, Hello, Identity, RejectCode,
};
use kommander_raft::transport::tcp::reader::{Deadlines, FrameReader};

/// `frame_bytes_max` of the fuzzed readers.
pub(crate) const FRAME_BYTES_MAX: usize = 64 << 10;
/// `frame_messages_max` of the fuzzed decoders.
pub(crate) const FRAME_MESSAGES_MAX: usize = 1024;
/// `read_chunk_bytes` of the fuzzed readers.
const READ_CHUNK_BYTES: usize = 4096;
/// Never reached in memory (reads never time out); a hang would be a bug of the reader.
const DEADLINES: Deadlines = Deadlines {
    frame_timeout: Duration::from_secs(3600),
    idle_timeout: Duration::from_secs(3600),
};
/// The cluster name the handshake target's acceptor expects.
pub(crate) const CLUSTER: &str = "fuzz";
/// The acceptor's node id.
pub(crate) const ACCEPTOR: NodeId = NodeId(9);
/// The secret of the authenticated acceptor.
pub(crate) const SECRET: &[u8] = b"fuzz-shared-secret-0123456789";

/// A stream over fixed input bytes: each read returns at most the next of `chunks` (cycling)
/// bytes, so frames arrive split at arbitrary points; writes go nowhere.
pub(crate) struct Stream<'a> {
    input: &'a [u8],
    chunks: &'static [usize],
    turn: usize,
    /// Bytes written to the stream (the other side's replies).
    pub(crate) written: Vec<u8>,
}

impl<'a> Stream<'a> {
    /// A stream yielding `input` in reads of `chunks` bytes at most (cycling).
    pub(crate) fn new(input: &'a [u8], chunks: &'static [usize]) -> Self {
        Self {
            input,
            chunks,
            turn: 0,
            written: Vec::new(),
        }
    }
}

impl Read for Stream<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let chunk = self.chunks[self.turn % self.chunks.len()];
        self.turn += 1;
        let n = chunk.min(buf.len()).min(self.input.len());
        buf[..n].copy_from_slice(&self.input[..n]);
        self.input = &self.input[n..];
        Ok(n)
    }
}

impl Write for Stream<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Keep the replies bounded: only their size matters to the callers.
        let room = (1usize << 16).saturating_sub(self.written.len());
        self.written.extend_from_slice(&buf[..buf.len().min(room)]);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `data` with the checksum of every frame it holds (read back to back, header lengths
/// followed) recomputed, so mutated bodies get past the CRC32C the fuzzer cannot invert.
#[must_use]
pub(crate) fn with_fixed_checksums(data: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    let mut at = 0;
    while let Some(header) = out.get(at..at + HEADER_BYTES) {
        let length = u32::from_le_bytes([header[8], header[9], header[10], header[11]]) as usize;
        let end = at + HEADER_BYTES + length;
        if end > out.len() {
            break;
        }
        // The checksum covers the header's first 20 bytes (up to the stamp) and the body.
        let crc = crc32c::crc32c_append(
            crc32c::crc32c(&out[at..at + 20]),
            &out[at + HEADER_BYTES..end],
        );
        out[at + 20..at + 24].copy_from_slice(&crc.to_le_bytes());
        at = end;
    }
    out
}

/// What [`frame`] decoded (the replay test checks the named seeds with it).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct FrameOutcome {
    /// Frames read by the `FrameReader` (both passes).
    pub(crate) frames: usize,
    /// Messages decoded (from `Messages` frames and from the input as a body).
    pub(crate) messages: usize,
    /// Client requests decoded.
    pub(crate) requests: usize,
    /// Client responses decoded.
    pub(crate) responses: usize,
    /// Membership calls decoded.
    pub(crate) calls: usize,
    /// Membership call answers decoded.
    pub(crate) answers: usize,
}

/// Decodes a frame body by its kind, checking the canonical roundtrip of what decodes.
fn decode_body(kind: FrameKind, body: &Bytes, outcome: &mut FrameOutcome) {
    match kind {
        FrameKind::Messages => {
            if let Ok(messages) = decode_messages(body, NodeId(1), NodeId(2), FRAME_MESSAGES_MAX) {
                let again = concat(&encode_messages(&messages));
                assert_eq!(&again[..], &body[..], "Messages body is not canonical");
                outcome.messages += messages.len();
            }
        }
        FrameKind::ClientRequest => {
            if let Ok((id, request)) = decode_request(body) {
                let again = concat(&encode_request(id, &request));
                assert_eq!(&again[..], &body[..], "ClientRequest body is not canonical");
                outcome.requests += 1;
            }
        }
        FrameKind::ClientResponse => {
            if let Ok((id, response)) = decode_response(body) {
                let again = encode_response(id, &response);
                // A `Failed` or `Unknown` reason is decoded lossily (invalid UTF-8 is
                // replaced): only the decoded value survives a roundtrip, not the bytes.
                if !matches!(
                    response,
                    ClientResponse::Failed { .. } | ClientResponse::Unknown { .. }
                ) {
                    assert_eq!(
                        &again[..],
                        &body[..],
                        "ClientResponse body is not canonical"
                    );
                }
                let redecoded = decode_response(&again).expect("an encoded response decodes");
                assert_eq!(redecoded, (id, response));
                outcome.responses += 1;
            }
        }
        FrameKind::CallRequest => {
            if let Ok(call) = decode_call(body, NodeId(1)) {
                let again = encode_call(&call).expect("a decoded call encodes");
                assert_eq!(&again[..], &body[..], "CallRequest body is not canonical");
                outcome.calls += 1;
            }
        }
        FrameKind::CallAnswer => {
            if let Ok(answer) = decode_call_answer(body) {
                let again = encode_call_answer(&answer).expect("a decoded answer encodes");
                assert_eq!(&again[..], &body[..], "CallAnswer body is not canonical");
                outcome.answers += 1;
            }
        }
        _ => {}
    }
}

fn concat(chunks: &[Bytes]) -> Vec<u8> {
    chunks.iter().flat_map(|c| c.iter().copied()).collect()
}

/// Reads `input` frame by frame until the first error (through a staging buffer of
/// `read_chunk_bytes`, in reads of `chunks` bytes), decoding every body.
fn read_all(
    input: &[u8],
    read_chunk_bytes: usize,
    chunks: &'static [usize],
    outcome: &mut FrameOutcome,
) {
    let mut reader = FrameReader::new(FRAME_BYTES_MAX, read_chunk_bytes);
    let mut stream = Stream::new(input, chunks);
    while let Ok(frame) = reader.read_frame(&mut stream, DEADLINES, &|| false) {
        outcome.frames += 1;
        decode_body(frame.kind, &frame.body, outcome);
    }
}

/// The `transport_frame` target: `data` as a byte stream through a [`FrameReader`] (as sent
/// with a 4 KiB staging buffer, then with every frame's checksum repaired and a 64-byte
/// staging buffer), every frame body through its decoder; `data`
/// as one in-memory frame through `decode_frame`; and `data` itself as a `Messages`, a
/// `ClientRequest`, a `ClientResponse`, a `CallRequest` and a `CallAnswer` body.
pub(crate) fn frame(data: &[u8]) -> FrameOutcome {
    let mut outcome = FrameOutcome::default();
    read_all(data, READ_CHUNK_BYTES, &[READ_CHUNK_BYTES], &mut outcome);
    // A 64-byte staging buffer: most frames take the reader's large-frame path.
    read_all(
        &with_fixed_checksums(data),
        64,
        &[1, 7, 16, 300],
        &mut outcome,
    );
    let bytes = Bytes::copy_from_slice(data);
    if let Ok(frame) = decode_frame(&bytes, FRAME_BYTES_MAX) {
        decode_body(frame.kind, &frame.body, &mut FrameOutcome::default());
    }
    for kind in [
        FrameKind::Messages,
        FrameKind::ClientRequest,
        FrameKind::ClientResponse,
        FrameKind::CallRequest,
        FrameKind::CallAnswer,
    ] {
        decode_body(kind, &bytes, &mut outcome);
    }
    outcome
}

/// The `transport_handshake` target: `data` as everything a connector sends, fed to
/// `handshake::accept` of an acceptor without and with a shared secret (as sent, then with
/// every frame's checksum repaired). Returns the four outcomes.
pub(crate) fn handshake(data: &[u8]) -> [Result<Hello, String>; 4] {
    let fixed = with_fixed_checksums(data);
    [
        accept(data, None),
        accept(data, Some(SECRET)),
        accept(&fixed, None),
        accept(&fixed, Some(SECRET)),
    ]
}

/// One acceptor's handshake over `input`; peers 1 to 5 are admitted, calls from any node but
/// the acceptor and 0 (as the peer port does), clients; once authenticated, a connector of
/// incarnation [`DUPLICATE_INCARNATION`] is refused as a duplicate (as the peer port refuses
/// one).
pub(crate) fn accept(input: &[u8], secret: Option<&[u8]>) -> Result<Hello, String> {
    let me = Identity {
        cluster: CLUSTER.to_owned(),
        node: ACCEPTOR,
        incarnation: 1,
        secret: secret.map(Bytes::copy_from_slice),
        client_endpoint: None,
    };
    let admission = Acceptor;
    let mut stream = Stream::new(input, &[READ_CHUNK_BYTES, 3]);
    // As the listener does: small limits until the connector is authenticated.
    let mut reader = FrameReader::new(HANDSHAKE_FRAME_BYTES_MAX, HANDSHAKE_FRAME_BYTES_MAX);
    handshake::accept(
        &mut stream,
        &mut reader,
        &me,
        UNSTAMPED,
        &admission,
        DEADLINES,
    )
    .map_err(|e| e.to_string())
}

/// The incarnation the fuzzed acceptor judges a duplicate.
pub(crate) const DUPLICATE_INCARNATION: u64 = 0xd0d0;

/// The fuzzed acceptor's admission.
struct Acceptor;

impl Admission for Acceptor {
    fn admit(&self, hello: &Hello) -> Result<(), (RejectCode, String)> {
        let node = hello.node;
        match hello.role {
            ConnectionRole::Peer if (1..=5).contains(&node.get()) => Ok(()),
            ConnectionRole::Peer => Err((RejectCode::UnknownNode, format!("{node} is not a peer"))),
            ConnectionRole::Call if node == ACCEPTOR || node == NodeId::ZERO => {
                Err((RejectCode::UnknownNode, format!("{node} cannot call")))
            }
            ConnectionRole::Call | ConnectionRole::Client => Ok(()),
        }
    }

    fn confirm(&self, hello: &Hello) -> Result<(), (RejectCode, String)> {
        if hello.incarnation == DUPLICATE_INCARNATION {
            return Err((RejectCode::DuplicateNode, "a duplicate".to_owned()));
        }
        Ok(())
    }
}
