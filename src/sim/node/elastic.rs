//! The elastic operator of the whole-node simulation (decision 0006 point 7): once the first
//! map is committed, now and then a partition-map operation — a split, a merge, a create or a
//! remove — sent to the node it believes leads partition 0, as `Raft::split_partition`,
//! `merge_partitions`, `create_partition` and `remove_partition` send it
//! (`Request::ChangeMap`), one operation at a time, under the nemesis's faults.
//!
//! The operation is drawn from the committed map of the node it is sent to: a split of an
//! active hash-routed range (into the next available id, explicit, so that a retry is
//! idempotent; at Kommander's midpoint or at a drawn boundary), a merge of two active
//! hash-routed ranges that touch, the creation of an unrouted partition (the next id; the
//! routed hash space is always covered, so a created partition holds no key and the keys'
//! histories stay whole) or the removal of one the operator created. An answer that leaves
//! the outcome open or asks to retry (`InFlight`, `Superseded`, `Unknown`, a refusal of the
//! shard, no answer within the client's timeout) sends the same operation again after a
//! pause, as a caller retries (decision 0006: a split with its target and a merge are
//! idempotent, so are create and remove); a definite answer (done, already done, refused)
//! ends it. Now and then the node that answered a split's or merge's phase 1 — partition 0's
//! leader — is crashed at once, between the phases: the next leader must finish them. Once
//! the faults stop the operator starts nothing new and only retries the operation it has.

use tokio::sync::oneshot::{self, error::TryRecvError};

use super::NodeSimulation;
use super::run::Event;
use crate::core::{PartitionId, Ticket};
use crate::shard::partitions::{
    CreatePartition, MapChangeAnswer, MapOperation, PartitionMap, RangeState, RoutingMode,
    SplitPlan,
};
use crate::shard::{Refusal, Request, SYSTEM_PARTITION};
use crate::sim::checkers::Violation;

/// In a million splits or merges answered done, how many crash the node that answered.
const CRASH_BETWEEN_PHASES_PER_MILLION: u32 = 300_000;
/// The pause before an operation is sent again (a caller's retry), shortest and longest.
const RETRY_MS: (u64, u64) = (100, 600);

/// The operator's state: the operation it carries out (until a definite answer), the node it
/// asked and the answer it waits for.
#[derive(Default)]
pub(super) struct ElasticOperator {
    current: Option<Current>,
    /// The map every node's disks held once the run settled (`checks.rs`).
    pub(super) final_map: Option<PartitionMap>,
    /// Why the map has not settled yet, for the liveness bound's message.
    pub(super) unsettled: Option<String>,
    /// Distinguishes an attempt's timeout from an earlier one's.
    attempt: u64,
}

struct Current {
    operation: MapOperation,
    /// The node asked, when, and its answer (`None`: to be sent again).
    asked: Option<(usize, oneshot::Receiver<Result<MapChangeAnswer, Refusal>>)>,
}

impl ElasticOperator {
    /// Whether an operation waits for its answer or its retry.
    pub(super) fn busy(&self) -> bool {
        self.current.is_some()
    }
}

impl NodeSimulation {
    /// Draws and sends the next operation (unless one is under way, or the faults stopped)
    /// and schedules the next draw.
    pub(super) fn elastic_draw(&mut self) {
        if self.healed_at.is_some() {
            return;
        }
        let at = self.now
            + self.client_rng.between(
                self.config.elastic_interval_ms_min,
                self.config.elastic_interval_ms_max,
            );
        self.agenda.push(at, Event::Elastic);
        // The maps committed since the last draw (`range_ownership` judges from them).
        self.note_maps();
        if self.elastic.busy() {
            return;
        }
        let node = self.system_leader_hint();
        let Some(map) = self.nodes[node]
            .running
            .as_ref()
            .map(|running| running.maps.map())
        else {
            return;
        };
        let Some(operation) = self.draw_operation(&map) else {
            return;
        };
        self.elastic.current = Some(Current {
            operation,
            asked: None,
        });
        self.send_operation(node);
    }

