//! [`Connections`]: the open inbound connections of the transport, for the caps
//! (`connections_max`, `handshakes_pending_max`, `calls_max`), the replacement of a peer's older
//! connection, the duplicate-node rule (`duplicate.rs`: each peer connection's incarnation and
//! when its last frame arrived), the closing of a removed peer's connection, and shutdown. It
//! closes sockets through handles (`shutdown`); the connection threads that own them see the
//! close and end.

use std::collections::HashMap;
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::TcpConfig;
use super::duplicate;
use super::peers::PeerTable;
use crate::core::NodeId;

/// The open inbound connections.
#[derive(Default)]
pub(super) struct Connections {
    table: Mutex<ConnectionTable>,
}

#[derive(Default)]
struct ConnectionTable {
    next_id: u64,
    open: HashMap<u64, Open>,
    /// Connections in their handshake.
    pending: usize,
    /// Connections holding a slot of `calls_max`.
    calls: usize,
}

/// One open connection: what it is, and a handle to shut its socket down.
struct Open {
    stage: Stage,
    /// Whether it holds a slot of `calls_max` (from the admission of its `Call` handshake).
    call: bool,
    /// The incarnation its connector presented (0: none).
    incarnation: u64,
    /// When its last frame arrived (milliseconds on the transport's clock), written by its
    /// connection thread.
    heard_ms: Arc<AtomicU64>,
    stream: TcpStream,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    Handshake,
    /// An authenticated peer's connection (Raft messages).
    Peer(NodeId),
    /// An authenticated membership call.
    Call,
}

/// A peer connection that authenticated, as [`Connections::establish`] judges it.
#[derive(Clone, Copy, Debug)]
pub(super) struct Claimant<'a> {
    /// The connection.
    pub(super) id: u64,
    /// The node it says it is.
    pub(super) peer: NodeId,
    /// The incarnation it presented.
    pub(super) incarnation: u64,
    /// Its last-frame time, which its connection thread keeps current.
    pub(super) heard_ms: &'a Arc<AtomicU64>,
}

/// What [`Connections::establish`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Established {
    /// The connection serves the peer now (its older connections are closed).
    Admitted,
    /// The peer was removed while its handshake ran.
    NotAPeer,
    /// Another process holds the peer's id (a live connection with this incarnation) and
    /// keeps it.
    Duplicate {
        /// The incumbent's incarnation.
        incumbent: u64,
    },
}

/// Why a connection was not admitted, in words a peer and an operator understand.
#[derive(Debug)]
pub(super) enum Refusal {
    /// A cap is reached: answer `Busy`.
    Busy(String),
    /// The socket could not be cloned (out of descriptors).
    Io(std::io::Error),
}

impl Connections {
    fn lock(&self) -> MutexGuard<'_, ConnectionTable> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a new connection in its handshake.
    ///
    /// # Errors
    ///
    /// [`Refusal::Busy`] when a cap is reached (the reason names it), [`Refusal::Io`].
    pub(super) fn admit(&self, stream: &TcpStream, config: &TcpConfig) -> Result<u64, Refusal> {
        let mut table = self.lock();
        if table.open.len() >= config.connections_max {
            return Err(Refusal::Busy(format!(
                "{} connections are open, the node's transport.connections_max",
                table.open.len()
            )));
        }
        if table.pending >= config.handshakes_pending_max {
            return Err(Refusal::Busy(format!(
                "{} connections are in their handshake, the node's \
                 transport.handshakes_pending_max",
                table.pending
            )));
        }
        let handle = stream.try_clone().map_err(Refusal::Io)?;
        let id = table.next_id;
        table.next_id += 1;
        table.open.insert(
            id,
            Open {
                stage: Stage::Handshake,
                call: false,
                incarnation: 0,
                heard_ms: Arc::new(AtomicU64::new(0)),
                stream: handle,
            },
        );
        table.pending += 1;
        Ok(id)
    }

    /// Takes a slot of `calls_max` for connection `id` (a `Call` handshake was admitted); it is
    /// given back when the connection is removed.
    ///
    /// # Errors
    ///
    /// The refusal in words (naming `transport.calls_max`) when every slot is taken.
    pub(super) fn claim_call(&self, id: u64, calls_max: usize) -> Result<(), String> {
        let mut table = self.lock();
        let table = &mut *table;
        let Some(open) = table.open.get_mut(&id) else {
            return Err("the connection is closed".to_owned());
        };
        if !open.call {
            if table.calls >= calls_max {
                return Err(format!(
                    "{} membership calls are in progress, the node's transport.calls_max",
                    table.calls
                ));
            }
            open.call = true;
            table.calls += 1;
        }
        Ok(())
    }

