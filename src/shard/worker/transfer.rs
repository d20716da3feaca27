//! Snapshot transfer in the loop: a leader starts a transfer for each follower its replica
//! reports below the compaction floor (`Ready::snapshot_required`), exports the application's
//! state at its applied index and streams it; a follower imports the chunks its replica hands
//! over (`Ready::snapshot_messages`) and, once the import finished, installs the snapshot in
//! its replica, whose next Ready writes the WAL's boundary record and, once that is durable,
//! sends the final acknowledgement. The application's reads and writes run on the pump
//! (`snapshot/pump.rs`); their results come back here at the start of a turn.
//!
//! A follower receives at most `snapshot.sessions_max` transfers at once: a first chunk
//! beyond them is answered `Busy` and its leader noted; the transfer waits on the leader, no
//! failure counted, until a session ends here and the follower tells the longest waiting
//! leader `Free` (one per session ended), or, if that notice is lost, for
//! `snapshot.ack_timeout_ticks`.
//!
//! A partition is held while its import finishes (nothing is stepped, ticked, gathered or
//! delivered), so the replica is exactly as the import found it when the snapshot is
//! installed; an import whose index the application has already passed is not finished.

use std::io;

use super::Worker;
use crate::core::{
    Floor, LogIndex, Message, MessageBody, NodeId, PartitionId, Role, SnapshotChunk,
    SnapshotOutcome, SoftState,
};
use crate::shard::partitions::marks::LogMarks;
use crate::shard::snapshot::chunks::{Chunk, ChunkSource};
use crate::shard::snapshot::pump::{Done, Job, JobDone, TransferKey, Work};
use crate::shard::snapshot::receiver::{Arrival, Incoming};
use crate::shard::snapshot::sender::{Outgoing, Sending};
use crate::shard::state_transfer::SnapshotPoint;
use crate::shard::{RaftEvent, ReplicationErrorReason};

impl Worker {
    /// The replica of `partition` reported `followers` below its compaction floor.
    pub(super) fn start_transfers(&mut self, partition: PartitionId, followers: Vec<NodeId>) {
        for follower in followers {
            self.start_transfer(partition, follower);
        }
    }

    fn start_transfer(&mut self, partition: PartitionId, follower: NodeId) {
        if !self
            .transfer
            .as_ref()
            .is_some_and(|t| t.supports(partition))
        {
            self.events.emit(RaftEvent::ReplicationError {
                partition,
                index: LogIndex::ZERO,
                entry: None,
                reason: ReplicationErrorReason::SnapshotUnsupported(follower),
            });
            return;
        }
        let backoff = match self.transfers.sending.get(&(partition, follower)) {
            Some(Sending::BackingOff {
                ticks_left: 0,
                backoff,
            }) => *backoff,
            Some(_) => return,
            None => self.config.core.heartbeat_interval_ticks.max(1),
        };
        if self.transfers.active_sends() >= self.config.snapshot.transfers_max {
            self.transfers.queue(partition, follower, backoff);
            return;
        }
        self.open_transfer(partition, follower, backoff);
    }

    /// Starts the transfers that wait for a free one, longest waiting first, while fewer than
    /// `snapshot.transfers_max` are sent; one whose follower no longer needs it (the replica
    /// reports no snapshot required for it any more) is dropped. Returns whether any started.
    pub(super) fn start_queued_transfers(&mut self) -> bool {
        let mut started = false;
        while self.transfers.any_queued()
            && self.transfers.active_sends() < self.config.snapshot.transfers_max
        {
            let Some(((partition, follower), backoff)) = self.transfers.take_queued() else {
                break;
            };
            let replica = self.partitions.replica(partition);
            if replica.is_some_and(|replica| replica.awaits_snapshot(follower)) {
                self.open_transfer(partition, follower, backoff);
                started = true;
            }
        }
        started
    }

