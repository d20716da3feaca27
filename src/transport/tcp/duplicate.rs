//! The duplicate-node rule (decision 0005, "Duplicate node ids"): when two live processes
//! claim one node id, which one keeps it. The listener applies it to every authenticated
//! connector (`listener.rs`); the connections table holds what it needs (each peer
//! connection's incarnation and when its last frame arrived, `connections.rs`).
//!
//! ```text
//! Hello {node N, incarnation I} from an authenticated connector, at acceptor A
//!   N == A, I == A's incarnation         A reached itself: refused as before (UnknownNode)
//!   N == A, I != A's                     a duplicate of A            ┐
//!   N's peer connection alive here with  a duplicate of N            ├ the roster decides:
//!     another incarnation J                                          ┘ keeps(roster, J|A, I)
//!   otherwise                            admitted (an older connection of N is closed)
//! ```
//!
//! `keeps`: the newcomer keeps the id only when the roster names its incarnation; otherwise
//! the incumbent (the process already running: A itself, or N's live connection) keeps it.
//! The loser stops: a connector refused with `DuplicateNode` stops; an acceptor that loses
//! stops itself. An incarnation of 0 (a client, a transport serving no node, a node of a
//! static cluster's genesis roster) never conflicts: nothing can be told from it.
//!
//! *Alive* means a frame arrived on the connection within [`liveness_window_ms`]: a live
//! connector writes at least every third of `idle_timeout_ms` (its keepalive). A process that
//! died closes its sockets (the kernel does, even for `SIGKILL`) and its connections leave the
//! table at once; one whose machine vanished leaves a connection no frame arrives on, which
//! stops counting as alive after the window. So a replaced disk whose predecessor is dead is
//! admitted; only a replacement that connects within the window after its predecessor's last
//! frame, over a connection the predecessor never closed (power loss, a cut cable), is refused.

use std::time::Duration;

/// Whether two incarnations claiming one node id are two processes: both known, and
/// different.
pub(crate) const fn conflict(incumbent: u64, newcomer: u64) -> bool {
    incumbent != 0 && newcomer != 0 && incumbent != newcomer
}

/// Whether the newcomer keeps a node id an incumbent of another incarnation holds: only when
/// the roster (`roster`: the incarnation it records for the id, if it knows the id) names
/// the newcomer's incarnation. Otherwise the incumbent keeps it (it is the roster's member,
/// or nobody can tell, and the process already running wins).
pub(crate) fn newcomer_keeps(roster: Option<u64>, newcomer: u64) -> bool {
    roster == Some(newcomer)
}

/// How recent a connection's last frame must be for it to count as alive: two keepalive
/// periods (a live connector writes at least every `idle_timeout / 3`), so that a keepalive
/// written late by a busy writer still counts.
pub(crate) fn liveness_window_ms(idle_timeout: Duration) -> u64 {
    u64::try_from(idle_timeout.as_millis() * 2 / 3).unwrap_or(u64::MAX)
}

/// Whether a connection whose last frame arrived at `heard_ms` is alive at `now_ms`.
pub(crate) const fn alive(heard_ms: u64, now_ms: u64, window_ms: u64) -> bool {
    now_ms.saturating_sub(heard_ms) <= window_ms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_roster_decides_and_otherwise_the_incumbent_keeps_the_id() {
        assert!(conflict(1, 2));
        assert!(!conflict(1, 1), "a reconnection of the same process");
        assert!(!conflict(0, 2) && !conflict(2, 0), "an unknown incarnation");
        assert!(newcomer_keeps(Some(2), 2), "the roster names the newcomer");
        assert!(
            !newcomer_keeps(Some(1), 2),
            "the roster names the incumbent"
        );
        assert!(
            !newcomer_keeps(Some(0), 2),
            "a genesis member: nobody can tell"
        );
        assert!(!newcomer_keeps(None, 2), "no roster here");
    }

    #[test]
    fn a_connection_is_alive_for_two_keepalive_periods_after_its_last_frame() {
        let window = liveness_window_ms(Duration::from_millis(15_000));
        assert_eq!(window, 10_000);
        assert!(alive(5_000, 15_000, window));
        assert!(!alive(5_000, 15_001, window));
        assert!(alive(5_000, 4_000, window), "a clock read before the frame");
    }
}
