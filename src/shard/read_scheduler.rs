//! The ReadScheduler: every read a shard makes of its WAL, in bounded chunks, so that reading
//! never stalls the write path (and the other partitions) for longer than one chunk.
//!
//! Today it serves restore: a partition opened with a log in the WAL is looked up
//! ([`ReadScheduler::start`]), then read back a budget of entries at a time
//! ([`ReadScheduler::read`]) until its durable state (hard state, floor and floor term,
//! entries, commit index) is complete. Lagging followers are served from the replicas'
//! memory (the core keeps every entry above the floor), so replication reads nothing here yet.

use std::collections::HashMap;

use kommander_wal::{PartitionInfo, Wal};

use super::codec;
use super::partitions::marks::LogMarks;
use super::partitions::{FloorMeta, PartitionMap, decode_floor_meta};
use crate::core::{DurableState, Entry, HardState, LogIndex, NodeId, PartitionId, Term};

/// Reading one partition's log back from the WAL.
#[derive(Debug)]
struct ReadJob {
    info: PartitionInfo,
    next: u64,
    entries: Vec<Entry>,
}

/// The shard's reads of its WAL in progress, one per partition being read.
#[derive(Debug, Default)]
pub(crate) struct ReadScheduler {
    jobs: HashMap<PartitionId, ReadJob>,
}

impl ReadScheduler {
    /// Looks `partition` up in the WAL: `Some(info)` when the WAL holds records of it (a read
    /// of its log starts: see [`ReadScheduler::read`]), `None` when it holds none.
    ///
    /// # Errors
    ///
    /// The WAL's error (a poisoned WAL).
    pub(crate) fn start(
        &mut self,
        wal: &Wal,
        partition: PartitionId,
    ) -> kommander_wal::Result<Option<PartitionInfo>> {
        match wal.partition(partition) {
            Ok(info) => {
                self.jobs.insert(
                    partition,
                    ReadJob {
                        info,
                        next: info.first_index,
                        entries: Vec::new(),
                    },
                );
                Ok(Some(info))
            }
            Err(kommander_wal::Error::UnknownPartition { .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Reads up to `budget` more entries of `partition`'s log (each one read takes one from
    /// `budget`). [`ReadProgress::Done`] once the whole log is read, with the durable state to
    /// rebuild the replica from (`applied` at the floor; the restore moves it up to the
    /// application's durable index when it reports one).
    ///
    /// # Errors
    ///
    /// What is wrong when the WAL's content is inconsistent (an entry that does not read or
    /// decode); the read is abandoned.
    pub(crate) fn read(
        &mut self,
        wal: &Wal,
        partition: PartitionId,
        budget: &mut usize,
    ) -> Result<ReadProgress, String> {
        let Some(job) = self.jobs.get_mut(&partition) else {
            return Err(format!("partition {partition} has no read in progress"));
        };
        match read_chunk(wal, partition, job, budget) {
            Ok(Chunk::Budget) => Ok(ReadProgress::More),
            Ok(Chunk::WaitForWal) => Ok(ReadProgress::WaitForWal),
            Ok(Chunk::Done) => {
                let job = self.jobs.remove(&partition).expect("the job read above");
                durable_state(wal, partition, job)
                    .map(|restored| ReadProgress::Done(Box::new(restored)))
            }
            Err(reason) => {
                self.jobs.remove(&partition);
                Err(reason)
            }
        }
    }
}

impl ReadScheduler {
    /// Abandons the read of `partition`'s log, if one is in progress (the partition closed).
    pub(crate) fn forget(&mut self, partition: PartitionId) {
        self.jobs.remove(&partition);
    }
}

/// Where a partition's read stands after [`ReadScheduler::read`].
pub(crate) enum ReadProgress {
    /// The whole log is read: the state to rebuild the replica from.
    Done(Box<Restored>),
    /// The budget ran out; more next turn.
    More,
    /// The next entry is durable but being relocated by the WAL (the rewrite of the records
    /// that pin its oldest segment): it reads again once the copy is durable, a WAL poll away.
    WaitForWal,
}

/// A log read back in full.
pub(crate) struct Restored {
    /// The state to rebuild the replica from.
    pub(crate) durable: DurableState,
    /// The partition map kept with the floor (partition 0 only).
    pub(crate) floor_map: Option<PartitionMap>,
    /// The split marks kept with the floor (a user partition's).
    pub(crate) floor_marks: LogMarks,
}

/// How far a chunk of reading got.
enum Chunk {
    /// The whole log is read.
    Done,
    /// The budget ran out.
    Budget,
    /// The next entry is being relocated by the WAL (see [`ReadProgress::WaitForWal`]).
    WaitForWal,
}

/// Reads up to `budget` entries of a partition's log.
fn read_chunk(
    wal: &Wal,
    partition: PartitionId,
    job: &mut ReadJob,
    budget: &mut usize,
) -> Result<Chunk, String> {
    while job.next <= job.info.last_index {
        if *budget == 0 {
            return Ok(Chunk::Budget);
        }
        let index = job.next;
        let record = match wal.entry(partition, index) {
            Ok(record) => record,
            // A durable record the WAL is relocating (the rewrite of records that pin its
            // oldest segment): readable again once the copy is durable, a WAL poll away. The
            // rest of this turn's budget is left for the next turn.
            Err(kommander_wal::Error::NotDurable { .. }) => return Ok(Chunk::WaitForWal),
            Err(e) => return Err(format!("reading entry {index}: {e}")),
        };
        *budget -= 1;
        let term = wal
            .term_at(partition, index)
            .map_err(|e| format!("reading the term of entry {index}: {e}"))?;
        let entry = codec::decode_record(LogIndex(index), Term(term), &record)
            .map_err(|e| format!("decoding entry {index}: {e}"))?;
        job.entries.push(entry);
        job.next += 1;
    }
    Ok(Chunk::Done)
}

/// The durable state a completely read log describes.
///
/// # Errors
///
/// What is kept with the WAL's floor (the configuration, partition 0's map) does not decode.
fn durable_state(wal: &Wal, partition: PartitionId, job: ReadJob) -> Result<Restored, String> {
    let info = job.info;
    let floor = LogIndex(info.first_index.saturating_sub(1));
    let floor_term = if floor.0 == 0 {
        Term(0)
    } else {
        Term(wal.term_at(partition, floor.0).unwrap_or(0))
    };
    let floor_meta = wal
        .floor_meta(partition)
        .map_err(|error| format!("reading the floor's configuration: {error}"))?;
    let FloorMeta {
        configuration: floor_configuration,
        map: floor_map,
        marks: floor_marks,
    } = decode_floor_meta(&floor_meta)
        .map_err(|error| format!("what is kept with the WAL's floor {floor}: {error}"))?;
    let durable = DurableState {
        hard_state: HardState {
            term: Term(info.term_vote.map_or(0, |h| h.term)),
            vote: info.term_vote.and_then(|h| h.vote).map(NodeId),
            commit: LogIndex(info.commit_index.unwrap_or(0)),
        },
        floor,
        floor_term,
        floor_configuration,
        entries: job.entries,
        applied: floor,
    };
    Ok(Restored {
        durable,
        floor_map,
        floor_marks,
    })
}
