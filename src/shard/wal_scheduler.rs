//! The WalScheduler: how a shard's Readies reach its WAL. Each Ready that must persist
//! becomes WAL records ([`wal_records`](super::wal_records)) appended to the WAL's open frame;
//! at the end of the loop turn ONE [`Wal::submit`] makes the records of every partition of the
//! turn one durable write (one fdatasync). The next turn's submission may go out while the
//! previous one is in flight (the WAL pipelines `inflight_batches_max` frames).
//!
//! Each Ready whose durability its replica awaits, or with messages that may only leave once
//! it is durable (votes, append acks), waits in a FIFO of (LSN, partition, ready number) until
//! the WAL reports that LSN durable; then the replica is told (`persisted`) and its gated
//! messages are released to the outbox, oldest first. A Ready nobody waits for (a commit
//! index or a compaction alone) is written and not queued: a later `persisted` covers it.
//!
//! It records the WAL's metrics: records and payload bytes of each submission, and the time
//! from each submission to its durability, both timestamps taken from the loop turn's `now`
//! (it reads no clock itself: the simulator steps it with virtual time).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kommander_wal::{Lsn, Wal, Write};

use super::SYSTEM_PARTITION;
use super::outbox::Outbox;
use super::wal_records::{Encoded, WalView, wal_writes};
use crate::core::{GatedMessages, LogIndex, Message, PartitionId, Ready};
use crate::metrics::ShardMetrics;

/// The emptied gated-message vectors a scheduler keeps for the next Readies, at most: as many
/// as a loaded shard has follower Readies in flight (at 4096 active partitions on three
/// nodes, about 1 400 per shard per round trip; 256 left most of them allocating again). Each
/// holds a few messages' room (an append acknowledgement: 80 bytes each), so the spares of a
/// shard that was that busy keep about 1.3 MiB.
const SPARE_GATED_MAX: usize = 4096;

/// A Ready whose persistence (or whose predecessors' persistence) is in flight.
#[derive(Debug)]
struct PendingPersist {
    lsn: Lsn,
    partition: PartitionId,
    number: u64,
    gated: GatedMessages,
}

/// The write side of a shard's WAL: records appended this turn, and the Readies waiting for
/// durability.
pub(crate) struct WalScheduler {
    /// Encodings of the entries of the Ready being appended.
    scratch: Encoded,
    /// Records appended since the last submission (none: nothing to submit).
    appended_records: usize,
    /// Entry payload bytes appended since the last submission.
    appended_bytes: usize,
    pending: VecDeque<PendingPersist>,
    /// Vectors of released gated messages, emptied, for the next Readies' (a follower's
    /// acknowledgement would otherwise allocate one per Ready).
    spare_gated: Vec<Vec<Message>>,
    /// Submissions not yet durable, oldest first: the LSN that makes each durable (every
    /// record below it) and when it was submitted.
    submitted: VecDeque<(Lsn, Instant)>,
    metrics: ShardMetrics,
    /// The shard whose WAL this schedules (named in warnings).
    shard: usize,
    /// A submission durable later than this after it was submitted is logged as a warning
    /// (`Duration::ZERO`: never).
    slow_write: Duration,
    /// How many entries a user partition's commit index may run ahead of the one its WAL
    /// holds (`wal_records`; partition 0's is written at every change: its map must be read
    /// back as it was published).
    commit_lag_max: u64,
}

impl std::fmt::Debug for WalScheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalScheduler")
            .field("appended_records", &self.appended_records)
            .field("pending", &self.pending)
            .field("submitted", &self.submitted)
            .finish_non_exhaustive()
    }
}

impl WalScheduler {
    /// A scheduler of `shard`'s WAL with nothing appended, recording into `metrics`, warning
    /// of a write slower than `slow_write` (never when it is zero) and writing a partition's
    /// commit index once it runs more than `commit_lag_max` entries ahead of the WAL's.
    pub(crate) fn new(
        shard: usize,
        metrics: ShardMetrics,
        slow_write: Duration,
        commit_lag_max: u64,
    ) -> Self {
        Self {
            scratch: Encoded::default(),
            appended_records: 0,
            appended_bytes: 0,
            pending: VecDeque::new(),
            spare_gated: Vec::new(),
            submitted: VecDeque::new(),
            metrics,
            shard,
            slow_write,
            commit_lag_max,
        }
    }

