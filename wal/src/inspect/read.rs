//! Reading a directory's segments into memory so that a live node writing it does not spoil
//! the report: newest first, read again (listing anew) when a segment vanished or a fatal
//! damage reads differently a second time (see the module docs of `inspect`).

use std::io::ErrorKind;
use std::path::Path;

use crate::directory::DirListing;
use crate::error::{Error, Result};
use crate::recovery::{ScanOutcome, SegmentImage, survey, verified_header};
use crate::segment::segment_name;

/// Reads and scans the segments `seqs` until no race with a live node spoiled the read, at
/// most [`READ_ATTEMPTS_MAX`] times, listing the directory anew before each new read (see the
/// module docs). Returns the files, those lost to reclamation in the last read, and the scan.
pub(super) fn read_consistently(
    dir: &Path,
    mut seqs: Vec<u64>,
) -> Result<(Vec<SegmentFile>, Vec<String>, ScanOutcome)> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let (files, lost) = read_segments(dir, &seqs)?;
        let outcome = survey(&images_of(&files));
        let raced = !lost.is_empty() || changed_under_fatal_damage(dir, &files, &outcome)?;
        if !raced || attempts >= READ_ATTEMPTS_MAX {
            return Ok((files, lost, outcome));
        }
        seqs = DirListing::read(dir)?.seqs;
    }
}

/// A segment's sequence number and bytes.
pub(super) type SegmentFile = (u64, Vec<u8>);

/// Reads of a directory that changes under the read (see the module docs).
const READ_ATTEMPTS_MAX: usize = 5;

/// Reads the segments `seqs`, newest first (see the module docs), and returns them in seq
/// order, with the names of those the node reclaimed before they could be read: gone, or
/// renamed for recycling while being read (their header is then the next life's).
fn read_segments(dir: &Path, seqs: &[u64]) -> Result<(Vec<SegmentFile>, Vec<String>)> {
    let mut files = Vec::with_capacity(seqs.len());
    let mut lost = Vec::new();
    for &seq in seqs.iter().rev() {
        let path = dir.join(segment_name(seq));
        match std::fs::read(&path) {
            Ok(bytes) => files.push((seq, bytes)),
            Err(error) if error.kind() == ErrorKind::NotFound => lost.push(seq),
            Err(error) => return Err(Error::io("reading a segment", path, error)),
        }
    }
    files.reverse();
    let unverified =
        |(seq, bytes): &SegmentFile| verified_header(&SegmentImage { seq: *seq, bytes }).is_err();
    if files.iter().any(unverified) {
        let present = DirListing::read(dir)?.seqs;
        files.retain(|file| {
            let recycled = unverified(file) && present.binary_search(&file.0).is_err();
            if recycled {
                lost.push(file.0);
            }
            !recycled
        });
    }
    lost.sort_unstable();
    Ok((files, lost.into_iter().map(segment_name).collect()))
}

pub(super) fn images_of(files: &[SegmentFile]) -> Vec<SegmentImage<'_>> {
    files
        .iter()
        .map(|(seq, bytes)| SegmentImage { seq: *seq, bytes })
        .collect()
}

/// Whether a segment holding a fatal damage reads differently now (a live node wrote it
/// while it was read: the damage may be an artifact of the read).
fn changed_under_fatal_damage(
    dir: &Path,
    files: &[SegmentFile],
    outcome: &ScanOutcome,
) -> Result<bool> {
    for damage in outcome.damages.iter().filter(|d| d.action.is_fatal()) {
        let Some((_, before)) = files.iter().find(|(seq, _)| *seq == damage.segment) else {
            continue;
        };
        let path = dir.join(segment_name(damage.segment));
        match std::fs::read(&path) {
            Ok(now) if now == *before => {}
            Ok(_) => return Ok(true),
            Err(error) if error.kind() == ErrorKind::NotFound => return Ok(true),
            Err(error) => return Err(Error::io("reading a segment", path, error)),
        }
    }
    Ok(false)
}
