//! The membership workload: an operator changing each partition's configuration one step at a
//! time (add a learner, promote it, demote a voter — the leader too —, remove a learner),
//! through the node a client would find, and the adversarial timings around it: a second
//! change at once, a change the moment a leader is elected, and a cut that leaves the leader
//! alone with the nodes a change brought in.

use super::*;

/// One step from a configuration to the next.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// A node outside the configuration joins as a learner.
    Add(NodeId),
    /// A learner votes.
    Promote(NodeId),
    /// A voter only learns.
    Demote(NodeId),
    /// A learner leaves.
    Remove(NodeId),
}

impl Simulation {
    /// A membership change of `partition` (and, sometimes, a second one right after it). An
    /// `eager` change (proposed the moment a leader was elected) that is accepted is always
    /// followed by a cut leaving the leader with a bare majority of the new configuration.
    pub(super) fn change_membership(
        &mut self,
        partition: usize,
        eager: bool,
    ) -> Result<(), SimFailure> {
        let Some(node) = self.client_target(partition) else {
            return Ok(());
        };
        self.propose_membership_step(node, partition, eager)?;
        if self
            .client_rng
            .chance(self.config.membership_burst_per_million)
        {
            self.propose_membership_step(node, partition, eager)?;
        }
        self.drain(node, partition)
    }

    /// Asks `node` to move `partition` one step from the configuration it has in force.
    fn propose_membership_step(
        &mut self,
        node: usize,
        partition: usize,
        eager: bool,
    ) -> Result<(), SimFailure> {
        let Some(current) = self.nodes[node].replicas[partition]
            .core
            .as_ref()
            .map(|core| core.configuration().clone())
        else {
            return Ok(());
        };
        let Some(step) = self.pick_step(&current) else {
            return Ok(());
        };
        let (mut voters, mut learners) = (current.voters().to_vec(), current.learners().to_vec());
        match step {
            Step::Add(id) => learners.push(id),
            Step::Promote(id) => {
                learners.retain(|n| *n != id);
                voters.push(id);
            }
            Step::Demote(id) => {
                voters.retain(|n| *n != id);
                learners.push(id);
            }
            Step::Remove(id) => learners.retain(|n| *n != id),
        }
        let Ok(next) = Configuration::new(voters, learners) else {
            return Ok(());
        };
        let client = &mut self.clients[partition];
        client.next_ticket += 1;
        let ticket = Ticket(client.next_ticket);
        self.trace.event(
            19,
            &[
                self.now,
                node as u64,
                partition as u64,
                observe::node_mask(next.voters()),
                observe::node_mask(next.learners()),
            ],
        );
        let Some(core) = self.nodes[node].replicas[partition].core.as_mut() else {
            return Ok(());
        };
        // Refusals (not leader, a change in flight, the no-op not yet committed) are normal.
        let accepted = core.propose_configuration(ticket, next.clone()).is_ok();
        if accepted {
            self.report.membership_changes += 1;
            if eager {
                self.split_along(node, &current, &next, true);
            } else if self
                .client_rng
                .chance(self.config.membership_split_per_million)
            {
                let to_majority = self.client_rng.chance(500_000);
                self.split_along(node, &current, &next, to_majority);
            }
        }
        Ok(())
    }

    /// Cuts the leader `node` off with the nodes the change from `current` to `next` brought
    /// in, and (`to_majority`) with just enough other voters of `next` to make a bare majority
    /// of it: the rest may hold a majority of the old configuration, or of an older one. Only
    /// the overlap of the old and new majorities (one change at a time, after the no-op) keeps
    /// both sides from committing.
    fn split_along(
        &mut self,
        node: usize,
        current: &Configuration,
        next: &Configuration,
        to_majority: bool,
    ) {
        let index = |id: &NodeId| id.0 as usize - 1;
        let mut side = vec![node];
        side.extend(
            next.members()
                .filter(|id| {
                    !current.is_member(*id) || !current.is_voter(*id) && next.is_voter(*id)
                })
                .map(|id| index(&id)),
        );
        if to_majority {
            let mut others: Vec<usize> = next
                .voters()
                .iter()
                .map(index)
                .filter(|n| !side.contains(n))
                .collect();
            let counted = |side: &[usize]| {
                next.voters()
                    .iter()
                    .filter(|id| side.contains(&index(id)))
                    .count()
            };
            while counted(&side) < next.quorum() && !others.is_empty() {
                let pick = self.client_rng.index(others.len());
                side.push(others.swap_remove(pick));
            }
        }
        self.trace.event(20, &[self.now, side.len() as u64]);
        self.network.partition(&side);
        self.schedule_heal();
    }

    /// A step allowed from `current`: uniform among the nodes and moves that apply, keeping a
    /// voter.
    fn pick_step(&mut self, current: &Configuration) -> Option<Step> {
        let mut steps = Vec::new();
        for node in 0..self.nodes.len() {
            let id = node_id(node);
            if current.is_voter(id) {
                if current.voters().len() > 1 {
                    steps.push(Step::Demote(id));
                }
            } else if current.is_learner(id) {
                steps.push(Step::Promote(id));
                steps.push(Step::Remove(id));
            } else {
                steps.push(Step::Add(id));
            }
        }
        (!steps.is_empty()).then(|| steps[self.client_rng.index(steps.len())])
    }
}
