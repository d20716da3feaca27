//! Split and merge on the partitions themselves (decision 0006, amendment "split and merge,
//! precisely"): three nodes of `ShardHost`s (2 shards each) whose phase-1 maps the test
//! proposes on partition 0 by hand; partition 0's leader's shard proposes phase 2 on its own
//! once the import ended (the test holds the exports until it checked what phase 1 refuses).
//!
//! * A split: the source's leader writes its generation entry; a write routed with the old
//!   generation is refused even by a leader whose node's partition 0 is cut off (its map still
//!   the old one: only its log knows); the target refuses writes until phase 2; the target's
//!   log carries the import and every replica's application holds the moved registers; phase
//!   2 makes both serve.
//! * A merge: applications may not write the split entries' log types; the draining source
//!   refuses every write; the survivor's replicas import its
//!   registers; phase 2 closes the source on every node and deletes its WAL records.
//!
//! * The split marks travel with a snapshot: a follower cut off across a split's generation
//!   entry, its node's map held back, that catches up by a snapshot past the entry refuses
//!   fenced reads and writes routed with the old generation, and still after a restart; a
//!   target's replica that catches up by a snapshot past the import's end counts the end as
//!   applied, so phase 2 follows when its node leads partition 0.
//!
//! The application is a register per key (`key=value` entries), routed by Kommander's key
//! hash, with a range transfer over its registers and snapshots of a partition's registers.

mod harness;

use kommander_raft::core::{PartitionId, Status};
use kommander_raft::shard::partitions::{
    GENERATION_LOG_TYPE, IMPORT_LOG_TYPE, RangeState, key_hash, transfer_into,
};
use kommander_raft::shard::{ProposedEntry, Refusal, ReplicationResult, shard_of};
use kommander_wal::Wal;

use crate::runtime::harness::eventually;

use harness::*;

#[test]
fn a_split_freezes_the_source_in_its_log_and_fills_the_target_through_its_log() {
    let dir = tempfile::tempdir().expect("temp dir");
    let all = [0, 1, 2];
    let (mut cluster, map, written) = Cluster::with_keys(dir.path(), 1);

    // Node 3's partition 0 is cut off: it never learns phase 1 from its map. The source's
    // leader is a node that does (a leader whose map lags writes no generation entry until
    // its map catches up).
    cluster.lead_on(P1, 0);
    cluster.cut_off(2, &[P0]);
    let one = map.split_phase_1(P1, None, None).expect("phase 1");
    let plan = transfer_into(&one, P2).expect("the target imports");
    cluster.hold_exports(true);
    cluster.commit_map(&one, &[0, 1]);

    // The source's leader writes its generation entry; node 3's replica of it applies it.
    eventually(
        "node 3's replica of partition 1 applied generation 2",
        || (cluster.nodes[2].maps.progress().generation_applied(P1) == (2, false)).then_some(()),
    );
    // Node 3 leads partition 1 with the old map: only its log knows the generation.
    cluster.lead_on(P1, 2);
    assert_eq!(cluster.nodes[2].maps.map().version, 1, "node 3's map lags");
    let stale = cluster.write_on(2, P1, 1, put(&kept_key(&plan, "stale"), b"old"));
    assert_eq!(
        stale,
        Err(Refusal::NotHosted),
        "routed with the old generation"
    );
    let current = cluster.write_on(2, P1, 2, put(&kept_key(&plan, "current"), b"new"));
    assert!(
        matches!(
            current,
            Ok(ReplicationResult {
                status: Status::Success,
                ..
            })
        ),
        "routed with the new generation: {current:?}"
    );
    // And on a node whose map has phase 1.
    cluster.lead_on(P1, 0);
    let stale = cluster.write_on(0, P1, 1, put(&kept_key(&plan, "stale"), b"old"));
    assert_eq!(stale, Err(Refusal::NotHosted));

    // The target refuses writes until phase 2, fenced or not.
    let target_leader = cluster.leader(P2);
    for generation in [0, 1] {
        let refused = cluster.write_on(target_leader, P2, generation, put("key-early", b"x"));
        assert_eq!(refused, Err(Refusal::NotHosted), "generation {generation}");
    }
    cluster.hold_exports(false);

    // The target's log carries the import: every replica's application holds the moved
    // registers, and nothing else.
    let expected = moved(&written, &plan);
    assert!(expected.len() > 10, "the split moves registers");
    for node in [0, 1] {
        eventually(&format!("node {node} applied the import's end"), || {
            (cluster.nodes[node].maps.progress().import_applied(P2) == Some(plan)).then_some(())
        });
        let held = cluster.nodes[node].store.registers(P2);
        assert_eq!(same(&held, &expected), Ok(()), "node {node}");
    }
    // Node 3 catches up on partition 0, opens the target and replays its log.
    cluster.heal();
    eventually("node 3 follows phase 1", || {
        (cluster.nodes[2].maps.in_force().version >= one.version).then_some(())
    });
    eventually(
        "node 3's replica of the target holds the moved registers",
        || (cluster.nodes[2].store.registers(P2) == expected).then_some(()),
    );

    // Phase 2, proposed by partition 0's leader: both serve, at their new generations.
    let two = one.split_phase_2(P1).expect("phase 2");
    cluster.wait_map(&two, &all);
    let rewritten = cluster.write_keys(&two, 2);
    for (partition, generation) in [(P1, 3), (P2, 2)] {
        assert_eq!(two.get(partition).map(|r| r.generation), Some(generation));
    }
    for node in 0..3 {
        let upper = cluster.nodes[node].store.registers(P2);
        eventually("the target holds the writes after phase 2", || {
            same(
                &cluster.nodes[node].store.registers(P2),
                &moved(&rewritten, &plan),
            )
            .ok()
        });
        assert!(upper.keys().all(|key| plan.holds(key_hash(key))));
    }
    cluster.shutdown();
}

