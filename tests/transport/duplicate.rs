//! The duplicate-node rule of the TCP transport (decision 0005, "Duplicate node ids"): node 1
//! accepts node 2's connections; a second live transport claiming node 2 is refused
//! `DuplicateNode` and stops (its inbound side is told), unless the roster names its
//! incarnation, and then the first one is the one refused; the same incarnation reconnecting
//! (a restart on the same data directory) and a new incarnation whose predecessor is gone (a
//! replaced disk) are admitted. Real loopback sockets, inbound sides that play the node.

use std::sync::{Arc, Mutex, PoisonError};

use kommander_raft::core::Message;
use kommander_raft::transport::tcp::{TcpCluster, TcpTransport};
use kommander_raft::{
    Configuration, Inbound, MembershipCall, NodeId, Roster, RosterChange, Transport,
};

use super::peers::{CLUSTER, config, wait_until};

/// A node's inbound side with an incarnation and a roster, recording what it received and
/// whether it was told it holds a duplicate id.
struct Process {
    incarnation: u64,
    roster: Option<Arc<Roster>>,
    received: Mutex<usize>,
    duplicate: Mutex<Option<String>>,
}

impl Process {
    fn new(incarnation: u64, roster: Option<Arc<Roster>>) -> Arc<Self> {
        Arc::new(Self {
            incarnation,
            roster,
            received: Mutex::new(0),
            duplicate: Mutex::new(None),
        })
    }

