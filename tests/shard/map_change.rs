//! A map change answers `Changed` only when its entry is the map partition 0 applied (decision
//! 0006 point 3): a map of the same version committed before it (here a raw `_RaftSystem`
//! entry, proposed while partition 0's leader sent nothing, so that the change is planned from
//! the map before it) makes the change `Superseded`, never `Changed`; retried, it applies.

use kommander_raft::core::{PartitionId, Ticket};
use kommander_raft::shard::partitions::{
    CreatePartition, MapChangeAnswer, MapOperation, PartitionMap, RangeState, SYSTEM_LOG_TYPE,
};
use kommander_raft::shard::{ProposedEntry, Refusal, Request};
use kommander_raft::transport::memory::MemoryNetwork;
use tokio::sync::oneshot;

use super::map_open::{Node, commit_map, leader, start};
use crate::runtime::harness::wait;

const P0: PartitionId = PartitionId(0);
const P2: PartitionId = PartitionId(2);
const P3: PartitionId = PartitionId(3);

/// Sends a request built around a fresh answer channel to partition 0 of `node`; returns the
/// channel.
fn ask<T>(
    node: &Node,
    make: impl FnOnce(oneshot::Sender<Result<T, Refusal>>) -> Request,
) -> oneshot::Receiver<Result<T, Refusal>> {
    let (reply, answer) = oneshot::channel();
    node.host.send(P0, make(reply)).expect("queued");
    answer
}

#[test]
fn a_change_overtaken_by_a_map_of_its_version_is_superseded_not_changed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let network = MemoryNetwork::new();
    let nodes = start(dir.path(), &network);
    let first = PartitionMap::initial(2).expect("a map");
    commit_map(&nodes, &first);
    let node = &nodes[leader(&nodes, P0)];

    // Version 2 removing partition 2, written raw; then a change planned from version 1.
    let mut raw = first.clone();
    raw.version = 2;
    raw.partitions[1].state = RangeState::Removed;
    raw.partitions[1].generation += 1;
    wait(ask(node, |reply| Request::SuspendHeartbeats { reply })).expect("suspended");
    let written = ask(node, |reply| Request::Propose {
        entries: smallvec::smallvec![ProposedEntry::new(SYSTEM_LOG_TYPE, &raw.encode())],
        auto_commit: true,
        ticket: Ticket(7),
        reply,
    });
    let create = MapOperation::Create {
        partition: P3,
        spec: CreatePartition::unrouted(),
    };
    let changed = ask(node, |reply| Request::ChangeMap {
        operation: create.clone(),
        ticket: Ticket(8),
        reply,
    });
    wait(ask(node, |reply| Request::ResumeHeartbeats { reply })).expect("resumed");

    wait(written).expect("the raw map committed");
    assert_eq!(wait(changed), Ok(MapChangeAnswer::Superseded));
    assert_eq!(*node.maps.map(), raw, "the raw map is the one applied");
    assert!(
        node.maps
            .map()
            .get(P2)
            .is_some_and(|r| r.state == RangeState::Removed)
    );

    // Retried, it is planned from version 2 (asked again while the leader has not applied
    // the raw map yet: `InFlight` is retryable, as a caller retries it).
    let retried = (9..200)
        .map(|ticket| {
            wait(ask(node, |reply| Request::ChangeMap {
                operation: create.clone(),
                ticket: Ticket(ticket),
                reply,
            }))
        })
        .inspect(|answer| {
            if *answer == Ok(MapChangeAnswer::InFlight) {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        })
        .find(|answer| *answer != Ok(MapChangeAnswer::InFlight));
    assert_eq!(
        retried,
        Some(Ok(MapChangeAnswer::Changed {
            version: 3,
            generation: 1
        }))
    );
    assert!(node.maps.map().get(P3).is_some());
}
