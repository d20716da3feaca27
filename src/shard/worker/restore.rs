//! Opening a partition: created empty when the WAL holds nothing of it, restored otherwise.
//! A restore reads the log back through the [`ReadScheduler`](crate::shard::read_scheduler)
//! in chunks of `restore_entries_per_turn_max` entries per loop turn, rebuilds the replica
//! from that durable state (`applied` at the application's durable index, or the floor), then
//! hands its committed entries above it to `on_log_restored` in chunks of the same size, never
//! through live delivery. Meanwhile requests get `RestoreInProgress` and inbound messages are
//! dropped; `RestoreFinished` ends it. Restores run one after the other, oldest first.

use std::collections::VecDeque;

use super::Worker;
use super::delivery::{Recipients, deliver_one};
use super::membership::{number_committed_configuration, replica_config};
use super::partition::Slot;
use crate::core::{DurableState, Entry, LogIndex, NodeId, PartitionId, Replica, Status};
#[cfg(feature = "sim-bugs")]
use crate::shard::NodeBug;
use crate::shard::partitions::marks::LogMarks;
use crate::shard::partitions::{MapTable, PartitionMap, map_entry, map_for_floor};
use crate::shard::read_scheduler::{ReadProgress, Restored};
use crate::shard::wal_records::WalView;
use crate::shard::{Opened, RaftEvent, Refusal, Reply, SYSTEM_PARTITION};

/// Where a restoring partition is.
#[derive(Debug)]
pub(crate) enum Restore {
    /// Its log is being read back from the WAL (it has no replica yet).
    Reading {
        /// The membership it was opened with.
        voters: Vec<NodeId>,
        /// The learners it was opened with.
        learners: Vec<NodeId>,
    },
    /// Its replica is rebuilt; its committed entries go to `on_log_restored`.
    Delivering(RestoreDelivery),
}

/// Handing restored committed entries to `on_log_restored`, chunk by chunk.
#[derive(Debug, Default)]
pub(crate) struct RestoreDelivery {
    /// Committed entries not handed to the application yet, in log order.
    pub(crate) backlog: VecDeque<Entry>,
    /// The highest committed index among them (applied once all are handed over).
    pub(crate) through: LogIndex,
    /// How many were handed over.
    delivered: u64,
    /// The entries handed over, kept for the `RedeliverAfterRestore` bug (feature `sim-bugs`).
    #[cfg(feature = "sim-bugs")]
    redeliver: Vec<Entry>,
}

impl Worker {
    /// Creates `partition`'s replica, or starts restoring it when the WAL holds its log, and
    /// answers with where it lives.
    pub(super) fn open(
        &mut self,
        partition: PartitionId,
        voters: Vec<NodeId>,
        learners: Vec<NodeId>,
        reply: Reply<Opened>,
    ) {
        let _ = reply.send(self.open_partition(partition, voters, learners));
    }

