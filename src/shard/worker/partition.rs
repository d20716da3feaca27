//! The partitions a shard hosts: each one's replica, restore phase, WAL view and waiters, the
//! list of partitions touched this turn (whose Readies the loop gathers), the active list (the
//! partitions a tick visits: the leaders, the held replicas, the ones just woken or stepped
//! down), the awake followers by the tick their election timer runs out at (visited then, the
//! ticks they skipped handed over at the first access: `Clock`) and the quiesced ones'
//! registrations (`quiescence.rs`).

use std::collections::BTreeSet;
use std::collections::hash_map::Entry;
use std::num::NonZeroU64;
use std::sync::Arc;

use tokio::sync::watch;

use super::announce::Announced;
use super::membership::MembershipFacts;
use super::quiescence::Quiesced;
use super::restore::Restore;
use crate::core::{LogIndex, PartitionId, Replica};
use crate::shard::partitions::{Access, PartitionMap};
use crate::shard::wal_records::WalView;
use crate::shard::{
    LogProgress, PartitionState, Refusal, ReplicationResult, Reply, ShardConfig, StableHashMap,
};

/// The operations waiting for one outcome: almost always one, held inline, so a write's wait
/// takes no allocation of its own (a `Vec` per write was one of its few mallocs).
#[derive(Debug)]
pub(crate) struct Waiting {
    /// The first operation.
    first: Reply<ReplicationResult>,
    /// The later ones (an outcome asked for again; empty, unallocated, otherwise).
    more: Vec<Reply<ReplicationResult>>,
}

impl Waiting {
    /// The waiting operations' replies, in the order they came.
    pub(crate) fn into_replies(self) -> impl Iterator<Item = Reply<ReplicationResult>> {
        std::iter::once(self.first).chain(self.more)
    }
}

/// One hosted partition.
///
/// Laid out in declaration order (`repr(C)`): what a visit reads of the slot (its clock, its
/// flags, its progress), then the replica, whose own hot fields come first (see
/// [`Replica`]): at thousands of active partitions each visit misses the cache once per line
/// it touches.
#[derive(Debug, Default)]
#[repr(C)]
pub(crate) struct Slot {
    /// The tick its replica is ticked to (`Partitions::clock`): the ticks since are owed to
    /// it, and handed over before anything reaches it (`Clock::catch_up`).
    ticked_to: u64,
    /// The restore phase, while the partition restores.
    pub(crate) restore: Option<Box<Restore>>,
    /// Its channel in the leadership table, kept so that publishing takes no table lock.
    pub(crate) state: Option<Arc<watch::Sender<PartitionState>>>,
    /// The log progress last published in the leadership table.
    pub(crate) published: LogProgress,
    /// What the membership work's look reads of it, as last noted after a gathering (`None`:
    /// not noted yet).
    membership_facts: Option<MembershipFacts>,
    /// The (term, leader) its last `LeaderChanged` event announced (`announce.rs`).
    pub(crate) announced: Option<Announced>,
    /// Whether a snapshot import is finishing: the partition is held (nothing stepped,
    /// ticked, gathered or executed) until it returns.
    pub(crate) installing: bool,
    /// Whether it is in the touched list.
    dirty: bool,
    /// Whether its replica reported that it quiesced (and not yet that it woke).
    quiesced: bool,
    /// Whether it is in the active list.
    listed_active: bool,
    /// Whether it is on the list of partitions the next tick's membership work looks at.
    listed_membership: bool,
    /// Whether the channel had a subscriber at the last tick turn that looked (`ready.rs`).
    pub(crate) subscribed: bool,
    /// The replica (`None` while its log is read back from the WAL).
    pub(crate) replica: Option<Replica>,
    /// What the WAL holds for it.
    pub(crate) view: WalView,
    /// Operations waiting for their outcome, by outcome key.
    pub(crate) waiters: StableHashMap<(u8, u64), Waiting>,
    /// The context of the last ReadIndex request (unique per partition and incarnation, so
    /// a late answer to a refused read finds no waiter).
    pub(crate) next_read_context: u64,
    /// ReadIndex requests waiting for their read state, by context (refused together on a
    /// leadership change, in the same order in every run).
    pub(crate) reads: StableHashMap<u64, ReadWaiter>,
    /// Read points known, waiting for the application to apply them.
    pub(crate) reads_waiting_apply: Vec<(LogIndex, ReadWaiter)>,
    /// The tick its replica is next visited at, while it is off the active list
    /// (`Partitions::followers_due`).
    due_at: Option<u64>,
    /// The tick its standing turns caught up at if its replica stays caught up (it is looked
    /// at again then), while it counts towards the promotion window.
    standing_settles_at: Option<u64>,
    /// The standing (caught up, voter) the membership work last recorded for it (`None`:
    /// none yet, or its settle tick came, which records it again).
    standing_recorded: Option<(bool, bool)>,
    /// The roster version its committed configuration matched when the membership work last
    /// recorded it (`None`: not recorded yet).
    reconciled_recorded: Option<Option<u64>>,
}

