//! What happened, as the simulator saw it: the answers clients got, the entries (and import
//! entries) applications were handed, the leaders the wire showed, the durable logs the disks
//! hold and the partition maps partition 0's disks held. The checkers judge from these
//! records only.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use kommander_wal::backend::sim::DurableLogs;

use crate::core::{Configuration, EntryKind, LogIndex, PartitionId, Term};
use crate::shard::codec::decode_record;
use crate::shard::partitions::marks::{GenerationMark, SplitEntry, split_entry};
use crate::shard::partitions::{PartitionMap, map_entry};

use super::checkers::{RangeHistory, RoutedWrite};
use super::workload::Op;

/// A write answered `Success`: a quorum holds it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Acknowledged {
    pub(super) partition: PartitionId,
    pub(super) index: LogIndex,
    pub(super) op: Op,
    /// Simulated time of the answer.
    pub(super) at: u64,
}

/// An entry some application was handed (the first one seen at its index).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Applied {
    pub(super) term: Term,
    pub(super) kind: EntryKind,
    pub(super) op: Option<Op>,
}

/// One partition's log as a disk holds it durably.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct DurableLog {
    /// Compaction floor: entries at or below it are gone.
    pub(super) floor: LogIndex,
    /// The term of the entry at the floor (0 when nothing was compacted).
    pub(super) floor_term: Term,
    /// Entries above the floor: index → (term, workload operation if any).
    pub(super) entries: BTreeMap<LogIndex, (Term, Option<Op>)>,
    /// The configuration kept with the floor (`None`: the first one, every node a voter).
    pub(super) floor_configuration: Option<Configuration>,
    /// The configuration entries above the floor.
    pub(super) configurations: BTreeMap<LogIndex, Configuration>,
    /// A user partition's highest generation entry when its floor meta was written (entries
    /// above the floor included).
    pub(super) floor_mark: GenerationMark,
    /// A user partition's generation entries above the floor (a split's or merge's source).
    pub(super) marks: BTreeMap<LogIndex, GenerationMark>,
    /// Partition 0's maps: the one kept at the floor, then its map entries in log order.
    pub(super) maps: Vec<PartitionMap>,
}

impl DurableLog {
    /// The configuration in force at `index` as this log shows it: the latest configuration
    /// entry at or below it, else the floor's (`None`: the first configuration).
    pub(super) fn configuration_at(&self, index: LogIndex) -> Option<&Configuration> {
        self.configurations
            .range(..=index)
            .next_back()
            .map(|(_, configuration)| configuration)
            .or(self.floor_configuration.as_ref())
    }
}

/// Everything recorded.
#[derive(Debug, Default)]
pub(super) struct Truth {
    /// Writes that must survive everything: auto-commit writes answered `Success`, and held
    /// writes whose commit was answered `Success` (a held write's own answer is checked when it
    /// comes, but a rollback may later let it go).
    pub(super) acknowledged: Vec<Acknowledged>,
    /// Operations answered with a definite failure (never appended, or rolled back): id →
    /// (partition, simulated time, what the answer was).
    pub(super) failed: HashMap<u64, (PartitionId, u64, String)>,
    /// Operation id → where some application applied it.
    pub(super) applied_ops: HashMap<u64, (PartitionId, LogIndex)>,
    /// (partition, index) → the entry first handed over there.
    pub(super) applied: HashMap<(PartitionId, LogIndex), Applied>,
    /// The durable logs of disks lost to replacements (`replace.rs`), when they were lost:
    /// (node, shard, its partitions' logs). The log checkers never compare them; a write
    /// acknowledged before the loss counts them as its node's copy.
    pub(super) lost_disks: Vec<LostDisk>,
    /// (partition, index) → the registers the import entry there carried (the first one
    /// handed over at that index; none for a begin or an end).
    pub(super) imports: Imports,
    /// Committed workload writes routed with a generation (the first hand-over of each).
    pub(super) routed_writes: Vec<RoutedWrite>,
    /// The ids of the writes in `routed_writes`.
    pub(super) routed_ids: HashSet<u64>,
    /// The partition maps partition 0's disks held, whenever a disk's image was read.
    pub(super) ranges: RangeHistory,
}

/// The registers each import entry carried: (partition, index) → (key, value) pairs.
pub(super) type Imports = HashMap<(PartitionId, LogIndex), Vec<(u64, u64)>>;

/// A disk lost to a replacement: (node, shard, its partitions' durable logs when it was lost).
pub(super) type LostDisk = (usize, usize, Arc<BTreeMap<PartitionId, DurableLog>>);

/// Decodes the durable logs a disk reports (what a recovery after a power cut now would find:
/// the disk model's own image, recovered by the WAL's scan and replay) into the checkers'
/// terms: per partition its floor and, per entry, its term and workload operation.
///
/// # Errors
/// An entry record that does not decode (the WAL holds what the shard wrote: a violation).
pub(super) fn decode_durable(
    logs: &DurableLogs,
) -> Result<BTreeMap<PartitionId, DurableLog>, String> {
    let mut out = BTreeMap::new();
    for (&partition, log) in &logs.partitions {
        // The floor meta may carry more than the configuration (partition 0's map, a split's
        // marks): decoded as the shard reads it back.
        let floor_meta = crate::shard::partitions::decode_floor_meta(&log.floor_meta)
            .map_err(|e| format!("partition {partition} floor meta: {e}"))?;
        let mut durable = DurableLog {
            floor: LogIndex(log.first_index.saturating_sub(1)),
            floor_term: Term(log.floor_term.unwrap_or(0)),
            entries: BTreeMap::new(),
            floor_configuration: floor_meta.configuration,
            configurations: BTreeMap::new(),
            floor_mark: floor_meta.marks.generation,
            marks: BTreeMap::new(),
            maps: floor_meta.map.into_iter().collect(),
        };
        for entry in &log.entries {
            let (index, term) = (LogIndex(entry.index), Term(entry.term));
            let decoded = decode_record(index, term, &entry.payload)
                .map_err(|e| format!("partition {partition} index {index}: {e}"))?;
            if decoded.kind == EntryKind::Configuration {
                let configuration = Configuration::decode(&decoded.payload)
                    .map_err(|e| format!("partition {partition} index {index}: {e}"))?;
                durable.configurations.insert(index, configuration);
            }
            if let Some(Ok(SplitEntry::Generation(mark))) = split_entry(&decoded) {
                durable.marks.insert(index, mark);
            }
            if let Some(map) = map_entry(partition, &decoded) {
                let map = PartitionMap::decode(&map)
                    .map_err(|e| format!("partition {partition} index {index}: {e}"))?;
                durable.maps.push(map);
            }
            let op = crate::shard::LogEntry::decode(&decoded)
                .ok()
                .and_then(|entry| Op::decode(&entry.payload));
            durable.entries.insert(index, (term, op));
        }
        out.insert(partition, durable);
    }
    Ok(out)
}
