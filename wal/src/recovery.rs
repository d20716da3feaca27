//! Recovery: scanning segment bytes and replaying their records. Pure (bytes in, decisions
//! out), so the fuzz target drives exactly this code; the `Wal` applies the decisions to files.
//!
//! The scan ([`survey`]) records every [`Damage`] with what recovery does about it and goes
//! on past fatal ones (for [`crate::inspect()`]); recovery fails with the first fatal one.
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
//! | after the recovered end (rest of the active segment, prepared segments): a slot whose header names its segment | zeroed before the first new frame ([`frames_beyond_the_end`]) |
//! | CRC-valid payload whose records do not parse (or name a partition above `u32::MAX`) | [`Error::Corrupt`] |

use crate::backend::BLOCK_SIZE;
use crate::error::{Error, Result};
use crate::format::{
    BatchFrameHeader, FIRST_FRAME_OFFSET, FRAME_HEADER_LEN, FrameCheck, SegmentHeader,
    SegmentHeaderError, check_frame, decode_records, decode_segment_header, frame_footprint,
};
use crate::segment::segment_name;
use crate::state::{Applied, LogState};

use zerocopy::{FromBytes, IntoBytes};

/// One segment's bytes as found on disk.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SegmentImage<'a> {
    /// Sequence number from the file name.
    pub(crate) seq: u64,
    /// The whole file.
    pub(crate) bytes: &'a [u8],
}

/// A valid frame found by the scan.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FoundFrame {
    pub(crate) segment_index: usize,
    pub(crate) offset: u64,
    pub(crate) header: BatchFrameHeader,
}

/// What recovery does about one damage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DamageAction {
    /// Fatal: recovery fails with [`Error::MissingSegment`] (the damage's `segment` is the
    /// first missing sequence number).
    MissingSegment,
    /// Fatal: recovery fails with [`Error::Corrupt`].
    Corrupt,
    /// A torn tail (a crash during the last writes): recovery drops it and the
    /// `frames_dropped` valid frames after it, and zeroes the rest of the segment.
    TornTail {
        /// Valid frames after the damage, dropped with it (never acknowledged: fewer than
        /// the writer's pipeline depth).
        frames_dropped: u64,
    },
    /// A bad header on the highest segment, which holds no frame (a damaged prepared
    /// segment): recovery removes the file.
    DiscardSegment,
}

impl DamageAction {
    /// Whether recovery refuses to open the log because of it.
    pub fn is_fatal(self) -> bool {
        matches!(self, Self::MissingSegment | Self::Corrupt)
    }
}

/// One damage found in a log, where it is and what recovery does about it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Damage {
    /// The segment's sequence number (for a missing segment: the first missing one).
    pub segment: u64,
    /// Byte offset in that segment.
    pub offset: u64,
    /// What is wrong.
    pub reason: String,
    /// What recovery does about it.
    pub action: DamageAction,
}

impl Damage {
    /// The error recovery returns for this damage, if it is fatal.
    pub fn error(&self) -> Option<Error> {
        match self.action {
            DamageAction::MissingSegment => Some(Error::MissingSegment {
                segment: self.segment,
            }),
            DamageAction::Corrupt => Some(corrupt(self.segment, self.offset, self.reason.clone())),
            DamageAction::TornTail { .. } | DamageAction::DiscardSegment => None,
        }
    }
}

/// What the scan found in one segment image.
#[derive(Clone, Debug)]
pub(crate) struct SegmentScan {
    /// The verified header (magic, CRC, version, seq equal to the name, size equal to the
    /// file), or why not.
    pub(crate) header: std::result::Result<SegmentHeader, String>,
    /// Whether its frames were walked (segments after the last written one hold none).
    pub(crate) walked: bool,
    /// The end of its last accepted frame (where the next frame would go).
    pub(crate) end: u64,
}

