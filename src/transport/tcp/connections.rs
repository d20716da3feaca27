//! [`Connections`]: the open inbound connections of the transport, for the caps
//! (`connections_max`, `handshakes_pending_max`), the replacement of a peer's older connection,
//! the closing of a removed peer's connection, and shutdown. It closes sockets through handles
//! (`shutdown`); the connection threads that own them see the close and end.

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
    /// id → (peer once authenticated, a handle to shut the socket down).
    open: HashMap<u64, (Option<NodeId>, TcpStream)>,
    pending: usize,
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
        table.open.insert(id, (None, handle));
        table.pending += 1;
        Ok(id)
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
        if let Some(entry) = table.open.get_mut(&id) {
            entry.0 = Some(peer);
            table.pending -= 1;
        }
        if !peers.contains(peer) {
            return false;
        }
        for (other, (p, stream)) in &table.open {
            if *other != id && *p == Some(peer) {
                let _ = stream.shutdown(Shutdown::Both);
            }
        }
        true
    }

    /// Closes every authenticated connection from `peer` (a removed peer); the count.
    pub(super) fn close_peer(&self, peer: NodeId) -> usize {
        let table = self.lock();
        let mut closed = 0;
        for (_, stream) in table.open.values().filter(|(p, _)| *p == Some(peer)) {
            let _ = stream.shutdown(Shutdown::Both);
            closed += 1;
        }
        closed
    }

    /// Forgets a connection whose thread ended.
    pub(super) fn remove(&self, id: u64) {
        let mut table = self.lock();
        if let Some((peer, _)) = table.open.remove(&id)
            && peer.is_none()
        {
            table.pending -= 1;
        }
    }

    /// Closes every connection; the number still open (their threads have not ended yet).
    pub(super) fn close_all(&self) -> usize {
        let table = self.lock();
        for (_, stream) in table.open.values() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        table.open.len()
    }
}
