//! The membership workload of the whole-node simulation: an operator moving a partition's
//! configuration one voter at a time among the cluster's nodes (promote a learner, demote a
//! voter, the leader included) through the shard requests the roster will send: it reads the
//! configuration in force on the node it asks, then proposes the next step there. Every node
//! stays a member (a learner still receives the log), so every checker, convergence included,
//! judges as before; the refusals (a change before the no-op commits, a second change in
//! flight) are the core's.

use tokio::sync::oneshot::{self, error::TryRecvError};

use super::NodeSimulation;
use super::run::Event;
use crate::core::{Configuration, NodeId, Status, Ticket};
use crate::shard::{PartitionConfiguration, Refusal, ReplicationResult, Request};

type Answer<T> = oneshot::Receiver<Result<T, Refusal>>;

/// A partition's membership change in progress, waiting on a node.
pub(super) enum MembershipStep {
    /// Its configuration was asked.
    Asking(usize, Answer<PartitionConfiguration>),
    /// A change was proposed.
    Changing(usize, Answer<ReplicationResult>),
}

impl MembershipStep {
    fn node(&self) -> usize {
        match self {
            Self::Asking(node, _) | Self::Changing(node, _) => *node,
        }
    }
}

impl NodeSimulation {
    /// Starts a membership change of partition slot `p` (unless one is in progress) and
    /// schedules the next.
    pub(super) fn change_membership(&mut self, p: usize) {
        let at = self.now
            + self.client_rng.between(
                self.config.membership_interval_ms_min,
                self.config.membership_interval_ms_max,
            );
        self.agenda.push(at, Event::Membership { p });
        if self.membership[p].is_some() {
            return;
        }
        let node = self.target(p);
        let (reply, answer) = oneshot::channel();
        if self.send(node, p, Request::Configuration { reply }).is_ok() {
            self.membership[p] = Some(MembershipStep::Asking(node, answer));
        }
    }

    /// Looks at the answer partition slot `p`'s membership change waits for on `node`.
    pub(super) fn poll_membership(&mut self, p: usize, node: usize) {
        let Some(step) = self.membership[p].take_if(|step| step.node() == node) else {
            return;
        };
        match step {
            MembershipStep::Asking(node, mut answer) => match answer.try_recv() {
                Err(TryRecvError::Empty) => {
                    self.membership[p] = Some(MembershipStep::Asking(node, answer));
                }
                Ok(Ok(configurations)) => self.propose_step(p, node, &configurations.current),
                Ok(Err(_)) | Err(TryRecvError::Closed) => {}
            },
            MembershipStep::Changing(node, mut answer) => match answer.try_recv() {
                Err(TryRecvError::Empty) => {
                    self.membership[p] = Some(MembershipStep::Changing(node, answer));
                }
                Ok(Ok(result)) if result.status == Status::Success => {
                    self.report.membership_changes += 1;
                }
                Ok(_) | Err(TryRecvError::Closed) => {}
            },
        }
    }

    /// Proposes on `node` one step from `current`: a learner promoted or a voter (but the
    /// last) demoted, uniformly.
    fn propose_step(&mut self, p: usize, node: usize, current: &Configuration) {
        let nodes = self.nodes.len();
        let candidates: Vec<NodeId> = (0..nodes)
            .map(|n| NodeId(n as u64 + 1))
            .filter(|id| !current.is_voter(*id) || current.voters().len() > 1)
            .collect();
        if candidates.is_empty() {
            return;
        }
        let moved = candidates[self.client_rng.index(candidates.len())];
        let (mut voters, mut learners) = (current.voters().to_vec(), current.learners().to_vec());
        if current.is_voter(moved) {
            voters.retain(|id| *id != moved);
            learners.push(moved);
        } else {
            learners.retain(|id| *id != moved);
            voters.push(moved);
        }
        let Ok(configuration) = Configuration::new(voters, learners) else {
            return;
        };
        self.trace.event(
            20,
            &[
                self.now,
                node as u64,
                p as u64,
                moved.0,
                configuration.voters().len() as u64,
            ],
        );
        let ticket = Ticket(self.clients.take_id());
        let (reply, answer) = oneshot::channel();
        let request = Request::ChangeConfiguration {
            configuration,
            ticket,
            reply,
        };
        if self.send(node, p, request).is_ok() {
            self.membership[p] = Some(MembershipStep::Changing(node, answer));
        }
    }
}
