//! The membership workload of the whole-node simulation: an operator changing the roster of
//! partition 0 (decision 0004) through the shard request the `Raft` handle sends, one change
//! at a time: a voter demoted or a learner promoted, and with `membership_moves_nodes` also a
//! node outside the cluster added (as a learner: it catches up by log or
//! snapshot), a learner promoted or removed, a voter demoted, removed, or leaving (removed by
//! partition 0's leader once every partition let it go), the last voter excepted. A removed
//! node keeps its disk and is added again later (Kommander's rejoin). Every
//! partition's leader then reconciles its partition with the roster, one configuration entry
//! at a time, so every partition's voters move under the faults. The operator asks the node it
//! believes leads partition 0, against the roster version that node knows (a stale one gets
//! `StaleMembership`). Once the faults stop it only adds the nodes outside the cluster, so
//! that every node is a member and converges by the end.

use tokio::sync::oneshot::{self, error::TryRecvError};

use super::NodeSimulation;
use super::run::Event;
use crate::core::{NodeId, Role, Status, Term, Ticket};
use crate::shard::membership::{MemberRole, Roster, RosterChange};
use crate::shard::{Refusal, ReplicationResult, Request, SYSTEM_PARTITION};

/// In a million roster changes, how many are followed at once by a second (a burst): a
/// leader that takes two changes in flight makes two voter changes from one configuration.
const BURST_PER_MILLION: u32 = 250_000;

/// The operator: the roster change it watches (the node it was sent to and its answer), the
/// leader of partition 0 the last refusal named, the highest term of partition 0 a leader was
/// sent an eager change in, and the eager change the cut at a new leader's first append drew.
#[derive(Default)]
pub(super) struct Operator {
    step: Option<(usize, oneshot::Receiver<Result<ReplicationResult, Refusal>>)>,
    /// The leader of partition 0 the last refusal named (the elastic operator's too).
    leader_hint: Option<usize>,
    eager_term: Term,
    planned: Option<PlannedChange>,
}

/// The eager change a leader of partition 0 is to be sent in its term (drawn with the cut at
/// its first append, `configuration_cut.rs`), instead of one drawn at random.
#[derive(Debug)]
pub(super) struct PlannedChange {
    /// The leader, by index.
    pub(super) node: usize,
    /// Its term.
    pub(super) term: Term,
    /// The node the change moves.
    pub(super) moved: NodeId,
    pub(super) change: RosterChange,
}

/// A roster change sent: the version it was sent against and the node it moves.
struct Sent {
    version: u64,
    moved: NodeId,
}

impl Operator {
    /// Whether a roster change it asked waits for its answer.
    pub(super) fn busy(&self) -> bool {
        self.step.is_some()
    }

    /// The change to send as `planned.node`'s eager change in `planned.term` (a plan made
    /// for another leader or term is dropped when the next eager change is sent).
    pub(super) fn plan(&mut self, planned: PlannedChange) {
        self.planned = Some(planned);
    }
}

impl NodeSimulation {
    /// Starts a roster change (unless one is in progress) and schedules the next; now and
    /// then ([`BURST_PER_MILLION`]) a second change follows at once.
    pub(super) fn change_membership(&mut self) {
        let at = self.now
            + self.client_rng.between(
                self.config.membership_interval_ms_min,
                self.config.membership_interval_ms_max,
            );
        self.agenda.push(at, Event::Membership);
        // Nothing else while a replaced node waits to be admitted again (`replace.rs`).
        if self.membership.step.is_some() || self.replacement_waits() {
            return;
        }
        let node = self.system_leader_hint();
        let Some(first) = self.send_change(node, None, None) else {
            return;
        };
        if self.healed_at.is_none() && self.client_rng.chance(BURST_PER_MILLION) {
            // The second against the version the first will make: partition 0's leader reads
            // the roster from the configuration in force, the first one's once appended, so
            // only a leader that takes two changes in flight accepts it (the same version
            // would be stale there).
            self.send_change(node, Some((first.version + 1, first.moved)), None);
        }
    }

    /// As soon as `node` claims partition 0's leadership in a term the operator has not seen
    /// (during the faults): a roster change sent to it at once, before the no-op of its term
    /// can have committed; the one planned for it in that term if any, else one drawn.
    fn eager_change(&mut self, node: usize) {
        if self.healed_at.is_some() || self.config.membership_interval_ms_max == 0 {
            return;
        }
        let Some(term) = self.nodes[node]
            .running
            .as_ref()
            .and_then(|running| running.host.leadership(SYSTEM_PARTITION))
            // The role, not `leads()`: that waits for the no-op, which the change must beat.
            .filter(|leadership| leadership.role == Role::Leader)
            .map(|leadership| leadership.term)
        else {
            return;
        };
        if term <= self.membership.eager_term {
            return;
        }
        self.membership.eager_term = term;
        let planned = self
            .membership
            .planned
            .take()
            .filter(|planned| planned.node == node && planned.term == term)
            .map(|planned| (planned.moved, planned.change));
        self.send_change(node, None, planned);
    }