impl Slot {
    /// A partition served by `replica`.
    pub(crate) fn serving(replica: Replica) -> Self {
        Self {
            replica: Some(replica),
            ..Self::default()
        }
    }

    /// A partition whose log is read back from the WAL, which holds `view` of it.
    pub(crate) fn restoring_from(restore: Restore, view: WalView) -> Self {
        Self {
            restore: Some(Box::new(restore)),
            view,
            ..Self::default()
        }
    }

    /// Whether the partition is restoring (requests get `RestoreInProgress`, messages are
    /// dropped).
    pub(crate) fn restoring(&self) -> bool {
        self.restore.is_some()
    }

    /// Whether its replica reported that it quiesced (and not yet that it woke).
    pub(crate) fn is_quiesced(&self) -> bool {
        self.quiesced
    }

    /// Whether `standing` (caught up, voter) differs from what the membership work last
    /// recorded for the partition, remembering it: a tick that finds the same standing need
    /// not record it (the table counts the ticks between two records, and the settle tick
    /// records it again).
    pub(crate) fn standing_changed(&mut self, standing: (bool, bool)) -> bool {
        self.standing_recorded.replace(standing) != Some(standing)
    }

    /// Whether the roster version the committed configuration matches (`version`) differs
    /// from what the membership work last recorded for the partition, remembering it.
    pub(crate) fn reconciled_changed(&mut self, version: Option<u64>) -> bool {
        self.reconciled_recorded.replace(version) != Some(version)
    }

    /// Whether `facts` differ from the membership facts last noted for the partition,
    /// remembering them.
    pub(crate) fn membership_facts_changed(&mut self, facts: MembershipFacts) -> bool {
        self.membership_facts.replace(facts) != Some(facts)
    }

    /// Whether the partition is held: restoring from its WAL, or finishing a snapshot import
    /// (requests get `RestoreInProgress`, messages are dropped, its replica neither ticks nor
    /// makes a Ready).
    pub(crate) fn held(&self) -> bool {
        self.restoring() || self.installing
    }

    /// Registers `reply` as a waiter of the outcome of `key` (`outcome_key`).
    pub(crate) fn add_waiter(&mut self, key: (u8, u64), reply: Reply<ReplicationResult>) {
        match self.waiters.entry(key) {
            Entry::Vacant(vacant) => {
                vacant.insert(Waiting {
                    first: reply,
                    more: Vec::new(),
                });
            }
            Entry::Occupied(occupied) => occupied.into_mut().more.push(reply),
        }
    }

