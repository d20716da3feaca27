//! Bad input gets a typed error and changes nothing.

use std::path::Path;

use kommander_wal::backend::BackendChoice;
use kommander_wal::{Error, PartitionId, Wal, WalConfig, Write};

use crate::common::small_config;

fn p(id: u32) -> PartitionId {
    PartitionId(id)
}

fn open(dir: &Path) -> kommander_wal::Result<Wal> {
    Wal::open(dir, small_config(BackendChoice::Blocking))
}

/// A log with partition 1 holding entries 5..=10 (compacted below 5, floor meta `floor`),
/// durable.
fn prepared(dir: &Path) -> Wal {
    let mut wal = open(dir).expect("open");
    for index in 1..=10 {
        wal.append_entry(p(1), index, 1, b"entry").expect("append");
    }
    wal.compact_to(p(1), 5, b"floor").expect("compact");
    wal.sync().expect("sync");
    wal
}

/// Asserts a call failed without changing the log.
fn unchanged(wal: &Wal, before: &[(PartitionId, kommander_wal::PartitionInfo)], lsn: u64) {
    assert_eq!(wal.partitions().expect("list"), before);
    assert_eq!(wal.next_lsn().0, lsn);
    assert_eq!(&wal.floor_meta(p(1)).expect("meta")[..], b"floor");
}

#[test]
fn reading_a_missing_partition_or_index() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut wal = prepared(dir.path());
    assert!(
        matches!(wal.entry(p(2), 1), Err(Error::UnknownPartition { partition }) if partition == p(2))
    );
    assert!(matches!(
        wal.term_at(p(2), 1),
        Err(Error::UnknownPartition { .. })
    ));
    assert!(matches!(
        wal.partition(p(2)),
        Err(Error::UnknownPartition { .. })
    ));
    for index in [0, 4, 11, u64::MAX] {
        match wal.entry(p(1), index) {
            Err(Error::IndexOutOfRange {
                first_index,
                last_index,
                ..
            }) => assert_eq!((first_index, last_index), (5, 10)),
            other => panic!("index {index}: {other:?}"),
        }
    }
    assert!(matches!(
        wal.term_at(p(1), 3),
        Err(Error::IndexOutOfRange { .. })
    ));
    let mut out = vec![];
    assert!(wal.entries(p(1), 8..12, &mut out).is_err());
    assert!(out.is_empty(), "a failed range read returns nothing");
    // Appended but not yet durable.
    wal.append_entry(p(1), 11, 1, b"pending").expect("append");
    assert!(matches!(
        wal.entry(p(1), 11),
        Err(Error::NotDurable { index: 11, .. })
    ));
    wal.sync().expect("sync");
    assert_eq!(&wal.entry(p(1), 11).expect("durable now")[..], b"pending");
}

#[test]
fn truncating_below_the_compaction_floor() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut wal = prepared(dir.path());
    let before = wal.partitions().expect("list");
    let lsn = wal.next_lsn().0;
    match wal.truncate_after(p(1), 2) {
        Err(Error::BelowCompactionFloor { first_index, .. }) => assert_eq!(first_index, 5),
        other => panic!("{other:?}"),
    }
    unchanged(&wal, &before, lsn);
    // Truncating to exactly the floor (index first - 1) is allowed: it empties the log.
    wal.truncate_after(p(1), 4).expect("truncate to the floor");
    assert_eq!(wal.partition(p(1)).expect("info").last_index, 4);
}

