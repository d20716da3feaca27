//! The nemesis: one seeded fault at a time during the fault phase, each undone later by an
//! event of its own. Faults: process crash (restart later), power loss of a minority or of
//! every node (unsynced writes lost or torn), a failed write or sync on one shard's disk (its
//! WAL poisons, the node is restarted), a slow disk, a process pause longer than an election,
//! symmetric partitions and one-way cuts, a forward jump of one node's clock, and leadership
//! transfer and step-down asked of a leader. The cut around a configuration change is drawn
//! when one is sent, not here (`configuration_cut.rs`).

use kommander_wal::backend::sim::{CrashMode, FaultPlan};
use tokio::sync::oneshot;

use crate::core::NodeId;
use crate::shard::Request;

use super::NodeSimulation;
use super::run::Event;
use crate::sim::checkers::Violation;

/// Times a scripted fault is tried again (its node down, or a disk fault that did not fire),
/// and the pause between tries.
const SCRIPTED_ATTEMPTS_MAX: u32 = 100;
const SCRIPTED_RETRY_MS: u64 = 200;

/// The kinds of fault, for the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fault {
    Crash,
    PowerLossMinority,
    PowerLossAll,
    FailedIo,
    SlowDisk,
    Pause,
    Partition,
    OneWayCut,
    ClockJump,
    Transfer,
    StepDown,
}

impl NodeSimulation {
    /// One nemesis action, then the next one scheduled.
    pub(super) fn nemesis(&mut self) -> Result<(), Violation> {
        let at = self.now
            + self.nemesis_rng.between(
                self.config.fault_interval_ms_min,
                self.config.fault_interval_ms_max,
            );
        self.agenda.push(at, Event::Nemesis);
        let n = self.nodes.len();
        let roll = self.nemesis_rng.below(1000);
        let fault = match roll {
            0..120 => Fault::Crash,
            120..200 => Fault::PowerLossMinority,
            200..225 => Fault::PowerLossAll,
            225..330 => Fault::FailedIo,
            330..420 => Fault::SlowDisk,
            420..520 => Fault::Pause,
            520..640 => Fault::Partition,
            640..720 => Fault::OneWayCut,
            720..800 => Fault::ClockJump,
            800..900 => Fault::Transfer,
            _ => Fault::StepDown,
        };
        let node = self.nemesis_rng.index(n);
        self.inject(fault, node).map(drop)
    }

    /// Faults every seed gets whatever its dice say (a run without them would prove little):
    /// a disk fault a quarter in, a power loss of a minority halfway, a crash at three
    /// quarters.
    pub(super) fn schedule_scripted_faults(&mut self) {
        let phase = self.config.fault_phase_ms;
        for (at, fault) in [
            (phase / 4, Fault::FailedIo),
            (phase / 2, Fault::PowerLossMinority),
            (phase * 3 / 4, Fault::Crash),
        ] {
            self.agenda.push(at, Event::Scripted { fault, attempt: 0 });
        }
    }

    /// A scripted fault; retried a little later while it cannot apply (its node is down).
    pub(super) fn scripted(&mut self, fault: Fault, attempt: u32) -> Result<(), Violation> {
        let up: Vec<usize> = (0..self.nodes.len())
            .filter(|&node| self.nodes[node].up())
            .collect();
        let done = if up.is_empty() {
            false
        } else if fault == Fault::FailedIo {
            let armed = self.arm_busy_disk_fault(&up, attempt);
            if armed {
                self.report.count_fault(fault);
            }
            armed
        } else {
            let node = up[self.nemesis_rng.index(up.len())];
            self.inject(fault, node)?
        };
        // A disk fault counts once it fired (a WAL failed on it); until then arm another.
        let again = if fault == Fault::FailedIo {
            self.report.disk_faults_fired == 0
        } else {
            !done
        };
        if again && attempt < SCRIPTED_ATTEMPTS_MAX {
            let at = self.now + SCRIPTED_RETRY_MS;
            self.agenda.push(
                at,
                Event::Scripted {
                    fault,
                    attempt: attempt + 1,
                },
            );
        }
        Ok(())
    }

