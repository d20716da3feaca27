//! Segment reclamation: what pins a segment, and how it is released.

use kommander_wal::backend::BackendChoice;
use kommander_wal::{PartitionId, TermVote, Wal};

use crate::common::small_config;

fn p(id: u32) -> PartitionId {
    PartitionId(id)
}

fn open(dir: &std::path::Path) -> Wal {
    Wal::open(dir, small_config(BackendChoice::Blocking)).expect("open")
}

/// Appends `count` compacted entries to partition 1 (its live set stays small), syncing.
fn churn(wal: &mut Wal, from: u64, count: u64) {
    for index in from..from + count {
        wal.append_entry(p(1), index, 1, &[5; 900]).expect("append");
        if index % 8 == 0 {
            wal.compact_to(p(1), index - 2, b"").expect("compact");
            wal.sync().expect("sync");
        }
    }
    wal.sync().expect("sync");
}

#[test]
fn an_old_term_vote_does_not_pin_segments_forever() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut wal = open(dir.path());
    let term_vote = TermVote {
        term: 7,
        vote: Some(3),
    };
    wal.set_term_vote(p(2), term_vote).expect("term and vote");
    wal.set_commit_index(p(2), 41).expect("commit");
    churn(&mut wal, 1, 400);
    let seqs = wal.segment_seqs();
    assert!(seqs[0] > 3, "the oldest segments were reclaimed: {seqs:?}");
    drop(wal);
    let wal = open(dir.path());
    let info = wal.partition(p(2)).expect("partition 2 survives");
    assert_eq!(info.term_vote, Some(term_vote));
    assert_eq!(info.commit_index, Some(41));
}

#[test]
fn floor_metas_survive_the_reclamation_of_every_segment_that_held_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut wal = open(dir.path());
    // Partition 2: only its floor pins (restated as a compaction at the floor). Partition 3:
    // its entries pin too (rewritten whole, from a reset). Partition 4: a snapshot boundary in
    // conflict with its log (a reset of its own).
    wal.append_entry(p(2), 1, 1, b"two").expect("append");
    wal.compact_to(p(2), 2, b"meta of 2").expect("compact");
    for index in 1..=10 {
        wal.append_entry(p(3), index, 2, &[3; 50]).expect("append");
    }
    wal.compact_to(p(3), 4, b"meta of 3").expect("compact");
    wal.append_entry(p(4), 1, 1, b"four").expect("append");
    wal.install_snapshot(p(4), 7, 3, b"meta of 4")
        .expect("snapshot boundary");
    wal.sync().expect("sync");
    let written_in = *wal.segment_seqs().last().expect("a segment");
    churn(&mut wal, 1, 400);
    assert!(
        wal.segment_seqs()[0] > written_in + 2,
        "the segments that held the records (and their first restatements) were reclaimed: {:?}",
        wal.segment_seqs()
    );
    let check = |wal: &Wal| {
        let meta = |id| wal.floor_meta(p(id)).expect("meta");
        assert_eq!(&meta(2)[..], b"meta of 2");
        assert_eq!(&meta(3)[..], b"meta of 3");
        assert_eq!(&meta(4)[..], b"meta of 4");
        let info = wal.partition(p(3)).expect("partition 3");
        assert_eq!((info.first_index, info.last_index), (4, 10));
        assert_eq!(wal.term_at(p(4), 7).expect("floor term"), 3);
    };
    check(&wal);
    drop(wal);
    check(&open(dir.path()));
}

#[test]
fn a_partition_larger_than_a_frame_pins_until_compacted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut wal = open(dir.path());
    // 30 KiB of live entries: more than one 16 KiB frame, so it cannot be rewritten.
    for index in 1..=30 {
        wal.append_entry(p(2), index, 1, &[2; 1000])
            .expect("append");
    }
    wal.sync().expect("sync");
    let first = wal.segment_seqs()[0];
    churn(&mut wal, 1, 300);
    assert_eq!(
        wal.segment_seqs()[0],
        first,
        "the big partition pins its segment"
    );
    wal.compact_to(p(2), 31, b"").expect("compact it");
    churn(&mut wal, 301, 200);
    assert!(wal.segment_seqs()[0] > first, "released after compaction");
    drop(wal);
    let wal = open(dir.path());
    let info = wal.partition(p(2)).expect("partition 2");
    assert_eq!(
        (info.first_index, info.last_index, info.last_term),
        (31, 30, 1)
    );
}

#[test]
fn a_reader_holding_bytes_keeps_them_valid_after_reclamation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut wal = open(dir.path());
    churn(&mut wal, 1, 16);
    let held = wal.entry(p(1), 14).expect("read");
    churn(&mut wal, 17, 400);
    assert!(wal.entry(p(1), 14).is_err(), "compacted away");
    // Its segment was reclaimed (deleted, not recycled, since it was still mapped here).
    assert_eq!(&held[..], &[5; 900][..]);
}

/// The oldest segment and the length of the log after each of `count` churned entries of
/// partition 1 (which compacts as it goes).
fn churn_observed(wal: &mut Wal, count: u64) -> Vec<(u64, usize)> {
    let mut seen = Vec::new();
    for index in 1..=count {
        churn(wal, index, 1);
        let seqs = wal.segment_seqs();
        seen.push((seqs[0], seqs.len()));
    }
    seen
}

#[test]
fn records_pinning_the_oldest_segment_move_only_past_segments_before_rewrite() {
    for kept in [1, 3, 5] {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = kommander_wal::WalConfig {
            segments_before_rewrite: kept,
            ..small_config(BackendChoice::Blocking)
        };
        let mut wal = Wal::open(dir.path(), config.clone()).expect("open");
        // An idle partition: its term and vote pin the first segment until rewritten.
        let term_vote = TermVote {
            term: 4,
            vote: Some(1),
        };
        wal.set_term_vote(p(2), term_vote).expect("term and vote");
        let first = wal.segment_seqs()[0];
        let seen = churn_observed(&mut wal, 600);
        let released = seen
            .iter()
            .position(|&(oldest, _)| oldest != first)
            .unwrap_or_else(|| panic!("kept {kept}: the first segment is never released"));
        let longest_before = seen[..released].iter().map(|&(_, len)| len).max();
        assert_eq!(
            longest_before,
            Some(kept + 1),
            "kept {kept}: the pinned segment is rewritten (then reclaimed) only once the log \
             holds more than {kept} segments: {:?}",
            &seen[..=released]
        );
        let longest = seen.iter().map(|&(_, len)| len).max().unwrap_or(0);
        assert!(
            longest <= kept + 1,
            "kept {kept}: the log never grows past the bound: {longest}"
        );
        drop(wal);
        let wal = Wal::open(dir.path(), config).expect("reopen");
        assert_eq!(
            wal.partition(p(2)).expect("partition 2").term_vote,
            Some(term_vote)
        );
    }
}
