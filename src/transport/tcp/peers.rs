//! The peer set, which may change while the transport runs (membership changes):
//! [`PeerTable`] holds each current peer's send path, its `Lane` (what the senders and the
//! listener read), [`Links`] the writer threads behind those lanes (what `TcpTransport::set_peers` and
//! `TcpTransport::shutdown` change, one change at a time under the transport's lock).
//!
//! ```text
//! set_peers(new set)
//!   unchanged peer (same endpoint)   nothing: its link and connections stay
//!   new peer                         writer thread + lane (bounded queue), into the table
//!   removed peer                     link retired (flag set, lane out of the table: its
//!                                    thread wakes, ends, its connection closes), its inbound
//!                                    connections closed; the listener refuses it from now on
//!   peer with another endpoint       old link retired, a new one started on the new endpoint
//! ```
//!
//! A retired thread is joined later, never by the caller of the change: the next change joins
//! those that have ended, shutdown joins the rest.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};
use std::thread::JoinHandle;

use tracing::info;

use super::TcpShared;
use super::lane::Lane;
use super::link::Link;
use crate::core::{Message, NodeId};
use crate::metrics::TransportDrop;
use crate::shard::transport::PeerSetError;

/// The current peers' send paths. Sending takes the read lock once (uncontended but while a
/// change swaps entries), looks the peer up and hands the batch to its lane (a write without
/// waiting on the socket, or its bounded queue): no waiting on the network.
#[derive(Default)]
pub(super) struct PeerTable {
    lanes: RwLock<HashMap<NodeId, Lane>>,
}

impl PeerTable {
    fn read(&self) -> RwLockReadGuard<'_, HashMap<NodeId, Lane>> {
        self.lanes.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends `batch` to `to` (see `lane.rs`); a batch for an unknown peer, or one its lane
    /// cannot take, is dropped and counted.
    pub(super) fn send(&self, shared: &TcpShared, to: NodeId, batch: Vec<Message>) {
        let lanes = self.read();
        match lanes.get(&to) {
            Some(lane) => lane.send(shared, to, batch),
            None => shared.dropped(TransportDrop::UnknownPeer, batch.len()),
        }
    }

    /// Whether `peer` is a current peer (the listener admits only those).
    pub(super) fn contains(&self, peer: NodeId) -> bool {
        self.read().contains_key(&peer)
    }

    /// The current peers, in id order.
    pub(super) fn ids(&self) -> Vec<NodeId> {
        let mut ids: Vec<NodeId> = self.read().keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// Removes `removed` and inserts `added` in one step: a sender sees the old set or the
    /// new one. Dropping a removed lane (its queue's sender) wakes its writer thread.
    fn update(&self, removed: &[NodeId], added: Vec<(NodeId, Lane)>) {
        let mut lanes = self.lanes.write().unwrap_or_else(PoisonError::into_inner);
        for peer in removed {
            lanes.remove(peer);
        }
        lanes.extend(added);
    }
}

/// The writer threads of the current peers, and those of former peers not joined yet.
#[derive(Default)]
pub(super) struct Links {
    running: BTreeMap<NodeId, Link>,
    /// Threads of retired links not joined yet. Few: each ends within its connection attempt
    /// (`connect_timeout_ms` + `handshake_timeout_ms`) or its write (`write_timeout_ms`) of its
    /// retirement, and the next change joins it.
    retired: Vec<JoinHandle<()>>,
}

impl Links {
    /// Makes `peers` the peer set (see the module's table). Changes nothing when the set is
    /// the current one, or once the transport is stopping.
    ///
    /// # Errors
    ///
    /// [`PeerSetError`], and the previous set stays: more than `peers_max` peers, this node's
    /// id or 0 among them, or a writer thread that could not be spawned.
    pub(super) fn replace(
        &mut self,
        shared: &Arc<TcpShared>,
        peers: &BTreeMap<NodeId, String>,
    ) -> Result<(), PeerSetError> {
        check(shared, peers)?;
        self.join_ended();
        if shared.stopping() {
            return Ok(());
        }
        let unchanged = |peer: &NodeId, address: &String| {
            self.running
                .get(peer)
                .is_some_and(|link| link.address() == address)
        };
        let removed: Vec<NodeId> = self
            .running
            .iter()
            .filter(|&(peer, link)| peers.get(peer).is_none_or(|a| a != link.address()))
            .map(|(&peer, _)| peer)
            .collect();
        let to_start: Vec<(NodeId, &String)> = peers
            .iter()
            .filter(|&(peer, address)| !unchanged(peer, address))
            .map(|(&peer, address)| (peer, address))
            .collect();
        if removed.is_empty() && to_start.is_empty() {
            return Ok(());
        }
        let mut started = Vec::with_capacity(to_start.len());
        for (peer, address) in to_start {
            match Link::spawn(shared, peer, address) {
                Ok(link_and_lane) => started.push((peer, link_and_lane)),
                Err(source) => {
                    // Undo: the new threads end (their lanes were never shared); flag first,
                    // then the lane dropped, as below.
                    for (_, (link, lane)) in started {
                        self.retired.push(link.retire());
                        drop(lane);
                    }
                    return Err(PeerSetError::Io { peer, source });
                }
            }
        }
        // Flags first, then the lanes out of the table: a woken thread sees its flag.
        let mut retiring = Vec::with_capacity(removed.len());
        for peer in &removed {
            if let Some(link) = self.running.remove(peer) {
                retiring.push((*peer, link.retire()));
            }
        }
        let mut lanes = Vec::with_capacity(started.len());
        for (peer, (link, lane)) in started {
            if removed.contains(&peer) {
                info!(%peer, address = link.address(), "peer moved; reconnecting there");
            } else {
                info!(%peer, address = link.address(), "peer added");
            }
            self.running.insert(peer, link);
            lanes.push((peer, lane));
        }
        shared.peers.update(&removed, lanes);
        for (peer, thread) in retiring {
            self.retired.push(thread);
            if !peers.contains_key(&peer) {
                let closed = shared.connections.close_peer(peer);
                info!(%peer, inbound_closed = closed, "peer removed");
            }
        }
        Ok(())
    }

