//! A reader of WAL directories written from `docs/wal-format.md` alone: its own CRC-32C, its
//! own decoding of segment headers, frames and records, its own scan and replay (nothing of the
//! crate but what writes and reports the log: `Wal`, its config and write types). It reads a
//! real directory written through `Wal` and must find exactly what the `Wal` reports: if the
//! page leaves out or misstates a rule, it reads something else and the test says where.
//! `doc_cases.rs` feeds it the page's edge cases, written byte by byte from the page.

use std::collections::BTreeMap;
use std::path::Path;

use kommander_wal::backend::BackendChoice;
use kommander_wal::{PartitionId, TermVote, Wal, WalConfig, Write};

use crate::common::{Rng, small_config};

/// CRC-32C: reflected polynomial 0x82F63B78, initial value and final XOR 0xFFFFFFFF.
pub fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for byte in bytes {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

pub fn le(bytes: &[u8], at: usize, len: usize) -> Option<u64> {
    let field = bytes.get(at..at.checked_add(len)?)?;
    Some(
        field
            .iter()
            .rev()
            .fold(0, |acc, b| acc << 8 | u64::from(*b)),
    )
}

pub const BLOCK: usize = 4096;
pub const MARKER: &[u8] = b"kommander-wal directory\nformat 1\n";

/// A segment header that passed every check.
#[derive(Clone, Copy)]
struct SegmentHeader {
    seq: u64,
    epoch: u64,
}

/// The header checks, in the page's order.
fn segment_header(bytes: &[u8], seq: u64) -> Result<SegmentHeader, &'static str> {
    let field = |at, len| le(bytes, at, len).ok_or("shorter than a header");
    if bytes.len() < 64 {
        return Err("shorter than a header");
    }
    if &bytes[..8] != b"KRWALSEG" {
        return Err("magic");
    }
    if crc32c(&bytes[..60]) != field(60, 4)? as u32 {
        return Err("crc");
    }
    if field(8, 2)? != 1 {
        return Err("version");
    }
    if field(12, 4)? != 64 {
        return Err("header_len");
    }
    let blocks = field(44, 4)?;
    if blocks < 2 {
        return Err("segment_blocks");
    }
    if field(16, 8)? != seq {
        return Err("seq");
    }
    if blocks * BLOCK as u64 != bytes.len() as u64 {
        return Err("size");
    }
    Ok(SegmentHeader {
        seq,
        epoch: field(24, 8)?,
    })
}

/// A frame header's fields the reader uses.
#[derive(Clone, Copy, Debug)]
struct Frame {
    payload_len: usize,
    record_count: u64,
    first_lsn: u64,
    inflight_max: u64,
}

impl Frame {
    fn footprint(&self) -> usize {
        (64 + self.payload_len).next_multiple_of(BLOCK)
    }
}

#[derive(Debug)]
enum Slot {
    Zero,
    Stale,
    Invalid,
    Valid(Frame),
}

/// The checks of a frame slot, 1 to 9. `None`: the slot's 64 bytes pass the end of the file.
fn check_slot(bytes: &[u8], offset: usize, segment: SegmentHeader) -> Option<Slot> {
    let header = bytes.get(offset..offset + 64)?;
    let field = |at, len| le(header, at, len).unwrap_or(0);
    if header.iter().all(|b| *b == 0) {
        return Some(Slot::Zero);
    }
    if &header[..4] != b"KRF1" || crc32c(&header[8..]) != field(4, 4) as u32 {
        return Some(Slot::Invalid);
    }
    let payload_len = field(12, 4) as usize;
    let Some(payload) = bytes.get(offset + 64..offset + 64 + payload_len) else {
        return Some(Slot::Invalid);
    };
    let payload_ok = crc32c(payload) == field(16, 4) as u32;
    let at_own_offset = field(52, 4) * BLOCK as u64 == offset as u64;
    let (seq, epoch) = (field(32, 8), field(40, 8));
    if (seq, epoch) != (segment.seq, segment.epoch) {
        return Some(if payload_ok && at_own_offset && seq < segment.seq {
            Slot::Stale
        } else {
            Slot::Invalid
        });
    }
    if !at_own_offset || field(8, 2) != 1 || !payload_ok {
        return Some(Slot::Invalid);
    }
    Some(Slot::Valid(Frame {
        payload_len,
        record_count: field(20, 4),
        first_lsn: field(24, 8),
        inflight_max: field(10, 2) & 0xff,
    }))
}