impl SegmentScan {
    /// `(seq, epoch)` from the verified header.
    pub(crate) fn seq_epoch(&self) -> Option<(u64, u64)> {
        self.header
            .as_ref()
            .ok()
            .map(|h| (h.segment_seq.get(), h.epoch.get()))
    }
}

/// What the scan found and decided.
#[derive(Debug, Default)]
pub(crate) struct ScanOutcome {
    /// Every damage, in the order recovery meets it: the first fatal one is its error.
    pub(crate) damages: Vec<Damage>,
    /// One per input image, same order.
    pub(crate) segments: Vec<SegmentScan>,
    /// The highest segment had a bad header and holds no frame: it is discarded.
    pub(crate) discard_highest: bool,
    /// Every valid frame, in LSN order. After a fatal damage the scan resynchronizes at the
    /// next valid frame (for [`crate::inspect()`]); recovery never uses frames past one.
    pub(crate) frames: Vec<FoundFrame>,
    /// A torn tail to zero: `(segment_index, offset)` up to the end of that segment.
    pub(crate) torn_tail: Option<(usize, u64)>,
    /// Slots after the recovered end (the rest of the active segment outside a torn tail,
    /// and every later segment) whose header names their segment: frames written before this
    /// recovery and not part of the log. Recovery zeroes each `(segment_index, offset)` slot
    /// before anything new is written, so they can never join the log (see
    /// [`frames_beyond_the_end`]).
    pub(crate) beyond_end: Vec<(usize, u64)>,
    /// Index of the segment new frames go to, and where.
    pub(crate) active: usize,
    pub(crate) cursor: u64,
    /// The next LSN (0 when there is no frame at all).
    pub(crate) next_lsn: u64,
}

impl ScanOutcome {
    /// The first fatal damage as recovery's error.
    pub(crate) fn fatal_error(&self) -> Option<Error> {
        self.damages.iter().find_map(Damage::error)
    }
}

fn corrupt(segment: u64, offset: u64, reason: impl Into<String>) -> Error {
    Error::Corrupt {
        segment,
        offset,
        reason: reason.into(),
    }
}

