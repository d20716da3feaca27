//! The first partition map: asked of partition 0 (`MapOperation::Initialize`, the path of every
//! map change) by a node that leads it and knows no map, as the node's coordinator asks it
//! (`src/node/system.rs`), one request at a time,
//! again when the last one's answer came without a map committed. Every node's shards open the
//! map's partitions once their partition 0 committed it (`src/shard/worker/map.rs`): the
//! simulator opens no user partition itself.

use tokio::sync::oneshot::{self, error::TryRecvError};

use super::NodeSimulation;
use crate::core::{Role, Ticket};
use crate::shard::partitions::{MapChangeAnswer, MapOperation};
use crate::shard::{Refusal, Request, SYSTEM_PARTITION};

/// How soon the first map is proposed again after an answer that left no map committed (the
/// coordinator waits an election timeout): an answer may come before the commit (a failed
/// proposal, or one answered before it is durable), and asking again at once would keep the
/// node's shard busy at one simulated instant for ever.
const PROPOSAL_RETRY_MS: u64 = 300;

/// The first map's proposal waiting for its answer, and when another may be sent.
#[derive(Default)]
pub(super) struct MapProposer {
    waiting: Option<oneshot::Receiver<Result<MapChangeAnswer, Refusal>>>,
    next_at: u64,
}

impl NodeSimulation {
    /// After `node`'s turns: when it leads partition 0 and knows no map, no proposal waits
    /// for its answer and the last answer came [`PROPOSAL_RETRY_MS`] ago or more, it proposes
    /// the first map.
    pub(super) fn propose_first_map(&mut self, node: usize) {
        if let Some(answer) = self.maps.waiting.as_mut() {
            if matches!(answer.try_recv(), Err(TryRecvError::Empty)) {
                return;
            }
            self.maps.waiting = None;
            self.maps.next_at = self.now + PROPOSAL_RETRY_MS;
        }
        if self.now < self.maps.next_at {
            return;
        }
        let Some(running) = self.nodes[node].running.as_ref() else {
            return;
        };
        let leads = running
            .host
            .leadership(SYSTEM_PARTITION)
            .is_some_and(|l| l.role == Role::Leader);
        if !leads || running.maps.map().version > 0 {
            return;
        }
        let Ok(partitions) = u32::try_from(self.config.partitions) else {
            return;
        };
        let (reply, answer) = oneshot::channel();
        let request = Request::ChangeMap {
            operation: MapOperation::Initialize { partitions },
            ticket: Ticket(self.clients.take_id()),
            reply,
        };
        if self.send_to(node, SYSTEM_PARTITION, request).is_ok() {
            self.maps.waiting = Some(answer);
        }
    }
}
