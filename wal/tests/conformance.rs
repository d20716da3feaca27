//! The conformance suite every backend passes. Each test takes a backend factory; the
//! `conformance_tests!` macro instantiates the suite for one backend (io_uring adds one line).

use std::path::Path;

use kommander_wal::backend::BackendChoice;
use kommander_wal::backend::sim::SimDisk;
use kommander_wal::{Error, PartitionId, TermVote, Wal, Write};

use crate::common::{
    Factory, Model, Op, Rng, assert_matches, open, run_ops, small_config, workload,
};

/// Instantiates every conformance test for one backend factory.
macro_rules! conformance_tests {
    ($name:ident, $factory:expr) => {
        mod $name {
            use super::*;
            const FACTORY: Factory = $factory;
            #[test]
            fn append_read_reopen() {
                super::append_read_reopen(FACTORY)
            }
            #[test]
            fn truncate_then_reopen() {
                super::truncate_then_reopen(FACTORY)
            }
            #[test]
            fn compact_then_reopen() {
                super::compact_then_reopen(FACTORY)
            }
            #[test]
            fn install_snapshot_then_reopen() {
                super::install_snapshot_then_reopen(FACTORY)
            }
            #[test]
            fn term_vote_and_commit_index_reopen() {
                super::term_vote_and_commit_index_reopen(FACTORY)
            }
            #[test]
            fn delete_partition_reopen() {
                super::delete_partition_reopen(FACTORY)
            }
            #[test]
            fn pipeline_many_appends_in_flight() {
                super::pipeline_many_appends_in_flight(FACTORY)
            }
            #[test]
            fn random_workload_with_reopens() {
                super::random_workload_with_reopens(FACTORY)
            }
            #[test]
            fn reads_borrow_the_mapping() {
                super::reads_borrow_the_mapping(FACTORY)
            }
        }
    };
}

conformance_tests!(blocking, |_dir: &Path| BackendChoice::Blocking);
conformance_tests!(io_uring_direct, |_dir: &Path| BackendChoice::IoUring(
    kommander_wal::backend::UringWriteMode::DirectDsync
));
conformance_tests!(io_uring_linked, |_dir: &Path| BackendChoice::IoUring(
    kommander_wal::backend::UringWriteMode::LinkedDatasync
));
conformance_tests!(
    io_uring_linked_direct,
    |_dir: &Path| BackendChoice::IoUring(
        kommander_wal::backend::UringWriteMode::LinkedDirectDatasync
    )
);
conformance_tests!(simulated, |dir: &Path| BackendChoice::Simulated(
    SimDisk::new(dir).expect("simulated disk")
));

fn p(id: u32) -> PartitionId {
    PartitionId(id)
}

fn reopen(wal: Wal, dir: &Path, factory: Factory) -> Wal {
    drop(wal);
    open(dir, factory)
}

fn append_read_reopen(factory: Factory) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut wal = open(dir.path(), factory);
    let mut model = Model::default();
    for index in 1..=50u64 {
        for part in 1..=3u32 {
            let op = Op::Entry(
                part,
                index,
                1 + index / 20,
                vec![part as u8; (index * 37 % 900) as usize],
            );
            wal.append(&[op.as_write()]).expect("append");
            model.apply(&op);
        }
        if index % 7 == 0 {
            wal.submit().expect("submit");
        }
    }
    wal.sync().expect("sync");
    assert_matches(&wal, &model, "before reopen");
    let mut out = Vec::new();
    wal.entries(p(2), 10..20, &mut out).expect("range read");
    assert_eq!(out.len(), 10);
    let wal = reopen(wal, dir.path(), factory);
    assert_matches(&wal, &model, "after reopen");
    assert_eq!(wal.partition(p(1)).expect("info").last_index, 50);
    assert_eq!(wal.partition(p(1)).expect("info").last_term, 3);
}

fn truncate_then_reopen(factory: Factory) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut wal = open(dir.path(), factory);
    for index in 1..=10 {
        wal.append_entry(p(1), index, 1, format!("old {index}").as_bytes())
            .expect("append");
    }
    wal.sync().expect("sync");
    wal.truncate_after(p(1), 6).expect("truncate");
    assert_eq!(wal.partition(p(1)).expect("info").last_index, 6);
    wal.append_entry(p(1), 7, 2, b"new 7")
        .expect("append after truncate");
    wal.sync().expect("sync");
    let check = |wal: &Wal| {
        assert_eq!(wal.partition(p(1)).expect("info").last_index, 7);
        assert_eq!(&wal.entry(p(1), 7).expect("read")[..], b"new 7");
        assert_eq!(wal.term_at(p(1), 7).expect("term"), 2);
        assert_eq!(&wal.entry(p(1), 6).expect("read")[..], b"old 6");
        assert!(matches!(
            wal.entry(p(1), 8),
            Err(Error::IndexOutOfRange { .. })
        ));
    };
    check(&wal);
    let wal = reopen(wal, dir.path(), factory);
    check(&wal);
}

