//! The store's log entries: one [`Command`] per entry (log type [`LOG_TYPE`]), encoded in a
//! small binary format, decoded without panicking on any bytes.
//!
//! ```text
//! operation id: incarnation u64, sequence u64 | op u8 | key length u16 | key (UTF-8)
//!   op 1 put:     value length u32 | value
//!   op 2 delete:  (nothing)
//!   op 3 cas:     expected present u8 (0 or 1) | [expected length u32 | expected] |
//!                 new length u32 | new
//!   op 4 append:  element length u32 | element
//! ```
//! Integers are little-endian.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

use crate::codec::{DecodeError, Reader};

/// The log type of the store's entries.
pub(crate) const LOG_TYPE: &str = "kv";

/// A key of the store.
pub(crate) type Key = Arc<str>;

/// Names one write of one process: the waiting HTTP request is told the outcome of the entry
/// carrying it. The incarnation is drawn at random when the store starts, so an entry of an
/// earlier run never answers a request of this one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct OperationId {
    pub(crate) incarnation: u64,
    pub(crate) sequence: u64,
}

/// What a command does to its key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Operation {
    /// Sets the value.
    Put(Bytes),
    /// Removes the key.
    Delete,
    /// Sets `new` when the current value is `expected` (`None`: the key is absent).
    CompareAndSet { expected: Option<Bytes>, new: Bytes },
    /// Appends an element (no `\n` in it) and a `\n` to the value, the key's list.
    Append(Bytes),
}

/// One write, as the log holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Command {
    pub(crate) id: OperationId,
    pub(crate) key: Key,
    pub(crate) operation: Operation,
}

const PUT: u8 = 1;
const DELETE: u8 = 2;
const COMPARE_AND_SET: u8 = 3;
const APPEND: u8 = 4;

impl Command {
    /// The entry's payload. Keys are at most `u16::MAX` bytes and values below 4 GiB
    /// (validated limits, `Config::validate`).
    pub(crate) fn encode(&self) -> Bytes {
        let value_bytes = match &self.operation {
            Operation::Put(value) | Operation::Append(value) => value.len(),
            Operation::Delete => 0,
            Operation::CompareAndSet { expected, new } => {
                expected.as_ref().map_or(0, Bytes::len) + new.len()
            }
        };
        let mut out = BytesMut::with_capacity(32 + self.key.len() + value_bytes);
        out.put_u64_le(self.id.incarnation);
        out.put_u64_le(self.id.sequence);
        let op = match self.operation {
            Operation::Put(_) => PUT,
            Operation::Delete => DELETE,
            Operation::CompareAndSet { .. } => COMPARE_AND_SET,
            Operation::Append(_) => APPEND,
        };
        out.put_u8(op);
        put_len16(&mut out, self.key.len());
        out.put_slice(self.key.as_bytes());
        match &self.operation {
            Operation::Put(value) | Operation::Append(value) => put_value(&mut out, value),
            Operation::Delete => {}
            Operation::CompareAndSet { expected, new } => {
                match expected {
                    Some(expected) => {
                        out.put_u8(1);
                        put_value(&mut out, expected);
                    }
                    None => out.put_u8(0),
                }
                put_value(&mut out, new);
            }
        }
        out.freeze()
    }

    /// Decodes an entry's payload.
    ///
    /// # Errors
    ///
    /// [`DecodeError`] for bytes that are not a command (nothing is applied).
    pub(crate) fn decode(payload: Bytes) -> Result<Self, DecodeError> {
        let mut reader = Reader::new(payload);
        let id = OperationId {
            incarnation: reader.u64("incarnation")?,
            sequence: reader.u64("sequence")?,
        };
        let op = reader.u8("op")?;
        let key_len = reader.u16("key length")?;
        let key = reader.key(usize::from(key_len))?;
        let operation = match op {
            PUT => Operation::Put(read_value(&mut reader, "value")?),
            DELETE => Operation::Delete,
            COMPARE_AND_SET => {
                let expected = match reader.u8("expected present")? {
                    0 => None,
                    1 => Some(read_value(&mut reader, "expected")?),
                    value => {
                        return Err(DecodeError::Unknown {
                            field: "expected present",
                            value,
                        });
                    }
                };
                let new = read_value(&mut reader, "new")?;
                Operation::CompareAndSet { expected, new }
            }
            APPEND => Operation::Append(read_value(&mut reader, "element")?),
            value => return Err(DecodeError::Unknown { field: "op", value }),
        };
        reader.finish()?;
        Ok(Self { id, key, operation })
    }
}

/// Writes a length that fits 16 bits (keys are validated against `key_bytes_max`).
pub(crate) fn put_len16(out: &mut BytesMut, len: usize) {
    out.put_u16_le(u16::try_from(len).unwrap_or(u16::MAX));
}

/// Writes a value with its 32-bit length (values are validated against `body_bytes_max`).
pub(crate) fn put_value(out: &mut BytesMut, value: &[u8]) {
    out.put_u32_le(u32::try_from(value.len()).unwrap_or(u32::MAX));
    out.put_slice(value);
}

/// Reads a value with its 32-bit length.
pub(crate) fn read_value(reader: &mut Reader, field: &'static str) -> Result<Bytes, DecodeError> {
    let len = reader.u32(field)?;
    reader.bytes(field, len as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> OperationId {
        OperationId {
            incarnation: 7,
            sequence: 9,
        }
    }

    #[test]
    fn every_command_decodes_as_encoded() {
        let operations = [
            Operation::Put(Bytes::from_static(b"blue")),
            Operation::Delete,
            Operation::CompareAndSet {
                expected: None,
                new: Bytes::from_static(b"x"),
            },
            Operation::CompareAndSet {
                expected: Some(Bytes::from_static(b"")),
                new: Bytes::from_static(b"y"),
            },
            Operation::Append(Bytes::from_static(b"17")),
        ];
        for operation in operations {
            let command = Command {
                id: id(),
                key: Arc::from("colors/sky"),
                operation,
            };
            assert_eq!(Command::decode(command.encode()), Ok(command));
        }
    }

    #[test]
    fn bad_bytes_are_an_error_never_a_panic() {
        let command = Command {
            id: id(),
            key: Arc::from("k"),
            operation: Operation::CompareAndSet {
                expected: Some(Bytes::from_static(b"old")),
                new: Bytes::from_static(b"new"),
            },
        };
        let encoded = command.encode();
        for cut in 0..encoded.len() {
            assert!(
                Command::decode(encoded.slice(..cut)).is_err(),
                "cut at {cut}"
            );
        }
        let mut longer = encoded.to_vec();
        longer.push(0);
        assert_eq!(
            Command::decode(Bytes::from(longer)),
            Err(DecodeError::Trailing(1))
        );
        let mut unknown = encoded.to_vec();
        unknown[16] = 9;
        assert_eq!(
            Command::decode(Bytes::from(unknown)),
            Err(DecodeError::Unknown {
                field: "op",
                value: 9
            })
        );
        let mut not_utf8 = encoded.to_vec();
        not_utf8[19] = 0xff;
        assert_eq!(
            Command::decode(Bytes::from(not_utf8)),
            Err(DecodeError::KeyNotUtf8)
        );
    }
}
