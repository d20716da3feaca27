//! Shared test helpers: small configs, a reference model of the log, a seeded generator of
//! valid workloads, and a checker comparing a `Wal` with the model.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};

use kommander_wal::backend::BackendChoice;
use kommander_wal::fuzzing::{FrameCheck, check_frame, decode_segment_header, frame_footprint};
use kommander_wal::{PartitionId, PartitionInfo, TermVote, Wal, WalConfig, Write};

/// A backend factory: given the directory, the backend to open it with.
pub type Factory = fn(&Path) -> BackendChoice;

/// Small segments and frames so tests rotate, reclaim and recycle often.
pub fn small_config(backend: BackendChoice) -> WalConfig {
    WalConfig {
        backend,
        segment_bytes: 64 << 10,
        batch_bytes_max: 16 << 10,
        record_bytes_max: 8 << 10,
        floor_meta_bytes_max: 1 << 10,
        inflight_batches_max: 2,
        partitions_max: 64,
        segments_prepared_ahead_max: 1,
        segments_recycled_max: 1,
        // Rewrite at every rotation: the tests that enumerate crash points and failures then
        // cross the rewrite as often as possible.
        segments_before_rewrite: 1,
        prepare_segments_in_background: true,
        deterministic_epoch_seed: None,
    }
}

/// SplitMix64: a tiny seeded generator.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// An owned write (the test side of `kommander_wal::Write`).
#[derive(Clone, Debug)]
pub enum Op {
    Entry(u32, u64, u64, Vec<u8>),
    TermVote(u32, TermVote),
    Commit(u32, u64),
    TruncateAfter(u32, u64),
    /// (partition, index, floor meta).
    CompactTo(u32, u64, Vec<u8>),
    /// A snapshot boundary: (partition, index, term, floor meta).
    InstallSnapshot(u32, u64, u64, Vec<u8>),
    Delete(u32),
}

