//! A tiny hand-driven cluster: replicas, a FIFO network with cut links, disks that persist
//! immediately unless stalled, crashes that lose what was not durable, and safety checks run
//! after every pump.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;
use kommander_raft::core::{
    Configuration, DurableState, Entry, EntryKind, Floor, HardState, LogIndex, Message,
    MessageBody, NodeId, Outcome, PartitionId, ReadState, Ready, Replica, ReplicaConfig, Role,
    SoftState, Status, Term, Ticket,
};

pub(crate) const P: PartitionId = PartitionId(1);

/// A small deterministic generator for chaos schedules.
pub(crate) struct Lcg(pub(crate) u64);

impl Lcg {
    pub(crate) fn next(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % bound
    }
}

/// The durable image of one node: what a WAL would hold.
#[derive(Clone, Debug, Default)]
pub(crate) struct Disk {
    pub(crate) hard_state: HardState,
    pub(crate) floor: LogIndex,
    pub(crate) floor_term: Term,
    pub(crate) floor_configuration: Option<Configuration>,
    pub(crate) entries: Vec<Entry>,
}

impl Disk {
    fn write(&mut self, ready: &UnsyncedWrite) {
        if let Some(snapshot) = &ready.installed_snapshot {
            // As the WAL's boundary: the entries after a matching last entry stay.
            let matching = self
                .entries
                .iter()
                .find(|e| e.index == snapshot.index)
                .map(|e| e.term)
                .or((snapshot.index == self.floor).then_some(self.floor_term));
            if matching == Some(snapshot.term) {
                self.entries.retain(|e| e.index > snapshot.index);
            } else {
                self.entries.clear();
            }
            self.floor = snapshot.index;
            self.floor_term = snapshot.term;
            self.floor_configuration = Some(snapshot.configuration.clone());
        }
        if let Some(hs) = ready.hard_state {
            self.hard_state = hs;
        }
        if let Some(first) = ready.entries.first() {
            self.entries.retain(|e| e.index < first.index);
            self.entries.extend(ready.entries.iter().cloned());
        }
        if let Some(floor) = &ready.compaction_floor {
            self.floor_term = floor.term;
            self.floor = floor.index;
            self.floor_configuration = Some(floor.configuration.clone());
            self.entries.retain(|e| e.index > floor.index);
        }
    }
}

struct UnsyncedWrite {
    number: u64,
    installed_snapshot: Option<Floor>,
    hard_state: Option<HardState>,
    entries: Vec<Entry>,
    compaction_floor: Option<Floor>,
    gated: Vec<Message>,
}

pub(crate) struct Node {
    pub(crate) replica: Replica,
    pub(crate) config: ReplicaConfig,
    pub(crate) disk: Disk,
    /// Entries the application received, in order (survives crashes: the application's state
    /// is durable together with its applied index).
    pub(crate) applied: Vec<Entry>,
    pub(crate) applied_index: LogIndex,
    pub(crate) outcomes: Vec<Outcome>,
    pub(crate) read_states: Vec<ReadState>,
    pub(crate) snapshot_required: Vec<NodeId>,
    /// Snapshot chunks and acknowledgements handed to the runtime, in order.
    pub(crate) snapshot_messages: Vec<Message>,
    /// Every soft state a Ready reported, in order.
    pub(crate) soft_states: Vec<SoftState>,
    pub(crate) disk_stalled: bool,
    unsynced: VecDeque<UnsyncedWrite>,
    pub(crate) up: bool,
}

pub(crate) struct Cluster {
    pub(crate) nodes: BTreeMap<NodeId, Node>,
    pub(crate) queue: VecDeque<Message>,
    cut: BTreeSet<(NodeId, NodeId)>,
    /// Every (term, leader) ever observed, for election safety.
    leaders: BTreeMap<Term, NodeId>,
    /// Every committed (index → entry) ever delivered anywhere, for state machine safety.
    committed: BTreeMap<LogIndex, (Term, EntryKind, Ticket)>,
    /// Messages observed on the wire (name, from, to), for scripted assertions.
    pub(crate) trace: Vec<(String, NodeId, NodeId)>,
    next_ticket: u64,
}

pub(crate) fn ids(n: u64) -> Vec<NodeId> {
    (1..=n).map(NodeId).collect()
}