    /// Creates `partition`'s replica, or starts restoring it when the WAL holds its log;
    /// answers where it lives (opening an open partition answers as the first open did).
    ///
    /// # Errors
    ///
    /// `ShardFailed` on a failed shard (also when looking the partition up fails the WAL),
    /// `QueueFull` beyond `partitions_max`, `Replica(Errored)` for an invalid membership.
    pub(super) fn open_partition(
        &mut self,
        partition: PartitionId,
        voters: Vec<NodeId>,
        learners: Vec<NodeId>,
    ) -> Result<Opened, Refusal> {
        if let Some(refusal) = self.failure_refusal() {
            return Err(refusal);
        }
        if let Some(slot) = self.partitions.get(partition) {
            return Ok(Opened {
                shard: self.shard,
                restoring: slot.restoring(),
            });
        }
        if self.partitions.len() >= self.config.partitions_max {
            return Err(Refusal::QueueFull);
        }
        let config = replica_config(
            &self.config,
            &self.membership,
            partition,
            voters.clone(),
            learners.clone(),
        );
        if config.validate().is_err() {
            // An invalid membership (no voter, a node listed twice).
            return Err(Refusal::Replica(Status::Errored));
        }
        self.events.emit(RaftEvent::RestoreStarted { partition });
        let found = self.reads.start(&self.wal, partition);
        match found {
            Ok(Some(info)) => {
                let restore = Restore::Reading { voters, learners };
                let mut view = WalView::recovered(&info);
                if partition == SYSTEM_PARTITION {
                    view.keep_maps(self.config.wal.floor_meta_bytes_max);
                }
                let slot = Slot::restoring_from(restore, view);
                self.partitions.insert(partition, slot);
                self.restoring.push_back(partition);
                Ok(Opened {
                    shard: self.shard,
                    restoring: true,
                })
            }
            Ok(None) => {
                let mut replica = Replica::new(config, DurableState::default())
                    .map_err(|_| Refusal::Replica(Status::Errored))?;
                number_committed_configuration(partition, &mut replica);
                let mut slot = Slot::serving(replica);
                if partition == SYSTEM_PARTITION {
                    slot.view.keep_maps(self.config.wal.floor_meta_bytes_max);
                    // An earlier version's map file without a log: the map it names
                    // stands until partition 0's log brings newer ones.
                    let upgrade = self.maps.take_upgrade();
                    slot.view.restored(
                        &DurableState::default(),
                        upgrade.as_ref(),
                        LogMarks::default(),
                    );
                    if let Some(map) = upgrade {
                        // Read from the data directory: a restart reads it again.
                        self.maps.publish_durable(map);
                    }
                }
                self.partitions.insert(partition, slot);
                self.events.emit(RaftEvent::RestoreFinished {
                    partition,
                    entries_delivered: 0,
                });
                Ok(Opened {
                    shard: self.shard,
                    restoring: false,
                })
            }
            Err(error) => {
                self.fail(format!("WAL: {error}"));
                Err(self.failure_refusal().unwrap_or(Refusal::ShutDown))
            }
        }
    }

    /// Reads or delivers at most `restore_entries_per_turn_max` entries of restoring
    /// partitions, oldest restore first.
    pub(super) fn restore_step(&mut self) -> bool {
        if self.failed() || self.restoring.is_empty() {
            return false;
        }
        let mut budget = self.config.restore_entries_per_turn_max;
        let mut worked = false;
        let mut delivered_maps = false;
        while budget > 0 {
            let Some(&partition) = self.restoring.front() else {
                break;
            };
            let dirty = self.partitions.is_dirty(partition);
            let Some(slot) = self.partitions.get_mut(partition) else {
                worked = true;
                self.restoring.pop_front();
                continue;
            };
            let delivery = match slot.restore.as_deref_mut() {
                Some(Restore::Reading { .. }) => {
                    let progress = self.reads.read(&self.wal, partition, &mut budget);
                    if !matches!(progress, Ok(ReadProgress::WaitForWal)) {
                        worked = true;
                    }
                    match progress {
                        Ok(ReadProgress::More) => {}
                        // Nothing to do before the WAL's next completion.
                        Ok(ReadProgress::WaitForWal) => break,
                        Ok(ReadProgress::Done(restored)) => self.rebuild(partition, *restored),
                        Err(reason) => {
                            self.partitions.remove(partition);
                            self.restoring.pop_front();
                            self.events
                                .emit(RaftEvent::RestoreFailed { partition, reason });
                        }
                    }
                    continue;
                }
                Some(Restore::Delivering(delivery)) => delivery,
                None => {
                    worked = true;
                    self.restoring.pop_front();
                    continue;
                }
            };
            worked = true;
            delivered_maps |= partition == SYSTEM_PARTITION;
            let to = Recipients::of(
                &self.app,
                &self.events,
                &self.maps,
                self.transfer.as_ref(),
                &self.config,
            );
            while budget > 0 {
                let Some(entry) = delivery.backlog.pop_front() else {
                    break;
                };
                budget -= 1;
                delivery.delivered += 1;
                deliver_one(&to, partition, &entry, true);
                #[cfg(feature = "sim-bugs")]
                if self.config.bug == Some(NodeBug::RedeliverAfterRestore) {
                    delivery.redeliver.push(entry);
                }
            }
            let has_ready = slot.replica.as_ref().is_some_and(Replica::has_ready);
            if delivery.backlog.is_empty() && !has_ready && !dirty {
                #[cfg(feature = "sim-bugs")]
                for entry in std::mem::take(&mut delivery.redeliver) {
                    // The bug: live delivery starts again from the floor.
                    deliver_one(&to, partition, &entry, false);
                }
                let through = delivery.through;
                let delivered = delivery.delivered;
                slot.restore = None;
                if let Some(replica) = slot.replica.as_mut() {
                    replica.applied(through);
                }
                self.restoring.pop_front();
                // `applied` may allow a compaction: let the gather see it this turn.
                self.partitions.mark_dirty(partition);
                self.events.emit(RaftEvent::RestoreFinished {
                    partition,
                    entries_delivered: delivered,
                });
            } else if budget > 0 {
                // Waiting for this partition's Readies (gathered later in the turn).
                break;
            }
        }
        if delivered_maps {
            self.note_map_written();
        }
        worked
    }