    /// Appends `ready`'s records to the WAL's open frame (`view` is what the WAL holds for
    /// `partition`) and, if its replica awaits its durability or it has persist-gated
    /// messages (taken from it), queues it until everything appended so far is durable.
    /// Returns whether it appended any record.
    ///
    /// # Errors
    ///
    /// The WAL's error: the WAL is poisoned.
    pub(crate) fn schedule(
        &mut self,
        wal: &mut Wal,
        partition: PartitionId,
        ready: &mut Ready,
        view: &mut WalView,
        durable_index: impl FnOnce() -> Option<LogIndex>,
    ) -> kommander_wal::Result<bool> {
        let mut records = 0;
        // A quiescing partition writes the commit index it has not written yet.
        if ready.must_persist() || ready.quiescence == Some(true) {
            let lag = if partition == SYSTEM_PARTITION {
                0
            } else {
                self.commit_lag_max
            };
            let writes = wal_writes(
                partition,
                ready,
                view,
                &mut self.scratch,
                lag,
                durable_index,
            );
            records = writes.len(&self.scratch);
            if records > 0 {
                wal.append_iter(writes.writes(&self.scratch))?;
                self.appended_records += records;
                self.appended_bytes += self.scratch.byte_len();
            }
        }
        // The Ready keeps a spare vector for the next replica's gated messages.
        let gated = if ready.persisted_messages.is_empty() {
            GatedMessages::default()
        } else {
            let spare = GatedMessages::reusing(self.spare_gated.pop().unwrap_or_default());
            std::mem::replace(&mut ready.persisted_messages, spare)
        };
        if ready.durability_awaited || !gated.is_empty() {
            self.pending.push_back(PendingPersist {
                lsn: wal.next_lsn(),
                partition,
                number: ready.number,
                gated,
            });
        }
        Ok(records > 0)
    }

    /// Appends the commit index of `partition` if its WAL does not hold the one its replica
    /// reported (a shard's orderly stop writes every partition's; nothing waits on it).
    ///
    /// # Errors
    ///
    /// The WAL's error: the WAL is poisoned.
    pub(crate) fn write_lagging_commit(
        &mut self,
        wal: &mut Wal,
        partition: PartitionId,
        view: &mut WalView,
    ) -> kommander_wal::Result<()> {
        if let Some(index) = view.take_lagging_commit() {
            wal.append(&[Write::CommitIndex { partition, index }])?;
            self.appended_records += 1;
        }
        Ok(())
    }

    /// Appends a compaction that waited for the application's durable index (the first index
    /// kept and the configuration in force at the floor, as [`WalView::compaction`] gives
    /// them; nothing waits on it; it leaves with this turn's submission).
    ///
    /// # Errors
    ///
    /// The WAL's error: the WAL is poisoned.
    pub(crate) fn compact(
        &mut self,
        wal: &mut Wal,
        partition: PartitionId,
        (first_index, configuration): (u64, Bytes),
    ) -> kommander_wal::Result<()> {
        wal.append(&[Write::CompactTo {
            partition,
            index: first_index,
            floor_meta: &configuration,
        }])?;
        self.appended_records += 1;
        Ok(())
    }

    /// Appends the deletion of `partition`'s records (a closed partition: nothing of it is
    /// live any more, so its segments are reclaimed once no other partition pins them); it
    /// leaves with this turn's submission. A partition the WAL holds nothing of needs none.
    ///
    /// # Errors
    ///
    /// The WAL's error: the WAL is poisoned.
    pub(crate) fn delete_partition(
        &mut self,
        wal: &mut Wal,
        partition: PartitionId,
    ) -> kommander_wal::Result<()> {
        match wal.partition(partition) {
            Ok(_) => {}
            Err(kommander_wal::Error::UnknownPartition { .. }) => return Ok(()),
            Err(error) => return Err(error),
        }
        wal.delete_partition(partition)?;
        self.appended_records += 1;
        Ok(())
    }

    /// Whether records were appended since the last [`WalScheduler::submit`].
    pub(crate) fn has_appended(&self) -> bool {
        self.appended_records > 0
    }

    /// Submits everything appended this turn as ONE durable write, submitted at `now`. Called
    /// once per loop turn.
    ///
    /// # Errors
    ///
    /// The WAL's error: the WAL is poisoned.
    pub(crate) fn submit(&mut self, wal: &mut Wal, now: Instant) -> kommander_wal::Result<()> {
        if self.appended_records == 0 {
            return Ok(());
        }
        self.metrics
            .wal_submitted(self.appended_records, self.appended_bytes);
        self.appended_records = 0;
        self.appended_bytes = 0;
        wal.submit()?;
        self.submitted.push_back((wal.next_lsn(), now));
        Ok(())
    }

