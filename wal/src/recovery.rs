//! Recovery: scanning segment bytes and replaying their records. Pure (bytes in, decisions
//! out), so the fuzz target drives exactly this code; the `Wal` applies the decisions to files.
//!
//! The decision table (also in `docs/wal-format.md`, with the test covering each row):
//!
//! | found | action |
//! |---|---|
//! | bad header on the highest segment, no frame in it | a damaged prepared segment: discard the file |
//! | bad header on the highest segment holding a frame | [`Error::Corrupt`] at offset 0 |
//! | bad header on any other segment | [`Error::Corrupt`] at offset 0 |
//! | gap in segment sequence numbers | [`Error::MissingSegment`] |
//! | zero frame slot | clean end of that segment |
//! | stale frame (older seq, self-consistent) | clean end of a recycled segment |
//! | invalid frame in a segment before the last written one | [`Error::Corrupt`] |
//! | invalid frame in the last written segment, fewer than `inflight` valid frames after it | torn tail: drop it and them, zero from it to the end |
//! | invalid frame followed by `inflight` or more valid frames | [`Error::Corrupt`] |
//! | valid frame whose `first_lsn` is not the expected next LSN | treated as an invalid frame |
//! | CRC-valid payload whose records do not parse | [`Error::Corrupt`] |

use crate::backend::BLOCK_SIZE;
use crate::error::{Error, Result};
use crate::format::{
    FIRST_FRAME_OFFSET, FRAME_HEADER_LEN, FrameCheck, FrameHeader, RecordKind, decode_records,
    decode_segment_header, frame_footprint,
};
use crate::state::{Applied, LogState};

use zerocopy::{FromBytes, IntoBytes};

/// One segment's bytes as found on disk.
#[derive(Clone, Copy, Debug)]
pub struct SegmentImage<'a> {
    /// Sequence number from the file name.
    pub seq: u64,
    /// The whole file.
    pub bytes: &'a [u8],
}

/// A valid frame found by the scan.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FoundFrame {
    pub(crate) segment_index: usize,
    pub(crate) offset: u64,
    pub(crate) header: FrameHeader,
}

/// What recovery decided.
#[derive(Debug, Default)]
pub(crate) struct ScanOutcome {
    /// The highest segment had a bad header: it is discarded.
    pub(crate) discard_highest: bool,
    /// `(seq, epoch)` of each kept segment (same order as the input, minus a discarded one).
    pub(crate) headers: Vec<(u64, u64)>,
    /// Every valid frame, in LSN order.
    pub(crate) frames: Vec<FoundFrame>,
    /// A torn tail to zero: `(segment_index, offset)` up to the end of that segment.
    pub(crate) torn_tail: Option<(usize, u64)>,
    /// Index of the segment new frames go to, and where.
    pub(crate) active: usize,
    pub(crate) cursor: u64,
    /// The next LSN (0 when there is no frame at all).
    pub(crate) next_lsn: u64,
}

fn corrupt(segment: u64, offset: u64, reason: impl Into<String>) -> Error {
    Error::Corrupt {
        segment,
        offset,
        reason: reason.into(),
    }
}

