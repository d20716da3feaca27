//! `kommander_wal::inspect`: the report matches what was written and what recovery decides,
//! and inspecting changes nothing (not even with the log open).

use std::path::{Path, PathBuf};

use kommander_wal::backend::BackendChoice;
use kommander_wal::backend::sim::SimDisk;
use kommander_wal::inspect::{
    Damage, DamageAction, Floor, InspectOptions, MarkerState, PartitionReport, RecoveryVerdict,
    SegmentStatus, TermVoteReport,
};
use kommander_wal::{
    Error, MARKER_NAME, PartitionId, PartitionInfo, TermVote, Wal, WalConfig, inspect,
};

use crate::common::{Model, Rng, frames, patch, run_ops, segments, small_config, workload};

fn p(id: u32) -> PartitionId {
    PartitionId(id)
}

/// Blocking backend, preparation inline: nothing writes in the background while a test
/// compares bytes.
fn config() -> WalConfig {
    WalConfig {
        prepare_segments_in_background: false,
        ..small_config(BackendChoice::Blocking)
    }
}

fn open(dir: &Path) -> kommander_wal::Result<Wal> {
    Wal::open(dir, config())
}

fn inspect_default(dir: &Path) -> kommander_wal::InspectReport {
    inspect(dir, &InspectOptions::default()).expect("inspect")
}

/// Every file of a directory with its bytes, by name.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("list")
        .map(|entry| {
            let path = entry.expect("entry").path();
            let name = path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            (name, std::fs::read(&path).expect("read"))
        })
        .collect();
    files.sort();
    files
}

/// Inspects `dir` and asserts no file was created, removed or changed.
fn inspect_unchanged(dir: &Path) -> kommander_wal::InspectReport {
    let before = snapshot(dir);
    let report = inspect_default(dir);
    assert!(snapshot(dir) == before, "inspect changed {dir:?}");
    report
}

/// Offsets of the valid frames of a segment file.
fn frame_offsets(path: &Path) -> Vec<u64> {
    frames(path).into_iter().map(|(offset, _)| offset).collect()
}

/// The report's row of partition `id` says what the reopened log says of it (`meta`: its
/// floor meta).
fn assert_row_matches(row: &PartitionReport, info: &PartitionInfo, meta: &[u8], id: PartitionId) {
    let prefix: String = meta.iter().take(8).map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        (row.floor_meta.len, &row.floor_meta.prefix_hex),
        (meta.len() as u64, &prefix),
        "partition {id}"
    );
    assert_eq!(
        (
            row.first_index,
            row.last_index,
            row.last_term,
            row.commit_index
        ),
        (
            info.first_index,
            info.last_index,
            info.last_term,
            info.commit_index
        ),
        "partition {id}"
    );
}

fn active_path(wal: &Wal, dir: &Path) -> PathBuf {
    let seq = *wal.segment_seqs().last().expect("an active segment");
    dir.join(format!("{seq:016x}.wal"))
}

/// One entry per frame for partition 1, entries `1..=count`.
fn one_frame_per_entry(dir: &Path, count: u64) {
    let mut wal = open(dir).expect("open");
    for index in 1..=count {
        wal.append_entry(p(1), index, 1, &[7; 300]).expect("append");
        wal.sync().expect("sync");
    }
}