    /// Answers every operation and read waiting on the partition with `refusal`.
    pub(crate) fn refuse_waiters(&mut self, refusal: &Refusal) {
        for (_, waiters) in self.waiters.drain() {
            for reply in waiters.into_replies() {
                let _ = reply.send(Err(refusal.clone()));
            }
        }
        for (_, read) in self.reads.drain() {
            let _ = read.reply.send(Err(refusal.clone()));
        }
        for (_, read) in self.reads_waiting_apply.drain(..) {
            let _ = read.reply.send(Err(refusal.clone()));
        }
    }

    /// Answers `read` with its read point `index`, which this replica's application has
    /// applied, or refuses it `NotHosted` when it is fenced and the fence, judged again now
    /// against `map` (this node's committed map) and the generation entries the partition's
    /// log holds, no longer lets it through (`partitions/fence.rs`: why a follower needs this
    /// second judgement).
    pub(crate) fn answer_read(
        &self,
        partition: PartitionId,
        map: &PartitionMap,
        index: LogIndex,
        read: ReadWaiter,
    ) {
        let admitted = read.expected_generation.is_none()
            || map.admits(
                partition,
                self.view.marks().generation,
                Access::Read,
                read.expected_generation,
            );
        let answer = if admitted {
            Ok(index)
        } else {
            Err(Refusal::NotHosted)
        };
        let _ = read.reply.send(answer);
    }
}

/// A linearizable read waiting on a partition: its answer, and the generation of the
/// partition's range its caller routed with (`None`: unfenced), judged again when it is
/// answered.
#[derive(Debug)]
pub(crate) struct ReadWaiter {
    /// The answer: the read point, once this replica's application has applied it.
    pub(crate) reply: Reply<LogIndex>,
    /// The generation the caller routed with, for a fenced read.
    pub(crate) expected_generation: Option<NonZeroU64>,
}

/// Whether `max` reads wait on a partition (`reads`: for their read index; `waiting_apply`:
/// for the application to apply it), counting only those whose caller still waits: a caller
/// that gave up (its timeout fired, its future was dropped) closed its reply, and its waiter is
/// forgotten here rather than holding room until the leadership changes (a forwarded read
/// whose answer was lost would otherwise hold it until then). The two waiter lists of a
/// [`Slot`], passed apart so that its replica may stay borrowed.
pub(crate) fn reads_full(
    reads: &mut StableHashMap<u64, ReadWaiter>,
    waiting_apply: &mut Vec<(LogIndex, ReadWaiter)>,
    max: usize,
) -> bool {
    if reads.len() + waiting_apply.len() < max {
        return false;
    }
    reads.retain(|_, read| !read.reply.is_closed());
    waiting_apply.retain(|(_, read)| !read.reply.is_closed());
    reads.len() + waiting_apply.len() >= max
}

/// A slot looked up by [`Partitions::touch`], with the touched list it may join.
pub(crate) struct Touched<'a> {
    pub(crate) slot: &'a mut Slot,
    dirty: &'a mut Vec<PartitionId>,
    partition: PartitionId,
}

impl Touched<'_> {
    /// Lists the slot's partition for this turn's gathering (as [`Partitions::mark_dirty`]).
    pub(crate) fn list(self) {
        list_once(&mut self.slot.dirty, self.dirty, self.partition);
    }
}

/// Puts `partition` on `list` unless its slot's flag `listed` says it is on it already.
fn list_once(listed: &mut bool, list: &mut Vec<PartitionId>, partition: PartitionId) {
    if !*listed {
        *listed = true;
        list.push(partition);
    }
}

