//! Frames: a fixed 16-byte little-endian header followed by `length` body bytes.
//!
//! ```text
//! 0      4        6     7      8        12        16
//! | magic | version | kind | flags | length | checksum | body (length bytes) ...
//! ```
//!
//! `checksum` is CRC32C over the first 12 header bytes, then the body. A reader checks magic,
//! version, kind, flags and `length <= frame_bytes_max` from the header alone, before it
//! allocates anything for the body.

use std::io::{self, IoSlice, Read, Write};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use zerocopy::byteorder::little_endian::{U16, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// `KMDR` read as a little-endian u32.
pub const MAGIC: u32 = u32::from_le_bytes(*b"KMDR");
/// The wire protocol version this build speaks.
pub const PROTOCOL_VERSION: u16 = 1;
/// Size of [`FrameHeader`].
pub const HEADER_BYTES: usize = 16;

/// The fixed frame header.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct FrameHeader {
    /// [`MAGIC`].
    pub magic: U32,
    /// [`PROTOCOL_VERSION`].
    pub version: U16,
    /// A [`FrameKind`] code.
    pub kind: u8,
    /// Reserved, 0.
    pub flags: u8,
    /// Body length in bytes.
    pub length: U32,
    /// CRC32C of header bytes 0..12 and the body.
    pub checksum: U32,
}

const _: () = assert!(size_of::<FrameHeader>() == HEADER_BYTES);

/// What a frame carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    /// Handshake 1 (connector → acceptor): role, node id, cluster, nonce.
    Hello,
    /// Handshake 2 (acceptor → connector): acceptor id, nonce, proof.
    Challenge,
    /// Handshake 3 (connector → acceptor): proof.
    Auth,
    /// Handshake 4 (acceptor → connector): accepted.
    Welcome,
    /// The other side refuses the connection; the body says why.
    Reject,
    /// A batch of Raft messages (possibly empty: a keepalive).
    Messages,
    /// A client request (the `kommander` binary's client port).
    ClientRequest,
    /// A reply to a client request.
    ClientResponse,
}

impl FrameKind {
    /// The wire code.
    #[must_use]
    pub const fn code(self) -> u8 {
        match self {
            Self::Hello => 1,
            Self::Challenge => 2,
            Self::Auth => 3,
            Self::Welcome => 4,
            Self::Reject => 5,
            Self::Messages => 6,
            Self::ClientRequest => 16,
            Self::ClientResponse => 17,
        }
    }

    /// The kind of a wire code; `None` for an unknown code.
    #[must_use]
    pub const fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            1 => Self::Hello,
            2 => Self::Challenge,
            3 => Self::Auth,
            4 => Self::Welcome,
            5 => Self::Reject,
            6 => Self::Messages,
            16 => Self::ClientRequest,
            17 => Self::ClientResponse,
            _ => return None,
        })
    }
}

/// Why bytes on a connection are not a valid frame (or did not arrive in time).
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The header does not start with [`MAGIC`].
    #[error("bad magic {0:#010x} (not a kommander-raft peer)")]
    BadMagic(u32),
    /// The peer speaks another protocol version.
    #[error("protocol version {found} (this node speaks {PROTOCOL_VERSION})")]
    Version {
        /// The version received.
        found: u16,
    },
    /// Unknown frame kind code.
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    /// Reserved flag bits are set.
    #[error("reserved flags {0:#04x} set")]
    Flags(u8),
    /// The frame is larger than `frame_bytes_max`.
    #[error("frame of {length} bytes exceeds frame_bytes_max {max}")]
    TooLarge {
        /// Announced body length.
        length: u64,
        /// The limit.
        max: usize,
    },
    /// The checksum does not match.
    #[error("checksum mismatch (header says {expected:#010x}, body gives {actual:#010x})")]
    Checksum {
        /// From the header.
        expected: u32,
        /// Computed.
        actual: u32,
    },
    /// A frame that started did not complete within `frame_read_timeout_ms`.
    #[error("frame incomplete after {0:?} ({1} of {2} bytes; slow or stalled sender)")]
    FrameTimeout(Duration, usize, usize),
    /// No frame arrived within the idle (or handshake) timeout.
    #[error("no frame within {0:?}")]
    Idle(Duration),
    /// The peer closed the connection (`mid_frame`: in the middle of a frame).
    #[error("connection closed by peer{}", if *.mid_frame { " in the middle of a frame" } else { "" })]
    Closed {
        /// Whether bytes of an incomplete frame were pending.
        mid_frame: bool,
    },
    /// The transport is shutting down.
    #[error("shutting down")]
    Shutdown,
    /// A socket error.
    #[error("socket: {0}")]
    Io(#[from] io::Error),
}

