//! One simulated node: its shards' disks (the WAL's simulated backend), its application, its
//! clock, and, while it runs, the real shard host driven turn by turn. Crashing drops the
//! host without a clean stop (what the shards performed stays on the disks, volatile until
//! synced); power loss replaces each disk by its image after a power cut (unsynced writes
//! lost or torn); restarting reopens the WALs from the disks and the partitions from the WALs.
//! Replacing its disks ([`SimNode::wipe`]) gives it empty disks and an application that starts
//! from nothing: a new data directory, as an operator replacing a dead machine gives it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use kommander_wal::backend::BackendChoice;
use kommander_wal::backend::sim::{CrashMode, DurableLogs, FaultPlan, SimDisk};
use kommander_wal::{Wal, WalConfig};

use crate::clock::{HybridLogicalClock, PhysicalClock};
use crate::core::{NodeId, PartitionId};
use crate::shard::partitions::MapTable;
use crate::shard::{
    Application, EndpointLookup, EventSink, LeaderTable, RaftEvent, ShardConfig, ShardHost,
    ShardStepper,
};

use super::app::SimApp;
use super::truth::DurableLog;
use super::wire::{WireOutbox, WireTransport};

/// A node's clock: its own rate (drift) and forward jumps, mapped onto the simulation's
/// milliseconds. The shard loop only sees the `Instant`s this clock gives it.
#[derive(Debug, Clone, Copy)]
pub(super) struct NodeClock {
    /// Microseconds of this node's clock per simulated millisecond (1 000: no drift).
    pub(super) micros_per_ms: u64,
    /// Forward jumps so far.
    pub(super) jumped_us: u64,
}

impl NodeClock {
    /// This node's reading at simulated time `now_ms`.
    pub(super) fn at(self, epoch: Instant, now_ms: u64) -> Instant {
        epoch + Duration::from_micros(now_ms * self.micros_per_ms + self.jumped_us)
    }

    /// This node's wall clock (Unix milliseconds, from [`WALL_EPOCH_MS`]) at simulated time
    /// `now_ms`: what its hybrid logical clock follows.
    pub(super) fn wall_ms(self, now_ms: u64) -> u64 {
        WALL_EPOCH_MS + (now_ms * self.micros_per_ms + self.jumped_us) / 1_000
    }

    /// The first simulated millisecond at which this node's clock reads at least `instant`.
    pub(super) fn when(self, epoch: Instant, instant: Instant) -> u64 {
        let us = instant.saturating_duration_since(epoch).as_micros() as u64;
        us.saturating_sub(self.jumped_us)
            .div_ceil(self.micros_per_ms)
    }
}

/// The Unix time (ms) every node's wall clock reads at simulated time 0 (fixed: a run is
/// reproducible from its seed).
const WALL_EPOCH_MS: u64 = 1_700_000_000_000;

/// How far ahead of a node's wall clock a peer's frame stamp may be and still be merged (the
/// node's default `hlc_drift_ms_max`).
const HLC_DRIFT_MS_MAX: u64 = 60_000;

/// A node's wall clock as its hybrid logical clock reads it: the [`NodeClock`]'s reading, set
/// by the simulation ([`SimNode::set_wall`]) before the node acts.
#[derive(Debug, Clone, Default)]
struct SimWall(Arc<AtomicU64>);

