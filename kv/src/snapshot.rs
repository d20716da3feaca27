//! A partition's state as bytes: the snapshot format (files, and transfers to a follower) and
//! the records a split or merge moves in chunks.
//!
//! ```text
//! snapshot: magic "KVS1" | index u64 | records u64 | record… | crc32c u32 of all before
//! record:   key length u16 | key (UTF-8) | value length u32 | value
//! chunk:    record…   (whole records, at most the library's chunk size)
//! ```
//! Integers are little-endian. Decoding checks every length, the count and the checksum.

use std::collections::BTreeMap;
use std::io;

use bytes::{BufMut, Bytes, BytesMut};
use kommander_raft::SnapshotExport;

use crate::codec::{DecodeError, Reader};
use crate::command::{Key, put_len16, put_value, read_value};

/// A partition's keys and values.
pub(crate) type Values = BTreeMap<Key, Bytes>;

/// Bytes of a record besides its key and value (the two lengths).
pub(crate) const RECORD_OVERHEAD_BYTES: usize = 2 + 4;

const MAGIC: &[u8; 4] = b"KVS1";
/// Magic, index, count.
const HEADER_BYTES: usize = 4 + 8 + 8;
const CHECKSUM_BYTES: usize = 4;

fn record_bytes(key: &str, value: &[u8]) -> usize {
    RECORD_OVERHEAD_BYTES + key.len() + value.len()
}

fn put_record(out: &mut BytesMut, key: &str, value: &[u8]) {
    put_len16(out, key.len());
    out.put_slice(key.as_bytes());
    put_value(out, value);
}

fn read_record(reader: &mut Reader) -> Result<(Key, Bytes), DecodeError> {
    let key_len = reader.u16("key length")?;
    let key = reader.key(usize::from(key_len))?;
    let value = read_value(reader, "value")?;
    Ok((key, value))
}

/// The snapshot of `values` as applied through `index`.
pub(crate) fn encode(index: u64, values: &Values) -> Bytes {
    let size = HEADER_BYTES
        + CHECKSUM_BYTES
        + values
            .iter()
            .map(|(key, value)| record_bytes(key, value))
            .sum::<usize>();
    let mut out = BytesMut::with_capacity(size);
    out.put_slice(MAGIC);
    out.put_u64_le(index);
    out.put_u64_le(values.len() as u64);
    for (key, value) in values {
        put_record(&mut out, key, value);
    }
    let checksum = crc32c::crc32c(&out);
    out.put_u32_le(checksum);
    out.freeze()
}

/// Decodes a snapshot: the index it was taken at, and the values.
///
/// # Errors
///
/// [`DecodeError`] for bytes that are not a whole, intact snapshot.
pub(crate) fn decode(bytes: Bytes) -> Result<(u64, Values), DecodeError> {
    if bytes.len() < HEADER_BYTES + CHECKSUM_BYTES || !bytes.starts_with(MAGIC) {
        return Err(DecodeError::Snapshot("no snapshot header"));
    }
    let body_len = bytes.len() - CHECKSUM_BYTES;
    let mut checksum = Reader::new(bytes.slice(body_len..));
    if crc32c::crc32c(&bytes[..body_len]) != checksum.u32("checksum")? {
        return Err(DecodeError::Snapshot("checksum mismatch"));
    }
    let mut reader = Reader::new(bytes.slice(MAGIC.len()..body_len));
    let index = reader.u64("index")?;
    let count = reader.u64("record count")?;
    let mut values = Values::new();
    for _ in 0..count {
        let (key, value) = read_record(&mut reader)?;
        values.insert(key, value);
    }
    reader.finish()?;
    Ok((index, values))
}

/// A 64-bit digest of `values` (FNV-1a over the records as a snapshot holds them, in key
/// order): two replicas with byte-identical states have equal digests. What
/// `GET /_debug/applied` reports, for the Jepsen harness to compare replicas.
pub(crate) fn digest(values: &Values) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0100_0000_01b3;
    let mut hash = OFFSET;
    let mut eat = |bytes: &[u8]| {
        for &byte in bytes {
            hash = (hash ^ u64::from(byte)).wrapping_mul(PRIME);
        }
    };
    for (key, value) in values {
        eat(&(key.len() as u64).to_le_bytes());
        eat(key.as_bytes());
        eat(&(value.len() as u64).to_le_bytes());
        eat(value);
    }
    hash
}