/// A received frame: its kind and body (a slice of the receive buffer, no copy).
#[derive(Clone, Debug)]
pub struct Frame {
    /// The kind.
    pub kind: FrameKind,
    /// The body.
    pub body: Bytes,
}

/// Builds the header of a frame whose body is `chunks` (concatenated).
#[must_use]
pub fn header_for(kind: FrameKind, chunks: &[Bytes]) -> [u8; HEADER_BYTES] {
    let length: usize = chunks.iter().map(Bytes::len).sum();
    let mut header = FrameHeader {
        magic: MAGIC.into(),
        version: PROTOCOL_VERSION.into(),
        kind: kind.code(),
        flags: 0,
        length: u32::try_from(length).unwrap_or(u32::MAX).into(),
        checksum: 0.into(),
    };
    let mut crc = crc32c::crc32c(&header.as_bytes()[..12]);
    for chunk in chunks {
        crc = crc32c::crc32c_append(crc, chunk);
    }
    header.checksum = crc.into();
    let mut out = [0; HEADER_BYTES];
    out.copy_from_slice(header.as_bytes());
    out
}

/// Parses and checks a header: everything but the checksum (which needs the body).
///
/// # Errors
///
/// [`FrameError::BadMagic`], [`FrameError::Version`], [`FrameError::UnknownKind`],
/// [`FrameError::Flags`], [`FrameError::TooLarge`].
pub fn parse_header(
    bytes: &[u8; HEADER_BYTES],
    frame_bytes_max: usize,
) -> Result<(FrameKind, usize, u32), FrameError> {
    let header = FrameHeader::read_from_bytes(bytes).map_err(|_| FrameError::BadMagic(0))?;
    if header.magic.get() != MAGIC {
        return Err(FrameError::BadMagic(header.magic.get()));
    }
    if header.version.get() != PROTOCOL_VERSION {
        return Err(FrameError::Version {
            found: header.version.get(),
        });
    }
    let kind = FrameKind::from_code(header.kind).ok_or(FrameError::UnknownKind(header.kind))?;
    if header.flags != 0 {
        return Err(FrameError::Flags(header.flags));
    }
    let length = header.length.get() as usize;
    if length > frame_bytes_max {
        return Err(FrameError::TooLarge {
            length: u64::from(header.length.get()),
            max: frame_bytes_max,
        });
    }
    Ok((kind, length, header.checksum.get()))
}

/// Checks a whole frame held in memory (header then body) and returns its kind and body.
///
/// # Errors
///
/// The errors of [`parse_header`]; [`FrameError::Checksum`]; [`FrameError::Closed`] when
/// `bytes` is shorter than the header says.
pub fn decode_frame(bytes: &Bytes, frame_bytes_max: usize) -> Result<Frame, FrameError> {
    let header: &[u8; HEADER_BYTES] = bytes
        .get(..HEADER_BYTES)
        .and_then(|h| h.try_into().ok())
        .ok_or(FrameError::Closed { mid_frame: true })?;
    let (kind, length, checksum) = parse_header(header, frame_bytes_max)?;
    let end = HEADER_BYTES + length;
    if bytes.len() < end {
        return Err(FrameError::Closed { mid_frame: true });
    }
    let actual = crc32c::crc32c_append(crc32c::crc32c(&bytes[..12]), &bytes[HEADER_BYTES..end]);
    if actual != checksum {
        return Err(FrameError::Checksum {
            expected: checksum,
            actual,
        });
    }
    Ok(Frame {
        kind,
        body: bytes.slice(HEADER_BYTES..end),
    })
}