#[test]
fn healthy_wal_with_several_partitions_is_reported_exactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut wal = open(dir.path()).expect("open");
    // 1: entries 1..=40 over terms 1..=3, a term and vote, and a commit index.
    wal.set_term_vote(
        p(1),
        TermVote {
            term: 3,
            vote: Some(2),
        },
    )
    .expect("term and vote");
    for index in 1..=40 {
        wal.append_entry(p(1), index, 1 + index / 15, &[1; 100])
            .expect("append");
    }
    wal.set_commit_index(p(1), 38).expect("commit");
    wal.sync().expect("sync");
    // 2: entries 1..=30 (term 2), compacted to 11: floor 10 @ 2.
    for index in 1..=30 {
        wal.append_entry(p(2), index, 2, &[2; 50]).expect("append");
    }
    wal.compact_to(p(2), 11, b"floor meta of p2")
        .expect("compact");
    wal.set_commit_index(p(2), 25).expect("commit");
    wal.sync().expect("sync");
    // 3: written, then deleted.
    for index in 1..=5 {
        wal.append_entry(p(3), index, 1, &[3; 10]).expect("append");
    }
    wal.delete_partition(p(3)).expect("delete");
    // 4: entries 1..=20, truncated after 15, then 16..=17 at term 4.
    for index in 1..=20 {
        wal.append_entry(p(4), index, 3, &[4; 20]).expect("append");
    }
    wal.truncate_after(p(4), 15).expect("truncate");
    wal.append_entry(p(4), 16, 4, &[4; 20]).expect("append");
    wal.append_entry(p(4), 17, 4, &[4; 20]).expect("append");
    // 5: a term and vote only.
    wal.set_term_vote(
        p(5),
        TermVote {
            term: 1,
            vote: None,
        },
    )
    .expect("term and vote");
    wal.sync().expect("sync");
    let records = wal.next_lsn().0;
    drop(wal);

    let report = inspect_unchanged(dir.path());
    assert_eq!(report.marker, MarkerState::Valid);
    assert_eq!(report.recovery, RecoveryVerdict::Opens);
    assert!(report.damages.is_empty(), "{:?}", report.damages);
    assert_eq!(report.totals.records, records);
    assert_eq!(report.totals.frames, 3, "one frame per sync");
    assert_eq!(
        (report.totals.first_lsn, report.totals.last_lsn),
        (Some(0), Some(records - 1))
    );
    let written: Vec<_> = report.segments.iter().filter(|s| s.frames > 0).collect();
    assert_eq!(written.len(), 1, "{:?}", report.segments);
    assert_eq!(written[0].status, SegmentStatus::Ok);
    assert!(written[0].bytes_used > 4096 && written[0].bytes_used < written[0].size_bytes);
    assert!(
        report.segments[1..]
            .iter()
            .all(|s| s.status == SegmentStatus::Prepared && s.frames == 0),
        "{:?}",
        report.segments
    );

    let ids: Vec<u32> = report.partitions.iter().map(|p| p.id.0).collect();
    assert_eq!(ids, [1, 2, 3, 4, 5]);
    let [p1, p2, p3, p4, p5] = &report.partitions[..] else {
        panic!("five partitions");
    };
    assert_eq!(
        (
            p1.first_index,
            p1.last_index,
            p1.last_term,
            p1.entries,
            p1.entry_bytes
        ),
        (1, 40, 3, 40, 4000)
    );
    assert_eq!(
        p1.term_vote,
        Some(TermVoteReport {
            term: 3,
            vote: Some(2)
        })
    );
    assert_eq!((p1.commit_index, p1.compaction_floor), (Some(38), None));
    assert_eq!(
        p1.oldest_live_lsn,
        Some(0),
        "its term and vote are the first record"
    );
    assert_eq!(
        (p2.first_index, p2.last_index, p2.entries, p2.commit_index),
        (11, 30, 20, Some(25))
    );
    assert_eq!(p2.compaction_floor, Some(Floor { index: 10, term: 2 }));
    assert_eq!(
        (p2.floor_meta.len, p2.floor_meta.prefix_hex.as_str()),
        (16, "666c6f6f72206d65"),
        "the meta's length and its first 8 bytes (\"floor me\") in hex"
    );
    assert_eq!(p1.floor_meta.len, 0);
    assert!(p3.deleted && p3.entries == 0 && p3.term_vote.is_none());
    assert_eq!(
        (p4.first_index, p4.last_index, p4.last_term, p4.entries),
        (1, 17, 4, 17)
    );
    assert!(!p4.deleted && p4.compaction_floor.is_none());
    assert_eq!(
        (p5.entries, p5.term_vote),
        (
            0,
            Some(TermVoteReport {
                term: 1,
                vote: None
            })
        )
    );
    assert_eq!(
        (report.totals.partitions, report.totals.partitions_deleted),
        (4, 1)
    );
    assert_eq!(report.totals.entries, 40 + 20 + 17);

    // The same numbers as the log itself reports after recovery.
    let wal = open(dir.path()).expect("reopen");
    for (id, info) in wal.partitions().expect("partitions") {
        let row = report
            .partitions
            .iter()
            .find(|r| r.id == id)
            .expect("partition in the report");
        let meta = wal.floor_meta(id).expect("meta");
        assert_row_matches(row, &info, &meta, id);
    }
}

