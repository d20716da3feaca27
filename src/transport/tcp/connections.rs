//! [`Connections`]: the open inbound connections of the transport, for the caps
//! (`connections_max`, `handshakes_pending_max`, `calls_max`), the replacement of a peer's older
//! connection, the closing of a removed peer's connection, and shutdown. It closes sockets
//! through handles (`shutdown`); the connection threads that own them see the close and end.

use std::collections::HashMap;
use std::net::{Shutdown, TcpStream};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::TcpConfig;
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

    /// The connection authenticated as `peer`: an older connection from it is closed (the
    /// peer reconnected; its old socket may linger half-open). `false` when `peer` is no
    /// longer in `peers` (removed while its handshake ran): close the connection.
    ///
    /// Checked under this table's lock, so that a removal either sees this connection in
    /// [`Connections::close_peer`] (it removes the peer from `peers` first, then closes) or
    /// happened before the check here.
    pub(super) fn established(&self, id: u64, peer: NodeId, peers: &PeerTable) -> bool {
        let mut table = self.lock();
        Self::leave_handshake(&mut table, id, Stage::Peer(peer));
        if !peers.contains(peer) {
            return false;
        }
        for (other, open) in &table.open {
            if *other != id && open.stage == Stage::Peer(peer) {
                let _ = open.stream.shutdown(Shutdown::Both);
            }
        }
        true
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