pub(crate) fn payload(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

impl Cluster {
    /// `voters` voters and `learners` learners, ids 1.. in that order, default config.
    pub(crate) fn new(voters: u64, learners: u64) -> Self {
        Self::with_config(voters, learners, |_| {})
    }

    pub(crate) fn with_config(
        voters: u64,
        learners: u64,
        tweak: impl Fn(&mut ReplicaConfig),
    ) -> Self {
        let voter_ids = ids(voters);
        let learner_ids: Vec<NodeId> = (voters + 1..=voters + learners).map(NodeId).collect();
        let mut nodes = BTreeMap::new();
        for id in voter_ids.iter().chain(&learner_ids) {
            let mut config = ReplicaConfig::new(*id, P, voter_ids.clone());
            config.learners = learner_ids.clone();
            config.seed = 42;
            tweak(&mut config);
            let replica =
                Replica::new(config.clone(), DurableState::default()).expect("valid config");
            nodes.insert(
                *id,
                Node {
                    replica,
                    config,
                    disk: Disk::default(),
                    applied: Vec::new(),
                    applied_index: LogIndex::ZERO,
                    outcomes: Vec::new(),
                    read_states: Vec::new(),
                    snapshot_required: Vec::new(),
                    snapshot_messages: Vec::new(),
                    soft_states: Vec::new(),
                    disk_stalled: false,
                    unsynced: VecDeque::new(),
                    up: true,
                },
            );
        }
        Self {
            nodes,
            queue: VecDeque::new(),
            cut: BTreeSet::new(),
            leaders: BTreeMap::new(),
            committed: BTreeMap::new(),
            trace: Vec::new(),
            next_ticket: 1,
        }
    }

    pub(crate) fn node(&self, id: u64) -> &Node {
        &self.nodes[&NodeId(id)]
    }

    pub(crate) fn replica(&self, id: u64) -> &Replica {
        &self.node(id).replica
    }

    pub(crate) fn replica_mut(&mut self, id: u64) -> &mut Replica {
        &mut self
            .nodes
            .get_mut(&NodeId(id))
            .expect("node exists")
            .replica
    }

    pub(crate) fn node_mut(&mut self, id: u64) -> &mut Node {
        self.nodes.get_mut(&NodeId(id)).expect("node exists")
    }

    pub(crate) fn ticket(&mut self) -> Ticket {
        self.next_ticket += 1;
        Ticket(self.next_ticket)
    }

    // ---- network ---------------------------------------------------------------------------

    /// Cuts both directions between `id` and every other node.
    pub(crate) fn isolate(&mut self, id: u64) {
        let all: Vec<NodeId> = self.nodes.keys().copied().collect();
        for other in all {
            if other != NodeId(id) {
                self.cut.insert((NodeId(id), other));
                self.cut.insert((other, NodeId(id)));
            }
        }
    }

    /// Cuts one direction.
    pub(crate) fn cut_one_way(&mut self, from: u64, to: u64) {
        self.cut.insert((NodeId(from), NodeId(to)));
    }

    /// Restores every link.
    pub(crate) fn heal(&mut self) {
        self.cut.clear();
    }

    /// Splits the cluster into groups that only talk within themselves.
    pub(crate) fn partition(&mut self, groups: &[&[u64]]) {
        let all: Vec<NodeId> = self.nodes.keys().copied().collect();
        let group_of = |n: NodeId| groups.iter().position(|g| g.contains(&n.0));
        for &a in &all {
            for &b in &all {
                if a != b && group_of(a) != group_of(b) {
                    self.cut.insert((a, b));
                }
            }
        }
    }

    fn enqueue(&mut self, messages: Vec<Message>) {
        for m in messages {
            if !self.cut.contains(&(m.from, m.to)) {
                self.queue.push_back(m);
            }
        }
    }

    // ---- driving ---------------------------------------------------------------------------

    /// Handles every pending Ready of `id` (persisting unless its disk is stalled).
    pub(crate) fn process(&mut self, id: NodeId) {
        loop {
            let node = self.nodes.get_mut(&id).expect("node exists");
            if !node.up || !node.replica.has_ready() {
                break;
            }
            let ready: Ready = node.replica.ready();
            let soft = node.replica.soft_state();
            if soft.role == Role::Leader {
                let previous = self.leaders.insert(soft.term, id);
                assert!(
                    previous.is_none() || previous == Some(id),
                    "election safety: two leaders in {}: {previous:?} and {id}",
                    soft.term
                );
            }
            let node = self.nodes.get_mut(&id).expect("node exists");
            node.outcomes.extend(ready.outcomes.iter().copied());
            node.read_states.extend(ready.read_states.iter().copied());
            node.snapshot_required
                .extend(ready.snapshot_required.iter().copied());
            node.snapshot_messages.extend(ready.snapshot_messages);
            node.soft_states.extend(ready.soft_state);
            let write = UnsyncedWrite {
                number: ready.number,
                installed_snapshot: ready.installed_snapshot,
                hard_state: ready.hard_state,
                entries: ready.entries,
                compaction_floor: ready.compaction_floor,
                gated: ready
                    .persisted_messages
                    .release(ready.number)
                    .expect("own number"),
            };
            node.unsynced.push_back(write);
            let now = ready.messages;
            let delivered = ready.committed_entries;
            let through = ready.committed_through;
            self.enqueue(now);
            if !self.nodes[&id].disk_stalled {
                self.sync_disk(id);
            }
            self.deliver(id, delivered, through);
        }
    }

    fn deliver(&mut self, id: NodeId, entries: Vec<Entry>, through: LogIndex) {
        for e in &entries {
            let key = (e.term, e.kind, e.ticket);
            let previous = self.committed.insert(e.index, key);
            assert!(
                previous.is_none() || previous == Some(key),
                "state machine safety: {id} delivered {key:?} at {} where {previous:?} was",
                e.index
            );
        }
        let node = self.nodes.get_mut(&id).expect("node exists");
        let mut previous = node.applied.last().map(|e| e.index);
        for e in &entries {
            assert!(
                previous.is_none_or(|p| p < e.index),
                "delivery in log order, exactly once, on {id}: {} after {previous:?}",
                e.index
            );
            previous = Some(e.index);
        }
        node.applied.extend(entries);
        if through > node.applied_index {
            node.applied_index = through;
        }
        node.replica.applied(through);
    }

    /// Makes every unsynced write of `id` durable, then releases its gated messages.
    pub(crate) fn sync_disk(&mut self, id: NodeId) {
        let node = self.nodes.get_mut(&id).expect("node exists");
        let mut released = Vec::new();
        let mut last = None;
        while let Some(write) = node.unsynced.pop_front() {
            node.disk.write(&write);
            last = Some(write.number);
            released.extend(write.gated);
        }
        if let Some(number) = last {
            node.replica.persisted(number);
        }
        self.enqueue(released);
    }

    pub(crate) fn stall_disk(&mut self, id: u64, stalled: bool) {
        self.node_mut(id).disk_stalled = stalled;
        if !stalled {
            self.sync_disk(NodeId(id));
        }
    }

    /// Delivers one queued message (processing Readies around it). Returns false when idle.
    pub(crate) fn step_one(&mut self) -> bool {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in &ids {
            self.process(*id);
        }
        let Some(m) = self.queue.pop_front() else {
            return false;
        };
        self.trace.push((m.body.name().to_string(), m.from, m.to));
        let to = m.to;
        if self.nodes.get(&to).is_some_and(|n| n.up) && !self.cut.contains(&(m.from, m.to)) {
            let _ = self
                .nodes
                .get_mut(&to)
                .expect("node exists")
                .replica
                .step(m);
            self.process(to);
        }
        true
    }

    /// Delivers messages until the network is quiet.
    pub(crate) fn settle(&mut self) {
        for _ in 0..100_000 {
            if !self.step_one() {
                return;
            }
        }
        panic!("the cluster did not settle within 100 000 messages");
    }

    /// Delivers only the queued messages matching `keep`, dropping the others, until quiet.
    pub(crate) fn settle_filtered(&mut self, keep: impl Fn(&Message) -> bool) {
        self.settle_mapped(|m| keep(&m).then_some(m));
    }

    /// Delivers queued messages rewritten by `rewrite` (`None` drops), until quiet.
    pub(crate) fn settle_mapped(&mut self, rewrite: impl Fn(Message) -> Option<Message>) {
        for _ in 0..100_000 {
            let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
            for id in &ids {
                self.process(*id);
            }
            let Some(m) = self.queue.pop_front() else {
                return;
            };
            if let Some(m) = rewrite(m) {
                self.queue.push_front(m);
                self.step_one();
            }
        }
        panic!("the cluster did not settle within 100 000 messages");
    }

    /// Delivers queued messages in random order, dropping `drop_pct` % and duplicating
    /// `duplicate_pct` % of them, until the network is quiet.
    pub(crate) fn settle_chaos(&mut self, rng: &mut Lcg, drop_pct: u64, duplicate_pct: u64) {
        for _ in 0..100_000 {
            let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
            for id in &ids {
                self.process(*id);
            }
            if self.queue.is_empty() {
                return;
            }
            let pick = rng.next(self.queue.len() as u64) as usize;
            let Some(m) = self.queue.remove(pick) else {
                return;
            };
            let roll = rng.next(100);
            if roll < drop_pct {
                continue;
            }
            if roll < drop_pct + duplicate_pct {
                let at = rng.next(self.queue.len() as u64 + 1) as usize;
                self.queue.insert(at, m.clone());
            }
            self.queue.push_front(m);
            self.step_one();
        }
        panic!("the cluster did not settle within 100 000 messages");
    }

    /// Ticks every live node once, then settles.
    pub(crate) fn tick(&mut self) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            let node = self.nodes.get_mut(&id).expect("node exists");
            if node.up {
                node.replica.tick();
            }
        }
        self.settle();
    }

    pub(crate) fn ticks(&mut self, n: usize) {
        for _ in 0..n {
            self.tick();
        }
    }

    /// Ticks only `id` until it starts a (pre-)campaign, then settles: the scripted way to make
    /// one node win an election.
    pub(crate) fn campaign(&mut self, id: u64) {
        self.campaign_with(id, Some);
    }

    /// As [`Cluster::campaign`], delivering messages rewritten by `rewrite`.
    pub(crate) fn campaign_with(&mut self, id: u64, rewrite: impl Fn(Message) -> Option<Message>) {
        self.tick_until_campaign(id);
        self.settle_mapped(rewrite);
    }

    /// Ticks only `id` until it starts a (pre-)campaign, without delivering anything.
    pub(crate) fn tick_until_campaign(&mut self, id: u64) {
        for _ in 0..1000 {
            self.replica_mut(id).tick();
            if self.replica(id).role() != Role::Follower {
                return;
            }
        }
        panic!("node {id} never campaigned");
    }

    /// Makes `id` leader (campaign + settle) and asserts it.
    pub(crate) fn elect(&mut self, id: u64) {
        self.campaign(id);
        assert_eq!(
            self.replica(id).role(),
            Role::Leader,
            "node {id} should lead"
        );
    }

    /// The unique live leader of the highest term, if any.
    pub(crate) fn leader(&self) -> Option<u64> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.up && n.replica.is_leader())
            .max_by_key(|(_, n)| n.replica.term())
            .map(|(id, _)| id.0)
    }

    pub(crate) fn propose(&mut self, id: u64, data: &str) -> LogIndex {
        let ticket = self.ticket();
        self.replica_mut(id)
            .propose(ticket, true, payload(data))
            .expect("leader accepts")
    }

    /// Asserts that `id` refuses a proposal.
    pub(crate) fn propose_refused(&mut self, id: u64) {
        let ticket = self.ticket();
        assert!(
            self.replica_mut(id)
                .propose(ticket, true, payload("refused"))
                .is_err()
        );
    }

    /// Transfers the leader's application state up to its in-memory floor to `follower` (what
    /// a runtime's snapshot transfer does) and installs it there, then settles.
    pub(crate) fn transfer_snapshot(&mut self, leader: u64, follower: u64) {
        self.try_transfer_snapshot(leader, follower)
            .expect("snapshot accepted");
        self.settle();
    }

    /// As [`Cluster::transfer_snapshot`] without settling; errors are the follower's refusal.
    pub(crate) fn try_transfer_snapshot(
        &mut self,
        leader: u64,
        follower: u64,
    ) -> Result<(), Status> {
        if !self.node(follower).up {
            return Err(Status::Errored);
        }
        let r = self.replica(leader);
        let (term, floor) = (r.term(), r.compaction_floor());
        let floor_term = r.term_at(floor).ok_or(Status::Errored)?;
        let configuration = r.configuration_at(floor).ok_or(Status::Errored)?.clone();
        let state: Vec<Entry> = self
            .node(leader)
            .applied
            .iter()
            .filter(|e| e.index <= floor)
            .cloned()
            .collect();
        let node = self.node_mut(follower);
        let before = node.replica.delivered_index();
        node.replica.install_snapshot(
            NodeId(leader),
            term,
            Floor {
                index: floor,
                term: floor_term,
                configuration,
            },
            (0, 0),
        )?;
        if before < floor && node.replica.delivered_index() == floor {
            node.applied = state;
            node.applied_index = floor;
        }
        self.replica_mut(leader)
            .report_snapshot_installed(NodeId(follower), floor);
        Ok(())
    }

    // ---- faults ----------------------------------------------------------------------------

    /// Crashes `id`: everything not durable is lost, including queued messages to it.
    pub(crate) fn crash(&mut self, id: u64) {
        let node = self.node_mut(id);
        node.up = false;
        node.unsynced.clear();
        self.queue
            .retain(|m| m.to != NodeId(id) && m.from != NodeId(id));
    }

    /// Restarts `id` from its disk.
    pub(crate) fn restart(&mut self, id: u64) {
        let node = self.node_mut(id);
        let durable = DurableState {
            hard_state: node.disk.hard_state,
            floor: node.disk.floor,
            floor_term: node.disk.floor_term,
            floor_configuration: node.disk.floor_configuration.clone(),
            entries: node.disk.entries.clone(),
            // Beyond the disk's log after a snapshot whose boundary a crash lost.
            applied: node.applied_index.max(node.disk.floor),
        };
        node.replica = Replica::new(node.config.clone(), durable).expect("durable state is valid");
        node.up = true;
    }

    // ---- observations ----------------------------------------------------------------------

    /// Payloads the application of `id` received, as strings.
    pub(crate) fn applied_payloads(&self, id: u64) -> Vec<String> {
        self.node(id)
            .applied
            .iter()
            .filter(|e| e.kind == EntryKind::Normal)
            .map(|e| String::from_utf8_lossy(&e.payload).into_owned())
            .collect()
    }

    /// (index, term) of every entry in `id`'s in-memory log above the floor.
    pub(crate) fn log_of(&self, id: u64) -> Vec<(u64, u64)> {
        let r = self.replica(id);
        let mut out = Vec::new();
        let mut i = r.compaction_floor().next();
        while let Some(e) = r.entry(i) {
            out.push((e.index.0, e.term.0));
            i = i.next();
        }
        out
    }

    /// Log Matching over every pair of live nodes: equal (index, term) implies equal prefixes.
    pub(crate) fn check_log_matching(&self) {
        let logs: Vec<(u64, Vec<(u64, u64)>)> = self
            .nodes
            .keys()
            .map(|id| (id.0, self.log_of(id.0)))
            .collect();
        for (a, la) in &logs {
            for (b, lb) in &logs {
                for (ea, eb) in la.iter().zip(lb) {
                    if ea.0 == eb.0 && ea.1 == eb.1 {
                        let pa: Vec<_> = la.iter().take_while(|e| e.0 <= ea.0).collect();
                        let pb: Vec<_> = lb.iter().take_while(|e| e.0 <= eb.0).collect();
                        let start = pa.len().min(pb.len());
                        assert_eq!(
                            pa[pa.len() - start..],
                            pb[pb.len() - start..],
                            "log matching between {a} and {b}"
                        );
                    }
                }
            }
        }
    }

    /// Names of messages seen so far matching `name`, as (from, to).
    pub(crate) fn sent(&self, name: &str) -> Vec<(u64, u64)> {
        self.trace
            .iter()
            .filter(|(n, _, _)| n == name)
            .map(|(_, f, t)| (f.0, t.0))
            .collect()
    }

    pub(crate) fn clear_trace(&mut self) {
        self.trace.clear();
    }
}

/// A message from `from` to `to` in partition `P`.
pub(crate) fn msg(from: u64, to: u64, term: u64, body: MessageBody) -> Message {
    Message {
        partition: P,
        from: NodeId(from),
        to: NodeId(to),
        term: Term(term),
        body,
    }
}
