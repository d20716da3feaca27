//! A follower that receives as many snapshot transfers as it takes at once
//! (`snapshot.sessions_max`) answers a further first chunk `Busy`; its leader waits, sending
//! nothing of that transfer and counting no failure, until the follower tells it `Free` as a
//! session ends, and then starts again at once (not after a back-off: joining seed 8707's
//! catch-up idled the follower's one session between transfers that backed off as if they
//! had failed).

use kommander_raft::core::{MessageBody, NodeId, PartitionId, SnapshotOutcome, Ticket};
use kommander_raft::shard::Request;
use tokio::sync::oneshot;

use super::stepped::SteppedCluster;

const PARTITIONS: [PartitionId; 2] = [PartitionId(0), PartitionId(1)];

/// Proposes `count` entries to each partition's leader, then a checkpoint, and runs until
/// every one is answered.
fn write_and_checkpoint(cluster: &mut SteppedCluster, tag: &str, count: usize) {
    for partition in PARTITIONS {
        let leader = cluster.leader(partition).expect("a leader");
        for k in 0..count {
            let answer = cluster.propose(leader, partition, format!("{tag}-{k}").as_bytes());
            cluster.answer(answer).expect("written");
        }
        let (reply, answer) = oneshot::channel();
        let ticket = Ticket(1_000_000 + u64::from(partition.0) * 1_000 + count as u64);
        cluster.nodes[leader]
            .host
            .send(partition, Request::Checkpoint { ticket, reply })
            .expect("checkpoint queued");
        cluster.answer(answer).expect("checkpointed");
    }
}

/// Whether node `i` holds what each partition's leader holds.
fn caught_up(cluster: &SteppedCluster, i: usize) -> bool {
    PARTITIONS.iter().all(|&p| {
        cluster
            .leader(p)
            .is_some_and(|l| l != i && cluster.nodes[i].app.held(p) == cluster.nodes[l].app.held(p))
    })
}

/// What the follower's transfers showed on the wire (recorded with the virtual ms and the
/// partition, in order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    /// A first chunk sent to the follower.
    FirstChunk,
    /// The follower answered `outcome`.
    Ack(SnapshotOutcome),
}

#[test]
fn a_follower_at_its_receive_cap_answers_busy_then_free_and_the_transfer_starts_at_once() {
    let mut cluster = SteppedCluster::start_with(3, 2, |config| {
        config.shard_count = 1;
        config.core.compaction_retain_entries_max = 0;
        config.snapshot.sessions_max = 1;
        // Transfers of many chunks, at most 100 a second: the two partitions' overlap.
        config.snapshot.chunk_bytes = 16;
        config.snapshot.chunks_in_flight_max = 1;
        config.snapshot.bytes_per_sec_max = 1_600;
    });
    cluster.elect();
    write_and_checkpoint(&mut cluster, "first", 3);
    // The follower: a node that leads neither partition.
    let leaders: Vec<usize> = PARTITIONS
        .iter()
        .map(|&p| cluster.leader(p).expect("a leader"))
        .collect();
    let follower = (0..3).find(|i| !leaders.contains(i)).expect("a follower");
    cluster.run_until("caught up before the crash", 20_000, |c| {
        caught_up(c, follower)
    });
    let config = cluster.nodes[follower].host.config().clone();
    let id = NodeId(config.node_id.0);
    drop(cluster.nodes.remove(follower));
    write_and_checkpoint(&mut cluster, "while-down", 20);
    let restarted = cluster.start_node(config);
    cluster.nodes.insert(follower, restarted);

    let mut seen: Vec<(u128, PartitionId, Seen)> = Vec::new();
    for _ in 0..20_000 {
        if caught_up(&cluster, follower) {
            break;
        }
        let at = cluster.offset.as_millis();
        for message in cluster.queued_messages() {
            match message.body {
                MessageBody::SnapshotChunk(chunk) if chunk.seq == 0 && message.to == id => {
                    seen.push((at, message.partition, Seen::FirstChunk));
                }
                MessageBody::SnapshotAck { outcome, .. } if message.from == id => {
                    seen.push((at, message.partition, Seen::Ack(outcome)));
                }
                _ => {}
            }
        }
        cluster.step();
    }
    assert!(caught_up(&cluster, follower), "not caught up: {seen:?}");
    let busy = seen
        .iter()
        .position(|s| s.2 == Seen::Ack(SnapshotOutcome::Busy))
        .unwrap_or_else(|| panic!("no Busy answer: {seen:?}"));
    let waiting = seen[busy].1;
    let free = seen[busy..]
        .iter()
        .position(|s| s.1 == waiting && s.2 == Seen::Ack(SnapshotOutcome::Free))
        .map(|k| busy + k)
        .unwrap_or_else(|| panic!("no Free for partition {waiting}: {seen:?}"));
    assert!(
        !seen[busy + 1..free]
            .iter()
            .any(|s| s.1 == waiting && s.2 == Seen::FirstChunk),
        "the busy transfer was sent again before the follower had room: {seen:?}"
    );
    assert!(
        seen[busy..]
            .iter()
            .all(|s| s.1 != waiting || s.2 != Seen::Ack(SnapshotOutcome::Refused)),
        "the busy transfer was refused: {seen:?}"
    );
    let again = seen[free..]
        .iter()
        .find(|s| s.1 == waiting && s.2 == Seen::FirstChunk)
        .unwrap_or_else(|| panic!("not started again after Free: {seen:?}"));
    // Within a tick or two of the notice (5 ms ticks): not after a back-off.
    assert!(
        again.0 - seen[free].0 <= 15,
        "started again {} ms after Free: {seen:?}",
        again.0 - seen[free].0
    );
}
