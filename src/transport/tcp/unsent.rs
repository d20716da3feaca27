//! Frames encoded for a peer and not yet (wholly) written: [`Unsent`] holds their bytes as
//! chunks (headers, the encoded fields, the entries' own payloads: nothing is copied), and
//! writes them on a peer connection's socket, which is non-blocking once its handshake is
//! done. Two ways: [`Unsent::write_without_waiting`], for a sending shard thread (it takes
//! what the socket takes now and leaves the rest), and [`Unsent::write_patiently`], for the
//! peer's writer thread (it waits for the socket, up to `write_timeout_ms` without progress).
//!
//! [`Unsent::encode`] splits a batch into as few frames as `frame_bytes_max` and
//! `frame_messages_max` allow (a message the peer would refuse is dropped and counted).

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::{Buf, Bytes};
use rustix::event::{PollFd, PollFlags, Timespec};
use tracing::warn;

use super::TcpShared;
use crate::core::{Message, NodeId};
use crate::metrics::TransportDrop;
use crate::transport::codec::{FrameKind, HEADER_BYTES, encode_messages, encoded_len, header_for};

/// `IOV_MAX` on Linux: the most slices one vectored write takes.
const IOVECS_MAX: usize = 1024;

/// Encoded frames, in order, whose bytes are not all written yet.
#[derive(Debug, Default)]
pub(super) struct Unsent {
    /// The bytes still to write, in order; the first may be a chunk's unwritten tail.
    chunks: VecDeque<Bytes>,
    /// Frames encoded (for the counters).
    frames: u64,
    /// Bytes encoded, headers included (for the counters).
    bytes: u64,
}

impl Unsent {
    /// Encodes `messages` (emptied) as frames stamped now, in as few frames as the limits
    /// allow; an empty list encodes one empty frame (a keepalive). A message larger than
    /// `frame_bytes_max` is dropped and counted (cannot happen with a validated
    /// configuration: never send what the peer would refuse).
    pub(super) fn encode(shared: &TcpShared, peer: NodeId, messages: &mut Vec<Message>) -> Self {
        let config = &shared.config;
        let before = messages.len();
        messages.retain(|m| 4 + encoded_len(m) <= config.frame_bytes_max);
        if messages.len() < before {
            warn!(%peer, count = before - messages.len(), "dropping messages larger than frame_bytes_max");
            shared.dropped(TransportDrop::TooLarge, before - messages.len());
        }
        let mut unsent = Self::default();
        let stamp = shared.stamp();
        let mut frame = |messages: &[Message], bytes: usize| {
            let body = encode_messages(messages);
            let header = header_for(FrameKind::Messages, stamp, &body);
            unsent.chunks.push_back(Bytes::copy_from_slice(&header));
            unsent
                .chunks
                .extend(body.into_iter().filter(|c| !c.is_empty()));
            unsent.frames += 1;
            unsent.bytes += (HEADER_BYTES + bytes) as u64;
        };
        let (mut start, mut bytes) = (0, 4);
        for i in 0..messages.len() {
            let len = encoded_len(&messages[i]);
            if i > start
                && (bytes + len > config.frame_bytes_max || i - start >= config.frame_messages_max)
            {
                frame(&messages[start..i], bytes);
                (start, bytes) = (i, 4);
            }
            bytes += len;
        }
        if start < messages.len() || messages.is_empty() {
            frame(&messages[start..], bytes);
        }
        messages.clear();
        unsent
    }

    /// Whether every byte was written.
    pub(super) fn is_done(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Counts the frames as sent (`frames_sent`, `bytes_sent`; `directly`: written by the
    /// sending thread, `frames_sent_directly` too).
    pub(super) fn count_sent(&self, shared: &TcpShared, directly: bool) {
        let stats = &shared.stats;
        stats.frames_sent.fetch_add(self.frames, Ordering::Relaxed);
        stats.bytes_sent.fetch_add(self.bytes, Ordering::Relaxed);
        if directly {
            stats
                .frames_sent_directly
                .fetch_add(self.frames, Ordering::Relaxed);
        }
    }

    /// One vectored write of what is left (at most [`IOVECS_MAX`] chunks); the written
    /// bytes are consumed.
    fn write_once(&mut self, mut stream: &TcpStream) -> io::Result<usize> {
        let slices: Vec<IoSlice<'_>> = self
            .chunks
            .iter()
            .take(IOVECS_MAX)
            .map(|c| IoSlice::new(c))
            .collect();
        let written = stream.write_vectored(&slices)?;
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        let mut left = written;
        while left > 0 {
            let Some(first) = self.chunks.front_mut() else {
                break;
            };
            if first.len() <= left {
                left -= first.len();
                self.chunks.pop_front();
            } else {
                first.advance(left);
                left = 0;
            }
        }
        Ok(written)
    }

    /// Writes what the socket takes now, never waiting (the socket is non-blocking); `Ok`
    /// with the rest still here when its send buffer is full ([`Unsent::is_done`] says).
    ///
    /// # Errors
    ///
    /// The socket's error (the connection is lost); what was not written stays here.
    pub(super) fn write_without_waiting(&mut self, stream: &TcpStream) -> io::Result<()> {
        while !self.is_done() {
            match self.write_once(stream) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Writes everything, waiting for the (non-blocking) socket to take more whenever its
    /// send buffer is full.
    ///
    /// # Errors
    ///
    /// The socket's error, or `TimedOut` when it took nothing for `timeout`.
    pub(super) fn write_patiently(
        &mut self,
        stream: &TcpStream,
        timeout: Duration,
    ) -> io::Result<()> {
        while !self.is_done() {
            match self.write_once(stream) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    wait_writable(stream, timeout)?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Waits until `stream` can take more bytes (or has an error the next write reports).
///
/// # Errors
///
/// `TimedOut` after `timeout`; the poll's own error.
fn wait_writable(stream: &TcpStream, timeout: Duration) -> io::Result<()> {
    let limit = Timespec {
        tv_sec: i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(timeout.subsec_nanos()),
    };
    let mut fds = [PollFd::new(stream, PollFlags::OUT)];
    loop {
        match rustix::event::poll(&mut fds, Some(&limit)) {
            Ok(0) => return Err(io::ErrorKind::TimedOut.into()),
            Ok(_) => return Ok(()),
            // A signal: wait again (a full timeout more at worst).
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}
