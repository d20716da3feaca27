//! [`FrameReader`]: reads frames from a socket under deadlines and limits, through a
//! reusable staging buffer. The frame format itself is [`crate::transport::codec`]'s.

use std::io::{self, Read};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::transport::codec::{
    Frame, FrameError, HEADER_BYTES, HeaderFields, UNSTAMPED, parse_header, verify_checksum,
};

/// Reads frames from a socket through a reusable staging buffer. Each frame's body is
/// copied once into an allocation of exactly its size, so what the node keeps of a frame
/// (entry payloads in a follower's log) pins that frame and nothing else. A frame larger than
/// the staging buffer is read straight into its own allocation.
///
/// Deadlines: the socket's read timeout is a poll interval; after every read (or timeout)
/// the reader checks that a started frame completes within `frame_timeout` and that some
/// frame arrives within `idle_timeout`, and returns [`FrameError::Shutdown`] once `stop()`
/// says so.
#[derive(Debug)]
pub struct FrameReader {
    /// Received bytes not yet returned are `staging[start..end]`.
    staging: Vec<u8>,
    start: usize,
    end: usize,
    frame_bytes_max: usize,
    read_chunk_bytes: usize,
    frame_started: Option<Instant>,
    last_frame: Instant,
    last_stamp: u64,
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
    /// A reader accepting frames up to `frame_bytes_max` body bytes, with a staging buffer
    /// of `read_chunk_bytes` (allocated on the first read).
    #[must_use]
    pub fn new(frame_bytes_max: usize, read_chunk_bytes: usize) -> Self {
        Self {
            staging: Vec::new(),
            start: 0,
            end: 0,
            frame_bytes_max,
            read_chunk_bytes: read_chunk_bytes.max(HEADER_BYTES),
            frame_started: None,
            last_frame: Instant::now(),
            last_stamp: UNSTAMPED,
        }
    }

    /// Changes the limits (an acceptor reads the handshake with small ones, then raises them
    /// for the authenticated peer). Bytes already received are kept.
    pub fn set_limits(&mut self, frame_bytes_max: usize, read_chunk_bytes: usize) {
        self.frame_bytes_max = frame_bytes_max;
        self.read_chunk_bytes = read_chunk_bytes.max(HEADER_BYTES);
        if self.staging.len() < self.read_chunk_bytes && !self.staging.is_empty() {
            self.staging.resize(self.read_chunk_bytes, 0);
        }
    }

    /// The stamp of the last frame read ([`UNSTAMPED`] before the first): after a handshake,
    /// the other side's clock, to merge once the handshake succeeded.
    #[must_use]
    pub fn last_stamp(&self) -> u64 {
        self.last_stamp
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
        if self.staging.is_empty() {
            self.staging = vec![0; self.read_chunk_bytes];
        }
        loop {
            let pending = &self.staging[self.start..self.end];
            if let Some(header) = pending.first_chunk::<HEADER_BYTES>() {
                let header = *header;
                let fields = parse_header(&header, self.frame_bytes_max)?;
                let total = HEADER_BYTES + fields.length;
                if pending.len() >= total {
                    let body = Bytes::copy_from_slice(&pending[HEADER_BYTES..total]);
                    self.start += total;
                    return self.finish(fields, &header, body);
                }
                if total > self.staging.len() {
                    let body = self.read_large(stream, deadlines, stop, fields.length)?;
                    return self.finish(fields, &header, body);
                }
                // Make room for the rest of this frame behind what is pending.
                if self.staging.len() - self.start < total {
                    self.compact();
                }
            } else if self.start == self.end {
                self.start = 0;
                self.end = 0;
            } else if self.end == self.staging.len() {
                // A partial header at the very end of the buffer.
                self.compact();
            }
            if stop() {
                return Err(FrameError::Shutdown);
            }
            let (start, end) = (self.end, self.staging.len());
            let read = Self::fill(stream, &mut self.staging[start..end], self.start < self.end)?;
            self.end += read;
            self.check_deadlines(deadlines, self.end - self.start, None)?;
        }
    }

    /// Moves the pending bytes to the front of the staging buffer.
    fn compact(&mut self) {
        self.staging.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
    }

    /// Checks the checksum of a complete frame and returns it.
    fn finish(
        &mut self,
        fields: HeaderFields,
        header: &[u8; HEADER_BYTES],
        body: Bytes,
    ) -> Result<Frame, FrameError> {
        verify_checksum(header, fields.checksum, &body)?;
        let now = Instant::now();
        self.frame_started = (self.start < self.end).then_some(now);
        self.last_frame = now;
        self.last_stamp = fields.stamp;
        Ok(Frame {
            kind: fields.kind,
            stamp: fields.stamp,
            body,
        })
    }

