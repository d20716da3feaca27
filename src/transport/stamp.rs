//! The hybrid logical clock's stamps on frames between nodes: every frame a node sends to a
//! peer carries its clock's [`now`](HybridLogicalClock::now), packed (the frame header's
//! `stamp`, see [`codec`](super::codec)); the receiver merges it into its own clock with
//! [`update`](HybridLogicalClock::update) before the frame's messages reach the shards. A
//! stamp further ahead of the receiver's wall clock than its `hlc_drift_ms_max` is not merged
//! (the frame is processed all the same) and is counted by the transport.
//!
//! The clock is the node's, handed to the transport by the node's inbound side
//! ([`Inbound::clock`](crate::shard::Inbound::clock)); without one frames go unstamped
//! ([`UNSTAMPED`]) and stamps are not merged.

use crate::clock::{ClockDriftError, HlcTimestamp, HybridLogicalClock};
use crate::core::NodeId;
use crate::transport::codec::UNSTAMPED;

/// The stamp of a frame the node whose clock is `clock` sends now ([`UNSTAMPED`] without a
/// clock). Never [`UNSTAMPED`] with one: the clock's first timestamp is already past zero.
pub(crate) fn stamp(clock: Option<&HybridLogicalClock>) -> u64 {
    clock.map_or(UNSTAMPED, |clock| clock.now().packed())
}

/// Merges the `stamp` of a frame from `from` into `clock`.
///
/// # Errors
///
/// [`ClockDriftError`] when the stamp is further ahead of the local wall clock than the
/// clock accepts: the clock is unchanged (the caller counts it).
pub(crate) fn merge(
    clock: Option<&HybridLogicalClock>,
    from: NodeId,
    stamp: u64,
) -> Result<(), ClockDriftError> {
    let Some(clock) = clock else {
        return Ok(());
    };
    if stamp == UNSTAMPED {
        return Ok(());
    }
    // Node ids fit in 32 bits (the node checks it at start); the node of a remote timestamp
    // only names its issuer, the merge reads its time.
    let node = u32::try_from(from.get()).unwrap_or(u32::MAX);
    clock
        .update(HlcTimestamp::from_packed(node, stamp))
        .map(|_| ())
}
