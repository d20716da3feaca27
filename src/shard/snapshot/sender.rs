//! A leader's side of one transfer: the export's chunks in order, at most
//! `chunks_in_flight_max` unacknowledged, the split marks at the snapshot's index on the
//! first, a SHA-256 over the whole on the last (empty) chunk, and the ack deadline; before it
//! starts, its place among the transfers waiting for a free one of `transfers_max`; after a
//! failure, the back-off before the follower is probed again.

use bytes::Bytes;

use super::chunks::{Chunk, ChunkSource};
use crate::core::{Floor, MessageBody, SnapshotChunk, Term};

/// A follower's transfer on its leader.
pub(crate) enum Sending {
    /// Streaming.
    Active(Box<Outgoing>),
    /// Waiting for one of the shard's `transfers_max` transfers to end: the waiting transfers
    /// start in the order they were asked for (`order`, lowest first). Waiting is not a
    /// failure: the next failure still waits `backoff` ticks.
    Queued { order: u64, backoff: u32 },
    /// The last transfer failed: the follower is probed again after `ticks_left` ticks (0:
    /// probed, a new transfer starts when it still needs one), and a new failure waits
    /// `backoff` ticks.
    BackingOff { ticks_left: u32, backoff: u32 },
}

/// One transfer being sent.
pub(crate) struct Outgoing {
    pub(crate) session: u64,
    /// The leader's term when it started (a transfer ends with the leadership).
    pub(crate) term: Term,
    /// The point of the log the snapshot stands for, with the configuration in force there.
    pub(crate) floor: Floor,
    /// The split marks in force at the floor's index, encoded (`partitions/marks.rs`; empty:
    /// none), sent on the first chunk.
    marks: Bytes,
    /// The application's export; `None` while a read job holds it or once it is read out.
    source: Option<ChunkSource>,
    /// Sequence number of the next chunk sent.
    next_seq: u32,
    /// Chunks acknowledged (every chunk below this sequence number).
    acked: u32,
    /// Whether the last chunk (with the digest) was sent.
    ended: bool,
    /// Snapshot bytes sent.
    pub(crate) bytes: u64,
    /// Ticks since the oldest unacknowledged chunk was sent or an acknowledgement came.
    waited: u32,
    /// The back-off after a failure of this transfer.
    pub(crate) backoff: u32,
}

impl Outgoing {
    pub(crate) fn new(
        session: u64,
        term: Term,
        floor: Floor,
        marks: Bytes,
        source: ChunkSource,
        backoff: u32,
    ) -> Self {
        Self {
            session,
            term,
            floor,
            marks,
            source: Some(source),
            next_seq: 0,
            acked: 0,
            ended: false,
            bytes: 0,
            waited: 0,
            backoff,
        }
    }

    /// Whether the next chunk may be read: the window has room and no read is out.
    pub(crate) fn can_send(&self, window: usize) -> bool {
        !self.ended && ((self.next_seq - self.acked) as usize) < window && self.source.is_some()
    }

    /// The export to read the next chunk from (once [`Outgoing::can_send`] said so).
    pub(crate) fn take_source(&mut self) -> Option<ChunkSource> {
        self.source.take()
    }

    /// A read came back: the chunk to send (the last one, with the digest, when the export
    /// is over).
    pub(crate) fn chunk(&mut self, source: ChunkSource, chunk: Chunk) -> MessageBody {
        let seq = self.next_seq;
        self.next_seq += 1;
        if self.next_seq - self.acked == 1 {
            self.waited = 0;
        }
        let (data, crc, digest) = match chunk {
            Chunk::Data { data, crc } => {
                self.bytes += data.len() as u64;
                self.source = Some(source);
                (data, crc, None)
            }
            Chunk::End { digest } => {
                self.ended = true;
                (Bytes::new(), crc32c::crc32c(&[]), Some(digest))
            }
        };
        MessageBody::SnapshotChunk(Box::new(SnapshotChunk {
            session: self.session,
            seq,
            last_index: self.floor.index,
            last_term: self.floor.term,
            configuration: self.floor.configuration.clone(),
            crc,
            digest,
            marks: if seq == 0 {
                self.marks.clone()
            } else {
                Bytes::new()
            },
            data,
        }))
    }

    /// The follower wrote chunk `seq` (acknowledgements come in order; a stale one changes
    /// nothing).
    pub(crate) fn acknowledged(&mut self, seq: u32) {
        if seq >= self.acked && seq < self.next_seq {
            self.acked = seq + 1;
            self.waited = 0;
        }
    }

    /// One tick: whether the oldest chunk in flight waited `timeout` ticks unacknowledged.
    pub(crate) fn timed_out(&mut self, timeout: u32) -> bool {
        if self.next_seq == self.acked {
            return false;
        }
        self.waited += 1;
        self.waited >= timeout
    }
}
