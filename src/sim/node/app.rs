//! The application behind every simulated node: a key-value register per partition, modelled
//! the way a Kommander application keeps its state. Its live state is volatile; at committed
//! checkpoints it makes its state durable, and a restarted node's application starts from that
//! durable state. Partitions differ in how ([`Durability`]): durable at every checkpoint and
//! silent about it (the library replays everything above the WAL's floor and the application
//! skips what it already holds), durable at every checkpoint and reporting its durable index,
//! or durable one checkpoint late and reporting it (the WAL's compaction must wait for it).
//!
//! It supports snapshots ([`StateTransfer`]): an export is its registers at the applied index
//! (refused when its live state is beyond it, as after a restart that replays entries it
//! already holds), an import replaces the live and the durable state at once when it
//! finishes.
//!
//! It supports range transfer too (split and merge): a register's key routes by the hash of
//! its decimal string (`key_hash(&key.to_string())`, Kommander's key routing of the string
//! `"17"` for key 17), so a range export is the source's live registers whose key hashes into
//! the range, 16 bytes each as in a snapshot; an import sets each register it carries in the
//! target's live state, as an entry at the import entry's index would (skipped at or below the
//! live index, as any entry handed again after a restart). Setting the source's frozen values
//! again is harmless, so a begin that restarts an import has nothing to drop.
//!
//! The application is the simulator's own: what it applied is the truth the delivery
//! checkers judge from. Every delivery is queued as a [`Delivered`], every import entry as an
//! [`Imported`], for the simulation to check after the shard turn that made it.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::{Buf, BufMut, Bytes};

use crate::core::{EntryKind, LogIndex, PartitionId, Term};
use crate::shard::partitions::key_hash;
use crate::shard::{
    LogEntry, RangeTransfer, SnapshotExport, SnapshotImport, SnapshotPoint, StateMachine,
    StateTransfer,
};

use super::workload::Op;

/// The application's state of one partition at some applied index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct AppState {
    /// The last entry applied.
    pub(super) index: LogIndex,
    /// The registers.
    pub(super) registers: BTreeMap<u64, u64>,
}

/// How a partition's application makes its state durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Durability {
    /// At every applied checkpoint; `durable_index` says nothing.
    AtCheckpoints,
    /// At every applied checkpoint, reported by `durable_index`.
    Reported,
    /// One checkpoint late (at a checkpoint, the state of the previous one becomes durable),
    /// reported by `durable_index`.
    Lagging,
}

impl Durability {
    fn of(partition: PartitionId) -> Self {
        match partition.0 % 3 {
            0 => Self::AtCheckpoints,
            1 => Self::Reported,
            _ => Self::Lagging,
        }
    }
}

/// One partition's application on one node.
#[derive(Debug, Default)]
struct PartitionApp {
    /// Survives crashes: the state made durable at a checkpoint.
    durable: AppState,
    /// [`Durability::Lagging`]: the state at the last checkpoint, durable at the next one.
    pending: Option<AppState>,
    /// The live state (volatile).
    live: AppState,
    /// Highest index handed over in this incarnation (restored or live).
    handed: LogIndex,
}

/// How an entry reached the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Path {
    /// `on_log_restored`.
    Restored,
    /// `on_replication_received`.
    Live,
}

/// One entry the library handed to the application.
#[derive(Debug, Clone)]
pub(super) struct Delivered {
    pub(super) partition: PartitionId,
    pub(super) index: LogIndex,
    pub(super) term: Term,
    pub(super) kind: EntryKind,
    pub(super) path: Path,
    /// The decoded operation (`None`: not one of the workload's).
    pub(super) op: Option<Op>,
    /// Highest index handed over in this incarnation before this one.
    pub(super) handed_before: LogIndex,
}

/// One import entry the library handed to the application's range import: the registers it
/// carried (none for a begin or an end).
#[derive(Debug, Clone)]
pub(super) struct Imported {
    pub(super) partition: PartitionId,
    pub(super) index: LogIndex,
    pub(super) registers: Vec<(u64, u64)>,
}

/// The application of one simulated node, kept across its incarnations.
#[derive(Debug)]
pub(super) struct SimApp {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug)]
struct Inner {
    partitions: BTreeMap<PartitionId, PartitionApp>,
    delivered: Vec<Delivered>,
    imported: Vec<Imported>,
    /// Snapshots exported and imports finished (every incarnation).
    exports: u64,
    imports: u64,
}

