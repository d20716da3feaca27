//! Replays every committed fuzz corpus file through the fuzz targets' entry points (default
//! run), and regenerates the seed files (`WAL_WRITE_FUZZ_SEEDS=1`, ignored test).

use std::path::{Path, PathBuf};

use kommander_wal::backend::BackendChoice;
use kommander_wal::fuzzing::{
    decode_segment_header, encode_segment_header, frame_decode, recovery, recovery_input,
};

use crate::common::{small_config, workload};

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("corpus {dir:?}: {e}"))
        .map(|e| {
            let path = e.expect("entry").path();
            let name = path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            (name, std::fs::read(&path).expect("read"))
        })
        .collect();
    out.sort();
    out
}

#[test]
fn frame_decode_corpus_replays() {
    let files = files(&corpus("frame_decode"));
    assert!(files.len() >= 4, "the frame_decode corpus is missing");
    for (name, data) in &files {
        let records = frame_decode(data);
        if name.starts_with("valid") {
            assert!(records > 0, "{name}: a valid seed decoded no record");
        }
    }
}

#[test]
fn recovery_corpus_replays() {
    let files = files(&corpus("recovery"));
    assert!(files.len() >= 4, "the recovery corpus is missing");
    for (name, data) in &files {
        let result = recovery(data);
        if name.starts_with("valid") {
            let summary = result.as_ref().unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(
                summary.frames > 0 && summary.partitions > 0,
                "{name}: {summary:?}"
            );
        }
        if name.starts_with("corrupt") {
            assert!(
                matches!(result, Err(kommander_wal::Error::Corrupt { .. })),
                "{name}: {result:?}"
            );
        }
        if name.starts_with("half-prepared") {
            result.as_ref().unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        if name.starts_with("torn") {
            assert!(
                result.as_ref().expect("torn tail recovers").torn_tail,
                "{name}"
            );
        }
    }
}

/// Trims a segment to its first `blocks` blocks, rewriting its header for the new size.
fn trimmed(segment: &[u8], blocks: usize) -> Vec<u8> {
    let header = decode_segment_header(segment).expect("header");
    let mut out = segment[..blocks * 4096].to_vec();
    let new = encode_segment_header(
        header.segment_seq.get(),
        header.epoch.get(),
        blocks as u32,
        0,
    );
    out[..64].copy_from_slice(&new);
    out
}

#[test]
#[ignore = "writes the seed files; run with WAL_WRITE_FUZZ_SEEDS=1 -- --ignored"]
fn write_fuzz_seeds() {
    if std::env::var("WAL_WRITE_FUZZ_SEEDS").is_err() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut wal =
        kommander_wal::Wal::open(dir.path(), small_config(BackendChoice::Blocking)).expect("open");
    // Small frames (a sync every two records) over more than one segment.
    for batch in workload(1234, 80, 3, 60).chunks(2) {
        for op in batch {
            wal.append(&[op.as_write()]).expect("append");
        }
        wal.sync().expect("sync");
    }
    drop(wal);
    let mut segs: Vec<(u64, Vec<u8>)> = std::fs::read_dir(dir.path())
        .expect("list")
        .filter_map(|e| {
            let path = e.expect("entry").path();
            let name = path.file_name()?.to_str()?.to_owned();
            let seq = u64::from_str_radix(name.strip_suffix(".wal")?, 16).ok()?;
            Some((seq, std::fs::read(&path).expect("read")))
        })
        .collect();
    segs.sort();
    let blocks = 8;
    assert!(segs.len() >= 3, "two written segments and a prepared one");
    let (first_seq, a) = (segs[0].0, segs[0].1.clone());
    let b = trimmed(&segs[1].1, blocks);
    let frames_dir = corpus("frame_decode");
    let recovery_dir = corpus("recovery");
    std::fs::create_dir_all(&frames_dir).expect("mkdir");
    std::fs::create_dir_all(&recovery_dir).expect("mkdir");
    let a_short = trimmed(&a, blocks);
    std::fs::write(frames_dir.join("valid-segment"), &a_short).expect("write");
    let mut flipped = a_short.clone();
    flipped[4096 + 100] ^= 0x10;
    std::fs::write(frames_dir.join("bit-flip"), &flipped).expect("write");
    std::fs::write(frames_dir.join("zeros"), vec![0u8; 8192]).expect("write");
    std::fs::write(frames_dir.join("short"), &a[..100]).expect("write");
    let a = a_short.clone();
    let full_a = segs[0].1.clone();
    std::fs::write(
        recovery_dir.join("valid-two-segments"),
        recovery_input(first_seq, &[&full_a, &b]),
    )
    .expect("write");
    // The second segment's last frame torn (its 2nd block garbage... or first bytes zeroed).
    let mut torn = a.clone();
    let last_frame = (1..blocks)
        .rev()
        .find(|blk| torn[blk * 4096..blk * 4096 + 4] == *b"KRF1")
        .expect("frame");
    torn[last_frame * 4096 + 64..last_frame * 4096 + 96].fill(0xAB);
    std::fs::write(
        recovery_dir.join("torn-tail"),
        recovery_input(first_seq, &[&torn]),
    )
    .expect("write");
    let mut corrupt = full_a.clone();
    corrupt[4096 + 100] ^= 0x10;
    std::fs::write(
        recovery_dir.join("corrupt-first-segment"),
        recovery_input(first_seq, &[&corrupt, &b]),
    )
    .expect("write");
    // A prepared (frameless) highest segment whose header is damaged: discarded.
    let (highest_seq, highest) = &segs[segs.len() - 1];
    let mut bad_header = trimmed(highest, blocks);
    bad_header[..64].fill(0);
    let below = &segs[segs.len() - 2].1;
    std::fs::write(
        recovery_dir.join("half-prepared-highest"),
        recovery_input(highest_seq - 1, &[below, &bad_header]),
    )
    .expect("write");
    // Compact-to and reset records with floor metas (empty and not), one frame.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut wal =
        kommander_wal::Wal::open(dir.path(), small_config(BackendChoice::Blocking)).expect("open");
    let p = kommander_wal::PartitionId;
    for index in 1..=4 {
        wal.append_entry(p(1), index, 1, b"entry").expect("append");
        wal.append_entry(p(2), index, 1, b"entry").expect("append");
    }
    wal.compact_to(p(1), 3, b"configuration").expect("compact");
    wal.compact_to(p(2), 2, b"").expect("compact");
    wal.install_snapshot(p(2), 9, 2, b"snapshot configuration")
        .expect("reset");
    wal.sync().expect("sync");
    let seq = wal.segment_seqs()[0];
    drop(wal);
    let segment = std::fs::read(dir.path().join(format!("{seq:016x}.wal"))).expect("read");
    let segment = trimmed(&segment, 2);
    std::fs::write(frames_dir.join("valid-floor-metas"), &segment).expect("write");
    std::fs::write(
        recovery_dir.join("valid-floor-metas"),
        recovery_input(seq, &[&segment]),
    )
    .expect("write");
}