/// Scans segments (sorted by seq) and decides what is valid, failing at the first damage that
/// is not a torn tail. Total: never panics.
pub(crate) fn scan(images: &[SegmentImage<'_>]) -> Result<ScanOutcome> {
    let outcome = survey(images);
    match outcome.fatal_error() {
        Some(error) => Err(error),
        None => Ok(outcome),
    }
}

/// The segment header of `image`, verified against its name and size.
pub(crate) fn verified_header(
    image: &SegmentImage<'_>,
) -> std::result::Result<SegmentHeader, String> {
    let header = decode_segment_header(image.bytes).map_err(|e| match e {
        SegmentHeaderError::TooShort => "shorter than a segment header".to_owned(),
        SegmentHeaderError::BadMagic => "bad magic".to_owned(),
        SegmentHeaderError::BadCrc => "header CRC mismatch".to_owned(),
        SegmentHeaderError::UnsupportedVersion(v) => format!("unsupported format version {v}"),
        SegmentHeaderError::BadField(field) => format!("bad header field {field}"),
    })?;
    if header.segment_seq.get() != image.seq {
        return Err(format!(
            "the header names segment {}, the file is {}",
            segment_name(header.segment_seq.get()),
            segment_name(image.seq)
        ));
    }
    let size = u64::from(header.segment_blocks.get()) * BLOCK_SIZE as u64;
    if size != image.bytes.len() as u64 {
        return Err(format!(
            "header says {size} bytes, the file has {}",
            image.bytes.len()
        ));
    }
    Ok(header)
}

/// Scans segments (sorted by seq) like recovery, but records every damage instead of stopping
/// at the first fatal one: after one it resynchronizes at the next valid frame of the same
/// segment life (or the next segment). Up to the first fatal damage, its decisions are
/// recovery's. Total: never panics.
pub(crate) fn survey(images: &[SegmentImage<'_>]) -> ScanOutcome {
    let mut outcome = ScanOutcome::default();
    // Segment i follows missing ones: the LSN chain restarts there.
    let mut after_gap = vec![false; images.len()];
    for (i, pair) in images.windows(2).enumerate() {
        let expected = pair[0].seq.saturating_add(1);
        if pair[1].seq != expected {
            outcome.damages.push(Damage {
                segment: expected,
                offset: 0,
                reason: format!(
                    "segments {} to {} are missing",
                    segment_name(expected),
                    segment_name(pair[1].seq.saturating_sub(1))
                ),
                action: DamageAction::MissingSegment,
            });
            after_gap[i + 1] = true;
        }
    }
    let mut kept = images.len();
    for (i, image) in images.iter().enumerate() {
        let header = verified_header(image);
        if let Err(reason) = &header {
            let damage = |reason: String, action| Damage {
                segment: image.seq,
                offset: 0,
                reason,
                action,
            };
            if i + 1 < images.len() {
                outcome.damages.push(damage(
                    format!("bad segment header: {reason}"),
                    DamageAction::Corrupt,
                ));
            } else if let Some(offset) = first_frame_like(image.bytes, image.seq) {
                // A segment gets its name only after its header is durable, so this is
                // damage; it is safe to discard only if it never held a frame (a prepared
                // segment). One holding frames may hold acknowledged records.
                outcome.damages.push(damage(
                    format!(
                        "bad segment header ({reason}) on the newest segment, which holds a frame at {offset}"
                    ),
                    DamageAction::Corrupt,
                ));
            } else {
                outcome.damages.push(damage(
                    format!(
                        "bad segment header ({reason}) on the newest segment, which holds no frame"
                    ),
                    DamageAction::DiscardSegment,
                ));
                outcome.discard_highest = true;
                kept = i;
            }
        }
        outcome.segments.push(SegmentScan {
            header,
            walked: false,
            end: FIRST_FRAME_OFFSET,
        });
    }
    // The last segment with anything written at its first frame slot (a kept segment with a
    // bad header holds frames: it counts as written).
    let last_written = (0..kept).rev().find(|&i| {
        let Some((seq, epoch)) = outcome.segments[i].seq_epoch() else {
            return true;
        };
        match check_frame(images[i].bytes, FIRST_FRAME_OFFSET, seq, epoch) {
            FrameCheck::Zero | FrameCheck::Stale => false,
            FrameCheck::Valid(_) | FrameCheck::Invalid(_) => true,
        }
    });
    let Some(last_written) = last_written else {
        outcome.active = 0;
        outcome.cursor = FIRST_FRAME_OFFSET;
        outcome.beyond_end = frames_beyond_the_end(images, &outcome, kept);
        return outcome;
    };
    let mut expected_lsn: Option<u64> = None;
    for (i, image) in images.iter().enumerate().take(last_written + 1) {
        let Some((seq, epoch)) = outcome.segments[i].seq_epoch() else {
            expected_lsn = None;
            continue;
        };
        if after_gap[i] {
            expected_lsn = None;
        }
        let len = image.bytes.len() as u64;
        let mut offset = FIRST_FRAME_OFFSET;
        let mut end = FIRST_FRAME_OFFSET;
        loop {
            if offset + FRAME_HEADER_LEN as u64 > len {
                break;
            }
            let check = check_frame(image.bytes, offset, seq, epoch);
            // Where to resynchronize after a fatal damage here.
            let mut resync_from = offset + BLOCK_SIZE as u64;
            let invalid_reason = match check {
                FrameCheck::Zero | FrameCheck::Stale => break,
                FrameCheck::Invalid(reason) => reason,
                FrameCheck::Valid(header) => {
                    let first = header.first_lsn.get();
                    if expected_lsn.is_none_or(|e| e == first) {
                        let count = u64::from(header.record_count.get());
                        let Some(next) = first.checked_add(count) else {
                            outcome.damages.push(Damage {
                                segment: seq,
                                offset,
                                reason: "LSN overflow".into(),
                                action: DamageAction::Corrupt,
                            });
                            break;
                        };
                        expected_lsn = Some(next);
                        outcome.frames.push(FoundFrame {
                            segment_index: i,
                            offset,
                            header,
                        });
                        offset += frame_footprint(header.payload_len.get() as usize) as u64;
                        end = offset;
                        continue;
                    }
                    // A valid frame out of the chain: resynchronize at it.
                    resync_from = offset;
                    "frame LSN is not the next expected LSN"
                }
            };
            let reason = if i != last_written {
                format!("{invalid_reason} in a sealed segment")
            } else {
                // Torn tail or damage: count valid frames of this segment's life after it.
                let (later, inflight_max) = valid_frames_after(image.bytes, offset, seq, epoch);
                if later < inflight_max {
                    let reason = if stale_frame_after(image.bytes, offset, seq) {
                        format!(
                            "{invalid_reason}; stale frames of the file's earlier life follow: \
                             the usual end of a recycled segment (or a write that never landed)"
                        )
                    } else {
                        invalid_reason.to_owned()
                    };
                    outcome.damages.push(Damage {
                        segment: seq,
                        offset,
                        reason,
                        action: DamageAction::TornTail {
                            frames_dropped: later,
                        },
                    });
                    outcome.torn_tail = Some((i, offset));
                    break;
                }
                format!("{invalid_reason}, followed by {later} valid frames")
            };
            outcome.damages.push(Damage {
                segment: seq,
                offset,
                reason,
                action: DamageAction::Corrupt,
            });
            match next_valid_frame(image.bytes, resync_from, seq, epoch) {
                Some(next) => {
                    offset = next;
                    expected_lsn = None;
                }
                None => break,
            }
        }
        outcome.segments[i].walked = true;
        outcome.segments[i].end = end;
        if i == last_written {
            outcome.active = i;
            outcome.cursor = offset;
        }
    }
    outcome.next_lsn = expected_lsn.unwrap_or(0);
    outcome.beyond_end = frames_beyond_the_end(images, &outcome, kept);
    outcome
}

/// Every 4 KiB slot after the recovered end whose frame header names its segment (magic,
/// header CRC and the segment's seq, whatever the epoch): from the cursor in the active
/// segment (unless a torn tail is zeroed from there anyway), and everywhere in the later
/// segments up to `kept` (the prepared ones).
///
/// Such a frame was written by an earlier life of the log and never became part of it (an
/// earlier write in flight with it was lost at a power loss), yet it carries this segment's
/// seq and epoch. The new life appends from the end with the same LSNs into the same
/// segments; if its own frame over such a slot were lost in turn, the stale frame would be
/// valid there with the next LSN and join the log (node simulator seed 49). Zeroed before
/// the first new frame, none exists, and only frames of the current life can ever be found
/// after the end. Frames of a recycled file's earlier lives name older seqs: they can never
/// be valid in this one and stay.
fn frames_beyond_the_end(
    images: &[SegmentImage<'_>],
    outcome: &ScanOutcome,
    kept: usize,
) -> Vec<(usize, u64)> {
    let mut found = Vec::new();
    for (i, image) in images.iter().enumerate().take(kept).skip(outcome.active) {
        let from = if i == outcome.active {
            if outcome.torn_tail.is_some() {
                continue;
            }
            outcome.cursor
        } else {
            FIRST_FRAME_OFFSET
        };
        let mut offset = from;
        while let Some(slot) = frame_like_from(image.bytes, image.seq, offset) {
            found.push((i, slot));
            offset = slot + BLOCK_SIZE as u64;
        }
    }
    found
}

/// Valid frames of this segment life after the slot at `offset`, and the largest
/// `inflight_batches_max` they carry (at least 1).
fn valid_frames_after(bytes: &[u8], offset: u64, seq: u64, epoch: u64) -> (u64, u64) {
    let mut later = 0u64;
    let mut inflight_max = 1u64;
    let mut probe = offset + BLOCK_SIZE as u64;
    while probe + FRAME_HEADER_LEN as u64 <= bytes.len() as u64 {
        if let FrameCheck::Valid(h) = check_frame(bytes, probe, seq, epoch) {
            later += 1;
            inflight_max = inflight_max.max(u64::from(h.flags.get() & 0xff));
            probe += frame_footprint(h.payload_len.get() as usize) as u64;
        } else {
            probe += BLOCK_SIZE as u64;
        }
    }
    (later, inflight_max)
}

/// Whether a slot after `offset` holds a stale frame (of an earlier life of this file).
fn stale_frame_after(bytes: &[u8], offset: u64, seq: u64) -> bool {
    let mut probe = offset + BLOCK_SIZE as u64;
    while probe + FRAME_HEADER_LEN as u64 <= bytes.len() as u64 {
        // Any epoch but this life's: a stale frame is self-consistent at its own offset.
        if check_frame(bytes, probe, seq, 0) == FrameCheck::Stale {
            return true;
        }
        probe += BLOCK_SIZE as u64;
    }
    false
}

/// The first 4 KiB slot from `from` holding a valid frame of this segment life.
fn next_valid_frame(bytes: &[u8], from: u64, seq: u64, epoch: u64) -> Option<u64> {
    let mut probe = from;
    while probe + FRAME_HEADER_LEN as u64 <= bytes.len() as u64 {
        if let FrameCheck::Valid(_) = check_frame(bytes, probe, seq, epoch) {
            return Some(probe);
        }
        probe += BLOCK_SIZE as u64;
    }
    None
}

/// The offset of the first 4 KiB slot holding a frame header of segment `seq` whose own CRC
/// verifies (whatever its epoch), if any. Stale frames of a recycled file's earlier lives
/// carry older seqs and do not count.
fn first_frame_like(bytes: &[u8], seq: u64) -> Option<u64> {
    frame_like_from(bytes, seq, FIRST_FRAME_OFFSET)
}

/// Like [`first_frame_like`], from the slot at `from` (a multiple of 4 KiB) on.
fn frame_like_from(bytes: &[u8], seq: u64, from: u64) -> Option<u64> {
    let first = usize::try_from(from / BLOCK_SIZE as u64).ok()?;
    (first..bytes.len() / BLOCK_SIZE).find_map(|block| {
        let slot = bytes.get(block * BLOCK_SIZE..)?;
        let (header, _) = BatchFrameHeader::read_from_prefix(slot).ok()?;
        (header.magic == crate::format::FRAME_MAGIC
            && header.segment_seq.get() == seq
            && crc32c::crc32c(&header.as_bytes()[8..]) == header.header_crc.get())
        .then_some((block * BLOCK_SIZE) as u64)
    })
}

/// Replays the records of the scanned frames into a state, failing at the first frame whose
/// records do not parse.
pub(crate) fn replay(images: &[SegmentImage<'_>], outcome: &ScanOutcome) -> Result<LogState> {
    let mut state = LogState::default();
    match replay_surveyed(images, &outcome.frames, &mut state, |_| {})
        .first()
        .and_then(Damage::error)
    {
        Some(error) => Err(error),
        None => Ok(state),
    }
}

/// Replays the records of `frames` into `state`, calling `observe` after each record, and
/// returns the frames whose records do not parse (their records before the bad one are
/// applied; replay goes on with the next frame). Total: never panics.
pub(crate) fn replay_surveyed(
    images: &[SegmentImage<'_>],
    frames: &[FoundFrame],
    state: &mut LogState,
    mut observe: impl FnMut(&Applied<'_>),
) -> Vec<Damage> {
    let mut damages = Vec::new();
    for frame in frames {
        let Some(image) = images.get(frame.segment_index) else {
            continue;
        };
        let seq = image.seq;
        let damage = |offset: u64, reason: &str| Damage {
            segment: seq,
            offset,
            reason: reason.to_owned(),
            action: DamageAction::Corrupt,
        };
        let payload_start = frame.offset as usize + FRAME_HEADER_LEN;
        let payload_len = frame.header.payload_len.get() as usize;
        let Some(payload) = image
            .bytes
            .get(payload_start..payload_start.saturating_add(payload_len))
        else {
            damages.push(damage(frame.offset, "payload beyond the segment"));
            continue;
        };
        let mut lsn = frame.header.first_lsn.get();
        let decoded = decode_records(payload, frame.header.record_count.get(), |record| {
            let applied = Applied {
                kind: record.kind,
                flags: record.flags,
                partition: record.partition,
                term: record.term,
                index: record.index,
                lsn,
                segment: seq,
                offset: (payload_start + record.payload_offset) as u64,
                len: record.payload.len() as u32,
                payload: record.payload,
            };
            state.apply(&applied);
            observe(&applied);
            lsn += 1;
            Ok(())
        });
        if let Err(e) = decoded {
            damages.push(damage(
                frame.offset + (FRAME_HEADER_LEN + e.offset) as u64,
                e.reason,
            ));
        }
    }
    damages
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
pub(crate) fn recover_images(images: &[SegmentImage<'_>]) -> Result<RecoverySummary> {
    let outcome = scan(images)?;
    let state = replay(images, &outcome)?;
    Ok(RecoverySummary {
        frames: outcome.frames.len(),
        partitions: state.partitions.len(),
        next_lsn: outcome.next_lsn,
        torn_tail: outcome.torn_tail.is_some(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PartitionId;
    use crate::format::{FrameStamp, RecordKind, encode_record, encode_segment_header, seal_frame};

    /// A one-segment log whose single frame holds a commit index record of `partition`, the
    /// record's 64-bit partition field then set to `stored` (the frame sealed afterwards, so
    /// its CRCs verify).
    fn segment_with_partition_field(stored: u64) -> Vec<u8> {
        let (seq, epoch) = (1, 5);
        let mut bytes = vec![0u8; 4 * BLOCK_SIZE];
        bytes[..64].copy_from_slice(&encode_segment_header(seq, epoch, 4, 0));
        let frame = &mut bytes[BLOCK_SIZE..];
        let record = &mut frame[FRAME_HEADER_LEN..];
        let len = encode_record(
            record,
            RecordKind::CommitIndex,
            0,
            PartitionId(1),
            0,
            9,
            &[],
        );
        record[8..16].copy_from_slice(&stored.to_le_bytes());
        let stamp = FrameStamp {
            first_lsn: 0,
            record_count: 1,
            segment_seq: seq,
            epoch,
            prev_payload_crc: 0,
            offset: FIRST_FRAME_OFFSET,
            timestamp_ns: 0,
            inflight_frames_max: 1,
        };
        seal_frame(frame, len, &stamp);
        bytes
    }

    #[test]
    fn a_stored_partition_id_above_u32_is_corruption() {
        let good = segment_with_partition_field(u64::from(u32::MAX));
        let summary = recover_images(&[SegmentImage {
            seq: 1,
            bytes: &good,
        }])
        .expect("u32::MAX is a valid partition id");
        assert_eq!((summary.frames, summary.partitions), (1, 1));

        let bad = segment_with_partition_field(1 << 32);
        let error = recover_images(&[SegmentImage {
            seq: 1,
            bytes: &bad,
        }])
        .expect_err("a partition id above u32::MAX");
        let Error::Corrupt {
            segment,
            offset,
            reason,
        } = error
        else {
            panic!("expected Error::Corrupt, got {error:?}");
        };
        assert_eq!(segment, 1);
        assert_eq!(offset, FIRST_FRAME_OFFSET + FRAME_HEADER_LEN as u64);
        assert_eq!(reason, "partition id above u32::MAX");
    }
}