    fn received(&self) -> usize {
        *self.received.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn duplicate(&self) -> Option<String> {
        self.duplicate
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Inbound for Process {
    fn deliver(&self, messages: Vec<Message>) {
        *self.received.lock().unwrap_or_else(PoisonError::into_inner) += messages.len();
    }

    fn incarnation(&self) -> u64 {
        self.incarnation
    }

    fn roster(&self) -> Option<Arc<Roster>> {
        self.roster.clone()
    }

    fn duplicate_node(&self, reason: String) {
        *self
            .duplicate
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(reason);
    }
}

struct Running {
    transport: Arc<TcpTransport>,
    process: Arc<Process>,
}

/// A transport for `node` whose peers are `peers`, serving `process`.
fn run(node: u64, peers: &[(u64, &str)], process: Arc<Process>) -> Running {
    let cluster = TcpCluster {
        cluster_name: CLUSTER.to_owned(),
        node_id: NodeId(node),
        peers: peers
            .iter()
            .map(|&(id, address)| (NodeId(id), address.to_owned()))
            .collect(),
        heartbeat_interval: std::time::Duration::from_millis(50),
    };
    let transport = TcpTransport::bind(&config(), &cluster).expect("transport");
    transport.serve(process.clone()).expect("serve");
    Running { transport, process }
}

/// Sends from node 2's `sender` to node 1 until node 1 received more than before.
fn reaches(sender: &Running, node_1: &Running) {
    let before = node_1.process.received();
    wait_until("node 2's message at node 1", || {
        sender
            .transport
            .send(NodeId(1), super::peers::message(2, 1, 7));
        node_1.process.received() > before
    });
}

/// Node 1 accepting node 2 (at `address_2`, nobody listens there: only node 2's writer
/// connects), with `roster`.
fn node_1(roster: Option<Arc<Roster>>) -> Running {
    run(
        1,
        &[(2, &super::peers::nowhere())],
        Process::new(11, roster),
    )
}

#[test]
fn a_second_live_process_with_the_same_id_is_refused_and_told_the_first_keeps_its_connection() {
    let node_1 = node_1(None);
    let address_1 = node_1.transport.local_addr().to_string();
    let first = run(2, &[(1, &address_1)], Process::new(0xa, None));
    reaches(&first, &node_1);
    let second = run(2, &[(1, &address_1)], Process::new(0xb, None));
    wait_until("the second process told it is a duplicate", || {
        second.process.duplicate().is_some()
    });
    let reason = second.process.duplicate().expect("told");
    assert!(
        reason.contains("another live process") && reason.contains("0xa"),
        "{reason}"
    );
    // The second transport stopped: nothing it sends arrives; the first still reaches node 1.
    assert!(second.transport.stats().connects == 0);
    reaches(&first, &node_1);
    assert_eq!(first.process.duplicate(), None);
    for running in [first, second, node_1] {
        running.transport.shutdown();
    }
}

#[test]
fn the_same_incarnation_reconnecting_while_its_old_connection_lives_is_admitted() {
    // A restart on the same data directory faster than node 1 notices the old connection
    // closed: the new connection replaces the old one.
    let node_1 = node_1(None);
    let address_1 = node_1.transport.local_addr().to_string();
    let before = run(2, &[(1, &address_1)], Process::new(0xa, None));
    reaches(&before, &node_1);
    let after = run(2, &[(1, &address_1)], Process::new(0xa, None));
    reaches(&after, &node_1);
    assert_eq!(after.process.duplicate(), None);
    assert_eq!(before.process.duplicate(), None);
    for running in [before, after, node_1] {
        running.transport.shutdown();
    }
}

#[test]
fn a_new_incarnation_whose_predecessor_stopped_is_admitted() {
    // A replaced data directory: the old process is gone, its connections closed with it.
    let node_1 = node_1(None);
    let address_1 = node_1.transport.local_addr().to_string();
    let old = run(2, &[(1, &address_1)], Process::new(0xa, None));
    reaches(&old, &node_1);
    old.transport.shutdown();
    let replaced = run(2, &[(1, &address_1)], Process::new(0xb, None));
    reaches(&replaced, &node_1);
    assert_eq!(replaced.process.duplicate(), None);
    for running in [replaced, node_1] {
        running.transport.shutdown();
    }
}

#[test]
fn the_roster_decides_which_of_two_live_processes_keeps_the_id() {
    // The roster names incarnation 0xb for node 2 (0xa is a process started on a copy of the
    // configuration, or an old incarnation that came back): 0xb connecting second takes the
    // id, and 0xa, reconnecting, is refused and told.
    let genesis = Roster::of(&Configuration::new(vec![NodeId(1)], Vec::new()).expect("valid"))
        .expect("genesis");
    let add = RosterChange::Add {
        node: NodeId(2),
        endpoint: "127.0.0.1:1".to_owned(),
        incarnation: 0xb,
    };
    let roster = genesis.change(&add, None).expect("added").expect("changed");
    let node_1 = node_1(Some(Arc::new(roster)));
    let address_1 = node_1.transport.local_addr().to_string();
    let impostor = run(2, &[(1, &address_1)], Process::new(0xa, None));
    reaches(&impostor, &node_1);
    let member = run(2, &[(1, &address_1)], Process::new(0xb, None));
    reaches(&member, &node_1);
    // The impostor finds its connection closed when it next writes, reconnects, and is
    // refused.
    wait_until("the impostor told it is a duplicate", || {
        impostor
            .transport
            .send(NodeId(1), super::peers::message(2, 1, 8));
        impostor.process.duplicate().is_some()
    });
    assert_eq!(member.process.duplicate(), None);
    reaches(&member, &node_1);
    for running in [impostor, member, node_1] {
        running.transport.shutdown();
    }
}

#[test]
fn a_process_claiming_the_acceptors_own_id_is_refused_and_told() {
    let node_1 = node_1(None);
    let address_1 = node_1.transport.local_addr().to_string();
    // Another process with node 1's id calls node 1 (as a joiner calls its seed).
    let copy = run(1, &[], Process::new(0xc, None));
    let call = MembershipCall {
        from: NodeId(1),
        change: RosterChange::Promote { node: NodeId(1) },
        expected_version: None,
    };
    let (reply, mut answer) = tokio::sync::oneshot::channel();
    copy.transport.call(&address_1, call, reply);
    wait_until("the call's answer", || answer.try_recv().is_ok());
    wait_until("the copy told it is a duplicate", || {
        copy.process.duplicate().is_some()
    });
    let reason = copy.process.duplicate().expect("told");
    assert!(reason.contains("this live process"), "{reason}");
    assert_eq!(node_1.process.duplicate(), None);
    for running in [copy, node_1] {
        running.transport.shutdown();
    }
}
