//! Driving the nodes: starting an incarnation, each shard's real loop turn by turn in virtual
//! time, its disk's completions, its failure, and its frames on the wire.

use bytes::Bytes;
use kommander_wal::WalConfig;

use crate::core::NodeId;
use crate::node::NodeConfig;
use crate::shard::{SYSTEM_PARTITION, ShardConfig};
use crate::sim::checkers::Violation;

use super::NodeSimulation;
use super::checkers::{CODEC, ElectionSafety, QuiescedNoElection, RECOVERY, SHARD_FAILURE};
use super::run::{Event, TURNS_PER_EVENT_MAX};
use super::wire::decode_frame_messages;
use crate::transport::stamp;

impl NodeSimulation {
    // ----- nodes -----

    fn shard_config(&self, node: usize) -> ShardConfig {
        let nodes = self.config.nodes as u64;
        let mut config = NodeConfig::new(node as u64 + 1, &self.root);
        config.peers = (1..=nodes)
            .filter(|&peer| peer != node as u64 + 1)
            .map(|peer| (peer, format!("node-{peer}:7000")))
            .collect();
        config.shards = self.config.shards;
        config.tick_interval_ms = self.config.tick_ms;
        config.append_entries_max = self.config.append_entries_max;
        config.inflight_messages_max = self.config.inflight_messages_max;
        config.wal_commit_lag_entries_max = self.config.commit_lag_entries_max;
        config.wal_segment_bytes = self.config.wal_segment_bytes;
        config.wal_batch_bytes_max = 64 << 10;
        config.wal_record_bytes_max = 16 << 10;
        config.partition_map_ranges_max = 128;
        config.wal_inflight_batches_max = 4;
        config.shard_inputs_per_turn_max = 64;
        let mut shard = ShardConfig::from(&config);
        // Below the 1 KiB a node's configuration allows: the registers make several chunks.
        shard.snapshot.chunk_bytes = self.config.snapshot_chunk_bytes;
        shard.snapshot.chunks_in_flight_max = self.config.snapshot_chunks_in_flight_max;
        shard.snapshot.bytes_per_sec_max = self.config.snapshot_bytes_per_sec_max;
        shard.snapshot.transfers_max = self.config.snapshot_transfers_max;
        shard.snapshot.sessions_max = self.config.snapshot_sessions_max;
        // Within the settle phase: give up after a second, retry within two.
        shard.snapshot.ack_timeout_ticks = 100;
        shard.snapshot.session_idle_ticks = 200;
        shard.snapshot.backoff_max_ticks = 200;
        shard.core.seed = self
            .seed
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add((node as u64) << 20)
            .wrapping_add(self.nodes[node].incarnation);
        #[cfg(feature = "sim-bugs")]
        {
            shard.bug = self.bug;
            shard.core.bug = self.core_bug;
        }
        shard
    }

    /// Starts `node`'s next incarnation and opens partition 0 on it: its shards open the other
    /// partitions as partition 0's map adds them (the first one proposed by a leader of
    /// partition 0, `maps.rs`, or found on its disks).
    pub(super) fn start_node(&mut self, node: usize) -> Result<(), Violation> {
        let config = self.shard_config(node);
        let wal = WalConfig {
            // Rewrite the records pinning the oldest segment at every rotation (the WAL's
            // default waits for 4 segments): the relocation paths stay under the nemesis.
            segments_before_rewrite: 1,
            ..config.wal.clone()
        };
        let epoch_seed = self.seed ^ ((node as u64) << 48) ^ self.nodes[node].incarnation;
        let now = self.nodes[node].clock.at(self.epoch, self.now);
        // The first roster: the initial members (a node outside it waits to be added), or,
        // for a data directory admitted after its node's disks were replaced, the roster of
        // its admission (itself a learner: `replace.rs`).
        let initial: Vec<NodeId> = (1..=self.config.initial_members as u64)
            .map(NodeId)
            .collect();
        let (system, partitions, admitted_version) = match self.nodes[node].first.clone() {
            Some(first) => (first.system, first.partitions, first.admitted_version),
            None => ((initial.clone(), Vec::new()), (initial, Vec::new()), 0),
        };
        let started = self.nodes[node].start(config, &wal, epoch_seed, now, partitions);
        self.checkers.judge(RECOVERY, started)?;
        self.report.starts += 1;
        let running = self.nodes[node].running.as_ref().expect("just started");
        running
            .host
            .membership()
            .set_admitted_version(admitted_version);
        // Partition 0 holds the roster and the map the others follow. The answer comes in the
        // shard's turn; what matters is the restore's outcome, which the recovery checker
        // judges from the shards' events.
        let (voters, learners) = system;
        let opened = running
            .host
            .open_partition(SYSTEM_PARTITION, voters, learners)
            .map(drop)
            .map_err(|refusal| {
                format!("node {}: partition 0 does not open: {refusal:?}", node + 1)
            });
        self.checkers.judge(RECOVERY, opened)?;
        for shard in 0..self.config.shards {
            self.schedule_turn(node, shard, self.now);
        }
        Ok(())
    }