/// The shard's partitions, the ones touched since their Readies were last gathered and the
/// active ones (a tick visits those, in the same order in every run).
#[derive(Debug, Default)]
pub(crate) struct Partitions {
    /// Boxed: a slot is about 1.8 KB (the replica inline), and the table keeps up to twice as
    /// many buckets as entries; boxed, an empty bucket costs a pointer (issue 15: an idle
    /// partition's memory).
    slots: StableHashMap<PartitionId, Box<Slot>>,
    dirty: Vec<PartitionId>,
    /// The last touched list taken, emptied, whose capacity the next touches reuse (at 4096
    /// active partitions a fresh list per turn grew by doubling: 1 % of the CPU).
    dirty_spare: Vec<PartitionId>,
    /// The hosted partitions the tick visits at every tick, each once, in the order they
    /// were listed: those whose replica leads or is held, and those just woken, opened or
    /// stepped down (quiesced ones leave it at the next tick, followers for `followers_due`,
    /// removed ones at once).
    active: Vec<PartitionId>,
    /// Partitions the next tick's membership work looks at (each once): those whose
    /// membership facts changed since it last looked, those it stepped or whose step waits,
    /// and those whose standing still counts towards the promotion window. A partition off
    /// the list is unchanged in what the membership work reads, so looking again would find
    /// the same.
    membership_due: Vec<PartitionId>,
    /// The last membership list taken, emptied, for reuse (as `dirty_spare`).
    membership_spare: Vec<PartitionId>,
    /// (tick, partition): the awake replicas that do not lead, off the active list, by the
    /// tick they are next visited at (`Clock::next_visit`). A tick visits the ones due, not
    /// every follower (issue 15: at 4096 active partitions the tick's walk was a tenth of the
    /// CPU, two thirds of it followers whose tick only counted).
    followers_due: BTreeSet<(u64, PartitionId)>,
    /// The tick the replicas are ticked to.
    clock: Clock,
    /// (tick, partition): the partitions whose standing turns caught up at that tick, if
    /// they stay caught up (one entry per partition, `Slot::standing_settles_at`).
    standings_settling: BTreeSet<(u64, PartitionId)>,
    /// The quiesced replicas' registrations (decision 0007).
    pub(crate) quiesced: Quiesced,
}

