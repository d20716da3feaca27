//! Writes (Kommander's `ReplicateLogs`, `ReplicateCheckpoint`, `CommitLogs`, `RollbackLogs`):
//! each is one request to the partition's shard, answered once its outcome is known, waited
//! for at most the caller's timeout or `proposal_timeout_ms` (Kommander's `ProposalTimeout`).
//! A checkpoint refused while a two-phase proposal is unresolved is asked again after a
//! back-off, as Kommander retries it.

use std::future::Future;
use std::num::NonZeroU64;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::clock::HlcTimestamp;
use crate::core::{LogIndex, PartitionId, Status, Ticket};
use crate::node::error::{InvalidWrite, ReplicateError};
use crate::node::system::SYSTEM_LOG_TYPE;
use crate::shard::codec::ENTRY_HEADER_LEN;
use crate::shard::partitions::marks::is_reserved_log_type;
use crate::shard::{ProposedEntry, Reply, Request};

use super::Raft;
use super::refusal::{SHARD_GONE, WriteKind};
use super::timer::{Elapsed, TimerError, race};

/// A write whose outcome is known: a quorum holds it (Kommander's successful
/// `RaftReplicationResult`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Written {
    /// The write's ticket: pass it to [`Raft::commit_logs`] / [`Raft::rollback_logs`] for a
    /// two-phase proposal. Drawn from this node's clock ([`Raft::hlc`]) when the write was
    /// asked; the partition keys it by `(physical_ms, logical)` (the node is not part of the
    /// key): successive leaders of a partition draw different tickets because every frame
    /// merges the sender's clock into the receiver's (decision 0005 §10 has the argument and
    /// its limits).
    pub ticket: HlcTimestamp,
    /// The last log index of the write.
    pub log_index: LogIndex,
}

/// Options of [`Raft::replicate_logs`] and [`Raft::replicate_batch`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplicateOptions {
    /// Deliver the entries once committed (`true`, the default), or hold them until
    /// [`Raft::commit_logs`] / [`Raft::rollback_logs`] with the returned ticket.
    pub auto_commit: bool,
    /// The generation of the partition's range the caller routed with (0, the default: none).
    /// When non-zero, the write is refused with [`ReplicateError::PartitionMoved`], and
    /// nothing is written, unless the partition's range in this node's committed map has that
    /// generation when the partition's shard proposes the write (Kommander's
    /// `expectedGeneration`, checked where Kommander checks it: on the thread that proposes,
    /// so a map change that commits while the write waits for its shard is seen). With or
    /// without it, a partition the map removed takes no write.
    pub expected_generation: u64,
    /// How long to wait for the outcome (`None`: the node's `proposal_timeout_ms`, 10 s by
    /// default, as Kommander's `ProposalTimeout`; `Some(Duration::MAX)`: until it is known).
    /// Running out is [`ReplicateError::Timeout`]; the write may still commit.
    pub timeout: Option<Duration>,
}

impl Default for ReplicateOptions {
    fn default() -> Self {
        Self {
            auto_commit: true,
            expected_generation: 0,
            timeout: None,
        }
    }
}

