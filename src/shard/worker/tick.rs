//! The shard's tick: its single timer (one timer per shard, none per partition) and what a
//! tick turn does to the replicas. A tick turn ticks every active replica (`tick_all`: one
//! `Replica::tick` and one `has_ready` check per active partition) and stands in for the
//! quiesced ones' heartbeats (`tick_quiesced`): one keep-alive per peer of its quiesced leaders
//! every heartbeat interval, and its quiesced followers wake with `Replica::leader_node_dead`
//! once no message from their leader's node was stepped here for `election_timeout_ticks_min`
//! ticks.
//!
//! The end of every turn plans the next tick (`plan_next_tick`). A shard with nothing awake
//! and nothing else due at a tick sleeps through ticks (decision 0007 "The tickless idle
//! shard"): its next tick is due when the first thing is (keep-alives, a silence deadline, at
//! most a heartbeat interval away) and stands for every tick slept through.

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::Worker;
use crate::shard::SYSTEM_PARTITION;
use crate::shard::membership::MemberRole;

impl Worker {
    /// Ticks every active replica and the quiesced ones' registrations, for a tick turn
    /// `elapsed` whole tick intervals after the last tick turn. Returns whether this tick's
    /// gathering counts again who subscribes to each active partition's progress (a
    /// subscription was taken since the last count, anywhere in the leadership table: every
    /// active partition is then gathered).
    ///
    /// A follower's replica ticks once: a stalled shard does not judge its leader silent for
    /// its own delay. A leader's ticks once per interval `elapsed`, at most one heartbeat
    /// interval's worth (so that one turn crosses at most one heartbeat and one check-quorum
    /// boundary): its heartbeats keep the wall clock while its shard is loaded, where its
    /// followers' shards may turn faster and tick at every interval. A loaded shard's tick
    /// turns come late, each planned one interval after the last and standing for that one
    /// tick however late it is; its leaders, ticking once per tick a turn stood for,
    /// heartbeated every fifth late turn, and followers elsewhere timed out and elected
    /// others (issue 15's 4096-writer rows; `tests/runtime/late_ticks.rs`).
    pub(super) fn tick_all(&mut self, elapsed: u64) -> bool {
        self.metrics
            .queue_depths(self.commands.len(), self.inbound.len());
        if self.failed() {
            return false;
        }
        let subscriptions = self.leaders.subscriptions();
        let recount = subscriptions != self.subscriptions_counted;
        self.subscriptions_counted = subscriptions;
        let heartbeat = self.config.core.heartbeat_interval_ticks.max(1);
        let leader_ticks = u32::try_from(elapsed)
            .unwrap_or(heartbeat)
            .clamp(1, heartbeat);
        let ticked = self
            .partitions
            .tick_active(self.ticks, recount, leader_ticks) as u64;
        self.stats
            .replica_ticks
            .fetch_add(ticked, Ordering::Relaxed);
        self.stats
            .partition_visits
            .fetch_add(ticked, Ordering::Relaxed);
        self.tick_quiesced();
        recount
    }

    /// The quiesced replicas' tick: the followers whose leader's node fell silent wake, and
    /// the peers of quiesced leaders get their keep-alive.
    fn tick_quiesced(&mut self) {
        let core = &self.config.core;
        let due = self.partitions.quiesced.tick(
            core.election_timeout_ticks_min,
            core.heartbeat_interval_ticks,
        );
        for partition in due.leader_node_dead {
            #[cfg(feature = "sim-bugs")]
            if self.config.bug == Some(crate::shard::NodeBug::QuiescedNeverCampaigns) {
                // The bug: the verdict is forgotten, the follower stays quiesced.
                continue;
            }
            if let Some(replica) = self.partitions.replica_mut(partition) {
                replica.leader_node_dead();
                self.partitions.mark_dirty(partition);
            }
        }
        for (peer, partition) in due.keep_alives {
            if let Some(message) = self
                .partitions
                .replica(partition)
                .and_then(|replica| replica.keep_alive(peer))
            {
                self.outbox.push(message);
            }
        }
        let quiesced = self.partitions.quiesced.len();
        self.stats
            .quiesced_replicas
            .store(quiesced as u64, Ordering::Relaxed);
        self.metrics.quiesced_replicas(quiesced);
    }

