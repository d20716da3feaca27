//! Replacing a node's disks (decision 0004 point 7, the roster's rule): now and then during the
//! fault phase a member - a voter, a learner, or partition 0's leader - crashes and comes back
//! on an empty data directory: empty simulated disks, an application that starts from nothing
//! (`SimNode::wipe`). It forgot its log and its votes, so it presents a new incarnation: it
//! stays down until partition 0's leader accepted `RosterChange::Add` for its id with that
//! incarnation (as `Raft::join_cluster_with_seeds` asks it; the roster makes it a learner
//! again, and every partition's leader demotes it, then promotes it once it caught up), then
//! opens its partitions as a joiner does: partition 0 from the roster of its admission and the
//! others from that roster's target, itself a learner in both, never a voter of the initial
//! configuration. The checkers' truth keeps the lost disks' logs (`Truth::lost_disks`): the
//! log checkers compare only the disks a node has; a write acknowledged before the loss counts
//! the lost copy as its node's (the one failure the cluster tolerates).
//!
//! One replacement at a time, a voter only while at least three vote (the others keep a
//! majority), and only while the membership operator has no change in flight; while the
//! replaced node waits to be admitted the operator changes nothing else (a change that needs
//! the replaced node's vote would never commit). The admission is asked again until it is
//! accepted, after the faults stopped too.

use tokio::sync::oneshot::{self, error::TryRecvError};

use super::NodeSimulation;
use super::run::Event;
use super::sim_node::FirstMembers;
use crate::core::{NodeId, Status, Ticket};
use crate::shard::membership::{MemberRole, Roster, RosterChange};
use crate::shard::{Leadership, Refusal, ReplicationResult, Request, SYSTEM_PARTITION};
use crate::sim::checkers::Violation;

use super::checkers::RECOVERY;

/// How soon an admission not accepted yet is asked again.
const ADMISSION_RETRY_MS: u64 = 300;
/// The first incarnation replaced disks present (the initial members have 0 in the genesis
/// roster, the nodes the operator adds 1): each replacement takes the next one.
const FIRST_REPLACED_INCARNATION: u64 = 1_000;
/// Share of replacements that aim at partition 0's leader.
const LEADER_PER_MILLION: u32 = 333_333;

/// The replacement in progress.
#[derive(Default)]
pub(super) struct Replacer {
    /// The node whose disks were replaced and that waits to be admitted again, with the
    /// incarnation it presents.
    waiting: Option<(usize, u64)>,
    /// Its `Add` asked: the node asked and the answer.
    step: Option<(usize, oneshot::Receiver<Result<ReplicationResult, Refusal>>)>,
    /// Replacements made so far (each takes its own incarnation).
    made: u64,
}

impl NodeSimulation {
    /// Schedules the first replacement (none when the configuration has none).
    pub(super) fn schedule_replacement(&mut self) {
        if self.config.replace_interval_ms_max > 0 {
            let at = self.nemesis_rng.between(
                self.config.replace_interval_ms_min,
                self.config.replace_interval_ms_max,
            );
            self.agenda.push(at, Event::Replace);
        }
    }

    /// Whether a replaced node waits to be admitted again.
    pub(super) fn replacement_waits(&self) -> bool {
        self.replacer.waiting.is_some()
    }

    /// Whether `node` is a replaced node waiting to be admitted (it starts then, not before).
    pub(super) fn awaits_admission(&self, node: usize) -> bool {
        self.replacer.waiting.is_some_and(|(n, _)| n == node)
    }

    /// Asks the admission of the waiting node again, or replaces a member's disks; schedules
    /// the next time.
    pub(super) fn replace(&mut self) -> Result<(), Violation> {
        if let Some((node, incarnation)) = self.replacer.waiting {
            self.agenda
                .push(self.now + ADMISSION_RETRY_MS, Event::Replace);
            if self.replacer.step.is_none() {
                // An answer lost with its node: the roster may have admitted it already.
                let leader = self.system_leader_hint();
                self.admitted(leader)?;
                if self.replacer.waiting.is_some() {
                    self.ask_admission(node, incarnation);
                }
            }
            return Ok(());
        }
        if self.healed_at.is_some() {
            return Ok(());
        }
        let at = self.now
            + self.nemesis_rng.between(
                self.config.replace_interval_ms_min,
                self.config.replace_interval_ms_max,
            );
        self.agenda.push(at, Event::Replace);
        let Some(node) = self.replacement_victim() else {
            return Ok(());
        };
        self.replace_disks(node)
    }

