//! Bad input against a live `kommander node`: every attack is refused with a logged reason,
//! the node does not crash, and the cluster keeps committing writes meanwhile.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kommander_raft::NodeId;
use kommander_raft::transport::codec::{
    FrameKind, HEADER_BYTES, UNSTAMPED, header_for, write_frame,
};
use kommander_raft::transport::tcp::handshake::{
    self, ConnectionRole, HANDSHAKE_FRAME_BYTES_MAX, Identity,
};
use kommander_raft::transport::tcp::reader::{Deadlines, FrameReader};

use super::harness::{CLUSTER, Load, Node, ProcessCluster, SECRET};

fn connect(node: &Node) -> TcpStream {
    let stream = TcpStream::connect(&node.peer_address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    stream
}

/// Waits until the node's log contains `needle` (the reason it logged for an attack).
fn expect_logged(node: &Node, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !node.log_text().contains(needle) {
        assert!(
            Instant::now() < deadline,
            "node {} never logged `{needle}`; its log:\n{}",
            node.id,
            node.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until the node's log holds more than `before` occurrences of `needle` (for a reason
/// an earlier attack already logged).
fn expect_logged_again(node: &Node, needle: &str, before: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while node.log_text().matches(needle).count() <= before {
        assert!(
            Instant::now() < deadline,
            "node {} did not log `{needle}` again; its log:\n{}",
            node.id,
            node.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reads until the other side closes (or 10 s pass): the node hung up on us.
fn expect_closed(stream: &mut TcpStream) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
        assert!(
            Instant::now() < deadline,
            "the node kept the connection open"
        );
    }
}

fn identity(node: u64, cluster: &str, secret: Option<&str>) -> Identity {
    Identity {
        cluster: cluster.to_owned(),
        node: NodeId(node),
        incarnation: 0,
        secret: secret.map(|s| Bytes::copy_from_slice(s.as_bytes())),
        client_endpoint: None,
    }
}

fn deadlines() -> Deadlines {
    Deadlines {
        frame_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(5),
    }
}

/// Authenticates as peer `as_node` (the test knows the secret), for post-handshake attacks.
fn authenticated(target: &Node, as_node: u64) -> TcpStream {
    let mut stream = connect(target);
    let mut reader = FrameReader::new(HANDSHAKE_FRAME_BYTES_MAX, HANDSHAKE_FRAME_BYTES_MAX);
    handshake::connect(
        &mut stream,
        &mut reader,
        &identity(as_node, CLUSTER, Some(SECRET)),
        UNSTAMPED,
        ConnectionRole::Peer,
        Some(NodeId(target.id)),
        deadlines(),
    )
    .expect("handshake with the right secret");
    stream
}

/// A stream that records every byte written to it.
struct Recording {
    inner: TcpStream,
    written: Vec<u8>,
}

impl Read for Recording {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf)
    }
}

impl Write for Recording {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[test]
fn a_live_node_refuses_bad_input_with_a_reason_and_keeps_committing() {
    // Node 4 is configured but never started: the attacks that authenticate borrow its
    // identity, so no real peer's reconnection races them (3 of 4 voters make a quorum).
    let mut cluster = ProcessCluster::start(4, 3, "");
    // Node 4 is not running: its identity is the attacks'.
    let clients = cluster.clients().into_iter().take(3).collect();
    let load = Load::start(clients, 2);
    load.wait_progress(100);
    let target = &cluster.nodes[0];

    // Garbage before any handshake.
    let mut s = connect(target);
    s.write_all(b"GET / HTTP/1.1\r\nHost: kommander\r\n\r\n")
        .expect("write");
    expect_closed(&mut s);
    expect_logged(target, "bad magic");

    // A header announcing a 1 GiB frame: refused from the header, nothing allocated.
    let mut s = connect(target);
    let mut header = header_for(FrameKind::Hello, UNSTAMPED, &[]);
    header[8..12].copy_from_slice(&(1u32 << 30).to_le_bytes());
    s.write_all(&header).expect("write");
    expect_closed(&mut s);
    expect_logged(target, "exceeds frame_bytes_max");

    // A truncated frame: half a Hello, then the connection closes.
    let mut s = connect(target);
    let body = Bytes::from(vec![7u8; 100]);
    let header = header_for(FrameKind::Hello, UNSTAMPED, std::slice::from_ref(&body));
    s.write_all(&header).expect("write");
    s.write_all(&body[..50]).expect("write");
    s.shutdown(std::net::Shutdown::Write).expect("shutdown");
    expect_closed(&mut s);
    expect_logged(target, "closed by peer in the middle of a frame");

    // A wrong cluster name.
    let mut s = connect(target);
    let mut reader = FrameReader::new(HANDSHAKE_FRAME_BYTES_MAX, HANDSHAKE_FRAME_BYTES_MAX);
    let error = handshake::connect(
        &mut s,
        &mut reader,
        &identity(2, "another-cluster", Some(SECRET)),
        UNSTAMPED,
        ConnectionRole::Peer,
        None,
        deadlines(),
    )
    .expect_err("wrong cluster");
    assert!(error.to_string().contains("Cluster"), "{error}");
    expect_logged(target, "`another-cluster` is not this node's cluster");

    // A wrong secret: the node's proof cannot be verified with it, and our proof fails too.
    let mut s = connect(target);
    let mut hello = BytesMut::new();
    hello.put_u8(1); // role: peer
    hello.put_u8(1); // authenticated
    hello.put_u64_le(2);
    hello.put_u64_le(0); // incarnation: none
    hello.put_slice(&[9u8; 32]);
    hello.put_u8(CLUSTER.len() as u8);
    hello.put_slice(CLUSTER.as_bytes());
    write_frame(&mut s, FrameKind::Hello, UNSTAMPED, &[hello.freeze()]).expect("hello");
    let mut reader = FrameReader::new(HANDSHAKE_FRAME_BYTES_MAX, HANDSHAKE_FRAME_BYTES_MAX);
    let challenge = reader
        .read_frame(&mut s, deadlines(), &|| false)
        .expect("challenge");
    assert_eq!(challenge.kind, FrameKind::Challenge);
    write_frame(
        &mut s,
        FrameKind::Auth,
        UNSTAMPED,
        &[Bytes::from(vec![0x5a; 32])],
    )
    .expect("auth");
    let answer = reader
        .read_frame(&mut s, deadlines(), &|| false)
        .expect("answer");
    assert_eq!(answer.kind, FrameKind::Reject);
    expect_logged(target, "n2 failed authentication");

    // A replayed handshake: record a genuine one (as node 4), replay its bytes on a new
    // connection; the node's fresh nonce makes the recorded proof worthless.
    let mut recording = Recording {
        inner: connect(target),
        written: Vec::new(),
    };
    let mut reader = FrameReader::new(HANDSHAKE_FRAME_BYTES_MAX, HANDSHAKE_FRAME_BYTES_MAX);
    handshake::connect(
        &mut recording,
        &mut reader,
        &identity(4, CLUSTER, Some(SECRET)),
        UNSTAMPED,
        ConnectionRole::Peer,
        Some(NodeId(target.id)),
        deadlines(),
    )
    .expect("genuine handshake");
    drop(recording.inner);
    let replay_refused = "n4 failed authentication (wrong secret or a replayed handshake)";
    let failures_before = target.log_text().matches(replay_refused).count();
    let mut s = connect(target);
    s.write_all(&recording.written).expect("replay");
    expect_closed(&mut s);
    expect_logged_again(target, replay_refused, failures_before);

    // After a genuine handshake: a frame with a bad checksum, an oversized frame, and a
    // Messages frame whose body is garbage.
    let mut s = authenticated(target, 4);
    let body = Bytes::from_static(&[1, 0, 0, 0, 1, 0, 0, 0]);
    let mut header = header_for(FrameKind::Messages, UNSTAMPED, std::slice::from_ref(&body));
    header[12] ^= 0xff;
    s.write_all(&header).expect("write");
    s.write_all(&body).expect("write");
    expect_closed(&mut s);
    expect_logged(target, "checksum mismatch");

    let mut s = authenticated(target, 4);
    let mut header = header_for(FrameKind::Messages, UNSTAMPED, &[]);
    header[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    s.write_all(&header).expect("write");
    expect_closed(&mut s);
    expect_logged(target, "exceeds frame_bytes_max 16777216");

    let mut s = authenticated(target, 4);
    let garbage = Bytes::from_static(&[2, 0, 0, 0, 1, 0, 0, 0, 9, 9, 9, 9, 9, 9, 9, 9, 99]);
    write_frame(&mut s, FrameKind::Messages, UNSTAMPED, &[garbage]).expect("write");
    expect_closed(&mut s);
    expect_logged(target, "malformed Messages frame");
    load.wait_progress(100);

    // A slow sender: one byte of a Hello per 300 ms never completes a frame in time.
    let mut s = connect(target);
    let started = Instant::now();
    let hello = header_for(FrameKind::Hello, UNSTAMPED, &[Bytes::from(vec![0u8; 64])]);
    for byte in hello.iter().take(HEADER_BYTES) {
        if s.write_all(&[*byte]).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
        if started.elapsed() > Duration::from_secs(4) {
            break;
        }
    }
    expect_closed(&mut s);
    expect_logged(target, "frame incomplete after");

    // Hundreds of idle connections: beyond the pending-handshake cap they are refused at
    // once, the rest time out; established peers are unaffected.
    let idle: Vec<TcpStream> = (0..300)
        .filter_map(|_| TcpStream::connect(&target.peer_address).ok())
        .collect();
    expect_logged(
        target,
        "refusing connection: connections_max or handshakes_pending_max reached",
    );
    load.wait_progress(100);
    expect_logged(target, "no frame within");
    drop(idle);

    // Through all of it the cluster kept committing, and the node is alive.
    load.wait_progress(200);
    let acked = load.stop();
    assert!(!acked.is_empty());
    assert!(
        cluster.nodes[0].running(),
        "the attacked node died:\n{}",
        cluster.nodes[0].log_text()
    );
    let log = cluster.nodes[0].log_text();
    assert!(!log.contains("panicked"), "a thread panicked:\n{log}");
    for node in cluster.nodes.iter_mut().take(3) {
        let status = node.terminate();
        assert!(status.success(), "node {} exited with {status}", node.id);
    }
}