impl SimApp {
    pub(super) fn new() -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                partitions: BTreeMap::new(),
                delivered: Vec::new(),
                imported: Vec::new(),
                exports: 0,
                imports: 0,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        lock(&self.inner)
    }

    /// Snapshots exported and imported so far.
    pub(super) fn transfers(&self) -> (u64, u64) {
        let inner = self.lock();
        (inner.exports, inner.imports)
    }

    /// The process died: the live state is lost; what was made durable stays. A partition
    /// that reports its durable index must not be handed anything at or below it again.
    pub(super) fn crash(&self) {
        let mut inner = self.lock();
        for (&partition, app) in &mut inner.partitions {
            app.live = app.durable.clone();
            app.pending = None;
            app.handed = match Durability::of(partition) {
                Durability::AtCheckpoints => LogIndex::ZERO,
                Durability::Reported | Durability::Lagging => app.durable.index,
            };
        }
    }

    /// Deliveries since the last call.
    pub(super) fn take_delivered(&self) -> Vec<Delivered> {
        std::mem::take(&mut self.lock().delivered)
    }

    /// Import entries handed since the last call.
    pub(super) fn take_imported(&self) -> Vec<Imported> {
        std::mem::take(&mut self.lock().imported)
    }

    /// The live value of `key` in `partition` (a read served from local state).
    pub(super) fn read(&self, partition: PartitionId, key: u64) -> Option<u64> {
        let inner = self.lock();
        inner
            .partitions
            .get(&partition)
            .and_then(|app| app.live.registers.get(&key).copied())
    }

    /// The live state of `partition`.
    pub(super) fn live(&self, partition: PartitionId) -> AppState {
        self.lock()
            .partitions
            .get(&partition)
            .map(|app| app.live.clone())
            .unwrap_or_default()
    }

    /// The live applied index of `partition`.
    pub(super) fn applied(&self, partition: PartitionId) -> LogIndex {
        self.lock()
            .partitions
            .get(&partition)
            .map_or(LogIndex::ZERO, |app| app.live.index)
    }

    fn hand(&self, partition: PartitionId, entry: &LogEntry, path: Path) -> bool {
        let op = Op::decode(&entry.payload);
        let mut inner = self.lock();
        let app = inner.partitions.entry(partition).or_default();
        let handed_before = app.handed;
        app.handed = app.handed.max(entry.index);
        // At or below the live state: applied in an earlier incarnation (for a partition that
        // does not report its durable index, the library hands everything above the WAL's
        // floor again at restore); an idempotent application skips it. The delivery checker
        // decides whether the hand-over itself was allowed.
        let applied = entry.index > app.live.index;
        if applied {
            app.live.index = entry.index;
            if let Some(Op::Write { key, value, .. }) = op {
                app.live.registers.insert(key, value);
            }
            if entry.kind == EntryKind::Checkpoint {
                match Durability::of(partition) {
                    Durability::AtCheckpoints | Durability::Reported => {
                        app.durable = app.live.clone();
                    }
                    Durability::Lagging => {
                        if let Some(previous) = app.pending.replace(app.live.clone()) {
                            app.durable = previous;
                        }
                    }
                }
            }
        }
        inner.delivered.push(Delivered {
            partition,
            index: entry.index,
            term: entry.term,
            kind: entry.kind,
            path,
            op,
            handed_before,
        });
        true
    }
}

impl StateMachine for SimApp {
    fn on_replication_received(&self, partition: PartitionId, entry: &LogEntry) -> bool {
        self.hand(partition, entry, Path::Live)
    }

    fn on_log_restored(&self, partition: PartitionId, entry: &LogEntry) -> bool {
        self.hand(partition, entry, Path::Restored)
    }

    fn durable_index(&self, partition: PartitionId) -> Option<LogIndex> {
        match Durability::of(partition) {
            Durability::AtCheckpoints => None,
            Durability::Reported | Durability::Lagging => Some(
                self.lock()
                    .partitions
                    .get(&partition)
                    .map_or(LogIndex::ZERO, |app| app.durable.index),
            ),
        }
    }
}

fn lock(inner: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    inner.lock().unwrap_or_else(PoisonError::into_inner)
}

