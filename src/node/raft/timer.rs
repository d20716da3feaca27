//! A runtime-agnostic timer: one thread per node fires `oneshot` channels at their deadlines,
//! so the `Raft` handle's timeouts and polls work from any executor (tokio or not) without
//! needing a tokio runtime inside the library. The number of pending timers is bounded
//! (`timers_max`); a cancelled wait (its future dropped) keeps its slot until its deadline.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::task::Poll;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::core::Status;

#[derive(Default)]
struct State {
    pending: BTreeMap<(Instant, u64), oneshot::Sender<()>>,
    next: u64,
    stop: bool,
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
            state: Mutex::new(State::default()),
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

    /// A channel that fires after `delay`.
    ///
    /// # Errors
    ///
    /// `ProposalQueueFull` when `timers_max` timers are pending; `Errored` after stop.
    pub(crate) fn after(&self, delay: Duration) -> Result<oneshot::Receiver<()>, Status> {
        let (fire, fired) = oneshot::channel();
        let mut state = self
            .shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if state.stop {
            return Err(Status::Errored);
        }
        if state.pending.len() >= self.shared.max {
            return Err(Status::ProposalQueueFull);
        }
        state.next += 1;
        let key = (Instant::now() + delay, state.next);
        state.pending.insert(key, fire);
        drop(state);
        self.shared.changed.notify_one();
        Ok(fired)
    }

    /// Sleeps for `delay` (returns at once if no timer slot is free or the timer stopped,
    /// so polling loops keep their own deadline checks).
    pub(crate) async fn sleep(&self, delay: Duration) {
        if let Ok(fired) = self.after(delay) {
            let _ = fired.await;
        }
    }

    /// Runs `future` until it completes or `limit` elapses (`None`: no limit).
    ///
    /// # Errors
    ///
    /// `ProposalTimeout` when the limit elapsed first; the timer's own refusals.
    pub(crate) async fn limit<F: Future>(
        &self,
        limit: Option<Duration>,
        future: F,
    ) -> Result<F::Output, Status> {
        let mut deadline = match limit {
            Some(limit) => Some(self.after(limit)?),
            None => None,
        };
        let mut future = std::pin::pin!(future);
        std::future::poll_fn(|cx| {
            if let Poll::Ready(value) = future.as_mut().poll(cx) {
                return Poll::Ready(Ok(value));
            }
            if let Some(deadline) = deadline.as_mut()
                && Pin::new(deadline).poll(cx).is_ready()
            {
                return Poll::Ready(Err(Status::ProposalTimeout));
            }
            Poll::Pending
        })
        .await
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
        state = shared
            .changed
            .wait_timeout(state, wait)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
}