    /// Exports the leader's state at its applied index and starts streaming it to `follower`
    /// (a failure to export backs off `backoff` ticks). The application's transfer supports
    /// the partition (`start_transfer` checked).
    fn open_transfer(&mut self, partition: PartitionId, follower: NodeId, backoff: u32) {
        let (Some(transfer), Some(replica)) = (
            self.transfer.clone(),
            self.partitions.replica(partition).filter(|r| r.is_leader()),
        ) else {
            return;
        };
        let term = replica.term();
        let index = replica.applied_index();
        let (Some(index_term), Some(configuration)) =
            (replica.term_at(index), replica.configuration_at(index))
        else {
            self.back_off(partition, follower, backoff);
            return;
        };
        let floor = Floor {
            index,
            term: index_term,
            configuration: configuration.clone(),
        };
        let marks = self
            .partitions
            .get(partition)
            .map(|slot| slot.view.marks_at(index).snapshot_bytes())
            .unwrap_or_default();
        match transfer.export(partition, SnapshotPoint::of(&floor)) {
            Ok(export) => {
                let session = self.transfers.session_id(term);
                let source = ChunkSource::new(export);
                let outgoing = Outgoing::new(session, term, floor, marks, source, backoff);
                self.transfers
                    .sending
                    .insert((partition, follower), Sending::Active(Box::new(outgoing)));
                self.metrics
                    .snapshot_transfers(self.transfers.active_sends());
                self.read_next_chunk(partition, follower);
            }
            Err(error) => {
                tracing::warn!(%partition, %follower, %error, "snapshot export failed");
                self.back_off(partition, follower, backoff);
            }
        }
    }

    /// The transfer to `follower` waits `backoff` ticks before the follower is probed again;
    /// the next failure waits twice as long, up to `snapshot.backoff_max_ticks`.
    fn back_off(&mut self, partition: PartitionId, follower: NodeId, backoff: u32) {
        self.metrics.snapshot_failed();
        let next = backoff
            .saturating_mul(2)
            .min(self.config.snapshot.backoff_max_ticks);
        self.wait_to_send(partition, follower, backoff, next);
    }

    /// The transfer to `follower` waits `ticks` before the follower is probed again; its next
    /// failure backs off `backoff` ticks.
    fn wait_to_send(&mut self, partition: PartitionId, follower: NodeId, ticks: u32, backoff: u32) {
        self.transfers.sending.insert(
            (partition, follower),
            Sending::BackingOff {
                ticks_left: ticks,
                backoff,
            },
        );
        self.metrics
            .snapshot_transfers(self.transfers.active_sends());
    }

    fn fail_send(&mut self, partition: PartitionId, follower: NodeId, reason: &str) {
        if let Some(Sending::Active(outgoing)) =
            self.transfers.sending.remove(&(partition, follower))
        {
            tracing::warn!(%partition, %follower, session = outgoing.session, reason, "snapshot transfer failed; retrying after a back-off");
            self.back_off(partition, follower, outgoing.backoff);
        }
    }

    /// Submits the read of the transfer's next chunk when its window has room and the rate
    /// cap allows (a transfer the cap holds back is resumed by the next tick).
    fn read_next_chunk(&mut self, partition: PartitionId, follower: NodeId) {
        let snapshot = &self.config.snapshot;
        let (chunk_bytes, window) = (snapshot.chunk_bytes, snapshot.chunks_in_flight_max);
        let transfers = &mut self.transfers;
        let Some(Sending::Active(outgoing)) = transfers.sending.get_mut(&(partition, follower))
        else {
            return;
        };
        if !outgoing.can_send(window)
            || !transfers
                .budget
                .take(snapshot.bytes_per_sec_max, chunk_bytes)
        {
            return;
        }
        let Some(source) = outgoing.take_source() else {
            return;
        };
        let key = TransferKey {
            partition,
            peer: follower,
            session: outgoing.session,
        };
        let job = Job {
            key,
            work: Work::Read(source, chunk_bytes),
        };
        if self.transfers.pump.submit(job).is_err() {
            self.fail_send(partition, follower, "the transfer queue is full");
        }
    }

