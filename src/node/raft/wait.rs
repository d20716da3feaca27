//! The one way the handle waits for leadership: await a change of the partition's entry in
//! the leadership table (a `tokio::sync::watch`), raced with one deadline of the node's timer.
//! Nothing polls: a wait whose condition already holds returns without a timer, and a waiting
//! one is woken by the change itself (or by its deadline).

use std::future::Future;
use std::pin::pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::timer::{Deadline, Timer, TimerError};
use crate::node::error::{Fatal, QueryError};
use crate::shard::{Leadership, PartitionState};

/// What a wait makes of the partition's current leadership.
pub(super) enum WaitStep<T> {
    /// Done, with this answer.
    Done(T),
    /// Not yet: look again at the next change.
    Changed,
    /// Not yet: look again at the next change or at this instant, whichever comes first.
    ChangedOr(Instant),
}

/// Waits until `verdict` is `Done`, at most `timeout` (`None`, or a timeout whose instant cannot
/// be represented: no limit). The verdict is asked again at every change of the partition's
/// state (its log progress included).
///
/// # Errors
///
/// [`QueryError::Timeout`]; [`QueryError::QueueFull`] when a deadline is needed and the timer
/// has no free slot (at once: a full table never makes the wait spin); [`Fatal::ShutDown`]
/// after the node stopped.
pub(super) async fn until<T>(
    timer: &Timer,
    mut state: watch::Receiver<PartitionState>,
    timeout: Option<Duration>,
    mut verdict: impl FnMut(Option<&Leadership>, Instant) -> WaitStep<T>,
) -> Result<T, QueryError> {
    let started = Instant::now();
    let deadline = timeout.and_then(|timeout| started.checked_add(timeout));
    // The timer slot of the current wake-up instant, kept while that instant stays the same.
    let mut armed: Option<(Instant, Deadline)> = None;
    loop {
        let now = Instant::now();
        let recheck = match verdict(state.borrow_and_update().leadership.as_ref(), now) {
            WaitStep::Done(answer) => return Ok(answer),
            WaitStep::Changed => None,
            WaitStep::ChangedOr(at) => Some(at),
        };
        if deadline.is_some_and(|deadline| now >= deadline) {
            return Err(QueryError::Timeout {
                waited: now - started,
            });
        }
        let wake_at = match (recheck, deadline) {
            (Some(at), Some(deadline)) => Some(at.min(deadline)),
            (at, deadline) => at.or(deadline),
        };
        match wake_at {
            None => armed = None,
            Some(wake_at) if armed.as_ref().is_none_or(|(at, _)| *at != wake_at) => {
                let slot = timer.at(wake_at).map_err(|error| match error {
                    TimerError::Full => QueryError::QueueFull,
                    TimerError::Stopped => QueryError::Fatal(Fatal::ShutDown),
                })?;
                armed = Some((wake_at, slot));
            }
            Some(_) => {}
        }
        let mut changed = pin!(state.changed());
        let woke = std::future::poll_fn(|cx| {
            if let Poll::Ready(result) = changed.as_mut().poll(cx) {
                return Poll::Ready(Some(result.is_ok()));
            }
            if let Some((_, slot)) = armed.as_mut()
                && std::pin::Pin::new(slot).poll(cx).is_ready()
            {
                // The instant passed: look again (that slot is spent).
                return Poll::Ready(None);
            }
            Poll::Pending
        })
        .await;
        match woke {
            // The table is gone: the node stopped.
            Some(false) => return Err(QueryError::Fatal(Fatal::ShutDown)),
            Some(true) => {}
            None => armed = None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::{WaitStep, until};
    use crate::core::{NodeId, PartitionId, Role, SoftState, Term};
    use crate::node::error::QueryError;
    use crate::node::raft::timer::Timer;
    use crate::shard::LeaderTable;

    fn leader_known(leadership: Option<&crate::shard::Leadership>) -> WaitStep<NodeId> {
        match leadership.and_then(|l| l.leader) {
            Some(leader) => WaitStep::Done(leader),
            None => WaitStep::Changed,
        }
    }

    #[test]
    fn a_wait_is_woken_by_the_table_with_every_timer_slot_taken() {
        // A timer without a single slot: any wait that needed one would fail at once.
        let timer = Timer::start(0).expect("timer");
        let table = Arc::new(LeaderTable::default());
        let p = PartitionId(1);
        let writer = Arc::clone(&table);
        let thread = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            writer.update(
                p,
                SoftState {
                    role: Role::Follower,
                    leader: Some(NodeId(2)),
                    term: Term(3),
                    noop_committed: false,
                },
                Instant::now(),
            );
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            // A timed wait needs a deadline: refused at once, no spinning.
            assert_eq!(
                until(
                    &timer,
                    table.subscribe(p),
                    Some(Duration::from_secs(60)),
                    |l, _| { leader_known(l) }
                )
                .await,
                Err(QueryError::QueueFull)
            );
            // An untimed one waits for the change, which wakes it.
            assert_eq!(
                until(&timer, table.subscribe(p), None, |l, _| leader_known(l)).await,
                Ok(NodeId(2))
            );
            // Its condition holds now: no deadline needed even with a limit.
            assert_eq!(
                until(
                    &timer,
                    table.subscribe(p),
                    Some(Duration::from_secs(60)),
                    |l, _| { leader_known(l) }
                )
                .await,
                Ok(NodeId(2))
            );
        });
        thread.join().expect("writer");
    }

    #[test]
    fn a_wait_times_out_at_its_deadline() {
        let timer = Timer::start(4).expect("timer");
        let table = LeaderTable::default();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let waited = runtime.block_on(until(
            &timer,
            table.subscribe(PartitionId(1)),
            Some(Duration::from_millis(20)),
            |l, _| leader_known(l),
        ));
        assert!(
            matches!(waited, Err(QueryError::Timeout { waited }) if waited >= Duration::from_millis(20)),
            "{waited:?}"
        );
    }
}