    /// Schedules a turn of `node`'s `shard` at `at` (unless one is due earlier).
    pub(super) fn schedule_turn(&mut self, node: usize, shard: usize, at: u64) {
        let at = at.max(self.now);
        let slot = &mut self.nodes[node].turn_at[shard];
        if slot.is_none_or(|due| at < due) {
            *slot = Some(at);
            self.agenda.push(at, Event::Turn { node, shard });
        }
    }

    pub(super) fn resume(&mut self, node: usize) {
        self.nodes[node].paused_until = 0;
        for shard in 0..self.config.shards {
            self.schedule_turn(node, shard, self.now);
        }
    }

    /// Runs `shard` of `node` until it has nothing to do (or for [`TURNS_PER_EVENT_MAX`]
    /// turns). `disk_done`: the disk completes what is queued on it during the first turn.
    pub(super) fn run_shard(
        &mut self,
        node: usize,
        shard: usize,
        disk_done: bool,
    ) -> Result<(), Violation> {
        let sim_node = &mut self.nodes[node];
        if sim_node.paused_until > self.now {
            let until = sim_node.paused_until;
            if disk_done {
                sim_node.disk_busy[shard] = true;
                let incarnation = sim_node.incarnation;
                self.agenda.push(
                    until,
                    Event::DiskDone {
                        node,
                        shard,
                        incarnation,
                    },
                );
            } else {
                self.schedule_turn(node, shard, until);
            }
            return Ok(());
        }
        let now = sim_node.clock.at(self.epoch, self.now);
        sim_node.set_wall(self.now);
        let disk = sim_node.disks[shard].0.clone();
        let Some(running) = sim_node.running.as_mut() else {
            return Ok(());
        };
        let stepper = &mut running.shards[shard];
        let mut more = false;
        for turn in 0..TURNS_PER_EVENT_MAX {
            if disk_done && turn == 0 {
                disk.set_stalled(false);
            }
            let worked = stepper.turn(now);
            disk.set_stalled(true);
            if self.tracing {
                let (writes, syncs) = disk.io_counts();
                eprintln!(
                    "{:>8} ms    turn n{} s{shard}: worked {worked}, waiting {}, disk writes {writes} syncs {syncs}",
                    self.now,
                    node + 1,
                    stepper.waiting_on_wal()
                );
            }
            self.report.turns += 1;
            if !worked {
                break;
            }
            more = turn + 1 == TURNS_PER_EVENT_MAX;
        }
        self.after_turns(node, shard, more)
    }

    /// What follows a shard's turns: its failure, its frames, its deliveries, the answers to
    /// clients, its disk, and its next turn.
    fn after_turns(&mut self, node: usize, shard: usize, more: bool) -> Result<(), Violation> {
        // Whether an injected fault explains it is read now: what follows may crash the node
        // (an answer from partition 0's leader between a split's phases), which disarms it.
        let failure = self.nodes[node]
            .running
            .as_ref()
            .and_then(|running| running.shards[shard].failure())
            .map(|reason| (reason, self.nodes[node].fault_fired(shard)));
        self.send_frames(node)?;
        self.propose_first_map(node);
        self.check_deliveries(node)?;
        self.poll_answers(node)?;
        self.check_events(node)?;
        if let Some((reason, fired)) = failure {
            return self.shard_failed(node, shard, fired, &reason);
        }
        let sim_node = &mut self.nodes[node];
        let Some(running) = sim_node.running.as_ref() else {
            return Ok(());
        };
        let stepper = &running.shards[shard];
        let next_tick = sim_node.clock.when(self.epoch, stepper.next_tick());
        let waiting = stepper.waiting_on_wal();
        if waiting && !sim_node.disk_busy[shard] {
            sim_node.disk_busy[shard] = true;
            let latency = self.disk_rng.latency(&self.config.disk_latency) * sim_node.disk_slowdown;
            let incarnation = sim_node.incarnation;
            self.agenda.push(
                self.now + latency,
                Event::DiskDone {
                    node,
                    shard,
                    incarnation,
                },
            );
        }
        self.schedule_turn(node, shard, if more { self.now } else { next_tick });
        Ok(())
    }

    /// A shard failed: expected after an injected disk fault (`fired`: the fault armed on its
    /// disk had fired when the failure was seen), a violation otherwise. The node restarts from
    /// what its disks hold after a power cut: after a failed sync nothing unsynced can be
    /// trusted.
    fn shard_failed(
        &mut self,
        node: usize,
        shard: usize,
        fired: bool,
        reason: &str,
    ) -> Result<(), Violation> {
        let expected = fired && reason.starts_with("WAL");
        if !expected {
            return self.checkers.judge(
                SHARD_FAILURE,
                Err(format!("node {} shard {shard} failed: {reason}", node + 1)),
            );
        }
        self.report.disk_faults_fired += 1;
        let mode = kommander_wal::backend::sim::CrashMode::Torn(self.disk_rng.next_u64());
        self.crash_for_a_while(node, Some(mode))?;
        Ok(())
    }

