//! Frames: a fixed 24-byte little-endian header followed by `length` body bytes (the format is
//! documented in [`crate::transport::codec`]). Building and checking them; reading them from
//! a socket is the TCP transport's `FrameReader`.

use std::io::{self, IoSlice, Write};
use std::time::Duration;

use bytes::Bytes;
use zerocopy::byteorder::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// `KMDR` read as a little-endian u32.
pub const MAGIC: u32 = u32::from_le_bytes(*b"KMDR");
/// The wire protocol version this build speaks (3: configurations carry partition 0's roster
/// in their context; 4: membership calls, the `Call` connection role and the `CallRequest` and
/// `CallAnswer` frames; 5: every frame header carries the sender's HLC stamp; 6: vote requests
/// carry the candidate's committed configuration version; 7: the handshake's `Hello` carries
/// the connector's incarnation, and a `Reject` may say `DuplicateNode`; 8: a `Heartbeat`
/// carries the quiesce flag, decision 0007; 9: a `SnapshotChunk` carries the split marks at
/// its snapshot's index, decision 0006; 10: a `SnapshotAck` may answer `Busy` and `Free`,
/// decision 0003).
pub const PROTOCOL_VERSION: u16 = 10;
/// Size of [`WireFrameHeader`].
pub const HEADER_BYTES: usize = 24;
/// The header bytes the checksum covers (all but the checksum itself).
const CHECKED_HEADER_BYTES: usize = 20;
/// The stamp of a frame whose sender has no clock (a client of the client port, a tool).
pub const UNSTAMPED: u64 = 0;

/// The fixed frame header.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct WireFrameHeader {
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
    /// The sender's hybrid logical clock when it built the frame, packed
    /// ([`HlcTimestamp::packed`](crate::HlcTimestamp::packed): milliseconds in the high 42
    /// bits, the logical counter in the low 22; the node is the connection's peer), or
    /// [`UNSTAMPED`].
    pub stamp: U64,
    /// CRC32C of header bytes 0..20 and the body.
    pub checksum: U32,
}

const _: () = assert!(size_of::<WireFrameHeader>() == HEADER_BYTES);

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
    /// A membership call (connector → acceptor, on a `Call` connection).
    CallRequest,
    /// The answer to a membership call (acceptor → connector).
    CallAnswer,
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
            Self::CallRequest => 7,
            Self::CallAnswer => 8,
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
            7 => Self::CallRequest,
            8 => Self::CallAnswer,
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

/// A received frame: its kind, the sender's stamp and the body (its own allocation, exactly
/// the body's size).
#[derive(Clone, Debug)]
pub struct Frame {
    /// The kind.
    pub kind: FrameKind,
    /// The sender's packed HLC stamp ([`WireFrameHeader::stamp`]), or [`UNSTAMPED`].
    pub stamp: u64,
    /// The body.
    pub body: Bytes,
}

/// What [`parse_header`] read from a header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderFields {
    /// The frame's kind.
    pub kind: FrameKind,
    /// The body's length in bytes (at most the reader's `frame_bytes_max`).
    pub length: usize,
    /// The sender's stamp ([`WireFrameHeader::stamp`]).
    pub stamp: u64,
    /// The checksum the header announces (checked with the body).
    pub checksum: u32,
}

/// Builds the header of a frame whose body is `chunks` (concatenated), stamped with the
/// sender's packed HLC `stamp` ([`UNSTAMPED`] for a sender without a clock).
#[must_use]
pub fn header_for(kind: FrameKind, stamp: u64, chunks: &[Bytes]) -> [u8; HEADER_BYTES] {
    let length: usize = chunks.iter().map(Bytes::len).sum();
    let mut header = WireFrameHeader {
        magic: MAGIC.into(),
        version: PROTOCOL_VERSION.into(),
        kind: kind.code(),
        flags: 0,
        length: u32::try_from(length).unwrap_or(u32::MAX).into(),
        stamp: stamp.into(),
        checksum: 0.into(),
    };
    let mut crc = crc32c::crc32c(&header.as_bytes()[..CHECKED_HEADER_BYTES]);
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
) -> Result<HeaderFields, FrameError> {
    let header = WireFrameHeader::read_from_bytes(bytes).map_err(|_| FrameError::BadMagic(0))?;
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
    Ok(HeaderFields {
        kind,
        length,
        stamp: header.stamp.get(),
        checksum: header.checksum.get(),
    })
}

/// Checks `checksum` (from the header) against the header's first 20 bytes and the body.
pub(crate) fn verify_checksum(
    header: &[u8; HEADER_BYTES],
    checksum: u32,
    body: &[u8],
) -> Result<(), FrameError> {
    let actual = crc32c::crc32c_append(crc32c::crc32c(&header[..CHECKED_HEADER_BYTES]), body);
    if actual != checksum {
        return Err(FrameError::Checksum {
            expected: checksum,
            actual,
        });
    }
    Ok(())
}

/// Checks a whole frame held in memory (header then body) and returns its kind, stamp and
/// body.
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
    let fields = parse_header(header, frame_bytes_max)?;
    let end = HEADER_BYTES + fields.length;
    if bytes.len() < end {
        return Err(FrameError::Closed { mid_frame: true });
    }
    verify_checksum(header, fields.checksum, &bytes[HEADER_BYTES..end])?;
    Ok(Frame {
        kind: fields.kind,
        stamp: fields.stamp,
        body: bytes.slice(HEADER_BYTES..end),
    })
}

/// Writes one frame stamped `stamp` (see [`header_for`]): the header, then `chunks` with
/// vectored writes (the chunks are not copied into one buffer).
///
/// # Errors
///
/// The socket's error (a write timeout included); the connection must then be closed.
pub fn write_frame(
    stream: &mut impl Write,
    kind: FrameKind,
    stamp: u64,
    chunks: &[Bytes],
) -> io::Result<()> {
    /// `IOV_MAX` on Linux.
    const IOVECS_MAX: usize = 1024;
    let header = header_for(kind, stamp, chunks);
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