    /// A member whose disks may be replaced now: partition 0's leader now and then, else any
    /// voter or learner; a voter only while three or more vote. Only while the roster is at
    /// rest, as partition 0's leader sees it: the operator's change answered, nothing
    /// uncommitted in partition 0's log (a roster change appended there may make a learner a
    /// voter), and every partition's committed configuration matching the roster. Then the
    /// roster's voters are every configuration's voters, and losing one of three or more
    /// leaves each a majority; losing a voter in flight (a promotion from one voter to two) is
    /// a fault beyond what Raft tolerates.
    fn replacement_victim(&mut self) -> Option<usize> {
        if self.membership.busy() {
            return None;
        }
        let leader = self.system_leader()?;
        let running = self.nodes[leader].running.as_ref()?;
        let roster = running.host.membership().roster()?;
        let progress = running.host.log_progress(SYSTEM_PARTITION);
        let at_rest = running
            .host
            .leadership(SYSTEM_PARTITION)
            .is_some_and(|leadership| leadership.leads())
            && progress.commit_index == progress.last_index
            && running
                .host
                .membership()
                .all_reconciled(roster.version(), running.maps.map().hosted());
        if !at_rest {
            return None;
        }
        let voters = roster.voters().count();
        let replaceable = |node: usize| {
            roster
                .member(NodeId(node as u64 + 1))
                .is_some_and(|m| match m.role {
                    MemberRole::Voter => voters >= 3,
                    MemberRole::Learner => true,
                    MemberRole::Leaving => false,
                })
        };
        if self.nemesis_rng.chance(LEADER_PER_MILLION) && replaceable(leader) {
            return Some(leader);
        }
        let candidates: Vec<usize> = (0..self.nodes.len()).filter(|&n| replaceable(n)).collect();
        (!candidates.is_empty()).then(|| candidates[self.nemesis_rng.index(candidates.len())])
    }

    /// Partition 0's leader in the highest term any running replica of it knows, if one leads
    /// in that term: the simulator's view, not the operators' hint (which now and then names
    /// any node, and may name a stale leader cut off from a newer term; joining seed 8847
    /// replaced a voter of a configuration the newest leader had in flight, judged at rest by
    /// the leader of an older term).
    fn system_leader(&self) -> Option<usize> {
        let views: Vec<(usize, Leadership)> = (0..self.nodes.len())
            .filter_map(|n| {
                let running = self.nodes[n].running.as_ref()?;
                Some((n, running.host.leadership(SYSTEM_PARTITION)?))
            })
            .collect();
        let newest = views.iter().map(|(_, view)| view.term).max()?;
        views
            .iter()
            .find(|(_, view)| view.term == newest && view.leads())
            .map(|(n, _)| *n)
    }

    /// `node` crashes, its disks are replaced by empty ones, and it asks to be admitted with
    /// a new incarnation. The disks are judged before they go (as at every crash), and what
    /// they held is kept as lost.
    fn replace_disks(&mut self, node: usize) -> Result<(), Violation> {
        self.check_disks()?;
        for shard in 0..self.config.shards {
            match self.durable(node, shard) {
                Ok(logs) => self.truth.lost_disks.push((node, shard, logs)),
                Err(error) => return self.checkers.judge(RECOVERY, Err(error)),
            }
        }
        let (exports, imports) = self.nodes[node].app.transfers();
        self.report.snapshot_exports += exports;
        self.report.snapshot_imports += imports;
        self.nodes[node].crash();
        self.nodes[node].wipe();
        let incarnation = FIRST_REPLACED_INCARNATION + self.replacer.made;
        self.replacer.made += 1;
        self.trace.event(25, &[self.now, node as u64, incarnation]);
        if self.tracing {
            eprintln!(
                "{:>8} ms    n{}'s disks replaced: incarnation {incarnation}",
                self.now,
                node + 1
            );
        }
        self.replacer.waiting = Some((node, incarnation));
        self.replacer.step = None;
        self.ask_admission(node, incarnation);
        Ok(())
    }