    /// The transfer `key` names, if it is still the one sent to its follower.
    fn outgoing(&mut self, key: TransferKey) -> Option<&mut Outgoing> {
        match self.transfers.sending.get_mut(&(key.partition, key.peer)) {
            Some(Sending::Active(outgoing)) if outgoing.session == key.session => Some(outgoing),
            _ => None,
        }
    }

    fn chunk_read(&mut self, key: TransferKey, source: ChunkSource, read: io::Result<Chunk>) {
        let Some(outgoing) = self.outgoing(key) else {
            return;
        };
        let term = outgoing.term;
        match read {
            Ok(chunk) => {
                let body = outgoing.chunk(source, chunk);
                if let MessageBody::SnapshotChunk(chunk) = &body {
                    self.metrics.snapshot_bytes_sent(chunk.data.len());
                }
                self.outbox.push(Message {
                    partition: key.partition,
                    from: self.node,
                    to: key.peer,
                    term,
                    body,
                });
                self.read_next_chunk(key.partition, key.peer);
            }
            Err(error) => {
                let reason = format!("reading the snapshot: {error}");
                self.fail_send(key.partition, key.peer, &reason);
            }
        }
    }

    /// A follower's acknowledgement reached the leader.
    fn acknowledged(
        &mut self,
        partition: PartitionId,
        follower: NodeId,
        (session, seq, outcome): (u64, u32, SnapshotOutcome),
    ) {
        if outcome == SnapshotOutcome::Free {
            self.room_at(partition, follower);
            return;
        }
        let key = TransferKey {
            partition,
            peer: follower,
            session,
        };
        let Some(outgoing) = self.outgoing(key) else {
            return;
        };
        match outcome {
            SnapshotOutcome::Received => {
                outgoing.acknowledged(seq);
                self.read_next_chunk(partition, follower);
            }
            SnapshotOutcome::Installed => {
                let (index, bytes) = (outgoing.floor.index, outgoing.bytes);
                self.transfers.sending.remove(&(partition, follower));
                self.metrics
                    .snapshot_transfers(self.transfers.active_sends());
                if let Some(replica) = self.partitions.replica_mut(partition) {
                    replica.report_snapshot_installed(follower, index);
                }
                self.partitions.mark_dirty(partition);
                self.events.emit(RaftEvent::SnapshotSent {
                    partition,
                    follower,
                    index,
                    bytes,
                });
            }
            SnapshotOutcome::Refused => {
                self.fail_send(partition, follower, "the follower refused a chunk");
            }
            SnapshotOutcome::Busy => self.wait_for_room(partition, follower),
            // Answered above.
            SnapshotOutcome::Free => {}
        }
    }

    /// The follower answered `Busy`: the transfer waits, with its back-off unchanged and no
    /// failure counted, for the follower's `Free` or, if that is lost,
    /// `snapshot.ack_timeout_ticks`. Its place among the `transfers_max` sent is free.
    fn wait_for_room(&mut self, partition: PartitionId, follower: NodeId) {
        if let Some(Sending::Active(outgoing)) =
            self.transfers.sending.remove(&(partition, follower))
        {
            tracing::debug!(%partition, %follower, session = outgoing.session, "snapshot transfer: the follower is busy; waiting for room");
            let ticks = self.config.snapshot.ack_timeout_ticks.max(1);
            self.wait_to_send(partition, follower, ticks, outgoing.backoff);
        }
    }

    /// The follower told `Free`: a transfer to it waiting (after `Busy` or a failure) is
    /// asked for again at once.
    fn room_at(&mut self, partition: PartitionId, follower: NodeId) {
        if let Some(Sending::BackingOff { ticks_left, .. }) =
            self.transfers.sending.get_mut(&(partition, follower))
            && *ticks_left > 0
        {
            *ticks_left = 0;
            self.probe(partition, follower);
        }
    }

    /// A transfer's wait is over: the replica is asked to report the follower again, whose
    /// snapshot the next Ready requires (`start_transfer` then takes the wait's back-off).
    fn probe(&mut self, partition: PartitionId, follower: NodeId) {
        if let Some(replica) = self.partitions.replica_mut(partition) {
            replica.report_snapshot_failure(follower);
        }
        self.partitions.mark_dirty(partition);
    }

