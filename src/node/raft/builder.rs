//! Starting a node: [`RaftBuilder`] (`Raft::builder(config).state_machine(app)
//! .transport(transport).start().await`).
//!
//! Starting validates the configuration, opens and recovers one WAL per shard and spawns the
//! node's threads (shards, system coordinator, timer, stop thread). All of it runs on a
//! short-lived start thread, never on the caller's: `start` awaits the outcome on a channel,
//! so recovering a large WAL does not block an executor thread.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak, mpsc};

use tokio::sync::{oneshot, watch};

use crate::clock::{HybridLogicalClock, PhysicalClock, SystemClock};
use crate::core::NodeId;
use crate::node::config::{ConfigError, NodeConfig};
use crate::node::discovery::{RosterEndpoints, StaticDiscovery};
use crate::node::error::{Fatal, StartError};
use crate::node::events::EventHub;
use crate::node::identity::Identity;
use crate::node::system::{Coordinator, SystemApp, SystemState};
use crate::shard::membership::{CallWait, MembershipCall, Roster};
use crate::shard::partitions::{MapTable, MapTransfer};
use crate::shard::{Application, LeaderTable, ShardConfig, ShardHost, StateMachine, StateTransfer};
use crate::shard::{Inbound, RaftEvent, Transport};

use super::timer::Timer;
use super::{Inner, Raft};

/// Builds and starts a node ([`Raft::builder`]). The state machine and the transport are
/// required.
#[must_use = "a builder does nothing until `start` is awaited"]
pub struct RaftBuilder {
    config: NodeConfig,
    state_machine: Option<Arc<dyn StateMachine>>,
    state_transfer: Option<Arc<dyn StateTransfer>>,
    transport: Option<Arc<dyn Transport>>,
    physical_clock: Option<Arc<dyn PhysicalClock>>,
}

impl std::fmt::Debug for RaftBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftBuilder")
            .field("node", &self.config.node_id)
            .field("state_machine", &self.state_machine.is_some())
            .field("state_transfer", &self.state_transfer.is_some())
            .field("transport", &self.transport.is_some())
            .field("physical_clock", &self.physical_clock.is_some())
            .finish()
    }
}

impl RaftBuilder {
    pub(super) fn new(config: NodeConfig) -> Self {
        Self {
            config,
            state_machine: None,
            state_transfer: None,
            transport: None,
            physical_clock: None,
        }
    }

    /// The application: it receives committed entries (replication received, log restored)
    /// on the shard threads, in log order per partition.
    pub fn state_machine(mut self, app: Arc<dyn StateMachine>) -> Self {
        self.state_machine = Some(app);
        self
    }

    /// The application's snapshots (Kommander's `RegisterStateMachineTransfer`): a leader
    /// streams them to followers below its compaction floor, which install them. Without one,
    /// such a follower stays behind (reported as `ReplicationError(SnapshotUnsupported)`).
    pub fn state_transfer(mut self, transfer: Arc<dyn StateTransfer>) -> Self {
        self.state_transfer = Some(transfer);
        self
    }

    /// What carries this node's outgoing messages. Register [`Raft::inbound`] with the same
    /// network so that peers' messages reach the node.
    pub fn transport(mut self, transport: Arc<dyn Transport>) -> Self {
        self.transport = Some(transport);
        self
    }

    /// The wall clock the node's hybrid logical clock ([`Raft::hlc`]) follows, in place of the
    /// system clock ([`SystemClock`]): a test's manual clock, to put nodes at chosen
    /// (physical) times. Tickets and the stamps on frames come from it; election and heartbeat
    /// timing never does.
    pub fn physical_clock(mut self, physical: impl PhysicalClock + 'static) -> Self {
        self.physical_clock = Some(Arc::new(physical));
        self
    }

