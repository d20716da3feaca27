//! Quiescence at shard level (decision 0007), on stepped nodes (virtual time, no threads): idle
//! partitions leave the shard's tick and go silent but for the keep-alives, a write wakes and
//! commits, and the followers of a node that stopped elect another leader — unless the shard
//! forgets its verdict (the node bug `QuiescedNeverCampaigns`).

use std::time::Duration;

#[cfg(feature = "sim-bugs")]
use kommander_raft::core::MessageBody;
use kommander_raft::core::PartitionId;
use kommander_raft::shard::ShardConfig;

use super::stepped::SteppedCluster;

const NODES: u64 = 3;
const PARTITIONS: u32 = 8;

/// Replicas quiesced on every node together.
fn quiesced(cluster: &SteppedCluster) -> u64 {
    cluster
        .nodes
        .iter()
        .map(|node| node.host.stats().quiesced_replicas)
        .sum()
}

/// Three nodes, every partition written once, then idle until every replica quiesced.
fn quiesced_cluster(configure: impl Fn(&mut ShardConfig)) -> SteppedCluster {
    let mut cluster = SteppedCluster::start_with(NODES, PARTITIONS, configure);
    cluster.elect();
    let mut answers = Vec::new();
    for partition in cluster.partitions.clone() {
        let leader = cluster.leader(partition).expect("leader");
        answers.push(cluster.propose(leader, partition, b"w"));
    }
    for answer in &mut answers {
        let mut done = false;
        for _ in 0..20_000 {
            if let Ok(result) = answer.try_recv() {
                result.expect("committed");
                done = true;
                break;
            }
            cluster.step();
        }
        assert!(done, "a write was never answered");
    }
    let all = NODES * u64::from(PARTITIONS);
    cluster.run_until("every replica quiesced", 50_000, |c| quiesced(c) == all);
    cluster
}

/// Steps the cluster until its virtual clock moved `ticks` ticks of 5 ms.
fn idle_for(cluster: &mut SteppedCluster, ticks: u32) {
    let until = cluster.offset + Duration::from_millis(5) * ticks;
    while cluster.offset < until {
        cluster.step();
    }
}

#[test]
fn idle_partitions_leave_the_tick_and_send_only_keep_alives() {
    let mut cluster = quiesced_cluster(|_| {});
    let ticks_before: Vec<u64> = cluster
        .nodes
        .iter()
        .map(|n| n.host.stats().replica_ticks)
        .collect();
    let sent_before = cluster.trace().len();
    let ticks = 200;
    idle_for(&mut cluster, ticks);
    for (node, before) in cluster.nodes.iter().zip(ticks_before) {
        assert_eq!(
            node.host.stats().replica_ticks,
            before,
            "node {}: a tick visits no quiesced replica",
            node.id
        );
    }
    assert_eq!(quiesced(&cluster), NODES * u64::from(PARTITIONS));
    let trace = cluster.trace();
    let sent = &trace[sent_before..];
    assert!(
        sent.iter()
            .filter(|line| line.starts_with("send "))
            .all(|line| line.contains("quiesce: true") || line.contains("HeartbeatResponse")),
        "only keep-alives and their answers: {sent:?}"
    );
    // One keep-alive per shard and peer per heartbeat interval (2 ticks), and its answer: the
    // count does not grow with the partitions.
    let shards = 2;
    let bound = 2 * NODES * (NODES - 1) * shards * (u64::from(ticks) / 2 + 1);
    let messages = sent.iter().filter(|line| line.starts_with("send ")).count() as u64;
    assert!(
        messages <= bound,
        "{messages} messages in {ticks} idle ticks, bound {bound}"
    );
    assert!(messages > 0, "keep-alives flow");
}

/// Writes `payload` to `partition` on its leader and steps until the write committed (a
/// quiesced partition answers within a few rounds of waking).
fn write_quiesced(cluster: &mut SteppedCluster, partition: PartitionId, payload: &[u8]) {
    let leader = cluster.leader(partition).expect("leader");
    let mut answer = cluster.propose(leader, partition, payload);
    for _ in 0..200 {
        cluster.step();
        if let Ok(result) = answer.try_recv() {
            result.expect("committed");
            return;
        }
    }
    panic!("{partition:?}: the write was not answered within a few rounds");
}

/// Partitions the tick turns visited on every node together.
fn visits(cluster: &SteppedCluster) -> u64 {
    cluster
        .nodes
        .iter()
        .map(|node| node.host.stats().partition_visits)
        .sum()
}

