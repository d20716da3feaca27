//! A runtime-agnostic timer: the `Raft` handle's timeouts work from any executor (tokio or
//! not) without needing a runtime of the caller's. A current-thread tokio runtime on a thread
//! of the node's own drives tokio's time driver and nothing else; a deadline is a
//! `tokio::time::Sleep` registered with it (a hierarchical timing wheel: taking a deadline and
//! dropping it are constant time and allocate nothing but the boxed sleep, boxed because
//! tokio's sleep is aligned to cache lines and would grow every waiting future by 464 bytes;
//! the `BTreeMap` of `oneshot` senders it replaced held `kommander bench` to about 0.85 × its
//! throughput, `docs/benchmarks.md`). It only serves deadlines: every wait is woken by the
//! change it waits for (a `watch` or a `oneshot`), raced with at most one deadline here.
//!
//! The number of pending deadlines is bounded (`timers_max`); one more is refused
//! ([`TimerError::Full`], a retryable `QueueFull` for the caller), it never makes a caller spin.
//! A deadline whose wait ends early (completed or dropped) frees its slot at once.
//!
//! When the node stops, every pending deadline ends at once, and the waits it limits with it:
//! the stop marks the timer stopped, then shuts its runtime down, which wakes every sleep
//! registered there. A deadline polled after the mark completes without polling its sleep
//! (tokio's sleep panics when polled on a runtime that shut down): a poll holds the timer's
//! `gate` for reading and the stop marks under it for writing, so no poll of a sleep overlaps
//! the shutdown or follows it.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::task::Poll;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::time::Sleep;

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

/// What the timer's handle and its deadlines share.
struct Shared {
    /// Whether the timer stopped. A deadline reads it, and polls its sleep, under the read
    /// lock; the stop writes it under the write lock before it shuts the runtime down.
    gate: RwLock<bool>,
    /// Deadlines taken and not yet dropped.
    pending: AtomicUsize,
    max: usize,
}

impl Shared {
    fn stopped(&self) -> std::sync::RwLockReadGuard<'_, bool> {
        self.gate.read().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The node's timer thread.
pub(crate) struct Timer {
    shared: Arc<Shared>,
    /// The runtime whose time driver the deadlines register with.
    runtime: Handle,
    /// The thread, and what ends its `block_on` (the thread then drops the runtime: its
    /// shutdown); taken by the stop.
    running: Mutex<Option<(oneshot::Sender<()>, JoinHandle<()>)>>,
}

impl Timer {
    /// Starts the timer thread with room for `max` pending timers.
    pub(crate) fn start(max: usize) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()?;
        let handle = runtime.handle().clone();
        let (shutdown, shut_down) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("kommander-timer".to_owned())
            .spawn(move || {
                // Drives the time driver until the stop (or the timer dropped), then shuts the
                // runtime down: every sleep still registered is woken.
                let _ = runtime.block_on(shut_down);
            })?;
        Ok(Self {
            shared: Arc::new(Shared {
                gate: RwLock::new(false),
                pending: AtomicUsize::new(0),
                max,
            }),
            runtime: handle,
            running: Mutex::new(Some((shutdown, thread))),
        })
    }

    /// A future that completes at `at` (at the driver's millisecond after it); dropping it
    /// frees its slot.
    ///
    /// # Errors
    ///
    /// [`TimerError::Full`] when `timers_max` deadlines are pending; [`TimerError::Stopped`]
    /// after stop.
    pub(crate) fn at(&self, at: Instant) -> Result<Deadline, TimerError> {
        if *self.shared.stopped() {
            return Err(TimerError::Stopped);
        }
        if self.shared.pending.fetch_add(1, Ordering::Relaxed) >= self.shared.max {
            self.shared.pending.fetch_sub(1, Ordering::Relaxed);
            return Err(TimerError::Full);
        }
        // Registered with the driver at its first poll (a sleep never polled costs it nothing).
        let sleep = {
            let _runtime = self.runtime.enter();
            Box::pin(tokio::time::sleep_until(at.into()))
        };
        Ok(Deadline {
            sleep,
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

    /// Stops the thread; pending deadlines complete at once (and every later one is refused).
    pub(crate) fn stop(&self) {
        *self
            .shared
            .gate
            .write()
            .unwrap_or_else(PoisonError::into_inner) = true;
        let running = self
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some((shutdown, thread)) = running {
            let _ = shutdown.send(());
            let _ = thread.join();
        }
    }
}

/// A pending timer ([`Timer::at`], [`Timer::deadline`]): completes at its deadline (or at once
/// when the timer stops); dropping it before then removes it from the timer.
pub(crate) struct Deadline {
    // Boxed: a `Sleep` is not `Unpin` (a deadline is moved into the wait it limits), and
    // inline it would grow that wait's future by 464 bytes, copied at every move.
    sleep: Pin<Box<Sleep>>,
    shared: Arc<Shared>,
}

impl Future for Deadline {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let stopped = this.shared.stopped();
        if *stopped {
            return Poll::Ready(());
        }
        this.sleep.as_mut().poll(cx)
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        self.shared.pending.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.stop();
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
            assert_eq!(
                from.sleep.deadline().into_std(),
                start + Duration::from_secs(3600)
            );
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

    #[test]
    fn the_stop_ends_every_pending_deadline_at_once_and_refuses_later_ones() {
        let timer = std::sync::Arc::new(Timer::start(4).expect("timer"));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        let hour = Some(Duration::from_secs(3600));
        // Bounds the test's own waits: a deadline the stop did not end fails it, not hangs it.
        let ended = |deadline| tokio::time::timeout(Duration::from_secs(30), deadline);
        // One deadline polled (registered with the driver) before the stop, one never polled.
        let polled = timer.deadline(hour).expect("slot").expect("a deadline");
        let unpolled = timer.deadline(hour).expect("slot").expect("a deadline");
        let stopping = std::sync::Arc::clone(&timer);
        let started = Instant::now();
        runtime.block_on(async {
            let stopper = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                stopping.stop();
            });
            ended(polled).await.expect("ended by the stop");
            stopper.join().expect("stopper");
            ended(unpolled).await.expect("ended by the stop");
        });
        assert!(started.elapsed() < Duration::from_secs(30));
        assert!(matches!(timer.deadline(hour), Err(TimerError::Stopped)));
        // The slots were given back as the deadlines were dropped.
        assert_eq!(
            timer
                .shared
                .pending
                .load(std::sync::atomic::Ordering::Relaxed),
            0
        );
    }
}
