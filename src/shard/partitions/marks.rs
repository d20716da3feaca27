//! What a user partition's own log says about its part in a split or merge (decision 0006,
//! amendment "split and merge, precisely"), and the summary a replica keeps of it:
//!
//! * a *generation entry* (log type [`GENERATION_LOG_TYPE`]), proposed by a source's leader
//!   once its committed map makes it the source of a transfer: the source's generation and
//!   whether it is draining. From its index on the source commits no write routed with an
//!   older generation (and, draining, no client write at all), whatever its node's map says;
//! * *import entries* (log type [`IMPORT_LOG_TYPE`]) in a target's log: a begin naming the
//!   transfer, chunks of the source's exported range, an end.
//!
//! Payloads, little-endian: a generation entry is the version byte (1), the generation
//! (`u64`) and the draining flag (`u8`, 0 or 1); an import entry is the version byte (1), its
//! kind (`u8`: 1 begin, 2 chunk, 3 end), the transfer (source `u32`, target `u32`, generation
//! `u64`, start `i32`, end `i32`), then, for a chunk, the exported bytes.
//!
//! [`LogMarks`] is a replica's summary of those entries: the highest generation and whether
//! a draining entry came, and the last import entry's state (of the log as it stands: a
//! truncated entry no longer counts, so a leader proposes it again).
//! Pure: no I/O.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::core::{Entry, EntryKind, LogIndex, PartitionId};
use crate::shard::codec::{decode_envelope, envelope_log_type};
use crate::shard::state_transfer::RangeTransfer;

/// The log type of a source's generation entry; applications may not write it.
pub const GENERATION_LOG_TYPE: &str = "_RaftGeneration";

/// The log type of a target's import entries; applications may not write it.
pub const IMPORT_LOG_TYPE: &str = "_RaftImport";

/// The version byte of both payloads.
const PAYLOAD_VERSION: u8 = 1;

/// The bytes of an import entry before a chunk's data.
pub(crate) const IMPORT_HEADER_LEN: usize = 1 + 1 + TRANSFER_LEN;

/// The bytes of an encoded [`RangeTransfer`].
const TRANSFER_LEN: usize = 4 + 4 + 8 + 4 + 4;

/// Whether applications are refused `log_type` (the shard writes it itself).
pub(crate) fn is_reserved_log_type(log_type: &[u8]) -> bool {
    log_type == GENERATION_LOG_TYPE.as_bytes() || log_type == IMPORT_LOG_TYPE.as_bytes()
}

/// A generation entry's content.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct GenerationMark {
    /// The source's generation in the map that made it a source.
    pub(crate) generation: u64,
    /// Whether it is draining (a merge's source): every client write is refused after it.
    pub(crate) draining: bool,
}

impl GenerationMark {
    /// The entry's payload.
    pub(crate) fn encode(self) -> Bytes {
        let mut out = BytesMut::with_capacity(10);
        out.put_u8(PAYLOAD_VERSION);
        out.put_u64_le(self.generation);
        out.put_u8(u8::from(self.draining));
        out.freeze()
    }

    fn decode(mut bytes: &[u8]) -> Result<Self, MarkError> {
        if bytes.len() != 10 || bytes.get_u8() != PAYLOAD_VERSION {
            return Err(MarkError("a generation entry of another length or version"));
        }
        let generation = bytes.get_u64_le();
        let draining = get_flag(&mut bytes)?;
        Ok(Self {
            generation,
            draining,
        })
    }

    /// The higher generation of the two, draining when either is.
    fn max(self, other: Self) -> Self {
        Self {
            generation: self.generation.max(other.generation),
            draining: self.draining || other.draining,
        }
    }
}

/// One import entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ImportEntry {
    /// An import of the transfer begins (again, if one began before without an end).
    Begin(RangeTransfer),
    /// The next exported bytes.
    Chunk(RangeTransfer, Bytes),
    /// Every chunk of the transfer since its begin is in the log.
    End(RangeTransfer),
}

impl ImportEntry {
    /// The entry's payload.
    pub(crate) fn encode(&self) -> Bytes {
        let (kind, plan, data) = match self {
            Self::Begin(plan) => (1, plan, &[][..]),
            Self::Chunk(plan, data) => (2, plan, &data[..]),
            Self::End(plan) => (3, plan, &[][..]),
        };
        let mut out = BytesMut::with_capacity(IMPORT_HEADER_LEN + data.len());
        out.put_u8(PAYLOAD_VERSION);
        out.put_u8(kind);
        put_transfer(&mut out, plan);
        out.put_slice(data);
        out.freeze()
    }

