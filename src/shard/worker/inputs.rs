//! The turn's inputs: the callers' commands and the peers' messages, each partition's Ready
//! gathered as soon as its last input of the turn (or of a peer's batch) is in.
//!
//! At thousands of active partitions every partition's state passes out of the cache between
//! two visits of it, so a visit to step an input and another at the end of the turn to gather
//! its Ready each missed it (issue 15: the 4096-partition row pays for its cache misses). A
//! peer's batch holds each partition's messages in one run, and the turn's requests are
//! carried out grouped by partition ([`RequestRuns`]); after each run the partition's Ready is
//! gathered at once (`Worker::gather`), while its state is still in the cache. Batching is
//! kept: a run holds every request the turn drained for its partition, and every Ready
//! gathered this way waits for the turn's one WAL write as any other
//! (`Worker::gather_readies`).

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::ready::Take;
use super::{ShardInput, Worker};
use crate::core::{Message, PartitionId};
use crate::shard::Request;

/// The requests drained in one turn, to carry out grouped by partition, each partition's in
/// the order they came. Both vectors keep their capacity (at most the turn's input budget,
/// `shard_inputs_per_turn_max`).
#[derive(Debug, Default)]
pub(super) struct RequestRuns {
    /// In the order they came; taken out as they are carried out.
    requests: Vec<Option<Request>>,
    /// The partition in the high half, the position in `requests` in the low half: sorted
    /// as plain integers (cheaper than pairs), each partition's run in arrival order.
    order: Vec<u64>,
}

impl RequestRuns {
    fn push(&mut self, partition: PartitionId, request: Request) {
        let position = self.requests.len() as u64;
        self.order.push(u64::from(partition.0) << 32 | position);
        self.requests.push(Some(request));
    }

    /// The partition and the position in `requests` of the `at`th request in order.
    fn get(&self, at: usize) -> Option<(PartitionId, usize)> {
        let key = *self.order.get(at)?;
        Some((
            PartitionId((key >> 32) as u32),
            (key & u64::from(u32::MAX)) as usize,
        ))
    }
}

impl Worker {
    /// Drains the turn's inputs (at most `shard_inputs_per_turn_max` commands and as many
    /// batches of peers' messages): opens partitions at once, steps the peers' messages
    /// (each batch's runs gathered as they end), then carries out the requests by partition
    /// (each run gathered as it ends). Returns whether there was any input.
    pub(super) fn drain_inputs(&mut self, now: Instant) -> bool {
        let budget = self.config.shard_inputs_per_turn_max;
        let mut worked = false;
        let mut runs = std::mem::take(&mut self.requests);
        // A request's position in the turn fits the low half of its sort key.
        for _ in 0..budget.min(u32::MAX as usize) {
            let Ok(input) = self.commands.try_recv() else {
                break;
            };
            worked = true;
            match input {
                ShardInput::Request { partition, request } => runs.push(partition, request),
                ShardInput::Open {
                    partition,
                    voters,
                    learners,
                    reply,
                } => self.open(partition, voters, learners, reply),
                ShardInput::Wake => {}
            }
        }
        for _ in 0..budget {
            let Ok(batch) = self.inbound.try_recv() else {
                break;
            };
            worked = true;
            let mut batch = batch.into_iter().peekable();
            while let Some(message) = batch.next() {
                let last_of_run = batch
                    .peek()
                    .is_none_or(|next| next.partition != message.partition);
                self.step(message, last_of_run.then_some(now));
            }
        }
        // After the messages: a leader's Ready of the new entries then carries the commit
        // index its followers' answers just advanced.
        self.execute_runs(&mut runs, now);
        self.requests = runs;
        worked
    }

    /// Carries out the turn's requests, partition by partition, and gathers each partition
    /// touched as its run ends.
    fn execute_runs(&mut self, runs: &mut RequestRuns, now: Instant) {
        // Positions are unique: the unstable sort keeps each partition's arrival order.
        runs.order.sort_unstable();
        let mut next = 0;
        while let Some((partition, _)) = runs.get(next) {
            let listed = self.partitions.touched_len();
            while let Some((run_partition, position)) = runs.get(next)
                && run_partition == partition
            {
                next += 1;
                let taken = runs.requests.get_mut(position).and_then(Option::take);
                if let Some(request) = taken {
                    self.execute(partition, request);
                }
            }
            self.gather(partition, Take::Listed, false, now);
            self.partitions.unlist_gathered(listed);
        }
        runs.order.clear();
        runs.requests.clear();
    }

    /// Steps `message` into its partition's replica. With `gather_at`, the last message of a
    /// run for one partition in a batch, the partition's Ready is gathered at once; otherwise
    /// it is listed for the turn's gathering.
    fn step(&mut self, message: Message, gather_at: Option<Instant>) {
        let partition = message.partition;
        // Any message from a node is a sign of its life for the quiesced followers it leads.
        self.partitions.quiesced.heard(message.from);
        let failed = self.failed();
        let accepted = match self.partitions.touch(partition) {
            Some(touched) if !failed && !touched.slot.held() && message.to == self.node => {
                match touched.slot.replica.as_mut() {
                    Some(replica) => {
                        if replica.step(message).is_err() {
                            self.stats
                                .inbound_messages_refused
                                .fetch_add(1, Ordering::Relaxed);
                        }
                        if gather_at.is_none() {
                            touched.list();
                        }
                        true
                    }
                    None => false,
                }
            }
            _ => false,
        };
        if !accepted {
            self.stats
                .inbound_messages_dropped
                .fetch_add(1, Ordering::Relaxed);
        } else if let Some(now) = gather_at {
            self.gather(partition, Take::AtOnce, false, now);
        }
    }
}