    /// Reads a frame larger than the staging buffer into its own allocation (its length is
    /// checked against `frame_bytes_max` already): the pending bytes first, then the socket.
    fn read_large(
        &mut self,
        stream: &mut impl Read,
        deadlines: Deadlines,
        stop: &dyn Fn() -> bool,
        length: usize,
    ) -> Result<Bytes, FrameError> {
        let mut body = vec![0; length];
        let have = self.end - self.start - HEADER_BYTES;
        body[..have].copy_from_slice(&self.staging[self.start + HEADER_BYTES..self.end]);
        self.start = 0;
        self.end = 0;
        let mut got = have;
        while got < length {
            if stop() {
                return Err(FrameError::Shutdown);
            }
            got += Self::fill(stream, &mut body[got..], true)?;
            self.check_deadlines(deadlines, HEADER_BYTES + got, Some(HEADER_BYTES + length))?;
        }
        Ok(Bytes::from(body))
    }

    /// One read; a timeout reads nothing; end of stream is an error (`mid_frame`: bytes of
    /// an incomplete frame were pending).
    fn fill(stream: &mut impl Read, into: &mut [u8], mid_frame: bool) -> Result<usize, FrameError> {
        match stream.read(into) {
            Ok(0) => Err(FrameError::Closed { mid_frame }),
            Ok(n) => Ok(n),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                Ok(0)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Enforces the deadlines after a read; `have` bytes of the current frame are here.
    fn check_deadlines(
        &mut self,
        deadlines: Deadlines,
        have: usize,
        expected: Option<usize>,
    ) -> Result<(), FrameError> {
        let now = Instant::now();
        if have == 0 {
            if now.duration_since(self.last_frame) >= deadlines.idle_timeout {
                return Err(FrameError::Idle(deadlines.idle_timeout));
            }
            return Ok(());
        }
        let started = *self.frame_started.get_or_insert(now);
        if now.duration_since(started) >= deadlines.frame_timeout {
            let expected = expected.unwrap_or_else(|| {
                self.staging[self.start..self.end]
                    .first_chunk::<HEADER_BYTES>()
                    .map_or(HEADER_BYTES, |h| {
                        HEADER_BYTES + u32::from_le_bytes([h[8], h[9], h[10], h[11]]) as usize
                    })
            });
            return Err(FrameError::FrameTimeout(
                deadlines.frame_timeout,
                have.min(expected),
                expected,
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io::{self, Read};
    use std::time::{Duration, Instant};

    use bytes::Bytes;

    use super::{Deadlines, FrameReader};
    use crate::transport::codec::{
        FrameError, FrameKind, HEADER_BYTES, MAGIC, PROTOCOL_VERSION, UNSTAMPED, write_frame,
    };

    fn frame(body_bytes: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let body = Bytes::from(vec![7u8; body_bytes]);
        write_frame(&mut out, FrameKind::Messages, UNSTAMPED, &[body]).expect("Vec write");
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
            reader.staging.capacity() <= 64,
            "{} bytes reserved",
            reader.staging.capacity()
        );
    }

    /// Yields the bytes in reads of 1 to 7 bytes, then end of stream.
    struct Ragged {
        bytes: Vec<u8>,
        at: usize,
        step: usize,
    }

    impl Read for Ragged {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.step = self.step % 7 + 1;
            let n = self.step.min(buf.len()).min(self.bytes.len() - self.at);
            buf[..n].copy_from_slice(&self.bytes[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    #[test]
    fn frames_of_every_size_survive_ragged_reads_through_a_small_staging_buffer() {
        // Bodies smaller and larger than the 64-byte staging buffer, back to back.
        let sizes = [0usize, 1, 15, 16, 47, 48, 63, 64, 100, 200, 3, 1000, 0, 5];
        let mut stream = Vec::new();
        for (i, &size) in sizes.iter().enumerate() {
            let body = Bytes::from((0..size).map(|b| (b + i) as u8).collect::<Vec<_>>());
            write_frame(&mut stream, FrameKind::Messages, UNSTAMPED, &[body]).expect("Vec write");
        }
        let mut ragged = Ragged {
            bytes: stream,
            at: 0,
            step: 0,
        };
        let mut reader = FrameReader::new(4096, 64);
        for (i, &size) in sizes.iter().enumerate() {
            let frame = reader
                .read_frame(&mut ragged, deadlines(10_000, 10_000), &|| false)
                .expect("frame");
            let expected: Vec<u8> = (0..size).map(|b| (b + i) as u8).collect();
            assert_eq!(frame.body[..], expected[..], "frame {i}");
        }
        let end = reader.read_frame(&mut ragged, deadlines(10_000, 10_000), &|| false);
        assert!(
            matches!(end, Err(FrameError::Closed { mid_frame: false })),
            "{end:?}"
        );
    }
}
