//! Membership calls over the TCP transport (`Transport::call`, the peer port's `Call` role):
//! a call is answered with what the called node's `Inbound::call` answers (`Done` with the
//! roster, `NotLeader` with a hint, `Refused`, `Unknown`), also from a node that is nobody's
//! peer; a wrong secret is `Rejected`, nobody listening `Unreachable`, a silent callee a
//! `Timeout`; both caps answer `Busy`; a malformed request is refused and changes nothing; a
//! member's call leaves its peer connection alone; the fault injector passes calls through and
//! loses some. Real loopback sockets; some tests play the other side with the handshake and
//! frame reader. Every wait polls with a deadline.

use std::collections::VecDeque;
use std::net::TcpListener;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kommander_raft::core::Message;
use kommander_raft::transport::codec::{FrameKind, UNSTAMPED, decode_call, write_frame};
use kommander_raft::transport::faulty::{FaultInjector, FaultRates};
use kommander_raft::transport::tcp::handshake::{
    self, ConnectionHandshakeError, ConnectionRole, HANDSHAKE_FRAME_BYTES_MAX, Hello, RejectCode,
};
use kommander_raft::transport::tcp::reader::FrameReader;
use kommander_raft::transport::tcp::{TcpCluster, TcpConfig, TcpTransport};
use kommander_raft::{
    CallAnswer, CallError, CallWait, Configuration, Inbound, MembershipCall, NodeId, Roster,
    RosterChange, Status, Transport,
};
use tokio::sync::oneshot::{self, error::TryRecvError};

use super::peers::{
    self, CLUSTER, POLL, accept_as, accept_stream, connect_with_role, handshake_deadlines,
    identity, nowhere, wait_until,
};
use crate::cluster::harness::PATIENCE;

/// A 16-byte-or-longer shared secret.
const SECRET: &str = "calls-test-shared-secret";

/// A node's inbound side that answers each call with the next scripted answer, `Refused`
/// with `Errored` when none is left (and records the calls it was handed).
#[derive(Default)]
struct Scripted {
    answers: Mutex<VecDeque<CallAnswer>>,
    calls: Mutex<Vec<MembershipCall>>,
}

impl Inbound for Scripted {
    fn deliver(&self, _: Vec<Message>) {}

    fn call(&self, call: MembershipCall) -> CallWait {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(call);
        let next = self
            .answers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front();
        CallWait::answered(next.unwrap_or(CallAnswer::Refused(Status::Errored)))
    }
}

impl Scripted {
    fn script(&self, answer: CallAnswer) {
        self.answers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back(answer);
    }

    fn calls(&self) -> Vec<MembershipCall> {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

struct Node {
    transport: Arc<TcpTransport>,
    inbound: Arc<Scripted>,
    address: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        self.transport.shutdown();
    }
}

fn config() -> TcpConfig {
    peers::config()
}

/// Node `node` with no peers, serving its calls with a [`Scripted`] inbound.
fn start(config: &TcpConfig, node: u64) -> Node {
    let cluster = TcpCluster {
        cluster_name: CLUSTER.to_owned(),
        node_id: NodeId(node),
        peers: Default::default(),
        heartbeat_interval: Duration::from_millis(50),
    };
    let transport = TcpTransport::bind(config, &cluster).expect("transport");
    let inbound = Arc::new(Scripted::default());
    transport.serve(inbound.clone()).expect("serve");
    let address = transport.local_addr().to_string();
    Node {
        transport,
        inbound,
        address,
    }
}

fn add(node: u64) -> MembershipCall {
    MembershipCall {
        from: NodeId(node),
        change: RosterChange::Add {
            node: NodeId(node),
            endpoint: format!("10.0.0.{node}:7100"),
            incarnation: 11,
        },
        expected_version: Some(1),
    }
}

/// A roster of voter 1 and learner 7.
fn roster() -> Roster {
    let genesis = Roster::of(&Configuration::new(vec![NodeId(1)], Vec::new()).expect("valid"))
        .expect("genesis");
    genesis
        .change(&add(7).change, None)
        .expect("accepted")
        .expect("a change")
}

type Reply = oneshot::Receiver<Result<CallAnswer, CallError>>;

/// Starts `call` from `transport` to `endpoint`; the call returns at once.
fn send(transport: &dyn Transport, endpoint: &str, call: MembershipCall) -> Reply {
    let (reply, answer) = oneshot::channel();
    transport.call(endpoint, call, reply);
    answer
}

/// Waits for the reply of a call (every call is answered: a dropped reply fails the test).
fn outcome(mut reply: Reply) -> Result<CallAnswer, CallError> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match reply.try_recv() {
            Ok(outcome) => return outcome,
            Err(TryRecvError::Empty) => {
                assert!(Instant::now() < deadline, "the call was not answered");
                std::thread::sleep(POLL);
            }
            Err(TryRecvError::Closed) => panic!("the reply was dropped unanswered"),
        }
    }
}