    /// The LSN the oldest waiting Ready needs durable, if any waits.
    pub(crate) fn oldest_waiting(&self) -> Option<Lsn> {
        self.pending.front().map(|p| p.lsn)
    }

    /// Polls the WAL without blocking at `now` and [acknowledges](WalScheduler::acknowledge)
    /// what it reports durable. Returns whether any Ready became durable.
    ///
    /// # Errors
    ///
    /// The WAL's error: the WAL is poisoned.
    pub(crate) fn poll_durable(
        &mut self,
        wal: &mut Wal,
        outbox: &mut Outbox,
        now: Instant,
        persisted: impl FnMut(PartitionId, u64) -> bool,
    ) -> kommander_wal::Result<bool> {
        // The WAL's own writes (the rewrite of records pinning its oldest segment) are polled
        // too: a restore may wait for one.
        let wal_idle = wal.durable_lsn() >= wal.next_lsn();
        if self.pending.is_empty() && self.submitted.is_empty() && wal_idle {
            return Ok(false);
        }
        let durable = wal.poll_durable()?;
        Ok(self.acknowledge(durable, outbox, now, persisted))
    }

    /// Takes every record below `durable` as durable at `now`: each queued Ready it covers,
    /// oldest first, goes to `persisted` (partition, ready number), which answers whether the
    /// partition is still hosted; if it is, the Ready's gated messages are released to
    /// `outbox`. Returns whether any Ready became durable. Only the WAL's own durable LSN may
    /// be passed here (the `DurableWithoutFsync` bug of feature `sim-bugs` passes another).
    pub(crate) fn acknowledge(
        &mut self,
        durable: Lsn,
        outbox: &mut Outbox,
        now: Instant,
        mut persisted: impl FnMut(PartitionId, u64) -> bool,
    ) -> bool {
        while let Some(&(lsn, at)) = self.submitted.front()
            && lsn <= durable
        {
            let latency = now.saturating_duration_since(at);
            self.metrics.wal_durable(latency);
            if !self.slow_write.is_zero() && latency > self.slow_write {
                tracing::warn!(
                    shard = self.shard,
                    latency_ms = latency.as_millis() as u64,
                    threshold_ms = self.slow_write.as_millis() as u64,
                    "slow WAL write: durable {latency:?} after its submission"
                );
            }
            self.submitted.pop_front();
        }
        let mut worked = false;
        while self.pending.front().is_some_and(|p| p.lsn <= durable) {
            let Some(done) = self.pending.pop_front() else {
                break;
            };
            worked = true;
            if !persisted(done.partition, done.number) {
                continue;
            }
            if let Ok(mut messages) = done.gated.release(done.number) {
                for message in messages.drain(..) {
                    outbox.push(message);
                }
                if messages.capacity() > 0 && self.spare_gated.len() < SPARE_GATED_MAX {
                    self.spare_gated.push(messages);
                }
            }
        }
        worked
    }

    /// Forgets every waiting Ready (the shard failed: nothing gated may leave).
    pub(crate) fn clear(&mut self) {
        self.pending.clear();
        self.submitted.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::log_capture::logged_by;

    /// What `scheduler` logs when a write submitted at `at` is acknowledged at `now`.
    fn logged(mut scheduler: WalScheduler, at: Instant, now: Instant) -> String {
        scheduler.submitted.push_back((Lsn(1), at));
        let text = logged_by(|| {
            scheduler.acknowledge(Lsn(1), &mut Outbox::default(), now, |_, _| true);
        });
        assert!(scheduler.submitted.is_empty(), "the write is durable");
        text
    }

    #[test]
    fn a_write_slower_than_the_threshold_is_logged_as_a_warning() {
        let at = Instant::now();
        let slow = Duration::from_millis(25);
        let scheduler = || WalScheduler::new(3, ShardMetrics::new(3), slow, 0);
        let text = logged(scheduler(), at, at + Duration::from_millis(40));
        assert!(
            text.contains("WARN")
                && text.contains("slow WAL write")
                && text.contains("shard=3")
                && text.contains("latency_ms=40"),
            "{text}"
        );
        assert_eq!(
            logged(scheduler(), at, at + slow),
            "",
            "at the threshold: quiet"
        );
        let off = WalScheduler::new(3, ShardMetrics::new(3), Duration::ZERO, 0);
        assert_eq!(logged(off, at, at + Duration::from_secs(9)), "", "0: never");
    }
}