/// Messages sent since the trace was `from` lines long.
fn sent_since(cluster: &SteppedCluster, from: usize) -> u64 {
    cluster.trace()[from..]
        .iter()
        .filter(|line| line.starts_with("send "))
        .count() as u64
}

/// Issue 15: nothing on a tick walks every hosted partition. While every partition is
/// quiesced, a tick visits only the partitions a message touched (the keep-alives and their
/// answers: one partition each, bounded by shards × peers per heartbeat interval, not by the
/// partitions); with one partition awake, its replicas besides. Walking every partition would
/// visit 24 a tick, twice what the messages allow.
#[test]
fn a_tick_visits_the_active_partitions_not_the_hosted_ones() {
    let mut cluster = quiesced_cluster(|_| {});
    let (visits_before, trace_before) = (visits(&cluster), cluster.trace().len());
    let ticks = 200;
    idle_for(&mut cluster, ticks);
    let visited = visits(&cluster) - visits_before;
    let messages = sent_since(&cluster, trace_before);
    assert!(
        visited <= messages,
        "{visited} partition visits in {ticks} idle ticks, more than the {messages} messages"
    );
    // One partition written: it wakes, and the ticks visit its replicas (a tick and a
    // membership look each) and the touched ones.
    write_quiesced(&mut cluster, PartitionId(3), b"awake");
    let (visits_before, trace_before) = (visits(&cluster), cluster.trace().len());
    let ticks = 20;
    idle_for(&mut cluster, ticks);
    let visited = visits(&cluster) - visits_before;
    let messages = sent_since(&cluster, trace_before);
    let awake = 2 * NODES * u64::from(ticks + 1);
    assert!(visited > 0, "the woken partition is visited");
    assert!(
        visited <= awake + messages,
        "{visited} partition visits in {ticks} ticks with one partition awake, bound {}",
        awake + messages
    );
}

#[test]
fn a_write_to_a_quiesced_partition_wakes_it_and_commits() {
    let mut cluster = quiesced_cluster(|_| {});
    write_quiesced(&mut cluster, PartitionId(3), b"after");
    // The gauge is sampled at ticks.
    idle_for(&mut cluster, 2);
    assert!(
        quiesced(&cluster) < NODES * u64::from(PARTITIONS),
        "it woke"
    );
    let all = NODES * u64::from(PARTITIONS);
    cluster.run_until("idle again", 50_000, |c| quiesced(c) == all);
}

/// Node 1 stops (its shards turn no more, its messages are lost): the partitions it led have
/// quiesced followers on nodes 2 and 3, whose shards hear nothing from node 1 any more.
fn stop_node_one(cluster: &mut SteppedCluster) -> Vec<PartitionId> {
    let led: Vec<PartitionId> = cluster
        .partitions
        .iter()
        .copied()
        .filter(|&p| cluster.leader(p) == Some(0))
        .collect();
    let stopped = cluster.nodes.remove(0);
    cluster.drop_queued_from(stopped.id);
    led
}

#[test]
fn followers_of_a_stopped_node_elect_another_leader() {
    let mut cluster = quiesced_cluster(|_| {});
    let led = stop_node_one(&mut cluster);
    assert!(!led.is_empty(), "node 1 led some partitions");
    let partitions = cluster.partitions.clone();
    cluster.run_until("a leader on every partition again", 50_000, |c| {
        partitions.iter().all(|&p| c.leader(p).is_some())
    });
}

/// The tick settings of the stepped nodes (`stepped_config`): 5 ms ticks, a heartbeat every 2,
/// leader nodes silent for 10 (the minimum election timeout) declared dead, elections after 10
/// to 20.
const TICK: Duration = Duration::from_millis(5);
const HEARTBEAT_TICKS: u64 = 2;
const SILENCE_TICKS: u64 = 10;
const ELECTION_TICKS_MAX: u64 = 20;

/// (tick turns, ticks counted: the turns and the ticks they stood for) summed over every
/// shard of every node.
fn tick_counts(cluster: &SteppedCluster) -> (u64, u64) {
    cluster.nodes.iter().fold((0, 0), |(turns, ticks), node| {
        let stats = node.host.stats();
        (
            turns + stats.tick_turns,
            ticks + stats.tick_turns + stats.ticks_skipped,
        )
    })
}

