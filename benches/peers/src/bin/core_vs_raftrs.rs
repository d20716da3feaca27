//! The core against raft-rs, side by side in one run: three replicas of one group in one
//! process, messages passed in memory in FIFO order, every Ready "persisted" at once (no I/O),
//! 16-byte entries proposed in batches. Both sides run the same loop: propose one batch on the
//! leader, then process Readies and messages until the leader has delivered the whole batch.
//! Both bound their in-memory logs the same way (kommander: a checkpoint every 16 384 entries;
//! raft-rs: `MemStorage::compact` to the applied index at the same interval).
//!
//! Run: `cargo run --release --manifest-path benches/peers/Cargo.toml --bin core_vs_raftrs`
//! (optional arguments: seconds per round, rounds). Prints committed entries per second per
//! core for each side and batch size (median of the rounds, alternating sides) and the ratio.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kommander_raft::sim::MemoryCluster;
use raft::eraftpb::{ConfState, Entry, Message, MessageType};
use raft::storage::MemStorage;
use raft::{Config, RawNode};
use slog::{Discard, Logger, o};

const ENTRY_BYTES: usize = 16;
const COMPACT_INTERVAL_ENTRIES: u64 = 16_384;

/// One side of the comparison: commit one batch of `batch` entries.
trait Cluster {
    fn commit_batch(&mut self, payload: &Bytes, batch: usize);
}

struct Kommander {
    cluster: MemoryCluster,
    payloads: Vec<Bytes>,
}

impl Cluster for Kommander {
    fn commit_batch(&mut self, payload: &Bytes, batch: usize) {
        if self.payloads.len() != batch {
            self.payloads = vec![payload.clone(); batch];
        }
        self.cluster
            .commit(&self.payloads)
            .expect("the kommander leader commits");
    }
}

struct RaftRs {
    nodes: Vec<RawNode<MemStorage>>,
    inbox: VecDeque<Message>,
    leader: usize,
    delivered: u64,
    delivered_at_compaction: u64,
}

impl RaftRs {
    fn new() -> Self {
        let logger = Logger::root(Discard, o!());
        let mut nodes: Vec<RawNode<MemStorage>> = (1..=3u64)
            .map(|id| {
                let storage =
                    MemStorage::new_with_conf_state(ConfState::from((vec![1, 2, 3], vec![])));
                // The same timing and windows as kommander's defaults.
                let config = Config {
                    id,
                    election_tick: 10,
                    heartbeat_tick: 2,
                    max_size_per_msg: 1 << 20,
                    max_inflight_msgs: 256,
                    pre_vote: true,
                    check_quorum: true,
                    ..Config::default()
                };
                RawNode::new(&config, storage, &logger).expect("valid raft-rs config")
            })
            .collect();
        nodes[0].campaign().expect("campaign");
        let mut cluster = Self {
            nodes,
            inbox: VecDeque::new(),
            leader: 0,
            delivered: 0,
            delivered_at_compaction: 0,
        };
        while cluster.pump() {}
        assert_eq!(cluster.nodes[0].raft.state, raft::StateRole::Leader);
        cluster
    }

    fn handle_ready(&mut self, node: usize) -> bool {
        if !self.nodes[node].has_ready() {
            return false;
        }
        let raw = &mut self.nodes[node];
        let mut ready = raw.ready();
        self.inbox.extend(ready.take_messages());
        let committed = ready.take_committed_entries();
        if node == self.leader {
            self.delivered += committed.iter().filter(|e| !e.data.is_empty()).count() as u64;
        }
        let store = raw.raft.raft_log.store.clone();
        if !ready.entries().is_empty() {
            store.wl().append(ready.entries()).expect("append");
        }
        if let Some(hard_state) = ready.hs() {
            store.wl().set_hardstate(hard_state.clone());
        }
        self.inbox.extend(ready.take_persisted_messages());
        let mut light = raw.advance(ready);
        if let Some(commit) = light.commit_index() {
            store.wl().mut_hard_state().set_commit(commit);
        }
        self.inbox.extend(light.take_messages());
        let committed = light.take_committed_entries();
        if node == self.leader {
            self.delivered += committed.iter().filter(|e| !e.data.is_empty()).count() as u64;
        }
        raw.advance_apply();
        true
    }

