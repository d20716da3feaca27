//! openraft's side: three nodes in one process, one openraft group (`Raft` instance) per
//! partition on every node, the [`GroupLog`] stores writing to one [`LogFile`] per node, the
//! [`CountingStateMachine`], and the in-memory [`Router`] network. Every group's core, state
//! machine and replication tasks run on one multi-thread tokio runtime with a worker per core.

use std::collections::BTreeSet;
// `declare_raft_types!` names `Cursor` unqualified (its default snapshot data).
use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use openraft::{Config, ServerState, SnapshotPolicy};
use serde::{Deserialize, Serialize};

use crate::log_file::{LogFile, PREALLOCATED_BYTES};
use crate::log_store::GroupLog;
use crate::network::{GroupNetwork, Router};
use crate::state_machine::CountingStateMachine;
use crate::{Cluster, NODE_COUNT};

/// A node's id in every group: `1..=NODE_COUNT`.
pub type NodeId = u64;

/// A client write: the payload only.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Payload(pub Bytes);

openraft::declare_raft_types!(
    /// The bench's openraft types: payloads in, nothing out (the default ids, nodes,
    /// entries, snapshot data and tokio runtime).
    pub TypeConfig:
        D = Payload,
        R = (),
);

/// One node's handle of one group.
pub type OpenRaft = openraft::Raft<TypeConfig>;

/// The timing of kommander's side (10 ms ticks: elections after 20–40 ticks, heartbeats every
/// 5), no snapshots.
fn config() -> Arc<Config> {
    let config = Config {
        heartbeat_interval: 50,
        election_timeout_min: 200,
        election_timeout_max: 400,
        snapshot_policy: SnapshotPolicy::Never,
        ..Config::default()
    };
    Arc::new(config.validate().expect("a valid openraft configuration"))
}

/// The running openraft cluster.
pub struct OpenraftCluster {
    runtime: tokio::runtime::Runtime,
    router: Arc<Router>,
    files: Vec<Arc<LogFile>>,
}

impl OpenraftCluster {
    /// Starts the nodes with their log files under `dir`, creates every group on every node,
    /// and initializes group `g` on node `g % 3 + 1` (which then campaigns first: leaders
    /// spread over the nodes as elections spread kommander's).
    pub fn start(dir: &Path, groups: u32) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(std::thread::available_parallelism().map_or(1, std::num::NonZero::get))
            .thread_name("openraft")
            .enable_time()
            .build()
            .expect("tokio runtime");
        let router = Arc::new(Router::new(groups));
        let files: Vec<Arc<LogFile>> = (1..=NODE_COUNT)
            .map(|node| {
                Arc::new(
                    LogFile::create(&dir.join(format!("node-{node}.log")), PREALLOCATED_BYTES)
                        .expect("create the node's log file"),
                )
            })
            .collect();
        let config = config();
        runtime.block_on(async {
            for group in 0..groups {
                for node in 1..=NODE_COUNT {
                    let index = (node - 1) as usize;
                    let raft = OpenRaft::new(
                        node,
                        Arc::clone(&config),
                        GroupNetwork::new(Arc::clone(&router), group),
                        GroupLog::new(group, Arc::clone(&files[index])),
                        CountingStateMachine::default(),
                    )
                    .await
                    .expect("an openraft node starts");
                    router.register(node, group, raft);
                }
            }
            // All at once: each initialization waits for its membership entry's flush, which
            // the groups then share.
            let members: BTreeSet<NodeId> = (1..=NODE_COUNT).collect();
            let initializations: Vec<_> = (0..groups)
                .map(|group| {
                    let first = u64::from(group) % NODE_COUNT + 1;
                    let raft = router.raft(first, group).expect("registered above").clone();
                    let members = members.clone();
                    tokio::spawn(async move { raft.initialize(members).await })
                })
                .collect();
            for initialization in initializations {
                initialization
                    .await
                    .expect("an initialization task finishes")
                    .expect("a new group initializes");
            }
        });
        Self {
            runtime,
            router,
            files,
        }
    }
}

impl Cluster for OpenraftCluster {
    fn leader_of(&self, partition: u32) -> Option<usize> {
        (0..NODE_COUNT as usize).find(|&index| {
            self.router
                .raft(index as u64 + 1, partition)
                .is_some_and(|raft| raft.metrics().borrow().state == ServerState::Leader)
        })
    }

    async fn write(&self, node: usize, partition: u32, payload: Bytes) -> bool {
        let Some(raft) = self.router.raft(node as u64 + 1, partition) else {
            return false;
        };
        raft.client_write(Payload(payload)).await.is_ok()
    }

    fn stop(self) {
        self.runtime.block_on(async {
            // All at once, as they started.
            let shutdowns: Vec<_> = self
                .router
                .all()
                .map(|raft| {
                    let raft = raft.clone();
                    tokio::spawn(async move { raft.shutdown().await })
                })
                .collect();
            for shutdown in shutdowns {
                // A core that already stopped has nothing left to shut down.
                let _ = shutdown.await;
            }
        });
        for file in &self.files {
            file.close();
        }
        self.runtime.shutdown_timeout(Duration::from_secs(5));
    }
}
