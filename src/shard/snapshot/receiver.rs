//! A follower's side of one transfer: chunks accepted strictly in order (a duplicate of the
//! previous one is acknowledged again, anything else ends the transfer), queued for the import
//! in order (the write job checks each against its CRC32C), the SHA-256 over the whole compared
//! before the import may finish; capped in bytes and in idle ticks.

use std::collections::VecDeque;

use bytes::Bytes;

use super::chunks::ChunkSink;
use crate::core::{Floor, NodeId, Term};
use crate::shard::partitions::marks::LogMarks;
use crate::shard::state_transfer::SnapshotImport;

/// What became of a chunk of the current transfer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Arrival {
    /// The next chunk: queued for the import.
    Queued,
    /// The previous chunk again: acknowledge it again if it was written.
    Duplicate { written: bool },
    /// Out of order, beyond the caps or after the last chunk: the transfer ends.
    Refused(&'static str),
}

/// One transfer being received.
pub(crate) struct Incoming {
    pub(crate) leader: NodeId,
    pub(crate) session: u64,
    /// The leader's term (a transfer ends when the follower learns of another leader).
    pub(crate) term: Term,
    /// The point of the log the snapshot stands for, with the configuration in force there.
    pub(crate) floor: Floor,
    /// The split marks in force at the floor's index (from the first chunk).
    pub(crate) marks: LogMarks,
    /// The application's import; `None` while it is being opened or a job holds it.
    sink: Option<ChunkSink>,
    /// Chunks arrived and not yet written: (sequence number, bytes, CRC32C).
    queued: VecDeque<(u32, Bytes, u32)>,
    /// Sequence number of the next chunk expected.
    next_seq: u32,
    /// Sequence number of the last chunk written to the import.
    written: Option<u32>,
    /// The sender's SHA-256 of the whole, from the last chunk; its sequence number.
    last: Option<([u8; 32], u32)>,
    pub(crate) bytes: u64,
    idle: u32,
    /// The import's `finish` is running: the partition is held until it returns.
    pub(crate) finishing: bool,
}

impl Incoming {
    /// A transfer whose first chunk arrived (then passed to [`Incoming::arrive`]); its import
    /// is being opened.
    pub(crate) fn new(
        leader: NodeId,
        session: u64,
        term: Term,
        floor: Floor,
        marks: LogMarks,
    ) -> Self {
        Self {
            leader,
            session,
            term,
            floor,
            marks,
            sink: None,
            queued: VecDeque::new(),
            next_seq: 0,
            written: None,
            last: None,
            bytes: 0,
            idle: 0,
            finishing: false,
        }
    }

    /// Chunk `seq` arrived.
    pub(crate) fn arrive(
        &mut self,
        seq: u32,
        crc: u32,
        digest: Option<[u8; 32]>,
        data: Bytes,
        limits: (usize, u64),
    ) -> Arrival {
        let (queued_max, bytes_max) = limits;
        self.idle = 0;
        if seq.checked_add(1) == Some(self.next_seq) {
            return Arrival::Duplicate {
                written: self.written == Some(seq),
            };
        }
        if seq != self.next_seq || self.last.is_some() {
            return Arrival::Refused("a chunk out of order");
        }
        if self.bytes + data.len() as u64 > bytes_max {
            return Arrival::Refused("the transfer passed snapshot.session_bytes_max");
        }
        if self.queued.len() >= queued_max {
            return Arrival::Refused("more chunks in flight than snapshot.chunks_in_flight_max");
        }
        self.next_seq += 1;
        self.bytes += data.len() as u64;
        if let Some(digest) = digest {
            self.last = Some((digest, seq));
        }
        if !data.is_empty() {
            self.queued.push_back((seq, data, crc));
        }
        Arrival::Queued
    }

    /// The import is open, or a write came back: it takes the next chunk.
    pub(crate) fn give_back(&mut self, sink: ChunkSink) {
        self.sink = Some(sink);
    }

    /// The sequence number of the last chunk (once it arrived).
    pub(crate) fn last_seq(&self) -> u32 {
        self.last.map_or(0, |(_, seq)| seq)
    }

    /// The chunk the last write job wrote.
    pub(crate) fn last_written(&self) -> Option<u32> {
        self.written
    }

    /// The next chunk to write (its bytes and CRC32C) and the import to write it with, if the
    /// import is free.
    pub(crate) fn next_write(&mut self) -> Option<(ChunkSink, Bytes, u32)> {
        if self.sink.is_none() || self.queued.is_empty() {
            return None;
        }
        let (seq, data, crc) = self.queued.pop_front()?;
        let sink = self.sink.take()?;
        self.written = Some(seq);
        Some((sink, data, crc))
    }

    /// Once every chunk is written and the last one came: the import to finish, or why the
    /// transfer ends (the digest does not match).
    pub(crate) fn take_finished(
        &mut self,
    ) -> Option<Result<Box<dyn SnapshotImport>, &'static str>> {
        let (digest, _) = self.last?;
        if !self.queued.is_empty() || self.finishing {
            return None;
        }
        let import = self.sink.take()?.into_import(&digest);
        self.finishing = import.is_ok();
        Some(import)
    }

    /// One tick: whether the transfer heard nothing for `idle_max` ticks (never while the
    /// import finishes).
    pub(crate) fn idle_too_long(&mut self, idle_max: u32) -> bool {
        if self.finishing {
            return false;
        }
        self.idle += 1;
        self.idle >= idle_max
    }
}
