//! The send path to one peer: [`Lane`] is what `Transport::send` finds in the peer table,
//! [`Route`] the state it shares with the peer's writer thread (`link.rs`) about who may write
//! on the connection now.
//!
//! The direct send: when the connection is up, nothing is queued for the writer thread, no
//! partial frame waits, the writer thread is not writing and nothing was written on the
//! connection for `direct_write_quiet_us` (a stream of sends is left to the writer thread,
//! which coalesces it into few frames), the sending thread (a shard) encodes the batch and
//! writes it on the socket itself, without waiting (the socket is non-blocking): no thread
//! hop, no wake-up. Otherwise the batch goes to the writer thread's bounded queue, as it
//! always did (full: dropped and counted). A direct write the socket took only part of (its
//! send buffer is full) or failed leaves the rest to the writer thread, which finishes it
//! before it writes anything else (or fails on it and reconnects, reporting the lost
//! connection as for any write of its own). Heartbeats and heartbeat responses never go
//! directly: they go to the writer thread's board (coalescing, the read-round rule), which a
//! later direct frame may overtake, as a frame of the writer's own could.
//!
//! Why frames never interleave nor reorder on the connection: every decision below is taken
//! under the route's lock, and a sender writes directly only while it holds it, nothing is
//! queued or in the writer's hands (`queued == 0`), no rest is left (`rest` is `None`) and
//! the writer thread is not writing (`writing` is false). The writer takes `writing` (and
//! any rest, which it writes first) under the lock before each write and gives it back, with
//! the count of the queue items it has dealt with, after it. So a batch queued before
//! another is written before it, whoever writes the later one; and two direct writes are
//! ordered by the lock.
//!
//! ```text
//! send(batch) ── lock ── direct? ──yes── encode, write without waiting ── all taken: done
//!                   │                          └── rest ─► route.rest + Finish ─► writer
//!                   └──no── queued += 1, try_send ─► writer thread (full: dropped, counted)
//! writer: recv ─► lock: writing = true, take rest ─► write rest, then its frames (waiting)
//!               ─► lock: writing = false, queued -= items dealt with
//! ```

use std::net::TcpStream;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crossbeam::channel::{Sender, TrySendError};

use super::TcpShared;
use super::link::read_round;
use super::unsent::Unsent;
use crate::core::{Message, NodeId};
use crate::metrics::TransportDrop;

/// What the writer thread of a peer receives on its queue.
#[derive(Debug)]
pub(super) enum Outgoing {
    /// Messages to send (in as few frames as the limits allow).
    Messages(Vec<Message>),
    /// A direct write left a rest in the route: finish it (the writer takes the rest before
    /// any write of its own anyway; this wakes it).
    Finish,
}

/// The send path to one peer, as the peer table holds it.
pub(super) struct Lane {
    queue: Sender<Outgoing>,
    route: Arc<Route>,
}

/// Who may write on a peer's connection now (see the module's documentation).
#[derive(Debug, Default)]
pub(super) struct Route {
    state: Mutex<RouteState>,
}

#[derive(Debug, Default)]
struct RouteState {
    /// The connection, while it is up (its handshake done); shared with the writer thread.
    stream: Option<Arc<TcpStream>>,
    /// The writer thread is writing.
    writing: bool,
    /// Items sent to the writer's queue and not dealt with yet.
    queued: usize,
    /// What a direct write left unwritten (the writer finishes it first).
    rest: Option<Unsent>,
    /// When a frame was last written on the connection (by a sender or the writer thread).
    last_write: Option<Instant>,
}

impl Route {
    fn lock(&self) -> MutexGuard<'_, RouteState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The writer thread's connection is up: senders may write on `stream` directly.
    pub(super) fn connected(&self, stream: Arc<TcpStream>) {
        let mut state = self.lock();
        state.stream = Some(stream);
        state.writing = false;
        state.rest = None;
    }

    /// The connection is lost or closing (or the link retired): nothing is written on it
    /// directly any more; a rest left is lost with it.
    pub(super) fn disconnected(&self) {
        let mut state = self.lock();
        state.stream = None;
        state.writing = false;
        state.rest = None;
    }

    /// The writer thread is about to write: no sender writes directly until
    /// [`Route::release`]; returns the rest of a direct write, to be written first.
    pub(super) fn acquire(&self) -> Option<Unsent> {
        let mut state = self.lock();
        state.writing = true;
        state.rest.take()
    }

    /// The writer thread is done writing (`wrote`: it wrote something), and has dealt with
    /// `items` more of its queue's.
    pub(super) fn release(&self, items: usize, wrote: bool) {
        let mut state = self.lock();
        state.writing = false;
        state.queued = state.queued.saturating_sub(items);
        if wrote {
            state.last_write = Some(Instant::now());
        }
    }

    /// The writer thread dealt with `items` of its queue's without writing (it dropped them:
    /// no connection).
    pub(super) fn dealt_with(&self, items: usize) {
        let mut state = self.lock();
        state.queued = state.queued.saturating_sub(items);
    }
}

impl Lane {
    /// The lane over the writer thread's `queue` and the `route` it shares with it.
    pub(super) const fn new(queue: Sender<Outgoing>, route: Arc<Route>) -> Self {
        Self { queue, route }
    }

    /// Sends `batch` to `peer`: directly when the connection is free and quiet (see the
    /// module's documentation), else through the writer thread's queue. Never waits for the network:
    /// a full queue drops the batch (counted, `QueueFull`).
    pub(super) fn send(&self, shared: &TcpShared, peer: NodeId, mut batch: Vec<Message>) {
        let mut state = self.route.lock();
        let quiet = Duration::from_micros(shared.config.direct_write_quiet_us);
        let direct = !state.writing
            && state.queued == 0
            && state.rest.is_none()
            && state.last_write.is_none_or(|at| at.elapsed() >= quiet);
        let stream = state.stream.as_ref().filter(|_| direct).map(Arc::clone);
        if let Some(stream) = stream {
            // Heartbeats stay with the writer thread's board (coalescing, read rounds).
            let beats: Vec<Message> = if batch.iter().any(|m| read_round(&m.body).is_some()) {
                let (beats, data) = batch
                    .into_iter()
                    .partition(|m| read_round(&m.body).is_some());
                batch = data;
                beats
            } else {
                Vec::new()
            };
            if !batch.is_empty() {
                let mut unsent = Unsent::encode(shared, peer, &mut batch);
                // An error is the writer thread's to report, as for its own writes: it fails
                // on the rest and reconnects. It counts the frames once it wrote the rest.
                let _ = unsent.write_without_waiting(&stream);
                state.last_write = Some(Instant::now());
                if unsent.is_done() {
                    unsent.count_sent(shared, true);
                } else {
                    state.rest = Some(unsent);
                    self.enqueue(shared, &mut state, Outgoing::Finish);
                }
            }
            batch = beats;
        }
        if !batch.is_empty() {
            self.enqueue(shared, &mut state, Outgoing::Messages(batch));
        }
    }

    /// Hands `item` to the writer thread (dropped and counted when its queue is full).
    fn enqueue(&self, shared: &TcpShared, state: &mut RouteState, item: Outgoing) {
        match self.queue.try_send(item) {
            Ok(()) => state.queued += 1,
            Err(TrySendError::Full(item) | TrySendError::Disconnected(item)) => {
                if let Outgoing::Messages(batch) = item {
                    shared.dropped(TransportDrop::QueueFull, batch.len());
                }
            }
        }
    }
}
