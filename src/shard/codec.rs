//! How entries are stored: the WAL record of an entry is a fixed 16-byte little-endian header
//! ([`EntryHeader`]) followed by the core entry's payload, which is itself an *envelope*:
//! `log_type_len: u16 LE`, the `log_type` UTF-8 bytes, then the application payload.
//!
//! The envelope travels inside the core's opaque `Entry::payload`, so the `log_type` is
//! replicated with the entry; the header carries what the WAL does not know (kind, ticket,
//! auto-commit). Decoding slices the `Bytes` borrowed from the WAL mapping: no payload copy.
//! Encoding copies the payload once into the WAL's frame (the WAL takes one contiguous slice).
//!
//! Decoding is total: malformed bytes (from a damaged disk or a misbehaving peer) are a
//! [`CodecError`], never a panic.

use bytes::Bytes;
use zerocopy::little_endian::{U16, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::core::{Entry, EntryKind, LogIndex, Term, Ticket};

/// Version byte of [`EntryHeader`]; bumped on any layout change.
pub const ENTRY_FORMAT_VERSION: u8 = 1;

/// The fixed header in front of every entry record in the WAL.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct EntryHeader {
    /// [`ENTRY_FORMAT_VERSION`].
    pub version: u8,
    /// [`EntryKind::code`].
    pub kind: u8,
    /// 1 when the entry is auto-committed, 0 when it waits for a Commit/Rollback marker.
    pub auto_commit: u8,
    /// Zero.
    pub reserved: [u8; 5],
    /// The proposal's ticket.
    pub ticket: U64,
}

/// Size of [`EntryHeader`] in bytes.
pub const ENTRY_HEADER_LEN: usize = std::mem::size_of::<EntryHeader>();

/// Bytes that cannot be an entry record or envelope.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// Fewer bytes than the fixed header or the declared `log_type` length.
    #[error("entry record truncated: {len} bytes")]
    Truncated {
        /// Bytes available.
        len: usize,
    },
    /// Unknown format version.
    #[error("unknown entry format version {0}")]
    Version(u8),
    /// Unknown entry kind code.
    #[error("unknown entry kind code {0}")]
    Kind(u8),
    /// The `log_type` is not UTF-8.
    #[error("log type is not UTF-8")]
    LogType,
}

/// Appends the WAL record of `entry` (header + envelope) to `out`.
pub fn encode_record(entry: &Entry, out: &mut Vec<u8>) {
    let header = EntryHeader {
        version: ENTRY_FORMAT_VERSION,
        kind: entry.kind.code(),
        auto_commit: u8::from(entry.auto_commit),
        reserved: [0; 5],
        ticket: U64::new(entry.ticket.0),
    };
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&entry.payload);
}

/// Decodes a WAL record into a core entry at (`index`, `term`); the payload is a slice of
/// `record` (no copy).
///
/// # Errors
///
/// [`CodecError`] for bytes that are not a record of this format.
pub fn decode_record(index: LogIndex, term: Term, record: &Bytes) -> Result<Entry, CodecError> {
    let (header, _) = EntryHeader::read_from_prefix(record)
        .map_err(|_| CodecError::Truncated { len: record.len() })?;
    if header.version != ENTRY_FORMAT_VERSION {
        return Err(CodecError::Version(header.version));
    }
    let kind = EntryKind::from_code(header.kind).ok_or(CodecError::Kind(header.kind))?;
    Ok(Entry {
        index,
        term,
        kind,
        ticket: Ticket(header.ticket.get()),
        auto_commit: header.auto_commit != 0,
        payload: record.slice(ENTRY_HEADER_LEN..),
    })
}

/// Envelopes of at most this many bytes live in the allocation of their `Bytes` itself.
const INLINE_ENVELOPE_BYTES: usize = 39;

/// A small envelope and its length: with its `Bytes`' reference count, 56 bytes in one
/// allocation, where a `Vec` takes one and the `Bytes` a second for its reference count at
/// the first clone (an entry is cloned into every Ready and append message: two allocations
/// per write, the same memory).
struct InlineEnvelope {
    len: u8,
    bytes: [u8; INLINE_ENVELOPE_BYTES],
}