    // ----- receiving -----

    /// Snapshot messages the replica of `partition` handed over: chunks on a follower,
    /// acknowledgements on a leader.
    pub(super) fn snapshot_messages(&mut self, partition: PartitionId, messages: Vec<Message>) {
        for message in messages {
            match message.body {
                MessageBody::SnapshotAck {
                    session,
                    seq,
                    outcome,
                } => self.acknowledged(partition, message.from, (session, seq, outcome)),
                MessageBody::SnapshotChunk { .. } => self.chunk_arrived(partition, message),
                _ => {}
            }
        }
    }

    fn chunk_arrived(&mut self, partition: PartitionId, message: Message) {
        let MessageBody::SnapshotChunk(chunk) = message.body else {
            return;
        };
        let SnapshotChunk {
            session,
            seq,
            last_index,
            last_term,
            configuration,
            crc,
            digest,
            marks,
            data,
        } = *chunk;
        let leader = message.from;
        let limits = (
            self.config.snapshot.chunks_in_flight_max,
            self.config.snapshot.session_bytes_max,
        );
        let ack = |outcome| (leader, session, seq, outcome);
        let len = data.len();
        let current = self.transfers.receiving.get_mut(&partition);
        if let Some(incoming) = current.filter(|i| i.leader == leader && i.session == session) {
            match incoming.arrive(seq, crc, digest, data, limits) {
                Arrival::Queued => {
                    self.metrics.snapshot_bytes_received(len);
                    self.write_next_chunk(partition);
                }
                Arrival::Duplicate { written: true } => {
                    self.send_ack(partition, ack(SnapshotOutcome::Received));
                }
                Arrival::Duplicate { written: false } => {}
                Arrival::Refused(reason) => self.end_receive(partition, reason),
            }
            return;
        }
        if seq != 0 {
            self.send_ack(partition, ack(SnapshotOutcome::Refused));
            return;
        }
        // A new transfer replaces the one from another leader or session (unless that one
        // is finishing: then the new one is refused).
        if self
            .transfers
            .receiving
            .get(&partition)
            .is_some_and(|i| i.finishing)
        {
            self.send_ack(partition, ack(SnapshotOutcome::Refused));
            return;
        }
        self.transfers.receiving.remove(&partition);
        let floor = Floor {
            index: last_index,
            term: last_term,
            configuration,
        };
        let Some(replica) = self.partitions.replica_mut(partition) else {
            return;
        };
        let term = replica.term();
        if floor.index <= replica.delivered_index() {
            // The application is already there: acknowledged without an import.
            if let Err(status) = replica.install_snapshot(leader, term, floor, (session, seq)) {
                tracing::debug!(%partition, %leader, ?status, "snapshot refused by the replica");
            }
            self.partitions.mark_dirty(partition);
            return;
        }
        let Some(transfer) = self.transfer.clone().filter(|t| t.supports(partition)) else {
            self.send_ack(partition, ack(SnapshotOutcome::Refused));
            return;
        };
        if self.transfers.receiving.len() >= self.config.snapshot.sessions_max {
            self.transfers.note_busy(partition, leader, session);
            self.send_ack(partition, ack(SnapshotOutcome::Busy));
            return;
        }
        let marks = match LogMarks::from_snapshot_bytes(&marks) {
            Ok(marks) => marks,
            Err(error) => {
                tracing::warn!(%partition, %leader, session, %error, "snapshot transfer refused");
                self.send_ack(partition, ack(SnapshotOutcome::Refused));
                return;
            }
        };
        let at = SnapshotPoint::of(&floor);
        let mut incoming = Incoming::new(leader, session, term, floor, marks);
        if let Arrival::Refused(reason) = incoming.arrive(seq, crc, digest, data, limits) {
            tracing::warn!(%partition, %leader, session, reason, "snapshot transfer refused");
            self.send_ack(partition, ack(SnapshotOutcome::Refused));
            return;
        }
        self.metrics.snapshot_bytes_received(len);
        self.transfers.receiving.insert(partition, incoming);
        let job = Job {
            key: TransferKey {
                partition,
                peer: leader,
                session,
            },
            work: Work::Open(transfer, at),
        };
        if self.transfers.pump.submit(job).is_err() {
            self.end_receive(partition, "the transfer queue is full");
        }
    }