    /// Asks the node believed to lead partition 0 to add `node` with `incarnation`.
    fn ask_admission(&mut self, node: usize, incarnation: u64) {
        let asked = self.system_leader_hint();
        let (reply, answer) = oneshot::channel();
        let request = Request::ChangeMembership {
            change: RosterChange::Add {
                node: NodeId(node as u64 + 1),
                endpoint: format!("node-{}:7000", node + 1),
                incarnation,
            },
            expected_version: None,
            ticket: Ticket(self.clients.take_id()),
            reply,
        };
        if self.send_to(asked, SYSTEM_PARTITION, request).is_ok() {
            self.replacer.step = Some((asked, answer));
        }
    }

    /// Looks at the answer the admission waits for on `node`; once accepted, the replaced node
    /// starts, opening its partitions from the roster the answer carries.
    pub(super) fn poll_replacement(&mut self, node: usize) -> Result<(), Violation> {
        let Some((asked, mut answer)) = self.replacer.step.take_if(|(asked, _)| *asked == node)
        else {
            return Ok(());
        };
        let received = answer.try_recv();
        if self.tracing && !matches!(received, Err(TryRecvError::Empty)) {
            eprintln!(
                "{:>8} ms    the admission asked of n{}: {received:?}",
                self.now,
                asked + 1
            );
        }
        match received {
            Err(TryRecvError::Empty) => {
                self.replacer.step = Some((asked, answer));
                Ok(())
            }
            Ok(Ok(result)) if result.status == Status::Success => self.admitted(asked),
            // Refused or lost: asked again at the next `Replace`.
            Ok(_) | Err(TryRecvError::Closed) => Ok(()),
        }
    }

    /// The waiting node's `Add` was accepted by `asked`: its roster (partition 0's shard
    /// publishes it before it answers, the joiner's `Done`) decides the first configurations.
    fn admitted(&mut self, asked: usize) -> Result<(), Violation> {
        let Some((node, incarnation)) = self.replacer.waiting else {
            return Ok(());
        };
        let id = NodeId(node as u64 + 1);
        let roster = self.nodes[asked]
            .running
            .as_ref()
            .and_then(|running| running.host.membership().roster())
            .filter(|roster| {
                roster
                    .member(id)
                    .is_some_and(|m| m.incarnation == incarnation)
            });
        let Some(first) = roster.and_then(|roster| first_members(&roster, id)) else {
            // Not the roster of the admission (asked again at the next `Replace`).
            return Ok(());
        };
        self.replacer.waiting = None;
        self.report.replacements += 1;
        self.nodes[node].first = Some(first);
        self.start_node(node)
    }
}

/// What a node admitted by `roster` opens its partitions with: partition 0 the roster's
/// configuration, the others its target (`Roster::partition_target`), `node` a learner in
/// both (`first_from` in `src/node/raft/join.rs`, `user_partition_members` in
/// `src/node/system.rs`). `None` when no other node votes.
fn first_members(roster: &Roster, node: NodeId) -> Option<FirstMembers> {
    let as_learner = |(mut voters, mut learners): (Vec<NodeId>, Vec<NodeId>)| {
        voters.retain(|&n| n != node);
        if !learners.contains(&node) {
            learners.push(node);
            learners.sort_unstable();
        }
        (!voters.is_empty()).then_some((voters, learners))
    };
    let admitted_version = roster.member(node)?.joined_version;
    let configuration = roster.configuration().ok()?;
    let system = as_learner((
        configuration.voters().to_vec(),
        configuration.learners().to_vec(),
    ))?;
    let partitions = as_learner(roster.partition_target())?;
    Some(FirstMembers {
        system,
        partitions,
        admitted_version,
    })
}