#[test]
fn a_random_workload_over_many_segments_matches_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The simulated disk completes writes in order on this thread: which segments are still
    // live at the end (reclamation follows durability) is the same in every run.
    let disk = SimDisk::new(dir.path()).expect("disk");
    let mut wal = Wal::open(
        dir.path(),
        WalConfig {
            prepare_segments_in_background: false,
            ..small_config(BackendChoice::Simulated(disk))
        },
    )
    .expect("open");
    let ops = workload(21, 1200, 6, 600);
    run_ops(&mut wal, &ops, &mut Rng(5), &mut Model::default());
    let expected = wal.partitions().expect("partitions");
    let metas: Vec<_> = expected
        .iter()
        .map(|(id, _)| wal.floor_meta(*id).expect("meta"))
        .collect();
    assert!(
        metas.iter().any(|meta| meta.len() > 8),
        "the workload leaves metas longer than the report shows"
    );
    let seqs = wal.segment_seqs();
    let report = inspect_unchanged(dir.path());
    drop(wal);
    assert!(seqs.len() >= 3, "the workload spans segments: {seqs:?}");
    // A recycled active segment ends where its earlier life's bytes begin: recovery zeroes
    // them as a torn tail, and the report says what they are.
    for damage in &report.damages {
        assert!(
            matches!(damage.action, DamageAction::TornTail { .. })
                && damage.segment == *seqs.last().expect("active")
                && damage.reason.contains("earlier life"),
            "{damage:?}"
        );
    }
    let live: Vec<_> = report.partitions.iter().filter(|p| !p.deleted).collect();
    assert_eq!(live.len(), expected.len());
    for ((row, (id, info)), meta) in live.iter().zip(&expected).zip(&metas) {
        assert_eq!(row.id, *id);
        assert_row_matches(row, info, meta, *id);
        assert_eq!(
            row.term_vote.map(|h| (h.term, h.vote)),
            info.term_vote.map(|h| (h.term, h.vote))
        );
    }
    // Data segments are the log's, their LSN ranges contiguous.
    let with_frames: Vec<_> = report.segments.iter().filter(|s| s.frames > 0).collect();
    assert_eq!(
        with_frames.iter().map(|s| s.seq).collect::<Vec<_>>(),
        seqs,
        "segments holding data"
    );
    for pair in with_frames.windows(2) {
        assert_eq!(pair[0].last_lsn.map(|l| l + 1), pair[1].first_lsn);
    }
    assert_eq!(
        report.totals.frames,
        report.segments.iter().map(|s| s.frames).sum::<u64>()
    );
}

#[test]
fn a_torn_tail_is_reported_and_left_in_place() {
    for (frame_from_end, dropped) in [(1usize, 0u64), (2, 1)] {
        let dir = tempfile::tempdir().expect("tempdir");
        one_frame_per_entry(dir.path(), 8);
        let (seq, active) = segments(dir.path())
            .into_iter()
            .find(|(_, path)| frame_offsets(path).len() == 8)
            .expect("active segment");
        // Tear a frame: the end of its payload never reached the disk.
        let found = frame_offsets(&active);
        let torn = found[found.len() - frame_from_end];
        patch(&active, torn + 200, &[0; 200]);

        let report = inspect_unchanged(dir.path());
        let damage = Damage {
            segment: seq,
            offset: torn,
            reason: "frame payload CRC mismatch".into(),
            action: DamageAction::TornTail {
                frames_dropped: dropped,
            },
        };
        assert_eq!(report.damages, std::slice::from_ref(&damage));
        let row = report
            .segments
            .iter()
            .find(|s| s.seq == seq)
            .expect("segment");
        assert_eq!(row.status, SegmentStatus::Damaged(damage));
        assert_eq!(row.frames, 8 - frame_from_end as u64);
        assert_eq!(row.bytes_used, torn);
        let RecoveryVerdict::OpensAfterRepair { repairs } = &report.recovery else {
            panic!("a torn tail is repaired: {:?}", report.recovery);
        };
        assert_eq!(repairs.len(), 1, "{repairs:?}");
        assert!(
            repairs[0].contains(&format!("segment {seq:016x}.wal")),
            "{repairs:?}"
        );
        // Inspecting again finds the same: the tail was not zeroed.
        assert_eq!(report, inspect_unchanged(dir.path()));
        // Recovery agrees with the report.
        let last = 8 - frame_from_end as u64;
        assert_eq!(report.partitions[0].last_index, last);
        let wal = open(dir.path()).expect("recovery drops the torn tail");
        assert_eq!(wal.partition(p(1)).expect("partition").last_index, last);
    }
}