    /// Ends the transfer `partition` receives (its import, if open, is dropped: abandoned)
    /// and tells its leader.
    fn end_receive(&mut self, partition: PartitionId, reason: &str) {
        let Some(incoming) = self.transfers.receiving.remove(&partition) else {
            return;
        };
        self.tell_free();
        tracing::warn!(%partition, leader = %incoming.leader, session = incoming.session, reason, "snapshot transfer ended");
        if incoming.finishing {
            self.hold(partition, false);
        }
        self.send_ack(
            partition,
            (
                incoming.leader,
                incoming.session,
                0,
                SnapshotOutcome::Refused,
            ),
        );
    }

    fn send_ack(
        &mut self,
        partition: PartitionId,
        (leader, session, seq, outcome): (NodeId, u64, u32, SnapshotOutcome),
    ) {
        let Some(term) = self.partitions.replica(partition).map(|r| r.term()) else {
            return;
        };
        self.outbox.push(Message {
            partition,
            from: self.node,
            to: leader,
            term,
            body: MessageBody::SnapshotAck {
                session,
                seq,
                outcome,
            },
        });
    }

    /// The transfer `key` names, if it is still the one `key.partition` receives.
    fn incoming(&mut self, key: TransferKey) -> Option<&mut Incoming> {
        self.transfers
            .receiving
            .get_mut(&key.partition)
            .filter(|i| i.leader == key.peer && i.session == key.session)
    }

    /// Submits the next write, or the finish once every chunk is written.
    fn write_next_chunk(&mut self, partition: PartitionId) {
        let Some(incoming) = self.transfers.receiving.get_mut(&partition) else {
            return;
        };
        let key = TransferKey {
            partition,
            peer: incoming.leader,
            session: incoming.session,
        };
        if let Some((sink, data, crc)) = incoming.next_write() {
            let job = Job {
                key,
                work: Work::Write(sink, data, crc),
            };
            if self.transfers.pump.submit(job).is_err() {
                self.end_receive(partition, "the transfer queue is full");
            }
            return;
        }
        let (leader, term, floor) = (incoming.leader, incoming.term, incoming.floor.clone());
        let finished = incoming.take_finished();
        let import = match finished {
            None => return,
            Some(Err(reason)) => {
                self.end_receive(partition, reason);
                return;
            }
            Some(Ok(import)) => import,
        };
        let Some(replica) = self.partitions.replica(partition) else {
            self.end_receive(partition, "the partition is not hosted");
            return;
        };
        if replica.term() != term || replica.leader() != Some(leader) {
            self.end_receive(partition, "the leader changed");
            return;
        }
        if replica.delivered_index() >= floor.index {
            // The log caught up meanwhile: finishing would take the application back.
            drop(import);
            self.end_receive(partition, "the application passed the snapshot's index");
            return;
        }
        let job = Job {
            key,
            work: Work::Finish(import),
        };
        #[cfg(feature = "sim-bugs")]
        if self.config.bug == Some(crate::shard::NodeBug::BoundaryBeforeImport) {
            // The bug: the boundary now, the import 50 ticks later, the partition not held.
            let last_seq = self
                .transfers
                .receiving
                .get(&partition)
                .map_or(0, Incoming::last_seq);
            if let Some(replica) = self.partitions.replica_mut(partition) {
                let _ = replica.install_snapshot(leader, term, floor, (key.session, last_seq));
            }
            self.partitions.mark_dirty(partition);
            self.transfers.late_finishes.push((50, job));
            return;
        }
        self.hold(partition, true);
        if self.transfers.pump.submit(job).is_err() {
            self.end_receive(partition, "the transfer queue is full");
        }
    }

