//! The routes into a node's shards: requests go to the command queue of their partition's
//! shard, message batches received from the network are split by shard and go to the
//! inbound queues. Nothing here blocks: a full command queue refuses with `QueueFull`, a
//! full inbound queue drops (and counts) the batch.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crossbeam::channel::{Sender, TrySendError};

use super::activity::NodeActivity;
use super::membership::{self, CallWait, MembershipCall, MembershipTable};
use super::transport::Inbound;
use super::waker::{Input, Waker};
use super::worker::{ShardInput, ShardStats};
use super::{Refusal, Request, SYSTEM_PARTITION, shard_of};
use crate::core::{Message, NodeId, PartitionId, Ticket};
use crate::metrics::ShardMetrics;

/// The producer ends of one shard's queues, with its wake-up and counters.
#[derive(Clone)]
pub(crate) struct ShardQueues {
    pub(crate) commands: Sender<ShardInput>,
    pub(crate) inbound: Sender<Vec<Message>>,
    pub(crate) stats: Arc<ShardStats>,
    pub(crate) metrics: ShardMetrics,
    pub(crate) waker: Arc<Waker>,
}

/// Routes requests and received messages to the shards. It holds only the shards' queues
/// (and the stop flag): the transport keeps one as its [`Inbound`] without keeping the node
/// running.
#[derive(Clone)]
pub(crate) struct Router {
    node: NodeId,
    activity: Arc<NodeActivity>,
    membership: Arc<MembershipTable>,
    shards: Vec<ShardQueues>,
    stop: Arc<AtomicBool>,
    /// The last ticket drawn for a membership call carried out here.
    call_tickets: Arc<AtomicU64>,
}

impl Router {
    pub(crate) fn new(
        node: NodeId,
        activity: Arc<NodeActivity>,
        membership: Arc<MembershipTable>,
        shards: Vec<ShardQueues>,
        stop: Arc<AtomicBool>,
    ) -> Self {
        Self {
            node,
            activity,
            membership,
            shards,
            stop,
            call_tickets: Arc::new(AtomicU64::new(0)),
        }
    }

    pub(crate) fn shards(&self) -> &[ShardQueues] {
        &self.shards
    }

    pub(crate) fn activity(&self) -> &NodeActivity {
        &self.activity
    }

    /// Queues `input` for `partition`'s shard and wakes it.
    pub(crate) fn request(&self, partition: PartitionId, input: ShardInput) -> Result<(), Refusal> {
        if self.stop.load(Ordering::Acquire) {
            return Err(Refusal::ShutDown);
        }
        let shard = &self.shards[shard_of(partition, self.shards.len())];
        match shard.commands.try_send(input) {
            Ok(()) => {
                shard.waker.wake(Input::Command);
                Ok(())
            }
            Err(TrySendError::Full(_)) => Err(Refusal::QueueFull),
            Err(TrySendError::Disconnected(_)) => Err(Refusal::ShutDown),
        }
    }
}

impl Inbound for Router {
    fn deliver(&self, messages: Vec<Message>) {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let mut previous = None;
        for message in &messages {
            if previous != Some(message.from) {
                previous = Some(message.from);
                self.activity.heard(message.from, now_ms);
            }
        }
        let count = self.shards.len();
        if count == 1 {
            push_batch(&self.shards[0], self.node, messages);
            return;
        }
        // Each shard's batch sized at once: at 4096 active partitions a batch holds
        // thousands of messages, and growing it copies them again and again.
        let mut sizes = vec![0; count];
        for message in &messages {
            sizes[shard_of(message.partition, count)] += 1;
        }
        let mut batches: Vec<Vec<Message>> = sizes.into_iter().map(Vec::with_capacity).collect();
        for message in messages {
            batches[shard_of(message.partition, count)].push(message);
        }
        for (shard, batch) in self.shards.iter().zip(batches) {
            if !batch.is_empty() {
                push_batch(shard, self.node, batch);
            }
        }
    }

    fn call(&self, call: MembershipCall) -> CallWait {
        let (reply, answer) = tokio::sync::oneshot::channel();
        // A ticket of the system's range (top bit set, as the shard's own configuration
        // entries) that the shard's own tickets (bit 62 clear: an index) never take.
        let drawn = self.call_tickets.fetch_add(1, Ordering::Relaxed) + 1;
        let request = Request::ChangeMembership {
            change: call.change,
            expected_version: call.expected_version,
            ticket: Ticket(1 << 63 | 1 << 62 | (drawn & ((1 << 62) - 1))),
            reply,
        };
        let input = ShardInput::Request {
            partition: SYSTEM_PARTITION,
            request,
        };
        match self.request(SYSTEM_PARTITION, input) {
            Ok(()) => CallWait::waiting(answer, Arc::clone(&self.membership)),
            Err(refusal) => CallWait::answered(membership::call::refused(
                &refusal,
                self.membership.roster().as_deref(),
            )),
        }
    }

    fn roster(&self) -> Option<Arc<membership::Roster>> {
        self.membership.roster()
    }
}

fn push_batch(shard: &ShardQueues, node: NodeId, mut batch: Vec<Message>) {
    let before = batch.len();
    batch.retain(|m| m.to == node);
    let misaddressed = (before - batch.len()) as u64;
    if misaddressed > 0 {
        shard
            .stats
            .inbound_messages_dropped
            .fetch_add(misaddressed, Ordering::Relaxed);
    }
    if batch.is_empty() {
        return;
    }
    let messages = batch.len();
    if shard.inbound.try_send(batch).is_ok() {
        shard.waker.wake(Input::Inbound);
    } else {
        shard.metrics.inbound_dropped(messages);
        shard
            .stats
            .inbound_batches_dropped
            .fetch_add(1, Ordering::Relaxed);
    }
}