impl Op {
    pub fn as_write(&self) -> Write<'_> {
        match self {
            Op::Entry(p, index, term, payload) => Write::Entry {
                partition: PartitionId(*p),
                index: *index,
                term: *term,
                payload,
            },
            Op::TermVote(p, state) => Write::TermVote {
                partition: PartitionId(*p),
                state: *state,
            },
            Op::Commit(p, index) => Write::CommitIndex {
                partition: PartitionId(*p),
                index: *index,
            },
            Op::TruncateAfter(p, index) => Write::TruncateAfter {
                partition: PartitionId(*p),
                index: *index,
            },
            Op::CompactTo(p, index, meta) => Write::CompactTo {
                partition: PartitionId(*p),
                index: *index,
                floor_meta: meta,
            },
            Op::InstallSnapshot(p, index, term, meta) => Write::InstallSnapshot {
                partition: PartitionId(*p),
                index: *index,
                term: *term,
                floor_meta: meta,
            },
            Op::Delete(p) => Write::DeletePartition {
                partition: PartitionId(*p),
            },
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelPartition {
    pub first_index: u64,
    pub floor_term: u64,
    /// The meta of the latest compaction that moved the floor or snapshot boundary.
    pub floor_meta: Vec<u8>,
    pub fresh: bool,
    pub entries: VecDeque<(u64, Vec<u8>)>,
    pub term_vote: Option<TermVote>,
    pub commit: Option<u64>,
}

impl ModelPartition {
    fn new() -> Self {
        Self {
            first_index: 1,
            floor_term: 0,
            floor_meta: Vec::new(),
            fresh: true,
            entries: VecDeque::new(),
            term_vote: None,
            commit: None,
        }
    }

    pub fn next_index(&self) -> u64 {
        self.first_index + self.entries.len() as u64
    }

    pub fn term_at(&self, index: u64) -> Option<u64> {
        if index >= self.first_index && index < self.next_index() {
            return Some(self.entries[(index - self.first_index) as usize].0);
        }
        (!self.fresh && index + 1 == self.first_index).then_some(self.floor_term)
    }

    pub fn info(&self) -> PartitionInfo {
        PartitionInfo {
            first_index: self.first_index,
            last_index: self.next_index() - 1,
            last_term: self.entries.back().map_or(self.floor_term, |e| e.0),
            term_vote: self.term_vote,
            commit_index: self.commit,
        }
    }
}

/// The reference model: what the log must hold after a sequence of writes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Model {
    pub partitions: BTreeMap<u32, ModelPartition>,
}

impl Model {
    pub fn apply(&mut self, op: &Op) {
        if let Op::Delete(p) = op {
            self.partitions.remove(p);
            return;
        }
        let (Op::Entry(p, ..)
        | Op::TermVote(p, _)
        | Op::Commit(p, _)
        | Op::TruncateAfter(p, _)
        | Op::CompactTo(p, ..)
        | Op::InstallSnapshot(p, ..)
        | Op::Delete(p)) = op;
        let part = self
            .partitions
            .entry(*p)
            .or_insert_with(ModelPartition::new);
        match op {
            Op::Entry(_, index, term, payload) => {
                if part.fresh {
                    part.first_index = *index;
                    part.fresh = false;
                }
                assert_eq!(*index, part.next_index(), "model: workload not contiguous");
                part.entries.push_back((*term, payload.clone()));
            }
            Op::TermVote(_, term_vote) => part.term_vote = Some(*term_vote),
            Op::Commit(_, c) => part.commit = Some(*c),
            Op::TruncateAfter(_, i) => {
                if *i < part.first_index {
                    part.entries.clear();
                    part.first_index = i + 1;
                } else {
                    let keep = (i - part.first_index + 1).min(part.entries.len() as u64);
                    part.entries.truncate(keep as usize);
                }
                part.fresh = false;
            }
            Op::CompactTo(_, i, meta) => {
                if *i <= part.first_index && !part.fresh {
                    // Below the floor, or at it (restating its term and meta): no change.
                    return;
                }
                let term = part.term_at(i - 1).unwrap_or(0);
                let drop = i.saturating_sub(part.first_index);
                if drop >= part.entries.len() as u64 {
                    part.entries.clear();
                } else {
                    part.entries.drain(..drop as usize);
                }
                part.first_index = *i;
                part.floor_term = term;
                part.floor_meta.clone_from(meta);
                part.fresh = false;
            }
            Op::InstallSnapshot(_, i, t, meta) => {
                if part.term_at(*i) == Some(*t) {
                    let drop = (i + 1).saturating_sub(part.first_index);
                    if drop >= part.entries.len() as u64 {
                        part.entries.clear();
                    } else {
                        part.entries.drain(..drop as usize);
                    }
                } else {
                    part.entries.clear();
                }
                part.first_index = i + 1;
                part.floor_term = *t;
                part.floor_meta.clone_from(meta);
                part.fresh = false;
            }
            Op::Delete(_) => {}
        }
    }
}

/// Asserts the log holds exactly the model (every partition, entry, term, floor meta, term and
/// vote, and commit index). The log must be fully durable.
pub fn assert_matches(wal: &Wal, model: &Model, context: &str) {
    let listed = wal.partitions().expect("list partitions");
    let expected: Vec<_> = model
        .partitions
        .iter()
        .map(|(id, p)| (PartitionId(*id), p.info()))
        .collect();
    assert_eq!(listed, expected, "{context}: partitions differ");
    for (id, part) in &model.partitions {
        let p = PartitionId(*id);
        for (i, (term, payload)) in part.entries.iter().enumerate() {
            let index = part.first_index + i as u64;
            let bytes = wal
                .entry(p, index)
                .unwrap_or_else(|e| panic!("{context}: read {p}/{index}: {e}"));
            assert_eq!(&bytes[..], &payload[..], "{context}: payload {p}/{index}");
            assert_eq!(
                wal.term_at(p, index).expect("term"),
                *term,
                "{context}: term {p}/{index}"
            );
        }
        if !part.fresh {
            assert_eq!(
                wal.term_at(p, part.first_index - 1).ok(),
                Some(part.floor_term),
                "{context}: floor term of {p}"
            );
        }
        assert_eq!(
            wal.floor_meta(p).expect("floor meta")[..],
            part.floor_meta[..],
            "{context}: floor meta of {p}"
        );
    }
}

/// A floor meta derived from where it is written (no draw from the workload's generator, so
/// adding metas left every workload's other writes as they were): empty one time in three,
/// else up to 300 bytes.
pub fn floor_meta_for(partition: u32, index: u64) -> Vec<u8> {
    let seed = u64::from(partition).wrapping_mul(31).wrapping_add(index);
    if seed % 3 == 0 {
        return Vec::new();
    }
    let len = (seed.wrapping_mul(0x9E37_79B9) % 300) as usize + 1;
    (0..len).map(|i| (seed as usize + i) as u8).collect()
}

/// A valid random workload over `partitions` partitions: mostly entries, with terms and votes,
/// commit indexes, truncations, compactions, snapshot boundaries (keeping the suffix, in
/// conflict with it, beyond the last entry), both with floor metas (often empty), and
/// (rarely) deletions.
pub fn workload(seed: u64, ops: usize, partitions: u32, payload_max: u64) -> Vec<Op> {
    let mut rng = Rng(seed);
    let mut model = Model::default();
    let mut out = Vec::with_capacity(ops);
    let mut term = 1;
    while out.len() < ops {
        let p = rng.below(u64::from(partitions)) as u32 + 1;
        let part = model.partitions.get(&p);
        let op = match rng.below(100) {
            0..=69 => {
                let index = part.map_or(1, |m| m.next_index());
                let len = if rng.below(10) == 0 {
                    rng.below(payload_max * 4)
                } else {
                    rng.below(payload_max)
                };
                let payload: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                Op::Entry(p, index, term, payload)
            }
            70..=77 => {
                if rng.below(3) == 0 {
                    term += 1;
                }
                let vote = (rng.below(2) == 0).then(|| rng.below(5));
                Op::TermVote(p, TermVote { term, vote })
            }
            78..=84 => Op::Commit(p, rng.below(1000)),
            85..=91 => match part {
                Some(m) if !m.entries.is_empty() => {
                    let back = rng.below(m.entries.len() as u64 + 1);
                    Op::TruncateAfter(
                        p,
                        m.next_index() - 1 - back.min(m.next_index() - m.first_index),
                    )
                }
                _ => continue,
            },
            92..=94 => {
                let (floor, next) = part.map_or((0, 1), |m| {
                    (m.first_index.saturating_sub(1), m.next_index())
                });
                let index = (floor + rng.below(next - floor + 4)).max(1);
                let held = part.and_then(|m| m.term_at(index));
                let index_term = match (held, rng.below(3)) {
                    (Some(held), 0 | 1) => held,
                    (Some(held), _) => held + 1,
                    (None, _) => term,
                };
                Op::InstallSnapshot(p, index, index_term, floor_meta_for(p, index))
            }
            95..=98 => match part {
                Some(m) if !m.entries.is_empty() => {
                    let forward = rng.below(m.entries.len() as u64 + 2);
                    let index = m.first_index + forward;
                    Op::CompactTo(p, index, floor_meta_for(p, index))
                }
                _ => continue,
            },
            _ => match part {
                Some(_) => Op::Delete(p),
                None => continue,
            },
        };
        model.apply(&op);
        out.push(op);
    }
    out
}

/// Appends `ops` one by one (applying them to `model`), submitting every few and polling,
/// then syncs.
pub fn run_ops(wal: &mut Wal, ops: &[Op], rng: &mut Rng, model: &mut Model) {
    for op in ops {
        wal.append(&[op.as_write()]).expect("append");
        model.apply(op);
        if rng.below(4) == 0 {
            wal.submit().expect("submit");
        }
        if rng.below(8) == 0 {
            wal.poll_durable().expect("poll");
        }
    }
    let end = wal.next_lsn();
    assert_eq!(wal.sync().expect("sync"), end);
}

/// Opens with `factory`.
pub fn open(dir: &Path, factory: Factory) -> Wal {
    Wal::open(dir, small_config(factory(dir))).expect("open")
}

/// Segment files of a directory, sorted by seq.
pub fn segments(dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut out: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .expect("list")
        .filter_map(|e| {
            let path = e.expect("entry").path();
            let name = path.file_name()?.to_str()?.to_owned();
            let seq = u64::from_str_radix(name.strip_suffix(".wal")?, 16).ok()?;
            Some((seq, path))
        })
        .collect();
    out.sort();
    out
}

/// Valid frames of a segment file: (offset, payload_len).
pub fn frames(path: &Path) -> Vec<(u64, usize)> {
    let bytes = std::fs::read(path).expect("read segment");
    let header = decode_segment_header(&bytes).expect("segment header");
    let (seq, epoch) = (header.segment_seq.get(), header.epoch.get());
    let mut out = Vec::new();
    let mut offset = 4096u64;
    while offset + 64 <= bytes.len() as u64 {
        match check_frame(&bytes, offset, seq, epoch) {
            FrameCheck::Valid(h) => {
                let len = h.payload_len.get() as usize;
                out.push((offset, len));
                offset += frame_footprint(len) as u64;
            }
            _ => break,
        }
    }
    out
}

pub fn patch(path: &Path, offset: u64, bytes: &[u8]) {
    let mut data = std::fs::read(path).expect("read");
    data[offset as usize..offset as usize + bytes.len()].copy_from_slice(bytes);
    std::fs::write(path, data).expect("write");
}