/// Scans segments (sorted by seq) and decides what is valid. Total: never panics.
pub(crate) fn scan(images: &[SegmentImage<'_>]) -> Result<ScanOutcome> {
    let mut outcome = ScanOutcome::default();
    for pair in images.windows(2) {
        if pair[1].seq != pair[0].seq + 1 {
            return Err(Error::MissingSegment {
                segment: pair[0].seq + 1,
            });
        }
    }
    let mut kept = images.len();
    for (i, image) in images.iter().enumerate() {
        let header = decode_segment_header(image.bytes).ok().filter(|h| {
            h.segment_seq.get() == image.seq
                && u64::from(h.segment_blocks.get()) * BLOCK_SIZE as u64 == image.bytes.len() as u64
        });
        match header {
            Some(h) => outcome.headers.push((h.segment_seq.get(), h.epoch.get())),
            None if i + 1 == images.len() => {
                // A segment gets its name only after its header is durable, so this is
                // damage; it is safe to discard only if it never held a frame (a prepared
                // segment). One holding frames may hold acknowledged records.
                if let Some(offset) = first_frame_like(image.bytes, image.seq) {
                    return Err(corrupt(
                        image.seq,
                        0,
                        format!(
                            "bad segment header on the newest segment, which holds a frame at {offset}"
                        ),
                    ));
                }
                outcome.discard_highest = true;
                kept = i;
            }
            None => return Err(corrupt(image.seq, 0, "bad segment header")),
        }
    }
    let images = &images[..kept];
    // The last segment with anything written at its first frame slot.
    let last_written = images.iter().enumerate().rev().find_map(|(i, image)| {
        let (seq, epoch) = outcome.headers[i];
        match crate::format::check_frame(image.bytes, FIRST_FRAME_OFFSET, seq, epoch) {
            FrameCheck::Zero | FrameCheck::Stale => None,
            FrameCheck::Valid(_) | FrameCheck::Invalid(_) => Some(i),
        }
    });
    let Some(last_written) = last_written else {
        outcome.active = 0;
        outcome.cursor = FIRST_FRAME_OFFSET;
        return Ok(outcome);
    };
    let mut expected_lsn: Option<u64> = None;
    for (i, image) in images.iter().enumerate().take(last_written + 1) {
        let (seq, epoch) = outcome.headers[i];
        let len = image.bytes.len() as u64;
        let mut offset = FIRST_FRAME_OFFSET;
        loop {
            if offset + FRAME_HEADER_LEN as u64 > len {
                break;
            }
            let check = crate::format::check_frame(image.bytes, offset, seq, epoch);
            let invalid_reason = match check {
                FrameCheck::Zero | FrameCheck::Stale => break,
                FrameCheck::Invalid(reason) => reason,
                FrameCheck::Valid(header) => {
                    let first = header.first_lsn.get();
                    if expected_lsn.is_none_or(|e| e == first) {
                        let count = u64::from(header.record_count.get());
                        let Some(next) = first.checked_add(count) else {
                            return Err(corrupt(seq, offset, "LSN overflow"));
                        };
                        expected_lsn = Some(next);
                        outcome.frames.push(FoundFrame {
                            segment_index: i,
                            offset,
                            header,
                        });
                        offset += frame_footprint(header.payload_len.get() as usize) as u64;
                        continue;
                    }
                    "frame LSN is not the next expected LSN"
                }
            };
            if i != last_written {
                return Err(corrupt(
                    seq,
                    offset,
                    format!("{invalid_reason} in a sealed segment"),
                ));
            }
            // Torn tail or damage: count valid frames of this segment's life after it.
            let mut later = 0u64;
            let mut inflight_max = 1u64;
            let mut probe = offset + BLOCK_SIZE as u64;
            while probe + FRAME_HEADER_LEN as u64 <= len {
                if let FrameCheck::Valid(h) =
                    crate::format::check_frame(image.bytes, probe, seq, epoch)
                {
                    later += 1;
                    inflight_max = inflight_max.max(u64::from(h.flags.get() & 0xff));
                    probe += frame_footprint(h.payload_len.get() as usize) as u64;
                } else {
                    probe += BLOCK_SIZE as u64;
                }
            }
            if later >= inflight_max {
                return Err(corrupt(
                    seq,
                    offset,
                    format!("{invalid_reason}, followed by {later} valid frames"),
                ));
            }
            outcome.torn_tail = Some((i, offset));
            break;
        }
        if i == last_written {
            outcome.active = i;
            outcome.cursor = offset;
        }
    }
    outcome.next_lsn = expected_lsn.unwrap_or(0);
    Ok(outcome)
}

/// The offset of the first 4 KiB slot holding a frame header of segment `seq` whose own CRC
/// verifies (whatever its epoch), if any. Stale frames of a recycled file's earlier lives
/// carry older seqs and do not count.
fn first_frame_like(bytes: &[u8], seq: u64) -> Option<u64> {
    (1..bytes.len() / BLOCK_SIZE).find_map(|block| {
        let slot = bytes.get(block * BLOCK_SIZE..)?;
        let (header, _) = FrameHeader::read_from_prefix(slot).ok()?;
        (header.magic == crate::format::FRAME_MAGIC
            && header.segment_seq.get() == seq
            && crc32c::crc32c(&header.as_bytes()[8..]) == header.header_crc.get())
        .then_some((block * BLOCK_SIZE) as u64)
    })
}

/// Replays the records of the scanned frames into a state.
pub(crate) fn replay(images: &[SegmentImage<'_>], outcome: &ScanOutcome) -> Result<LogState> {
    let mut state = LogState::default();
    for frame in &outcome.frames {
        let image = &images[frame.segment_index];
        let seq = image.seq;
        let payload_start = frame.offset as usize + FRAME_HEADER_LEN;
        let payload_len = frame.header.payload_len.get() as usize;
        let payload = image
            .bytes
            .get(payload_start..payload_start + payload_len)
            .ok_or_else(|| corrupt(seq, frame.offset, "payload beyond the segment"))?;
        let mut lsn = frame.header.first_lsn.get();
        decode_records(payload, frame.header.record_count.get(), |record| {
            if record.kind == RecordKind::Entry && record.index == 0 {
                return Err(crate::format::RecordError {
                    offset: record.payload_offset,
                    reason: "entry with index 0",
                });
            }
            state.apply(&Applied {
                kind: record.kind,
                flags: record.flags,
                partition: record.partition,
                term: record.term,
                index: record.index,
                lsn,
                segment: seq,
                offset: (payload_start + record.payload_offset) as u64,
                len: record.payload.len() as u32,
            });
            lsn += 1;
            Ok(())
        })
        .map_err(|e| {
            corrupt(
                seq,
                frame.offset + (FRAME_HEADER_LEN + e.offset) as u64,
                e.reason,
            )
        })?;
    }
    Ok(state)
}

/// Summary of recovering arbitrary segment bytes (for fuzzing and tests).
#[derive(Debug, PartialEq, Eq)]
pub struct RecoverySummary {
    /// Valid frames replayed.
    pub frames: usize,
    /// Partitions in the recovered state.
    pub partitions: usize,
    /// The next LSN.
    pub next_lsn: u64,
    /// Whether a torn tail was found.
    pub torn_tail: bool,
}

/// Runs the recovery scan and replay over in-memory segment images (sorted by seq), exactly as
/// opening a directory would, without touching files. Total: never panics, whatever the bytes.
///
/// # Errors
/// What opening a directory with these segments would report.
pub fn recover_images(images: &[SegmentImage<'_>]) -> Result<RecoverySummary> {
    let outcome = scan(images)?;
    let state = replay(images, &outcome)?;
    Ok(RecoverySummary {
        frames: outcome.frames.len(),
        partitions: state.partitions.len(),
        next_lsn: outcome.next_lsn,
        torn_tail: outcome.torn_tail.is_some(),
    })
}
