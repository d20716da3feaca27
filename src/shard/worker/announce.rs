//! When a partition's leader is announced ([`RaftEvent::LeaderChanged`]): once the leader can
//! serve, as Kommander publishes a leader only after its barrier committed.
//!
//! A replica that names a leader announces it once an entry of the leader's term has
//! committed here: on the leader, its no-op (until then its log may hold entries of earlier
//! terms it cannot call committed); on a follower, the leader's no-op or a later entry of its
//! term, learned committed from the leader. The check runs after the Ready's committed entries
//! were handed to the application, so the application has applied everything committed
//! before the new leader's first entry when it hears of the leader. A replica that names no
//! leader announces that at once, when its replica reports the change (a candidacy, a higher
//! term learned without its leader, a step-down, a pre-vote): Kommander's
//! `OnLeaderChanged("")`.
//!
//! Each change of the announced (term, leader) is one event: the pair last announced is kept
//! per partition, and the same pair is never announced twice in a row. A leader elected but
//! never established (its no-op never commits before the next term) is never announced.

use super::partition::Slot;
use crate::core::{NodeId, PartitionId, Replica, Term};
use crate::shard::{EventSink, LeaderTable, RaftEvent};

/// What a partition's replica last announced: its term and the leader it named (`None`:
/// none).
pub(crate) type Announced = (Term, Option<NodeId>);

/// Emits the `LeaderChanged` event `slot`'s replica owes, if any. `reported`: the Ready just
/// handled reported a new soft state (no leader is announced otherwise: a replica's first
/// state, at creation or restore, is not a change).
pub(super) fn announce_leader(
    slot: &mut Slot,
    partition: PartitionId,
    reported: bool,
    leaders: &LeaderTable,
    events: &dyn EventSink,
) {
    let Some(replica) = slot.replica.as_ref() else {
        return;
    };
    let Some((term, leader)) = due(replica, reported, slot.announced) else {
        return;
    };
    slot.announced = Some((term, leader));
    events.emit(RaftEvent::LeaderChanged {
        partition,
        leader,
        endpoint: leader.and_then(|leader| leaders.endpoint_of(leader)),
        term,
    });
}

/// The (term, leader) `replica` should announce now, given the pair it `last` announced and
/// whether its soft state was just `reported` changed.
fn due(replica: &Replica, reported: bool, last: Option<Announced>) -> Option<Announced> {
    let now = (replica.term(), replica.leader());
    if last == Some(now) {
        return None;
    }
    let announce = match now.1 {
        None => reported,
        // The replica's term is the leader's: an entry of it committed here is the leader's
        // no-op or a later one (the no-op is the first entry of a leader's term).
        Some(_) => replica.term_at(replica.commit_index()) == Some(now.0),
    };
    announce.then_some(now)
}