#[test]
fn records_over_the_size_limit_and_batches_are_all_or_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut wal = prepared(dir.path());
    let before = wal.partitions().expect("list");
    let lsn = wal.next_lsn().0;
    let max = small_config(BackendChoice::Blocking).record_bytes_max;
    let big = vec![0u8; max + 1];
    match wal.append_entry(p(1), 11, 1, &big) {
        Err(Error::RecordTooLarge { len, max: limit }) => assert_eq!((len, limit), (max + 1, max)),
        other => panic!("{other:?}"),
    }
    unchanged(&wal, &before, lsn);
    // A valid write followed by a bad one: neither is applied.
    let result = wal.append(&[
        Write::Entry {
            partition: p(1),
            index: 11,
            term: 1,
            payload: b"fine",
        },
        Write::Entry {
            partition: p(1),
            index: 13,
            term: 1,
            payload: b"gap",
        },
    ]);
    assert!(matches!(
        result,
        Err(Error::NotContiguous {
            index: 13,
            expected_index: 12,
            ..
        })
    ));
    unchanged(&wal, &before, lsn);
    // Exactly the limit is fine.
    wal.append_entry(p(1), 11, 1, &vec![1u8; max])
        .expect("at the limit");
}

#[test]
fn floor_metas_over_the_size_limit_change_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut wal = prepared(dir.path());
    let before = wal.partitions().expect("list");
    let lsn = wal.next_lsn().0;
    let max = small_config(BackendChoice::Blocking).floor_meta_bytes_max;
    let big = vec![7u8; max + 1];
    let too_large = |result: kommander_wal::Result<kommander_wal::Lsn>| match result {
        Err(Error::FloorMetaTooLarge { len, max: limit }) => {
            assert_eq!((len, limit), (max + 1, max));
        }
        other => panic!("{other:?}"),
    };
    too_large(wal.compact_to(p(1), 8, &big));
    unchanged(&wal, &before, lsn);
    // Even where the meta would be ignored (at the floor).
    too_large(wal.compact_to(p(1), 5, &big));
    unchanged(&wal, &before, lsn);
    too_large(wal.install_snapshot(p(1), 8, 1, &big));
    unchanged(&wal, &before, lsn);
    // A valid write before it in the batch is not applied either.
    too_large(wal.append(&[
        Write::TermVote {
            partition: p(1),
            state: kommander_wal::TermVote {
                term: 9,
                vote: None,
            },
        },
        Write::CompactTo {
            partition: p(1),
            index: 8,
            floor_meta: &big,
        },
    ]));
    unchanged(&wal, &before, lsn);
    // Exactly the limit is fine, and kept through a reopen.
    wal.compact_to(p(1), 8, &big[..max]).expect("at the limit");
    wal.sync().expect("sync");
    drop(wal);
    let wal = open(dir.path()).expect("reopen");
    assert_eq!(&wal.floor_meta(p(1)).expect("meta")[..], &big[..max]);
}

#[test]
fn a_batch_is_validated_as_the_writes_before_it_apply() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut wal = prepared(dir.path());
    let term_vote = kommander_wal::TermVote {
        term: 1,
        vote: None,
    };
    wal.set_term_vote(p(2), term_vote).expect("term and vote");
    let before = wal.partitions().expect("list");
    let lsn = wal.next_lsn().0;
    // A truncation of a partition with no entry leaves its first index at 1: the entry after
    // the truncation point is refused in the batch as it is after it.
    let result = wal.append(&[
        Write::TruncateAfter {
            partition: p(2),
            index: 5,
        },
        Write::Entry {
            partition: p(2),
            index: 6,
            term: 1,
            payload: b"x",
        },
    ]);
    assert!(
        matches!(
            result,
            Err(Error::NotContiguous {
                index: 6,
                expected_index: 1,
                ..
            })
        ),
        "{result:?}"
    );
    unchanged(&wal, &before, lsn);
    wal.truncate_after(p(2), 5).expect("truncate");
    assert_eq!(wal.partition(p(2)).expect("info").first_index, 1);
    assert!(matches!(
        wal.append_entry(p(2), 6, 1, b"x"),
        Err(Error::NotContiguous {
            expected_index: 1,
            ..
        })
    ));
    wal.append_entry(p(2), 1, 1, b"x")
        .expect("at the first index");
}