impl Raft {
    /// Replicates one entry of type `log_type` on `partition` (this node must lead it).
    /// Completes once the outcome is known: a quorum holds the entry (and, with
    /// `auto_commit`, it is delivered to the application on every node in log order); waits
    /// at most `options.timeout`, by default the node's `proposal_timeout_ms` (10 s, as
    /// Kommander's `ProposalTimeout`).
    /// An empty `log_type` and an empty payload are valid (Kommander's `LogType` and
    /// `LogData` may be null): the entry is delivered with them empty.
    ///
    /// # Errors
    ///
    /// Retryable: [`ReplicateError::NotLeader`] (names the leader to retry on),
    /// [`ReplicateError::QueueFull`] (shard queue, uncommitted entries or bytes, timers),
    /// [`ReplicateError::RestoreInProgress`], [`ReplicateError::PartitionMoved`] (not open
    /// here, removed by the partition map, or `expected_generation` is not the range's
    /// generation in this node's committed map), and the indeterminate
    /// [`ReplicateError::LeadershipLost`] and [`ReplicateError::Timeout`] (the entry may still
    /// commit). Rejected: [`ReplicateError::Invalid`] (reserved or oversize `log_type`,
    /// oversize payload). Fatal: [`ReplicateError::Fatal`].
    pub fn replicate_logs<P: Into<Bytes>>(
        &self,
        partition: PartitionId,
        log_type: &str,
        payload: P,
        options: ReplicateOptions,
    ) -> impl Future<Output = Result<Written, ReplicateError>> + Send + 'static + use<P> {
        let payload = payload.into();
        self.propose(partition, log_type, std::slice::from_ref(&payload), options)
    }

    /// Replicates several entries as one proposal: one ticket, contiguous indexes; the result
    /// carries the last index.
    ///
    /// # Errors
    ///
    /// As [`Raft::replicate_logs`]; also [`InvalidWrite::Empty`] and
    /// [`InvalidWrite::TooManyEntries`].
    pub fn replicate_batch(
        &self,
        partition: PartitionId,
        log_type: &str,
        payloads: Vec<Bytes>,
        options: ReplicateOptions,
    ) -> impl Future<Output = Result<Written, ReplicateError>> + Send + 'static + use<> {
        self.propose(partition, log_type, &payloads, options)
    }

    /// One proposal of `payloads` (encoded now: the future holds no borrow of them).
    fn propose(
        &self,
        partition: PartitionId,
        log_type: &str,
        payloads: &[Bytes],
        options: ReplicateOptions,
    ) -> impl Future<Output = Result<Written, ReplicateError>> + Send + 'static + use<> {
        let ticket = self.inner.hlc.now();
        let checked = self.check_write(log_type, payloads);
        let count = payloads.len();
        let auto_commit = options.auto_commit;
        let expected_generation = NonZeroU64::new(options.expected_generation);
        let timeout = self.proposal_timeout(options.timeout);
        let make = checked.map(move |()| {
            // Encoded here, on the caller's thread: the shard stores the envelopes as they are.
            let entries = payloads
                .iter()
                .map(|payload| ProposedEntry::new(log_type, payload))
                .collect();
            move |ticket, reply| {
                let propose = Request::Propose {
                    entries,
                    auto_commit,
                    ticket,
                    reply,
                };
                // The shard judges the generation when it proposes (decision 0006 point 4).
                match expected_generation {
                    Some(expected_generation) => Request::Fenced {
                        expected_generation,
                        request: Box::new(propose),
                    },
                    None => propose,
                }
            }
        });
        self.write(
            partition,
            ticket,
            (WriteKind::Propose, count),
            timeout,
            make,
        )
    }

    /// Replicates a checkpoint on `partition`: once committed and applied, the log below it
    /// may be compacted (the application must hold that state durably itself).
    ///
    /// While a two-phase proposal is unresolved the leader refuses a checkpoint; as Kommander
    /// does, the call then asks again, after `checkpoint_retry_backoff_ms` doubling up to
    /// `checkpoint_retry_backoff_ms_max`, at most `checkpoint_retries_max` times, all within
    /// `proposal_timeout_ms` (Kommander retries every 10 ms until its caller cancels: here
    /// both bounds are configuration).
    ///
    /// # Errors
    ///
    /// [`ReplicateError::ActiveProposal`] when a two-phase proposal is still unresolved after
    /// the retries, or when the next retry would come after `proposal_timeout_ms` (resolve
    /// it, then retry); [`ReplicateError::Timeout`] when the checkpoint was accepted but its
    /// outcome is not known within `proposal_timeout_ms` (retries included); otherwise as
    /// [`Raft::replicate_logs`].
    pub fn replicate_checkpoint(
        &self,
        partition: PartitionId,
    ) -> impl Future<Output = Result<Written, ReplicateError>> + Send + 'static + use<> {
        let ticket = self.inner.hlc.now();
        let config = &self.inner.config;
        let limit = self.proposal_timeout(None);
        let mut backoff = Duration::from_millis(config.checkpoint_retry_backoff_ms);
        let backoff_max = Duration::from_millis(config.checkpoint_retry_backoff_ms_max);
        let mut retries = config.checkpoint_retries_max;
        let started = Instant::now();
        // The first attempt reaches the shard now (calls made in order arrive in order).
        let first = self.checkpoint_attempt(partition, ticket, limit);
        let this = self.clone();
        async move {
            let mut attempt = first;
            loop {
                match attempt.await {
                    Err(ReplicateError::ActiveProposal) if retries > 0 => {}
                    outcome => return outcome,
                }
                retries -= 1;
                if started.elapsed().saturating_add(backoff) >= limit {
                    // The next attempt would come after the call's deadline: the last answer
                    // stands (nothing was written, so it is definite, unlike a timeout).
                    return Err(ReplicateError::ActiveProposal);
                }
                this.back_off(backoff).await?;
                backoff = backoff.saturating_mul(2).min(backoff_max);
                let left = limit.saturating_sub(started.elapsed());
                attempt = this.checkpoint_attempt(partition, ticket, left);
            }
        }
    }

    /// One attempt of [`Raft::replicate_checkpoint`], its outcome awaited at most `timeout`.
    fn checkpoint_attempt(
        &self,
        partition: PartitionId,
        ticket: HlcTimestamp,
        timeout: Duration,
    ) -> impl Future<Output = Result<Written, ReplicateError>> + Send + 'static + use<> {
        self.write(
            partition,
            ticket,
            (WriteKind::Checkpoint, 1),
            timeout,
            Ok(|ticket, reply| Request::Checkpoint { ticket, reply }),
        )
    }

    /// Waits `delay` on the node's timer (a retry's back-off).
    async fn back_off(&self, delay: Duration) -> Result<(), ReplicateError> {
        match self.inner.timer.deadline(Some(delay)) {
            Ok(Some(deadline)) => {
                deadline.await;
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(TimerError::Full) => Err(ReplicateError::QueueFull),
            Err(TimerError::Stopped) => Err(ReplicateError::Fatal(self.inner.stopped_error())),
        }
    }

    /// Commits the held entries of the two-phase proposal `ticket` (proposed with
    /// `auto_commit: false`): they are delivered once the commit marker is committed. Waits
    /// for that at most `proposal_timeout_ms` (10 s, Kommander's bound).
    ///
    /// Idempotent, as Kommander's `CommitLogs`: committing again answers `Ok` with the first
    /// commit's index, also after delivery (a client retrying after a lost answer is told its
    /// proposal committed), as long as the resolution is among the partition's newest
    /// `resolved_tickets_max` (128) delivered resolutions. Beyond that bound the leader has
    /// forgotten it and answers [`ReplicateError::ProposalNotFound`] (Kommander's window is
    /// its leader's registry of proposals, pruned once settled and cleared with leadership;
    /// see `docs/decisions/0005-iraft-parity.md`).
    ///
    /// # Errors
    ///
    /// [`ReplicateError::ProposalNotFound`] (unknown ticket, or resolved and delivered longer
    /// ago than that bound); [`ReplicateError::TicketConflict`] (the ticket was rolled back);
    /// otherwise as [`Raft::replicate_logs`].
    pub fn commit_logs(
        &self,
        partition: PartitionId,
        ticket: HlcTimestamp,
    ) -> impl Future<Output = Result<Written, ReplicateError>> + Send + 'static + use<> {
        self.write(
            partition,
            ticket,
            (WriteKind::Commit, 1),
            self.proposal_timeout(None),
            Ok(|ticket, reply| Request::Commit { ticket, reply }),
        )
    }

    /// Rolls back the two-phase proposal `ticket`: its entries are never delivered. Idempotent
    /// within the same bound as [`Raft::commit_logs`] (a rollback asked again answers `Ok`
    /// with the first rollback's index).
    ///
    /// # Errors
    ///
    /// As [`Raft::commit_logs`] ([`ReplicateError::TicketConflict`] when it was committed).
    pub fn rollback_logs(
        &self,
        partition: PartitionId,
        ticket: HlcTimestamp,
    ) -> impl Future<Output = Result<Written, ReplicateError>> + Send + 'static + use<> {
        self.write(
            partition,
            ticket,
            (WriteKind::Rollback, 1),
            self.proposal_timeout(None),
            Ok(|ticket, reply| Request::Rollback { ticket, reply }),
        )
    }

    /// What makes a write invalid before it reaches its shard.
    fn check_write(&self, log_type: &str, payloads: &[Bytes]) -> Result<(), ReplicateError> {
        let config = &self.inner.config;
        if log_type == SYSTEM_LOG_TYPE || is_reserved_log_type(log_type.as_bytes()) {
            return Err(InvalidWrite::ReservedLogType.into());
        }
        if log_type.len() > config.log_type_bytes_max {
            return Err(InvalidWrite::LogTypeTooLong {
                bytes: log_type.len(),
                max: config.log_type_bytes_max,
            }
            .into());
        }
        if payloads.is_empty() {
            return Err(InvalidWrite::Empty.into());
        }
        if payloads.len() > config.proposal_entries_max {
            return Err(InvalidWrite::TooManyEntries {
                entries: payloads.len(),
                max: config.proposal_entries_max,
            }
            .into());
        }
        // The entry's WAL record: header, envelope length, log type, payload.
        let max = config
            .wal_record_bytes_max
            .saturating_sub(ENTRY_HEADER_LEN + 2);
        if let Some(bytes) = payloads
            .iter()
            .map(|p| log_type.len() + p.len())
            .find(|&bytes| bytes > max)
        {
            return Err(InvalidWrite::EntryTooLarge { bytes, max }.into());
        }
        Ok(())
    }

    /// The caller's `timeout` of a write, or the node's `proposal_timeout_ms`.
    pub(super) fn proposal_timeout(&self, timeout: Option<Duration>) -> Duration {
        timeout.unwrap_or(Duration::from_millis(self.inner.config.proposal_timeout_ms))
    }

    /// Sends one write of `entries` entries to `partition`'s shard and awaits its outcome (at
    /// most `timeout`), or answers `make`'s error (a write refused before it reaches its shard)
    /// from the same future. Records the proposal once the shard queued it, and the commit with
    /// its latency from this call.
    fn write<F>(
        &self,
        partition: PartitionId,
        ticket: HlcTimestamp,
        (write, entries): (WriteKind, usize),
        timeout: Duration,
        make: Result<F, ReplicateError>,
    ) -> impl Future<Output = Result<Written, ReplicateError>> + Send + 'static + use<F>
    where
        F: FnOnce(Ticket, Reply<crate::shard::ReplicationResult>) -> Request,
    {
        let started = Instant::now();
        let entries = u64::try_from(entries).unwrap_or(u64::MAX);
        let this = self.clone();
        // The deadline first: a full timer table refuses the write before it is proposed.
        let sent =
            make.and_then(
                |make| match self.inner.timer.deadline_from(started, Some(timeout)) {
                    Ok(deadline) => {
                        let (reply, answer) = oneshot::channel();
                        self.inner
                            .shards
                            .send(partition, make(Ticket(ticket.packed()), reply))
                            .map(|()| {
                                self.inner.shards.metrics(partition).proposed(entries);
                                (deadline, answer)
                            })
                            .map_err(|refusal| {
                                this.replicate_error(refusal, partition, ticket, write)
                            })
                    }
                    Err(TimerError::Full) => Err(ReplicateError::QueueFull),
                    Err(TimerError::Stopped) => {
                        Err(ReplicateError::Fatal(self.inner.stopped_error()))
                    }
                },
            );
        async move {
            let (deadline, answer) = sent?;
            let answer = race(deadline, answer)
                .await
                .map_err(|Elapsed| ReplicateError::Timeout { ticket })?
                .unwrap_or(Err(SHARD_GONE));
            match answer {
                Ok(outcome) if outcome.status == Status::Success => {
                    let metrics = this.inner.shards.metrics(partition);
                    metrics.committed(entries, started.elapsed());
                    Ok(Written {
                        ticket,
                        log_index: outcome.index,
                    })
                }
                // The only other outcome: leadership was lost before the write committed.
                Ok(_) => Err(ReplicateError::LeadershipLost { ticket }),
                Err(refusal) => Err(this.replicate_error(refusal, partition, ticket, write)),
            }
        }
    }
}