    /// Sends `node` a roster change (`planned`, else one drawn against the roster it knows),
    /// against that roster's version or, for the second of a burst, against `second`'s
    /// version (the one the first makes) and moving another node than the first. The answer
    /// is watched unless another change is.
    fn send_change(
        &mut self,
        node: usize,
        second: Option<(u64, NodeId)>,
        planned: Option<(NodeId, RosterChange)>,
    ) -> Option<Sent> {
        let roster = self.nodes[node]
            .running
            .as_ref()
            .and_then(|running| running.host.membership().roster())?;
        let (moved, change) = match planned {
            Some(planned) => planned,
            None => self.draw_change(&roster)?,
        };
        let version = match second {
            Some((_, first)) if first == moved => return None,
            Some((version, _)) => version,
            None => roster.version(),
        };
        self.trace
            .event(20, &[self.now, node as u64, moved.0, roster.version()]);
        let (reply, answer) = oneshot::channel();
        let request = Request::ChangeMembership {
            change,
            expected_version: Some(version),
            ticket: Ticket(self.clients.take_id()),
            reply,
        };
        self.send_to(node, SYSTEM_PARTITION, request).ok()?;
        if self.membership.step.is_none() {
            self.membership.step = Some((node, answer));
        }
        Some(Sent { version, moved })
    }

    /// A roster change against `roster` (see the module docs), if one is to be made, and the
    /// node it moves.
    fn draw_change(&mut self, roster: &Roster) -> Option<(NodeId, RosterChange)> {
        let healed = self.healed_at.is_some();
        let outside: Vec<NodeId> = (1..=self.nodes.len() as u64)
            .map(NodeId)
            .filter(|&n| roster.member(n).is_none())
            .collect();
        let moved = match healed {
            // Once the faults stop: add the nodes outside the cluster, so that all converge.
            true if outside.is_empty() => return None,
            true => outside[self.client_rng.index(outside.len())],
            false => NodeId(self.client_rng.index(self.nodes.len()) as u64 + 1),
        };
        let voters = roster.voters().count();
        // Without moving nodes: promote and demote only.
        let draw = if self.config.membership_moves_nodes {
            self.client_rng.index(4)
        } else {
            2
        };
        let change = match roster.member(moved).map(|m| m.role) {
            None => RosterChange::Add {
                node: moved,
                endpoint: format!("node-{}:7000", moved.0),
                incarnation: 1,
            },
            // A voter (the leader of partition 0 or of any partition included): demoted,
            // taken out through `Leave` (removed once every partition let it go) or removed
            // at once.
            Some(MemberRole::Voter) if voters > 1 => match draw {
                0 => RosterChange::Leave { node: moved },
                1 => RosterChange::Remove { node: moved },
                _ => RosterChange::Demote { node: moved },
            },
            Some(MemberRole::Learner) => match draw {
                0 => RosterChange::Remove { node: moved },
                _ => RosterChange::Promote { node: moved },
            },
            Some(_) => return None,
        };
        Some((moved, change))
    }

    /// The node believed to lead partition 0, as an operator finds it: the node that says it
    /// leads in the highest term, else the one the last refusal named (any node, now and
    /// then, and when neither is known).
    pub(super) fn system_leader_hint(&mut self) -> usize {
        let claimed = (0..self.nodes.len())
            .filter_map(|n| {
                let running = self.nodes[n].running.as_ref()?;
                let leadership = running.host.leadership(SYSTEM_PARTITION)?;
                leadership.leads().then_some((leadership.term, n))
            })
            .max()
            .map(|(_, n)| n);
        match claimed.or(self.membership.leader_hint) {
            Some(node) if !self.client_rng.chance(150_000) => node,
            _ => self.client_rng.index(self.nodes.len()),
        }
    }

    /// Partition 0's leader as a `NotLeader` refusal named it (`None`: none known), for the
    /// operators' next requests.
    pub(super) fn note_system_leader(&mut self, leader: Option<NodeId>) {
        self.membership.leader_hint = leader
            .map(|id| id.0 as usize)
            .filter(|id| (1..=self.nodes.len()).contains(id))
            .map(|id| id - 1);
    }

    /// Looks at the answer the roster change waits for on `node`.
    pub(super) fn poll_membership(&mut self, node: usize) {
        self.eager_change(node);
        let Some((asked, mut answer)) = self.membership.step.take_if(|(asked, _)| *asked == node)
        else {
            return;
        };
        match answer.try_recv() {
            Err(TryRecvError::Empty) => self.membership.step = Some((asked, answer)),
            Ok(Ok(result)) if result.status == Status::Success => {
                self.report.membership_changes += 1;
            }
            Ok(Err(Refusal::NotLeader { leader })) => self.note_system_leader(leader),
            Ok(_) | Err(TryRecvError::Closed) => {}
        }
    }
}