impl AsRef<[u8]> for InlineEnvelope {
    fn as_ref(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// Builds the envelope (the core payload) of an application entry.
#[must_use]
pub fn encode_envelope(log_type: &str, payload: &[u8]) -> Bytes {
    let len = u16::try_from(log_type.len()).unwrap_or(u16::MAX);
    let len_bytes = U16::new(len);
    let parts: [&[u8]; 3] = [
        len_bytes.as_bytes(),
        &log_type.as_bytes()[..usize::from(len)],
        payload,
    ];
    let total = parts.iter().map(|part| part.len()).sum::<usize>();
    if let Ok(inline_len) = u8::try_from(total)
        && total <= INLINE_ENVELOPE_BYTES
    {
        let mut inline = InlineEnvelope {
            len: inline_len,
            bytes: [0; INLINE_ENVELOPE_BYTES],
        };
        let mut at = 0;
        for part in parts {
            inline.bytes[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
        return Bytes::from_owner(inline);
    }
    Bytes::from(parts.concat())
}

/// Splits an envelope into (`log_type`, payload), both slices of `envelope`. An empty envelope
/// (checkpoints, markers) is an empty type with an empty payload.
///
/// # Errors
///
/// [`CodecError::Truncated`] or [`CodecError::LogType`].
pub fn decode_envelope(envelope: &Bytes) -> Result<(Bytes, Bytes), CodecError> {
    if envelope.is_empty() {
        return Ok((Bytes::new(), Bytes::new()));
    }
    let truncated = CodecError::Truncated {
        len: envelope.len(),
    };
    let end = 2 + envelope_log_type(envelope).ok_or(truncated)?.len();
    let log_type = envelope.slice(2..end);
    if std::str::from_utf8(&log_type).is_err() {
        return Err(CodecError::LogType);
    }
    Ok((log_type, envelope.slice(end..)))
}

/// The log type bytes of `envelope`, unchecked and uncopied (`None` if truncated): a look at
/// which kind of entry it is before decoding it, for the paths every entry takes.
pub(crate) fn envelope_log_type(envelope: &[u8]) -> Option<&[u8]> {
    let (len, rest) = U16::read_from_prefix(envelope).ok()?;
    rest.get(..usize::from(len.get()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_and_envelope_round_trip_without_copying_the_payload() {
        let entry = Entry {
            index: LogIndex(7),
            term: Term(3),
            kind: EntryKind::Normal,
            ticket: Ticket(99),
            auto_commit: false,
            payload: encode_envelope("kv/set", b"hello"),
        };
        let mut out = Vec::new();
        encode_record(&entry, &mut out);
        let record = Bytes::from(out);
        let decoded = decode_record(LogIndex(7), Term(3), &record).expect("valid record");
        assert_eq!(decoded, entry);
        let (log_type, payload) = decode_envelope(&decoded.payload).expect("valid envelope");
        assert_eq!(&log_type[..], b"kv/set");
        assert_eq!(&payload[..], b"hello");
        assert_eq!(envelope_log_type(&decoded.payload), Some(&b"kv/set"[..]));
        assert_eq!(envelope_log_type(&decoded.payload[..4]), None, "truncated");
        assert_eq!(envelope_log_type(&[]), None);
        assert_eq!(
            payload.as_ptr(),
            record[ENTRY_HEADER_LEN + 2 + 6..].as_ptr()
        );
    }

    /// The bytes `docs/wal-format.md` ("Entries written by kommander-raft") describes.
    #[test]
    fn records_are_the_bytes_the_format_page_describes() {
        let entry = Entry {
            index: LogIndex(7),
            term: Term(3),
            kind: EntryKind::Normal,
            ticket: Ticket(0x0102_0304_0506_0708),
            auto_commit: false,
            payload: encode_envelope("kv", b"hi"),
        };
        let mut out = Vec::new();
        encode_record(&entry, &mut out);
        let mut expected = vec![1, 0, 0, 0, 0, 0, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1];
        expected.extend_from_slice(&[2, 0, b'k', b'v', b'h', b'i']);
        assert_eq!(out, expected);
        let marker = Entry {
            kind: EntryKind::Rollback,
            auto_commit: true,
            payload: Bytes::new(),
            ..entry
        };
        out.clear();
        encode_record(&marker, &mut out);
        assert_eq!(out, [1, 3, 1, 0, 0, 0, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1]);
    }

    #[test]
    fn malformed_bytes_are_errors_not_panics() {
        let short = Bytes::from_static(&[1, 0, 1]);
        assert!(matches!(
            decode_record(LogIndex(1), Term(1), &short),
            Err(CodecError::Truncated { .. })
        ));
        let mut bad_kind = vec![ENTRY_FORMAT_VERSION, 9, 1, 0, 0, 0, 0, 0];
        bad_kind.extend_from_slice(&[0; 8]);
        assert_eq!(
            decode_record(LogIndex(1), Term(1), &Bytes::from(bad_kind)),
            Err(CodecError::Kind(9))
        );
        assert!(decode_envelope(&Bytes::from_static(&[9, 0, b'a'])).is_err());
        assert_eq!(
            decode_envelope(&Bytes::from_static(&[1, 0, 0xff])),
            Err(CodecError::LogType)
        );
        for len in 0..64u8 {
            let bytes: Bytes = (0..len).map(|b| b.wrapping_mul(37)).collect();
            let _ = decode_envelope(&bytes);
            let _ = decode_record(LogIndex(1), Term(1), &bytes);
        }
    }

    #[test]
    fn envelopes_small_and_large_decode_to_what_was_encoded() {
        // Up to `INLINE_ENVELOPE_BYTES` in the `Bytes`' own allocation, beyond in a `Vec`.
        for len in 0..64u8 {
            let payload: Vec<u8> = (0..len).map(|b| b.wrapping_mul(31)).collect();
            let envelope = encode_envelope("kv", &payload);
            assert_eq!(envelope.len(), 4 + payload.len());
            let (log_type, decoded) = decode_envelope(&envelope.clone()).expect("an envelope");
            assert_eq!((&log_type[..], &decoded[..]), (&b"kv"[..], &payload[..]));
        }
    }
}
