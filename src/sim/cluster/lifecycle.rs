//! Crash and restart: a crash drops the volatile replicas and every queued write; a start
//! rebuilds each replica from its durable image and reports what survived to the checkers.

use super::observe::observe_entry;
use super::*;

impl Simulation {
    /// (Re)starts `node`: every replica from its durable image.
    pub(super) fn start_node(&mut self, node: usize) -> Result<(), SimFailure> {
        self.nodes[node].up = true;
        for partition in 0..self.config.partitions {
            let config = self.replica_config(node, partition);
            let replica = &self.nodes[node].replicas[partition];
            let durable = replica.durable.clone();
            let applied = replica.applied;
            let state = DurableState {
                hard_state: durable.hard_state,
                floor: durable.floor,
                floor_term: durable.floor_term,
                floor_configuration: durable.floor_configuration.clone(),
                entries: durable.entries.clone(),
                applied,
            };
            let log = ObservedLog::new(
                durable.floor.0,
                durable.floor_term.0,
                durable.entries.iter().map(observe_entry).collect(),
            );
            let core = Replica::new(config, state);
            let commit = core
                .as_ref()
                .map_or(durable.hard_state.commit, Replica::commit_index);
            if self.nodes[node].incarnation > 0 {
                // Observed before a refusal is reported: the checkers judge what survived
                // (e.g. delivered entries missing from the durable log) by their own rules.
                self.observe(Observation::Restarted {
                    node,
                    partition,
                    term: durable.hard_state.term.0,
                    log,
                    commit: commit.0,
                    delivered: applied.0,
                })?;
            }
            let core = core.map_err(|error| {
                self.fail(Violation {
                    checker: "restart",
                    detail: format!("node {node} partition {partition}: restore refused: {error}"),
                })
            })?;
            let replica = &mut self.nodes[node].replicas[partition];
            replica.core = Some(core);
            replica.observed_commit = commit.0;
            self.observe_commit(node, partition)?;
            self.drain(node, partition)?;
        }
        Ok(())
    }

    pub(super) fn crash(&mut self, node: usize) -> Result<(), SimFailure> {
        if !self.nodes[node].up {
            return Ok(());
        }
        self.trace.event(8, &[self.now, node as u64]);
        self.report.crashes += 1;
        let state = &mut self.nodes[node];
        state.up = false;
        state.incarnation += 1;
        state.disk_queue.clear();
        state.flushing = 0;
        state.crash_after_send = false;
        state.paused_until = 0;
        for replica in &mut state.replicas {
            replica.core = None;
        }
        self.observe(Observation::Crashed { node })?;
        if self.faults_active {
            let down = self.nemesis_rng.between(1, self.config.down_ms_max);
            let incarnation = self.nodes[node].incarnation;
            self.agenda
                .push(self.now + down, Event::Restart { node, incarnation });
        }
        Ok(())
    }
}
