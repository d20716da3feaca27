//! The routes into a node's shards: requests go to the command queue of their partition's
//! shard, message batches received from the network are split by shard and go to the
//! inbound queues. Nothing here blocks: a full command queue refuses with `QueueFull`, a
//! full inbound queue drops (and counts) the batch.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crossbeam::channel::{Sender, TrySendError};

use super::activity::NodeActivity;
use super::transport::Inbound;
use super::waker::{Input, Waker};
use super::worker::{ShardInput, ShardStats};
use super::{Refusal, shard_of};
use crate::core::{Message, NodeId, PartitionId};

/// The producer ends of one shard's queues, with its wake-up and counters.
#[derive(Clone)]
pub(crate) struct ShardQueues {
    pub(crate) commands: Sender<ShardInput>,
    pub(crate) inbound: Sender<Vec<Message>>,
    pub(crate) stats: Arc<ShardStats>,
    pub(crate) waker: Arc<Waker>,
}

/// Routes requests and received messages to the shards. It holds only the shards' queues
/// (and the stop flag): the transport keeps one as its [`Inbound`] without keeping the node
/// running.
#[derive(Clone)]
pub(crate) struct Router {
    node: NodeId,
    activity: Arc<NodeActivity>,
    shards: Vec<ShardQueues>,
    stop: Arc<AtomicBool>,
}

impl Router {
    pub(crate) fn new(
        node: NodeId,
        activity: Arc<NodeActivity>,
        shards: Vec<ShardQueues>,
        stop: Arc<AtomicBool>,
    ) -> Self {
        Self {
            node,
            activity,
            shards,
            stop,
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
        let mut batches: Vec<Vec<Message>> = (0..count).map(|_| Vec::new()).collect();
        for message in messages {
            batches[shard_of(message.partition, count)].push(message);
        }
        for (shard, batch) in self.shards.iter().zip(batches) {
            if !batch.is_empty() {
                push_batch(shard, self.node, batch);
            }
        }
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
    if shard.inbound.try_send(batch).is_ok() {
        shard.waker.wake(Input::Inbound);
    } else {
        shard
            .stats
            .inbound_batches_dropped
            .fetch_add(1, Ordering::Relaxed);
    }
}