#[test]
fn corrupt_frames_are_fatal_and_every_one_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut wal = open(dir.path()).expect("open");
    for index in 1..=400u64 {
        wal.append_entry(p((index % 3) as u32), index / 3 + 1, 1, &[5; 400])
            .expect("append");
        if index % 4 == 0 {
            wal.sync().expect("sync");
        }
    }
    wal.sync().expect("sync");
    // At least four frames in the active segment.
    let mut next = 1000;
    while frame_offsets(&active_path(&wal, dir.path())).len() < 4 {
        wal.append_entry(p(1000), next, 1, &[5; 400])
            .expect("append");
        wal.sync().expect("sync");
        next += 1;
    }
    let seqs = wal.segment_seqs();
    drop(wal);
    assert!(seqs.len() >= 3, "{seqs:?}");
    // A bit flip in a sealed segment, and a damaged frame in the middle of the active one.
    let sealed = &segments(dir.path())[0];
    let sealed_frames = frame_offsets(&sealed.1);
    let sealed_offset = sealed_frames[1];
    patch(&sealed.1, sealed_offset + 100, &[0xA5]);
    let active = segments(dir.path())
        .into_iter()
        .find(|(seq, _)| seq == seqs.last().expect("active"))
        .expect("active file");
    let active_frames = frame_offsets(&active.1);
    assert!(active_frames.len() >= 4, "{active_frames:?}");
    let active_offset = active_frames[1];
    patch(&active.1, active_offset + 80, &[0xA5]);

    let report = inspect_unchanged(dir.path());
    let fatal: Vec<_> = report
        .damages
        .iter()
        .map(|d| (d.segment, d.offset, d.action))
        .collect();
    assert_eq!(
        fatal,
        [
            (sealed.0, sealed_offset, DamageAction::Corrupt),
            (active.0, active_offset, DamageAction::Corrupt)
        ]
    );
    assert!(report.damages[0].reason.contains("sealed segment"));
    assert!(
        report.damages[1].reason.contains("followed by"),
        "{:?}",
        report.damages[1]
    );
    assert_eq!(report.totals.damages_fatal, 2);
    // The scan goes on past each damage: only the damaged frames are missing.
    let row = |seq: u64| {
        report
            .segments
            .iter()
            .find(|s| s.seq == seq)
            .expect("segment")
    };
    assert_eq!(row(sealed.0).frames, sealed_frames.len() as u64 - 1);
    assert_eq!(row(active.0).frames, active_frames.len() as u64 - 1);
    assert!(matches!(row(sealed.0).status, SegmentStatus::Damaged(_)));
    // The verdict is recovery's own error, for the first damage.
    let error = match open(dir.path()) {
        Err(error @ Error::Corrupt { .. }) => error,
        other => panic!("expected corruption, got {other:?}"),
    };
    assert_eq!(
        report.recovery,
        RecoveryVerdict::Refuses {
            error: error.to_string()
        }
    );
    assert!(
        error.to_string().contains(&format!(
            "segment {:016x}.wal is corrupt at offset {sealed_offset}",
            sealed.0
        )),
        "{error}"
    );
}

#[test]
fn missing_segments_and_half_prepared_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut wal = open(dir.path()).expect("open");
    for index in 1..=300 {
        wal.append_entry(p(1), index, 1, &[6; 500]).expect("append");
        if index % 8 == 0 {
            wal.sync().expect("sync");
        }
    }
    wal.sync().expect("sync");
    drop(wal);
    let segs = segments(dir.path());
    // The newest segment is a prepared one: a bad header there is discarded by recovery.
    let (newest, newest_path) = segs.last().expect("segments");
    assert!(frame_offsets(newest_path).is_empty());
    patch(newest_path, 0, b"XXXX");
    let report = inspect_unchanged(dir.path());
    assert_eq!(
        report.damages.iter().map(|d| d.action).collect::<Vec<_>>(),
        [DamageAction::DiscardSegment]
    );
    assert!(matches!(
        &report.recovery,
        RecoveryVerdict::OpensAfterRepair { repairs } if repairs[0].contains("half-prepared")
    ));
    // A segment missing in the middle is fatal.
    assert!(segs.len() >= 4, "{segs:?}");
    std::fs::remove_file(&segs[1].1).expect("remove");
    let report = inspect_unchanged(dir.path());
    assert_eq!(report.damages[0].segment, segs[1].0);
    assert_eq!(report.damages[0].action, DamageAction::MissingSegment);
    let RecoveryVerdict::Refuses { error } = &report.recovery else {
        panic!("a missing segment is fatal: {:?}", report.recovery);
    };
    assert!(error.contains("missing"), "{error}");
    assert!(matches!(
        open(dir.path()),
        Err(Error::MissingSegment { segment }) if segment == segs[1].0
    ));
    assert_ne!(*newest, segs[1].0);
}

