//! The edge cases of `docs/wal-format.md`, each a directory written byte by byte from the page
//! (this file's own encoder: segment headers, frames, records) and read both by the page's
//! reader (`doc_reader.rs`) and by `Wal::open`. They must agree: on the state (every partition,
//! the next LSN) or on refusing the directory. `Wal`'s own writer produces none of these
//! bytes (an entry not at the next index, a truncation below the first index, reserved flag
//! bits, a stale frame, a damaged frame with later ones): a replay of a suffix of the history,
//! a crash, a recycled file or another writer does.

use std::path::Path;

use kommander_wal::backend::BackendChoice;
use kommander_wal::{Error, Wal};

use crate::common::small_config;
use crate::doc_reader::{BLOCK, Found, MARKER, crc32c, read_directory, reported};

const ENTRY: u8 = 1;
const TERM_VOTE: u8 = 2;
const COMMIT_INDEX: u8 = 3;
const TRUNCATE_AFTER: u8 = 4;
const COMPACT_TO: u8 = 5;
const DELETE_PARTITION: u8 = 6;
const RESET: u8 = 7;

/// A record as the page's *Records* table lays it out.
#[derive(Clone)]
struct Record {
    kind: u8,
    flags: u8,
    partition: u64,
    term: u64,
    index: u64,
    payload: Vec<u8>,
}

fn record(kind: u8, partition: u64, term: u64, index: u64, payload: &[u8]) -> Record {
    Record {
        kind,
        flags: 0,
        partition,
        term,
        index,
        payload: payload.to_vec(),
    }
}

fn entry(partition: u64, index: u64, term: u64) -> Record {
    let payload = format!("{partition}/{index}/{term}");
    record(ENTRY, partition, term, index, payload.as_bytes())
}

fn control(kind: u8, partition: u64, term: u64, index: u64) -> Record {
    record(kind, partition, term, index, b"")
}

/// The records of a frame's payload, each padded to 8 (the last one too). The reserved field
/// and the padding are written with junk: the page says neither is checked.
fn payload_of(records: &[Record]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in records {
        let len = u32::try_from(32 + r.payload.len()).expect("a small record");
        out.extend(len.to_le_bytes());
        out.extend([r.kind, r.flags, 0xa5, 0x5a]);
        out.extend(r.partition.to_le_bytes());
        out.extend(r.term.to_le_bytes());
        out.extend(r.index.to_le_bytes());
        out.extend(&r.payload);
        out.resize(out.len().next_multiple_of(8), 0xee);
    }
    out
}

/// A frame header's fields (the page's *Batch frame* table).
#[derive(Clone, Copy)]
struct FrameHeader {
    flags: u16,
    record_count: u32,
    first_lsn: u64,
    seq: u64,
    epoch: u64,
    offset: usize,
}

/// A frame: its 64-byte header (both CRCs computed) and the payload, without the padding.
fn frame(header: FrameHeader, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 64];
    out[..4].copy_from_slice(b"KRF1");
    out[8..10].copy_from_slice(&1u16.to_le_bytes());
    out[10..12].copy_from_slice(&header.flags.to_le_bytes());
    let payload_len = u32::try_from(payload.len()).expect("a small payload");
    out[12..16].copy_from_slice(&payload_len.to_le_bytes());
    out[16..20].copy_from_slice(&crc32c(payload).to_le_bytes());
    out[20..24].copy_from_slice(&header.record_count.to_le_bytes());
    out[24..32].copy_from_slice(&header.first_lsn.to_le_bytes());
    out[32..40].copy_from_slice(&header.seq.to_le_bytes());
    out[40..48].copy_from_slice(&header.epoch.to_le_bytes());
    let offset_blocks = u32::try_from(header.offset / BLOCK).expect("a small segment");
    out[52..56].copy_from_slice(&offset_blocks.to_le_bytes());
    out[56..64].copy_from_slice(&0x1234_5678u64.to_le_bytes());
    seal_header(&mut out);
    out.extend(payload);
    out
}

/// Recomputes the header CRC of the frame header at the start of `bytes`.
fn seal_header(bytes: &mut [u8]) {
    let crc = crc32c(&bytes[8..64]);
    bytes[4..8].copy_from_slice(&crc.to_le_bytes());
}