/// Reads frames from a socket into one growing buffer; each frame's body is split off it
/// without a copy.
///
/// Deadlines: the socket's read timeout is a poll interval; after every read (or timeout)
/// the reader checks that a started frame completes within `frame_timeout` and that some
/// frame arrives within `idle_timeout`, and returns [`FrameError::Shutdown`] once `stop()`
/// says so.
#[derive(Debug)]
pub struct FrameReader {
    /// `buffer[..filled]` holds received bytes; `buffer[filled..]` is zeroed scratch that
    /// reads land in (each byte of it is zeroed once, when the buffer grows).
    buffer: BytesMut,
    filled: usize,
    frame_bytes_max: usize,
    read_chunk_bytes: usize,
    frame_started: Option<Instant>,
    last_frame: Instant,
}

/// The deadlines a [`FrameReader`] enforces.
#[derive(Clone, Copy, Debug)]
pub struct Deadlines {
    /// A frame whose first byte arrived must complete within this.
    pub frame_timeout: Duration,
    /// Some frame must arrive within this.
    pub idle_timeout: Duration,
}

impl FrameReader {
    /// A reader accepting frames up to `frame_bytes_max` body bytes, reading at most
    /// `read_chunk_bytes` beyond the current frame per call.
    #[must_use]
    pub fn new(frame_bytes_max: usize, read_chunk_bytes: usize) -> Self {
        Self {
            buffer: BytesMut::new(),
            filled: 0,
            frame_bytes_max,
            read_chunk_bytes: read_chunk_bytes.max(HEADER_BYTES),
            frame_started: None,
            last_frame: Instant::now(),
        }
    }

    /// Changes the limits (an acceptor reads the handshake with small ones, then raises them
    /// for the authenticated peer).
    pub fn set_limits(&mut self, frame_bytes_max: usize, read_chunk_bytes: usize) {
        self.frame_bytes_max = frame_bytes_max;
        self.read_chunk_bytes = read_chunk_bytes.max(HEADER_BYTES);
    }

    /// Reads the next frame.
    ///
    /// # Errors
    ///
    /// Any [`FrameError`]: the connection must then be closed (the stream position is lost).
    pub fn read_frame(
        &mut self,
        stream: &mut impl Read,
        deadlines: Deadlines,
        stop: &dyn Fn() -> bool,
    ) -> Result<Frame, FrameError> {
        loop {
            if let Some(frame) = self.take_frame()? {
                self.frame_started = if self.filled > 0 {
                    Some(Instant::now())
                } else {
                    None
                };
                self.last_frame = Instant::now();
                return Ok(frame);
            }
            if stop() {
                return Err(FrameError::Shutdown);
            }
            self.fill(stream, deadlines)?;
        }
    }

    /// The header at the front of the buffer, checked; `None` while incomplete.
    fn front_header(&self) -> Result<Option<(FrameKind, usize, u32)>, FrameError> {
        match self.buffer[..self.filled].first_chunk::<HEADER_BYTES>() {
            Some(header) => parse_header(header, self.frame_bytes_max).map(Some),
            None => Ok(None),
        }
    }

