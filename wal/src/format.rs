//! The on-disk format: segment headers, batch frames and records (all little-endian), and
//! their total (panic-free) decoders. See `docs/wal-format.md` for the layout and the reasons.
//!
//! This module owns bytes only: no files, no state.

use zerocopy::byteorder::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::PartitionId;
use crate::backend::BLOCK_SIZE;

/// Magic at the start of every segment file.
pub(crate) const SEGMENT_MAGIC: [u8; 8] = *b"KRWALSEG";
/// Magic at the start of every batch frame. A zero magic means "nothing written here".
pub(crate) const FRAME_MAGIC: [u8; 4] = *b"KRF1";
/// The format version written and accepted.
pub(crate) const FORMAT_VERSION: u16 = 1;
/// Size of the segment header's meaningful part (the rest of block 0 is zero).
pub(crate) const SEGMENT_HEADER_LEN: usize = 64;
/// Size of a frame header.
pub(crate) const FRAME_HEADER_LEN: usize = 64;
/// Size of a record header.
pub(crate) const RECORD_HEADER_LEN: usize = 32;
/// Records start 8-byte aligned inside a frame payload.
pub(crate) const RECORD_ALIGN: usize = 8;
/// Frames start at this offset in a segment (block 0 holds the segment header).
pub(crate) const FIRST_FRAME_OFFSET: u64 = BLOCK_SIZE as u64;

/// Segment header, at offset 0 of every segment file.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned,
)]
#[repr(C)]
pub struct SegmentHeader {
    /// `SEGMENT_MAGIC` (`KRWALSEG`).
    pub magic: [u8; 8],
    /// `FORMAT_VERSION` (1).
    pub format_version: U16,
    /// Reserved flags (0).
    pub flags: U16,
    /// `SEGMENT_HEADER_LEN` (64).
    pub header_len: U32,
    /// The segment's sequence number (equals the number in its file name).
    pub segment_seq: U64,
    /// Random, chosen each time the file is prepared; frames carry it.
    pub epoch: U64,
    /// Reserved (0).
    pub reserved0: U64,
    /// Reserved (0).
    pub reserved2: U32,
    /// Segment size in 4096-byte blocks.
    pub segment_blocks: U32,
    /// Wall-clock creation time (diagnostics only).
    pub created_unix_ns: U64,
    /// Reserved (0).
    pub reserved1: U32,
    /// CRC32C of bytes `0..60`.
    pub crc: U32,
}

/// Batch frame header: the group-commit unit; starts 4096-aligned, frame padded to 4096.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned,
)]
#[repr(C)]
pub struct BatchFrameHeader {
    /// `FRAME_MAGIC` (`KRF1`).
    pub magic: [u8; 4],
    /// CRC32C of header bytes `8..64` (which include `payload_crc`).
    pub header_crc: U32,
    /// `FORMAT_VERSION` (1).
    pub version: U16,
    /// Bits 0..8: the writer's `inflight_batches_max` (how many trailing frames may have been
    /// in flight together at a crash; tells a torn pipeline tail from damage). Others 0.
    pub flags: U16,
    /// Payload bytes (records), excluding the header and the padding.
    pub payload_len: U32,
    /// CRC32C of the payload.
    pub payload_crc: U32,
    /// Records in the payload.
    pub record_count: U32,
    /// LSN of the first record; the next frame starts at `first_lsn + record_count`.
    pub first_lsn: U64,
    /// Must equal the segment header's (catches misdirected and stale frames).
    pub segment_seq: U64,
    /// Must equal the segment header's (catches frames left in a recycled file).
    pub epoch: U64,
    /// Payload CRC of the previous frame in this segment (0 for the first); diagnostics.
    pub prev_payload_crc: U32,
    /// This frame's offset in the segment, in 4096-byte blocks (catches misdirected writes).
    pub offset_blocks: U32,
    /// Wall-clock time of sealing (diagnostics only).
    pub timestamp_ns: U64,
}