/// A decoded record.
struct Record<'a> {
    kind: u8,
    flags: u8,
    partition: u32,
    term: u64,
    index: u64,
    payload: &'a [u8],
}

/// Every record of a valid frame's payload, or why it does not parse.
fn records(payload: &[u8], count: u64) -> Result<Vec<Record<'_>>, String> {
    let mut out = Vec::new();
    let mut at = 0usize;
    for _ in 0..count {
        let header = payload
            .get(at..at + 32)
            .ok_or(format!("record header beyond the payload at {at}"))?;
        let field = |off, len| le(header, off, len).unwrap_or(0);
        let len = field(0, 4) as usize;
        if len < 32 || len > payload.len() - at {
            return Err(format!("record length {len} at {at}"));
        }
        let kind = header[4];
        if !(1..=7).contains(&kind) || (matches!(kind, 2 | 3 | 4 | 6) && len != 32) {
            return Err(format!("kind {kind} of {len} bytes at {at}"));
        }
        let partition = u32::try_from(field(8, 8)).map_err(|_| "partition above u32")?;
        let index = field(24, 8);
        let index_fits = match kind {
            1 => index != 0 && index != u64::MAX,
            5 | 7 => index != 0,
            _ => true,
        };
        if !index_fits {
            return Err(format!("kind {kind} at index {index}"));
        }
        out.push(Record {
            kind,
            flags: header[5],
            partition,
            term: field(16, 8),
            index,
            payload: &payload[at + 32..at + len],
        });
        at += len.next_multiple_of(8);
    }
    if at != payload.len() {
        return Err(format!(
            "payload of {} bytes, records end at {at}",
            payload.len()
        ));
    }
    Ok(out)
}

/// One partition as the page's replay leaves it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    pub first: u64,
    pub fresh: bool,
    pub floor_term: u64,
    pub floor_meta: Vec<u8>,
    /// (term, payload) from `first` on.
    pub entries: Vec<(u64, Vec<u8>)>,
    /// (term, vote).
    pub term_vote: Option<(u64, Option<u64>)>,
    pub commit: Option<u64>,
}

impl Partition {
    fn new() -> Self {
        Self {
            first: 1,
            fresh: true,
            floor_term: 0,
            floor_meta: Vec::new(),
            entries: Vec::new(),
            term_vote: None,
            commit: None,
        }
    }

    fn next(&self) -> u64 {
        self.first + self.entries.len() as u64
    }

    /// The replay table of the page.
    fn apply(&mut self, record: &Record<'_>) {
        let (i, t) = (record.index, record.term);
        match record.kind {
            1 => {
                if self.fresh {
                    self.first = i;
                    self.fresh = false;
                } else if i >= self.first && i < self.next() {
                    self.entries.truncate((i - self.first) as usize);
                } else if i != self.next() {
                    self.entries.clear();
                    self.first = i;
                }
                self.entries.push((t, record.payload.to_vec()));
            }
            2 => {
                let vote = (record.flags & 1 == 1).then_some(i);
                self.term_vote = Some((t, vote));
            }
            3 => self.commit = Some(i),
            4 => {
                if i >= self.first {
                    self.entries
                        .truncate((i - self.first + 1).min(self.entries.len() as u64) as usize);
                } else {
                    self.entries.clear();
                    self.first = i + 1;
                }
                self.fresh = false;
            }
            5 => {
                if !self.fresh && i < self.first {
                    return;
                }
                if self.fresh || i > self.first {
                    let drop = (i.saturating_sub(self.first) as usize).min(self.entries.len());
                    self.entries.drain(..drop);
                    self.first = i;
                    self.fresh = false;
                }
                self.floor_term = t;
                self.floor_meta = record.payload.to_vec();
            }
            7 => {
                self.entries.clear();
                self.first = i;
                self.floor_term = t;
                self.floor_meta = record.payload.to_vec();
                self.fresh = false;
            }
            _ => unreachable!("kinds are checked; delete is handled by the log"),
        }
    }
}