impl Partitions {
    /// No partitions yet, for a shard of `config`.
    pub(crate) fn new(config: &ShardConfig) -> Self {
        Self {
            clock: Clock {
                tick: 0,
                revisit_ticks: u64::from(config.core.election_timeout_ticks_max),
                #[cfg(feature = "sim-bugs")]
                owed_ticks_dropped: config.bug == Some(crate::shard::NodeBug::OwedTicksDropped),
            },
            ..Self::default()
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    pub(crate) fn get(&self, partition: PartitionId) -> Option<&Slot> {
        self.slots.get(&partition).map(|slot| &**slot)
    }

    /// `partition`'s slot, its replica handed the ticks it is owed first (`Clock::catch_up`;
    /// one of them that acted puts the partition on the touched list, as the tick's walk
    /// would).
    pub(crate) fn get_mut(&mut self, partition: PartitionId) -> Option<&mut Slot> {
        self.touch(partition).map(|touched| touched.slot)
    }

    /// `partition`'s slot (as [`Partitions::get_mut`]) and the means to list it for this
    /// turn's gathering without a second lookup: for a caller that changes its replica and
    /// lists it only if the change left work ([`Touched::list`]).
    pub(crate) fn touch(&mut self, partition: PartitionId) -> Option<Touched<'_>> {
        let Self {
            slots,
            dirty,
            clock,
            ..
        } = self;
        let slot = &mut **slots.get_mut(&partition)?;
        if clock.catch_up(slot) {
            list_once(&mut slot.dirty, dirty, partition);
        }
        Some(Touched {
            slot,
            dirty,
            partition,
        })
    }

    /// `partition`'s slot when its replica here serves (hosted, not held) and leads; else
    /// the refusal of a request only its leader carries out (`NotHosted`,
    /// `RestoreInProgress`, `NotLeader` with the leader the replica knows).
    pub(crate) fn leading(&mut self, partition: PartitionId) -> Result<&mut Slot, Refusal> {
        let slot = self.get_mut(partition).ok_or(Refusal::NotHosted)?;
        let held = slot.held();
        let replica = slot
            .replica
            .as_ref()
            .filter(|_| !held)
            .ok_or(Refusal::RestoreInProgress)?;
        if !replica.is_leader() {
            return Err(Refusal::NotLeader {
                leader: replica.leader(),
            });
        }
        Ok(slot)
    }

    /// `partition`'s replica, if it is hosted and not being read back from the WAL.
    pub(crate) fn replica(&self, partition: PartitionId) -> Option<&Replica> {
        self.get(partition).and_then(|s| s.replica.as_ref())
    }

    /// `partition`'s replica, mutably (as [`Partitions::replica`]).
    pub(crate) fn replica_mut(&mut self, partition: PartitionId) -> Option<&mut Replica> {
        self.get_mut(partition).and_then(|s| s.replica.as_mut())
    }

    /// Hosts `partition`: active (a new replica's timers run) and touched (its Ready is
    /// gathered this turn).
    pub(crate) fn insert(&mut self, partition: PartitionId, mut slot: Slot) {
        self.quiesced.forget(partition);
        if let Some(old) = self.slots.get(&partition) {
            slot.listed_active = old.listed_active;
            slot.dirty = old.dirty;
            slot.listed_membership = old.listed_membership;
            slot.standing_settles_at = old.standing_settles_at;
            if let Some(at) = old.due_at {
                self.followers_due.remove(&(at, partition));
            }
        }
        slot.ticked_to = self.clock.tick;
        list_once(&mut slot.listed_active, &mut self.active, partition);
        slot.quiesced = false;
        self.slots.insert(partition, Box::new(slot));
        self.mark_dirty(partition);
    }

    /// Forgets `partition`, handing back its slot (it leaves the touched and active lists
    /// too).
    pub(crate) fn remove(&mut self, partition: PartitionId) -> Option<Slot> {
        self.quiesced.forget(partition);
        let slot = *self.slots.remove(&partition)?;
        if slot.listed_active {
            self.active.retain(|&p| p != partition);
        }
        if slot.dirty {
            self.dirty.retain(|&p| p != partition);
        }
        if slot.listed_membership {
            self.membership_due.retain(|&p| p != partition);
        }
        if let Some(at) = slot.standing_settles_at {
            self.standings_settling.remove(&(at, partition));
        }
        if let Some(at) = slot.due_at {
            self.followers_due.remove(&(at, partition));
        }
        Some(slot)
    }

    /// Every slot with its partition, for what a stop or a failure does to all of them (the
    /// replicas are not handed the ticks they are owed: nothing steps or ticks them through
    /// this).
    pub(crate) fn slots_mut(&mut self) -> impl Iterator<Item = (PartitionId, &mut Slot)> {
        self.slots
            .iter_mut()
            .map(|(&partition, slot)| (partition, &mut **slot))
    }

    /// Puts `partition` on the touched list: its Ready is gathered this turn (and its
    /// membership facts noted then: `membership::membership_changed`).
    pub(crate) fn mark_dirty(&mut self, partition: PartitionId) {
        if let Some(slot) = self.slots.get_mut(&partition) {
            list_once(&mut slot.dirty, &mut self.dirty, partition);
        }
    }

    /// Puts `partition` on the list the next tick's membership work looks at.
    pub(crate) fn membership_due(&mut self, partition: PartitionId) {
        if let Some(slot) = self.slots.get_mut(&partition) {
            list_once(
                &mut slot.listed_membership,
                &mut self.membership_due,
                partition,
            );
        }
    }

    /// Looks at `partition` again at `tick`, when its standing turns caught up if its replica
    /// stays caught up (replacing the tick it was due at, if any).
    pub(crate) fn standing_settles_at(&mut self, partition: PartitionId, tick: u64) {
        let Some(slot) = self.slots.get_mut(&partition) else {
            return;
        };
        if let Some(at) = slot.standing_settles_at.replace(tick) {
            self.standings_settling.remove(&(at, partition));
        }
        self.standings_settling.insert((tick, partition));
    }

    /// Takes the partitions the membership work looks at on `tick`: every one put on its
    /// list since the last tick (the touched ones, those whose tick made a Ready, those whose
    /// membership work waits) and every one whose standing settles by then, each once, in the
    /// same order in every run. Each stays marked as listed until
    /// [`Partitions::membership_visit`] reads it.
    pub(crate) fn take_membership_due(&mut self, tick: u64) -> Vec<PartitionId> {
        while let Some(&(at, partition)) = self.standings_settling.first()
            && at <= tick
        {
            self.standings_settling.pop_first();
            if let Some(slot) = self.slots.get_mut(&partition) {
                slot.standing_settles_at = None;
                slot.standing_recorded = None;
            }
            self.membership_due(partition);
        }
        let spare = std::mem::take(&mut self.membership_spare);
        std::mem::replace(&mut self.membership_due, spare)
    }

    /// Gives back a list [`Partitions::take_membership_due`] returned, for its capacity.
    pub(crate) fn recycle_membership_due(&mut self, mut list: Vec<PartitionId>) {
        list.clear();
        self.membership_spare = list;
    }

    /// The slot of `partition`, taken from the membership work's list
    /// ([`Partitions::take_membership_due`]): its mark is cleared, so that it can be listed
    /// again for the next tick.
    pub(crate) fn membership_visit(&mut self, partition: PartitionId) -> Option<&mut Slot> {
        let slot = self.get_mut(partition)?;
        slot.listed_membership = false;
        Some(slot)
    }

    /// Every hosted partition, in the same order in every run (the membership work's walk
    /// when the roster changed).
    pub(crate) fn ids(&self) -> Vec<PartitionId> {
        self.slots.keys().copied().collect()
    }

    /// Whether `partition` is on the touched list.
    pub(crate) fn is_dirty(&self, partition: PartitionId) -> bool {
        self.slots.get(&partition).is_some_and(|s| s.dirty)
    }

    /// Takes the touched list. Each partition on it stays marked as touched until
    /// [`Partitions::gathered`] reads it (a touch before that changes nothing: the gathering
    /// to come sees it).
    pub(crate) fn take_touched(&mut self) -> Vec<PartitionId> {
        let spare = std::mem::take(&mut self.dirty_spare);
        std::mem::replace(&mut self.dirty, spare)
    }

    /// Gives back a list [`Partitions::take_touched`] returned, for its capacity.
    pub(crate) fn recycle_touched(&mut self, mut list: Vec<PartitionId>) {
        list.clear();
        self.dirty_spare = list;
    }

    /// The slot of `partition`, taken from the touched list ([`Partitions::take_touched`]) to
    /// gather its Ready: its mark is cleared, so that a later touch lists it for the next
    /// turn. Whatever changed its replica touched it, so this is where the tick that visits
    /// it next is looked at again: a replica that came to lead (or is held) is listed active,
    /// and an awake follower whose election timer now runs out sooner than the visit filed
    /// is filed again (a later timer waits for the visit filed, which files it again then).
    pub(crate) fn gathered(&mut self, partition: PartitionId) -> Option<&mut Slot> {
        let Self {
            slots,
            active,
            followers_due,
            clock,
            ..
        } = self;
        let slot = &mut **slots.get_mut(&partition)?;
        // Whether a tick handed over acted needs no touch: it is being gathered.
        clock.catch_up(slot);
        slot.dirty = false;
        // A quiesced one is registered in `quiesced` (woken, its Ready lists it active).
        if !slot.listed_active && !slot.quiesced {
            match clock.next_visit(slot) {
                None => {
                    unfile(slot, followers_due, partition);
                    list_once(&mut slot.listed_active, active, partition);
                }
                Some(at) if slot.due_at.is_none_or(|due| at < due) => {
                    file(slot, followers_due, partition, at);
                }
                Some(_) => {}
            }
        }
        Some(slot)
    }

    /// The tick's one walk at tick `tick`, of the active list and of the followers due (a
    /// slot read once per tick: at 4096 active partitions each walk of the slots misses the
    /// cache). It drops the partitions that quiesced from the active list, ticks every other
    /// replica there (not held; a leader `leader_ticks` times, a follower once:
    /// `Worker::tick_all`) and files the ones that do not lead among the followers due; it
    /// hands each follower due the ticks it is owed and files it again (or lists it active
    /// once it leads). Each one whose replica has a Ready after its ticks goes on the touched
    /// list (its Ready is gathered this turn, and its membership facts noted), every one when
    /// `touch_all`. A replica without a Ready after its tick changed in nothing the gathering
    /// or the membership work reads: whatever else changes a replica touches it. Returns how
    /// many replicas it ticked.
    pub(crate) fn tick_active(&mut self, tick: u64, touch_all: bool, leader_ticks: u32) -> usize {
        self.clock.tick = tick;
        let clock = self.clock;
        let before = Clock {
            tick: tick.saturating_sub(1),
            ..clock
        };
        let Self {
            slots,
            active,
            dirty,
            followers_due,
            ..
        } = self;
        let mut ticked = 0;
        let mut touch = |slot: &mut Slot, partition: PartitionId, ready: bool| {
            if ready || touch_all {
                list_once(&mut slot.dirty, dirty, partition);
            }
        };
        let mut listed = Vec::new();
        while let Some(&(at, partition)) = followers_due.first()
            && at <= tick
        {
            followers_due.pop_first();
            let Some(slot) = slots.get_mut(&partition) else {
                continue;
            };
            slot.due_at = None;
            let ready = clock.catch_up(slot);
            ticked += 1;
            // Never a quiesced one: quiescing takes a partition off the followers due.
            match clock.next_visit(slot) {
                Some(at) => file(slot, followers_due, partition, at),
                None => listed.push(partition),
            }
            touch(slot, partition, ready);
        }
        active.retain(|&partition| {
            let Some(slot) = slots.get_mut(&partition) else {
                return false;
            };
            if slot.quiesced {
                slot.listed_active = false;
                return false;
            }
            before.catch_up(slot);
            slot.ticked_to = tick;
            let held = slot.held();
            let mut ready = false;
            if let Some(replica) = slot.replica.as_mut().filter(|_| !held) {
                let times = if replica.is_leader() { leader_ticks } else { 1 };
                for _ in 0..times {
                    replica.tick();
                }
                ticked += 1;
                ready = replica.has_ready();
            }
            touch(slot, partition, ready);
            match clock.next_visit(slot) {
                Some(at) => {
                    file(slot, followers_due, partition, at);
                    slot.listed_active = false;
                    false
                }
                None => true,
            }
        });
        for partition in listed {
            if let Some(slot) = slots.get_mut(&partition) {
                list_once(&mut slot.listed_active, active, partition);
            }
        }
        if touch_all {
            for &(_, partition) in followers_due.iter() {
                if let Some(slot) = slots.get_mut(&partition) {
                    list_once(&mut slot.dirty, dirty, partition);
                }
            }
        }
        ticked
    }

    /// Whether the next tick has work on a partition: an awake replica to tick (one on the
    /// active list that did not quiesce, or a follower due), or an awake partition for the
    /// membership work to look at. A quiesced partition touched by a keep-alive or its answer
    /// cannot have changed (its replica stayed quiesced), so its look waits for whichever
    /// tick comes next.
    pub(crate) fn tick_has_work(&self) -> bool {
        let awake =
            |partition: &PartitionId| self.slots.get(partition).is_some_and(|slot| !slot.quiesced);
        !self.followers_due.is_empty()
            || self.active.iter().any(awake)
            || self.membership_due.iter().any(awake)
    }

    /// The first tick at which a partition's standing settles
    /// ([`Partitions::standing_settles_at`]), if one still counts towards the window.
    pub(crate) fn next_standing_settles(&self) -> Option<u64> {
        self.standings_settling.first().map(|&(tick, _)| tick)
    }

    /// Follows a Ready's `quiescence` report of `partition`: a quiesced replica is registered
    /// (and leaves the active list at the next tick), a woken one is listed active again.
    pub(crate) fn quiescence_reported(&mut self, partition: PartitionId, quiesced: bool) {
        let Some(slot) = self.slots.get_mut(&partition) else {
            return;
        };
        slot.quiesced = quiesced;
        if quiesced {
            // Nothing waits on a quiesced partition: the room its waiters took goes back.
            slot.waiters.shrink_to_fit();
            slot.reads.shrink_to_fit();
            slot.reads_waiting_apply.shrink_to_fit();
            if let Some(replica) = slot.replica.as_ref() {
                self.quiesced.register(partition, replica);
            }
            unfile(slot, &mut self.followers_due, partition);
            return;
        }
        self.quiesced.forget(partition);
        list_once(&mut slot.listed_active, &mut self.active, partition);
    }
}

/// The tick a shard's replicas are ticked to, and how a replica is handed the ticks it is owed
/// (`catch_up`) and its next visit planned (`next_visit`).
#[derive(Clone, Copy, Debug, Default)]
struct Clock {
    /// The last tick turn's tick.
    tick: u64,
    /// The ticks after which a follower whose ticks never act is visited again (an election
    /// timeout's worth: the core's `election_timeout_ticks_max`).
    revisit_ticks: u64,
    /// The node bug `OwedTicksDropped`.
    #[cfg(feature = "sim-bugs")]
    owed_ticks_dropped: bool,
}

impl Clock {
    /// Hands `slot`'s replica the ticks it is owed up to this tick (none while it is held: a
    /// held replica does not tick). Answers whether one of them acted (the replica has a
    /// Ready after them): a follower is visited at the tick its election timer runs out, so
    /// the ticks owed before only count, but a change since its visit was filed may bring
    /// that tick sooner.
    fn catch_up(self, slot: &mut Slot) -> bool {
        let owed = self.tick.saturating_sub(slot.ticked_to);
        if owed == 0 {
            return false;
        }
        slot.ticked_to = self.tick;
        #[cfg(feature = "sim-bugs")]
        if self.owed_ticks_dropped {
            // The bug: the mark moves, the replica is not ticked.
            return false;
        }
        let held = slot.held();
        let Some(replica) = slot.replica.as_mut().filter(|_| !held) else {
            return false;
        };
        let acts = owed > u64::from(replica.idle_ticks());
        replica.tick_by(owed);
        acts && replica.has_ready()
    }