/// A segment file being written: header block, then frames from 4096.
struct Segment {
    seq: u64,
    epoch: u64,
    bytes: Vec<u8>,
    /// Where the next frame goes.
    cursor: usize,
    /// The next LSN.
    next_lsn: u64,
}

impl Segment {
    fn new(seq: u64, epoch: u64, blocks: u32, next_lsn: u64) -> Self {
        let mut bytes = vec![0u8; blocks as usize * BLOCK];
        bytes[..64].copy_from_slice(&segment_header(seq, epoch, blocks));
        Self {
            seq,
            epoch,
            bytes,
            cursor: BLOCK,
            next_lsn,
        }
    }

    /// The next frame of this segment's life holding `records`, its flags `flags`.
    fn next_frame(&self, flags: u16, records: &[Record]) -> Vec<u8> {
        let header = FrameHeader {
            flags,
            record_count: u32::try_from(records.len()).expect("a few records"),
            first_lsn: self.next_lsn,
            seq: self.seq,
            epoch: self.epoch,
            offset: self.cursor,
        };
        frame(header, &payload_of(records))
    }

    /// Appends the next frame (`inflight_batches_max` 2), its padding junk (never read, the
    /// page says); returns its offset.
    fn push(&mut self, records: &[Record]) -> usize {
        let bytes = self.next_frame(2, records);
        self.push_bytes(&bytes, records.len() as u64)
    }

    /// Writes a frame's bytes at the cursor and moves past its footprint and LSNs.
    fn push_bytes(&mut self, bytes: &[u8], records: u64) -> usize {
        let at = self.cursor;
        self.bytes[at..at + bytes.len()].copy_from_slice(bytes);
        let end = at + bytes.len().next_multiple_of(BLOCK);
        self.bytes[at + bytes.len()..end].fill(0xcc);
        self.cursor = end;
        self.next_lsn += records;
        at
    }

    fn name(&self) -> String {
        format!("{:016x}.wal", self.seq)
    }
}

/// A segment header (the page's *Segment header* table), its CRC computed.
fn segment_header(seq: u64, epoch: u64, blocks: u32) -> [u8; 64] {
    let mut out = [0u8; 64];
    out[..8].copy_from_slice(b"KRWALSEG");
    out[8..10].copy_from_slice(&1u16.to_le_bytes());
    out[12..16].copy_from_slice(&64u32.to_le_bytes());
    out[16..24].copy_from_slice(&seq.to_le_bytes());
    out[24..32].copy_from_slice(&epoch.to_le_bytes());
    out[44..48].copy_from_slice(&blocks.to_le_bytes());
    out[48..56].copy_from_slice(&7u64.to_le_bytes());
    reseal_segment_header(&mut out);
    out
}

fn reseal_segment_header(header: &mut [u8]) {
    let crc = crc32c(&header[..60]);
    header[60..64].copy_from_slice(&crc.to_le_bytes());
}

/// A WAL directory holding `segments` and a marker of one block.
fn directory(segments: &[&Segment]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut marker = MARKER.to_vec();
    marker.resize(BLOCK, 0);
    std::fs::write(dir.path().join("KOMMANDER_WAL"), marker).expect("marker");
    for segment in segments {
        std::fs::write(dir.path().join(segment.name()), &segment.bytes).expect("segment");
    }
    dir
}

fn open(dir: &Path) -> kommander_wal::Result<Wal> {
    Wal::open(dir, small_config(BackendChoice::Blocking))
}

/// Reads `dir` with the page's reader, then opens it: both must find the same partitions and
/// the same next LSN.
fn agree(dir: &Path, case: &str) -> Found {
    let found = read_directory(dir).unwrap_or_else(|e| panic!("{case}: the reader refused: {e}"));
    let wal = open(dir).unwrap_or_else(|e| panic!("{case}: the Wal refused: {e}"));
    assert_eq!(found.next_lsn, wal.next_lsn().0, "{case}: the next LSN");
    assert_eq!(found.partitions, reported(&wal), "{case}: the partitions");
    found
}

/// Both the page's reader and the `Wal` refuse `dir`; the `Wal`'s error.
fn both_refuse(dir: &Path, case: &str) -> Error {
    if let Ok(found) = read_directory(dir) {
        panic!("{case}: the reader accepted it: {found:?}");
    }
    match open(dir) {
        Ok(wal) => panic!("{case}: the Wal opened it: {:?}", wal.partitions()),
        Err(error) => error,
    }
}