/// Every message that names a segment (a damage, a repair, recovery's error) names it by its
/// file name, the sequence number in hex: from segment 10 on, decimal reads as another file.
#[test]
fn messages_name_segments_by_their_file_name() {
    let name = |seq: u64| format!("{seq:016x}.wal");
    let decimal_free = |text: &str, seqs: &[u64]| {
        for seq in seqs {
            for decimal in [format!("segment {seq}"), format!("segments {seq}")] {
                assert!(!text.contains(&decimal), "`{decimal}` in:\n{text}");
            }
        }
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut wal = open(dir.path()).expect("open");
    let mut index = 0;
    let mut append = |wal: &mut Wal| {
        index += 1;
        wal.append_entry(p(1), index, 1, &[3; 500]).expect("append");
        if index % 8 == 0 {
            wal.sync().expect("sync");
        }
    };
    while *wal.segment_seqs().last().expect("active") < 0x10 {
        append(&mut wal);
    }
    while frame_offsets(&active_path(&wal, dir.path())).len() < 2 {
        append(&mut wal);
    }
    wal.sync().expect("sync");
    let active_seq = *wal.segment_seqs().last().expect("active");
    let active = active_path(&wal, dir.path());
    drop(wal);

    // A torn tail in segment 0x10 or above: the damage and the repair name its file.
    let torn = *frame_offsets(&active).last().expect("a frame");
    patch(&active, torn + 200, &[0; 200]);
    let text = inspect_unchanged(dir.path()).to_string();
    assert!(
        text.contains(&format!(
            "drop the torn tail of segment {}: zero bytes {torn}..",
            name(active_seq)
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "segment {} offset {torn}: frame payload CRC mismatch -> torn tail",
            name(active_seq)
        )),
        "{text}"
    );
    decimal_free(&text, &[active_seq]);

    // A bit flip in sealed segment 0xb: the damage and recovery's error name its file.
    let (sealed_seq, sealed) = segments(dir.path())
        .into_iter()
        .find(|(seq, _)| *seq == 0xb)
        .expect("segment 0xb");
    let offset = frame_offsets(&sealed)[1];
    patch(&sealed, offset + 100, &[0xA5]);
    let error = open(dir.path()).expect_err("a corrupt sealed segment");
    assert!(
        error.to_string().starts_with(&format!(
            "WAL segment {} is corrupt at offset {offset}: ",
            name(sealed_seq)
        )),
        "{error}"
    );
    let text = inspect_unchanged(dir.path()).to_string();
    assert!(
        text.contains(&format!("recovery: REFUSES: {error}")),
        "{text}"
    );
    assert!(
        text.contains(&format!("segment {} offset {offset}: ", name(sealed_seq))),
        "{text}"
    );
    decimal_free(&text, &[active_seq, sealed_seq]);

    // Segment 0xd missing: the damage and recovery's error name its file.
    let missing_seq = 0xd;
    std::fs::remove_file(dir.path().join(name(missing_seq))).expect("remove");
    let error = open(dir.path()).expect_err("a missing segment");
    assert_eq!(
        error.to_string(),
        format!("WAL segment {} is missing", name(missing_seq))
    );
    let text = inspect_unchanged(dir.path()).to_string();
    assert!(
        text.contains(&format!("recovery: REFUSES: {error}")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "segment {missing} offset 0: segments {missing} to {missing} are missing",
            missing = name(missing_seq)
        )),
        "{text}"
    );
    decimal_free(&text, &[active_seq, sealed_seq, missing_seq]);
}

