//! The system partition (partition 0) coordinator: it applies the partition map.
//!
//! * On first start, once this node leads P0 and no map is known, it asks partition 0's shard
//!   for the first map ([`MapOperation::Initialize`]: [`PartitionMap::initial`]`(initial_partitions)`
//!   proposed as a `_RaftSystem` entry, the path of every map change), retrying after a failed
//!   attempt. Two leaders in a row may both propose version 1; a committed map is published
//!   only if its version is above the known one, so duplicates are ignored.
//! * Partition 0's shard applies committed `_RaftSystem` entries itself and publishes the map
//!   in the shard layer's [`MapTable`] (`shard::partitions`); other P0 entries go to the
//!   application ("shared P0", as in Kommander).
//! * Each shard follows the committed map itself (`shard/worker/map.rs`): it opens the user
//!   partitions the map places on it and closes those it removed. The first configuration of
//!   a partition it opens is what this node decided when it joined (`first_members`, handed
//!   to the [`MapTable`]), the same at every restart.
//! * The coordinator thread, woken by each publication and by each new map in force (the
//!   newest map every shard followed), fires `PartitionMapChanged` and turns
//!   `is_initialized` true.
//!
//! The map is partition 0's state, kept with its log: partition 0's floor meta holds the map
//! in force at the WAL's floor and its snapshots carry it, so a restarted node finds it
//! without a file of its own. An earlier version kept it in `<data_dir>/partition-map`: that
//! file is read at start (for partition 0's floor when its floor meta holds no map) and never
//! written again.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam::channel::{self, Receiver, RecvTimeoutError, Sender};
use tokio::sync::{oneshot, watch};

use crate::clock::HybridLogicalClock;
use crate::core::{LogIndex, NodeId, PartitionId, Role, Ticket};
use crate::node::config::NodeConfig;
use crate::node::events::EventHub;
use crate::node::identity::{Identity, Origin};
use crate::shard::partitions::{MapChangeAnswer, MapOperation, MapTable, PartitionMap, Routes};
use crate::shard::{
    EventSink, LeaderTable, LogEntry, RaftEvent, Refusal, Request, ShardHost, StateMachine,
};

pub use crate::shard::partitions::SYSTEM_LOG_TYPE;

pub use crate::shard::SYSTEM_PARTITION;

/// The file in which an earlier version kept the newest committed map, in the data directory.
const LEGACY_MAP_FILE: &str = "partition-map";

/// What the node's handle and the coordinator share.
pub(crate) struct SystemState {
    /// The committed map, as partition 0's shard publishes it, and the map in force (every
    /// shard followed it).
    maps: Arc<MapTable>,
    initialized: watch::Sender<bool>,
    wake: Sender<()>,
    wakes: Receiver<()>,
}

