//! A loaded shard's tick turns come late: each stands for one planned tick though several
//! tick intervals passed. Its leaders still heartbeat by the wall clock (once per interval
//! passed, at most a heartbeat interval's worth a turn), so followers on shards that turn on
//! time keep them (issue 15: with 4096 partitions taking writes, followers on the less loaded
//! nodes pre-voted and elected new leaders while their leaders ticked once per late turn).

use std::time::Duration;

use kommander_raft::core::PartitionId;

use super::stepped::SteppedCluster;

const NODES: u64 = 3;
const PARTITIONS: u32 = 8;
/// The stepped nodes' tick (`stepped_config`: a heartbeat every 2, elections after 10 to 20).
const TICK: Duration = Duration::from_millis(5);
/// The loaded node turns once every this many tick intervals: with one tick a turn its
/// heartbeats would come every 12 intervals, past the followers' shortest election timeout.
const LATE: u32 = 6;

#[test]
fn a_leader_on_a_shard_that_turns_late_keeps_its_followers() {
    // No quiescence: the idle leaders' heartbeats are the only messages.
    let mut cluster = SteppedCluster::start_with(NODES, PARTITIONS, |config| {
        config.core.quiesce_after_ticks = 0;
    });
    cluster.elect();
    let leaders: Vec<(PartitionId, usize)> = cluster
        .partitions
        .iter()
        .map(|&p| (p, cluster.leader(p).expect("a leader")))
        .collect();
    // The node leading the most partitions is the loaded one.
    let loaded = (0..cluster.nodes.len())
        .max_by_key(|&i| leaders.iter().filter(|(_, l)| *l == i).count())
        .expect("a node");
    let led: Vec<PartitionId> = leaders
        .iter()
        .filter(|(_, l)| *l == loaded)
        .map(|(p, _)| *p)
        .collect();
    let terms: Vec<_> = led
        .iter()
        .map(|&p| cluster.nodes[loaded].host.leadership(p).expect("led").term)
        .collect();
    // Two seconds of virtual time (400 tick intervals, 20 of the longest election timeouts):
    // every node but the loaded one turns at every tick interval, the loaded one at every
    // LATE-th.
    for round in 0..400 {
        cluster.deliver_all();
        let now = cluster.now();
        for (i, node) in cluster.nodes.iter_mut().enumerate() {
            if i != loaded || round % LATE == 0 {
                for stepper in &mut node.steppers {
                    stepper.turn(now);
                }
            }
        }
        cluster.offset += TICK;
    }
    for (&partition, term) in led.iter().zip(terms) {
        let leadership = cluster.nodes[loaded]
            .host
            .leadership(partition)
            .expect("a leadership");
        assert!(
            leadership.leads() && leadership.term == term,
            "{partition}: led by node {} in term {term:?}, now {leadership:?}",
            loaded + 1
        );
    }
}
