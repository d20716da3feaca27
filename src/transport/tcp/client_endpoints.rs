//! The client endpoints of this node and of its peers: where clients reach each node's client
//! port. This node advertises its own in the `Welcome` of every connection it accepts (the
//! handshake); it learns each peer's from the `Welcome` of its own connection to that peer.
//! The client port answers a client asking who leads a partition with the leader's.
//!
//! Only current peers are kept (at most `peers_max`): learning prunes the others.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::core::NodeId;
use crate::shard::membership::ENDPOINT_BYTES_MAX;

/// The peers' advertised client endpoints, by node id.
#[derive(Debug, Default)]
pub(super) struct ClientEndpoints {
    learned: Mutex<BTreeMap<NodeId, String>>,
}

impl ClientEndpoints {
    fn learned(&self) -> MutexGuard<'_, BTreeMap<NodeId, String>> {
        self.learned.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records what `peer` advertised in its latest `Welcome` (`None`: nothing, which forgets
    /// what it advertised before, e.g. it restarted without a client port), and forgets the
    /// nodes `is_peer` no longer names. Nothing is recorded for a node that is not a peer.
    pub(super) fn learn(
        &self,
        peer: NodeId,
        advertised: Option<String>,
        is_peer: &dyn Fn(NodeId) -> bool,
    ) {
        let mut learned = self.learned();
        learned.retain(|&node, _| is_peer(node));
        match advertised {
            Some(endpoint) if is_peer(peer) => {
                learned.insert(peer, endpoint);
            }
            _ => {
                learned.remove(&peer);
            }
        }
    }

    /// The client endpoint `peer` advertised, if it did.
    pub(super) fn of(&self, peer: NodeId) -> Option<String> {
        self.learned().get(&peer).cloned()
    }
}

/// Whether a client elsewhere can reach `endpoint`: `host:port` with a port other than 0, at
/// most [`ENDPOINT_BYTES_MAX`] bytes, no control character, and a host that is not an
/// unspecified address (`0.0.0.0`, `[::]`: a listen address, not a place to connect to).
///
/// # Errors
///
/// What is wrong, in words.
pub(super) fn check_advertised(endpoint: &str) -> Result<(), String> {
    if endpoint.is_empty() || endpoint.len() > ENDPOINT_BYTES_MAX {
        return Err(format!("it must have 1 to {ENDPOINT_BYTES_MAX} bytes"));
    }
    if endpoint.chars().any(char::is_control) {
        return Err("it holds a control character".to_owned());
    }
    let Some((host, port)) = endpoint.rsplit_once(':') else {
        return Err("it is not host:port".to_owned());
    };
    if host.is_empty() {
        return Err("its host is empty".to_owned());
    }
    if !matches!(port.parse::<u16>(), Ok(p) if p != 0) {
        return Err(format!("its port `{port}` is not a port from 1 to 65535"));
    }
    let ip = host.trim_start_matches('[').trim_end_matches(']');
    if ip.parse::<IpAddr>().is_ok_and(|ip| ip.is_unspecified()) {
        return Err(format!(
            "{host} is the unspecified address: advertise one clients can connect to"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_current_peers_are_kept() {
        let endpoints = ClientEndpoints::default();
        let peers = [NodeId(2), NodeId(3)];
        let is_peer = |node: NodeId| peers.contains(&node);
        endpoints.learn(NodeId(2), Some("10.0.0.2:7200".to_owned()), &is_peer);
        endpoints.learn(NodeId(9), Some("10.0.0.9:7200".to_owned()), &is_peer);
        assert_eq!(endpoints.of(NodeId(2)).as_deref(), Some("10.0.0.2:7200"));
        assert_eq!(endpoints.of(NodeId(9)), None, "not a peer");
        // 2 restarted without a client port.
        endpoints.learn(NodeId(2), None, &is_peer);
        assert_eq!(endpoints.of(NodeId(2)), None);
        endpoints.learn(NodeId(2), Some("10.0.0.2:7201".to_owned()), &is_peer);
        // 2 left the peers: the next learning forgets it.
        let is_peer = |node: NodeId| node == NodeId(3);
        endpoints.learn(NodeId(3), Some("10.0.0.3:7200".to_owned()), &is_peer);
        assert_eq!(endpoints.of(NodeId(2)), None);
        assert_eq!(endpoints.of(NodeId(3)).as_deref(), Some("10.0.0.3:7200"));
    }

    #[test]
    fn an_advertised_endpoint_is_one_a_client_can_connect_to() {
        for good in [
            "10.0.0.1:7200",
            "db-1.example:7200",
            "[::1]:7200",
            "127.0.0.1:1",
        ] {
            assert_eq!(check_advertised(good), Ok(()), "{good}");
        }
        let long = format!("{}:7200", "h".repeat(ENDPOINT_BYTES_MAX));
        for bad in [
            "",
            "0.0.0.0:7200",
            "[::]:7200",
            "10.0.0.1",
            "10.0.0.1:0",
            "10.0.0.1:port",
            "10.0.0.1:70000",
            ":7200",
            "10.0.0.1:72\n00",
            long.as_str(),
        ] {
            assert!(check_advertised(bad).is_err(), "{bad:?}");
        }
    }
}