impl SystemState {
    /// The state of a node storing under `data_dir`, following `maps`. An earlier version's
    /// map file, if there is one, is handed to partition 0's restore
    /// ([`MapTable::offer_upgrade`]); each publication wakes the coordinator.
    ///
    /// # Errors
    ///
    /// The file exists but cannot be read or does not hold a valid map.
    pub(crate) fn open(data_dir: &Path, maps: Arc<MapTable>) -> std::io::Result<Arc<Self>> {
        let legacy = data_dir.join(LEGACY_MAP_FILE);
        match std::fs::read(&legacy) {
            Ok(bytes) => maps.offer_upgrade(
                PartitionMap::decode(&bytes)
                    .map_err(|e| std::io::Error::other(format!("{}: {e}", legacy.display())))?,
            ),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
        let (wake, wakes) = channel::bounded(1);
        let state = Arc::new(Self {
            maps,
            initialized: watch::channel(false).0,
            wake,
            wakes,
        });
        let woken = Arc::downgrade(&state);
        state.maps.on_publish(move || {
            if let Some(state) = woken.upgrade() {
                state.wake();
            }
        });
        Ok(state)
    }

    /// Wakes the coordinator (a pending wake-up is enough).
    pub(crate) fn wake(&self) {
        let _ = self.wake.try_send(());
    }

    /// The map in force (version 0: none yet).
    pub(crate) fn map(&self) -> Arc<PartitionMap> {
        self.maps.in_force()
    }

    /// The routes of the map in force.
    pub(crate) fn routes(&self) -> Arc<Routes> {
        self.maps.routes()
    }

    /// The committed map (version 0: none yet), which every shard of this node may not have
    /// followed yet.
    pub(crate) fn committed_map(&self) -> Arc<PartitionMap> {
        self.maps.map()
    }

    pub(crate) fn initialized(&self) -> watch::Receiver<bool> {
        self.initialized.subscribe()
    }

    pub(crate) fn is_initialized(&self) -> bool {
        *self.initialized.borrow()
    }

    fn knows_a_map(&self) -> bool {
        self.committed_map().version > 0
    }
}

/// The state machine the runtime calls: the application, whose callbacks slower than
/// `slow_callback` are logged as warnings (never when it is zero). Partition 0's system
/// entries never reach it (its shard applies them).
pub(crate) struct SystemApp {
    pub(crate) app: Arc<dyn StateMachine>,
    pub(crate) slow_callback: Duration,
}

impl SystemApp {
    /// Runs the application's `callback` for `entry`, timed when a slow callback is to be
    /// reported: on the coarse monotonic clock (a scheduler tick's resolution, 1–4 ms, well
    /// within a threshold of tens of milliseconds), whose read costs a load where a precise
    /// one reads the time-stamp counter — two precise reads per delivered entry were 2.5 % of
    /// the saturated `kommander bench`'s CPU (issue 15).
    fn timed(
        &self,
        callback: &'static str,
        partition: PartitionId,
        entry: &LogEntry,
        call: impl FnOnce() -> bool,
    ) -> bool {
        if self.slow_callback.is_zero() {
            return call();
        }
        let started = coarse_now();
        let accepted = call();
        let took = coarse_now().saturating_sub(started);
        if took > self.slow_callback {
            tracing::warn!(
                partition = partition.get(),
                index = entry.index.get(),
                took_ms = took.as_millis() as u64,
                threshold_ms = self.slow_callback.as_millis() as u64,
                "slow state machine: {callback} took {took:?}"
            );
        }
        accepted
    }
}

/// The coarse monotonic clock (`CLOCK_MONOTONIC_COARSE`).
fn coarse_now() -> Duration {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::MonotonicCoarse);
    Duration::new(
        u64::try_from(now.tv_sec).unwrap_or(0),
        u32::try_from(now.tv_nsec).unwrap_or(0),
    )
}

impl StateMachine for SystemApp {
    fn on_replication_received(&self, partition: PartitionId, entry: &LogEntry) -> bool {
        self.timed("on_replication_received", partition, entry, || {
            self.app.on_replication_received(partition, entry)
        })
    }

    fn on_log_restored(&self, partition: PartitionId, entry: &LogEntry) -> bool {
        self.timed("on_log_restored", partition, entry, || {
            self.app.on_log_restored(partition, entry)
        })
    }

    // The application's own: left at the trait's default, the wrapper would report `None` and
    // the WAL would be compacted at every checkpoint past what the application holds.
    fn durable_index(&self, partition: PartitionId) -> Option<LogIndex> {
        self.app.durable_index(partition)
    }
}

/// The first configuration of the user partitions this node opens (the shards ask it:
/// `MapTable::set_first_members`; the partition's log governs above it): a node that joined
/// through a seed, partition 0's first configuration (the roster of its admission, itself a
/// learner, never a voter: it votes once a partition's leader promotes it); else the static
/// configuration (this node and its peers, voters all).
fn first_members(config: &NodeConfig, identity: &Identity) -> (Vec<NodeId>, Vec<NodeId>) {
    match identity.first().filter(|f| f.origin == Origin::Seed) {
        Some(first) => (
            first.configuration.voters().to_vec(),
            first.configuration.learners().to_vec(),
        ),
        None => (config.cluster_nodes(), Vec::new()),
    }
}

