//! Fault injection: the nemesis picks crashes, crashes at the worst moment, isolations,
//! partitions, one-way cuts and pauses, leaning on the leader; cuts heal after a while.

use super::*;

impl Simulation {
    /// One nemesis action. The mix leans on the leader (as Jepsen's partition-leader and
    /// kill-leader nemeses do): isolating or killing fresh leaders leaves divergent,
    /// uncommitted tails in several terms, which is where Raft's subtle rules matter.
    pub(super) fn nemesis(&mut self) -> Result<(), SimFailure> {
        let nodes = self.nodes.len();
        let pick = self.nemesis_rng.below(100);
        let partition = self.nemesis_rng.index(self.config.partitions);
        let random_node = self.nemesis_rng.index(nodes);
        let target = self.leader_of(partition).unwrap_or(random_node);
        self.report.faults += 1;
        self.trace.event(13, &[self.now, pick, target as u64]);
        match pick {
            0..=11 => self.crash(random_node)?,
            12..=21 => self.crash(target)?,
            22..=36 => {
                // Crash at the worst moment: right after sending, before the disk flush.
                let node = if pick.is_multiple_of(2) {
                    target
                } else {
                    random_node
                };
                self.nodes[node].crash_after_send = true;
            }
            37..=38 => self.nodes[target].isolate_on_commit = true,
            39..=40 => self.nodes[random_node].isolate_on_leadership = true,
            41..=43 => {
                // Power loss: every node at once, unflushed writes everywhere lost.
                for node in 0..nodes {
                    self.crash(node)?;
                }
            }
            44..=58 => {
                self.network.partition(&[target]);
                self.schedule_heal();
            }
            59..=70 => {
                let minority = self.nemesis_rng.between(1, (nodes as u64 - 1) / 2) as usize;
                let mut side = Vec::new();
                while side.len() < minority {
                    let node = self.nemesis_rng.index(nodes);
                    if !side.contains(&node) {
                        side.push(node);
                    }
                }
                self.network.partition(&side);
                self.schedule_heal();
            }
            71..=84 => {
                for _ in 0..self.nemesis_rng.between(1, nodes as u64) {
                    let from = self.nemesis_rng.index(nodes);
                    let to = self.nemesis_rng.index(nodes);
                    self.network.cut_one_way(from, to);
                }
                self.schedule_heal();
            }
            85..=92 => {
                // Stop the process (SIGSTOP): a paused leader wakes up still believing it
                // leads, with a backlog of stale input.
                let node = if pick.is_multiple_of(2) {
                    target
                } else {
                    random_node
                };
                let pause = self.nemesis_rng.between(100, 3_000);
                self.nodes[node].paused_until = self.now + pause;
            }
            _ => self.network.heal(),
        }
        Ok(())
    }

    /// Cuts `node` off from every other node until the next heal.
    pub(super) fn isolate(&mut self, node: usize) {
        self.trace.event(14, &[self.now, node as u64]);
        self.network.partition(&[node]);
        self.schedule_heal();
    }

    pub(super) fn schedule_heal(&mut self) {
        self.cut_generation += 1;
        let at = self.now + self.nemesis_rng.between(200, self.config.cut_ms_max);
        self.agenda.push(
            at,
            Event::HealCuts {
                generation: self.cut_generation,
            },
        );
    }
}