fn call(
    transport: &dyn Transport,
    endpoint: &str,
    call: MembershipCall,
) -> Result<CallAnswer, CallError> {
    outcome(send(transport, endpoint, call))
}

#[test]
fn a_call_from_a_node_that_is_no_peer_gets_the_callees_answer() {
    let callee = start(&config(), 1);
    let caller = start(&config(), 7);
    let answers = [
        CallAnswer::Done(Arc::new(roster())),
        CallAnswer::NotLeader {
            leader: Some((NodeId(2), "10.0.0.2:7100".to_owned())),
        },
        CallAnswer::NotLeader { leader: None },
        CallAnswer::Refused(Status::StaleMembership),
        CallAnswer::Unknown,
    ];
    for answer in &answers {
        callee.inbound.script(answer.clone());
        let got = call(caller.transport.as_ref(), &callee.address, add(7));
        assert_eq!(got.as_ref().ok(), Some(answer), "{got:?}");
    }
    // The callee was handed each call as sent, from the authenticated caller.
    assert_eq!(callee.inbound.calls(), vec![add(7); answers.len()]);
    assert!(callee.transport.peers().is_empty() && caller.transport.peers().is_empty());
    assert_eq!(callee.transport.stats().handshakes_failed, 0);
}

#[test]
fn a_wrong_secret_or_none_is_rejected_and_reaches_nothing() {
    let callee = start(
        &TcpConfig {
            auth_secret: Some(SECRET.to_owned()),
            ..config()
        },
        1,
    );
    let wrong = start(
        &TcpConfig {
            auth_secret: Some(format!("another-{SECRET}")),
            ..config()
        },
        7,
    );
    let error = call(wrong.transport.as_ref(), &callee.address, add(7)).expect_err("refused");
    assert!(
        matches!(&error, CallError::Rejected { reason, .. } if reason.contains("authentication failed")),
        "{error}"
    );
    let none = start(&config(), 8);
    let error = call(none.transport.as_ref(), &callee.address, add(8)).expect_err("refused");
    assert!(
        matches!(&error, CallError::Rejected { reason, .. } if reason.contains("requires transport.auth_secret")),
        "{error}"
    );
    assert!(callee.inbound.calls().is_empty());
    assert_eq!(callee.transport.stats().handshakes_failed, 2);
}

#[test]
fn nobody_listening_is_unreachable() {
    let caller = start(&config(), 7);
    let error = call(caller.transport.as_ref(), &nowhere(), add(7)).expect_err("nobody");
    assert!(
        matches!(&error, CallError::Unreachable { reason, .. } if reason.starts_with("connecting")),
        "{error}"
    );
}

