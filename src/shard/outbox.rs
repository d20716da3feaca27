//! The messages a shard sends this turn, gathered per peer so that each peer gets ONE batch
//! per loop turn.

use super::StableHashMap;
use super::transport::Transport;
use crate::core::{Message, NodeId};

/// This turn's outgoing messages, per destination (peers are handed their batches in the same
/// order in every run: see [`StableHashMap`]).
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    peers: StableHashMap<NodeId, Vec<Message>>,
}

impl Outbox {
    pub(crate) fn push(&mut self, message: Message) {
        self.peers.entry(message.to).or_default().push(message);
    }

    /// Hands each peer its batch.
    pub(crate) fn flush(&mut self, transport: &dyn Transport) {
        for (to, messages) in self.peers.drain() {
            if !messages.is_empty() {
                transport.send(to, messages);
            }
        }
    }

    /// Forgets everything (nothing may leave a failed shard).
    pub(crate) fn clear(&mut self) {
        self.peers.clear();
    }
}