    /// Injects `fault` around `node`; whether it applied.
    fn inject(&mut self, fault: Fault, node: usize) -> Result<bool, Violation> {
        let n = self.nodes.len();
        let done = match fault {
            Fault::Crash => self.crash_for_a_while(node, None)?,
            Fault::PowerLossMinority => {
                // A minority: one node of two or three, up to two of five (a single node of a
                // one-node cluster is all of it).
                let victims = (n.saturating_sub(1) / 2).max(1);
                let mut any = false;
                for k in 0..victims {
                    let mode = self.crash_mode();
                    any |= self.crash_for_a_while((node + k) % n, Some(mode))?;
                }
                any
            }
            Fault::PowerLossAll => {
                for victim in 0..n {
                    let mode = self.crash_mode();
                    self.crash_for_a_while(victim, Some(mode))?;
                }
                true
            }
            Fault::FailedIo => self.arm_disk_fault(node),
            Fault::SlowDisk => {
                let slow = &mut self.nodes[node];
                let up = slow.up();
                if up {
                    slow.disk_slowdown = self.nemesis_rng.between(10, 60);
                    let until = self.now + self.nemesis_rng.between(500, 4_000);
                    let incarnation = slow.incarnation;
                    self.agenda
                        .push(until, Event::SlowDiskEnds { node, incarnation });
                }
                up
            }
            Fault::Pause => {
                let paused = &mut self.nodes[node];
                let up = paused.up() && paused.paused_until <= self.now;
                if up {
                    paused.paused_until =
                        self.now + self.nemesis_rng.between(100, self.config.pause_ms_max);
                    let incarnation = paused.incarnation;
                    self.agenda
                        .push(paused.paused_until, Event::Resume { node, incarnation });
                }
                up
            }
            Fault::Partition => {
                let mut side: Vec<usize> = (0..n)
                    .filter(|_| self.nemesis_rng.chance(500_000))
                    .collect();
                if side.is_empty() || side.len() == n {
                    side = vec![node];
                }
                self.network.partition(&side);
                self.heal_later();
                n > 1
            }
            Fault::OneWayCut => {
                let to = self.nemesis_rng.index(n);
                self.network.cut_one_way(node, to);
                self.heal_later();
                node != to
            }
            Fault::ClockJump => {
                let jumped = &mut self.nodes[node];
                jumped.clock.jumped_us += self.nemesis_rng.between(50, 3_000) * 1_000;
                // The shards read the jumped clock at their next turn.
                for shard in 0..self.config.shards {
                    self.schedule_turn(node, shard, self.now);
                }
                true
            }
            Fault::Transfer | Fault::StepDown => self.ask_leader(fault),
        };
        if done {
            self.report.count_fault(fault);
        }
        Ok(done)
    }

    fn crash_mode(&mut self) -> CrashMode {
        if self.nemesis_rng.chance(500_000) {
            CrashMode::LoseUnsynced
        } else {
            CrashMode::Torn(self.nemesis_rng.next_u64())
        }
    }

    /// Crashes `node` (a process crash, or a power loss under `power`) and schedules its
    /// restart. Returns whether it was up.
    pub(super) fn crash_for_a_while(
        &mut self,
        node: usize,
        power: Option<CrashMode>,
    ) -> Result<bool, Violation> {
        let was_up = self.nodes[node].up();
        self.check_disks()?;
        match power {
            Some(mode) => self.nodes[node].power_loss(mode),
            None => self.nodes[node].crash(),
        }
        if was_up {
            let at = self.now + self.nemesis_rng.between(50, self.config.down_ms_max);
            let incarnation = self.nodes[node].incarnation;
            self.agenda.push(at, Event::Restart { node, incarnation });
        }
        Ok(was_up)
    }

    /// Arms a failed write or sync a few I/Os ahead on one of `node`'s disks.
    fn arm_disk_fault(&mut self, node: usize) -> bool {
        // A shard that hosts a partition (the others never write).
        let busy = self.config.shards.min(self.config.partitions);
        let shard = (1 + self.nemesis_rng.index(busy)) % self.config.shards;
        let ahead = self.nemesis_rng.below(4);
        self.arm_disk_fault_on(node, shard, ahead)
    }

