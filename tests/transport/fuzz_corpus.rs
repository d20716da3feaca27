//! Replays every committed transport fuzz corpus file through the fuzz targets' own entry
//! points (default run), and regenerates the seed files (`TRANSPORT_WRITE_FUZZ_SEEDS=1`,
//! ignored test). Commands: docs/testing.md, "TCP transport".

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use std::sync::Arc;

use bytes::Bytes;
use kommander_raft::transport::codec::{
    FrameKind, UNSTAMPED, encode_call, encode_call_answer, encode_messages, write_frame,
};
use kommander_raft::transport::tcp::client::{
    ClientRequest, ClientResponse, ReplicaState, encode_request, encode_response,
};
use kommander_raft::transport::tcp::handshake::{
    self, ConnectionRole, HANDSHAKE_FRAME_BYTES_MAX, Hello, Identity, Welcomed,
};
use kommander_raft::transport::tcp::reader::{Deadlines, FrameReader};
use kommander_raft::{
    CallAnswer, Configuration, MembershipCall, NodeId, PartitionId, Roster, RosterChange, Status,
};

use super::wire::{frame_bytes, sample_messages};

#[path = "../../fuzz/fuzz_targets/transport_entry.rs"]
mod entry;

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("corpus {dir:?}: {e}"))
        .map(|e| {
            let path = e.expect("entry").path();
            let name = path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            (name, std::fs::read(&path).expect("read"))
        })
        .collect();
    out.sort();
    out
}

#[test]
fn transport_frame_corpus_replays() {
    let files = files(&corpus("transport_frame"));
    assert!(files.len() >= 6, "the transport_frame corpus is missing");
    for (name, data) in &files {
        let outcome = entry::frame(data);
        if name.starts_with("valid") {
            assert!(
                outcome.messages
                    + outcome.requests
                    + outcome.responses
                    + outcome.calls
                    + outcome.answers
                    > 0,
                "{name}: a valid seed decoded nothing: {outcome:?}"
            );
        }
        if name.starts_with("valid-stream") {
            // 2 passes over 23 frames: 1 batch, 1 keepalive, 4 requests, 6 responses, 6 calls,
            // 5 answers.
            assert_eq!(outcome.frames, 2 * 23, "{name}: {outcome:?}");
            // Every request, response, call and answer decodes (and re-encodes to its bytes).
            assert_eq!(
                (
                    outcome.requests,
                    outcome.responses,
                    outcome.calls,
                    outcome.answers
                ),
                (2 * 4, 2 * 6, 2 * 6, 2 * 5),
                "{name}: {outcome:?}"
            );
        }
        if name.starts_with("corrupt") || name.starts_with("oversized") {
            // Rejected as sent; only the checksum-repairing pass may read frames (and an
            // oversized header is refused by both).
            let mut reader = FrameReader::new(entry::FRAME_BYTES_MAX, 4096);
            let first = reader.read_frame(&mut &data[..], LONG, &|| false);
            assert!(first.is_err(), "{name}: the first frame was accepted");
        }
    }
}

#[test]
fn transport_handshake_corpus_replays() {
    let files = files(&corpus("transport_handshake"));
    assert!(
        files.len() >= 5,
        "the transport_handshake corpus is missing"
    );
    for (name, data) in &files {
        let [open, authenticated, ..] = entry::handshake(data);
        if name.starts_with("valid") {
            let role = if name.starts_with("valid-call") {
                ConnectionRole::Call
            } else {
                ConnectionRole::Peer
            };
            assert_eq!(
                open.as_ref().map_err(String::as_str),
                Ok(&Hello {
                    role,
                    node: NodeId(1),
                    incarnation: CONNECTOR_INCARNATION,
                }),
                "{name}"
            );
            let refusal = authenticated
                .as_ref()
                .expect_err("an acceptor with a secret refuses it");
            assert!(
                refusal.contains("sent no authentication"),
                "{name}: {refusal}"
            );
        }
        if name.starts_with("replayed") {
            let refusal = authenticated
                .as_ref()
                .expect_err("a replayed handshake is refused");
            assert!(
                refusal.contains("failed authentication"),
                "{name}: {refusal}"
            );
        }
        if name.starts_with("wrong-cluster") {
            let refusal = open.as_ref().expect_err("another cluster is refused");
            assert!(
                refusal.contains("not this node's cluster"),
                "{name}: {refusal}"
            );
        }
    }
}