#[test]
fn a_merge_drains_the_source_then_closes_it_and_reclaims_its_wal() {
    let dir = tempfile::tempdir().expect("temp dir");
    let all = [0, 1, 2];
    let (mut cluster, map, written) = Cluster::with_keys(dir.path(), 2);

    // Applications may not write the log types of the split entries.
    for log_type in [GENERATION_LOG_TYPE, IMPORT_LOG_TYPE] {
        let forged = ProposedEntry::new(log_type, &[1; 10]);
        let leader = cluster.leader(P2);
        let refused = cluster.write_on(leader, P2, 0, forged);
        assert_eq!(
            refused,
            Err(Refusal::Replica(Status::Errored)),
            "{log_type}"
        );
    }

    let one = map.merge_phase_1(P1, P2).expect("phase 1");
    let plan = transfer_into(&one, P1).expect("the survivor imports");
    cluster.hold_exports(true);
    cluster.commit_map(&one, &all);
    // The draining source refuses every client write, fenced or not.
    eventually("partition 2 applied its draining entry", || {
        (0..3)
            .all(|n| cluster.nodes[n].maps.progress().generation_applied(P2) == (2, true))
            .then_some(())
    });
    let source_leader = cluster.leader(P2);
    for generation in [0, 1, 2] {
        let refused = cluster.write_on(source_leader, P2, generation, put("key-late", b"x"));
        assert_eq!(refused, Err(Refusal::NotHosted), "generation {generation}");
    }
    // The survivor keeps serving its own range while it imports.
    let own = cluster.write_on(cluster.leader(P1), P1, 1, put("key-own", b"y"));
    assert!(matches!(
        own,
        Ok(ReplicationResult {
            status: Status::Success,
            ..
        })
    ));
    cluster.hold_exports(false);

    let expected = moved(&written, &plan);
    assert!(expected.len() > 10, "the merge moves registers");
    for node in 0..3 {
        eventually(&format!("node {node} applied the import's end"), || {
            (cluster.nodes[node].maps.progress().import_applied(P1) == Some(plan)).then_some(())
        });
        let survivor = cluster.nodes[node].store.registers(P1);
        for (key, value) in &expected {
            assert_eq!(survivor.get(key), Some(value), "node {node} imported {key}");
        }
    }

    // Phase 2, proposed by partition 0's leader: the survivor owns both ranges, the source
    // closes on every node.
    let two = one.merge_phase_2(P2).expect("phase 2");
    cluster.wait_map(&two, &all);
    for node in 0..3 {
        assert_eq!(cluster.status(node, P2), Err(Refusal::NotHosted));
    }
    assert_eq!(two.get(P2).map(|r| r.state), Some(RangeState::Removed));
    cluster.write_keys(&two, 2);
    for config in cluster.shutdown() {
        let shard = shard_of(P2, 2);
        let wal = Wal::open(
            config.data_dir.join(format!("shard-{shard}")),
            config.wal_config(),
        )
        .expect("the WAL opens");
        assert!(
            matches!(
                wal.partition(P2),
                Err(kommander_wal::Error::UnknownPartition { .. })
            ),
            "partition 2's records are deleted"
        );
    }
}

/// Whether `node` refuses `partition` to readers and writers routed with `stale` (`node`
/// leading it for the writes), and lets a write routed with `current` through.
fn refuses_the_old_generation(
    cluster: &mut Cluster,
    node: usize,
    partition: PartitionId,
    (stale, current): (u64, u64),
) {
    // A replica that admitted the read asks its leader for the read index: once it knows
    // one, the answer is the index (a stale read) or the refusal.
    let read = eventually("a fenced read's answer", || {
        match cluster.read_on(node, partition, stale) {
            Err(Refusal::NotLeader { .. }) => None,
            answer => Some(answer),
        }
    });
    assert_eq!(
        read,
        Err(Refusal::NotHosted),
        "a fenced read routed with generation {stale}"
    );
    cluster.lead_on(partition, node);
    assert_eq!(
        cluster.write_on(node, partition, stale, put("key-stale", b"old")),
        Err(Refusal::NotHosted),
        "a fenced write routed with generation {stale}"
    );
    let written = cluster.write_on(node, partition, current, put("key-current", b"new"));
    assert!(
        matches!(
            written,
            Ok(ReplicationResult {
                status: Status::Success,
                ..
            })
        ),
        "a fenced write routed with generation {current}: {written:?}"
    );
}

