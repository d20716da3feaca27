//! The import of a split's or merge's range through the target's log (decision 0006,
//! amendment point 3).
//!
//! On every tick, each partition this shard leads that the committed map has being filled
//! (`transfer_into`: a split's target, a merge's survivor) is driven towards an import of the
//! source's current generation in its log:
//!
//! 1. once this node's replica of the source applied the source's generation entry (its state
//!    of the range is frozen from there on: `SplitProgress::generation_applied`), the leader
//!    asks the application for the range's export (`StateTransfer::export_range`) and proposes
//!    a begin;
//! 2. then chunks of the export, read as the window frees (at most
//!    `snapshot.chunks_in_flight_max` proposed and not yet committed, each at most
//!    `snapshot.chunk_bytes` and within one WAL record), on the tick and on every later turn
//!    of the loop as they commit ([`Worker::refill_imports`]): a large export never stalls the
//!    shard's other partitions, nothing queues beyond that window, and the import moves a
//!    window per commit round trip, not at most one per tick;
//! 3. then an end, once the export is read through.
//!
//! Every replica hands the committed import entries to the application in log order
//! ([`hand_import`], from `delivery.rs`). The job lives in the leader's memory only: a leader
//! that lost its term, or a new leader that finds a begin without an end in its log, proposes
//! a new begin (the application drops what it imported since the last one); a leader whose
//! log holds the end has nothing to do. So the import survives any crash, as every step is
//! derived from committed state.

use std::collections::VecDeque;
use std::io;

use bytes::Bytes;

use super::Worker;
use super::partition::Slot;
use crate::core::{LogIndex, PartitionId, Replica, Term};
use crate::shard::codec::{ENTRY_HEADER_LEN, encode_envelope};
use crate::shard::partitions::marks::{IMPORT_HEADER_LEN, IMPORT_LOG_TYPE, ImportEntry};
use crate::shard::partitions::transfer_into;
use crate::shard::{RangeTransfer, SnapshotExport, StateTransfer, shard_of};

/// An import a leader is proposing.
pub(crate) struct ImportJob {
    /// What it imports.
    plan: RangeTransfer,
    /// The term it was begun in (a new term begins it again).
    term: Term,
    /// The export being read (`None`: the application moves its data itself, or the export
    /// is read through).
    export: Option<Box<dyn SnapshotExport>>,
    /// A chunk read whose proposal was refused (proposed again first).
    pending: Option<Bytes>,
    /// The indexes of the proposed entries not yet committed.
    in_flight: VecDeque<LogIndex>,
    /// Whether its end is proposed.
    ended: bool,
}

impl ImportJob {
    /// Whether the job goes on as the import of `plan` by a leader in `term` (else a new
    /// begin starts the import again).
    fn continues(&self, plan: RangeTransfer, term: Term) -> bool {
        self.plan == plan && self.term == term
    }
}

/// The replica of `slot` an import may propose to: hosted, neither restoring nor installing a
/// snapshot, leading with its leadership established. The one judgement of both the tick's
/// [`Worker::drive_imports`] and [`Worker::refill_imports`] between ticks.
fn import_leader(slot: Option<&mut Slot>) -> Option<&mut Replica> {
    let slot = slot?;
    if slot.restore.is_some() || slot.installing {
        return None;
    }
    slot.replica.as_mut().filter(|r| r.is_leader_established())
}

impl std::fmt::Debug for ImportJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportJob")
            .field("plan", &self.plan)
            .field("term", &self.term)
            .field("in_flight", &self.in_flight.len())
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

