//! The messages a shard sends this turn, gathered per peer so that each peer gets ONE batch
//! per loop turn.

use super::StableHashMap;
use super::transport::Transport;
use crate::core::{Message, NodeId};

/// This turn's outgoing messages, per destination (peers are handed their batches in the same
/// order in every run: see [`StableHashMap`]).
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    peers: StableHashMap<NodeId, Batch>,
}

/// One peer's messages of this turn, and how many its last batch held.
#[derive(Debug, Default)]
struct Batch {
    messages: Vec<Message>,
    last_len: usize,
}

impl Outbox {
    pub(crate) fn push(&mut self, message: Message) {
        let batch = self.peers.entry(message.to).or_default();
        if batch.messages.capacity() == 0 {
            // The batch is handed over whole, so it cannot be reused; sized as the last one,
            // a turn's batch grows without copying itself (at 4096 active partitions a batch
            // holds thousands of messages).
            batch.messages.reserve(batch.last_len);
        }
        batch.messages.push(message);
    }

    /// Hands each peer its batch.
    pub(crate) fn flush(&mut self, transport: &dyn Transport) {
        for (&to, batch) in &mut self.peers {
            if !batch.messages.is_empty() {
                batch.last_len = batch.messages.len();
                transport.send(to, std::mem::take(&mut batch.messages));
            }
        }
    }

    /// Forgets everything (nothing may leave a failed shard).
    pub(crate) fn clear(&mut self) {
        self.peers.clear();
    }
}