    fn finished(&mut self, key: TransferKey, result: io::Result<()>) {
        let Some(incoming) = self.incoming(key).filter(|i| i.finishing) else {
            return;
        };
        let (leader, term, floor, bytes, marks) = (
            incoming.leader,
            incoming.term,
            incoming.floor.clone(),
            incoming.bytes,
            incoming.marks,
        );
        let index = floor.index;
        let last_seq = incoming.last_seq();
        self.hold(key.partition, false);
        if let Err(error) = result {
            self.end_receive(key.partition, &format!("finishing the import: {error}"));
            return;
        }
        self.transfers.receiving.remove(&key.partition);
        self.tell_free();
        let Some(slot) = self.partitions.get_mut(key.partition) else {
            return;
        };
        // Partition 0's import published the map the snapshot carried (the newest this node
        // knows: the snapshot is beyond everything it delivered): its boundary keeps it.
        slot.view.installing_map(&self.maps.map());
        // A user partition's split marks at the snapshot's index: its boundary keeps them,
        // and the fence reads them from now on (decision 0006).
        slot.view.installing_marks(marks);
        let Some(replica) = slot.replica.as_mut() else {
            return;
        };
        if let Err(status) = replica.install_snapshot(leader, term, floor, (key.session, last_seq))
        {
            // The partition was held since the import was checked against the replica, so
            // this cannot happen; the application now holds state the replica does not know
            // about, and only a restart (through the application's durable index) reconciles
            // them.
            self.fail(format!(
                "partition {}: the replica refused the snapshot the application imported at {}: {status:?}",
                key.partition, index
            ));
            return;
        }
        // The application now holds the state through the snapshot's index: what it applied
        // of the split entries continues with the marks there (an import's end among them
        // counts as applied, as if its entry had been handed over: phase 2 may follow).
        let progress = self.maps.progress();
        progress.set_applied(key.partition, progress.applied(key.partition).merged(marks));
        self.metrics.snapshot_installed();
        self.events.emit(RaftEvent::SnapshotInstalled {
            partition: key.partition,
            leader,
            index,
            bytes,
        });
    }

    /// Holds `partition` while its import finishes (or releases it).
    fn hold(&mut self, partition: PartitionId, held: bool) {
        if let Some(slot) = self.partitions.get_mut(partition) {
            slot.installing = held;
        }
        if !held {
            self.partitions.mark_dirty(partition);
        }
    }

    // ----- the pump's results, ticks, leadership -----

    /// Takes the pump's results. Returns whether there were any.
    pub(super) fn transfer_results(&mut self) -> bool {
        let mut worked = false;
        while let Some(JobDone { key, done }) = self.transfers.pump.take_done() {
            worked = true;
            if self.failed() {
                // A failed shard steps no replica: the transfers end with it.
                continue;
            }
            match done {
                Done::Read(source, read) => self.chunk_read(key, source, read),
                Done::Opened(Ok(sink)) | Done::Written(sink, Ok(())) => {
                    let Some(incoming) = self.incoming(key) else {
                        continue;
                    };
                    let written = incoming.last_written();
                    incoming.give_back(sink);
                    if let Some(seq) = written {
                        self.send_ack(
                            key.partition,
                            (key.peer, key.session, seq, SnapshotOutcome::Received),
                        );
                    }
                    self.write_next_chunk(key.partition);
                }
                Done::Opened(Err(error)) => {
                    if self.incoming(key).is_some() {
                        self.end_receive(key.partition, &format!("opening the import: {error}"));
                    }
                }
                Done::Written(_, Err(error)) => {
                    if self.incoming(key).is_some() {
                        self.end_receive(key.partition, &format!("writing a chunk: {error}"));
                    }
                }
                Done::Finished(result) => self.finished(key, result),
            }
        }
        worked
    }