    fn decode(payload: &Bytes) -> Result<Self, MarkError> {
        if payload.len() < IMPORT_HEADER_LEN {
            return Err(MarkError("an import entry shorter than its header"));
        }
        let mut bytes = &payload[..IMPORT_HEADER_LEN];
        if bytes.get_u8() != PAYLOAD_VERSION {
            return Err(MarkError("an import entry of another version"));
        }
        let kind = bytes.get_u8();
        let plan = get_transfer(&mut bytes);
        let data = payload.slice(IMPORT_HEADER_LEN..);
        match (kind, data.is_empty()) {
            (1, true) => Ok(Self::Begin(plan)),
            (2, _) => Ok(Self::Chunk(plan, data)),
            (3, true) => Ok(Self::End(plan)),
            _ => Err(MarkError(
                "an import entry of an unknown kind, or data after it",
            )),
        }
    }
}

/// A generation or import entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SplitEntry {
    /// A generation entry.
    Generation(GenerationMark),
    /// An import entry.
    Import(ImportEntry),
}

/// Bytes of a generation or import entry that do not decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed split entry: {0}")]
pub(crate) struct MarkError(&'static str);

/// The generation or import entry `entry` is, if it is one (by its log type).
pub(crate) fn split_entry(entry: &Entry) -> Option<Result<SplitEntry, MarkError>> {
    if entry.kind != EntryKind::Normal {
        return None;
    }
    // Every entry passes here (appended, delivered): only the two system types decode.
    let log_type = envelope_log_type(&entry.payload)?;
    if log_type != GENERATION_LOG_TYPE.as_bytes() && log_type != IMPORT_LOG_TYPE.as_bytes() {
        return None;
    }
    let (log_type, payload) = decode_envelope(&entry.payload).ok()?;
    if log_type == GENERATION_LOG_TYPE.as_bytes() {
        Some(GenerationMark::decode(&payload).map(SplitEntry::Generation))
    } else if log_type == IMPORT_LOG_TYPE.as_bytes() {
        Some(ImportEntry::decode(&payload).map(SplitEntry::Import))
    } else {
        None
    }
}

/// Where the last import entry of a log left its import.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ImportMark {
    /// The transfer.
    pub(crate) plan: RangeTransfer,
    /// Whether its end came after its last begin.
    pub(crate) ended: bool,
}

/// A replica's summary of its log's generation and import entries (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct LogMarks {
    /// The highest generation entry, draining when any was.
    pub(crate) generation: GenerationMark,
    /// The last import's state.
    pub(crate) import: Option<ImportMark>,
}

impl LogMarks {
    /// Takes `entry` (the next one in log order) into account.
    pub(crate) fn note(&mut self, entry: &SplitEntry) {
        match entry {
            SplitEntry::Generation(mark) => self.generation = self.generation.max(*mark),
            SplitEntry::Import(ImportEntry::Begin(plan)) => {
                self.import = Some(ImportMark {
                    plan: *plan,
                    ended: false,
                });
            }
            SplitEntry::Import(ImportEntry::End(plan)) => {
                if let Some(import) = self.import.as_mut().filter(|i| i.plan == *plan) {
                    import.ended = true;
                }
            }
            SplitEntry::Import(ImportEntry::Chunk(..)) => {}
        }
    }

    /// The marks of `floor` followed by the decodable split entries of `entries` up to
    /// `through` (in log order).
    pub(crate) fn through(floor: Self, entries: &[Entry], through: LogIndex) -> Self {
        let mut marks = floor;
        for entry in entries.iter().take_while(|e| e.index <= through) {
            if let Some(Ok(split)) = split_entry(entry) {
                marks.note(&split);
            }
        }
        marks
    }

    /// The bytes the floor meta keeps after the configuration (see `floor_meta.rs`).
    pub(crate) fn encode_into(self, out: &mut BytesMut) {
        out.put_u64_le(self.generation.generation);
        out.put_u8(u8::from(self.generation.draining));
        match self.import {
            None => out.put_u8(0),
            Some(import) => {
                out.put_u8(if import.ended { 2 } else { 1 });
                put_transfer(out, &import.plan);
            }
        }
    }

    /// The longest [`LogMarks::encode_into`].
    pub(crate) const ENCODED_BYTES_MAX: usize = 8 + 1 + 1 + TRANSFER_LEN;

    /// The marks of a log that these marks (`self`, this replica's) reached and `later` (the
    /// marks at an installed snapshot's index, which is beyond everything this replica
    /// applied) continued: the higher generation, draining when either is, and the later
    /// import state — `later`'s, unless it knows of no import.
    pub(crate) fn merged(self, later: Self) -> Self {
        Self {
            generation: self.generation.max(later.generation),
            import: later.import.or(self.import),
        }
    }