/// A change made to some bytes (a header or a frame) before they are written.
type Damage<'a> = &'a dyn Fn(&mut [u8]);

fn corrupt_at(error: &Error) -> (u64, u64) {
    match error {
        Error::Corrupt {
            segment, offset, ..
        } => (*segment, *offset),
        other => panic!("expected Error::Corrupt, got {other}"),
    }
}

#[test]
fn replay_edge_cases_read_as_the_page_says() {
    // A log whose earlier segments were reclaimed: seqs from 0x2a, LSNs from 1000.
    let mut first = Segment::new(0x2a, 77, 8, 1000);
    let mut entry_with_flags = entry(1, 2, 1);
    entry_with_flags.flags = 0x80;
    let mut records = vec![entry(1, 1, 1), entry_with_flags];
    records.extend([
        entry(1, 3, 1),
        entry(1, 4, 1),
        entry(1, 5, 1),
        // Not the next index, no truncation before: within the log, then past its end, then
        // below its first index.
        entry(1, 3, 2),
        entry(1, 10, 2),
        entry(1, 4, 3),
        // Fresh: starts at any index; a truncation below the first index.
        entry(2, 5, 1),
        entry(2, 6, 1),
        control(TRUNCATE_AFTER, 2, 0, 2),
        entry(2, 3, 2),
    ]);
    // Bits above the inflight_batches_max byte are ignored.
    let bytes = first.next_frame(0xff02, &records);
    first.push_bytes(&bytes, records.len() as u64);
    first.push(&[
        // A compaction past the last entry.
        entry(3, 1, 1),
        entry(3, 2, 1),
        record(COMPACT_TO, 3, 7, 9, b"nine"),
        entry(3, 9, 7),
        // A compaction below the floor (nothing), one at it (a restatement).
        entry(4, 1, 2),
        entry(4, 2, 2),
        entry(4, 3, 2),
        entry(4, 4, 2),
        record(COMPACT_TO, 4, 2, 3, b"three"),
        record(COMPACT_TO, 4, 1, 2, b"two"),
        record(COMPACT_TO, 4, 5, 3, b"again"),
        // A fresh partition compacted.
        record(COMPACT_TO, 5, 3, 6, b""),
    ]);
    // The rest of this segment is zero: a clean end; the chain goes on in the next one.
    let mut second = Segment::new(0x2b, 78, 4, first.next_lsn);
    let mut no_vote = control(TERM_VOTE, 6, 5, 9);
    no_vote.flags = 0;
    let mut vote = control(TERM_VOTE, 6, 4, 2);
    vote.flags = 1;
    second.push(&[
        vote,
        no_vote,
        entry(7, 1, 1),
        control(DELETE_PARTITION, 7, 0, 0),
        entry(7, 3, 2),
        control(COMMIT_INDEX, 7, 0, 3),
        entry(8, 1, 1),
        entry(8, 2, 1),
        record(RESET, 8, 4, 20, b"reset"),
        entry(8, 20, 4),
        control(COMMIT_INDEX, 9, 0, 4),
        control(TRUNCATE_AFTER, 9, 0, 0),
        control(DELETE_PARTITION, 10, 0, 0),
        // An entry within the log, then the next one: the log keeps what is below it.
        entry(11, 1, 1),
        entry(11, 2, 1),
        entry(11, 3, 1),
        entry(11, 2, 2),
        entry(11, 3, 2),
        // A truncation below the first index, the last word: the log is empty there.
        entry(12, 5, 1),
        entry(12, 6, 1),
        control(TRUNCATE_AFTER, 12, 0, 2),
    ]);
    // A prepared segment: nothing written.
    let prepared = Segment::new(0x2c, 79, 4, 0);
    let dir = directory(&[&first, &second, &prepared]);
    let found = agree(dir.path(), "replay edge cases");
    assert_eq!(found.first_lsn, Some(1000));
    assert_eq!(found.next_lsn, second.next_lsn);
    let p = &found.partitions;
    let summary = |id: u32| {
        let partition = &p[&id];
        let terms: Vec<u64> = partition.entries.iter().map(|(term, _)| *term).collect();
        (
            partition.first,
            terms,
            partition.floor_term,
            partition.fresh,
        )
    };
    assert_eq!(summary(1), (4, vec![3], 0, false));
    assert_eq!(summary(2), (3, vec![2], 0, false));
    assert_eq!(summary(3), (9, vec![7], 7, false));
    assert_eq!(summary(4), (3, vec![2, 2], 5, false));
    assert_eq!(&p[&4].floor_meta, b"again");
    assert_eq!(summary(5), (6, vec![], 3, false));
    assert_eq!(p[&6].term_vote, Some((5, None)));
    assert_eq!(
        (summary(7), p[&7].commit),
        ((3, vec![2], 0, false), Some(3))
    );
    assert_eq!(summary(8), (20, vec![4], 4, false));
    assert_eq!(summary(9), (1, vec![], 0, false));
    assert!(!p.contains_key(&10), "deleted");
    assert_eq!(summary(11), (1, vec![1, 2, 2], 0, false));
    assert_eq!(summary(12), (3, vec![], 0, false));
}