const LONG: Deadlines = Deadlines {
    frame_timeout: Duration::from_secs(10),
    idle_timeout: Duration::from_secs(10),
};

/// A stream that records what is written to it.
struct Recording<S> {
    inner: S,
    sent: Vec<u8>,
}

impl<S: Read> Read for Recording<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }
}

impl<S: Write> Write for Recording<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sent.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// What node 1 sends when it connects to the fuzz target's acceptor as `role` (a real
/// handshake over a socket pair), with `cluster` and `secret`.
fn connector_transcript(role: ConnectionRole, cluster: &str, secret: Option<&[u8]>) -> Vec<u8> {
    let (ours, theirs) = UnixStream::pair().expect("socket pair");
    let acceptor_secret = secret.map(Bytes::copy_from_slice);
    let acceptor = std::thread::spawn(move || {
        let mut stream = theirs;
        let me = Identity {
            cluster: entry::CLUSTER.to_owned(),
            node: entry::ACCEPTOR,
            incarnation: 0,
            secret: acceptor_secret,
            client_endpoint: Some(ACCEPTOR_CLIENT_ENDPOINT.to_owned()),
        };
        let mut reader = FrameReader::new(HANDSHAKE_FRAME_BYTES_MAX, HANDSHAKE_FRAME_BYTES_MAX);
        handshake::accept(
            &mut stream,
            &mut reader,
            &me,
            UNSTAMPED,
            &|_: &Hello| Ok(()),
            LONG,
        )
    });
    let me = Identity {
        cluster: cluster.to_owned(),
        node: NodeId(1),
        incarnation: CONNECTOR_INCARNATION,
        secret: secret.map(Bytes::copy_from_slice),
        client_endpoint: None,
    };
    let mut stream = Recording {
        inner: ours,
        sent: Vec::new(),
    };
    let mut reader = FrameReader::new(HANDSHAKE_FRAME_BYTES_MAX, HANDSHAKE_FRAME_BYTES_MAX);
    let connected = handshake::connect(&mut stream, &mut reader, &me, UNSTAMPED, role, None, LONG);
    let accepted = acceptor.join().expect("acceptor thread");
    if cluster == entry::CLUSTER {
        assert_eq!(
            connected.expect("handshake"),
            Welcomed {
                acceptor: entry::ACCEPTOR,
                client_endpoint: Some(ACCEPTOR_CLIENT_ENDPOINT.to_owned()),
            }
        );
        assert_eq!(
            accepted.expect("handshake"),
            Hello {
                role,
                node: NodeId(1),
                incarnation: CONNECTOR_INCARNATION,
            }
        );
    }
    stream.sent
}

/// The client endpoint the acceptor of the seed transcripts advertises in its `Welcome`.
const ACCEPTOR_CLIENT_ENDPOINT: &str = "127.0.0.1:7201";

/// The incarnation node 1 presents in the seed transcripts.
const CONNECTOR_INCARNATION: u64 = 0x1d_e471_7e57;

fn frame_of(kind: FrameKind, chunks: &[Bytes]) -> Vec<u8> {
    let mut out = Vec::new();
    write_frame(&mut out, kind, UNSTAMPED, chunks).expect("Vec write");
    out
}

