//! The TCP transport's send path: the sending thread writes a batch on the connection itself
//! when it is free, else hands it to the peer's writer thread. Frames from several threads
//! arrive whole and in each sender's order; a peer that stops reading never blocks a sender,
//! and what the writer thread still holds arrives once it reads again.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kommander_raft::transport::codec::{
    Entry, EntryKind, LogIndex, Message, MessageBody, NodeId, PartitionId, Term, Ticket,
    decode_messages,
};
use kommander_raft::transport::tcp::{TcpCluster, TcpConfig, TcpTransport};
use kommander_raft::transport::{Inbound, Transport};

use super::peers::{CLUSTER, accept_as};
use crate::cluster::harness::PATIENCE;

/// An `AppendRequest` of `sender`'s (its partition) numbered `seq` (its previous index),
/// carrying `payload_bytes` of payload.
fn numbered(sender: u32, seq: u64, payload_bytes: usize) -> Message {
    Message {
        partition: PartitionId(sender),
        from: NodeId(1),
        to: NodeId(2),
        term: Term(1),
        body: MessageBody::AppendRequest {
            prev_log_index: LogIndex(seq),
            prev_log_term: Term(1),
            entries: vec![Entry {
                index: LogIndex(seq + 1),
                term: Term(1),
                kind: EntryKind::Normal,
                ticket: Ticket(seq),
                auto_commit: true,
                payload: Bytes::from(vec![(seq % 251) as u8; payload_bytes]),
            }],
            commit: LogIndex(0),
        },
    }
}

/// `(sender, seq)` of a message [`numbered`] made; checks its payload came whole.
fn number_of(message: &Message) -> (u32, u64) {
    let MessageBody::AppendRequest {
        prev_log_index,
        entries,
        ..
    } = &message.body
    else {
        panic!("not a numbered message: {message:?}");
    };
    let seq = prev_log_index.get();
    for entry in entries {
        assert!(
            entry.payload.iter().all(|&b| b == (seq % 251) as u8),
            "message {seq} of sender {} arrived with another message's bytes",
            message.partition.get()
        );
    }
    (message.partition.get(), seq)
}

/// Checks that every sender's numbers arrive increasing; returns how many arrived.
fn check_order(received: &[(u32, u64)]) -> usize {
    let mut last: BTreeMap<u32, u64> = BTreeMap::new();
    for &(sender, seq) in received {
        if let Some(&before) = last.get(&sender) {
            assert!(
                seq > before,
                "sender {sender}: message {seq} arrived after message {before}"
            );
        }
        last.insert(sender, seq);
    }
    received.len()
}

fn cluster(node: u64, peers: BTreeMap<NodeId, String>) -> TcpCluster {
    TcpCluster {
        cluster_name: CLUSTER.to_owned(),
        node_id: NodeId(node),
        peers,
        heartbeat_interval: Duration::from_millis(50),
    }
}

/// Senders write directly whenever the connection is free (no quiet time asked).
fn config() -> TcpConfig {
    TcpConfig {
        listen_address: "127.0.0.1:0".to_owned(),
        direct_write_quiet_us: 0,
        ..TcpConfig::default()
    }
}

/// Records what a node receives, in arrival order.
#[derive(Default)]
struct Arrivals {
    numbers: Mutex<Vec<(u32, u64)>>,
}

impl Inbound for Arrivals {
    fn deliver(&self, messages: Vec<Message>) {
        let mut numbers = self.numbers.lock().unwrap_or_else(PoisonError::into_inner);
        numbers.extend(messages.iter().map(number_of));
    }
}

/// Receives nothing.
struct Nowhere;

impl Inbound for Nowhere {
    fn deliver(&self, _: Vec<Message>) {}
}

