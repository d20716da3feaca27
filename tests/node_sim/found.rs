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
//! In the shipping code, found by the campaign that replaces disks
//! (`NodeSimConfig::replacing_nodes_for_seed`; decision 0004, "A replaced disk's vote"): 2
//! (two leaders of partition 6's term 16: the replaced node granted a vote its old
//! incarnation had cast in that term) and 29 (two writes handed at one index: a candidate
//! missing committed entries won on the replaced node's empty log). Then, once admitted nodes
//! withheld their votes, 12 (the replaced node was a voter of an uncommitted promotion of
//! partition 0 from one voter to two: the simulator now replaces disks only while the roster
//! is at rest) and 15 (a learner replaced in a partition whose members already matched the
//! roster: no configuration of its admission's version ever committed there, so its vote
//! stayed withheld while the partition's two voters needed it; partitions now restate their
//! members under the latest admission's version). Since the shards open the partitions of
//! partition 0's map, the hazard's schedule showed on 131 (two leaders of partition 3's term
//! 12) and 63 (a read of partition 2 not linearizable) before the fix. Then 5991 (2 nodes:
//! partition 0's leader took a roster change that made n2 leaving at 224 ms, before its own
//! shard of partition 1, created with both voters by the map at index 2, had opened it; the
//! membership table counted recorded partitions only, so none held the change back, n2 never
//! learnt the map, and partition 1 never had the quorum to elect a leader; a partition the
//! committed map holds open now holds roster changes back until its shard records it). Then
//! 5517 (5 nodes, 60 partitions, snapshots capped at 3 200 B/s: a node admitted again on a
//! replaced disk needed a snapshot of every partition, and a transfer that found its leader's
//! shard sending `transfers_max` already backed off as if it had failed, doubling at each try,
//! so free slots stood idle while partitions slept in back-off; the applications converged
//! 24.5 s after the faults stopped, over the 20 s bound; a transfer beyond the limit now
//! waits in order and starts as soon as one ends: 4.75 s). Then 7251 (2 nodes: with the first
//! map in flight on partition 0, naming both nodes voters of every partition, the operator
//! demoted n1 and removed it from partition 0, both changes committed by n2 alone before n1
//! learnt that the map had committed; n1 never opened the map's partitions, which never had a
//! quorum; a roster change now waits while a map entry is in partition 0's log unapplied).
//! Then 11483 (5 nodes: roster version 6 demoted n1 and version 7 promoted it again; n1's
//! own replica of partition 1 had missed both, its committed configuration of version 5
//! holding version 7's members, and n1, leading partition 0, counted it reconciled, so the
//! simulator replaced n1's disks while partition 1's majority still had to promote it, and
//! n1's admission was refused as concurrent for good; a partition is now reconciled only by a
//! configuration made since the roster last changed its target, `Roster::target_version`).
//!
//! In the shipping code, found by the elastic sweep (`NodeSimConfig::elastic_for_seed`): 7
//! (a merge's survivor, still `Active` while it imports, was split: phase 2 then proposed a
//! map whose merge source named a partner that no longer named it back, which every node
//! refused; a survivor is now refused as a split's source, a merge's partner and a removal)
//! 2 (a node that restarted after a merge's tombstone committed never opened the merged-away
//! partition again, so it never deleted its WAL records: a closed partition's records now go
//! whether or not it is open) and 17 (a stale read, with quiescence off: a node cut off across
//! a split of partition 1 caught up on it by a snapshot past the generation entry, which did
//! not carry the split marks, while its map was still the old one, so its fence admitted a
//! read routed with the old generation and read the source's frozen value; the first chunk of
//! a snapshot now carries the marks at its index, decision 0006) and 2045 (found by a sweep
//! of 1 500 seeds: partition 2's leader appended its split's generation entry, lost its term
//! before the entry reached a follower, and led again with the entry truncated, but its log's
//! marks still counted it, so it never proposed it again and the split never left phase 1;
//! the marks are now exactly those of the log, decision 0006) and 6027 (two leaders of
//! partition 6's term 15: n5 led it, closed it when the merge that removed it committed and
//! deleted its records, then restarted before partition 0's commit of that map reached its
//! disk; the map it read back was the one before, so it opened the partition again from an
//! empty log and granted n2 a vote in the term it had led; a removed partition's records now
//! wait until the map that removed it is durable on the node).
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
//! others stand at the entry before it: converged, judged not to be), and the elastic seeds
//! 5979 and 5832 (`acknowledged_writes_durable` excused a merged-away partition's deleted
//! records only by the first map of each version it had seen; a map entry proposed by a leader
//! that lost partition 0 had reached one disk first, so the committed phase 2 of the same
//! version, the tombstone, was never taken into account), and the replacing seed 8847 (the
//! simulator replaced n2's disks while the roster was not at rest: it judged "at rest" from
//! the operators' leader hint, which named a leader of partition 0's term 1 cut off from the
//! newest leader of term 3, whose configuration change n2 had just acknowledged; partition 0
//! never had a quorum again; the victim is now chosen with the leader of the newest term any
//! running replica knows), and the replacing seeds 15 and 91 once the commit index was written
//! lazily (a restart read back a commit index below a committed configuration entry, numbered
//! an older committed configuration, and a replaced disk's replica withheld its vote from the
//! one candidate of a two-voter partition for good: a commit index that commits a
//! configuration entry is now written at once), and the elastic seed 7542 (a shard's WAL
//! failed on the disk fault armed for it, and in the same event the elastic driver crashed
//! that node, partition 0's leader, between a merge's phases; the crash disarmed the fault
//! before the failure was judged, so an expected failure was called a violation: whether the
//! fault fired is now read when the failure is seen), and the node seed 30849 (vacuous: two
//! nodes cut apart and crashed for most of the 60 s acknowledged 8 writes and answered 3 reads,
//! and the run settled once every partition had served 3 of each after healing; a run now goes
//! on until it has the floors, `RUN_ACKNOWLEDGED_MIN` and `RUN_READS_MIN`).

use kommander_raft::sim::node::{NodeSimConfig, NodeSimulation};

#[test]
fn seeds_that_found_bugs_replay_clean() {
    for seed in [49, 846, 1460, 636, 6047, 19808, 20729, 23649, 30849] {
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
    for seed in [7, 2, 17, 2045, 6027, 5979, 5832, 7542] {
        if let Err(failure) = NodeSimulation::new(seed, NodeSimConfig::elastic_for_seed(seed)).run()
        {
            panic!("{failure}");
        }
    }
    // The schedules moved since some were found: they replay clean, and disks are replaced.
    let mut replacements = 0;
    for seed in [2, 29, 12, 15, 91, 131, 63, 5991, 5517, 7251, 8847, 11483] {
        match NodeSimulation::new(seed, NodeSimConfig::replacing_nodes_for_seed(seed)).run() {
            Ok(report) => replacements += report.replacements,
            Err(failure) => panic!("{failure}"),
        }
    }
    assert!(
        replacements > 0,
        "no disk replaced in the replacement seeds"
    );
}