#[test]
fn only_an_older_seq_ends_a_segment_cleanly() {
    // Segment 5 ends at a slot holding `stale`; segment 6 goes on with the next LSN, so a
    // segment-5 slot that is not a clean end is corruption.
    let build = |stale: &dyn Fn(&Segment) -> Vec<u8>| {
        let mut sealed = Segment::new(5, 50, 4, 0);
        sealed.push(&[entry(1, 1, 1), entry(1, 2, 1)]);
        let slot = sealed.cursor;
        let bytes = stale(&sealed);
        sealed.bytes[slot..slot + bytes.len()].copy_from_slice(&bytes);
        let mut active = Segment::new(6, 60, 4, sealed.next_lsn);
        active.push(&[entry(1, 3, 1)]);
        (directory(&[&sealed, &active]), slot as u64)
    };
    let earlier_life = |segment: &Segment, seq: u64, epoch: u64, offset: usize| {
        let header = FrameHeader {
            flags: 2,
            record_count: 1,
            first_lsn: segment.next_lsn,
            seq,
            epoch,
            offset,
        };
        frame(header, &payload_of(&[entry(1, 3, 9)]))
    };
    let (dir, _) = build(&|s| earlier_life(s, 4, 40, s.cursor));
    let found = agree(dir.path(), "an older seq at its own offset");
    assert_eq!(found.partitions[&1].entries.len(), 3);
    for (case, seq, epoch, offset_shift) in [
        ("the same seq, another epoch", 5, 51, 0),
        ("an older seq at another offset", 4, 40, BLOCK),
    ] {
        let (dir, slot) = build(&|s| earlier_life(s, seq, epoch, s.cursor + offset_shift));
        assert_eq!(
            corrupt_at(&both_refuse(dir.path(), case)),
            (5, slot),
            "{case}"
        );
    }
    let (dir, slot) = build(&|s| {
        let mut bytes = earlier_life(s, 4, 40, s.cursor);
        bytes[64] ^= 1;
        bytes
    });
    let case = "an older seq whose payload CRC fails";
    assert_eq!(corrupt_at(&both_refuse(dir.path(), case)), (5, slot));
}

