//! The in-memory network between the openraft nodes: an RPC to node `target` of group `g` is a
//! direct call of that node's `Raft` handle of `g` (which queues it to the group's core task
//! and awaits the answer), as kommander's memory transport hands messages to the peer's shard
//! without sockets.

use std::io;
use std::sync::{Arc, OnceLock};

use openraft::BasicNode;
use openraft::error::{InstallSnapshotError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};

use crate::NODE_COUNT;
use crate::openraft_side::{NodeId, OpenRaft, TypeConfig};

/// Every node's `Raft` handle of every group, registered once each is created.
pub struct Router {
    rafts: Vec<OnceLock<OpenRaft>>,
}

impl Router {
    /// A router for `groups` groups on nodes `1..=NODE_COUNT`.
    pub fn new(groups: u32) -> Self {
        Self {
            rafts: (0..groups as usize * NODE_COUNT as usize)
                .map(|_| OnceLock::new())
                .collect(),
        }
    }

    fn slot(&self, node: NodeId, group: u32) -> Option<&OnceLock<OpenRaft>> {
        let node_index = usize::try_from(node.checked_sub(1)?).ok()?;
        if node_index >= NODE_COUNT as usize {
            return None;
        }
        self.rafts
            .get(group as usize * NODE_COUNT as usize + node_index)
    }

    /// Registers `node`'s handle of `group`; a second registration of one slot is ignored.
    pub fn register(&self, node: NodeId, group: u32, raft: OpenRaft) {
        if let Some(slot) = self.slot(node, group) {
            let _ = slot.set(raft);
        }
    }

    /// `node`'s handle of `group`, once registered.
    pub fn raft(&self, node: NodeId, group: u32) -> Option<&OpenRaft> {
        self.slot(node, group)?.get()
    }

    /// Every registered handle.
    pub fn all(&self) -> impl Iterator<Item = &OpenRaft> {
        self.rafts.iter().filter_map(OnceLock::get)
    }
}

/// One group's network on one node: makes its clients to the group's other nodes.
pub struct GroupNetwork {
    router: Arc<Router>,
    group: u32,
}

impl GroupNetwork {
    /// The network of `group`, routing through `router`.
    pub fn new(router: Arc<Router>, group: u32) -> Self {
        Self { router, group }
    }
}

impl RaftNetworkFactory<TypeConfig> for GroupNetwork {
    type Network = GroupClient;

    async fn new_client(&mut self, target: NodeId, _node: &BasicNode) -> GroupClient {
        GroupClient {
            router: Arc::clone(&self.router),
            group: self.group,
            target,
        }
    }
}

/// One group's client to one other node.
pub struct GroupClient {
    router: Arc<Router>,
    group: u32,
    target: NodeId,
}

impl GroupClient {
    /// The target's handle of the group (registered before any group starts).
    fn target_raft(&self) -> Option<&OpenRaft> {
        self.router.raft(self.target, self.group)
    }

    fn unreachable<E: std::error::Error>(&self) -> RPCError<NodeId, BasicNode, E> {
        RPCError::Unreachable(Unreachable::new(&io::Error::other(format!(
            "node {} has no group {}",
            self.target, self.group
        ))))
    }

    fn remote<E: std::error::Error>(&self, error: E) -> RPCError<NodeId, BasicNode, E> {
        RPCError::RemoteError(RemoteError::new(self.target, error))
    }
}

impl RaftNetwork<TypeConfig> for GroupClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        let Some(raft) = self.target_raft() else {
            return Err(self.unreachable());
        };
        raft.append_entries(rpc)
            .await
            .map_err(|error| self.remote(error))
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        let Some(raft) = self.target_raft() else {
            return Err(self.unreachable());
        };
        raft.install_snapshot(rpc)
            .await
            .map_err(|error| self.remote(error))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        let Some(raft) = self.target_raft() else {
            return Err(self.unreachable());
        };
        raft.vote(rpc).await.map_err(|error| self.remote(error))
    }
}
