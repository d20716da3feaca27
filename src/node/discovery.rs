//! Static discovery: the cluster's nodes come from the configuration (`node_id`, `endpoint`
//! and `peers`); once partition 0's roster records endpoints, it names the members instead
//! (`RosterEndpoints`, for the leader hints of errors and events).

use std::sync::{Arc, OnceLock};

use crate::core::NodeId;
use crate::node::config::NodeConfig;
use crate::shard::EndpointLookup;
use crate::shard::membership::MembershipTable;

/// One node of the cluster as discovery knows it (Kommander's `RaftNode`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RaftNode {
    /// The node's id.
    pub node_id: NodeId,
    /// Where it is reached (`host:port`, or a transport-specific name).
    pub endpoint: String,
}

/// Discovery from the configuration: every node of `peers` plus the local node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaticDiscovery {
    local: RaftNode,
    peers: Vec<RaftNode>,
}

impl StaticDiscovery {
    /// The nodes `config` names.
    #[must_use]
    pub fn from_config(config: &NodeConfig) -> Self {
        Self {
            local: RaftNode {
                node_id: NodeId(config.node_id),
                endpoint: config.endpoint.clone(),
            },
            peers: config
                .peers
                .iter()
                .map(|(&id, endpoint)| RaftNode {
                    node_id: NodeId(id),
                    endpoint: endpoint.clone(),
                })
                .collect(),
        }
    }

    /// The local node.
    #[must_use]
    pub fn local(&self) -> &RaftNode {
        &self.local
    }

    /// The other nodes, by id.
    #[must_use]
    pub fn peers(&self) -> &[RaftNode] {
        &self.peers
    }

    /// The peer with id `node`.
    #[must_use]
    pub fn peer(&self, node: NodeId) -> Option<&RaftNode> {
        self.peers.iter().find(|p| p.node_id == node)
    }

    /// The peer reached at `endpoint`.
    #[must_use]
    pub fn peer_at(&self, endpoint: &str) -> Option<&RaftNode> {
        self.peers.iter().find(|p| p.endpoint == endpoint)
    }

    /// The endpoint of `node` (local or peer).
    #[must_use]
    pub fn endpoint_of(&self, node: NodeId) -> Option<&str> {
        if node == self.local.node_id {
            return Some(&self.local.endpoint);
        }
        self.peer(node).map(|p| p.endpoint.as_str())
    }

    /// Every node id (local and peers), sorted: the voters of every partition.
    #[must_use]
    pub fn voters(&self) -> Vec<NodeId> {
        let mut voters: Vec<NodeId> = self.peers.iter().map(|p| p.node_id).collect();
        voters.push(self.local.node_id);
        voters.sort_unstable();
        voters
    }
}

impl EndpointLookup for StaticDiscovery {
    fn endpoint_of(&self, node: NodeId) -> Option<String> {
        StaticDiscovery::endpoint_of(self, node).map(str::to_owned)
    }
}

/// The endpoints of the cluster's nodes: the roster's (a node that joined through a seed is
/// in no static configuration), else discovery's. The leadership table resolves a leader's
/// endpoint with it; the roster is attached once the shards run (they hold it).
#[derive(Debug)]
pub(crate) struct RosterEndpoints {
    discovery: StaticDiscovery,
    roster: OnceLock<Arc<MembershipTable>>,
}

impl RosterEndpoints {
    pub(crate) fn new(discovery: StaticDiscovery) -> Self {
        Self {
            discovery,
            roster: OnceLock::new(),
        }
    }

    /// Looks endpoints up in `table`'s roster from now on.
    pub(crate) fn attach(&self, table: Arc<MembershipTable>) {
        let _ = self.roster.set(table);
    }
}

impl EndpointLookup for RosterEndpoints {
    fn endpoint_of(&self, node: NodeId) -> Option<String> {
        let recorded = self
            .roster
            .get()
            .and_then(|table| table.roster())
            .and_then(|roster| roster.member(node).map(|m| m.endpoint.clone()))
            .filter(|endpoint| !endpoint.is_empty());
        recorded.or_else(|| StaticDiscovery::endpoint_of(&self.discovery, node).map(str::to_owned))
    }
}
