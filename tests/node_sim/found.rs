//! Seeds that found bugs replay clean (each was a failure before its fix).
//!
//! In the shipping code: 49 (a stale WAL frame beyond the recovered end joined the log and took
//! an acknowledged entry away), 846 and 1460 (a restore read an entry the WAL was relocating and
//! failed the partition).
//!
//! In the shipping code, found by the campaign that moves nodes
//! (`NodeSimConfig::moving_nodes_for_seed`): 232, 382 and 793 (a follower whose application
//! stood past a snapshot's index while its log ended below it acknowledged the snapshot
//! without taking its boundary, so the leader sent it again for ever).
//!
//! In the simulator: 636 (the liveness bound blamed a follower whose log held another term at
//! the leader's compaction floor: only a snapshot can bring it back, and the shards do not ship
//! snapshots yet), 6047 (a 2-node seed answered 4 reads, under the floor of 5: every partition
//! now serves several reads after healing), 19808 (the scripted disk fault, aimed again and
//! again at a leader cut off from the clients, never fired: every other try now aims at any
//! node), 20729 (a rate-capped snapshot's chunk and digest, in separate frames, were swapped by
//! the healed network's random delays on every attempt: a healed link now delivers in order,
//! as TCP does), 23649 (the liveness bound compared the applications' applied indexes, and an
//! import leaves one at its snapshot's index, a marker no application is handed, where the
//! others stand at the entry before it: converged, judged not to be).

use kommander_raft::sim::node::{NodeSimConfig, NodeSimulation};

#[test]
fn seeds_that_found_bugs_replay_clean() {
    for seed in [49, 846, 1460, 636, 6047, 19808, 20729, 23649] {
        match NodeSimulation::new(seed, NodeSimConfig::for_seed(seed)).run() {
            Ok(report) => {
                if let Some(short) = super::sweep::vacuous(&report) {
                    panic!("seed {seed} was vacuous: {short}");
                }
            }
            Err(failure) => panic!("{failure}"),
        }
    }
    for seed in [232, 382, 793] {
        if let Err(failure) =
            NodeSimulation::new(seed, NodeSimConfig::moving_nodes_for_seed(seed)).run()
        {
            panic!("{failure}");
        }
    }
}

/// Decision 0003's hazard, open (not fixed: `NodeSimConfig::replacing_nodes_for_seed` stays
/// out of the default sweeps until it is). Seed 9, 5 nodes: partition 4's configuration entry
/// at index 11 has voters {1, 2, 3} (learner 4), the one at index 21 voters {1, 2} (node 3
/// removed; its log ends at index 11, term 1). Node 1's disks are replaced at 4.6 s (incarnation
/// 1000) and it is admitted again at 13.6 s with an empty log: a learner in the roster, but
/// still a voter of partition 4 as node 3's stale configuration has it. In term 3 node 3 asks
/// nodes 1 and 2 for votes with its log at (11, term 1); node 1's lost disk held partition 4's
/// log up to index 25 and would have refused, its empty one grants (13.8 s). Node 3 leads term
/// 3 on votes {3, 1} and overwrites the committed index 13 (a term-1 write); node 1 is handed
/// node 3's term-3 entry there at 20.9 s: `state_machine_safety`. Seed 8, 3 nodes, no
/// membership change involved: node 2's disks are replaced at 14.76 s (incarnation 1001) and it
/// is admitted again at once; node 3 led partition 1 in term 2 with index 77 committed; at
/// 14.87 s node 1, its log at (9, term 2), asks for votes in term 3 and node 2's empty log
/// grants; node 1 leads on {1, 2} without indexes 10 to 77, and a read returns a value
/// overwritten long before: `linearizability`. When the hazard is fixed this test fails: the
/// seeds then join the clean replays above.
#[test]
fn a_replaced_disk_votes_for_a_candidate_missing_committed_entries() {
    for (seed, checker) in [(9, "state_machine_safety"), (8, "linearizability")] {
        let failure = NodeSimulation::new(seed, NodeSimConfig::replacing_nodes_for_seed(seed))
            .run()
            .expect_err("a replaced disk's vote elects a leader without committed entries");
        assert_eq!(failure.violation.checker, checker, "seed {seed}: {failure}");
    }
}