    /// Whole tick intervals from the last tick turn to `now`: the ticks an idle shard slept
    /// through so far (0 on a tick turn, and between the ticks of an active shard).
    pub(super) fn ticks_slept(&self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.last_tick).as_nanos();
        let interval = self.config.tick_interval.as_nanos().max(1);
        u64::try_from(since / interval).unwrap_or(u64::MAX)
    }

    /// Plans the next tick turn at the end of a turn at `now`: the next tick interval after
    /// the last tick turn while anything needs a tick, else the tick the first thing is due at
    /// (`idle_ticks`). Either way never at or before `now` — the ticks slept through so far
    /// stay with the next tick turn, which stands for them — so a turn whose input woke a
    /// partition of a sleeping shard brings its tick to the next tick interval.
    pub(super) fn plan_next_tick(&mut self, now: Instant) {
        let slept = self.ticks_slept(now);
        let stride = u64::from(self.idle_ticks()).max(slept + 1);
        let stride = u32::try_from(stride).unwrap_or(u32::MAX);
        self.tick_stride = stride;
        self.next_tick = self.last_tick + self.config.tick_interval * stride;
    }

    /// How many ticks from the last tick turn the shard may sleep through: 1 while anything
    /// needs every tick (an awake replica, a partition for the membership work, a restore, a
    /// transfer, an import or a move of the map, a compaction waiting, a map or roster not
    /// followed yet, a map change to answer, a member leaving the roster that partition 0's
    /// leader removes); otherwise until the first thing due — the quiesced leaders' next
    /// keep-alives, the first silence deadline of the quiesced followers' leader nodes, a
    /// standing that settles — and at most one heartbeat interval, so that an idle shard
    /// still follows a map or roster another shard committed within one (no shard wakes
    /// another: the simulator turns a shard at its `next_tick` or on its own input only).
    fn idle_ticks(&mut self) -> u32 {
        let core = &self.config.core;
        let longest = core.heartbeat_interval_ticks.max(1);
        if self.failed() {
            return longest;
        }
        let silence_max = core.election_timeout_ticks_min;
        if self.partitions.tick_has_work()
            || !self.restoring.is_empty()
            || !self.compactions_waiting.is_empty()
            || self.map_change.is_some()
            || !self.transfers_idle()
            || self.maps.map().version != self.map_followed
            || self.roster_unfollowed()
            || self.map_moves_data()
        {
            return 1;
        }
        let due = [
            self.partitions.quiesced.next_due(silence_max),
            self.partitions.next_standing_settles(),
        ]
        .into_iter()
        .flatten()
        .min()
        .map_or(u64::from(longest), |at| at.saturating_sub(self.ticks));
        u32::try_from(due.clamp(1, u64::from(longest))).unwrap_or(longest)
    }

    /// Whether no snapshot is being sent or received (their timeouts and rate count ticks).
    fn transfers_idle(&self) -> bool {
        let idle = self.transfers.sending.is_empty() && self.transfers.receiving.is_empty();
        #[cfg(feature = "sim-bugs")]
        let idle = idle && self.transfers.late_finishes.is_empty();
        idle
    }

    /// Whether the membership work has a roster to follow: a new one, or one with a member
    /// leaving, which partition 0's leader (if it is here) removes at a tick once every
    /// partition let it go.
    fn roster_unfollowed(&self) -> bool {
        let Some(roster) = self.membership.roster() else {
            return false;
        };
        self.roster_followed != Some(roster.version())
            || (self.partitions.get(SYSTEM_PARTITION).is_some()
                && roster
                    .members()
                    .iter()
                    .any(|member| member.role == MemberRole::Leaving))
    }

    /// When the shard's timer is next due.
    #[cfg(feature = "sim")]
    pub(crate) fn next_tick(&self) -> Instant {
        self.next_tick
    }
}
