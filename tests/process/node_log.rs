//! A stopped node's logs, read offline from its WALs, and the checks a run under load ends
//! with: every acknowledged write at its index, none past the generation entry that froze its
//! partition at a newer generation.

use std::collections::BTreeMap;
use std::path::Path;

use bytes::Bytes;
use kommander_raft::shard::codec::{decode_envelope, decode_record};
use kommander_raft::shard::partitions::GENERATION_LOG_TYPE;
use kommander_raft::{EntryKind, LogIndex, Term};
use kommander_wal::{Wal, WalConfig};

use super::harness::Acked;

/// A stopped node's logs of its user partitions (those the map created or split off
/// included), configuration entries left out.
pub(crate) struct NodeLog {
    /// (partition, index) → the payload of the application's entry there.
    pub(crate) payloads: BTreeMap<(u32, u64), Bytes>,
    /// (partition, index) → the generation a split's or merge's source froze at there (its
    /// generation entry, `GENERATION_LOG_TYPE`).
    pub(crate) generations: BTreeMap<(u32, u64), u64>,
}

impl NodeLog {
    /// Opens a stopped node's WALs and reads its user partitions' logs.
    pub(crate) fn read(data_dir: &Path) -> Self {
        let mut out = Self {
            payloads: BTreeMap::new(),
            generations: BTreeMap::new(),
        };
        for shard in std::fs::read_dir(data_dir).expect("data dir") {
            let path = shard.expect("entry").path();
            if !path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("shard-"))
            {
                continue;
            }
            let wal = Wal::open(&path, WalConfig::default()).expect("open WAL");
            let partitions = wal.partitions().expect("the WAL's partitions");
            // Partition 0 holds the system's entries (rosters, maps), never a client's write.
            for (partition, info) in partitions.into_iter().filter(|(p, _)| p.get() != 0) {
                let p = partition.get();
                for index in info.first_index..=info.last_index {
                    let record = wal.entry(partition, index).expect("entry");
                    let entry = decode_record(LogIndex(index), Term(0), &record).expect("record");
                    // A configuration entry (a membership change) holds a configuration, not an
                    // application's envelope.
                    if entry.kind == EntryKind::Configuration {
                        continue;
                    }
                    let (log_type, payload) = decode_envelope(&entry.payload).expect("envelope");
                    if log_type == GENERATION_LOG_TYPE.as_bytes() {
                        out.generations.insert((p, index), generation_of(&payload));
                    }
                    out.payloads.insert((p, index), payload);
                }
            }
        }
        out
    }

    /// Fails unless this log, node `node`'s, holds every write of `acked` at its acknowledged
    /// index, and, the generation fence judged from the log, none routed with a generation lies
    /// after an entry that froze its partition at a newer one.
    pub(crate) fn assert_holds(&self, node: u64, acked: &[Acked]) {
        let missing: Vec<&Acked> = acked
            .iter()
            .filter(|a| self.payloads.get(&(a.partition.get(), a.index)) != Some(&a.payload))
            .collect();
        assert!(
            missing.is_empty(),
            "node {node} lacks {} of {} acknowledged writes, first {:?}",
            missing.len(),
            acked.len(),
            missing.first()
        );
        for a in acked.iter().filter(|a| a.generation > 0) {
            let p = a.partition.get();
            let frozen_at = self
                .generations
                .range((p, 0)..(p, a.index))
                .map(|(_, &g)| g)
                .max();
            assert!(
                frozen_at.is_none_or(|g| g <= a.generation),
                "node {node}: {a:?} was committed after its partition's generation entry {frozen_at:?}"
            );
        }
    }
}

/// The generation a generation entry's payload names (version byte 1, the generation as a
/// little-endian `u64`, the draining flag: `shard/partitions/marks.rs`).
fn generation_of(payload: &[u8]) -> u64 {
    assert!(
        payload.len() == 10 && payload[0] == 1,
        "a generation entry of another length or version: {payload:?}"
    );
    u64::from_le_bytes(payload[1..9].try_into().expect("eight bytes"))
}