    /// An operation against `map` (see the module docs), if one applies.
    fn draw_operation(&mut self, map: &PartitionMap) -> Option<MapOperation> {
        if map.version == 0 {
            return None;
        }
        let next = map.next_available_partition_id()?;
        let active = |routing| {
            map.partitions
                .iter()
                .filter(move |r| r.state == RangeState::Active && r.routing == routing)
        };
        let rng = &mut self.client_rng;
        match rng.index(10) {
            // Splits and merges most of the time.
            0..=3 => {
                let ranges: Vec<_> = active(RoutingMode::HashRange)
                    .filter(|r| r.start < r.end)
                    .collect();
                let range = ranges.get(rng.index(ranges.len().max(1)))?;
                let boundary = rng.chance(500_000).then(|| {
                    let width = i64::from(range.end) - i64::from(range.start);
                    let offset = 1 + rng.below(width as u64) as i64;
                    (i64::from(range.start) + offset) as i32
                });
                Some(MapOperation::Split {
                    source: range.partition_id,
                    plan: SplitPlan {
                        target: Some(next),
                        boundary,
                    },
                })
            }
            4..=7 => {
                let ranges: Vec<_> = active(RoutingMode::HashRange).collect();
                let pairs: Vec<(PartitionId, PartitionId)> = ranges
                    .iter()
                    .flat_map(|a| {
                        ranges
                            .iter()
                            .filter(move |b| i64::from(a.end) + 1 == i64::from(b.start))
                            .map(move |b| (a.partition_id, b.partition_id))
                    })
                    .collect();
                let (low, high) = *pairs.get(rng.index(pairs.len().max(1)))?;
                let (survivor, source) = if rng.chance(500_000) {
                    (low, high)
                } else {
                    (high, low)
                };
                Some(MapOperation::Merge { survivor, source })
            }
            8 => Some(MapOperation::Create {
                partition: next,
                spec: CreatePartition::unrouted(),
            }),
            _ => {
                let created: Vec<_> = active(RoutingMode::Unrouted).collect();
                let range = created.get(rng.index(created.len().max(1)))?;
                Some(MapOperation::Remove {
                    partition: range.partition_id,
                })
            }
        }
    }

    /// Sends the current operation to `node` (partition 0's believed leader) and waits for
    /// the answer at most the clients' timeout.
    fn send_operation(&mut self, node: usize) {
        let Some(current) = self.elastic.current.as_mut() else {
            return;
        };
        let (reply, answer) = oneshot::channel();
        let request = Request::ChangeMap {
            operation: current.operation.clone(),
            ticket: Ticket(self.clients.take_id()),
            reply,
        };
        if self.tracing {
            eprintln!(
                "{:>8} ms    elastic: {:?} asked of node {}",
                self.now,
                current.operation,
                node + 1
            );
        }
        current.asked = Some((node, answer));
        self.elastic.attempt += 1;
        let attempt = self.elastic.attempt;
        self.agenda.push(
            self.now + self.config.op_timeout_ms,
            Event::ElasticTimeout { attempt },
        );
        if self.send_to(node, SYSTEM_PARTITION, request).is_err() {
            self.retry_operation();
        }
    }

    /// The current operation is sent again after a pause.
    fn retry_operation(&mut self) {
        if let Some(current) = self.elastic.current.as_mut() {
            current.asked = None;
            let at = self.now + self.client_rng.between(RETRY_MS.0, RETRY_MS.1);
            self.agenda.push(at, Event::ElasticRetry);
        }
    }

    /// The retry of the current operation is due.
    pub(super) fn elastic_retry(&mut self) {
        let due = self
            .elastic
            .current
            .as_ref()
            .is_some_and(|current| current.asked.is_none());
        if due {
            let node = self.system_leader_hint();
            self.send_operation(node);
        }
    }

    /// Attempt `attempt` got no answer in time: its outcome is unknown, so it is sent again.
    pub(super) fn elastic_timeout(&mut self, attempt: u64) {
        let waiting = self
            .elastic
            .current
            .as_ref()
            .is_some_and(|current| current.asked.is_some());
        if waiting && attempt == self.elastic.attempt {
            self.retry_operation();
        }
    }

    /// Looks at the answer the current operation waits for on `node`.
    pub(super) fn poll_elastic(&mut self, node: usize) -> Result<(), Violation> {
        let Some(current) = self.elastic.current.as_mut() else {
            return Ok(());
        };
        let Some((asked, answer)) = current.asked.as_mut() else {
            return Ok(());
        };
        if *asked != node {
            return Ok(());
        }
        let answer = match answer.try_recv() {
            Err(TryRecvError::Empty) => return Ok(()),
            Ok(answer) => Some(answer),
            Err(TryRecvError::Closed) => None,
        };
        if self.tracing {
            eprintln!(
                "{:>8} ms    elastic: {:?} answered by node {}: {answer:?}",
                self.now,
                current.operation,
                node + 1
            );
        }
        match answer {
            Some(Ok(MapChangeAnswer::Changed { .. } | MapChangeAnswer::AlreadyDone { .. })) => {
                let operation = self.elastic.current.take().map(|c| c.operation);
                self.report.map_changes += 1;
                let two_phase = matches!(
                    operation,
                    Some(MapOperation::Split { .. } | MapOperation::Merge { .. })
                );
                if two_phase
                    && self.healed_at.is_none()
                    && self.nemesis_rng.chance(CRASH_BETWEEN_PHASES_PER_MILLION)
                {
                    // Partition 0's leader between phase 1 and phase 2.
                    self.report.crashes_between_phases += 1;
                    self.crash_for_a_while(node, None)?;
                }
            }
            Some(Ok(MapChangeAnswer::Refused(_))) => {
                self.elastic.current = None;
                self.report.map_changes_refused += 1;
            }
            Some(Err(Refusal::NotLeader { leader })) => {
                self.note_system_leader(leader);
                self.retry_operation();
            }
            // `InFlight`, `Superseded`, `Unknown`, the shard's other refusals, no answer.
            _ => self.retry_operation(),
        }
        Ok(())
    }
}