/// Record header, 8-byte aligned inside a frame payload, followed by `len - 32` payload bytes.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned,
)]
#[repr(C)]
pub(crate) struct RecordHeader {
    /// Record length including this header (excluding alignment padding).
    pub(crate) len: U32,
    /// [`RecordKind`] as a byte.
    pub(crate) kind: u8,
    /// Kind-specific flags.
    pub(crate) flags: u8,
    /// Reserved (0).
    pub(crate) reserved: U16,
    /// Partition: a [`PartitionId`] in 64 bits (a value above `u32::MAX` is corruption).
    pub(crate) partition: U64,
    /// Term (kind-specific).
    pub(crate) term: U64,
    /// Index (kind-specific argument).
    pub(crate) index: U64,
}

const _: () = assert!(size_of::<SegmentHeader>() == SEGMENT_HEADER_LEN);
const _: () = assert!(size_of::<BatchFrameHeader>() == FRAME_HEADER_LEN);
const _: () = assert!(size_of::<RecordHeader>() == RECORD_HEADER_LEN);

/// Flag of a [`RecordKind::TermVote`] record: a vote is present (in `index`).
pub(crate) const TERM_VOTE_HAS_VOTE: u8 = 1;

/// What a record means. The discriminants are the on-disk `kind` byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum RecordKind {
    /// A log entry: `(partition, term, index)` + payload.
    Entry = 1,
    /// The latest term and vote: `term`, and the vote in `index` if [`TERM_VOTE_HAS_VOTE`].
    TermVote = 2,
    /// Commit index in `index`.
    CommitIndex = 3,
    /// Drop the partition's entries above `index`.
    TruncateAfter = 4,
    /// Drop the partition's entries below `index`; `term` is the term at `index - 1`; the
    /// payload is the floor's meta.
    CompactTo = 5,
    /// Forget the partition.
    DeletePartition = 6,
    /// Clear the partition's entries, first index = `index`, term at `index - 1` = `term`;
    /// the payload is the floor's meta. A rewrite start (segment reclamation: its live entries
    /// follow in the same frame) or a snapshot boundary in conflict with the log.
    Reset = 7,
}

impl RecordKind {
    /// Decodes a kind byte.
    pub(crate) fn from_byte(byte: u8) -> Option<Self> {
        Some(match byte {
            1 => Self::Entry,
            2 => Self::TermVote,
            3 => Self::CommitIndex,
            4 => Self::TruncateAfter,
            5 => Self::CompactTo,
            6 => Self::DeletePartition,
            7 => Self::Reset,
            _ => return None,
        })
    }

    /// Whether records of this kind may carry a payload (an entry's data, a floor's meta);
    /// the others are exactly [`RECORD_HEADER_LEN`] bytes.
    pub(crate) fn carries_payload(self) -> bool {
        matches!(self, Self::Entry | Self::CompactTo | Self::Reset)
    }
}

/// Bytes a record of `payload_len` occupies in a frame payload (header + payload, padded to 8).
pub(crate) fn record_footprint(payload_len: usize) -> usize {
    (RECORD_HEADER_LEN + payload_len).next_multiple_of(RECORD_ALIGN)
}

/// Bytes a frame with `payload_len` payload bytes occupies on disk (padded to 4096).
pub fn frame_footprint(payload_len: usize) -> usize {
    (FRAME_HEADER_LEN + payload_len).next_multiple_of(BLOCK_SIZE)
}

/// Builds a segment header block (4096 bytes, the header then zeros).
pub fn encode_segment_header(
    segment_seq: u64,
    epoch: u64,
    segment_blocks: u32,
    created_unix_ns: u64,
) -> [u8; SEGMENT_HEADER_LEN] {
    let mut header = SegmentHeader {
        magic: SEGMENT_MAGIC,
        format_version: FORMAT_VERSION.into(),
        flags: 0.into(),
        header_len: (SEGMENT_HEADER_LEN as u32).into(),
        segment_seq: segment_seq.into(),
        epoch: epoch.into(),
        reserved0: 0.into(),
        reserved2: 0.into(),
        segment_blocks: segment_blocks.into(),
        created_unix_ns: created_unix_ns.into(),
        reserved1: 0.into(),
        crc: 0.into(),
    };
    header.crc = crc32c::crc32c(&header.as_bytes()[..60]).into();
    let mut out = [0; SEGMENT_HEADER_LEN];
    out.copy_from_slice(header.as_bytes());
    out
}

