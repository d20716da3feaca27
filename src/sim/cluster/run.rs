//! The run: the agenda's events, the loop that pops them in time order until the cluster has
//! settled, and the dispatch of each event (deferred while its node is paused).

use super::snapshot::SnapshotTransfer;
use super::*;

#[derive(Debug)]
pub(super) enum Event {
    Tick {
        node: usize,
    },
    Deliver {
        to: usize,
        message: Message,
    },
    FlushDone {
        node: usize,
        incarnation: u64,
    },
    Propose {
        partition: usize,
    },
    Resolve {
        partition: usize,
        ticket: u64,
    },
    Checkpoint {
        partition: usize,
    },
    /// A membership change; a periodic one schedules the next.
    Membership {
        partition: usize,
        periodic: bool,
    },
    SnapshotArrives {
        transfer: SnapshotTransfer,
    },
    SnapshotWatchdog {
        transfer: SnapshotTransfer,
    },
    Nemesis,
    Restart {
        node: usize,
        incarnation: u64,
    },
    HealCuts {
        generation: u64,
    },
    EndFaults,
    CheckSettled,
}

impl Simulation {
    /// Runs the whole scenario: the fault phase, then healing and the liveness bound.
    ///
    /// # Errors
    /// The first violated property (safety or liveness), with the seed and replay command.
    pub fn run(mut self) -> Result<SimReport, SimFailure> {
        for node in 0..self.nodes.len() {
            self.start_node(node)?;
            let first_tick = self.net_rng.below(self.nodes[node].tick_ms) + 1;
            self.agenda.push(first_tick, Event::Tick { node });
        }
        for partition in 0..self.config.partitions {
            let at = self.client_rng.between(50, 300);
            self.agenda.push(at, Event::Propose { partition });
            let at = self.client_rng.between(
                self.config.checkpoint_interval_ms_min,
                self.config.checkpoint_interval_ms_max,
            );
            self.agenda.push(at, Event::Checkpoint { partition });
            if self.config.membership_interval_ms_max > 0 {
                let at = self.client_rng.between(
                    self.config.membership_interval_ms_min,
                    self.config.membership_interval_ms_max,
                );
                self.agenda.push(
                    at,
                    Event::Membership {
                        partition,
                        periodic: true,
                    },
                );
            }
        }
        let first_fault = self.nemesis_rng.between(
            self.config.fault_interval_ms_min,
            self.config.fault_interval_ms_max,
        );
        self.agenda.push(first_fault, Event::Nemesis);
        self.agenda
            .push(self.config.fault_phase_ms, Event::EndFaults);
        let deadline = self.config.fault_phase_ms + self.config.settle_ms_max;
        while let Some((at, event)) = self.agenda.pop() {
            if at > deadline {
                break;
            }
            self.now = at;
            self.report.events += 1;
            self.handle(event)?;
            if self.settled_at.is_some() {
                break;
            }
        }
        let Some(settled_at) = self.settled_at else {
            let violation = match self.checkers.check_converged() {
                Err(violation) => violation,
                Ok(()) => Violation {
                    checker: "liveness",
                    detail: "converged state never observed".to_owned(),
                },
            };
            return Err(self.fail(Violation {
                checker: "liveness",
                detail: format!(
                    "not converged {} ms after the faults stopped: {}",
                    self.config.settle_ms_max, violation.detail
                ),
            }));
        };
        self.report.settle_ms = settled_at - self.config.fault_phase_ms;
        self.report.trace_hash = self.trace.value();
        Ok(self.report)
    }

