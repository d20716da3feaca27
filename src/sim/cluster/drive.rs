//! Driving the core's replicas: every pending Ready is handled as its contract demands (writes
//! queued on the disk, messages sent now, deliveries, outcomes, snapshot requests), and the
//! network carries what is sent.

use super::observe::observe_entry;
use super::*;

impl Simulation {
    pub(super) fn send(&mut self, from: usize, messages: Vec<Message>) {
        for message in messages {
            let to = message.to.0 as usize - 1;
            if to >= self.nodes.len() {
                continue;
            }
            let route = self.network.route(from, to, &mut self.net_rng);
            self.trace.event(
                9,
                &[
                    self.now,
                    from as u64,
                    to as u64,
                    route.first.unwrap_or(u64::MAX),
                    route.duplicate.unwrap_or(u64::MAX),
                ],
            );
            if let Some(delay) = route.duplicate {
                self.agenda.push(
                    self.now + delay,
                    Event::Deliver {
                        to,
                        message: message.clone(),
                    },
                );
            }
            if let Some(delay) = route.first {
                self.agenda
                    .push(self.now + delay, Event::Deliver { to, message });
            }
        }
    }

    /// Processes every pending Ready of one replica, in order.
    pub(super) fn drain(&mut self, node: usize, partition: usize) -> Result<(), SimFailure> {
        loop {
            if !self.nodes[node].up {
                return Ok(());
            }
            let Some(core) = self.nodes[node].replicas[partition].core.as_mut() else {
                return Ok(());
            };
            if !core.has_ready() {
                return Ok(());
            }
            let ready = core.ready();
            self.process_ready(node, partition, ready)?;
        }
    }

    pub(super) fn process_ready(
        &mut self,
        node: usize,
        partition: usize,
        ready: Ready,
    ) -> Result<(), SimFailure> {
        let Ready {
            number,
            soft_state,
            hard_state,
            durability_awaited,
            entries,
            compaction_floor,
            messages,
            persisted_messages,
            committed_entries,
            committed_through,
            read_states: _,
            outcomes,
            snapshot_required,
            installed_snapshot,
            // The core simulator models a transfer as one event (`snapshot.rs`): no chunks.
            snapshot_messages: _,
            // The core simulator ticks every replica and never turns quiescence on.
            quiescence: _,
        } = ready;
        self.trace.event(
            10,
            &[
                self.now,
                node as u64,
                partition as u64,
                number,
                entries.len() as u64,
                messages.len() as u64,
                persisted_messages.len() as u64,
                committed_entries.len() as u64,
            ],
        );
        if let Some(soft) = soft_state {
            self.observe(Observation::Role {
                node,
                partition,
                term: soft.term.0,
                leader: soft.role == Role::Leader,
            })?;
            if soft.role == Role::Leader && self.nodes[node].isolate_on_leadership {
                self.nodes[node].isolate_on_leadership = false;
                self.isolate(node);
            }
            if soft.role == Role::Leader
                && self.faults_active
                && self.config.membership_interval_ms_max > 0
                && self
                    .client_rng
                    .chance(self.config.membership_on_leadership_per_million)
            {
                // Before anything reaches the followers: the no-op is not committed yet.
                self.agenda.push(
                    self.now,
                    Event::Membership {
                        partition,
                        periodic: false,
                    },
                );
            }
        }
        if let Some(meta) = &installed_snapshot {
            // The runtime makes the transferred state durable before it tells the core
            // (application state and the log's new floor), so both survive a crash from here on.
            let replica = &mut self.nodes[node].replicas[partition];
            replica.durable.install(meta);
            replica.applied = replica.applied.max(meta.index);
            self.observe(Observation::SnapshotInstalled {
                node,
                partition,
                index: meta.index.0,
                term: meta.term.0,
            })?;
        }
        if !entries.is_empty() {
            self.observe(Observation::Appended {
                node,
                partition,
                entries: entries.iter().map(observe_entry).collect(),
            })?;
        }
        self.observe_commit(node, partition)?;
        let must_persist = hard_state.is_some()
            || !entries.is_empty()
            || compaction_floor.is_some()
            || installed_snapshot.is_some()
            || !persisted_messages.is_empty();
        let compaction_floor_index = compaction_floor.as_ref().map(|floor| floor.index);
        if must_persist {
            self.nodes[node].disk_queue.push_back(PendingWrite {
                partition,
                number,
                durability_awaited,
                hard_state,
                entries,
                compaction_floor,
                installed_snapshot,
                gated: persisted_messages,
            });
            self.start_flush(node);
        }
        // A Ready with nothing to persist is not acknowledged: `persisted(n)` vouches for every
        // Ready up to n, and earlier writes of this replica may still be on their way to disk.
        let sent = !messages.is_empty();
        self.send(node, messages);
        if sent && self.nodes[node].crash_after_send && self.nodes[node].flushing > 0 {
            return self.crash(node);
        }
        for entry in &committed_entries {
            self.observe(Observation::Delivered {
                node,
                partition,
                entry: observe_entry(entry),
            })?;
        }
        if committed_through > self.nodes[node].replicas[partition].applied {
            let replica = &mut self.nodes[node].replicas[partition];
            replica.applied = committed_through;
            if let Some(core) = replica.core.as_mut() {
                core.applied(committed_through);
            }
        }
        if let Some(floor) = compaction_floor_index {
            self.observe(Observation::Compacted {
                node,
                partition,
                floor: floor.0,
            })?;
        }
        for outcome in outcomes {
            self.on_outcome(partition, outcome)?;
        }
        for target in snapshot_required {
            self.start_snapshot_transfer(node, partition, target);
        }
        Ok(())
    }
}