#[test]
fn a_callee_that_never_answers_is_a_timeout() {
    let caller = start(
        &TcpConfig {
            call_timeout_ms: 300,
            call_answer_timeout_ms: 200,
            ..config()
        },
        7,
    );
    // The test plays the callee: it takes the call and says nothing.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("addr").to_string();
    let reply = send(caller.transport.as_ref(), &address, add(7));
    let mut callee = accept_as(1, &listener);
    let deadline = Instant::now() + PATIENCE;
    let request = callee
        .next_frame(deadline, "the request")
        .expect("a request");
    assert_eq!(request.kind, FrameKind::CallRequest);
    assert_eq!(decode_call(&request.body, NodeId(7)), Ok(add(7)));
    let error = outcome(reply).expect_err("no answer");
    assert!(
        matches!(error, CallError::Timeout { waited, .. } if waited == Duration::from_millis(300)),
        "{error}"
    );
    callee.wait_closed("the caller closes the call's connection");
}

#[test]
fn the_callers_cap_answers_busy_at_once_and_a_finished_call_frees_its_slot() {
    let caller = start(
        &TcpConfig {
            calls_outgoing_max: 1,
            ..config()
        },
        7,
    );
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("addr").to_string();
    let held = send(caller.transport.as_ref(), &address, add(7));
    let mut callee = accept_as(1, &listener);
    let mut over = send(caller.transport.as_ref(), &address, add(7));
    // Answered before `call` returned: the caller never waits.
    assert!(
        matches!(over.try_recv(), Ok(Err(CallError::Busy { max: 1 }))),
        "the second call is refused at once"
    );
    // Read before closing: a socket closed with unread bytes resets the connection.
    let request = callee.next_frame(Instant::now() + PATIENCE, "the request");
    assert!(request.is_some_and(|frame| frame.kind == FrameKind::CallRequest));
    drop(callee);
    let error = outcome(held).expect_err("closed before the answer");
    assert!(
        matches!(&error, CallError::Unreachable { reason, .. } if reason.contains("closed before the answer")),
        "{error}"
    );
    let open = start(&config(), 1);
    open.inbound.script(CallAnswer::Unknown);
    assert_eq!(
        call(caller.transport.as_ref(), &open.address, add(7)).ok(),
        Some(CallAnswer::Unknown),
        "the slot was given back"
    );
}

#[test]
fn the_callees_cap_answers_busy_and_a_closed_call_frees_its_slot() {
    let callee = start(
        &TcpConfig {
            calls_max: 1,
            ..config()
        },
        1,
    );
    let caller = start(&config(), 7);
    // A call connection that sends no request holds the only slot.
    let holder = connect_with_role(9, &callee.address, ConnectionRole::Call).expect("admitted");
    let error = call(caller.transport.as_ref(), &callee.address, add(7)).expect_err("busy");
    assert!(
        matches!(&error, CallError::Rejected { reason, .. }
            if reason.contains("no room for another membership call")
                && reason.contains("transport.calls_max")),
        "{error}"
    );
    drop(holder);
    callee.inbound.script(CallAnswer::Unknown);
    wait_until("a call answered once the slot is free", || {
        match call(caller.transport.as_ref(), &callee.address, add(7)) {
            Ok(answer) => {
                assert_eq!(answer, CallAnswer::Unknown);
                true
            }
            Err(CallError::Rejected { .. }) => false,
            Err(error) => panic!("{error}"),
        }
    });
    assert_eq!(callee.inbound.calls(), vec![add(7)]);
}

#[test]
fn a_malformed_request_is_refused_changes_nothing_and_the_callee_serves_on() {
    let callee = start(&config(), 1);
    let bodies: [(FrameKind, &[u8]); 3] = [
        (FrameKind::CallRequest, &[0, 99]),
        (FrameKind::CallRequest, &[1, 0, 0]),
        (FrameKind::Messages, &[0, 0, 0, 0]),
    ];
    for (round, (kind, body)) in bodies.into_iter().enumerate() {
        let mut caller =
            connect_with_role(9, &callee.address, ConnectionRole::Call).expect("admitted");
        write_frame(
            &mut caller.stream,
            kind,
            UNSTAMPED,
            &[Bytes::from_static(body)],
        )
        .expect("write");
        let deadline = Instant::now() + PATIENCE;
        let refusal = caller
            .next_frame(deadline, "the refusal")
            .expect("a Reject");
        assert_eq!(refusal.kind, FrameKind::Reject, "{kind:?} {body:?}");
        assert_eq!(refusal.body.first(), Some(&7), "code Malformed");
        caller.wait_closed("the callee closes the connection");
        assert_eq!(
            callee.transport.stats().connections_dropped,
            round as u64 + 1
        );
    }
    assert!(callee.inbound.calls().is_empty(), "nothing was handed on");

    let caller = start(&config(), 7);
    callee
        .inbound
        .script(CallAnswer::Refused(Status::InsufficientVoters));
    assert_eq!(
        call(caller.transport.as_ref(), &callee.address, add(7)).ok(),
        Some(CallAnswer::Refused(Status::InsufficientVoters))
    );
}