    pub(super) fn handle(&mut self, event: Event) -> Result<(), SimFailure> {
        // A stopped process handles nothing: what arrives for it waits, in arrival order.
        let deferred_to = match &event {
            Event::Deliver { to, .. } => Some(*to),
            Event::FlushDone { node, .. } => Some(*node),
            Event::SnapshotArrives { transfer } => Some(transfer.to),
            _ => None,
        };
        if let Some(node) = deferred_to
            && self.paused(node)
        {
            let resume = self.nodes[node].paused_until;
            self.agenda.push(resume, event);
            return Ok(());
        }
        match event {
            Event::Tick { node } => {
                self.trace.event(1, &[self.now, node as u64]);
                let next = self.now + self.nodes[node].tick_ms;
                self.agenda.push(next, Event::Tick { node });
                if self.nodes[node].up && !self.paused(node) {
                    for partition in 0..self.config.partitions {
                        if let Some(core) = self.nodes[node].replicas[partition].core.as_mut() {
                            core.tick();
                        }
                        self.drain(node, partition)?;
                    }
                }
            }
            Event::Deliver { to, message } => {
                self.trace.event(
                    2,
                    &[
                        self.now,
                        to as u64,
                        message.from.0,
                        u64::from(message.partition.0),
                        message.term.0,
                    ],
                );
                // A cut drops what is still on the wire too, not only what is sent later.
                let from = message.from.0 as usize - 1;
                if self.nodes[to].up && !self.network.is_cut(from, to) {
                    let partition = message.partition.0 as usize - 1;
                    if let Some(core) = self.nodes[to].replicas[partition].core.as_mut() {
                        // A rejected message is a protocol outcome, not a simulator error.
                        let _ = core.step(message);
                    }
                    self.drain(to, partition)?;
                }
            }
            Event::FlushDone { node, incarnation } => {
                self.trace.event(3, &[self.now, node as u64, incarnation]);
                if self.nodes[node].up && self.nodes[node].incarnation == incarnation {
                    self.complete_flush(node)?;
                }
            }
            Event::Propose { partition } => {
                if self.faults_active {
                    let pause = self.client_rng.between(
                        self.config.proposal_interval_ms_min,
                        self.config.proposal_interval_ms_max,
                    );
                    self.agenda
                        .push(self.now + pause, Event::Propose { partition });
                    self.propose(partition)?;
                }
            }
            Event::Resolve { partition, ticket } => self.resolve(partition, ticket)?,
            Event::Checkpoint { partition } => {
                if self.faults_active {
                    let pause = self.client_rng.between(
                        self.config.checkpoint_interval_ms_min,
                        self.config.checkpoint_interval_ms_max,
                    );
                    self.agenda
                        .push(self.now + pause, Event::Checkpoint { partition });
                    self.propose_checkpoint(partition)?;
                }
            }
            Event::Membership {
                partition,
                periodic,
            } => {
                if self.faults_active {
                    if periodic {
                        let pause = self.client_rng.between(
                            self.config.membership_interval_ms_min,
                            self.config.membership_interval_ms_max,
                        );
                        self.agenda.push(
                            self.now + pause,
                            Event::Membership {
                                partition,
                                periodic,
                            },
                        );
                    }
                    self.change_membership(partition, !periodic)?;
                }
            }
            Event::SnapshotWatchdog { transfer } => {
                let leader = &mut self.nodes[transfer.from];
                if leader.up && leader.incarnation == transfer.from_incarnation {
                    let waiting = leader.replicas[transfer.partition]
                        .core
                        .as_mut()
                        .filter(|core| {
                            core.progress(node_id(transfer.to))
                                .is_some_and(|p| p.state == ProgressState::SnapshotRequired)
                        })
                        .map(|core| core.report_snapshot_failure(node_id(transfer.to)));
                    if waiting.is_some() {
                        self.trace.event(18, &[self.now, transfer.to as u64]);
                        self.drain(transfer.from, transfer.partition)?;
                    }
                }
            }
            Event::SnapshotArrives { transfer } => {
                self.trace
                    .event(17, &[self.now, transfer.from as u64, transfer.to as u64]);
                self.finish_snapshot_transfer(transfer)?;
            }
            Event::Nemesis => {
                if self.faults_active {
                    self.nemesis()?;
                    let pause = if self.nemesis_rng.chance(self.config.fault_calm_per_million) {
                        self.nemesis_rng.between(
                            self.config.fault_interval_ms_max,
                            self.config.fault_calm_ms_max,
                        )
                    } else {
                        self.nemesis_rng.between(
                            self.config.fault_interval_ms_min,
                            self.config.fault_interval_ms_max,
                        )
                    };
                    self.agenda.push(self.now + pause, Event::Nemesis);
                }
            }
            Event::Restart { node, incarnation } => {
                self.trace.event(5, &[self.now, node as u64]);
                if !self.nodes[node].up && self.nodes[node].incarnation == incarnation {
                    self.start_node(node)?;
                }
            }
            Event::HealCuts { generation } => {
                if generation == self.cut_generation {
                    self.trace.event(6, &[self.now]);
                    self.network.heal();
                }
            }
            Event::EndFaults => {
                self.trace.event(7, &[self.now]);
                self.faults_active = false;
                self.network.heal();
                self.network.set_config(NetworkConfig::healthy());
                for node in 0..self.nodes.len() {
                    self.nodes[node].crash_after_send = false;
                    self.nodes[node].isolate_on_commit = false;
                    self.nodes[node].isolate_on_leadership = false;
                    self.nodes[node].paused_until = self.now;
                    if !self.nodes[node].up {
                        self.start_node(node)?;
                    }
                }
                self.agenda.push(self.now + 1_000, Event::CheckSettled);
            }
            Event::CheckSettled => {
                if self.checkers.check_converged().is_ok()
                    && self.clients.iter().all(|client| client.open.is_empty())
                {
                    self.settled_at = Some(self.now);
                } else {
                    self.agenda.push(self.now + 500, Event::CheckSettled);
                }
            }
        }
        Ok(())
    }
}