/// What the reader found.
#[derive(Debug, Default)]
pub struct Found {
    pub partitions: BTreeMap<u32, Partition>,
    pub next_lsn: u64,
    pub first_lsn: Option<u64>,
    /// Segments walked, and how the last written one ended.
    pub segments_walked: usize,
    pub torn_tail: bool,
    pub stale_end: bool,
    /// The last written segment's seq and the offsets of its accepted frames.
    pub last_written: Option<(u64, Vec<usize>)>,
}

/// Reads a WAL directory as `docs/wal-format.md` says (without repairing anything).
///
/// # Errors
/// What makes the page refuse the directory (not a WAL, a missing segment, corruption).
pub fn read_directory(dir: &Path) -> Result<Found, String> {
    let marker = std::fs::read(dir.join("KOMMANDER_WAL")).map_err(|e| e.to_string())?;
    if !marker.starts_with(MARKER) {
        return Err("not a marker".into());
    }
    // 1. List.
    let mut seqs: Vec<u64> = std::fs::read_dir(dir)
        .map_err(|e| e.to_string())?
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            let stem = name.strip_suffix(".wal")?;
            let lower_hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
            (stem.len() == 16 && stem.bytes().all(lower_hex))
                .then(|| u64::from_str_radix(stem, 16).ok())?
        })
        .collect();
    seqs.sort_unstable();
    if seqs.windows(2).any(|w| w[1] != w[0] + 1) {
        return Err("missing segment".into());
    }
    let files: Vec<Vec<u8>> = seqs
        .iter()
        .map(|seq| std::fs::read(dir.join(format!("{seq:016x}.wal"))).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    // 2. Check the headers.
    let mut segments = Vec::new();
    for (i, (seq, bytes)) in seqs.iter().zip(&files).enumerate() {
        match segment_header(bytes, *seq) {
            Ok(header) => segments.push((header, bytes)),
            Err(what) => {
                let names_it = (1..bytes.len() / BLOCK).any(|block| {
                    let h = &bytes[block * BLOCK..block * BLOCK + 64];
                    &h[..4] == b"KRF1"
                        && crc32c(&h[8..]) == le(h, 4, 4).unwrap_or(0) as u32
                        && le(h, 32, 8) == Some(*seq)
                });
                if i + 1 < seqs.len() || names_it {
                    return Err(format!("segment {seq}: bad header ({what})"));
                }
            }
        }
    }
    // 3. The last written segment.
    let written = |(header, bytes): &(SegmentHeader, &Vec<u8>)| {
        matches!(
            check_slot(bytes, BLOCK, *header),
            Some(Slot::Valid(_) | Slot::Invalid)
        )
    };
    let mut found = Found::default();
    let Some(last_written) = segments.iter().rposition(written) else {
        return Ok(found);
    };
    // 4, 5. Walk, chaining LSNs.
    let mut frames: Vec<(&[u8], Frame)> = Vec::new();
    let mut expected: Option<u64> = None;
    for (i, (header, bytes)) in segments.iter().enumerate().take(last_written + 1) {
        found.segments_walked += 1;
        if i == last_written {
            found.last_written = Some((header.seq, Vec::new()));
        }
        let mut offset = BLOCK;
        while let Some(slot) = check_slot(bytes, offset, *header) {
            match slot {
                Slot::Zero => break,
                Slot::Stale => {
                    found.stale_end |= i == last_written;
                    break;
                }
                Slot::Valid(frame) if expected.is_none_or(|e| e == frame.first_lsn) => {
                    expected = Some(frame.first_lsn + frame.record_count);
                    let payload = &bytes[offset + 64..offset + 64 + frame.payload_len];
                    frames.push((payload, frame));
                    if let Some((_, offsets)) = &mut found.last_written {
                        offsets.push(offset);
                    }
                    offset += frame.footprint();
                }
                Slot::Valid(_) | Slot::Invalid => {
                    if i != last_written {
                        return Err(format!("segment {}: damage at {offset}", header.seq));
                    }
                    let (mut later, mut m) = (0, 1);
                    let mut probe = offset + BLOCK;
                    while let Some(after) = check_slot(bytes, probe, *header) {
                        if let Slot::Valid(frame) = after {
                            later += 1;
                            m = m.max(frame.inflight_max);
                            probe += frame.footprint();
                        } else {
                            probe += BLOCK;
                        }
                    }
                    if later >= m {
                        return Err(format!("segment {}: corrupt at {offset}", header.seq));
                    }
                    found.torn_tail = true;
                    break;
                }
            }
        }
    }
    found.first_lsn = frames.first().map(|(_, f)| f.first_lsn);
    found.next_lsn = expected.unwrap_or(0);
    // 6. Replay.
    for (payload, frame) in frames {
        for record in records(payload, frame.record_count)? {
            if record.kind == 6 {
                found.partitions.remove(&record.partition);
                continue;
            }
            found
                .partitions
                .entry(record.partition)
                .or_insert_with(Partition::new)
                .apply(&record);
        }
    }
    Ok(found)
}