/// Decodes a chunk of a range transfer: whole records.
///
/// # Errors
///
/// [`DecodeError`] for bytes that are not whole records.
pub(crate) fn decode_records(bytes: Bytes) -> Result<Vec<(Key, Bytes)>, DecodeError> {
    let mut reader = Reader::new(bytes);
    let mut records = Vec::new();
    while !reader.is_empty() {
        records.push(read_record(&mut reader)?);
    }
    Ok(records)
}

/// A partition's snapshot: the copy of its values taken on the shard thread (shared keys and
/// values, no bytes copied), encoded on the first read, off the shard thread.
pub(crate) struct LazySnapshot {
    state: Option<(u64, Values)>,
    bytes: Bytes,
}

impl LazySnapshot {
    pub(crate) fn new(index: u64, values: Values) -> Self {
        Self {
            state: Some((index, values)),
            bytes: Bytes::new(),
        }
    }
}

impl SnapshotExport for LazySnapshot {
    fn read_chunk(&mut self, max: usize) -> io::Result<Option<Bytes>> {
        if let Some((index, values)) = self.state.take() {
            self.bytes = encode(index, &values);
        }
        self.bytes.read_chunk(max)
    }
}

/// The keys a split or merge moves, read as chunks of whole records (each chunk decodes on
/// its own: the import applies it as one log entry).
pub(crate) struct RangeExport {
    records: std::vec::IntoIter<(Key, Bytes)>,
    next: Option<(Key, Bytes)>,
}

impl RangeExport {
    pub(crate) fn new(records: Vec<(Key, Bytes)>) -> Self {
        Self {
            records: records.into_iter(),
            next: None,
        }
    }
}

impl SnapshotExport for RangeExport {
    fn read_chunk(&mut self, max: usize) -> io::Result<Option<Bytes>> {
        let mut out = BytesMut::new();
        while let Some((key, value)) = self.next.take().or_else(|| self.records.next()) {
            let size = record_bytes(&key, &value);
            if out.len() + size > max {
                if out.is_empty() {
                    // Validated at start-up (`body_bytes_max`): a record fits one chunk.
                    return Err(io::Error::other(format!(
                        "a record of {size} bytes does not fit a chunk of {max}"
                    )));
                }
                self.next = Some((key, value));
                break;
            }
            put_record(&mut out, &key, &value);
        }
        Ok((!out.is_empty()).then(|| out.freeze()))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn values(count: usize) -> Values {
        (0..count)
            .map(|i| (Arc::from(format!("key-{i}")), Bytes::from(vec![i as u8; i])))
            .collect()
    }

    #[test]
    fn a_snapshot_decodes_as_encoded_and_any_damage_is_refused() {
        let state = values(20);
        let bytes = encode(42, &state);
        assert_eq!(decode(bytes.clone()), Ok((42, state)));
        for cut in 0..bytes.len() {
            assert!(decode(bytes.slice(..cut)).is_err(), "cut at {cut}");
        }
        let mut flipped = bytes.to_vec();
        flipped[30] ^= 1;
        assert_eq!(
            decode(Bytes::from(flipped)),
            Err(DecodeError::Snapshot("checksum mismatch"))
        );
    }

    #[test]
    fn a_range_export_reads_as_chunks_of_whole_records() {
        let state = values(50);
        let records: Vec<_> = state.clone().into_iter().collect();
        let mut export = RangeExport::new(records);
        let mut read = Values::new();
        let mut chunks = 0;
        while let Some(chunk) = export.read_chunk(200).expect("fits") {
            assert!(chunk.len() <= 200);
            chunks += 1;
            read.extend(decode_records(chunk).expect("whole records"));
        }
        assert!(chunks > 1);
        assert_eq!(read, state);
        let mut too_small = RangeExport::new(values(10).into_iter().collect());
        assert!(too_small.read_chunk(4).is_err());
    }
}