    /// Arms a failed write or sync `ahead` I/Os from now on `node`'s `shard` disk, unless a
    /// fault is armed on the node already.
    fn arm_disk_fault_on(&mut self, node: usize, shard: usize, ahead: u64) -> bool {
        let target = &mut self.nodes[node];
        if !target.up() || target.armed.iter().any(Option::is_some) {
            return false;
        }
        let disk = &target.disks[shard].0;
        let (writes, syncs) = disk.io_counts();
        let plan = if self.nemesis_rng.chance(500_000) {
            FaultPlan {
                fail_write_nth: Some(writes + ahead),
                ..FaultPlan::default()
            }
        } else {
            FaultPlan {
                fail_sync_nth: Some(syncs + ahead),
                ..FaultPlan::default()
            }
        };
        if self.tracing {
            eprintln!(
                "{:>8} ms    disk fault armed on n{} shard {shard}: {plan:?} (so far {writes} writes, {syncs} syncs)",
                self.now,
                node + 1
            );
        }
        disk.set_faults(plan);
        target.armed[shard] = Some(plan);
        true
    }

    /// The scripted disk fault: the next I/O of a shard that writes now, moved there from
    /// wherever an earlier try armed it. Even tries aim at a leader by its own table, odd ones
    /// at any node of `up` (a leader cut off from the clients writes nothing).
    fn arm_busy_disk_fault(&mut self, up: &[usize], attempt: u32) -> bool {
        let p = self.nemesis_rng.index(self.config.partitions);
        let partition = crate::core::PartitionId(p as u32 + 1);
        let target = if attempt.is_multiple_of(2) {
            self.leader_of(partition)
        } else {
            Some(up[self.nemesis_rng.index(up.len())])
        };
        let Some(leader) = target else {
            return false;
        };
        let node = &mut self.nodes[leader];
        if (0..self.config.shards).any(|shard| node.fault_fired(shard)) {
            // Fired already: its failure is on its way.
            return false;
        }
        node.disarm();
        node.armed.iter_mut().for_each(|plan| *plan = None);
        let shard = crate::shard::shard_of(partition, self.config.shards);
        self.arm_disk_fault_on(leader, shard, 0)
    }

    /// Heals the cuts made so far later (unless a newer cut is made by then).
    pub(super) fn heal_later(&mut self) {
        self.cut_generation += 1;
        let at = self.now + self.nemesis_rng.between(100, self.config.cut_ms_max);
        self.agenda.push(
            at,
            Event::HealCuts {
                generation: self.cut_generation,
            },
        );
    }

    /// A node that leads `partition` by its own table (a hint for aiming faults, never judged).
    fn leader_of(&self, partition: crate::core::PartitionId) -> Option<usize> {
        (0..self.nodes.len()).find(|&node| {
            self.nodes[node]
                .running
                .as_ref()
                .and_then(|running| running.host.leadership(partition))
                .is_some_and(|leadership| leadership.leads())
        })
    }

    /// Asks a node that leads some partition (by its own table: only a routing hint) to hand
    /// leadership over or to step down.
    fn ask_leader(&mut self, fault: Fault) -> bool {
        let p = self.nemesis_rng.index(self.config.partitions);
        let partition = crate::core::PartitionId(p as u32 + 1);
        let leader = self.leader_of(partition);
        let Some(leader) = leader else {
            return false;
        };
        let (reply, _answer) = oneshot::channel();
        let request = if fault == Fault::Transfer {
            let target = (leader + 1 + self.nemesis_rng.index(self.nodes.len().max(2) - 1))
                % self.nodes.len();
            Request::TransferLeadership {
                target: NodeId(target as u64 + 1),
                reply,
            }
        } else {
            Request::StepDown { reply }
        };
        let running = self.nodes[leader].running.as_ref().expect("found running");
        let sent = running.host.send(partition, request).is_ok();
        let shard = crate::shard::shard_of(partition, self.config.shards);
        self.schedule_turn(leader, shard, self.now);
        sent
    }
}