impl StateTransfer for SimApp {
    fn export(
        &self,
        partition: PartitionId,
        at: SnapshotPoint,
    ) -> io::Result<Box<dyn SnapshotExport>> {
        let mut inner = self.lock();
        let live = inner
            .partitions
            .get(&partition)
            .map(|app| app.live.clone())
            .unwrap_or_default();
        // Above its last hand-over the log holds only entries the application is not handed
        // (no-ops); a live state beyond `at` is a restart's, ahead of what was replayed yet.
        if live.index > at.index {
            return Err(io::Error::other(format!(
                "the live state is at {}, beyond {}",
                live.index, at.index
            )));
        }
        inner.exports += 1;
        let mut data = Vec::with_capacity(live.registers.len() * 16);
        for (key, value) in &live.registers {
            data.put_u64_le(*key);
            data.put_u64_le(*value);
        }
        Ok(Box::new(Bytes::from(data)))
    }

    fn import(
        &self,
        partition: PartitionId,
        at: SnapshotPoint,
    ) -> io::Result<Box<dyn SnapshotImport>> {
        Ok(Box::new(Import {
            inner: Arc::clone(&self.inner),
            partition,
            at,
            data: Vec::new(),
        }))
    }

    fn export_range(&self, plan: &RangeTransfer) -> io::Result<Option<Box<dyn SnapshotExport>>> {
        let inner = self.lock();
        let mut data = Vec::new();
        if let Some(app) = inner.partitions.get(&plan.source) {
            for (key, value) in &app.live.registers {
                if plan.holds(register_hash(*key)) {
                    data.put_u64_le(*key);
                    data.put_u64_le(*value);
                }
            }
        }
        Ok(Some(Box::new(Bytes::from(data))))
    }

    fn import_range_begin(
        &self,
        target: PartitionId,
        at: LogIndex,
        _: &RangeTransfer,
    ) -> io::Result<()> {
        self.imported(target, at, &[])
    }

    fn import_range_chunk(
        &self,
        target: PartitionId,
        at: LogIndex,
        _: &RangeTransfer,
        data: &[u8],
    ) -> io::Result<()> {
        self.imported(target, at, data)
    }

    fn import_range_end(
        &self,
        target: PartitionId,
        at: LogIndex,
        _: &RangeTransfer,
    ) -> io::Result<()> {
        self.imported(target, at, &[])
    }
}

/// The routing hash of register `key`: Kommander's key routing of its decimal string.
pub(super) fn register_hash(key: u64) -> i32 {
    key_hash(&key.to_string())
}

impl SimApp {
    /// An import entry of `target` at `at` carrying `data` (registers, 16 bytes each): set in
    /// the live state unless it already holds `at`.
    fn imported(&self, target: PartitionId, at: LogIndex, data: &[u8]) -> io::Result<()> {
        if !data.len().is_multiple_of(16) {
            return Err(io::Error::other(
                "a range chunk of registers is 16 bytes a key",
            ));
        }
        let mut registers = Vec::with_capacity(data.len() / 16);
        let mut data = data;
        while data.has_remaining() {
            registers.push((data.get_u64_le(), data.get_u64_le()));
        }
        let mut inner = self.lock();
        inner.imported.push(Imported {
            partition: target,
            index: at,
            registers: registers.clone(),
        });
        let app = inner.partitions.entry(target).or_default();
        app.handed = app.handed.max(at);
        if at <= app.live.index {
            return Ok(());
        }
        app.live.index = at;
        app.live.registers.extend(registers);
        Ok(())
    }
}

/// An import: the bytes gathered until `finish` decodes them into the new state.
struct Import {
    inner: Arc<Mutex<Inner>>,
    partition: PartitionId,
    at: SnapshotPoint,
    data: Vec<u8>,
}

impl SnapshotImport for Import {
    fn write_chunk(&mut self, data: &[u8]) -> io::Result<()> {
        self.data.extend_from_slice(data);
        Ok(())
    }

    fn finish(self: Box<Self>) -> io::Result<()> {
        if !self.data.len().is_multiple_of(16) {
            return Err(io::Error::other(
                "a snapshot of registers is 16 bytes a key",
            ));
        }
        let mut data = &self.data[..];
        let mut registers = BTreeMap::new();
        while data.has_remaining() {
            let key = data.get_u64_le();
            registers.insert(key, data.get_u64_le());
        }
        let state = AppState {
            index: self.at.index,
            registers,
        };
        let mut inner = lock(&self.inner);
        inner.imports += 1;
        let app = inner.partitions.entry(self.partition).or_default();
        // Atomically and durably: the live state and the durable one at once.
        app.durable = state.clone();
        app.live = state;
        app.pending = None;
        app.handed = app.handed.max(self.at.index);
        Ok(())
    }
}
