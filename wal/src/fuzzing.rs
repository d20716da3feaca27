//! Entry points for the fuzz targets (`fuzz/`) and for the default-run test that replays
//! their corpus (each takes arbitrary bytes and must never panic), and the format's decoders
//! that the tests use to build and damage segment files.
//!
//! This module serves the crate's own fuzzing and tests; it is not a stable API.

use crate::backend::BLOCK_SIZE;
use crate::format::{FRAME_HEADER_LEN, decode_records};
use crate::recovery::{SegmentImage, recover_images};

pub use crate::format::{
    BatchFrameHeader, FrameCheck, SegmentHeader, SegmentHeaderError, check_frame,
    decode_segment_header, encode_segment_header, frame_footprint,
};
pub use crate::recovery::RecoverySummary;

/// Decodes `data` as one segment: the segment header, then every 4 KiB frame slot (and, if
/// the first 8 bytes after the header say so, one arbitrary offset), and the records of every
/// valid frame. The segment's seq and epoch come from its header if it decodes, else from the
/// first 16 bytes. Returns how many records decoded.
pub fn frame_decode(data: &[u8]) -> usize {
    let (seq, epoch) = match decode_segment_header(data) {
        Ok(h) => (h.segment_seq.get(), h.epoch.get()),
        Err(_) => (read_u64(data, 0), read_u64(data, 8)),
    };
    let mut records = 0;
    let mut offsets: Vec<u64> = (1..=data.len() / BLOCK_SIZE)
        .map(|b| (b * BLOCK_SIZE) as u64)
        .collect();
    offsets.push(read_u64(data, 64) % (data.len() as u64 + 1));
    for offset in offsets {
        if let FrameCheck::Valid(header) = check_frame(data, offset, seq, epoch) {
            let start = offset as usize + FRAME_HEADER_LEN;
            let Some(payload) = data.get(start..start + header.payload_len.get() as usize) else {
                continue;
            };
            let _ = decode_records(payload, header.record_count.get(), |_| {
                records += 1;
                Ok(())
            });
        }
    }
    records
}

/// Splits `data` into segment images and runs the whole recovery scan and replay over them.
/// Layout: byte 0 = number of segments (1 to 4, modulo), bytes 1..9 = the first seq (LE,
/// halved); then each segment but the last as a `u32` LE length and that many bytes (clamped
/// to what is left); the last segment is the rest.
///
/// # Errors
/// What recovery reports for these bytes.
pub fn recovery(data: &[u8]) -> crate::Result<RecoverySummary> {
    let count = usize::from(data.first().copied().unwrap_or(0) % 4) + 1;
    let first_seq = read_u64(data, 1) >> 1;
    let mut rest = data.get(9..).unwrap_or_default();
    let mut images = Vec::with_capacity(count);
    for i in 0..count {
        let bytes = if i + 1 == count {
            std::mem::take(&mut rest)
        } else {
            let len = read_u32(rest, 0) as usize;
            let body = rest.get(4..).unwrap_or_default();
            let (segment, tail) = body.split_at(len.min(body.len()));
            rest = tail;
            segment
        };
        images.push(SegmentImage {
            seq: first_seq + i as u64,
            bytes,
        });
    }
    recover_images(&images)
}

/// Builds a `recovery` input from segment files' bytes (for seeding the corpus).
pub fn recovery_input(first_seq: u64, segments: &[&[u8]]) -> Vec<u8> {
    let mut out = vec![(segments.len() as u8).wrapping_sub(1)];
    out.extend_from_slice(&(first_seq << 1).to_le_bytes());
    for (i, segment) in segments.iter().enumerate() {
        if i + 1 < segments.len() {
            out.extend_from_slice(&(segment.len() as u32).to_le_bytes());
        }
        out.extend_from_slice(segment);
    }
    out
}

fn read_u32(data: &[u8], at: usize) -> u32 {
    let mut bytes = [0u8; 4];
    if let Some(src) = data.get(at..at + 4) {
        bytes.copy_from_slice(src);
    }
    u32::from_le_bytes(bytes)
}

fn read_u64(data: &[u8], at: usize) -> u64 {
    let mut bytes = [0u8; 8];
    if let Some(src) = data.get(at..at + 8) {
        bytes.copy_from_slice(src);
    }
    u64::from_le_bytes(bytes)
}