    /// Validates the configuration, opens (recovering) one WAL per shard and starts the
    /// node's threads, off the caller's thread. No partition is open yet: subscribe to events
    /// ([`Raft::subscribe`]), register [`Raft::inbound`] with the network, then call
    /// [`Raft::join_cluster`].
    ///
    /// # Errors
    ///
    /// [`StartError::Missing`] without a state machine or a transport;
    /// [`StartError::Config`] naming the invalid field; [`StartError::Shards`] when the data
    /// directory was written with another shard count or a WAL cannot be opened or
    /// recovered; [`StartError::Io`] when a thread cannot be spawned, or the data directory's
    /// `partition-map` or `identity` file cannot be read, written or trusted (the error names
    /// the file).
    ///
    /// # Durability
    ///
    /// Everything the WALs recovered is durable when the future completes.
    pub fn start(self) -> impl Future<Output = Result<Raft, StartError>> + Send + 'static + use<> {
        let (done, started) = oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name("kommander-start".to_owned())
            .spawn(move || {
                let _ = done.send(self.start_here());
            });
        async move {
            spawned?;
            started.await.unwrap_or_else(|_| {
                Err(StartError::Io(std::io::Error::other(
                    "the start thread ended without an answer",
                )))
            })
        }
    }

    /// Starts the node on this thread (it blocks while the WALs recover).
    fn start_here(self) -> Result<Raft, StartError> {
        let app = self
            .state_machine
            .ok_or(StartError::Missing("state machine"))?;
        let transport = self.transport.ok_or(StartError::Missing("transport"))?;
        let config = self.config;
        config.validate()?;
        let config = Arc::new(config);
        let node = u32::try_from(config.node_id).map_err(|_| ConfigError::InvalidField {
            field: "node_id",
            reason: "must fit in 32 bits (it stamps HLC timestamps)".to_owned(),
        })?;
        let physical = self.physical_clock.unwrap_or_else(|| Arc::new(SystemClock));
        let hlc = Arc::new(HybridLogicalClock::with_clock(
            node,
            config.hlc_drift_ms_max,
            physical,
        ));
        let discovery = StaticDiscovery::from_config(&config);
        let endpoints = Arc::new(RosterEndpoints::new(discovery.clone()));
        let leaders = Arc::new(LeaderTable::new(Arc::clone(&endpoints) as _));
        let maps = Arc::new(MapTable::default());
        let system = SystemState::open(&config.data_dir, Arc::clone(&maps))?;
        let identity = Arc::new(Identity::open(&config.data_dir)?);
        let wake = Arc::clone(&system);
        let hub = Arc::new(EventHub::new(
            config.events_buffered_max,
            Box::new(move || wake.wake()),
        ));
        let app = Arc::new(SystemApp {
            app,
            slow_callback: std::time::Duration::from_millis(config.slow_state_machine_ms),
        });
        let application = Application::new(app)
            .with_transfer(Arc::new(MapTransfer::new(
                Arc::clone(&maps),
                self.state_transfer,
            )))
            .with_maps(maps);
        let shards = ShardHost::start(
            ShardConfig::from(&*config),
            Arc::clone(&transport),
            application,
            Arc::clone(&hub) as _,
            Arc::clone(&leaders),
        )?;
        endpoints.attach(Arc::clone(shards.membership()));
        let timer = Arc::new(Timer::start(config.timers_max)?);
        let coordinator = Coordinator::start(
            Arc::clone(&config),
            Arc::clone(&identity),
            shards.clone(),
            Arc::clone(&system),
            Arc::clone(&hub),
            Arc::clone(&leaders),
            Arc::clone(&hlc),
        )?;
        let (stop_signal, stop_requested) = mpsc::channel();
        let (stopped_tx, stopped) = watch::channel(false);
        let stopping_shards = shards.clone();
        let stopping_timer = Arc::clone(&timer);
        std::thread::Builder::new()
            .name("kommander-stop".to_owned())
            .spawn(move || {
                // A stop request, or every handle gone (the sender dropped).
                let _ = stop_requested.recv();
                coordinator.stop();
                stopping_shards.shutdown();
                stopping_timer.stop();
                stopped_tx.send_replace(true);
            })?;
        let nodes = RwLock::new(discovery.peers().to_vec());
        let shards_inbound = shards.inbound();
        let inner = Arc::new_cyclic(|node| Inner {
            inbound: Arc::new(NodeInbound {
                shards: shards_inbound,
                clock: Arc::clone(&hlc),
                incarnation: identity.incarnation(),
                node: node.clone(),
            }),
            config,
            identity,
            shards,
            leaders,
            transport,
            hlc,
            discovery,
            nodes,
            hub,
            system,
            timer,
            joined: AtomicBool::new(false),
            stop_signal: Mutex::new(Some(stop_signal)),
            stopped,
            stop_cause: OnceLock::new(),
            handshakes: Mutex::new(HashMap::new()),
        });
        Ok(Raft { inner })
    }
}

/// The node's inbound side ([`Raft::inbound`]): the shards' router, and the node's clock for
/// the transport to stamp frames with and merge the stamps it receives into, its incarnation
/// to present in handshakes, and the node itself (not kept alive by the transport) to stop
/// when the transport finds that another live process holds its id.
struct NodeInbound {
    shards: Arc<dyn Inbound>,
    clock: Arc<HybridLogicalClock>,
    incarnation: u64,
    node: Weak<Inner>,
}

impl Inbound for NodeInbound {
    fn deliver(&self, messages: Vec<crate::core::Message>) {
        self.shards.deliver(messages);
    }

    fn call(&self, call: MembershipCall) -> CallWait {
        self.shards.call(call)
    }

    fn incarnation(&self) -> u64 {
        self.incarnation
    }

    fn roster(&self) -> Option<Arc<Roster>> {
        self.shards.roster()
    }

    fn duplicate_node(&self, reason: String) {
        if let Some(inner) = self.node.upgrade() {
            let node = NodeId(inner.config.node_id);
            let reason: Arc<str> = reason.into();
            inner.fail(
                Fatal::DuplicateNode {
                    node,
                    reason: Arc::clone(&reason),
                },
                RaftEvent::DuplicateNode { node, reason },
            );
        }
    }

    fn clock(&self) -> Option<&HybridLogicalClock> {
        Some(&self.clock)
    }
}