/// Why a segment header is not valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SegmentHeaderError {
    /// Fewer bytes than a header.
    TooShort,
    /// Wrong magic (all zero: never written).
    BadMagic,
    /// CRC mismatch.
    BadCrc,
    /// A version this code does not read.
    UnsupportedVersion(u16),
    /// A field out of range.
    BadField(&'static str),
}

/// Decodes and verifies a segment header at the start of `bytes`.
///
/// # Errors
/// Why the header is not valid.
pub fn decode_segment_header(bytes: &[u8]) -> Result<SegmentHeader, SegmentHeaderError> {
    let (header, _) =
        SegmentHeader::read_from_prefix(bytes).map_err(|_| SegmentHeaderError::TooShort)?;
    if header.magic != SEGMENT_MAGIC {
        return Err(SegmentHeaderError::BadMagic);
    }
    if crc32c::crc32c(&header.as_bytes()[..60]) != header.crc.get() {
        return Err(SegmentHeaderError::BadCrc);
    }
    if header.format_version.get() != FORMAT_VERSION {
        return Err(SegmentHeaderError::UnsupportedVersion(
            header.format_version.get(),
        ));
    }
    if header.header_len.get() as usize != SEGMENT_HEADER_LEN {
        return Err(SegmentHeaderError::BadField("header_len"));
    }
    if header.segment_blocks.get() < 2 {
        return Err(SegmentHeaderError::BadField("segment_blocks"));
    }
    Ok(header)
}

/// Fields the writer stamps into a frame header when it seals the frame.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FrameStamp {
    /// LSN of the first record.
    pub(crate) first_lsn: u64,
    /// Records in the frame.
    pub(crate) record_count: u32,
    /// The segment's seq.
    pub(crate) segment_seq: u64,
    /// The segment's epoch.
    pub(crate) epoch: u64,
    /// Payload CRC of the previous frame in the segment.
    pub(crate) prev_payload_crc: u32,
    /// Offset of the frame in the segment.
    pub(crate) offset: u64,
    /// Diagnostics timestamp.
    pub(crate) timestamp_ns: u64,
    /// The writer's in-flight frame limit (1..=255).
    pub(crate) inflight_frames_max: u8,
}

/// Writes the frame header into `frame[..64]` for the payload in `frame[64..64 + payload_len]`
/// and returns the payload CRC.
///
/// # Panics
/// If `frame` is shorter than `64 + payload_len` (a writer bug, never input-driven).
pub(crate) fn seal_frame(frame: &mut [u8], payload_len: usize, stamp: &FrameStamp) -> u32 {
    let payload_crc = crc32c::crc32c(&frame[FRAME_HEADER_LEN..FRAME_HEADER_LEN + payload_len]);
    let mut header = BatchFrameHeader {
        magic: FRAME_MAGIC,
        header_crc: 0.into(),
        version: FORMAT_VERSION.into(),
        flags: u16::from(stamp.inflight_frames_max).into(),
        payload_len: (payload_len as u32).into(),
        payload_crc: payload_crc.into(),
        record_count: stamp.record_count.into(),
        first_lsn: stamp.first_lsn.into(),
        segment_seq: stamp.segment_seq.into(),
        epoch: stamp.epoch.into(),
        prev_payload_crc: stamp.prev_payload_crc.into(),
        offset_blocks: ((stamp.offset / BLOCK_SIZE as u64) as u32).into(),
        timestamp_ns: stamp.timestamp_ns.into(),
    };
    header.header_crc = crc32c::crc32c(&header.as_bytes()[8..]).into();
    frame[..FRAME_HEADER_LEN].copy_from_slice(header.as_bytes());
    payload_crc
}

/// Encodes a record (header + payload + zero padding to 8) at the start of `out`, returning
/// the bytes used ([`record_footprint`]).
///
/// # Panics
/// If `out` is too short (a writer bug, never input-driven).
pub(crate) fn encode_record(
    out: &mut [u8],
    kind: RecordKind,
    flags: u8,
    partition: PartitionId,
    term: u64,
    index: u64,
    payload: &[u8],
) -> usize {
    let len = RECORD_HEADER_LEN + payload.len();
    let footprint = record_footprint(payload.len());
    let header = RecordHeader {
        len: (len as u32).into(),
        kind: kind as u8,
        flags,
        reserved: 0.into(),
        partition: u64::from(partition.0).into(),
        term: term.into(),
        index: index.into(),
    };
    out[..RECORD_HEADER_LEN].copy_from_slice(header.as_bytes());
    out[RECORD_HEADER_LEN..len].copy_from_slice(payload);
    out[len..footprint].fill(0);
    footprint
}

