//! The nodes' network: each node's [`Transport`] encodes what its shards send into wire frames
//! with the real codec ([`encode_messages`], [`header_for`]), stamped with the node's hybrid
//! logical clock (which follows the node's simulated wall clock), and queues them; the simulation
//! drains the queues after each shard turn, routes every frame through the faulty
//! [`Network`](crate::sim::network::Network), and at delivery decodes it with the real codec
//! ([`decode_frame`], [`decode_messages`]) before handing the messages to the receiver's
//! inbound queue. A frame that does not decode is a violation: the codec must read what it
//! wrote.

use std::sync::{Arc, Mutex, PoisonError};

use bytes::{Bytes, BytesMut};

use crate::clock::HybridLogicalClock;
use crate::core::{Message, NodeId};
use crate::shard::Transport;
use crate::transport::codec::{
    FrameKind, decode_frame, decode_messages, encode_messages, header_for,
};
use crate::transport::stamp;

/// Largest frame the simulated wire carries (a whole append batch fits).
pub(super) const FRAME_BYTES_MAX: usize = 64 << 20;
/// Most messages in one frame.
pub(super) const FRAME_MESSAGES_MAX: usize = 1 << 20;

/// One node's outgoing frames, in send order.
#[derive(Debug, Default)]
pub(super) struct WireOutbox {
    frames: Mutex<Vec<(NodeId, Bytes)>>,
}

impl WireOutbox {
    /// The frames queued since the last call, in send order.
    pub(super) fn drain(&self) -> Vec<(NodeId, Bytes)> {
        std::mem::take(&mut *self.frames.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// The [`Transport`] a simulated node's shards send through.
#[derive(Debug)]
pub(super) struct WireTransport {
    pub(super) outbox: Arc<WireOutbox>,
    /// The node's hybrid logical clock: it stamps every frame.
    pub(super) clock: Arc<HybridLogicalClock>,
}

impl Transport for WireTransport {
    fn send(&self, to: NodeId, messages: Vec<Message>) {
        let frame = encode_frame(stamp::stamp(Some(&self.clock)), &messages);
        self.outbox
            .frames
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((to, frame));
    }
}

/// One `Messages` frame stamped `stamp` holding `messages`, exactly as the TCP transport
/// writes it.
fn encode_frame(stamp: u64, messages: &[Message]) -> Bytes {
    let chunks = encode_messages(messages);
    let header = header_for(FrameKind::Messages, stamp, &chunks);
    let length = header.len() + chunks.iter().map(Bytes::len).sum::<usize>();
    let mut frame = BytesMut::with_capacity(length);
    frame.extend_from_slice(&header);
    for chunk in &chunks {
        frame.extend_from_slice(chunk);
    }
    frame.freeze()
}

/// Decodes a frame sent by `from` to `to`: its stamp and its messages.
///
/// # Errors
/// What the codec refused (a violation: the simulated wire never damages frames).
pub(super) fn decode_frame_messages(
    frame: &Bytes,
    from: NodeId,
    to: NodeId,
) -> Result<(u64, Vec<Message>), String> {
    let frame = decode_frame(frame, FRAME_BYTES_MAX).map_err(|e| e.to_string())?;
    if frame.kind != FrameKind::Messages {
        return Err(format!("a {:?} frame on the peer wire", frame.kind));
    }
    let messages =
        decode_messages(&frame.body, from, to, FRAME_MESSAGES_MAX).map_err(|e| e.to_string())?;
    Ok((frame.stamp, messages))
}