fn compact_then_reopen(factory: Factory) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut wal = open(dir.path(), factory);
    for index in 1..=20 {
        wal.append_entry(p(4), index, index / 5 + 1, &[index as u8; 100])
            .expect("append");
    }
    assert_eq!(&wal.floor_meta(p(4)).expect("no floor yet")[..], b"");
    wal.compact_to(p(4), 11, b"config at 10").expect("compact");
    // A compaction at or below the floor moves nothing and keeps the floor's meta.
    wal.compact_to(p(4), 11, b"ignored")
        .expect("compact at the floor");
    wal.compact_to(p(4), 3, b"ignored too")
        .expect("compact below");
    wal.sync().expect("sync");
    let check = |wal: &Wal| {
        let info = wal.partition(p(4)).expect("info");
        assert_eq!((info.first_index, info.last_index), (11, 20));
        assert_eq!(wal.term_at(p(4), 10).expect("floor term"), 3);
        assert_eq!(&wal.floor_meta(p(4)).expect("meta")[..], b"config at 10");
        assert!(matches!(
            wal.entry(p(4), 10),
            Err(Error::IndexOutOfRange { .. })
        ));
        assert_eq!(&wal.entry(p(4), 11).expect("read")[..], &[11u8; 100][..]);
    };
    check(&wal);
    let mut wal = reopen(wal, dir.path(), factory);
    check(&wal);
    // Compacting past the last index empties the log; appends continue at the floor.
    wal.compact_to(p(4), 30, b"").expect("compact past the end");
    wal.append_entry(p(4), 30, 9, b"after snapshot")
        .expect("append at floor");
    wal.sync().expect("sync");
    let wal = reopen(wal, dir.path(), factory);
    let info = wal.partition(p(4)).expect("info");
    assert_eq!(
        (info.first_index, info.last_index, info.last_term),
        (30, 30, 9)
    );
    // An empty meta is a meta: it replaced the one before.
    assert_eq!(&wal.floor_meta(p(4)).expect("meta")[..], b"");
}

/// A snapshot boundary keeps the suffix after an entry it matches, drops the whole log on a
/// conflict or beyond the last entry, must come first in its batch, and survives reopening.
fn install_snapshot_then_reopen(factory: Factory) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut wal = open(dir.path(), factory);
    let (keep, conflict, beyond) = (p(1), p(2), p(3));
    for partition in [keep, conflict, beyond] {
        for index in 1..=10 {
            wal.append_entry(partition, index, 2, &[index as u8; 10])
                .expect("append");
        }
    }
    // The boundary's validation refuses, changing nothing.
    assert!(matches!(
        wal.append(&[
            Write::Entry {
                partition: keep,
                index: 11,
                term: 2,
                payload: b"x",
            },
            Write::InstallSnapshot {
                partition: keep,
                index: 6,
                term: 2,
                floor_meta: b"k",
            },
        ]),
        Err(Error::InstallAfterLogWrite { partition }) if partition == keep
    ));
    wal.compact_to(beyond, 4, b"compacted").expect("compact");
    assert!(matches!(
        wal.install_snapshot(beyond, 2, 2, b"below"),
        Err(Error::BelowCompactionFloor { .. })
    ));
    wal.install_snapshot(keep, 6, 2, b"keep meta")
        .expect("matching boundary");
    wal.install_snapshot(conflict, 6, 3, b"conflict meta")
        .expect("conflicting boundary");
    wal.install_snapshot(beyond, 25, 4, b"beyond meta")
        .expect("boundary beyond the log");
    // A boundary exactly at the floor (the floor's own index and term) still sets the meta.
    wal.install_snapshot(keep, 6, 2, b"keep meta, again")
        .expect("boundary at the floor");
    // The log continues after the boundary (the matching suffix stays).
    wal.append_entry(keep, 11, 3, b"k")
        .expect("after the kept suffix");
    wal.append_entry(conflict, 7, 3, b"c")
        .expect("after a conflict");
    wal.append_entry(beyond, 26, 4, b"b")
        .expect("after the boundary");
    wal.sync().expect("sync");
    let check = |wal: &Wal| {
        let info = |partition| {
            let info = wal.partition(partition).expect("info");
            (info.first_index, info.last_index, info.last_term)
        };
        assert_eq!(info(keep), (7, 11, 3));
        assert_eq!(&wal.entry(keep, 7).expect("kept")[..], &[7u8; 10][..]);
        assert_eq!(wal.term_at(keep, 6).expect("floor term"), 2);
        assert_eq!(info(conflict), (7, 7, 3));
        assert_eq!(wal.term_at(conflict, 6).expect("floor term"), 3);
        assert_eq!(info(beyond), (26, 26, 4));
        assert_eq!(wal.term_at(beyond, 25).expect("floor term"), 4);
        let meta = |partition| wal.floor_meta(partition).expect("meta");
        assert_eq!(&meta(keep)[..], b"keep meta, again");
        assert_eq!(&meta(conflict)[..], b"conflict meta");
        assert_eq!(&meta(beyond)[..], b"beyond meta");
    };
    check(&wal);
    let wal = reopen(wal, dir.path(), factory);
    check(&wal);
}