    fn pump(&mut self) -> bool {
        let mut moved = false;
        loop {
            let mut progressed = false;
            for node in 0..self.nodes.len() {
                while self.handle_ready(node) {
                    progressed = true;
                }
            }
            while let Some(message) = self.inbox.pop_front() {
                progressed = true;
                let to = message.to as usize - 1;
                let _ = self.nodes[to].step(message);
            }
            if !progressed {
                return moved;
            }
            moved = true;
        }
    }
}

impl Cluster for RaftRs {
    fn commit_batch(&mut self, payload: &Bytes, batch: usize) {
        let target = self.delivered + batch as u64;
        // One proposal message carrying the whole batch, as etcd/raft-rs applications batch.
        let mut message = Message::default();
        message.set_msg_type(MessageType::MsgPropose);
        message.from = self.leader as u64 + 1;
        let entries: Vec<Entry> = (0..batch)
            .map(|_| Entry {
                data: payload.clone(),
                ..Entry::default()
            })
            .collect();
        message.set_entries(entries.into());
        self.nodes[self.leader]
            .step(message)
            .expect("the raft-rs leader accepts the proposal");
        while self.delivered < target {
            assert!(self.pump(), "raft-rs stalled");
        }
        if self.delivered - self.delivered_at_compaction >= COMPACT_INTERVAL_ENTRIES {
            self.delivered_at_compaction = self.delivered;
            for node in &mut self.nodes {
                let applied = node.raft.raft_log.applied;
                let store = node.raft.raft_log.store.clone();
                store.wl().compact(applied).expect("compact");
            }
        }
    }
}

/// Committed entries per second for `duration` of back-to-back batches.
fn measure(cluster: &mut dyn Cluster, batch: usize, duration: Duration) -> f64 {
    let payload = Bytes::from_static(&[0x5A; ENTRY_BYTES]);
    let start = Instant::now();
    let mut entries = 0u64;
    while start.elapsed() < duration {
        for _ in 0..16 {
            cluster.commit_batch(&payload, batch);
            entries += batch as u64;
        }
    }
    entries as f64 / start.elapsed().as_secs_f64()
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let seconds: f64 = args
        .next()
        .map_or(1.0, |s| s.parse().expect("seconds per round"));
    let rounds: usize = args.next().map_or(5, |s| s.parse().expect("rounds"));
    let round = Duration::from_secs_f64(seconds);
    println!(
        "core vs raft-rs: 3 replicas in one process, in-memory messages, no I/O, {ENTRY_BYTES} B \
         entries; median of {rounds} rounds × {seconds} s per side, sides alternating"
    );
    println!(
        "{:>6}  {:>22}  {:>22}  {:>6}",
        "batch", "kommander entries/s", "raft-rs entries/s", "ratio"
    );
    for batch in [1usize, 16, 256] {
        let mut kommander = Kommander {
            cluster: MemoryCluster::new(3).expect("kommander elects a leader"),
            payloads: Vec::new(),
        };
        let mut raftrs = RaftRs::new();
        // Warm-up (allocators, caches) on both sides.
        measure(&mut kommander, batch, round / 4);
        measure(&mut raftrs, batch, round / 4);
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            ours.push(measure(&mut kommander, batch, round));
            theirs.push(measure(&mut raftrs, batch, round));
        }
        let (ours, theirs) = (median(&mut ours), median(&mut theirs));
        println!(
            "{batch:>6}  {ours:>22.0}  {theirs:>22.0}  {:>5.2}×",
            ours / theirs
        );
    }
}