#[test]
fn the_torn_tail_rule_reads_the_later_frames_flags_and_probes_every_4_kib() {
    // Frame a, then a damaged frame b (its own flags say 64, a footprint of `b_blocks`), then
    // frame c at the end of b's footprint, its flags `c_flags`.
    let build_with = |b_blocks: usize, c_flags: u16, damage: Damage<'_>| {
        let mut segment = Segment::new(1, 10, 8, 0);
        segment.push(&[entry(1, 1, 1)]);
        let end_of_a = segment.next_lsn;
        let b_entry = record(ENTRY, 1, 1, 2, &vec![7; (b_blocks - 1) * BLOCK + 100]);
        let mut b = segment.next_frame(64, std::slice::from_ref(&b_entry));
        damage(&mut b);
        let b_at = segment.push_bytes(&b, 1);
        assert_eq!(segment.cursor, b_at + b_blocks * BLOCK);
        let c = segment.next_frame(c_flags, &[entry(1, 3, 1)]);
        segment.push_bytes(&c, 1);
        (directory(&[&segment]), b_at as u64, end_of_a)
    };
    let build = |c_flags: u16, damage: Damage<'_>| build_with(2, c_flags, damage);
    let flip_payload = |b: &mut [u8]| b[64 + 100] ^= 1;
    let flip_header = |b: &mut [u8]| b[12] ^= 0x40;
    let wrong_lsn = |b: &mut [u8]| {
        b[24] += 5;
        seal_header(b);
    };
    for (case, c_flags, damage) in [
        (
            "a torn payload, one later frame of a pipeline of 2",
            2,
            &flip_payload as Damage<'_>,
        ),
        (
            "a torn header (its payload_len untrusted), the later frame found by the probe",
            2,
            &flip_header,
        ),
        ("a frame out of the LSN chain", 2, &wrong_lsn),
        ("bits above the byte ignored", 0x0302, &flip_payload),
    ] {
        let (dir, _, end_of_a) = build(c_flags, damage);
        let found = agree(dir.path(), case);
        assert!(found.torn_tail, "{case}");
        assert_eq!(found.next_lsn, end_of_a, "{case}: b and c dropped");
    }
    // The later frame says 1: one later frame is more than a pipeline's worth, whatever the
    // damaged frame's own flags say.
    for (case, damage) in [
        ("a torn payload", &flip_payload as Damage<'_>),
        ("a torn header", &flip_header),
    ] {
        let (dir, b_at, _) = build(0x0201, damage);
        assert_eq!(corrupt_at(&both_refuse(dir.path(), case)), (1, b_at));
    }
    // The probe starts at the slot right after the damaged one.
    let (dir, b_at, _) = build_with(1, 1, &flip_payload);
    let case = "a later frame in the next slot";
    assert_eq!(corrupt_at(&both_refuse(dir.path(), case)), (1, b_at));
}

#[test]
fn a_payload_counts_its_last_records_padding_and_control_records_are_32_bytes() {
    let well_formed = |records: &[Record], payload_len_cut: usize| {
        let mut segment = Segment::new(1, 10, 4, 0);
        let mut payload = payload_of(records);
        payload.truncate(payload.len() - payload_len_cut);
        let header = FrameHeader {
            flags: 1,
            record_count: u32::try_from(records.len()).expect("a few"),
            first_lsn: 0,
            seq: 1,
            epoch: 10,
            offset: BLOCK,
        };
        segment.push_bytes(&frame(header, &payload), records.len() as u64);
        // A second segment, so the first is sealed: its damage cannot be a torn tail.
        let mut next = Segment::new(2, 20, 4, records.len() as u64);
        next.push(&[control(COMMIT_INDEX, 1, 0, 1)]);
        directory(&[&segment, &next])
    };
    let three_bytes = record(ENTRY, 1, 1, 1, b"abc");
    agree(
        well_formed(std::slice::from_ref(&three_bytes), 0).path(),
        "padded",
    );
    let dir = well_formed(std::slice::from_ref(&three_bytes), 5);
    assert_eq!(
        corrupt_at(&both_refuse(dir.path(), "the last padding left out")),
        (1, (BLOCK + 64) as u64 + 40)
    );
    let dir = well_formed(&[record(COMMIT_INDEX, 1, 0, 1, b"x")], 0);
    assert_eq!(
        corrupt_at(&both_refuse(dir.path(), "a control record with a payload")),
        (1, (BLOCK + 64) as u64)
    );
}