/// The tickless idle shard (decision 0007): a shard whose replicas are all quiesced turns for a
/// tick only when something is due — its quiesced leaders' keep-alives, every heartbeat
/// interval at most — not at every tick interval, and the tick turn it takes stands for the
/// ticks it slept through, so its tick clock still counts every interval.
#[test]
fn an_idle_shard_sleeps_through_ticks_and_counts_them() {
    let mut cluster = quiesced_cluster(|_| {});
    let shards = cluster
        .nodes
        .iter()
        .map(|node| node.steppers.len() as u64)
        .sum::<u64>();
    let (turns_before, ticks_before) = tick_counts(&cluster);
    let ticks = 200;
    idle_for(&mut cluster, ticks as u32);
    let (turns, counted) = tick_counts(&cluster);
    let (turns, counted) = (turns - turns_before, counted - ticks_before);
    // Ticking at every interval takes `ticks` tick turns per shard.
    let bound = shards * (ticks / HEARTBEAT_TICKS + 1);
    assert!(
        turns <= bound,
        "{turns} tick turns over {ticks} idle tick intervals on {shards} shards, bound {bound}"
    );
    // A tick turn at the window's edges may stand for ticks on the other side of it.
    let (low, high) = (
        shards * (ticks - HEARTBEAT_TICKS),
        shards * (ticks + HEARTBEAT_TICKS),
    );
    assert!(
        (low..=high).contains(&counted),
        "{counted} ticks counted over {ticks} tick intervals on {shards} shards, not {low}..={high}"
    );
    assert_eq!(
        quiesced(&cluster),
        NODES * u64::from(PARTITIONS),
        "still idle"
    );
}

/// A sleeping shard still judges the silence of a leader's node on time: once node 1 stops,
/// its followers ask for pre-votes after its node was silent for `election_timeout_ticks_min`
/// ticks — not before (the ticks slept through are counted from when the node was last
/// heard, not from the tick turn before) — and within the election timeout after that (a
/// follower declared dead starts at the minimum election timeout and campaigns by the maximum).
#[test]
fn followers_of_a_stopped_node_campaign_after_the_silence_and_within_the_election_timeout() {
    let mut cluster = quiesced_cluster(|_| {});
    let trace_before = cluster.trace().len();
    let stopped_at = cluster.offset;
    let led = stop_node_one(&mut cluster);
    assert!(!led.is_empty(), "node 1 led some partitions");
    let pre_vote = |cluster: &SteppedCluster| {
        cluster.trace()[trace_before..]
            .iter()
            .any(|line| line.starts_with("send ") && line.contains("PreVoteRequest"))
    };
    cluster.run_until("a pre-vote", 50_000, pre_vote);
    let after = cluster.offset - stopped_at;
    // Node 1 was last heard at most a heartbeat interval (a keep-alive) before it stopped.
    let earliest = TICK * (SILENCE_TICKS - HEARTBEAT_TICKS - 1) as u32;
    let latest = TICK * (ELECTION_TICKS_MAX + 2) as u32;
    assert!(
        after >= earliest,
        "a pre-vote {after:?} after node 1 stopped: its node was not silent for the election \
         timeout ({earliest:?} at the earliest)"
    );
    assert!(
        after <= latest,
        "the first pre-vote {after:?} after node 1 stopped, later than {latest:?}"
    );
}

#[cfg(feature = "sim-bugs")]
#[test]
fn followers_that_never_campaign_leave_the_stopped_nodes_partitions_leaderless() {
    use kommander_raft::shard::NodeBug;
    let mut cluster = quiesced_cluster(|config| config.bug = Some(NodeBug::QuiescedNeverCampaigns));
    let led = stop_node_one(&mut cluster);
    assert!(!led.is_empty(), "node 1 led some partitions");
    let stopped_at = cluster.trace().len();
    idle_for(&mut cluster, 2_000);
    for partition in led {
        assert_eq!(
            cluster.leader(partition),
            None,
            "{partition:?} stays leaderless"
        );
    }
    // The trace shows why: nobody ever asked for a pre-vote.
    let name = MessageBody::PreVoteRequest {
        last_log_index: kommander_raft::core::LogIndex(0),
        last_log_term: kommander_raft::core::Term(0),
        configuration_version: 0,
    }
    .name();
    assert!(
        !cluster.trace()[stopped_at..]
            .iter()
            .any(|line| line.contains(name))
    );
}