/// What the `Wal` reports, in the reader's terms.
pub fn reported(wal: &Wal) -> BTreeMap<u32, Partition> {
    let mut out = BTreeMap::new();
    for (id, info) in wal.partitions().expect("partitions") {
        let floor_term = info
            .first_index
            .checked_sub(1)
            .and_then(|floor| wal.term_at(id, floor).ok());
        let entries = (info.first_index..=info.last_index)
            .map(|index| {
                let term = wal.term_at(id, index).expect("term");
                (term, wal.entry(id, index).expect("entry").to_vec())
            })
            .collect();
        out.insert(
            id.0,
            Partition {
                first: info.first_index,
                fresh: floor_term.is_none(),
                floor_term: floor_term.unwrap_or(0),
                floor_meta: wal.floor_meta(id).expect("meta").to_vec(),
                entries,
                term_vote: info.term_vote.map(|tv| (tv.term, tv.vote)),
                commit: info.commit_index,
            },
        );
    }
    out
}

fn p(id: u32) -> PartitionId {
    PartitionId(id)
}

/// Appends entries `indexes` of partition `id` at `term`, each with up to `payload_max` random
/// bytes.
fn append_entries(
    wal: &mut Wal,
    rng: &mut Rng,
    id: u32,
    indexes: std::ops::RangeInclusive<u64>,
    term: u64,
    payload_max: u64,
) {
    for index in indexes {
        let payload: Vec<u8> = (0..rng.below(payload_max))
            .map(|_| rng.next() as u8)
            .collect();
        wal.append_entry(p(id), index, term, &payload)
            .expect("append");
    }
}