impl PhysicalClock for SimWall {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Nobody's endpoint is known in the simulation (the events that carry one are not checked).
#[derive(Debug)]
struct NoEndpoints;

impl EndpointLookup for NoEndpoints {
    fn endpoint_of(&self, _node: NodeId) -> Option<String> {
        None
    }
}

/// The shards' events the checkers judge: a restore that failed (every image the disks hold
/// must recover). The others are not needed: leadership is judged from the wire.
#[derive(Debug, Default)]
pub(super) struct RestoreFailures {
    failures: Mutex<Vec<String>>,
}

impl RestoreFailures {
    /// The failures since the last call.
    pub(super) fn take_failures(&self) -> Vec<String> {
        std::mem::take(&mut *self.failures.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl EventSink for RestoreFailures {
    fn emit(&self, event: RaftEvent) {
        if let RaftEvent::RestoreFailed { partition, reason } = event {
            self.failures
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(format!("partition {partition} failed to restore: {reason}"));
        }
    }
}

/// A running incarnation: the shard host and one stepper per shard.
pub(super) struct Running {
    pub(super) host: ShardHost,
    pub(super) shards: Vec<ShardStepper>,
    /// The partition map its partition 0 committed, and the map in force.
    pub(super) maps: Arc<MapTable>,
}

/// One simulated node.
pub(super) struct SimNode {
    pub(super) id: NodeId,
    /// Bumped at every crash: events of an older incarnation are ignored.
    pub(super) incarnation: u64,
    /// The running host (`None`: down).
    pub(super) running: Option<Running>,
    /// Each shard's disk and the directory its files live in.
    pub(super) disks: Vec<(SimDisk, PathBuf)>,
    pub(super) app: Arc<SimApp>,
    pub(super) events: Arc<RestoreFailures>,
    pub(super) outbox: Arc<WireOutbox>,
    pub(super) clock: NodeClock,
    /// What the hybrid logical clock reads as the wall clock.
    wall: SimWall,
    /// The incarnation's hybrid logical clock (a restarted process starts a new one): it
    /// stamps the frames the node sends and merges the stamps of those it receives.
    pub(super) hlc: Arc<HybridLogicalClock>,
    /// Stopped (SIGSTOP) until this simulated time.
    pub(super) paused_until: u64,
    /// When each shard's next turn is scheduled (`None`: not scheduled).
    pub(super) turn_at: Vec<Option<u64>>,
    /// Whether each shard's disk has a write completion scheduled.
    pub(super) disk_busy: Vec<bool>,
    /// The fault armed on each shard's disk in this incarnation, if any: a WAL failure on
    /// that shard is expected once the disk reached the faulty I/O (the failure may surface
    /// later than the I/O, e.g. when a segment prepared with a failed sync is taken).
    pub(super) armed: Vec<Option<FaultPlan>>,
    /// Disk latency multiplier while a slow-disk fault lasts (1: normal).
    pub(super) disk_slowdown: u64,
    /// Each shard's durable logs, decoded, and the disk's answer they were decoded from.
    pub(super) durable: Vec<Option<DecodedDurable>>,
    /// Directory of this node's files (`shard-<n>` below it).
    root: PathBuf,
    /// Data directories this node had (1: its disks were never replaced).
    data_dirs: u64,
    /// The first configurations decided when this data directory was admitted to the cluster
    /// (as a joiner's `identity` file keeps them); `None`: the data directory of the initial
    /// cluster (every partition opens with the initial members as voters).
    pub(super) first: Option<FirstMembers>,
}

/// What a data directory admitted through a roster change opens its partitions with while
/// their logs say nothing (as `src/node/raft/join.rs` and `src/node/system.rs` decide it): the
/// roster of the admission, this node a learner, never a voter.
#[derive(Debug, Clone)]
pub(super) struct FirstMembers {
    /// Partition 0's voters and learners: the roster's configuration.
    pub(super) system: (Vec<NodeId>, Vec<NodeId>),
    /// Every other partition's: the roster's target for them.
    pub(super) partitions: (Vec<NodeId>, Vec<NodeId>),
    /// The roster version that admitted the data directory (as the `identity` file keeps
    /// it): its replicas withhold their votes until their partition follows it.
    pub(super) admitted_version: u64,
}

/// A disk's durable logs as the checkers read them, with the disk's value they come from
/// (the disk recomputes only when something became durable; so does the decoding).
pub(super) type DecodedDurable = (Arc<DurableLogs>, Arc<BTreeMap<PartitionId, DurableLog>>);

/// One empty simulated disk per shard, in `root/shard-<n>`.
fn fresh_disks(root: &std::path::Path, shards: usize) -> Vec<(SimDisk, PathBuf)> {
    (0..shards)
        .map(|shard| {
            let dir = root.join(format!("shard-{shard}"));
            std::fs::create_dir_all(&dir).expect("a simulation directory");
            let disk = SimDisk::new(&dir).expect("a fresh simulated disk");
            (disk, dir)
        })
        .collect()
}

impl SimNode {
    /// A node with fresh, empty disks under `root`.
    pub(super) fn new(id: NodeId, shards: usize, root: PathBuf, clock: NodeClock) -> Self {
        let mut node = Self {
            id,
            incarnation: 0,
            running: None,
            disks: Vec::with_capacity(shards),
            app: Arc::new(SimApp::new()),
            events: Arc::new(RestoreFailures::default()),
            outbox: Arc::new(WireOutbox::default()),
            clock,
            wall: SimWall::default(),
            hlc: Arc::new(HybridLogicalClock::new(0, HLC_DRIFT_MS_MAX)),
            paused_until: 0,
            turn_at: vec![None; shards],
            disk_busy: vec![false; shards],
            armed: vec![None; shards],
            disk_slowdown: 1,
            durable: vec![None; shards],
            root,
            data_dirs: 1,
            first: None,
        };
        node.disks = fresh_disks(&node.root, shards);
        node
    }

    /// Sets the wall clock the node's hybrid logical clock reads to its [`NodeClock`]'s
    /// reading at simulated time `now_ms` (before the node takes a turn or reads a frame).
    pub(super) fn set_wall(&self, now_ms: u64) {
        self.wall
            .0
            .store(self.clock.wall_ms(now_ms), Ordering::Relaxed);
    }

    /// The node's disks are replaced by empty ones (a new data directory), its application
    /// starts from nothing, and what it decided at its admission is forgotten. The node must
    /// be down; a restart scheduled for it is superseded.
    pub(super) fn wipe(&mut self) {
        debug_assert!(!self.up(), "a running node's disks are not replaced");
        self.incarnation += 1;
        self.data_dirs += 1;
        self.root = self
            .root
            .with_file_name(format!("node-{}-disk-{}", self.id.0, self.data_dirs));
        self.disks = fresh_disks(&self.root, self.disks.len());
        self.app = Arc::new(SimApp::new());
        self.durable.iter_mut().for_each(|cached| *cached = None);
        self.first = None;
    }

    pub(super) fn up(&self) -> bool {
        self.running.is_some()
    }

    /// No further I/O of this node's disks fails (what an armed fault already did stays
    /// recorded in [`SimNode::armed`]).
    pub(super) fn disarm(&self) {
        for (disk, _) in &self.disks {
            disk.set_faults(FaultPlan::default());
        }
    }

    /// Whether the fault armed on `shard`'s disk has fired (the disk reached its I/O).
    pub(super) fn fault_fired(&self, shard: usize) -> bool {
        let (writes, syncs) = self.disks[shard].0.io_counts();
        self.armed[shard].is_some_and(|plan| {
            plan.fail_write_nth.is_some_and(|nth| nth < writes)
                || plan.fail_sync_nth.is_some_and(|nth| nth < syncs)
        })
    }

    /// Starts an incarnation: opens every shard's WAL from its disk, starts the stepped host,
    /// whose shards open the partitions partition 0's map adds with `first_members` while the
    /// roster does not list this node.
    ///
    /// # Errors
    /// A WAL that does not open, or a host that does not start: recovery refused what the
    /// disk holds (a violation: every crash image must recover).
    pub(super) fn start(
        &mut self,
        mut config: ShardConfig,
        wal: &WalConfig,
        epoch_seed: u64,
        now: Instant,
        first_members: (Vec<NodeId>, Vec<NodeId>),
    ) -> Result<(), String> {
        let mut wals = Vec::with_capacity(self.disks.len());
        for (shard, (disk, dir)) in self.disks.iter().enumerate() {
            disk.set_stalled(true);
            let config = WalConfig {
                backend: BackendChoice::Simulated(disk.clone()),
                prepare_segments_in_background: false,
                deterministic_epoch_seed: Some(epoch_seed ^ ((shard as u64) << 32)),
                ..wal.clone()
            };
            let opened = Wal::open(dir, config).map_err(|e| {
                format!("node {} shard {shard}: the WAL does not open: {e}", self.id)
            })?;
            wals.push(opened);
        }
        config.data_dir = self.root.clone();
        // Node ids of the simulation are small (1..=nodes).
        let node = u32::try_from(self.id.get()).unwrap_or(u32::MAX);
        self.hlc = Arc::new(HybridLogicalClock::with_clock(
            node,
            HLC_DRIFT_MS_MAX,
            self.wall.clone(),
        ));
        let transport = Arc::new(WireTransport {
            outbox: Arc::clone(&self.outbox),
            clock: Arc::clone(&self.hlc),
        });
        let leaders = Arc::new(LeaderTable::new(Arc::new(NoEndpoints)));
        let maps = Arc::new(MapTable::default());
        maps.set_first_members(move || first_members.clone());
        let (host, shards) = ShardHost::start_stepped(
            config,
            wals,
            transport,
            Application::new(Arc::clone(&self.app) as _)
                .with_transfer(Arc::clone(&self.app) as _)
                .with_maps(Arc::clone(&maps)),
            Arc::clone(&self.events) as _,
            leaders,
            now,
        )
        .map_err(|e| format!("node {}: the shard host does not start: {e}", self.id))?;
        self.running = Some(Running { host, shards, maps });
        self.turn_at.iter_mut().for_each(|t| *t = None);
        self.disk_busy.iter_mut().for_each(|b| *b = false);
        Ok(())
    }

    /// The process dies: the host is dropped without a clean stop. What the shards performed
    /// stays on the disks (the page cache survives a process crash), volatile until synced.
    /// Does nothing to a node already down (its restart stays scheduled).
    pub(super) fn crash(&mut self) {
        let Some(running) = self.running.take() else {
            return;
        };
        drop(running.shards);
        running.host.shutdown();
        self.incarnation += 1;
        self.app.crash();
        self.outbox.drain();
        // An armed fault belongs to the incarnation it was meant to fail.
        self.disarm();
        self.armed.iter_mut().for_each(|plan| *plan = None);
        self.disk_slowdown = 1;
        self.paused_until = 0;
    }

    /// Power is cut: the process dies and each disk keeps only what `mode` lets survive.
    pub(super) fn power_loss(&mut self, mode: CrashMode) {
        self.crash();
        for (shard, (disk, _)) in self.disks.iter().enumerate() {
            let mode = match mode {
                // Each disk tears its own way.
                CrashMode::Torn(seed) => CrashMode::Torn(seed ^ shard as u64),
                other => other,
            };
            disk.power_loss(mode)
                .expect("a power loss of a simulated disk");
        }
        self.durable.iter_mut().for_each(|cached| *cached = None);
    }
}
