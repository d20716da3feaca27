//! A panic on a shard thread fails that shard, loudly and only that shard.

use std::sync::mpsc;

use kommander_raft::core::{PartitionId, Status};
use kommander_raft::shard::{PartitionStatus, RaftEvent, Refusal, Request};

use super::harness::{Cluster, PATIENCE, wait};

const PANIC_MESSAGE: &str = "the state machine cannot apply entry";

fn failed_with_the_panic(refusal: &Refusal) -> bool {
    matches!(
        refusal,
        Refusal::ShardFailed { shard: 1, reason } if reason.contains(PANIC_MESSAGE)
    )
}

#[test]
fn a_panicking_state_machine_fails_its_shard_and_only_it() {
    // One node (so a write's outcome is known only once it is durable and applied here, and
    // the panic comes first), 2 shards: partitions 1 and 3 on shard 1, 0 and 2 on shard 0.
    let mut cluster = Cluster::start(1, 4, false);
    cluster.wait_leaders();
    let (failed, healthy) = (
        [PartitionId(1), PartitionId(3)],
        [PartitionId(0), PartitionId(2)],
    );
    for p in failed.into_iter().chain(healthy) {
        cluster.replicate(p, b"before");
    }
    let node = 0;
    let (_, sent) = cluster.propose_to(node, failed[0], &[b"panic, please"], true);
    // The waiter of the write learns why: the panic message.
    let refusal = wait(sent.expect("queued")).expect_err("the write fails");
    assert!(failed_with_the_panic(&refusal), "{refusal:?}");
    let events = &cluster.nodes[node].events;
    assert_eq!(
        events.count(|e| matches!(
            e,
            RaftEvent::ShardFailed { shard: 1, reason } if reason.contains(PANIC_MESSAGE)
        )),
        1
    );
    // From then on the partitions of shard 1 refuse every request with the same reason.
    for p in failed {
        let refused = cluster.status(node, p).expect_err("refused");
        assert!(failed_with_the_panic(&refused), "{refused:?}");
    }
    let (_, sent) = cluster.propose_to(node, failed[1], &[b"x"], true);
    let refused = wait(sent.expect("queued")).expect_err("refused");
    assert!(failed_with_the_panic(&refused), "{refused:?}");
    // The partitions of the other shard keep working.
    for p in healthy {
        assert_eq!(cluster.replicate(p, b"after").status, Status::Success);
    }
    // And the node shuts down cleanly: every shard thread exits.
    let host = cluster.runtime(node).clone();
    let (stopped_tx, stopped_rx) = mpsc::channel();
    std::thread::spawn(move || {
        cluster.shutdown();
        let _ = stopped_tx.send(());
    });
    stopped_rx
        .recv_timeout(PATIENCE)
        .expect("the node shuts down");
    let (reply, _answer) = tokio::sync::oneshot::channel::<Result<PartitionStatus, Refusal>>();
    assert_eq!(
        host.send(healthy[0], Request::Status { reply }),
        Err(Refusal::ShutDown)
    );
}