fn term_vote_and_commit_index_reopen(factory: Factory) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut wal = open(dir.path(), factory);
    wal.set_term_vote(
        p(1),
        TermVote {
            term: 3,
            vote: Some(2),
        },
    )
    .expect("term and vote");
    wal.set_term_vote(
        p(1),
        TermVote {
            term: 4,
            vote: None,
        },
    )
    .expect("term and vote");
    wal.set_commit_index(p(1), 17).expect("commit");
    wal.set_term_vote(
        p(2),
        TermVote {
            term: 1,
            vote: Some(0),
        },
    )
    .expect("term and vote");
    wal.sync().expect("sync");
    let wal = reopen(wal, dir.path(), factory);
    let one = wal.partition(p(1)).expect("info");
    assert_eq!(
        one.term_vote,
        Some(TermVote {
            term: 4,
            vote: None
        })
    );
    assert_eq!(one.commit_index, Some(17));
    let two = wal.partition(p(2)).expect("info");
    assert_eq!(
        two.term_vote,
        Some(TermVote {
            term: 1,
            vote: Some(0)
        })
    );
    assert_eq!(two.commit_index, None);
}

fn delete_partition_reopen(factory: Factory) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut wal = open(dir.path(), factory);
    wal.append_entry(p(1), 1, 1, b"a").expect("append");
    wal.compact_to(p(1), 2, b"meta").expect("compact");
    wal.append_entry(p(2), 1, 1, b"b").expect("append");
    wal.delete_partition(p(1)).expect("delete");
    wal.sync().expect("sync");
    let mut wal = reopen(wal, dir.path(), factory);
    assert!(matches!(
        wal.partition(p(1)),
        Err(Error::UnknownPartition { .. })
    ));
    assert_eq!(wal.partitions().expect("list").len(), 1);
    // A deleted partition can start over.
    wal.append_entry(p(1), 5, 2, b"again").expect("append");
    wal.sync().expect("sync");
    let wal = reopen(wal, dir.path(), factory);
    assert_eq!(wal.partition(p(1)).expect("info").first_index, 5);
    // The deletion forgot the floor and its meta.
    assert_eq!(&wal.floor_meta(p(1)).expect("meta")[..], b"");
}

fn pipeline_many_appends_in_flight(factory: Factory) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut wal = open(dir.path(), factory);
    if wal.backend_name() == "blocking" {
        assert!(
            wal.completion_fd().is_some(),
            "the blocking backend offers a completion fd"
        );
    }
    let mut tickets = Vec::new();
    let mut durable_seen = Vec::new();
    for turn in 0..200u64 {
        let mut writes = Vec::new();
        let payloads: Vec<Vec<u8>> = (0..8).map(|i| vec![(turn + i) as u8; 200]).collect();
        for (i, payload) in payloads.iter().enumerate() {
            writes.push(Write::Entry {
                partition: p(i as u32),
                index: turn + 1,
                term: 1,
                payload,
            });
        }
        tickets.push(wal.append(&writes).expect("append"));
        wal.submit().expect("submit");
        durable_seen.push(wal.poll_durable().expect("poll"));
    }
    let end = wal.sync().expect("sync");
    assert_eq!(end, *tickets.last().expect("tickets"));
    // Durability only moves forward.
    assert!(durable_seen.windows(2).all(|w| w[0] <= w[1]));
    for part in 0..8 {
        assert_eq!(wal.partition(p(part)).expect("info").last_index, 200);
    }
}

fn random_workload_with_reopens(factory: Factory) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ops = workload(0xC0FFEE, 1500, 6, 700);
    let mut rng = Rng(7);
    let mut model = Model::default();
    let mut wal = open(dir.path(), factory);
    for (round, chunk) in ops.chunks(300).enumerate() {
        run_ops(&mut wal, chunk, &mut rng, &mut model);
        assert_matches(&wal, &model, &format!("round {round} before reopen"));
        wal = reopen(wal, dir.path(), factory);
        assert_matches(&wal, &model, &format!("round {round} after reopen"));
    }
    // The log rotated through many segments and reclaimed old ones.
    let seqs = wal.segment_seqs();
    assert!(seqs[0] > 1, "old segments were reclaimed: {seqs:?}");
}

fn reads_borrow_the_mapping(factory: Factory) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut wal = open(dir.path(), factory);
    wal.append_entry(p(1), 1, 1, &[42; 3000]).expect("append");
    wal.sync().expect("sync");
    let first = wal.entry(p(1), 1).expect("read");
    let second = wal.entry(p(1), 1).expect("read");
    // Both reads point at the same mapped bytes: no copy was made.
    assert_eq!(first.as_ptr(), second.as_ptr());
    drop(wal);
    // The bytes stay valid after the log is gone (they own the mapping).
    assert_eq!(&first[..], &[42; 3000][..]);
    let _ = small_config;
}
