//! A load that routes by key as a Kommander client does: each writer holds the partition map
//! it read with `Partitions`, routes a key through it (`PartitionMap::partition_for_key`) and
//! sends a fenced write naming the range's generation to the partition's leader. A write
//! refused with `PartitionMoved` (the range moved, or is being split or merged) makes the
//! writer read the map again from the node that refused it and route the same key again,
//! until it is acknowledged. Records every acknowledged write, with the generation it was
//! routed with, and every refused one with what became of it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kommander_raft::transport::tcp::client::{
    ClientConnection, ClientRequest, ClientResponse, PartitionInfo,
};
use kommander_raft::{NodeId, PartitionId, PartitionMap, PartitionRange, Status};

use super::harness::{Acked, CLUSTER, PATIENCE, SECRET};

/// A write refused with `PartitionMoved` and what its key's next attempts came to.
#[derive(Clone, Debug)]
pub(crate) struct Moved {
    /// The partition and generation the refused attempt was routed with.
    pub(crate) refused: (PartitionId, u64),
    /// The partition and generation of the attempt that was acknowledged (`None`: the key was
    /// given up, its last attempt's outcome unknown).
    pub(crate) acked: Option<(PartitionId, u64)>,
}

/// What the writers share.
#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    count: AtomicU64,
    acked: Mutex<Vec<Acked>>,
    moved: Mutex<Vec<Moved>>,
}

/// Writer threads routing keys through the map (see the module's documentation).
pub(crate) struct KeyedLoad {
    shared: Arc<Shared>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// What a stopped load recorded.
pub(crate) struct Recorded {
    /// Every acknowledged write.
    pub(crate) acked: Vec<Acked>,
    /// Every write refused with `PartitionMoved`.
    pub(crate) moved: Vec<Moved>,
}

impl KeyedLoad {
    /// Starts `writers` threads over `clients` (node id → client address; never empty).
    pub(crate) fn start(clients: &BTreeMap<u64, String>, writers: usize) -> Self {
        assert!(!clients.is_empty(), "a load needs a node to write to");
        let shared = Arc::new(Shared::default());
        let threads = (0..writers)
            .map(|w| {
                let shared = Arc::clone(&shared);
                let clients = clients.clone();
                std::thread::spawn(move || Writer::new(w, clients).run(&shared))
            })
            .collect();
        Self { shared, threads }
    }

    /// Acknowledged writes so far.
    pub(crate) fn acked_count(&self) -> u64 {
        self.shared.count.load(Ordering::Relaxed)
    }

    /// Waits until `more` writes beyond the current count are acknowledged.
    pub(crate) fn wait_progress(&self, more: u64) {
        let target = self.acked_count() + more;
        self.wait_until(&format!("{target} acknowledged writes"), |_| {
            self.acked_count() >= target
        });
    }