/// The coordinator thread.
pub(crate) struct Coordinator {
    stop: Arc<AtomicBool>,
    system: Arc<SystemState>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

struct Loop {
    config: Arc<NodeConfig>,
    identity: Arc<Identity>,
    runtime: ShardHost,
    system: Arc<SystemState>,
    hub: Arc<EventHub>,
    leaders: Arc<LeaderTable>,
    hlc: Arc<HybridLogicalClock>,
    stop: Arc<AtomicBool>,
    /// The version of the last map in force reported (`PartitionMapChanged`).
    reported: u64,
    proposal: Option<oneshot::Receiver<Result<MapChangeAnswer, Refusal>>>,
    next_proposal: Instant,
    retry: Duration,
}

impl Coordinator {
    pub(crate) fn start(
        config: Arc<NodeConfig>,
        identity: Arc<Identity>,
        runtime: ShardHost,
        system: Arc<SystemState>,
        hub: Arc<EventHub>,
        leaders: Arc<LeaderTable>,
        hlc: Arc<HybridLogicalClock>,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let retry = config.tick_interval() * config.election_timeout_ticks_max;
        let first = (Arc::clone(&config), Arc::clone(&identity));
        system
            .maps
            .set_first_members(move || first_members(&first.0, &first.1));
        let mut state = Loop {
            config,
            identity,
            runtime,
            system: Arc::clone(&system),
            hub,
            leaders,
            hlc,
            stop: Arc::clone(&stop),
            reported: 0,
            proposal: None,
            next_proposal: Instant::now(),
            retry,
        };
        let thread = std::thread::Builder::new()
            .name("kommander-system".to_owned())
            .spawn(move || state.run())?;
        Ok(Self {
            stop,
            system,
            thread: Mutex::new(Some(thread)),
        })
    }

    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.system.wake();
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

impl Drop for Coordinator {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Loop {
    fn run(&mut self) {
        let poll = self.config.tick_interval() * 2;
        let wakes = self.system.wakes.clone();
        let mut started = false;
        while !self.stop.load(Ordering::Acquire) {
            match wakes.recv_timeout(poll) {
                Ok(()) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            if self.stop.load(Ordering::Acquire) {
                return;
            }
            if !started {
                started = true;
                self.reopen_system_partition();
            }
            self.report_map_in_force();
            self.propose_initial_map();
        }
    }

    /// On a data directory that joined before, opens partition 0 as its next join would (with
    /// the configuration its first join decided): partition 0's restore finds the map kept
    /// with its log and publishes it, so a restarted node opens the map's partitions before it
    /// joins again, as it did when the map had a file of its own. The join waits for the
    /// answer (opening an open partition answers at once); a full queue leaves it to the join.
    fn reopen_system_partition(&self) {
        if let Some(first) = self.identity.first() {
            let _ = self.runtime.open_partition(
                SYSTEM_PARTITION,
                first.configuration.voters().to_vec(),
                first.configuration.learners().to_vec(),
            );
        }
    }

    /// Reports a new map in force (every shard opened its partitions and closed those it
    /// removed): `PartitionMapChanged`, and the node is initialized.
    fn report_map_in_force(&mut self) {
        let map = self.system.maps.in_force();
        if map.version <= self.reported {
            return;
        }
        self.reported = map.version;
        self.hub.emit(RaftEvent::PartitionMapChanged {
            version: map.version,
        });
        self.system.initialized.send_replace(true);
    }

    /// As P0 leader with no map known: propose the first one.
    fn propose_initial_map(&mut self) {
        if let Some(answer) = self.proposal.as_mut() {
            match answer.try_recv() {
                Err(oneshot::error::TryRecvError::Empty) => return,
                // Committed (its delivery is on its way) or failed: look again later.
                _ => self.next_proposal = Instant::now() + self.retry,
            }
            self.proposal = None;
        }
        if self.system.knows_a_map() || Instant::now() < self.next_proposal {
            return;
        }
        let leads = self
            .leaders
            .get(SYSTEM_PARTITION)
            .is_some_and(|l| l.role == Role::Leader);
        if !leads {
            return;
        }
        let (reply, answer) = oneshot::channel();
        let request = Request::ChangeMap {
            operation: MapOperation::Initialize {
                partitions: self.config.initial_partitions,
            },
            ticket: Ticket(self.hlc.now().packed()),
            reply,
        };
        if self.runtime.send(SYSTEM_PARTITION, request).is_ok() {
            self.proposal = Some(answer);
        } else {
            self.next_proposal = Instant::now() + self.retry;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{Entry, EntryKind, Term, Ticket};
    use crate::shard::codec::encode_envelope;
    use crate::shard::log_capture::logged_by;

    /// An application whose callbacks take `delay`.
    struct Slow(Duration);

    impl StateMachine for Slow {
        fn on_replication_received(&self, _: PartitionId, _: &LogEntry) -> bool {
            std::thread::sleep(self.0);
            true
        }

        fn on_log_restored(&self, partition: PartitionId, entry: &LogEntry) -> bool {
            self.on_replication_received(partition, entry)
        }
    }

    /// What a node whose slow-callback threshold is `threshold` logs when an application
    /// taking `delay` gets entry 7 of partition 3 (live and restored).
    fn logged(threshold: Duration, delay: Duration) -> String {
        let app = SystemApp {
            app: Arc::new(Slow(delay)),
            slow_callback: threshold,
        };
        let entry = LogEntry::decode(&Entry {
            index: LogIndex(7),
            term: Term(1),
            kind: EntryKind::Normal,
            ticket: Ticket(1),
            auto_commit: true,
            payload: encode_envelope("kv", b"x"),
        })
        .expect("an entry");
        logged_by(|| {
            assert!(app.on_replication_received(PartitionId(3), &entry));
            assert!(app.on_log_restored(PartitionId(3), &entry));
        })
    }

    /// An application durable through index 41 of partition 3 only.
    struct Durable;

    impl StateMachine for Durable {
        fn on_replication_received(&self, _: PartitionId, _: &LogEntry) -> bool {
            true
        }

        fn on_log_restored(&self, _: PartitionId, _: &LogEntry) -> bool {
            true
        }

        fn durable_index(&self, partition: PartitionId) -> Option<LogIndex> {
            (partition == PartitionId(3)).then_some(LogIndex(41))
        }
    }

    #[test]
    fn the_applications_durable_index_is_the_one_the_shards_see() {
        let app = SystemApp {
            app: Arc::new(Durable),
            slow_callback: Duration::ZERO,
        };
        assert_eq!(app.durable_index(PartitionId(3)), Some(LogIndex(41)));
        assert_eq!(app.durable_index(PartitionId(4)), None);
    }

    #[test]
    fn a_callback_slower_than_the_threshold_is_logged_as_a_warning() {
        let text = logged(Duration::from_millis(5), Duration::from_millis(20));
        for callback in ["on_replication_received", "on_log_restored"] {
            assert!(
                text.lines().any(|line| line.contains("WARN")
                    && line.contains(&format!("slow state machine: {callback}"))
                    && line.contains("partition=3")
                    && line.contains("index=7")),
                "{text}"
            );
        }
        // Far below the threshold, and with the check off: nothing.
        assert_eq!(logged(Duration::from_secs(60), Duration::ZERO), "");
        assert_eq!(logged(Duration::ZERO, Duration::from_millis(20)), "");
    }
}