/// Elastic seed 17's stale read at shard level: node 3 misses partition 1's generation entry
/// (cut off), its map stays the old one (partition 0 cut off too), and it catches up on
/// partition 1 by a snapshot past the entry. The snapshot's split marks make it refuse the old
/// generation, and its floor meta keeps them across a restart.
#[test]
fn a_replica_caught_up_by_a_snapshot_past_a_generation_entry_fences_with_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let all = [0, 1, 2];
    let (mut cluster, map, _) = Cluster::with_keys(dir.path(), 1);

    cluster.lead_on(P1, 0);
    cluster.cut_off(2, &[P0, P1]);
    let one = map.split_phase_1(P1, None, None).expect("phase 1");
    // The target's import waits: the split stays in phase 1.
    cluster.hold_exports(true);
    cluster.commit_map(&one, &[0, 1]);
    for node in [0, 1] {
        eventually(&format!("node {node} applied generation 2"), || {
            (cluster.nodes[node].maps.progress().generation_applied(P1) == (2, false)).then_some(())
        });
    }
    // Partition 1's log is compacted past its generation entry; node 3 hears it again
    // (partition 0 still cut off) and catches up by a snapshot.
    let floor = cluster.checkpoint(P1, &[0, 1]);
    cluster.cut_off(2, &[P0]);
    eventually("node 3 installed partition 1's snapshot", || {
        let installed = cluster.nodes[2].store.installed.lock().expect("installed");
        installed.contains(&P1).then_some(())
    });
    let status = cluster.status(2, P1).expect("partition 1 on node 3");
    assert!(
        status.wal_floor >= floor,
        "the snapshot is past the generation entry"
    );
    assert_eq!(
        cluster.nodes[2].maps.map().version,
        map.version,
        "node 3's map lags"
    );
    refuses_the_old_generation(&mut cluster, 2, P1, (1, 2));
    assert_eq!(
        cluster.nodes[2].maps.progress().generation_applied(P1),
        (2, false),
        "the snapshot's marks count as applied"
    );

    // After a restart (partition 0 still cut off: its map is the old one again), the floor
    // meta the snapshot's boundary wrote keeps the marks.
    cluster.lead_on(P1, 0);
    cluster.restart(2);
    eventually("node 3 restored partition 1", || {
        cluster.status(2, P1).ok().map(|_| ())
    });
    assert_eq!(
        cluster.nodes[2].maps.map().version,
        map.version,
        "node 3's map lags"
    );
    refuses_the_old_generation(&mut cluster, 2, P1, (1, 2));
    cluster.heal();
    cluster.hold_exports(false);
    cluster.wait_map(&one.split_phase_2(P1).expect("phase 2"), &all);
    cluster.shutdown();
}

/// A target's replica that catches up by a snapshot past the import's end counts the end as
/// applied: with its node leading partition 0, phase 2 follows from it (without the marks in
/// the snapshot it would wait for an import entry that never comes).
#[test]
fn an_import_end_carried_by_a_snapshot_lets_phase_2_follow() {
    let dir = tempfile::tempdir().expect("temp dir");
    let all = [0, 1, 2];
    let (mut cluster, map, written) = Cluster::with_keys(dir.path(), 1);

    // Node 3 leads partition 0 and misses the target's whole log.
    cluster.lead_on(P0, 2);
    cluster.cut_off(2, &[P2]);
    let one = map.split_phase_1(P1, None, None).expect("phase 1");
    let plan = transfer_into(&one, P2).expect("the target imports");
    cluster.commit_map(&one, &all);
    for node in [0, 1] {
        eventually(&format!("node {node} applied the import's end"), || {
            (cluster.nodes[node].maps.progress().import_applied(P2) == Some(plan)).then_some(())
        });
    }
    cluster.checkpoint(P2, &[0, 1]);
    assert_eq!(cluster.nodes[2].maps.progress().import_applied(P2), None);
    assert_eq!(
        cluster.nodes[2].maps.map().version,
        one.version,
        "phase 2 waits"
    );

    cluster.heal();
    eventually("node 3 installed the target's snapshot", || {
        let installed = cluster.nodes[2].store.installed.lock().expect("installed");
        installed.contains(&P2).then_some(())
    });
    eventually(
        "node 3's replica of the target counts the import's end",
        || (cluster.nodes[2].maps.progress().import_applied(P2) == Some(plan)).then_some(()),
    );
    assert_eq!(
        same(
            &cluster.nodes[2].store.registers(P2),
            &moved(&written, &plan)
        ),
        Ok(()),
        "the snapshot carried the moved registers"
    );
    cluster.wait_map(&one.split_phase_2(P1).expect("phase 2"), &all);
    assert_eq!(cluster.leader(P0), 2, "node 3 led partition 0 throughout");
    cluster.shutdown();
}