/// What a frame position holds, for the recovery scan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameCheck {
    /// A valid frame for this segment (offset, seq and epoch match; both CRCs verify).
    Valid(BatchFrameHeader),
    /// The 64 header bytes are all zero: nothing was ever written here (clean end).
    Zero,
    /// A self-consistent frame (payload CRC, its own offset) of an earlier life of this file,
    /// naming an older seq: the clean end of a recycled segment. The same seq with another
    /// epoch is [`FrameCheck::Invalid`], never an end.
    Stale,
    /// Anything else: a torn or damaged frame. The reason names what failed.
    Invalid(&'static str),
}

/// Checks the frame at `offset` of a segment whose bytes are `segment` and whose header
/// says `(segment_seq, epoch)`. Total: never panics, whatever the bytes.
pub fn check_frame(segment: &[u8], offset: u64, segment_seq: u64, epoch: u64) -> FrameCheck {
    let Some(rest) = usize::try_from(offset)
        .ok()
        .and_then(|offset| segment.get(offset..))
    else {
        return FrameCheck::Invalid("offset beyond the segment");
    };
    let Ok((header, _)) = BatchFrameHeader::read_from_prefix(rest) else {
        return FrameCheck::Invalid("frame header beyond the segment");
    };
    if header.as_bytes().iter().all(|b| *b == 0) {
        return FrameCheck::Zero;
    }
    if header.magic != FRAME_MAGIC {
        return FrameCheck::Invalid("bad frame magic");
    }
    if crc32c::crc32c(&header.as_bytes()[8..]) != header.header_crc.get() {
        return FrameCheck::Invalid("frame header CRC mismatch");
    }
    let payload_len = header.payload_len.get() as usize;
    let Some(payload) = rest.get(FRAME_HEADER_LEN..FRAME_HEADER_LEN.saturating_add(payload_len))
    else {
        return FrameCheck::Invalid("frame payload beyond the segment");
    };
    let payload_ok = crc32c::crc32c(payload) == header.payload_crc.get();
    let same_life = header.segment_seq.get() == segment_seq && header.epoch.get() == epoch;
    if !same_life {
        // A frame from another life of this file (recycled) or another file (misdirected).
        // Older and self-consistent at its own offset: a stale leftover, the end of data.
        let at_own_offset = u64::from(header.offset_blocks.get()) * BLOCK_SIZE as u64 == offset;
        if payload_ok && at_own_offset && header.segment_seq.get() < segment_seq {
            return FrameCheck::Stale;
        }
        return FrameCheck::Invalid("frame of another segment or epoch");
    }
    if u64::from(header.offset_blocks.get()) * BLOCK_SIZE as u64 != offset {
        return FrameCheck::Invalid("frame written at the wrong offset");
    }
    if header.version.get() != FORMAT_VERSION {
        return FrameCheck::Invalid("unsupported frame version");
    }
    if !payload_ok {
        return FrameCheck::Invalid("frame payload CRC mismatch");
    }
    FrameCheck::Valid(header)
}

/// A decoded record borrowing its frame's payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RecordView<'a> {
    /// The kind.
    pub(crate) kind: RecordKind,
    /// Kind-specific flags.
    pub(crate) flags: u8,
    /// Partition.
    pub(crate) partition: PartitionId,
    /// Term.
    pub(crate) term: u64,
    /// Index.
    pub(crate) index: u64,
    /// Payload: an entry's data, a compact-to's or reset's floor meta; empty otherwise.
    pub(crate) payload: &'a [u8],
    /// Offset of the payload inside the frame payload.
    pub(crate) payload_offset: usize,
}

/// Why a CRC-valid payload does not parse (a writer bug or a CRC collision: reported as
/// corruption, never skipped).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RecordError {
    /// Offset inside the frame payload.
    pub(crate) offset: usize,
    /// What is wrong.
    pub(crate) reason: &'static str,
}

