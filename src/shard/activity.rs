//! When each cluster node was last heard from: recorded by the inbound router for every batch
//! it routes, read by the node (`LastNodeActivity`, `active_nodes`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::core::NodeId;

/// Per cluster node: when its last message arrived (milliseconds since the Unix epoch, 0 =
/// never). Fixed at start from the configured nodes, so updating it takes no lock.
#[derive(Debug)]
pub(crate) struct NodeActivity {
    nodes: Vec<(NodeId, AtomicU64)>,
}

impl NodeActivity {
    pub(crate) fn new(nodes: &[NodeId]) -> Self {
        Self {
            nodes: nodes.iter().map(|&n| (n, AtomicU64::new(0))).collect(),
        }
    }

    pub(crate) fn heard(&self, node: NodeId, now_ms: u64) {
        if let Some((_, at)) = self.nodes.iter().find(|(n, _)| *n == node) {
            at.fetch_max(now_ms, Ordering::Relaxed);
        }
    }

    pub(crate) fn last_heard(&self, node: NodeId) -> Option<SystemTime> {
        let (_, at) = self.nodes.iter().find(|(n, _)| *n == node)?;
        let ms = at.load(Ordering::Relaxed);
        (ms > 0).then(|| UNIX_EPOCH + Duration::from_millis(ms))
    }
}