    /// One tick of every transfer: ack deadlines, back-offs, idle receivers.
    pub(super) fn tick_transfers(&mut self) {
        if self.failed() {
            return;
        }
        let snapshot = &self.config.snapshot;
        let (timeout, cap) = (snapshot.ack_timeout_ticks, snapshot.bytes_per_sec_max);
        if cap != 0 {
            let tick = self.config.tick_interval;
            self.transfers
                .budget
                .refill(cap, tick, snapshot.chunk_bytes);
        }
        let mut timed_out = Vec::new();
        let mut probe = Vec::new();
        // The transfers the cap may have held back (none without a cap).
        let mut held_back = Vec::new();
        for (&(partition, follower), sending) in &mut self.transfers.sending {
            match sending {
                Sending::Active(outgoing) => {
                    if outgoing.timed_out(timeout) {
                        timed_out.push((partition, follower));
                    } else if cap != 0 {
                        held_back.push((partition, follower));
                    }
                }
                Sending::BackingOff { ticks_left, .. } if *ticks_left > 0 => {
                    *ticks_left -= 1;
                    if *ticks_left == 0 {
                        probe.push((partition, follower));
                    }
                }
                Sending::BackingOff { .. } | Sending::Queued { .. } => {}
            }
        }
        for (partition, follower) in timed_out {
            self.fail_send(
                partition,
                follower,
                "no acknowledgement within snapshot.ack_timeout_ticks",
            );
        }
        for (partition, follower) in held_back {
            self.read_next_chunk(partition, follower);
        }
        for (partition, follower) in probe {
            self.probe(partition, follower);
        }
        #[cfg(feature = "sim-bugs")]
        {
            let (due, waiting): (Vec<_>, Vec<_>) =
                std::mem::take(&mut self.transfers.late_finishes)
                    .into_iter()
                    .map(|(ticks, job)| (ticks - 1, job))
                    .partition(|(ticks, _)| *ticks == 0);
            self.transfers.late_finishes = waiting;
            for (_, job) in due {
                let _ = self.transfers.pump.submit(job);
            }
        }
        let idle_max = self.config.snapshot.session_idle_ticks;
        let idle: Vec<PartitionId> = self
            .transfers
            .receiving
            .iter_mut()
            .filter_map(|(&partition, incoming)| {
                incoming.idle_too_long(idle_max).then_some(partition)
            })
            .collect();
        for partition in idle {
            self.end_receive(partition, "idle for snapshot.session_idle_ticks");
        }
    }

    /// `partition` closed: its transfers end without a word (a late result of the pump finds
    /// no transfer and is dropped).
    pub(super) fn end_transfers(&mut self, partition: PartitionId) {
        self.transfers.end_sends(partition);
        let received = self.transfers.receiving.contains_key(&partition);
        self.transfers.end_receives(partition);
        if received {
            self.tell_free();
        }
        self.metrics
            .snapshot_transfers(self.transfers.active_sends());
    }

    /// `partition`'s replica reported a new soft state: transfers of a leadership that ended
    /// end with it.
    pub(super) fn transfers_follow(&mut self, partition: PartitionId, soft: SoftState) {
        if soft.role != Role::Leader && self.transfers.end_sends(partition) {
            self.metrics
                .snapshot_transfers(self.transfers.active_sends());
        }
        let stale = self.transfers.receiving.get(&partition).is_some_and(|i| {
            !i.finishing && (soft.leader != Some(i.leader) || soft.term != i.term)
        });
        if stale {
            self.transfers.receiving.remove(&partition);
            self.tell_free();
        }
    }

    /// A receive session ended: the leader that has waited longest after a `Busy` answer is
    /// told `Free` (one per session ended, so the leaders told are about as many as the
    /// sessions free; one that no longer needs the transfer leaves its place idle until a
    /// waiting leader's `snapshot.ack_timeout_ticks`).
    fn tell_free(&mut self) {
        if let Some((partition, leader, session)) = self.transfers.next_busy() {
            self.send_ack(partition, (leader, session, 0, SnapshotOutcome::Free));
        }
    }
}