/// Why `index` cannot be the argument of a record of `kind`, if it cannot. An entry's index is
/// a log position with room for the next one (1 to `u64::MAX - 1`); a floor (compact to,
/// reset) is a first index, at least 1. The writer never writes others (`Wal::append`
/// refuses them), and replaying them would leave a partition without a valid first or next
/// index.
fn index_out_of_range(kind: RecordKind, index: u64) -> Option<&'static str> {
    match kind {
        RecordKind::Entry if index == 0 => Some("entry with index 0"),
        RecordKind::Entry if index == u64::MAX => Some("entry with index u64::MAX"),
        RecordKind::CompactTo | RecordKind::Reset if index == 0 => Some("floor at index 0"),
        _ => None,
    }
}

/// Decodes every record of a frame payload, expecting exactly `record_count`. Total.
///
/// # Errors
/// The first malformed record.
pub(crate) fn decode_records(
    payload: &[u8],
    record_count: u32,
    mut visit: impl FnMut(RecordView<'_>) -> Result<(), RecordError>,
) -> Result<(), RecordError> {
    let mut offset = 0usize;
    for _ in 0..record_count {
        let Some(rest) = payload.get(offset..) else {
            return Err(RecordError {
                offset,
                reason: "record beyond the payload",
            });
        };
        let Ok((header, _)) = RecordHeader::read_from_prefix(rest) else {
            return Err(RecordError {
                offset,
                reason: "record header beyond the payload",
            });
        };
        let len = header.len.get() as usize;
        if len < RECORD_HEADER_LEN || len > rest.len() {
            return Err(RecordError {
                offset,
                reason: "record length out of bounds",
            });
        }
        let Some(kind) = RecordKind::from_byte(header.kind) else {
            return Err(RecordError {
                offset,
                reason: "unknown record kind",
            });
        };
        if !kind.carries_payload() && len != RECORD_HEADER_LEN {
            return Err(RecordError {
                offset,
                reason: "control record with a payload",
            });
        }
        // Stored in 64 bits; a partition id is 32 (`PartitionId`).
        let Ok(partition) = u32::try_from(header.partition.get()) else {
            return Err(RecordError {
                offset,
                reason: "partition id above u32::MAX",
            });
        };
        if let Some(reason) = index_out_of_range(kind, header.index.get()) {
            return Err(RecordError { offset, reason });
        }
        visit(RecordView {
            kind,
            flags: header.flags,
            partition: PartitionId(partition),
            term: header.term.get(),
            index: header.index.get(),
            payload: &rest[RECORD_HEADER_LEN..len],
            payload_offset: offset + RECORD_HEADER_LEN,
        })?;
        offset += len.next_multiple_of(RECORD_ALIGN);
    }
    // The writer counts every record padded to 8, the last one too: the payload ends exactly
    // at the last record's padded end.
    if offset != payload.len() {
        return Err(RecordError {
            offset,
            reason: "payload length is not the records' padded length",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_with(records: &[(RecordKind, u32, u64, u64, &[u8])], stamp: &FrameStamp) -> Vec<u8> {
        let mut buf = vec![0u8; 3 * BLOCK_SIZE];
        let mut at = FRAME_HEADER_LEN;
        for (kind, partition, term, index, payload) in records {
            let partition = PartitionId(*partition);
            at += encode_record(&mut buf[at..], *kind, 0, partition, *term, *index, payload);
        }
        let payload_len = at - FRAME_HEADER_LEN;
        seal_frame(&mut buf, payload_len, stamp);
        buf.truncate(frame_footprint(payload_len));
        buf
    }

    fn stamp(offset: u64) -> FrameStamp {
        FrameStamp {
            first_lsn: 10,
            record_count: 2,
            segment_seq: 3,
            epoch: 77,
            prev_payload_crc: 0,
            offset,
            timestamp_ns: 1,
            inflight_frames_max: 2,
        }
    }

    fn segment_with_frame(frame: &[u8]) -> Vec<u8> {
        let mut segment = vec![0u8; 4 * BLOCK_SIZE];
        segment[BLOCK_SIZE..BLOCK_SIZE + frame.len()].copy_from_slice(frame);
        segment
    }

    #[test]
    fn frame_round_trip() {
        let frame = frame_with(
            &[
                (RecordKind::Entry, 5, 2, 9, b"hello"),
                (RecordKind::TermVote, 5, 2, 1, b""),
            ],
            &stamp(FIRST_FRAME_OFFSET),
        );
        let segment = segment_with_frame(&frame);
        let FrameCheck::Valid(header) = check_frame(&segment, FIRST_FRAME_OFFSET, 3, 77) else {
            panic!("frame should be valid");
        };
        let payload = &segment[BLOCK_SIZE + 64..][..header.payload_len.get() as usize];
        let mut seen = Vec::new();
        decode_records(payload, 2, |r| {
            seen.push((r.kind, r.partition.0, r.term, r.index, r.payload.to_vec()));
            Ok(())
        })
        .expect("records decode");
        assert_eq!(seen[0], (RecordKind::Entry, 5, 2, 9, b"hello".to_vec()));
        assert_eq!(seen[1], (RecordKind::TermVote, 5, 2, 1, vec![]));
    }

    #[test]
    fn frame_checks_reject_damage_and_other_lives() {
        let frame = frame_with(&[(RecordKind::Entry, 1, 1, 1, b"x")], &stamp(4096));
        let segment = segment_with_frame(&frame);
        assert_eq!(check_frame(&segment, 8192, 3, 77), FrameCheck::Zero);
        assert_eq!(
            check_frame(&segment, 4096, 3, 78),
            FrameCheck::Invalid("frame of another segment or epoch")
        );
        assert_eq!(check_frame(&segment, 4096, 4, 99), FrameCheck::Stale);
        let mut flipped = segment.clone();
        flipped[4096 + 70] ^= 1;
        assert_eq!(
            check_frame(&flipped, 4096, 3, 77),
            FrameCheck::Invalid("frame payload CRC mismatch")
        );
        let mut flipped = segment.clone();
        flipped[4096 + 30] ^= 1;
        assert_eq!(
            check_frame(&flipped, 4096, 3, 77),
            FrameCheck::Invalid("frame header CRC mismatch")
        );
        // The same frame copied to another offset.
        let mut moved = vec![0u8; 4 * BLOCK_SIZE];
        moved[8192..8192 + frame.len()].copy_from_slice(&frame);
        assert_eq!(
            check_frame(&moved, 8192, 3, 77),
            FrameCheck::Invalid("frame written at the wrong offset")
        );
        assert!(matches!(
            check_frame(&segment, u64::MAX, 3, 77),
            FrameCheck::Invalid(_)
        ));
    }

    #[test]
    fn segment_header_round_trip_and_damage() {
        let header = encode_segment_header(9, 1234, 16, 5);
        let decoded = decode_segment_header(&header).expect("valid header");
        assert_eq!(decoded.segment_seq.get(), 9);
        assert_eq!(decoded.epoch.get(), 1234);
        let mut bad = header;
        bad[20] ^= 4;
        assert_eq!(
            decode_segment_header(&bad).unwrap_err(),
            SegmentHeaderError::BadCrc
        );
        assert_eq!(
            decode_segment_header(&[0; 64]).unwrap_err(),
            SegmentHeaderError::BadMagic
        );
        assert_eq!(
            decode_segment_header(&[0; 10]).unwrap_err(),
            SegmentHeaderError::TooShort
        );
    }

    #[test]
    fn malformed_records_are_errors() {
        let mut payload = vec![0u8; 64];
        encode_record(
            &mut payload,
            RecordKind::Entry,
            0,
            PartitionId(1),
            1,
            1,
            b"abc",
        );
        payload[0] = 200; // length beyond the payload
        assert!(decode_records(&payload[..40], 1, |_| Ok(())).is_err());
        let mut payload = vec![0u8; 32];
        encode_record(
            &mut payload,
            RecordKind::CommitIndex,
            0,
            PartitionId(1),
            1,
            1,
            b"",
        );
        payload[4] = 99;
        assert_eq!(
            decode_records(&payload, 1, |_| Ok(())).unwrap_err().reason,
            "unknown record kind"
        );
        assert!(decode_records(&payload, 2, |_| Ok(())).is_err());
    }

    #[test]
    fn floor_records_carry_a_meta_and_other_control_records_nothing() {
        let mut payload = vec![0u8; 128];
        let mut at = 0;
        for kind in [RecordKind::CompactTo, RecordKind::Reset] {
            at += encode_record(&mut payload[at..], kind, 0, PartitionId(1), 2, 3, b"meta!");
        }
        let mut metas = Vec::new();
        decode_records(&payload[..at], 2, |r| {
            metas.push((r.kind, r.payload.to_vec()));
            Ok(())
        })
        .expect("floor records with a meta");
        assert_eq!(
            metas,
            [
                (RecordKind::CompactTo, b"meta!".to_vec()),
                (RecordKind::Reset, b"meta!".to_vec())
            ]
        );
        for kind in [
            RecordKind::TermVote,
            RecordKind::CommitIndex,
            RecordKind::TruncateAfter,
            RecordKind::DeletePartition,
        ] {
            let len = encode_record(&mut payload, kind, 0, PartitionId(1), 2, 3, b"x");
            assert_eq!(
                decode_records(&payload[..len], 1, |_| Ok(())).unwrap_err(),
                RecordError {
                    offset: 0,
                    reason: "control record with a payload"
                },
                "{kind:?}"
            );
        }
    }

    #[test]
    fn the_payload_length_counts_the_last_records_padding() {
        let mut payload = vec![0u8; 64];
        let len = encode_record(
            &mut payload,
            RecordKind::Entry,
            0,
            PartitionId(1),
            1,
            1,
            b"abc",
        );
        assert_eq!(len, 40, "32 + 3, padded to 8");
        decode_records(&payload[..len], 1, |_| Ok(())).expect("padded length");
        for short_or_long in [len - 5, len - 1, len + 8] {
            assert_eq!(
                decode_records(&payload[..short_or_long], 1, |_| Ok(()))
                    .unwrap_err()
                    .reason,
                "payload length is not the records' padded length",
                "{short_or_long}"
            );
        }
    }

    #[test]
    fn indexes_a_partition_cannot_hold_are_errors() {
        let cases = [
            (RecordKind::Entry, 1, None),
            (RecordKind::Entry, u64::MAX - 1, None),
            (RecordKind::Entry, 0, Some("entry with index 0")),
            (
                RecordKind::Entry,
                u64::MAX,
                Some("entry with index u64::MAX"),
            ),
            (RecordKind::CompactTo, 1, None),
            (RecordKind::CompactTo, u64::MAX, None),
            (RecordKind::CompactTo, 0, Some("floor at index 0")),
            (RecordKind::Reset, 0, Some("floor at index 0")),
            (RecordKind::TruncateAfter, 0, None),
            (RecordKind::TruncateAfter, u64::MAX, None),
            (RecordKind::CommitIndex, 0, None),
        ];
        for (kind, index, expected) in cases {
            // A valid record first, so the error names the second one's offset.
            let mut payload = vec![0u8; 64];
            encode_record(
                &mut payload,
                RecordKind::Entry,
                0,
                PartitionId(1),
                1,
                1,
                b"",
            );
            encode_record(&mut payload[32..], kind, 0, PartitionId(1), 1, index, b"");
            let result = decode_records(&payload, 2, |_| Ok(()));
            let error = expected.map(|reason| RecordError { offset: 32, reason });
            assert_eq!(result.err(), error, "{kind:?} at {index}");
        }
    }

    #[test]
    fn a_partition_id_above_u32_is_an_error() {
        let mut payload = vec![0u8; 32];
        let id = PartitionId(u32::MAX);
        encode_record(&mut payload, RecordKind::CommitIndex, 0, id, 1, 1, b"");
        let mut seen = Vec::new();
        decode_records(&payload, 1, |r| {
            seen.push(r.partition);
            Ok(())
        })
        .expect("u32::MAX is a valid partition id");
        assert_eq!(seen, [id]);
        // The 64-bit field's upper half set: 2^32.
        payload[8..16].copy_from_slice(&(1u64 << 32).to_le_bytes());
        assert_eq!(
            decode_records(&payload, 1, |_| Ok(())).unwrap_err(),
            RecordError {
                offset: 0,
                reason: "partition id above u32::MAX"
            }
        );
    }
}
