//! A runtime-agnostic timer: one thread per node fires `oneshot` channels at their deadlines,
//! so the `Raft` handle's timeouts work from any executor (tokio or not) without needing a
//! tokio runtime inside the library. It only serves deadlines: every wait is woken by the
//! change it waits for (a `watch` or a `oneshot`), raced with at most one deadline here.
//!
//! The number of pending deadlines is bounded (`timers_max`); a full table refuses a new one
//! ([`TimerError::Full`], a retryable `QueueFull` for the caller), it never makes a caller spin.
//! A deadline whose wait ends early (completed or dropped) frees its slot at once.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::task::Poll;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// Why no deadline could be set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TimerError {
    /// `timers_max` deadlines are pending.
    Full,
    /// The node stopped.
    Stopped,
}

/// The deadline passed before the operation completed ([`race`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Elapsed;

/// Runs `future` until it completes or `deadline` passes (`None`: no limit). The deadline's
/// slot is freed when this returns, so an operation that finishes first frees it at once.
///
/// # Errors
///
/// [`Elapsed`] when the deadline passed first (or the timer stopped).
pub(crate) async fn race<F: Future>(
    mut deadline: Option<Deadline>,
    future: F,
) -> Result<F::Output, Elapsed> {
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(value) = future.as_mut().poll(cx) {
            return Poll::Ready(Ok(value));
        }
        if let Some(deadline) = deadline.as_mut()
            && Pin::new(deadline).poll(cx).is_ready()
        {
            return Poll::Ready(Err(Elapsed));
        }
        Poll::Pending
    })
    .await
}

struct State {
    pending: BTreeMap<(Instant, u64), oneshot::Sender<()>>,
    next: u64,
    stop: bool,
    /// When the thread wakes next on its own. A new deadline at or after it needs no wake-up:
    /// the thread looks at the table then. Most deadlines (every write's default timeout) are
    /// later than the earliest one, so a call takes its slot without waking the thread.
    wakes_at: Instant,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    max: usize,
}

/// The node's timer thread.
pub(crate) struct Timer {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Timer {
    /// Starts the timer thread with room for `max` pending timers.
    pub(crate) fn start(max: usize) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                pending: BTreeMap::new(),
                next: 0,
                stop: false,
                // Not slept yet: the thread reads the table before its first sleep.
                wakes_at: Instant::now(),
            }),
            changed: Condvar::new(),
            max,
        });
        let worker = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("kommander-timer".to_owned())
            .spawn(move || run(&worker))?;
        Ok(Self {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// A future that completes at `at`; dropping it frees its slot.
    ///
    /// # Errors
    ///
    /// [`TimerError::Full`] when `timers_max` deadlines are pending; [`TimerError::Stopped`]
    /// after stop.
    pub(crate) fn at(&self, at: Instant) -> Result<Deadline, TimerError> {
        let (fire, fired) = oneshot::channel();
        let mut state = self
            .shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if state.stop {
            return Err(TimerError::Stopped);
        }
        if state.pending.len() >= self.shared.max {
            return Err(TimerError::Full);
        }
        state.next += 1;
        let key = (at, state.next);
        // The thread sleeps until `wakes_at`: wake it only for an earlier deadline.
        let earlier = at < state.wakes_at;
        state.pending.insert(key, fire);
        drop(state);
        if earlier {
            self.shared.changed.notify_one();
        }
        Ok(Deadline {
            key,
            fired,
            shared: Arc::clone(&self.shared),
        })
    }

    /// A deadline `limit` from now (`None`, or a limit so long that its instant cannot be
    /// represented, e.g. `Duration::MAX`: no limit, no slot taken). Take it before starting
    /// the operation it limits, so that a full table refuses the call before anything is done.
    ///
    /// # Errors
    ///
    /// As [`Timer::at`].
    pub(crate) fn deadline(&self, limit: Option<Duration>) -> Result<Option<Deadline>, TimerError> {
        self.deadline_from(Instant::now(), limit)
    }

    /// [`Timer::deadline`] counted from `start`, an instant the caller read anyway (a write's
    /// or a read's start, which its latency is measured from): one clock read fewer per call.
    ///
    /// # Errors
    ///
    /// As [`Timer::at`].
    pub(crate) fn deadline_from(
        &self,
        start: Instant,
        limit: Option<Duration>,
    ) -> Result<Option<Deadline>, TimerError> {
        limit
            .and_then(|limit| start.checked_add(limit))
            .map(|at| self.at(at))
            .transpose()
    }

    /// Stops the thread; pending timers are dropped (their waits end at once).
    pub(crate) fn stop(&self) {
        {
            let mut state = self
                .shared
                .state
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            state.stop = true;
            state.pending.clear();
        }
        self.shared.changed.notify_one();
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

/// A pending timer ([`Timer::at`], [`Timer::deadline`]): completes at its deadline (or at once when the timer
/// stops); dropping it before then removes it from the timer.
pub(crate) struct Deadline {
    key: (Instant, u64),
    fired: oneshot::Receiver<()>,
    shared: Arc<Shared>,
}

impl Future for Deadline {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<()> {
        Pin::new(&mut self.fired).poll(cx).map(|_| ())
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        let mut state = self
            .shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        state.pending.remove(&self.key);
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(shared: &Shared) {
    let mut state = shared.state.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        if state.stop {
            return;
        }
        let now = Instant::now();
        while let Some(entry) = state.pending.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let _ = entry.remove().send(());
        }
        let wait = state
            .pending
            .keys()
            .next()
            .map_or(Duration::from_secs(3600), |(at, _)| {
                at.saturating_duration_since(now)
            });
        state.wakes_at = now + wait;
        state = shared
            .changed
            .wait_timeout(state, wait)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::{Timer, TimerError, race};

    #[test]
    fn a_wait_that_finishes_first_frees_its_timer_slot() {
        let timer = Timer::start(2).expect("timer");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            // Far more finished waits than slots: each frees its slot when it completes.
            for i in 0..100 {
                let deadline = timer
                    .deadline(Some(Duration::from_secs(3600)))
                    .expect("slot");
                assert_eq!(race(deadline, async { i }).await, Ok(i));
            }
            // Two waits pending at once use both slots; a third is refused.
            let hour = Some(Duration::from_secs(3600));
            let first = timer.deadline(hour).expect("slot 1");
            let second = timer.deadline(hour).expect("slot 2");
            assert!(matches!(timer.deadline(hour), Err(TimerError::Full)));
            // A limit whose instant cannot be represented is no limit: it takes no slot.
            assert!(matches!(timer.deadline(Some(Duration::MAX)), Ok(None)));
            drop(first);
            drop(second);
            // A deadline counted from an instant the caller read falls `limit` after it.
            let start = Instant::now();
            let from = timer
                .deadline_from(start, hour)
                .expect("slot")
                .expect("a deadline");
            assert_eq!(from.key.0, start + Duration::from_secs(3600));
            drop(from);
            // A deadline that passes fires, also one earlier than a pending one.
            let later = timer.deadline(hour).expect("slot");
            timer
                .deadline(Some(Duration::from_millis(5)))
                .expect("slot")
                .expect("a deadline")
                .await;
            drop(later);
            // A later deadline taken while the thread sleeps until an earlier one does not
            // wake it, and fires all the same.
            let first = timer
                .deadline(Some(Duration::from_millis(5)))
                .expect("slot");
            let second = timer
                .deadline(Some(Duration::from_millis(10)))
                .expect("slot");
            first.expect("a deadline").await;
            second.expect("a deadline").await;
        });
    }
}