    /// The bytes a snapshot transfer carries on its first chunk (`SnapshotChunk::marks`):
    /// empty for no marks, else [`LogMarks::encode_into`]'s.
    pub(crate) fn snapshot_bytes(self) -> Bytes {
        if self == Self::default() {
            return Bytes::new();
        }
        let mut out = BytesMut::with_capacity(Self::ENCODED_BYTES_MAX);
        self.encode_into(&mut out);
        out.freeze()
    }

    /// Reads [`LogMarks::snapshot_bytes`] back.
    ///
    /// # Errors
    /// [`MarkError`] when the bytes are not an encoding of marks.
    pub(crate) fn from_snapshot_bytes(bytes: &[u8]) -> Result<Self, MarkError> {
        if bytes.is_empty() {
            return Ok(Self::default());
        }
        Self::decode(bytes)
    }

    /// Reads [`LogMarks::encode_into`]'s bytes back (all of `bytes`).
    pub(crate) fn decode(mut bytes: &[u8]) -> Result<Self, MarkError> {
        if bytes.len() < 10 {
            return Err(MarkError("split marks truncated"));
        }
        let generation = bytes.get_u64_le();
        let draining = get_flag(&mut bytes)?;
        let ended = match bytes.get_u8() {
            0 => None,
            1 => Some(false),
            2 => Some(true),
            _ => return Err(MarkError("an import state other than 0, 1 or 2")),
        };
        let import = match ended {
            None => None,
            Some(ended) => {
                if bytes.len() != TRANSFER_LEN {
                    return Err(MarkError("an import's transfer of another length"));
                }
                let plan = get_transfer(&mut bytes);
                Some(ImportMark { plan, ended })
            }
        };
        if import.is_none() && !bytes.is_empty() {
            return Err(MarkError("bytes after the split marks"));
        }
        Ok(Self {
            generation: GenerationMark {
                generation,
                draining,
            },
            import,
        })
    }
}

// The wire codec bounds a snapshot chunk's marks by the longest encoding of them.
const _: () = assert!(LogMarks::ENCODED_BYTES_MAX == crate::core::SNAPSHOT_MARKS_BYTES_MAX);

/// Writes `plan` ([`TRANSFER_LEN`] bytes).
fn put_transfer(out: &mut BytesMut, plan: &RangeTransfer) {
    out.put_u32_le(plan.source.0);
    out.put_u32_le(plan.target.0);
    out.put_u64_le(plan.generation);
    out.put_i32_le(plan.start);
    out.put_i32_le(plan.end);
}

/// Reads a transfer from `bytes`, which hold at least [`TRANSFER_LEN`] (checked by callers).
fn get_transfer(bytes: &mut &[u8]) -> RangeTransfer {
    RangeTransfer {
        source: PartitionId(bytes.get_u32_le()),
        target: PartitionId(bytes.get_u32_le()),
        generation: bytes.get_u64_le(),
        start: bytes.get_i32_le(),
        end: bytes.get_i32_le(),
    }
}