#[test]
fn directories_that_are_not_a_wal() {
    let base = tempfile::tempdir().expect("tempdir");
    // Missing.
    let missing = base.path().join("missing");
    match inspect(&missing, &InspectOptions::default()) {
        Err(Error::Io { source, .. }) => {
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected an I/O error, got {other:?}"),
    }
    assert!(!missing.exists(), "inspect creates nothing");
    // Empty: not a WAL, and not made one.
    let empty = base.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    assert!(matches!(
        inspect(&empty, &InspectOptions::default()),
        Err(Error::NotAWal { .. })
    ));
    assert!(snapshot(&empty).is_empty(), "inspect writes no marker");
    // Other files.
    let other = base.path().join("other");
    std::fs::create_dir(&other).expect("mkdir");
    std::fs::write(other.join("notes.txt"), b"hello").expect("write");
    match inspect(&other, &InspectOptions::default()) {
        Err(Error::NotAWal { reason, .. }) => assert!(reason.contains("notes.txt"), "{reason}"),
        other => panic!("expected NotAWal, got {other:?}"),
    }
    // A file, not a directory.
    assert!(matches!(
        inspect(&other.join("notes.txt"), &InspectOptions::default()),
        Err(Error::Io { .. })
    ));
    // Segments without the marker: reported, and recovery's refusal says why.
    let unmarked = base.path().join("unmarked");
    one_frame_per_entry(&unmarked, 3);
    std::fs::remove_file(unmarked.join(MARKER_NAME)).expect("remove marker");
    let report = inspect_unchanged(&unmarked);
    assert_eq!(report.marker, MarkerState::Missing);
    assert_eq!(report.partitions[0].last_index, 3);
    assert!(
        matches!(&report.recovery, RecoveryVerdict::Refuses { error } if error.contains("not a WAL")),
        "{:?}",
        report.recovery
    );
}

#[test]
fn inspecting_an_open_wal_neither_fails_nor_disturbs_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut wal = open(dir.path()).expect("open");
    for index in 1..=10 {
        wal.append_entry(p(9), index, 2, &[9; 64]).expect("append");
    }
    wal.set_commit_index(p(9), 7).expect("commit");
    wal.sync().expect("sync");

    let report = inspect_unchanged(dir.path());
    assert_eq!(report.recovery, RecoveryVerdict::Opens);
    assert_eq!(
        (
            report.partitions[0].last_index,
            report.partitions[0].commit_index
        ),
        (10, Some(7))
    );
    // The lock is untouched: a second open is still refused, and the log goes on.
    assert!(matches!(open(dir.path()), Err(Error::Locked { .. })));
    wal.append_entry(p(9), 11, 2, b"after").expect("append");
    wal.sync().expect("sync");
    assert_eq!(&wal.entry(p(9), 11).expect("read")[..], b"after");
    assert_eq!(inspect_default(dir.path()).partitions[0].last_index, 11);
    // A frame submitted and not yet reaped is either absent or whole; never fatal.
    wal.append_entry(p(9), 12, 2, b"in flight").expect("append");
    wal.submit().expect("submit");
    let report = inspect_default(dir.path());
    assert!(
        report.damages.iter().all(|d| !d.action.is_fatal()),
        "{:?}",
        report.damages
    );
    wal.sync().expect("sync");
}

#[test]
fn entries_listing_json_and_text() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut wal = open(dir.path()).expect("open");
    for index in 1..=6 {
        wal.append_entry(p(1), index, 1, &vec![1; index as usize])
            .expect("append");
        wal.append_entry(p(2), index, 2, b"xy").expect("append");
    }
    wal.sync().expect("sync");
    drop(wal);
    let options = InspectOptions {
        entries: true,
        entries_max: 8,
    };
    let report = inspect(dir.path(), &options).expect("inspect");
    let listing = report.entries.as_ref().expect("entries asked for");
    assert_eq!((listing.listed.len(), listing.omitted), (8, 4));
    let first: Vec<_> = listing
        .listed
        .iter()
        .map(|e| (e.partition.0, e.index, e.term, e.payload_bytes))
        .collect();
    assert_eq!(
        first[..7],
        [
            (1, 1, 1, 1),
            (1, 2, 1, 2),
            (1, 3, 1, 3),
            (1, 4, 1, 4),
            (1, 5, 1, 5),
            (1, 6, 1, 6),
            (2, 1, 2, 2)
        ]
    );
    assert!(
        inspect_default(dir.path()).entries.is_none(),
        "entries only when asked"
    );

    let json: serde_json::Value = serde_json::to_value(&report).expect("json");
    assert_eq!(json["recovery"]["outcome"], "opens");
    assert_eq!(json["marker"], "valid");
    assert_eq!(json["partitions"][1]["last_index"], 6);
    assert_eq!(json["segments"][0]["status"]["state"], "ok");
    assert_eq!(json["entries"]["omitted"], 4);

    let text = report.to_string();
    for needle in [
        "recovery: opens as is",
        "segments: ",
        "0000000000000001.wal",
        "partitions: 2 live, 0 deleted; 12 live entries",
        "1..6",
        "damage: 0 (0 fatal)",
        "entries: 8 listed, 4 omitted",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
}