    /// A complete frame at the front of the buffer, if there is one.
    fn take_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        let Some((kind, length, checksum)) = self.front_header()? else {
            return Ok(None);
        };
        let total = HEADER_BYTES + length;
        if self.filled < total {
            return Ok(None);
        }
        let mut frame = self.buffer.split_to(total).freeze();
        self.filled -= total;
        let actual = crc32c::crc32c_append(crc32c::crc32c(&frame[..12]), &frame[HEADER_BYTES..]);
        if actual != checksum {
            return Err(FrameError::Checksum {
                expected: checksum,
                actual,
            });
        }
        let body = frame.split_off(HEADER_BYTES);
        Ok(Some(Frame { kind, body }))
    }

    fn fill(&mut self, stream: &mut impl Read, deadlines: Deadlines) -> Result<(), FrameError> {
        // Room for the rest of the current frame (its length is checked by now) and a chunk.
        let frame_rest = self.front_header()?.map_or(0, |(_, length, _)| {
            (HEADER_BYTES + length).saturating_sub(self.filled)
        });
        let target = self.filled + frame_rest.max(self.read_chunk_bytes);
        if self.buffer.len() < target {
            self.buffer.resize(target, 0);
        }
        let read = match stream.read(&mut self.buffer[self.filled..]) {
            Ok(0) => {
                return Err(FrameError::Closed {
                    mid_frame: self.filled > 0,
                });
            }
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                0
            }
            Err(e) => return Err(e.into()),
        };
        self.filled += read;
        let now = Instant::now();
        if self.filled == 0 {
            if now.duration_since(self.last_frame) >= deadlines.idle_timeout {
                return Err(FrameError::Idle(deadlines.idle_timeout));
            }
            return Ok(());
        }
        let started = *self.frame_started.get_or_insert(now);
        if now.duration_since(started) >= deadlines.frame_timeout {
            let expected = self
                .front_header()?
                .map_or(HEADER_BYTES, |(_, l, _)| HEADER_BYTES + l);
            return Err(FrameError::FrameTimeout(
                deadlines.frame_timeout,
                self.filled.min(expected),
                expected,
            ));
        }
        Ok(())
    }
}