    /// Builds the replica of a partition whose log was read back, then hands its committed
    /// entries above the application's durable point over (through its Readies, into the
    /// restore backlog).
    fn rebuild(&mut self, partition: PartitionId, restored: Restored) {
        let Restored {
            mut durable,
            floor_map,
            floor_marks,
        } = restored;
        let Some(slot) = self.partitions.get_mut(partition) else {
            return;
        };
        let Some(Restore::Reading { voters, learners }) =
            slot.restore.take().map(|restore| *restore)
        else {
            return;
        };
        if partition == SYSTEM_PARTITION {
            // The map file of an earlier version stands for the map at the floor when the
            // floor meta holds none (that version compacted the map entries away); read once.
            let upgrade = self.maps.take_upgrade();
            let floor_map = floor_map.or(upgrade);
            slot.view
                .restored(&durable, floor_map.as_ref(), LogMarks::default());
            publish_restored_maps(
                &self.maps,
                floor_map,
                &durable,
                self.config.wal.floor_meta_bytes_max,
            );
        } else {
            slot.view.restored(&durable, None, floor_marks);
        }
        let built =
            durable_point(&durable, self.app.durable_index(partition)).and_then(|applied| {
                durable.applied = applied;
                // What the application holds of the split entries: those through `applied`
                // (the later ones are handed over again).
                let marks = LogMarks::through(floor_marks, &durable.entries, applied);
                let config =
                    replica_config(&self.config, &self.membership, partition, voters, learners);
                Replica::new(config, durable)
                    .map(|mut replica| {
                        number_committed_configuration(partition, &mut replica);
                        (replica, applied, marks)
                    })
                    .map_err(|error| error.to_string())
            });
        match built {
            Ok((replica, applied, marks)) => {
                self.maps.progress().set_applied(partition, marks);
                slot.replica = Some(replica);
                slot.restore = Some(Box::new(Restore::Delivering(RestoreDelivery {
                    through: applied,
                    ..RestoreDelivery::default()
                })));
                self.partitions.mark_dirty(partition);
            }
            Err(reason) => {
                self.partitions.remove(partition);
                self.restoring.retain(|p| *p != partition);
                self.events
                    .emit(RaftEvent::RestoreFailed { partition, reason });
            }
        }
    }
}

/// Publishes partition 0's map as its log read back commits it: the floor's, then every map
/// entry up to the commit index (those between the floor and the application's durable index
/// are never delivered again). Each is durable: a restart publishes it again.
fn publish_restored_maps(
    maps: &MapTable,
    floor_map: Option<PartitionMap>,
    durable: &DurableState,
    floor_meta_bytes_max: usize,
) {
    if let Some(map) = floor_map {
        maps.publish_durable(map);
    }
    let committed = durable
        .entries
        .iter()
        .take_while(|e| e.index <= durable.hard_state.commit);
    for entry in committed {
        if let Some(map) = map_entry(SYSTEM_PARTITION, entry)
            .and_then(|encoded| map_for_floor(&encoded, floor_meta_bytes_max).ok())
        {
            maps.publish_durable(map);
        }
    }
}

/// Where the application's state of a restored partition stands: its durable index when it
/// reports one (possibly beyond the log: a snapshot imported before a crash lost its
/// boundary), else the WAL's floor (the last checkpoint it applied).
///
/// # Errors
/// A durable index below the floor: the entries between are gone, the application would miss
/// them.
fn durable_point(durable: &DurableState, reported: Option<LogIndex>) -> Result<LogIndex, String> {
    let floor = durable.floor;
    match reported {
        None => Ok(floor),
        Some(index) if index < floor => Err(format!(
            "the application's state is durable through index {index} only, below the WAL's \
             compaction floor {floor}: the entries between are gone"
        )),
        Some(index) => Ok(index),
    }
}
