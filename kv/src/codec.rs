//! Reading the store's binary formats (log entries, snapshots, range chunks) without
//! panicking: every read checks the bytes left and fails with a typed [`DecodeError`].

use bytes::{Buf, Bytes};

/// Bytes that do not decode: what was wrong, and nothing was applied.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum DecodeError {
    /// The bytes end before the field.
    #[error("truncated: {field} needs {needed} bytes, {left} left")]
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Bytes it needs.
        needed: usize,
        /// Bytes left.
        left: usize,
    },
    /// Bytes follow the last field.
    #[error("{0} bytes after the end")]
    Trailing(usize),
    /// An unknown operation or flag.
    #[error("unknown {field} {value}")]
    Unknown {
        /// The field.
        field: &'static str,
        /// Its value.
        value: u8,
    },
    /// A key that is not UTF-8.
    #[error("a key is not UTF-8")]
    KeyNotUtf8,
    /// A snapshot's magic, checksum or size is wrong.
    #[error("not a valid snapshot: {0}")]
    Snapshot(&'static str),
}

/// A cursor over shared bytes: each read takes its field or fails.
pub(crate) struct Reader {
    bytes: Bytes,
}

impl Reader {
    pub(crate) fn new(bytes: Bytes) -> Self {
        Self { bytes }
    }

    fn need(&self, field: &'static str, needed: usize) -> Result<(), DecodeError> {
        if self.bytes.remaining() < needed {
            return Err(DecodeError::Truncated {
                field,
                needed,
                left: self.bytes.remaining(),
            });
        }
        Ok(())
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        self.need(field, 1)?;
        Ok(self.bytes.get_u8())
    }

    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        self.need(field, 2)?;
        Ok(self.bytes.get_u16_le())
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        self.need(field, 4)?;
        Ok(self.bytes.get_u32_le())
    }

    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        self.need(field, 8)?;
        Ok(self.bytes.get_u64_le())
    }

    /// The next `len` bytes (shared, not copied).
    pub(crate) fn bytes(&mut self, field: &'static str, len: usize) -> Result<Bytes, DecodeError> {
        self.need(field, len)?;
        Ok(self.bytes.split_to(len))
    }

    /// A key: its bytes as UTF-8.
    pub(crate) fn key(&mut self, len: usize) -> Result<std::sync::Arc<str>, DecodeError> {
        let bytes = self.bytes("key", len)?;
        std::str::from_utf8(&bytes)
            .map(std::sync::Arc::from)
            .map_err(|_| DecodeError::KeyNotUtf8)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Fails unless every byte was read.
    pub(crate) fn finish(self) -> Result<(), DecodeError> {
        match self.bytes.remaining() {
            0 => Ok(()),
            left => Err(DecodeError::Trailing(left)),
        }
    }
}