#[test]
fn a_reader_written_from_the_format_page_reads_what_the_wal_reports() {
    assert_eq!(crc32c(b"123456789"), 0xE306_9283, "the page's check value");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = WalConfig {
        // Reproducible segment recycling.
        prepare_segments_in_background: false,
        ..small_config(BackendChoice::Blocking)
    };
    let mut wal = Wal::open(dir.path(), config.clone()).expect("open");
    let mut rng = Rng(11);
    // 1: a truncation (a log conflict), a term and vote, a commit index.
    append_entries(&mut wal, &mut rng, 1, 1..=12, 1, 300);
    wal.truncate_after(p(1), 8).expect("truncate");
    append_entries(&mut wal, &mut rng, 1, 9..=10, 2, 300);
    let term_vote = TermVote {
        term: 2,
        vote: Some(3),
    };
    wal.set_term_vote(p(1), term_vote).expect("term and vote");
    wal.set_commit_index(p(1), 7).expect("commit");
    // 2: compacted with a meta; a compaction at the floor keeps it.
    append_entries(&mut wal, &mut rng, 2, 1..=20, 3, 200);
    wal.compact_to(p(2), 15, b"configuration at 14")
        .expect("compact");
    wal.compact_to(p(2), 15, b"not kept").expect("at the floor");
    // 3, 4, 5: snapshot boundaries with metas (keeping the suffix, in conflict, beyond the
    // log), one batch with an entry after the boundary.
    for id in 3..=5 {
        append_entries(&mut wal, &mut rng, id, 1..=10, 2, 100);
    }
    wal.install_snapshot(p(3), 6, 2, b"three").expect("keeps");
    wal.install_snapshot(p(4), 6, 3, &[4; 40])
        .expect("conflict");
    wal.append(&[
        Write::InstallSnapshot {
            partition: p(5),
            index: 30,
            term: 4,
            floor_meta: b"",
        },
        Write::Entry {
            partition: p(5),
            index: 31,
            term: 4,
            payload: b"after the boundary",
        },
    ])
    .expect("beyond");
    // 6: deleted; 7: a term and vote only.
    wal.append_entry(p(6), 1, 1, b"gone").expect("append");
    wal.delete_partition(p(6)).expect("delete");
    wal.set_term_vote(
        p(7),
        TermVote {
            term: 5,
            vote: None,
        },
    )
    .expect("term and vote");
    wal.sync().expect("sync");
    // 9: churn into many segments (entries compacted behind it), so the oldest ones are
    // reclaimed, pinning records rewritten forward and files recycled.
    for index in 1..=600 {
        append_entries(&mut wal, &mut rng, 9, index..=index, 1, 900);
        if index % 10 == 0 {
            let meta = format!("floor of 9 at {}", index - 5);
            wal.compact_to(p(9), index - 4, meta.as_bytes())
                .expect("compact");
            wal.sync().expect("sync");
        }
    }
    wal.sync().expect("sync");
    // 10, after the churn (so its records stay in the last segments, not rewritten): a log
    // conflict, a compaction, one below the floor, a truncation below the first index (which
    // empties the log), a compaction past the last entry, entries after each.
    append_entries(&mut wal, &mut rng, 10, 1..=12, 1, 300);
    wal.truncate_after(p(10), 8).expect("conflict");
    append_entries(&mut wal, &mut rng, 10, 9..=10, 2, 300);
    wal.compact_to(p(10), 5, b"floor of 10 at 4")
        .expect("compact");
    wal.compact_to(p(10), 3, b"below the floor")
        .expect("below the floor");
    wal.truncate_after(p(10), 4).expect("below the first index");
    append_entries(&mut wal, &mut rng, 10, 5..=6, 3, 300);
    wal.compact_to(p(10), 9, b"floor of 10 at 8")
        .expect("past the last entry");
    wal.append_entry(p(10), 9, 3, b"after the floor")
        .expect("append");
    wal.set_commit_index(p(10), 9).expect("commit");
    wal.sync().expect("sync");
    let expected = reported(&wal);
    assert_eq!(
        (expected[&10].first, expected[&10].entries.len()),
        (9, 1),
        "10 restarted past its last entry"
    );
    assert_eq!(&expected[&10].floor_meta, b"floor of 10 at 8");
    let next_lsn = wal.next_lsn().0;
    let seqs = wal.segment_seqs();
    drop(wal);
    assert!(
        seqs.len() >= 3 && seqs[0] > 3,
        "several segments, the first ones reclaimed: {seqs:?}"
    );

    let found = read_directory(dir.path()).unwrap_or_else(|e| panic!("the reader failed: {e}"));
    assert_eq!(found.segments_walked, seqs.len());
    assert!(
        found.first_lsn > Some(0),
        "the log starts after reclaimed LSNs"
    );
    assert_eq!(found.next_lsn, next_lsn);
    assert!(
        found.torn_tail || found.stale_end,
        "the active segment is a recycled file: its earlier life's bytes end it"
    );
    assert_eq!(
        found.partitions.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    for (id, partition) in &expected {
        assert_eq!(&found.partitions[id], partition, "partition {id}");
    }
    assert_eq!(&found.partitions[&2].floor_meta, b"configuration at 14");
    assert_eq!(found.partitions[&1].term_vote, Some((2, Some(3))));
    // The Wal reopened reports the same.
    let wal = Wal::open(dir.path(), config.clone()).expect("reopen");
    assert_eq!(reported(&wal), expected);
    drop(wal);

    // Two frames in flight at a power loss, the earlier torn: one valid frame follows the
    // damaged one, fewer than the pipeline depth its flags give, so both are a torn tail.
    let (seq, offsets) = found.last_written.expect("a written segment");
    let [.., torn, _] = offsets[..] else {
        panic!("two frames in the active segment: {offsets:?}");
    };
    let path = dir.path().join(format!("{seq:016x}.wal"));
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[torn + 64 + 40] ^= 0x20;
    std::fs::write(&path, &bytes).expect("damage");
    let found = read_directory(dir.path()).unwrap_or_else(|e| panic!("the reader failed: {e}"));
    assert!(found.torn_tail, "a torn tail");
    let wal = Wal::open(dir.path(), config).expect("recovery drops the torn tail");
    assert_eq!(found.next_lsn, wal.next_lsn().0);
    assert!(found.next_lsn < next_lsn, "the tail is gone");
    assert_eq!(found.partitions, reported(&wal));
}