/// Copies the files of `from` into `to`.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for (name, bytes) in snapshot(from) {
        std::fs::write(to.join(name), bytes).expect("copy");
    }
}

#[test]
fn random_damage_gets_recoverys_own_verdict() {
    let base = tempfile::tempdir().expect("tempdir");
    let pristine = base.path().join("pristine");
    let mut wal = open(&pristine).expect("open");
    let ops = workload(7, 300, 4, 900);
    run_ops(&mut wal, &ops, &mut Rng(3), &mut Model::default());
    drop(wal);
    let (mut opened, mut refused) = (0, 0);
    for seed in 0..120u64 {
        let dir = base.path().join(format!("case-{seed}"));
        copy_dir(&pristine, &dir);
        let mut rng = Rng(seed);
        let files = segments(&dir);
        for _ in 0..=rng.below(2) {
            let (_, path) = &files[rng.below(files.len() as u64) as usize];
            let len = std::fs::metadata(path).expect("stat").len();
            if len < 1024 {
                continue; // shortened by an earlier damage
            }
            // Mostly near the start of segments, where the frames are.
            let offset = rng.below(len.min(24 << 10) - 512);
            match rng.below(7) {
                0..=1 => patch(path, offset, &[rng.next() as u8 | 1]),
                2..=3 => patch(path, offset & !511, &[0; 512]),
                4..=5 => patch(path, offset, &rng.next().to_le_bytes()),
                // A shortened file (its header's size no longer matches).
                _ => std::fs::OpenOptions::new()
                    .write(true)
                    .open(path)
                    .and_then(|f| f.set_len(offset))
                    .expect("shorten"),
            }
        }
        let report = inspect_unchanged(&dir);
        let context = format!("seed {seed}: {report}");
        match (Wal::open(&dir, config()), &report.recovery) {
            (Err(error), RecoveryVerdict::Refuses { error: verdict }) => {
                assert_eq!(&error.to_string(), verdict, "{context}");
                refused += 1;
            }
            (Ok(wal), RecoveryVerdict::Opens | RecoveryVerdict::OpensAfterRepair { .. }) => {
                let live: Vec<_> = report
                    .partitions
                    .iter()
                    .filter(|p| !p.deleted)
                    .map(|p| {
                        (
                            p.id,
                            p.first_index,
                            p.last_index,
                            p.last_term,
                            p.commit_index,
                        )
                    })
                    .collect();
                let recovered: Vec<_> = wal
                    .partitions()
                    .expect("partitions")
                    .into_iter()
                    .map(|(id, i)| {
                        let (first, last, term) = (i.first_index, i.last_index, i.last_term);
                        (id, first, last, term, i.commit_index)
                    })
                    .collect();
                assert_eq!(live, recovered, "{context}");
                opened += 1;
            }
            (result, verdict) => panic!("{context}\nopen gave {result:?}, inspect {verdict:?}"),
        }
    }
    // Both outcomes were exercised.
    assert!(
        opened >= 10 && refused >= 10,
        "opened {opened}, refused {refused}"
    );
}

#[test]
fn an_unreadable_segment_is_an_io_error_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    one_frame_per_entry(dir.path(), 2);
    // A directory where a segment should be: it cannot be read as a file (unlike a
    // permission bit, this holds for root too).
    let bogus = dir.path().join("00000000000000ff.wal");
    std::fs::create_dir(&bogus).expect("mkdir");
    match inspect(dir.path(), &InspectOptions::default()) {
        Err(Error::Io { context, path, .. }) => {
            assert_eq!((context, path), ("reading a segment", bogus));
        }
        other => panic!("expected an I/O error, got {other:?}"),
    }
}