#[test]
fn a_node_never_calls_itself() {
    // Its own endpoint: the callee refuses a caller with its own id.
    let node = start(&config(), 7);
    let error = call(node.transport.as_ref(), &node.address, add(7)).expect_err("itself");
    assert!(
        matches!(&error, CallError::Rejected { reason, .. } if reason.contains("its own id")),
        "{error}"
    );
    // Another endpoint answering with the caller's id: the caller refuses it.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("addr").to_string();
    let reply = send(node.transport.as_ref(), &address, add(7));
    let mut stream = accept_stream(&listener);
    let mut reader = FrameReader::new(HANDSHAKE_FRAME_BYTES_MAX, HANDSHAKE_FRAME_BYTES_MAX);
    let refused = handshake::accept(
        &mut stream,
        &mut reader,
        &identity(7),
        UNSTAMPED,
        &|_: &Hello| Ok(()),
        handshake_deadlines(),
    )
    .expect_err("the caller refuses");
    assert!(
        matches!(&refused, ConnectionHandshakeError::Rejected { code: RejectCode::UnknownNode, reason }
            if reason.contains("this node reached itself")),
        "{refused}"
    );
    let error = outcome(reply).expect_err("itself");
    assert!(
        matches!(&error, CallError::Rejected { reason, .. } if reason.contains("reached itself")),
        "{error}"
    );
    assert!(node.inbound.calls().is_empty());
}

#[test]
fn a_members_call_leaves_its_peer_connection_alone() {
    let a = peers::start(1, &[]);
    let b = peers::start(2, &[(1, &a.address)]);
    a.transport
        .set_peers(&[(NodeId(2), b.address.clone())].into())
        .expect("peer added");
    peers::deliver(&b, 2, &a, 1, 1);
    // The default `Inbound::call` refuses every call.
    assert_eq!(
        call(b.transport.as_ref(), &a.address, add(2)).ok(),
        Some(CallAnswer::Refused(Status::Errored))
    );
    peers::deliver(&b, 2, &a, 1, 2);
    assert_eq!(b.transport.stats().connects, 1, "the peer link reconnected");
    a.transport.shutdown();
    b.transport.shutdown();
}

#[test]
fn the_fault_injector_passes_calls_through_and_loses_some() {
    let callee = start(&config(), 1);
    let caller = start(&config(), 7);
    let injector = FaultInjector::new(7, 16).expect("injector");
    let faulty = injector.wrap(NodeId(7), caller.transport.clone());
    callee.inbound.script(CallAnswer::Unknown);
    assert_eq!(
        call(faulty.as_ref(), &callee.address, add(7)).ok(),
        Some(CallAnswer::Unknown)
    );
    injector.set_rates(FaultRates {
        drop_per_million: 1_000_000,
        ..FaultRates::default()
    });
    let error = call(faulty.as_ref(), &callee.address, add(7)).expect_err("lost");
    assert!(
        matches!(&error, CallError::Unreachable { reason, .. } if reason.contains("fault injector")),
        "{error}"
    );
    assert_eq!(injector.counts().calls_dropped, 1);
    assert_eq!(callee.inbound.calls().len(), 1, "the lost call never left");
}