/// Hands a committed import entry of `target` at `index` to the application's range import
/// (`transfer`; without one, a begin and an end are nothing to do and a chunk is refused).
///
/// # Errors
/// The application's error, or `Unsupported` for a chunk without a transfer.
pub(super) fn hand_import(
    transfer: Option<&dyn StateTransfer>,
    target: PartitionId,
    index: LogIndex,
    entry: &ImportEntry,
) -> io::Result<()> {
    match (entry, transfer) {
        (ImportEntry::Begin(plan), Some(transfer)) => {
            transfer.import_range_begin(target, index, plan)
        }
        (ImportEntry::Chunk(plan, data), Some(transfer)) => {
            transfer.import_range_chunk(target, index, plan, data)
        }
        (ImportEntry::End(plan), Some(transfer)) => transfer.import_range_end(target, index, plan),
        (ImportEntry::Begin(_) | ImportEntry::End(_), None) => Ok(()),
        (ImportEntry::Chunk(..), None) => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "a range chunk reached a node without a state transfer",
        )),
    }
}

/// What a step of an import job leads to.
enum Step {
    /// Keep the job (having proposed, when filling its window).
    Keep,
    /// Keep the job, nothing proposed (its window is full, or the replica refused).
    Idle,
    /// Drop it (begun again at a later tick).
    Drop,
}

/// Frees the window's committed entries of `job` and proposes chunks of its export (then its
/// end) to `replica` until `in_flight_max` are uncommitted. [`Step::Keep`] when it proposed,
/// [`Step::Drop`] when the export failed (the import begins again).
fn fill_window(
    job: &mut ImportJob,
    replica: &mut Replica,
    chunk_max: usize,
    in_flight_max: usize,
    target: PartitionId,
) -> Step {
    let commit = replica.commit_index();
    while job.in_flight.front().is_some_and(|&index| index <= commit) {
        job.in_flight.pop_front();
    }
    let mut proposed = false;
    while !job.ended && job.in_flight.len() < in_flight_max {
        let chunk = match job.pending.take() {
            Some(chunk) => Some(chunk),
            None => match job.export.as_mut().map(|e| e.read_chunk(chunk_max)) {
                None | Some(Ok(None)) => None,
                Some(Ok(Some(chunk))) => Some(chunk),
                Some(Err(error)) => {
                    tracing::warn!(%target, %error, "reading the range export failed; the import begins again");
                    return Step::Drop;
                }
            },
        };
        let entry = match chunk {
            Some(chunk) => ImportEntry::Chunk(job.plan, chunk),
            None => ImportEntry::End(job.plan),
        };
        match propose_import(replica, &entry) {
            Some(index) => {
                job.in_flight.push_back(index);
                proposed = true;
                if let ImportEntry::End(_) = entry {
                    job.ended = true;
                    job.export = None;
                    tracing::info!(%target, "split or merge: import's end proposed");
                }
            }
            None => {
                if let ImportEntry::Chunk(_, chunk) = entry {
                    job.pending = Some(chunk);
                }
                break;
            }
        }
    }
    if proposed { Step::Keep } else { Step::Idle }
}

impl Worker {
    /// The tick's import work (see the module docs).
    pub(super) fn drive_imports(&mut self) {
        if self.failed() {
            return;
        }
        let map = self.maps.map();
        let shards = self.config.shard_count;
        let filled: Vec<(PartitionId, RangeTransfer)> = map
            .partitions
            .iter()
            .filter(|r| shard_of(r.partition_id, shards) == self.shard)
            .filter_map(|r| Some((r.partition_id, transfer_into(&map, r.partition_id)?)))
            .collect();
        self.imports
            .retain(|partition, _| filled.iter().any(|(p, _)| p == partition));
        for (target, plan) in filled {
            if let Step::Drop = self.drive_import(target, plan) {
                self.imports.remove(&target);
            }
        }
    }