#[test]
fn inspecting_a_log_being_written_shows_every_acknowledged_entry() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_path_buf();
    let acked = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    // Rotation, reclamation and recycling on a background preparer, as on a node.
    let writer = {
        let (acked, done) = (acked.clone(), done.clone());
        std::thread::spawn(move || {
            let mut wal = Wal::open(&path, small_config(BackendChoice::Blocking)).expect("open");
            for index in 1..=2500u64 {
                wal.append_entry(p(1), index, 1, &[index as u8; 200])
                    .expect("append");
                if index % 4 == 0 {
                    wal.sync().expect("sync");
                    acked.store(index, Ordering::SeqCst);
                }
                if index % 100 == 0 {
                    wal.compact_to(p(1), index - 50, b"").expect("compact");
                }
            }
            wal.sync().expect("sync");
            let segments = wal.segment_seqs();
            done.store(true, Ordering::SeqCst);
            segments
        })
    };
    // Once something is acknowledged, the directory is a WAL.
    while acked.load(Ordering::SeqCst) == 0 {
        std::thread::yield_now();
    }
    let (mut inspections, mut raced) = (0, 0);
    let mut last_seen = 0;
    while !done.load(Ordering::SeqCst) {
        let acknowledged = acked.load(Ordering::SeqCst);
        let report = inspect_default(dir.path());
        inspections += 1;
        let context = format!("acknowledged {acknowledged}: {report}");
        assert!(
            !matches!(report.recovery, RecoveryVerdict::Refuses { .. }),
            "{context}"
        );
        if !report.vanished_files.is_empty() {
            // Reclamation won every read: the report says so, and may miss old records.
            raced += 1;
            continue;
        }
        let partition = report.partitions.first().expect(&context);
        assert!(partition.last_index >= acknowledged, "{context}");
        assert!(partition.last_index >= last_seen, "{context}");
        last_seen = partition.last_index;
    }
    let segments = writer.join().expect("writer");
    assert!(segments[0] > 3, "segments were reclaimed: {segments:?}");
    assert!(
        inspections >= 3 && raced * 2 < inspections,
        "{inspections} inspections, {raced} lost to reclamation"
    );
    assert_eq!(inspect_default(dir.path()).partitions[0].last_index, 2500);
}

#[test]
fn the_text_report_is_stable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut wal = open(dir.path()).expect("open");
    wal.set_term_vote(
        p(4),
        TermVote {
            term: 2,
            vote: Some(1),
        },
    )
    .expect("term and vote");
    for index in 1..=3 {
        wal.append_entry(p(4), index, 2, b"abc").expect("append");
    }
    wal.compact_to(p(4), 2, b"0123456789").expect("compact");
    wal.set_commit_index(p(4), 3).expect("commit");
    wal.append_entry(p(8), 1, 1, b"x").expect("append");
    wal.delete_partition(p(8)).expect("delete");
    wal.sync().expect("sync");
    drop(wal);
    let options = InspectOptions {
        entries: true,
        entries_max: 1,
    };
    let report = inspect(dir.path(), &options).expect("inspect");
    let mut text = report.to_string();
    // Epochs come from std's hasher, which may change between toolchains.
    for segment in &report.segments {
        let epoch = format!("{:016x}", segment.epoch.expect("epoch"));
        text = text.replace(&epoch, &format!("<epoch of {}>    ", segment.seq));
    }
    let (first, body) = text.split_once('\n').expect("lines");
    assert_eq!(first, format!("WAL directory {}", dir.path().display()));
    let expected = "\
marker: ok
recovery: opens as is

segments: 2 (131072 bytes, 12288 used), 1 frames, 8 records, LSN 0..7
  file                  epoch                   size        used  frames   records  lsn              status
  0000000000000001.wal  <epoch of 1>           65536        8192       1         8  0..7             ok
  0000000000000002.wal  <epoch of 2>           65536        4096       0         0  -                prepared

partitions: 1 live, 1 deleted; 2 live entries (6 payload bytes)
   partition  first..last             entries  last term  term, vote         commit  floor            oldest lsn  floor meta
           4  2..3                          2          2  2, 1                    3  1 @2                      0  10 B 3031323334353637..
           8  deleted

damage: 0 (0 fatal)

entries: 1 listed, 1 omitted
   partition       index    term     bytes         lsn  segment               offset
           4           2       2         3           2  0000000000000001.wal  4264
";
    assert_eq!(body, expected, "got:\n{body}");
}