#[test]
fn every_segment_header_check_and_what_a_bad_header_means() {
    let fields: [(&str, Damage<'_>); 6] = [
        ("the CRC", &|h| h[60] ^= 1),
        ("format_version", &|h| {
            h[8] = 2;
            reseal_segment_header(h);
        }),
        ("header_len", &|h| {
            h[12] = 65;
            reseal_segment_header(h);
        }),
        ("segment_blocks below 2", &|h| {
            h[44..48].copy_from_slice(&1u32.to_le_bytes());
            reseal_segment_header(h);
        }),
        ("segment_seq", &|h| {
            h[16] ^= 8;
            reseal_segment_header(h);
        }),
        ("the size", &|h| {
            h[44..48].copy_from_slice(&5u32.to_le_bytes());
            reseal_segment_header(h);
        }),
    ];
    for (field, damage) in fields {
        let mut sealed = Segment::new(1, 10, 4, 0);
        sealed.push(&[entry(1, 1, 1)]);
        let mut newest = Segment::new(2, 20, 4, sealed.next_lsn);
        damage(&mut newest.bytes[..64]);
        // The newest segment, no frame naming it: a damaged prepared segment, removed.
        let dir = directory(&[&sealed, &newest]);
        let found = agree(dir.path(), field);
        assert_eq!(found.partitions[&1].entries.len(), 1, "{field}");
        // The newest segment naming itself in a frame: corruption.
        newest.push(&[entry(1, 2, 1)]);
        let dir = directory(&[&sealed, &newest]);
        let case = format!("{field}, on the newest segment holding a frame");
        assert_eq!(corrupt_at(&both_refuse(dir.path(), &case)), (2, 0));
        // Below the newest: corruption.
        let mut sealed = Segment::new(1, 10, 4, 0);
        sealed.push(&[entry(1, 1, 1)]);
        damage(&mut sealed.bytes[..64]);
        let newest = Segment::new(2, 20, 4, 0);
        let dir = directory(&[&sealed, &newest]);
        let case = format!("{field}, below the newest segment");
        assert_eq!(corrupt_at(&both_refuse(dir.path(), &case)), (1, 0));
    }
}

#[test]
fn only_the_markers_first_33_bytes_are_checked() {
    let mut segment = Segment::new(1, 10, 4, 0);
    segment.push(&[entry(1, 1, 1)]);
    let dir = directory(&[&segment]);
    let marker = dir.path().join("KOMMANDER_WAL");
    std::fs::write(&marker, MARKER).expect("a marker of 33 bytes");
    agree(dir.path(), "the 33 bytes alone");
    let mut long = MARKER.to_vec();
    long.extend([0xff; 5000]);
    std::fs::write(&marker, &long).expect("a marker with more bytes");
    agree(dir.path(), "the 33 bytes then anything");
    long[MARKER.len() - 2] = b'2';
    std::fs::write(&marker, &long).expect("another format");
    match both_refuse(dir.path(), "format 2") {
        Error::NotAWal { .. } => {}
        other => panic!("expected Error::NotAWal, got {other}"),
    }
}

#[test]
fn indexes_a_partition_cannot_hold_are_refused() {
    for (case, records) in [
        ("an entry at 0", vec![entry(1, 0, 1)]),
        ("an entry at u64::MAX", vec![entry(1, u64::MAX, 1)]),
        ("a compaction to 0", vec![record(COMPACT_TO, 1, 1, 0, b"")]),
        ("a reset to 0", vec![record(RESET, 1, 1, 0, b"")]),
    ] {
        let mut segment = Segment::new(1, 10, 4, 0);
        segment.push(&[entry(2, 1, 1)]);
        let at = segment.push(&records);
        let dir = directory(&[&segment]);
        let error = both_refuse(dir.path(), case);
        assert_eq!(corrupt_at(&error), (1, (at + 64) as u64), "{case}");
    }
    // The extremes a partition can hold.
    let mut segment = Segment::new(1, 10, 4, 0);
    segment.push(&[
        entry(1, u64::MAX - 1, 1),
        record(COMPACT_TO, 2, 1, u64::MAX, b""),
        record(RESET, 3, 1, u64::MAX, b""),
        entry(4, 1, 1),
        control(TRUNCATE_AFTER, 4, 0, u64::MAX),
        control(TRUNCATE_AFTER, 5, 0, 0),
    ]);
    let dir = directory(&[&segment]);
    agree(dir.path(), "the extremes");
}

#[test]
fn the_writer_never_writes_an_index_the_page_refuses() {
    use kommander_wal::{PartitionId, Write};
    let dir = tempfile::tempdir().expect("tempdir");
    let mut wal = open(dir.path()).expect("open");
    let (high, fresh) = (PartitionId(1), PartitionId(2));
    wal.append_entry(high, 1, 1, b"one").expect("append");
    wal.compact_to(high, u64::MAX, b"")
        .expect("a floor at the top");
    wal.truncate_after(high, u64::MAX)
        .expect("a truncation above everything drops nothing");
    for (partition, case) in [(high, "the next index"), (fresh, "a fresh partition")] {
        let write = Write::Entry {
            partition,
            index: u64::MAX,
            term: 1,
            payload: b"",
        };
        match wal.append(&[write]) {
            Err(Error::IndexTooLarge { index, .. }) => assert_eq!(index, u64::MAX, "{case}"),
            other => panic!("{case}: expected Error::IndexTooLarge, got {other:?}"),
        }
    }
    wal.sync().expect("sync");
    drop(wal);
    let found = agree(dir.path(), "a floor at u64::MAX");
    assert_eq!(found.partitions[&1].first, u64::MAX);
}