fn wait_until(what: &str, done: &dyn Fn() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn frames_of_several_threads_arrive_whole_and_in_each_senders_order() {
    const SENDERS: u32 = 4;
    const BATCHES: u64 = 300;
    let listeners: Vec<TcpListener> = (0..2)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind"))
        .collect();
    let address = |i: usize| listeners[i].local_addr().expect("address").to_string();
    let (to_sender, to_receiver) = (address(0), address(1));
    let mut listeners = listeners.into_iter();
    let mut start = |node: u64, peer: u64, address: String| {
        let peers = BTreeMap::from([(NodeId(peer), address)]);
        let listener = listeners.next().expect("a listener");
        TcpTransport::with_listener(&config(), &cluster(node, peers), listener).expect("transport")
    };
    let sender = start(1, 2, to_receiver);
    let receiver = start(2, 1, to_sender);
    let arrivals = Arc::new(Arrivals::default());
    receiver.serve(arrivals.clone()).expect("serve");
    sender.serve(Arc::new(Nowhere)).expect("serve");
    wait_until("the sender did not connect", &|| {
        sender.stats().connects > 0
    });
    let sent = AtomicU64::new(0);
    std::thread::scope(|scope| {
        for thread in 0..SENDERS {
            let (sender, sent) = (&sender, &sent);
            scope.spawn(move || {
                for batch in 0..BATCHES {
                    // Batches of one to three messages, small and large: large ones fill the
                    // socket's buffer, so that direct writes leave rests to the writer thread.
                    let size = [64, 48 * 1024, 700][(batch % 3) as usize];
                    let messages: Vec<Message> = (0..=batch % 3)
                        .map(|i| numbered(thread, batch * 3 + i, size))
                        .collect();
                    sent.fetch_add(messages.len() as u64, Ordering::Relaxed);
                    sender.send(NodeId(2), messages);
                }
            });
        }
    });
    let sent = sent.load(Ordering::Relaxed);
    let arrived = || {
        arrivals
            .numbers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len() as u64
    };
    wait_until("messages were lost without being counted", &|| {
        arrived() + sender.stats().messages_dropped == sent
    });
    let numbers = arrivals
        .numbers
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let count = check_order(&numbers);
    let stats = sender.stats();
    assert_eq!(
        receiver.stats().connections_dropped,
        0,
        "a torn frame closes the connection"
    );
    assert_eq!(stats.connects, 1, "the connection never broke");
    assert!(
        stats.frames_sent_directly > 0,
        "the sending threads wrote nothing themselves: {stats:?}"
    );
    println!(
        "{count} of {sent} messages arrived ({} dropped), {} of {} frames written by the senders",
        stats.messages_dropped, stats.frames_sent_directly, stats.frames_sent
    );
    sender.shutdown();
    receiver.shutdown();
}

#[test]
fn a_peer_that_stops_reading_blocks_no_sender_and_loses_nothing_the_writer_holds() {
    const BATCHES: u64 = 200;
    const PAYLOAD_BYTES: usize = 64 * 1024;
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let peers = BTreeMap::from([(
        NodeId(2),
        listener.local_addr().expect("address").to_string(),
    )]);
    let config = TcpConfig {
        // Small enough to fill: what does not fit is dropped and counted.
        peer_queue_batches_max: 16,
        // The writer thread waits this long for a reader that is not reading.
        write_timeout_ms: 120_000,
        // What the test's reader accepts (`accept_as`).
        frame_bytes_max: 1 << 20,
        ..config()
    };
    let sender = TcpTransport::bind(&config, &cluster(1, peers)).expect("sender");
    sender.serve(Arc::new(Nowhere)).expect("serve");
    // The peer: a handshake, then no reading until every batch was sent.
    let mut peer = accept_as(2, &listener);
    wait_until("the sender did not connect", &|| {
        sender.stats().connects > 0
    });
    // Far more than the socket buffers and the queue hold: every send must return while the
    // peer reads nothing.
    let (done, finished) = crossbeam::channel::bounded(1);
    let sending = {
        let sender = Arc::clone(&sender);
        std::thread::spawn(move || {
            for seq in 0..BATCHES {
                sender.send(NodeId(2), vec![numbered(1, seq, PAYLOAD_BYTES)]);
            }
            let _ = done.send(());
        })
    };
    finished
        .recv_timeout(PATIENCE)
        .expect("a send blocked on a peer that reads nothing");
    sending.join().expect("the sending thread");
    let dropped = sender.stats().messages_dropped;
    assert!(
        dropped > 0,
        "the queue never filled: the test proves nothing"
    );
    // Now the peer reads: everything not dropped arrives, whole and in order.
    let mut numbers = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    while (numbers.len() as u64) + dropped < BATCHES {
        let frame = peer
            .next_frame(deadline, "the messages the writer thread holds")
            .expect("the connection stays open");
        let messages =
            decode_messages(&frame.body, NodeId(1), NodeId(2), config.frame_messages_max)
                .expect("a frame's messages");
        numbers.extend(messages.iter().map(number_of));
    }
    assert_eq!(check_order(&numbers) as u64 + dropped, BATCHES);
    let stats = sender.stats();
    assert_eq!(
        stats.messages_dropped, dropped,
        "nothing dropped after the sends"
    );
    assert!(
        stats.frames_sent_directly > 0,
        "the sending thread wrote nothing itself: {stats:?}"
    );
    assert_eq!(stats.connects, 1, "the connection never broke");
    sender.shutdown();
}