#[test]
#[ignore = "writes the seed files; run with TRANSPORT_WRITE_FUZZ_SEEDS=1 -- --ignored"]
fn write_transport_fuzz_seeds() {
    if std::env::var("TRANSPORT_WRITE_FUZZ_SEEDS").is_err() {
        return;
    }
    // transport_frame: real frames back to back, as a peer or a client sends them.
    let messages = sample_messages();
    let mut stream = frame_bytes(&messages);
    stream.extend(frame_bytes(&[]));
    let requests = [
        ClientRequest::Replicate {
            partition: PartitionId(3),
            log_type: "kv".to_owned(),
            payload: Bytes::from_static(b"key=value"),
        },
        ClientRequest::Leader {
            partition: PartitionId(3),
        },
        ClientRequest::Status {
            partition: PartitionId(3),
        },
        ClientRequest::Ping,
    ];
    for (id, request) in requests.iter().enumerate() {
        stream.extend(frame_of(
            FrameKind::ClientRequest,
            &encode_request(id as u64, request),
        ));
    }
    let responses = [
        ClientResponse::Replicated {
            status: Status::Success,
            index: Some(17),
            ticket: 5,
        },
        ClientResponse::Leader {
            status: Status::Success,
            leader: Some(NodeId(2)),
            endpoint: "127.0.0.1:7000".to_owned(),
        },
        ClientResponse::Failed {
            reason: "unknown partition".to_owned(),
        },
        ClientResponse::Status {
            status: Status::Success,
            state: ReplicaState {
                leader: Some(NodeId(1)),
                term: 3,
                commit: 16,
                last_index: 16,
                applied: 15,
            },
        },
        ClientResponse::Unknown {
            reason: "leadership was lost".to_owned(),
        },
        ClientResponse::Pong,
    ];
    for (id, response) in responses.iter().enumerate() {
        stream.extend(frame_of(
            FrameKind::ClientResponse,
            &[encode_response(id as u64, response)],
        ));
    }
    let changes = [
        RosterChange::Add {
            node: NodeId(4),
            endpoint: "127.0.0.1:7004".to_owned(),
            incarnation: 9,
        },
        RosterChange::Promote { node: NodeId(4) },
        RosterChange::Demote { node: NodeId(2) },
        RosterChange::Leave { node: NodeId(3) },
        RosterChange::Remove { node: NodeId(3) },
        RosterChange::Endpoints {
            endpoints: vec![(NodeId(1), "127.0.0.1:7001".to_owned())],
        },
    ];
    for (version, change) in changes.into_iter().enumerate() {
        let call = MembershipCall {
            from: NodeId(1),
            change,
            expected_version: (version % 2 == 0).then_some(version as u64),
        };
        let body = encode_call(&call).expect("a call within the limits");
        stream.extend(frame_of(FrameKind::CallRequest, &[body]));
    }
    let roster = Roster::of(&Configuration::new(vec![NodeId(1)], Vec::new()).expect("valid"))
        .expect("genesis");
    let answers = [
        CallAnswer::Done(Arc::new(roster)),
        CallAnswer::NotLeader {
            leader: Some((NodeId(2), "127.0.0.1:7002".to_owned())),
        },
        CallAnswer::NotLeader { leader: None },
        CallAnswer::Refused(Status::StaleMembership),
        CallAnswer::Unknown,
    ];
    for answer in &answers {
        let body = encode_call_answer(answer).expect("an answer within the limits");
        stream.extend(frame_of(FrameKind::CallAnswer, &[body]));
    }
    let dir = corpus("transport_frame");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let write = |dir: &Path, name: &str, bytes: &[u8]| {
        std::fs::write(dir.join(name), bytes).expect("write seed");
    };
    write(&dir, "valid-stream", &stream);
    let body: Vec<u8> = encode_messages(&messages)
        .iter()
        .flat_map(|c| c.to_vec())
        .collect();
    write(&dir, "valid-body", &body);
    write(&dir, "truncated-stream", &stream[..stream.len() / 2]);
    let mut corrupt = frame_bytes(&messages);
    corrupt[100] ^= 0x04;
    write(&dir, "corrupt-body-byte", &corrupt);
    let mut oversized = frame_bytes(&messages);
    oversized[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    write(&dir, "oversized-header", &oversized);
    let garbage: Vec<u8> = (0u32..512)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    write(&dir, "garbage", &garbage);

    // transport_handshake: what a connector sends.
    let dir = corpus("transport_handshake");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let open = connector_transcript(ConnectionRole::Peer, entry::CLUSTER, None);
    write(&dir, "valid-open-transcript", &open);
    write(
        &dir,
        "valid-call-transcript",
        &connector_transcript(ConnectionRole::Call, entry::CLUSTER, None),
    );
    write(
        &dir,
        "replayed-authenticated-transcript",
        &connector_transcript(ConnectionRole::Peer, entry::CLUSTER, Some(entry::SECRET)),
    );
    write(
        &dir,
        "wrong-cluster-hello",
        &connector_transcript(ConnectionRole::Peer, "another", None),
    );
    write(&dir, "truncated-hello", &open[..open.len() / 3]);
    write(&dir, "garbage", &garbage);
}