    /// Joins the retired threads that have ended (none waits).
    fn join_ended(&mut self) {
        let (ended, running): (Vec<_>, Vec<_>) = std::mem::take(&mut self.retired)
            .into_iter()
            .partition(JoinHandle::is_finished);
        self.retired = running;
        for thread in ended {
            let _ = thread.join();
        }
    }

    /// Ends every writer thread and waits for them (the transport is stopping).
    pub(super) fn shutdown(&mut self, shared: &TcpShared) {
        let peers: Vec<NodeId> = self.running.keys().copied().collect();
        for (_, link) in std::mem::take(&mut self.running) {
            self.retired.push(link.retire());
        }
        shared.peers.update(&peers, Vec::new());
        for thread in self.retired.drain(..) {
            let _ = thread.join();
        }
    }

    /// Retired threads not joined yet (for the tests).
    #[cfg(test)]
    pub(super) fn retired(&self) -> &[JoinHandle<()>] {
        &self.retired
    }
}

/// Checks a peer set against this node's id and `peers_max`.
fn check(shared: &TcpShared, peers: &BTreeMap<NodeId, String>) -> Result<(), PeerSetError> {
    let me = shared.identity.node;
    if let Some(&peer) = peers.keys().find(|&&p| p == me || p.get() == 0) {
        return Err(PeerSetError::InvalidPeer(peer));
    }
    let max = shared.config.peers_max;
    if peers.len() > max {
        return Err(PeerSetError::TooMany {
            count: peers.len(),
            max,
            setting: "transport.peers_max",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::net::TcpListener;
    use std::sync::PoisonError;
    use std::time::{Duration, Instant};

    use crate::core::NodeId;
    use crate::shard::Transport;
    use crate::transport::tcp::{TcpCluster, TcpConfig, TcpTransport};

    #[test]
    fn a_removed_peers_thread_ends_and_is_joined_by_the_next_change_without_waiting() {
        // A peer nothing listens at: its writer thread is in its reconnect backoff.
        let nowhere = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .to_string();
        let config = TcpConfig {
            listen_address: "127.0.0.1:0".to_owned(),
            // A long backoff: the thread ends because it was retired, not because a sleep ran out.
            reconnect_backoff_min_ms: 60_000,
            reconnect_backoff_max_ms: 60_000,
            ..TcpConfig::default()
        };
        let cluster = TcpCluster {
            cluster_name: "c".to_owned(),
            node_id: NodeId(1),
            peers: BTreeMap::from([(NodeId(2), nowhere)]),
            heartbeat_interval: Duration::from_millis(50),
        };
        let transport = TcpTransport::bind(&config, &cluster).expect("transport");
        let retired_finished = |transport: &TcpTransport| {
            let links = transport
                .links
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            links
                .retired()
                .iter()
                .map(|t| t.is_finished())
                .collect::<Vec<_>>()
        };
        transport.set_peers(&BTreeMap::new()).expect("removed");
        let deadline = Instant::now() + Duration::from_secs(20);
        while retired_finished(&transport) != [true] {
            assert!(
                Instant::now() < deadline,
                "the removed peer's thread did not end"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        transport.set_peers(&BTreeMap::new()).expect("the same set");
        assert_eq!(retired_finished(&transport), Vec::<bool>::new(), "joined");
        transport.shutdown();
    }
}