#[test]
fn control_records_for_unknown_partitions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut wal = prepared(dir.path());
    let before = wal.partitions().expect("list");
    let lsn = wal.next_lsn().0;
    assert!(matches!(
        wal.truncate_after(p(9), 1),
        Err(Error::UnknownPartition { .. })
    ));
    assert!(matches!(
        wal.compact_to(p(9), 1, b""),
        Err(Error::UnknownPartition { .. })
    ));
    assert!(matches!(
        wal.floor_meta(p(9)),
        Err(Error::UnknownPartition { .. })
    ));
    assert!(matches!(
        wal.delete_partition(p(9)),
        Err(Error::UnknownPartition { .. })
    ));
    assert!(matches!(
        wal.append_entry(p(1), 20, 1, b"x"),
        Err(Error::NotContiguous { .. })
    ));
    assert!(matches!(
        wal.append_entry(p(2), 0, 1, b"x"),
        Err(Error::NotContiguous { .. })
    ));
    unchanged(&wal, &before, lsn);
}

#[test]
fn too_many_partitions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = WalConfig {
        partitions_max: 3,
        ..small_config(BackendChoice::Blocking)
    };
    let mut wal = Wal::open(dir.path(), config).expect("open");
    for id in 0..3 {
        wal.set_commit_index(p(id), 1).expect("within the limit");
    }
    assert!(matches!(
        wal.set_commit_index(p(3), 1),
        Err(Error::TooManyPartitions { max: 3 })
    ));
    assert_eq!(wal.partitions().expect("list").len(), 3);
}

#[test]
fn a_directory_that_is_not_a_wal_is_left_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("notes.txt"), b"mine").expect("write");
    match open(dir.path()) {
        Err(Error::NotAWal { reason, .. }) => assert!(reason.contains("notes.txt"), "{reason}"),
        other => panic!("{other:?}"),
    }
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, ["notes.txt"], "nothing was created");
    // A marker that is not ours.
    let other = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        other.path().join(kommander_wal::MARKER_NAME),
        b"something else",
    )
    .expect("write");
    assert!(matches!(open(other.path()), Err(Error::NotAWal { .. })));
    // A file where the directory should be.
    let file = dir.path().join("notes.txt");
    assert!(matches!(open(&file), Err(Error::Io { .. })));
}

#[test]
fn a_second_open_of_one_directory_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wal = open(dir.path()).expect("first open");
    match open(dir.path()) {
        Err(Error::Locked { dir: locked }) => assert_eq!(locked, dir.path()),
        other => panic!("{other:?}"),
    }
    drop(wal);
    open(dir.path()).expect("the lock is released on drop");
}

#[test]
fn invalid_configs_name_their_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = small_config(BackendChoice::Blocking);
    let cases: Vec<(&str, WalConfig)> = vec![
        (
            "segment_bytes",
            WalConfig {
                segment_bytes: 100_000,
                ..base.clone()
            },
        ),
        (
            "segment_bytes",
            WalConfig {
                segment_bytes: 4096,
                ..base.clone()
            },
        ),
        (
            "batch_bytes_max",
            WalConfig {
                batch_bytes_max: 5000,
                ..base.clone()
            },
        ),
        (
            "batch_bytes_max",
            WalConfig {
                batch_bytes_max: 64 << 10,
                ..base.clone()
            },
        ),
        (
            "record_bytes_max",
            WalConfig {
                record_bytes_max: 0,
                ..base.clone()
            },
        ),
        (
            "record_bytes_max",
            WalConfig {
                record_bytes_max: 16 << 10,
                ..base.clone()
            },
        ),
        (
            "record_bytes_max",
            WalConfig {
                record_bytes_max: usize::MAX,
                ..base.clone()
            },
        ),
        (
            "floor_meta_bytes_max",
            WalConfig {
                floor_meta_bytes_max: (16 << 10) - 64,
                ..base.clone()
            },
        ),
        (
            "floor_meta_bytes_max",
            WalConfig {
                floor_meta_bytes_max: usize::MAX,
                ..base.clone()
            },
        ),
        (
            "inflight_batches_max",
            WalConfig {
                inflight_batches_max: 0,
                ..base.clone()
            },
        ),
        (
            "inflight_batches_max",
            WalConfig {
                inflight_batches_max: 65,
                ..base.clone()
            },
        ),
        (
            "partitions_max",
            WalConfig {
                partitions_max: 0,
                ..base.clone()
            },
        ),
        (
            "segments_prepared_ahead_max",
            WalConfig {
                segments_prepared_ahead_max: 0,
                ..base.clone()
            },
        ),
        (
            "segments_recycled_max",
            WalConfig {
                segments_recycled_max: 65,
                ..base.clone()
            },
        ),
        (
            "segments_before_rewrite",
            WalConfig {
                segments_before_rewrite: 0,
                ..base.clone()
            },
        ),
        (
            "segments_before_rewrite",
            WalConfig {
                segments_before_rewrite: 1025,
                ..base.clone()
            },
        ),
    ];
    for (field, config) in cases {
        match Wal::open(dir.path().join("never"), config) {
            Err(Error::InvalidConfig { field: named, .. }) => assert_eq!(named, field),
            other => panic!("{field}: {other:?}"),
        }
        assert!(!dir.path().join("never").exists(), "nothing was created");
    }
    WalConfig::default()
        .validate()
        .expect("the default is valid");
}

