//! The threadless shard host (feature `sim`): [`ShardHost::start_stepped`] builds a node's
//! shards exactly as [`ShardHost::start`] does — same router, same bounded queues, same
//! `Worker` — but hands each shard's worker to the caller as a [`ShardStepper`] instead of
//! giving it a thread. The caller (the simulator) runs each shard's loop turn by turn with
//! virtual time: `turn(now)` is the very turn the production thread runs, panic guard included,
//! so a simulated node executes the code that ships.
//!
//! ```text
//! let (host, mut steppers) = ShardHost::start_stepped(config, wals, transport, app, events,
//!                                                      leaders, now)?;
//! host.open_partition(p, voters, learners)?;   // queued, as in production
//! steppers[host.shard_of(p)].turn(now);          // executed here, on the caller's thread
//! ```
//!
//! Nothing here reads a clock, spawns a thread or waits: the caller decides when each shard
//! turns (`next_tick` says when its timer is due, `waiting_on_wal` whether a turn would find
//! a durable write to acknowledge). Dropping a stepper without [`ShardStepper::stop`] is a
//! crash: what the WAL did not make durable is left to its backend (the simulated disk decides
//! what survives).

use std::sync::Arc;
use std::time::Instant;

use kommander_wal::Wal;

use super::host::HostParts;
use super::worker::Worker;
use super::{
    Application, EventSink, HostStartError, LeaderTable, ShardConfig, ShardHost, Transport,
};

impl ShardHost {
    /// The shards without threads: the caller drives each returned [`ShardStepper`] (shard `n`
    /// at index `n`) with [`ShardStepper::turn`]. `wals[n]` is shard `n`'s already opened WAL
    /// (the simulator opens it over its simulated disk); `config.data_dir` is not read. `now`
    /// is the caller's clock: each shard's first tick is due one `tick_interval` later. The
    /// rest is as for [`ShardHost::start`]: `send`, `open_partition`, `inbound`, `leadership`
    /// queue for the shards, and their stepper carries the input out at its next turn.
    ///
    /// [`ShardHost::shutdown`] (or dropping the host) makes the router refuse new requests;
    /// each stepper then stops with [`ShardStepper::stop`] (or crashes by being dropped).
    ///
    /// # Errors
    ///
    /// [`HostStartError::Io`] when a shard's wake-up (an eventfd, used only by production
    /// threads' producers) cannot be created.
    ///
    /// # Panics
    ///
    /// When `wals` does not hold one WAL per configured shard (a caller's mistake).
    pub fn start_stepped(
        config: ShardConfig,
        wals: Vec<Wal>,
        transport: Arc<dyn Transport>,
        app: Application,
        events: Arc<dyn EventSink>,
        leaders: Arc<LeaderTable>,
        now: Instant,
    ) -> Result<(Self, Vec<ShardStepper>), HostStartError> {
        assert_eq!(
            wals.len(),
            config.shard_count,
            "start_stepped needs one WAL per shard"
        );
        let parts = HostParts::new(config, transport, app, events, leaders);
        let mut shards = Vec::with_capacity(wals.len());
        let mut steppers = Vec::with_capacity(wals.len());
        for (shard, wal) in wals.into_iter().enumerate() {
            let (queues, params) = parts.shard(shard, false)?;
            shards.push(queues);
            steppers.push(ShardStepper {
                worker: Worker::new(params, wal, now),
            });
        }
        Ok((parts.into_host(shards, Vec::new()), steppers))
    }
}

/// One shard of a stepped host ([`ShardHost::start_stepped`]): its worker, turned by the
/// caller instead of a thread.
pub struct ShardStepper {
    worker: Worker,
}

impl std::fmt::Debug for ShardStepper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardStepper")
            .field("next_tick", &self.worker.next_tick())
            .field("waiting_on_wal", &self.worker.waiting_on_wal())
            .field("failure", &self.worker.failure())
            .finish_non_exhaustive()
    }
}

impl ShardStepper {
    /// One loop turn at `now` (the production loop's turn: drain the queues, tick every
    /// replica if the timer is due at `now`, restore, poll the WAL, gather and submit the
    /// Readies, send). A panic inside fails the shard as on a shard thread. Returns whether it
    /// did anything; if not, nothing changes before new input, a WAL completion or
    /// [`ShardStepper::next_tick`].
    pub fn turn(&mut self, now: Instant) -> bool {
        self.worker.turn(now)
    }

    /// When the shard's timer is next due (a turn at or after it ticks every replica).
    #[must_use]
    pub fn next_tick(&self) -> Instant {
        self.worker.next_tick()
    }

    /// Whether a submitted write is not yet seen durable (a later turn's poll acknowledges
    /// it and releases what it gates).
    #[must_use]
    pub fn waiting_on_wal(&self) -> bool {
        self.worker.waiting_on_wal()
    }

    /// Why the shard failed (the WAL error or the panic message), if it did.
    #[must_use]
    pub fn failure(&self) -> Option<Arc<str>> {
        self.worker.failure()
    }

    /// Stops the shard in order, as a production shard does at shutdown: makes everything
    /// appended durable (unless the shard failed) and answers what still waits with
    /// `Refusal::ShutDown` (or the failure); requests queued later see the shard gone.
    ///
    /// # Durability
    ///
    /// Every record appended before the call is durable when it returns, unless the WAL
    /// failed (then [`ShardStepper::failure`] said so).
    pub fn stop(self) {
        self.worker.finish();
    }
}