    /// Waits until the acknowledged writes so far satisfy `holds` (`what` names it).
    pub(crate) fn wait_until(&self, what: &str, holds: impl Fn(&[Acked]) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !holds(&self.shared.acked.lock().expect("acked")) {
            assert!(
                Instant::now() < deadline,
                "the load never reached {what} ({} acknowledged)",
                self.acked_count()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The partition with the most acknowledged writes so far.
    pub(crate) fn busiest(&self) -> PartitionId {
        let mut per_partition: BTreeMap<u32, u64> = BTreeMap::new();
        for a in self.shared.acked.lock().expect("acked").iter() {
            *per_partition.entry(a.partition.get()).or_default() += 1;
        }
        let (&busiest, _) = per_partition
            .iter()
            .max_by_key(|&(_, count)| *count)
            .expect("acknowledged writes");
        PartitionId(busiest)
    }

    /// Stops the writers (each finishes the key it is writing) and returns what they
    /// recorded.
    pub(crate) fn stop(self) -> Recorded {
        self.shared.stop.store(true, Ordering::Release);
        for thread in self.threads {
            thread.join().expect("writer thread");
        }
        Recorded {
            acked: std::mem::take(&mut *self.shared.acked.lock().expect("acked")),
            moved: std::mem::take(&mut *self.shared.moved.lock().expect("moved")),
        }
    }
}

/// The map a node answers `Partitions` with, as a [`PartitionMap`] to route through.
pub(crate) fn read_map(connection: &mut ClientConnection) -> Option<PartitionMap> {
    match connection.call(&ClientRequest::Partitions).ok()? {
        ClientResponse::Partitions {
            status: Status::Success,
            version,
            partitions,
        } if version > 0 => Some(PartitionMap {
            version,
            partitions: partitions.iter().map(range_of).collect(),
        }),
        _ => None,
    }
}

fn range_of(info: &PartitionInfo) -> PartitionRange {
    PartitionRange {
        partition_id: info.partition,
        start: info.start,
        end: info.end,
        generation: info.generation,
        state: info.state,
        routing: info.routing,
        importing_from: info.importing_from,
        exporting_to: info.exporting_to,
        first: None,
    }
}

/// One writer's connections, leader guesses and map.
struct Writer {
    w: usize,
    clients: BTreeMap<u64, String>,
    connections: BTreeMap<u64, ClientConnection>,
    leaders: BTreeMap<u32, u64>,
    guess: usize,
    map: Option<PartitionMap>,
}

/// How one attempt at a key's write ended.
enum Attempt {
    /// Acknowledged with this partition, generation and index.
    Acked(PartitionId, u64, u64),
    /// Refused with `PartitionMoved` (routed with this partition and generation).
    Moved(PartitionId, u64),
    /// Not written: try again (no map, no connection, not the leader, a full queue).
    Again,
    /// The outcome is not known: the key is given up.
    Unknown,
}

impl Writer {
    fn new(w: usize, clients: BTreeMap<u64, String>) -> Self {
        Self {
            w,
            clients,
            connections: BTreeMap::new(),
            leaders: BTreeMap::new(),
            guess: w,
            map: None,
        }
    }

    fn run(mut self, shared: &Shared) {
        let mut seq = 0u64;
        while !shared.stop.load(Ordering::Acquire) {
            seq += 1;
            // 64 prefixes per writer: keys spread over every range, and one prefix's keys
            // route together (the prefix before the last `/` decides).
            let key = format!("w{}-{}/{seq}", self.w, seq % 64);
            self.write_key(&key, shared);
        }
    }

    /// Writes `key` until an attempt is acknowledged or its outcome is unknown.
    fn write_key(&mut self, key: &str, shared: &Shared) {
        let payload = Bytes::from(key.to_owned());
        let mut refused = None;
        let deadline = Instant::now() + PATIENCE;
        loop {
            assert!(
                Instant::now() < deadline,
                "writer {}: {key} not written within {PATIENCE:?}",
                self.w
            );
            let acked = match self.attempt(key, &payload) {
                Attempt::Acked(partition, generation, index) => {
                    shared.acked.lock().expect("acked").push(Acked {
                        partition,
                        index,
                        payload,
                        at: Instant::now(),
                        generation,
                    });
                    shared.count.fetch_add(1, Ordering::Relaxed);
                    Some((partition, generation))
                }
                Attempt::Moved(partition, generation) => {
                    refused.get_or_insert((partition, generation));
                    continue;
                }
                Attempt::Again => {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
                Attempt::Unknown => None,
            };
            if let Some(refused) = refused {
                shared
                    .moved
                    .lock()
                    .expect("moved")
                    .push(Moved { refused, acked });
            }
            return;
        }
    }

    /// One fenced write of `key` to its partition's leader, routed with this writer's map.
    fn attempt(&mut self, key: &str, payload: &Bytes) -> Attempt {
        let Some(node) = self.some_node() else {
            return Attempt::Again;
        };
        if self.map.is_none() {
            self.map = self.connection(node).and_then(read_map);
        }
        let Some(map) = &self.map else {
            return Attempt::Again;
        };
        let partition = map.partition_for_key(key).expect("every hash is routed");
        let generation = map.get(partition).expect("routed").generation;
        let target = *self.leaders.entry(partition.get()).or_insert(node);
        let Some(connection) = self.connection(target) else {
            self.leaders.remove(&partition.get());
            return Attempt::Again;
        };
        let request = ClientRequest::FencedReplicate {
            partition,
            generation,
            log_type: "load".to_owned(),
            payload: payload.clone(),
        };
        match connection.call(&request) {
            Ok(ClientResponse::Replicated {
                status: Status::Success,
                index: Some(index),
                ..
            }) => Attempt::Acked(partition, generation, index),
            Ok(ClientResponse::Replicated {
                status: Status::PartitionMoved,
                ..
            }) => {
                // Route again with the map of the node that refused (it is at least as new
                // as the one that fenced the write); a map that did not change yet (a split
                // or merge between its phases) is read again after a pause.
                let newer = read_map(connection);
                if newer.as_ref().map(|m| m.version) == self.map.as_ref().map(|m| m.version) {
                    std::thread::sleep(Duration::from_millis(5));
                }
                self.map = newer;
                Attempt::Moved(partition, generation)
            }
            Ok(ClientResponse::Replicated {
                status: Status::NodeIsNotLeader,
                ..
            }) => {
                let leader = match connection.call(&ClientRequest::Status { partition }) {
                    Ok(ClientResponse::Status { state, .. }) => state.leader.map(NodeId::get),
                    _ => None,
                };
                match leader.filter(|l| self.clients.contains_key(l) && *l != target) {
                    Some(l) => {
                        self.leaders.insert(partition.get(), l);
                    }
                    None => {
                        self.leaders.remove(&partition.get());
                    }
                }
                Attempt::Again
            }
            Ok(ClientResponse::Unknown { .. }) => Attempt::Unknown,
            // Refused with nothing written (an election, a full queue).
            Ok(_) => Attempt::Again,
            Err(_) => {
                self.connections.remove(&target);
                self.leaders.remove(&partition.get());
                Attempt::Again
            }
        }
    }

    /// A node to ask for the map or to guess as a leader (round robin).
    fn some_node(&mut self) -> Option<u64> {
        self.guess += 1;
        self.clients
            .keys()
            .nth(self.guess % self.clients.len())
            .copied()
    }

    /// The connection to node `id` (connected on first use; `None` when it does not answer).
    fn connection(&mut self, id: u64) -> Option<&mut ClientConnection> {
        let address = self.clients.get(&id)?.clone();
        if let std::collections::btree_map::Entry::Vacant(vacant) = self.connections.entry(id) {
            let connection =
                ClientConnection::connect(&address, CLUSTER, Some(SECRET), Duration::from_secs(5))
                    .ok()?;
            vacant.insert(connection);
        }
        self.connections.get_mut(&id)
    }
}
