//! Lets a shard thread sleep until one of its queues receives input OR its WAL finishes a
//! durable write, whichever comes first (or the next tick).
//!
//! The shard announces that it is parked, re-checks its queues, then `ppoll`s an eventfd and
//! the WAL's completion descriptor (the io_uring ring's fd, which polls readable when
//! completions wait). Producers queue first, then [`Waker::wake`]: it writes the eventfd only
//! while the shard is parked, so a busy shard costs its producers no syscall. While a write is
//! in flight only peers' messages wake the shard: proposals arriving then wait for it and
//! leave together in the next write (without that, each proposal made its own small write and
//! 64-partition throughput fell by a fifth). Both sides
//! order their store and load with a `SeqCst` fence, so a wakeup is never lost: either the
//! shard sees the queued input in its re-check, or the producer sees the parked flag.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU8, Ordering, fence};
use std::time::Duration;

use rustix::event::{EventfdFlags, PollFd, PollFlags, Timespec};

/// Not parked.
const RUNNING: u8 = 0;
/// Parked with nothing in flight: any input wakes the shard.
const IDLE: u8 = 1;
/// Parked while a durable write is in flight: only peer messages wake the shard (they may
/// complete a quorum or extend a follower's log now); proposals wait for the write to finish
/// and then go out together in the next one (group commit).
const WAITING_ON_WAL: u8 = 2;

/// What queued the input a [`Waker::wake`] announces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Input {
    /// A peer's messages.
    Inbound,
    /// A request (proposal, query) or a control input.
    Command,
    /// A snapshot transfer's job finished on the shard's transfer thread.
    Transfer,
}

/// One shard's wakeup channel.
#[derive(Debug)]
pub(crate) struct Waker {
    event: OwnedFd,
    parked: AtomicU8,
}

impl Waker {
    /// A waker with its eventfd.
    pub(crate) fn new() -> std::io::Result<Self> {
        let event = rustix::event::eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
        Ok(Self {
            event,
            parked: AtomicU8::new(RUNNING),
        })
    }

    /// Wakes the shard if it is parked for this kind of input. Call after queueing it.
    pub(crate) fn wake(&self, input: Input) {
        fence(Ordering::SeqCst);
        let parked = self.parked.load(Ordering::Relaxed);
        if parked == IDLE || (parked == WAITING_ON_WAL && input != Input::Command) {
            // A full counter (EAGAIN) already means "wake up".
            let _ = rustix::io::write(&self.event, &1u64.to_ne_bytes());
        }
    }

    /// Sleeps until [`Waker::wake`], `completion` polls readable, or `timeout` passes, unless
    /// `has_input()` (checked after announcing the park) finds input already queued. With a
    /// `completion` descriptor (a write in flight) only inbound input counts.
    pub(crate) fn park(
        &self,
        completion: Option<BorrowedFd<'_>>,
        timeout: Duration,
        has_input: impl Fn() -> bool,
    ) {
        let state = if completion.is_some() {
            WAITING_ON_WAL
        } else {
            IDLE
        };
        self.parked.store(state, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        if !has_input() {
            let mut fds = [
                PollFd::new(&self.event, PollFlags::IN),
                PollFd::from_borrowed_fd(completion.unwrap_or(self.event.as_fd()), PollFlags::IN),
            ];
            let timeout = Timespec {
                tv_sec: i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX),
                tv_nsec: i64::from(timeout.subsec_nanos()),
            };
            // EINTR or another failure: the caller's loop re-checks everything anyway.
            let _ = rustix::event::poll(&mut fds, Some(&timeout));
        }
        self.parked.store(RUNNING, Ordering::Relaxed);
        let mut counter = [0u8; 8];
        let _ = rustix::io::read(&self.event, &mut counter);
    }
}