/// Reads a flag byte (0 or 1) from `bytes`, which hold at least one (checked by callers).
fn get_flag(bytes: &mut &[u8]) -> Result<bool, MarkError> {
    match bytes.get_u8() {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(MarkError("a draining flag other than 0 or 1")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{Term, Ticket};
    use crate::shard::codec::encode_envelope;

    const PLAN: RangeTransfer = RangeTransfer {
        source: PartitionId(1),
        target: PartitionId(3),
        generation: 2,
        start: 100,
        end: i32::MAX,
    };

    fn entry(index: u64, log_type: &str, payload: &[u8]) -> Entry {
        Entry {
            index: LogIndex(index),
            term: Term(1),
            kind: EntryKind::Normal,
            ticket: Ticket(0),
            auto_commit: true,
            payload: encode_envelope(log_type, payload),
        }
    }

    #[test]
    fn entries_round_trip_and_damage_is_a_typed_error() {
        let mark = GenerationMark {
            generation: 7,
            draining: true,
        };
        let encoded = entry(1, GENERATION_LOG_TYPE, &mark.encode());
        assert_eq!(
            split_entry(&encoded),
            Some(Ok(SplitEntry::Generation(mark)))
        );
        for import in [
            ImportEntry::Begin(PLAN),
            ImportEntry::Chunk(PLAN, Bytes::from_static(b"registers")),
            ImportEntry::Chunk(PLAN, Bytes::new()),
            ImportEntry::End(PLAN),
        ] {
            let encoded = entry(2, IMPORT_LOG_TYPE, &import.encode());
            assert_eq!(split_entry(&encoded), Some(Ok(SplitEntry::Import(import))));
        }
        assert_eq!(split_entry(&entry(3, "app", b"x")), None);
        // Every truncation, a wrong version, an unknown kind: errors, never panics.
        let begin = ImportEntry::Begin(PLAN).encode();
        for len in 0..begin.len() {
            assert!(matches!(
                split_entry(&entry(4, IMPORT_LOG_TYPE, &begin[..len])),
                Some(Err(_))
            ));
        }
        let mut unknown = begin.to_vec();
        unknown[1] = 9;
        assert!(matches!(
            split_entry(&entry(5, IMPORT_LOG_TYPE, &unknown)),
            Some(Err(_))
        ));
        let mut flag = mark.encode().to_vec();
        flag[9] = 2;
        assert!(matches!(
            split_entry(&entry(6, GENERATION_LOG_TYPE, &flag)),
            Some(Err(_))
        ));
        assert!(is_reserved_log_type(GENERATION_LOG_TYPE.as_bytes()));
        assert!(is_reserved_log_type(IMPORT_LOG_TYPE.as_bytes()));
        assert!(!is_reserved_log_type(b"app"));
    }

    #[test]
    fn marks_keep_the_highest_generation_and_the_last_imports_state() {
        let generation = |g, draining| {
            SplitEntry::Generation(GenerationMark {
                generation: g,
                draining,
            })
        };
        let mut marks = LogMarks::default();
        marks.note(&generation(3, false));
        marks.note(&generation(2, false));
        assert_eq!(marks.generation.generation, 3);
        marks.note(&generation(3, true));
        marks.note(&generation(4, false));
        assert_eq!(
            marks.generation,
            GenerationMark {
                generation: 4,
                draining: true
            }
        );
        marks.note(&SplitEntry::Import(ImportEntry::Begin(PLAN)));
        let other = RangeTransfer {
            generation: 9,
            ..PLAN
        };
        // The end of another transfer ends nothing.
        marks.note(&SplitEntry::Import(ImportEntry::End(other)));
        assert_eq!(marks.import.map(|i| i.ended), Some(false));
        marks.note(&SplitEntry::Import(ImportEntry::End(PLAN)));
        assert_eq!(
            marks.import,
            Some(ImportMark {
                plan: PLAN,
                ended: true
            })
        );
        // A new begin restarts it.
        marks.note(&SplitEntry::Import(ImportEntry::Begin(PLAN)));
        assert_eq!(marks.import.map(|i| i.ended), Some(false));
    }

    /// A snapshot's marks: none travel as no bytes, any others round-trip, damage and a
    /// longer encoding are typed errors; merged, the generation is the higher and the import
    /// the snapshot's unless it knows of none.
    #[test]
    fn a_snapshots_marks_round_trip_and_merge_into_a_replicas() {
        assert!(LogMarks::default().snapshot_bytes().is_empty());
        assert_eq!(LogMarks::from_snapshot_bytes(&[]), Ok(LogMarks::default()));
        let ended = LogMarks {
            generation: GenerationMark {
                generation: 3,
                draining: false,
            },
            import: Some(ImportMark {
                plan: PLAN,
                ended: true,
            }),
        };
        let bytes = ended.snapshot_bytes();
        assert_eq!(bytes.len(), crate::core::SNAPSHOT_MARKS_BYTES_MAX);
        assert_eq!(LogMarks::from_snapshot_bytes(&bytes), Ok(ended));
        for len in 1..bytes.len() {
            assert!(LogMarks::from_snapshot_bytes(&bytes[..len]).is_err());
        }
        let mut longer = bytes.to_vec();
        longer.push(0);
        assert!(LogMarks::from_snapshot_bytes(&longer).is_err());

        let replicas = LogMarks {
            generation: GenerationMark {
                generation: 5,
                draining: true,
            },
            import: Some(ImportMark {
                plan: PLAN,
                ended: false,
            }),
        };
        assert_eq!(
            replicas.merged(ended),
            LogMarks {
                generation: GenerationMark {
                    generation: 5,
                    draining: true
                },
                import: ended.import,
            }
        );
        assert_eq!(replicas.merged(LogMarks::default()), replicas);
    }

    #[test]
    fn marks_round_trip_through_their_encoding() {
        let begun = LogMarks {
            generation: GenerationMark {
                generation: u64::MAX,
                draining: true,
            },
            import: Some(ImportMark {
                plan: PLAN,
                ended: false,
            }),
        };
        for marks in [LogMarks::default(), begun] {
            let mut out = BytesMut::new();
            marks.encode_into(&mut out);
            assert!(out.len() <= LogMarks::ENCODED_BYTES_MAX);
            assert_eq!(LogMarks::decode(&out), Ok(marks));
            for len in 0..out.len() {
                assert!(LogMarks::decode(&out[..len]).is_err(), "truncated at {len}");
            }
            let mut longer = out.to_vec();
            longer.push(0);
            assert!(LogMarks::decode(&longer).is_err());
        }
    }
}