    /// One tick of `target`'s import of `plan`.
    fn drive_import(&mut self, target: PartitionId, plan: RangeTransfer) -> Step {
        let chunk_max = self.range_chunk_bytes_max();
        let in_flight_max = self.config.snapshot.chunks_in_flight_max;
        let logged = self
            .partitions
            .get(target)
            .and_then(|s| s.view.marks().import);
        let Some(replica) = import_leader(self.partitions.get_mut(target)) else {
            return Step::Drop;
        };
        let job = match self.imports.get_mut(&target) {
            Some(job) if job.continues(plan, replica.term()) => job,
            _ => {
                if logged.is_some_and(|import| import.plan == plan && import.ended) {
                    // The log holds the whole import: phase 2 may run.
                    return Step::Drop;
                }
                let (frozen_at, _) = self.maps.progress().generation_applied(plan.source);
                if frozen_at < plan.generation {
                    // The source's replica here has not applied its freeze yet.
                    return Step::Drop;
                }
                let export = match self.transfer.as_ref().map(|t| t.export_range(&plan)) {
                    None => None,
                    Some(Ok(export)) => export,
                    Some(Err(error)) => {
                        tracing::warn!(%target, %error, "range export failed; tried again next tick");
                        return Step::Drop;
                    }
                };
                let Some(index) = propose_import(replica, &ImportEntry::Begin(plan)) else {
                    return Step::Drop;
                };
                tracing::info!(%target, source = %plan.source, generation = plan.generation, "split or merge: import begun");
                self.imports.insert(
                    target,
                    ImportJob {
                        plan,
                        term: replica.term(),
                        export,
                        pending: None,
                        in_flight: VecDeque::from([index]),
                        ended: false,
                    },
                );
                self.partitions.mark_dirty(target);
                return Step::Keep;
            }
        };
        match fill_window(job, replica, chunk_max, in_flight_max, target) {
            Step::Keep => {
                self.partitions.mark_dirty(target);
                Step::Keep
            }
            Step::Idle => Step::Keep,
            Step::Drop => Step::Drop,
        }
    }

    /// Between ticks: tops up the window of each import this shard is proposing as its
    /// chunks commit, so that an import moves a window per commit round trip rather than at
    /// most one per tick. Only a job the last tick kept, for the map's current transfer into
    /// its target, in the term it was begun in and with its leader established; anything else
    /// is left to the next tick's [`Worker::drive_imports`]. Returns whether it proposed.
    pub(super) fn refill_imports(&mut self) -> bool {
        if self.imports.is_empty() || self.failed() {
            return false;
        }
        let chunk_max = self.range_chunk_bytes_max();
        let in_flight_max = self.config.snapshot.chunks_in_flight_max;
        let map = self.maps.map();
        let mut proposed = false;
        let mut failed = Vec::new();
        for (&target, job) in &mut self.imports {
            let Some(replica) = import_leader(self.partitions.get_mut(target)).filter(|r| {
                transfer_into(&map, target).is_some_and(|plan| job.continues(plan, r.term()))
            }) else {
                continue;
            };
            match fill_window(job, replica, chunk_max, in_flight_max, target) {
                Step::Keep => {
                    proposed = true;
                    self.partitions.mark_dirty(target);
                }
                Step::Idle => {}
                Step::Drop => failed.push(target),
            }
        }
        for target in failed {
            self.imports.remove(&target);
        }
        proposed
    }

    /// The largest chunk of a range export: `snapshot.chunk_bytes`, within one WAL record
    /// with the import entry's header, log type and the envelope.
    fn range_chunk_bytes_max(&self) -> usize {
        let record = self.config.wal.record_bytes_max;
        let overhead = ENTRY_HEADER_LEN + 2 + IMPORT_LOG_TYPE.len() + IMPORT_HEADER_LEN;
        self.config
            .snapshot
            .chunk_bytes
            .min(record.saturating_sub(overhead))
            .max(1)
    }
}

/// Proposes `entry` to `replica`'s log; its index, or `None` when the replica refused it
/// (proposed again at a later tick).
fn propose_import(replica: &mut Replica, entry: &ImportEntry) -> Option<LogIndex> {
    let ticket = super::membership::system_ticket(replica);
    let payload = encode_envelope(IMPORT_LOG_TYPE, &entry.encode());
    match replica.propose_batch(ticket, true, &[payload]) {
        Ok(range) => Some(*range.end()),
        Err(status) => {
            tracing::debug!(
                ?status,
                "an import entry was refused; proposed again next tick"
            );
            None
        }
    }
}
