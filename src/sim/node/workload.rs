//! The workload's operations and their payload format: a write sets one register to a value
//! unique in the run (its operation id) and names the generation of its partition's range it
//! was routed with (0: unfenced, the per-partition workload), a held write is a two-phase
//! proposal's entry (committed or rolled back later). Payloads are little-endian: a tag byte,
//! then the fields.

use bytes::{BufMut, Bytes, BytesMut};

/// The `log_type` of every workload entry.
pub(super) const LOG_TYPE: &str = "kv";

/// One operation's entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    /// Set register `key` to `value` (the operation's id: unique in the run).
    Write {
        /// The register.
        key: u64,
        /// The value, which is also the operation's id.
        value: u64,
        /// The generation of the partition's range the write was routed with (0: unfenced).
        generation: u64,
    },
    /// A two-phase proposal's entry, delivered only if its ticket is committed.
    Held {
        /// The operation's id.
        id: u64,
    },
}

const WRITE: u8 = b'W';
const HELD: u8 = b'H';

impl Op {
    /// The operation's id (unique in the run).
    pub(super) fn id(self) -> u64 {
        match self {
            Self::Write { value, .. } => value,
            Self::Held { id } => id,
        }
    }

    pub(super) fn encode(self) -> Bytes {
        let mut out = BytesMut::with_capacity(25);
        match self {
            Self::Write {
                key,
                value,
                generation,
            } => {
                out.put_u8(WRITE);
                out.put_u64_le(key);
                out.put_u64_le(value);
                out.put_u64_le(generation);
            }
            Self::Held { id } => {
                out.put_u8(HELD);
                out.put_u64_le(id);
            }
        }
        out.freeze()
    }

    /// The operation an entry's payload holds (`None`: not a workload payload).
    pub(super) fn decode(payload: &[u8]) -> Option<Self> {
        let word = |at: usize| -> Option<u64> {
            Some(u64::from_le_bytes(
                payload.get(at..at + 8)?.try_into().ok()?,
            ))
        };
        match (payload.first()?, payload.len()) {
            (&WRITE, 25) => Some(Self::Write {
                key: word(1)?,
                value: word(9)?,
                generation: word(17)?,
            }),
            (&HELD, 9) => Some(Self::Held { id: word(1)? }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Op;

    #[test]
    fn ops_round_trip_and_garbage_is_none() {
        let write = Op::Write {
            key: 3,
            value: 77,
            generation: 2,
        };
        for op in [write, Op::Held { id: u64::MAX }] {
            assert_eq!(Op::decode(&op.encode()), Some(op));
        }
        assert_eq!(Op::decode(b""), None);
        assert_eq!(Op::decode(b"W123"), None);
        assert_eq!(Op::decode(&[b'X'; 25]), None);
        assert_eq!(Op::decode(&[b'W'; 17]), None);
    }
}