/// Writes one frame: the header, then `chunks` with vectored writes (the chunks are not
/// copied into one buffer).
///
/// # Errors
///
/// The socket's error (a write timeout included); the connection must then be closed.
pub fn write_frame(stream: &mut impl Write, kind: FrameKind, chunks: &[Bytes]) -> io::Result<()> {
    /// `IOV_MAX` on Linux.
    const IOVECS_MAX: usize = 1024;
    let header = header_for(kind, chunks);
    let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity((chunks.len() + 1).min(IOVECS_MAX));
    let mut next = 0; // index of the next chunk not yet in `slices`
    slices.push(IoSlice::new(&header));
    loop {
        while slices.len() < IOVECS_MAX && next < chunks.len() {
            if !chunks[next].is_empty() {
                slices.push(IoSlice::new(&chunks[next]));
            }
            next += 1;
        }
        if slices.is_empty() {
            return Ok(());
        }
        let mut window: &mut [IoSlice<'_>] = &mut slices;
        while !window.is_empty() {
            match stream.write_vectored(window) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => IoSlice::advance_slices(&mut window, n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        slices.clear();
        if next == chunks.len() {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{self, Read};
    use std::time::{Duration, Instant};

    use bytes::Bytes;

    use super::{
        Deadlines, FrameError, FrameKind, FrameReader, HEADER_BYTES, MAGIC, PROTOCOL_VERSION,
        write_frame,
    };

    fn frame(body_bytes: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let body = Bytes::from(vec![7u8; body_bytes]);
        write_frame(&mut out, FrameKind::Messages, &[body]).expect("Vec write");
        out
    }

    /// Yields one byte per read, `pause` after each (a slow sender), then end of stream.
    struct Trickle {
        bytes: Vec<u8>,
        at: usize,
        pause: Duration,
    }

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            std::thread::sleep(self.pause);
            let Some(&byte) = self.bytes.get(self.at) else {
                return Ok(0);
            };
            buf[0] = byte;
            self.at += 1;
            Ok(1)
        }
    }

    /// Never yields a byte: every read times out like a socket with a read timeout.
    struct Silent(Duration);

    impl Read for Silent {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            std::thread::sleep(self.0);
            Err(io::ErrorKind::WouldBlock.into())
        }
    }

    const fn deadlines(frame_ms: u64, idle_ms: u64) -> Deadlines {
        Deadlines {
            frame_timeout: Duration::from_millis(frame_ms),
            idle_timeout: Duration::from_millis(idle_ms),
        }
    }

    #[test]
    fn a_slow_sender_hits_the_frame_timeout() {
        let bytes = frame(100);
        let total = bytes.len();
        let mut slow = Trickle {
            bytes,
            at: 0,
            pause: Duration::from_millis(2),
        };
        let mut reader = FrameReader::new(1024, 64);
        let started = Instant::now();
        let result = reader.read_frame(&mut slow, deadlines(30, 10_000), &|| false);
        let Err(FrameError::FrameTimeout(timeout, got, expected)) = result else {
            panic!("expected a frame timeout, got {result:?}");
        };
        assert_eq!(timeout, Duration::from_millis(30));
        assert!(got > 0 && got < total, "{got} of {total} bytes");
        assert!(slow.at < total, "the reader waited for the whole frame");
        assert!(expected == total || expected == HEADER_BYTES, "{expected}");
        assert!(started.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    fn a_trickling_frame_within_the_deadline_is_read() {
        let bytes = frame(20);
        let mut slow = Trickle {
            bytes,
            at: 0,
            pause: Duration::ZERO,
        };
        let mut reader = FrameReader::new(1024, 64);
        let frame = reader
            .read_frame(&mut slow, deadlines(10_000, 10_000), &|| false)
            .expect("one byte per read is fine within the deadline");
        assert_eq!(frame.kind, FrameKind::Messages);
        assert_eq!(&frame.body[..], &[7u8; 20]);
        // Then the sender closes between frames.
        let closed = reader.read_frame(&mut slow, deadlines(10_000, 10_000), &|| false);
        assert!(
            matches!(closed, Err(FrameError::Closed { mid_frame: false })),
            "{closed:?}"
        );
    }

    #[test]
    fn a_silent_connection_hits_the_idle_timeout() {
        let mut reader = FrameReader::new(1024, 64);
        let started = Instant::now();
        let result = reader.read_frame(
            &mut Silent(Duration::from_millis(2)),
            deadlines(10_000, 25),
            &|| false,
        );
        assert!(
            matches!(result, Err(FrameError::Idle(t)) if t == Duration::from_millis(25)),
            "{result:?}"
        );
        assert!(started.elapsed() >= Duration::from_millis(25));
    }

    #[test]
    fn the_stop_flag_ends_a_blocked_read() {
        let mut reader = FrameReader::new(1024, 64);
        let started = Instant::now();
        let stop = || started.elapsed() >= Duration::from_millis(10);
        let result = reader.read_frame(
            &mut Silent(Duration::from_millis(2)),
            deadlines(10_000, 10_000),
            &stop,
        );
        assert!(matches!(result, Err(FrameError::Shutdown)), "{result:?}");
    }

    #[test]
    fn an_oversized_header_is_refused_before_the_body_is_allocated() {
        let mut header = [0u8; HEADER_BYTES];
        header[..4].copy_from_slice(&MAGIC.to_le_bytes());
        header[4..6].copy_from_slice(&PROTOCOL_VERSION.to_le_bytes());
        header[6] = FrameKind::Messages.code();
        header[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        let mut reader = FrameReader::new(1024, 64);
        let result = reader.read_frame(&mut &header[..], deadlines(1000, 1000), &|| false);
        assert!(
            matches!(result, Err(FrameError::TooLarge { max: 1024, .. })),
            "{result:?}"
        );
        assert!(
            reader.buffer.capacity() <= 64,
            "{} bytes reserved",
            reader.buffer.capacity()
        );
    }
}