    /// The tick at which `slot`'s replica, ticked to this tick, is next visited: the tick its
    /// election timer runs out at, or `revisit_ticks` from now if that is later (or never:
    /// its replica may not campaign, or it quiesced). `None` for a replica the tick's walk
    /// visits at every tick: one that leads or is held.
    fn next_visit(self, slot: &Slot) -> Option<u64> {
        let held = slot.held();
        let replica = slot.replica.as_ref().filter(|_| !held)?;
        if replica.is_leader() {
            return None;
        }
        let idle = u64::from(replica.idle_ticks());
        Some(self.tick + (idle + 1).min(self.revisit_ticks.max(1)))
    }
}

/// Files `slot` among the followers due at tick `at` (instead of the tick it was filed at).
fn file(
    slot: &mut Slot,
    followers_due: &mut BTreeSet<(u64, PartitionId)>,
    partition: PartitionId,
    at: u64,
) {
    if let Some(filed) = slot.due_at.replace(at) {
        followers_due.remove(&(filed, partition));
    }
    followers_due.insert((at, partition));
}

/// Takes `slot` off the followers due, if it is filed there.
fn unfile(
    slot: &mut Slot,
    followers_due: &mut BTreeSet<(u64, PartitionId)>,
    partition: PartitionId,
) {
    if let Some(at) = slot.due_at.take() {
        followers_due.remove(&(at, partition));
    }
}