/// Validation previews each partition a batch touches (in the partition's own state, tagged
/// with the batch): at many partitions, each touched twice per batch, a refused batch leaves
/// nothing behind for the next one, and compactions in the batch are previewed too.
#[test]
fn many_partitions_touched_twice_per_batch_are_validated_batch_by_batch() {
    const PARTITIONS: u32 = 600;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = WalConfig {
        partitions_max: PARTITIONS as usize,
        segment_bytes: 1 << 20,
        batch_bytes_max: 64 << 10,
        ..small_config(BackendChoice::Blocking)
    };
    let mut wal = Wal::open(dir.path(), config.clone()).expect("open");
    let batch = |round: u64, bad: Option<u32>| -> Vec<Write<'static>> {
        let mut writes = Vec::new();
        for id in 1..=PARTITIONS {
            for step in 0..2 {
                let index = 2 * round + step + 1;
                writes.push(Write::Entry {
                    partition: p(id),
                    // The bad partition's second entry repeats its first.
                    index: if bad == Some(id) && step == 1 {
                        index - 1
                    } else {
                        index
                    },
                    term: 1,
                    payload: b"entry",
                });
            }
            if round > 0 {
                // Compact to the batch's first entry: the second must still follow it.
                writes.push(Write::CompactTo {
                    partition: p(id),
                    index: 2 * round + 1,
                    floor_meta: b"",
                });
            }
        }
        writes
    };
    for round in 0..4 {
        let before = wal.partitions().expect("list");
        let lsn = wal.next_lsn().0;
        let bad = PARTITIONS - round as u32 * 7;
        match wal.append(&batch(round, Some(bad))) {
            Err(Error::NotContiguous {
                partition, index, ..
            }) => assert_eq!((partition, index), (p(bad), 2 * round + 1)),
            other => panic!("round {round}: the repeated index is refused: {other:?}"),
        }
        assert_eq!(wal.partitions().expect("list"), before, "round {round}");
        assert_eq!(wal.next_lsn().0, lsn, "round {round}");
        wal.append(&batch(round, None))
            .unwrap_or_else(|e| panic!("round {round}: the same batch without the repeat: {e}"));
        wal.sync().expect("sync");
    }
    let check = |wal: &Wal| {
        for id in 1..=PARTITIONS {
            let info = wal.partition(p(id)).expect("partition");
            assert_eq!(
                (info.first_index, info.last_index),
                (7, 8),
                "partition {id}"
            );
        }
    };
    check(&wal);
    drop(wal);
    check(&Wal::open(dir.path(), config).expect("reopen"));
}