    /// Moves connection `id` out of its handshake to `stage`.
    fn leave_handshake(table: &mut ConnectionTable, id: u64, stage: Stage) {
        if let Some(open) = table.open.get_mut(&id)
            && open.stage == Stage::Handshake
        {
            open.stage = stage;
            table.pending -= 1;
        }
    }

    /// The connection `claimant.id` authenticated as `claimant.peer`: judged by the
    /// duplicate-node rule against the peer's other connections alive at `now_ms` (a frame
    /// within `window_ms`), `roster` the incarnation the roster records for the peer. When
    /// admitted, its older connections are closed (the peer reconnected; an old socket may
    /// linger half-open).
    ///
    /// Checked under this table's lock, so that of two connections claiming one id at once
    /// the second sees the first, and a removal either sees this connection in
    /// [`Connections::close_peer`] (it removes the peer from `peers` first, then closes) or
    /// happened before the check here.
    pub(super) fn establish(
        &self,
        claimant: Claimant<'_>,
        peers: &PeerTable,
        roster: Option<u64>,
        now_ms: u64,
        window_ms: u64,
    ) -> Established {
        let mut table = self.lock();
        if !peers.contains(claimant.peer) {
            return Established::NotAPeer;
        }
        if let Some(incumbent) = Self::live_conflict(
            &table,
            claimant.peer,
            claimant.incarnation,
            now_ms,
            window_ms,
        ) && !duplicate::newcomer_keeps(roster, claimant.incarnation)
        {
            return Established::Duplicate { incumbent };
        }
        Self::leave_handshake(&mut table, claimant.id, Stage::Peer(claimant.peer));
        claimant.heard_ms.store(now_ms, Ordering::Relaxed);
        if let Some(open) = table.open.get_mut(&claimant.id) {
            open.incarnation = claimant.incarnation;
            open.heard_ms = Arc::clone(claimant.heard_ms);
        }
        for (other, open) in &table.open {
            if *other != claimant.id && open.stage == Stage::Peer(claimant.peer) {
                let _ = open.stream.shutdown(Shutdown::Both);
            }
        }
        Established::Admitted
    }

    /// The incarnation of another process holding `peer`'s id, when a live peer connection
    /// of another incarnation than `incarnation` is open (for a membership call from `peer`:
    /// judged, never admitted as a peer connection).
    pub(super) fn live_incumbent(
        &self,
        peer: NodeId,
        incarnation: u64,
        now_ms: u64,
        window_ms: u64,
    ) -> Option<u64> {
        Self::live_conflict(&self.lock(), peer, incarnation, now_ms, window_ms)
    }

    fn live_conflict(
        table: &ConnectionTable,
        peer: NodeId,
        incarnation: u64,
        now_ms: u64,
        window_ms: u64,
    ) -> Option<u64> {
        table
            .open
            .values()
            .filter(|open| open.stage == Stage::Peer(peer))
            .filter(|open| duplicate::conflict(open.incarnation, incarnation))
            .find(|open| duplicate::alive(open.heard_ms.load(Ordering::Relaxed), now_ms, window_ms))
            .map(|open| open.incarnation)
    }

    /// The connection authenticated as a membership call (it keeps its slot of `calls_max`
    /// until it is removed; it is nobody's peer connection).
    pub(super) fn call_established(&self, id: u64) {
        Self::leave_handshake(&mut self.lock(), id, Stage::Call);
    }

    /// Closes every authenticated connection from `peer` (a removed peer); the count. Its
    /// membership calls are left to finish.
    pub(super) fn close_peer(&self, peer: NodeId) -> usize {
        let table = self.lock();
        let mut closed = 0;
        for open in table.open.values().filter(|o| o.stage == Stage::Peer(peer)) {
            let _ = open.stream.shutdown(Shutdown::Both);
            closed += 1;
        }
        closed
    }

    /// Forgets a connection whose thread ended.
    pub(super) fn remove(&self, id: u64) {
        let mut table = self.lock();
        if let Some(open) = table.open.remove(&id) {
            if open.stage == Stage::Handshake {
                table.pending -= 1;
            }
            if open.call {
                table.calls -= 1;
            }
        }
    }

    /// Closes every connection; the number still open (their threads have not ended yet).
    pub(super) fn close_all(&self) -> usize {
        let table = self.lock();
        for open in table.open.values() {
            let _ = open.stream.shutdown(Shutdown::Both);
        }
        table.open.len()
    }
}