    /// Events a node's shards emitted that the checkers judge (a failed restore).
    fn check_events(&mut self, node: usize) -> Result<(), Violation> {
        for failure in self.nodes[node].events.take_failures() {
            self.checkers
                .judge(RECOVERY, Err(format!("node {}: {failure}", node + 1)))?;
        }
        Ok(())
    }

    // ----- the wire -----

    /// Puts `node`'s outgoing frames on the network (each decoded once here, by the real
    /// codec, for the wire checkers).
    fn send_frames(&mut self, node: usize) -> Result<(), Violation> {
        for (to, frame) in self.nodes[node].outbox.drain() {
            let Some(to) = (to.0 as usize)
                .checked_sub(1)
                .filter(|&to| to < self.nodes.len())
            else {
                continue;
            };
            let messages =
                decode_frame_messages(&frame, self.nodes[node].id, NodeId(to as u64 + 1));
            let messages = match messages {
                Ok((_, messages)) => messages,
                Err(error) => {
                    self.checkers.judge(
                        CODEC,
                        Err(format!(
                            "a frame from node {} does not decode: {error}",
                            node + 1
                        )),
                    )?;
                    continue;
                }
            };
            for message in &messages {
                if self.tracing {
                    eprintln!("{:>8} ms    sent {message:?}", self.now);
                }
                let verdict = self.checkers.election_safety.on_sent(message);
                self.checkers.judge(ElectionSafety::NAME, verdict)?;
                let (nodes, now) = (&self.nodes, self.now);
                let running = |node: NodeId| {
                    let node = nodes.get((node.0 as usize).checked_sub(1)?)?;
                    (node.up() && node.paused_until <= now).then_some(node.incarnation)
                };
                // Twice the election timeout's upper bound (20 ticks by default).
                let grace_ms = 40 * self.config.tick_ms;
                let verdict = self.checkers.quiesced_no_election.on_sent(
                    message,
                    now,
                    self.healed_at,
                    grace_ms,
                    running,
                );
                self.checkers.judge(QuiescedNoElection::NAME, verdict)?;
                self.watch_configurations(node, message);
            }
            self.report.frames += 1;
            let route = self.network.route(node, to, &mut self.net_rng);
            let incarnation = self.nodes[to].incarnation;
            let link = node * self.nodes.len() + to;
            for delay in [route.first, route.duplicate].into_iter().flatten() {
                let mut at = self.now + delay;
                if self.healed_at.is_some() {
                    // Healed, a link reorders nothing (its delays still vary).
                    at = at.max(self.link_clock[link]);
                    self.link_clock[link] = at;
                }
                self.agenda.push(
                    at,
                    Event::Deliver {
                        from: node,
                        to,
                        incarnation,
                        frame: frame.clone(),
                    },
                );
            }
        }
        Ok(())
    }

    pub(super) fn deliver(
        &mut self,
        from: usize,
        to: usize,
        incarnation: u64,
        frame: Bytes,
    ) -> Result<(), Violation> {
        let receiver = &self.nodes[to];
        if receiver.incarnation != incarnation || !receiver.up() {
            return Ok(());
        }
        if receiver.paused_until > self.now {
            // A stopped process reads nothing; the frame waits in its socket.
            let at = receiver.paused_until;
            self.agenda.push(
                at,
                Event::Deliver {
                    from,
                    to,
                    incarnation,
                    frame,
                },
            );
            return Ok(());
        }
        let sender = NodeId(from as u64 + 1);
        let messages = match decode_frame_messages(&frame, sender, receiver.id) {
            Ok((stamp, messages)) => {
                // The receiver's clock takes the sender's (one too far ahead is not merged,
                // as on a real node; nothing checks the clocks, so the refusal is not counted).
                receiver.set_wall(self.now);
                let _ = stamp::merge(Some(&receiver.hlc), sender, stamp);
                messages
            }
            Err(error) => {
                return self.checkers.judge(
                    CODEC,
                    Err(format!(
                        "a frame to node {} does not decode: {error}",
                        to + 1
                    )),
                );
            }
        };
        let mut shards: Vec<usize> = messages
            .iter()
            .map(|message| crate::shard::shard_of(message.partition, self.config.shards))
            .collect();
        shards.sort_unstable();
        shards.dedup();
        let running = self.nodes[to].running.as_ref().expect("checked up");
        running.host.deliver(messages);
        for shard in shards {
            self.schedule_turn(to, shard, self.now);
        }
        Ok(())
    }
}
