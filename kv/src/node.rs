//! One store node: the Raft node on TCP, the state machine, the HTTP API and the
//! checkpoints, started and stopped in order.
//!
//! ```text
//! read the snapshot files ─► persister thread ─► bind the peer port and the HTTP port
//!   ─► advertise the HTTP address to peers (their redirects point at it)
//!   ─► Raft::builder…start (restore: snapshot files + the log above them)
//!   ─► serve peers ─► join the cluster ─► serve HTTP, checkpoint
//! stop: HTTP (requests in flight answered) ─► checkpoints ─► the node (appended entries
//!   durable) ─► the transport ─► the persister (queued snapshots written)
//! ```

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use kommander_raft::transport::tcp::{TcpTransport, TransportError};
use kommander_raft::{HostStartError, JoinError, Raft};
use tokio::sync::{Semaphore, oneshot};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::checkpoint::{self, CheckpointPolicy};
use crate::config::{Config, ConfigError};
use crate::http::{self, Api};
use crate::persist::{PersistError, Persister, SnapshotFiles};
use crate::store::Store;
use crate::transfer::Transfer;

/// Why a node did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The snapshot directory cannot be used.
    #[error(transparent)]
    Snapshots(#[from] PersistError),
    /// The HTTP address cannot be bound.
    #[error("cannot listen for HTTP on {address}: {error}")]
    Http {
        /// `kv.http_listen`.
        address: String,
        /// The error.
        error: io::Error,
    },
    /// The peer transport cannot start, or refused the advertised HTTP address.
    #[error("transport: {0}")]
    Transport(#[from] TransportError),
    /// The Raft node did not start.
    #[error("starting the node: {0}")]
    Node(#[from] kommander_raft::StartError),
    /// The node did not join its cluster within `join_timeout_ms`.
    #[error("joining the cluster: {0}")]
    Join(#[from] JoinError),
    /// A thread or a random number could not be had.
    #[error("{0}")]
    Io(#[from] io::Error),
}

impl StartError {
    /// Whether the configuration is what is wrong (the binary exits 2, else 1).
    #[must_use]
    pub fn is_configuration(&self) -> bool {
        match self {
            Self::Config(_) => true,
            Self::Transport(error) => {
                matches!(
                    error,
                    TransportError::Config(_)
                        | TransportError::Unauthenticated(_)
                        | TransportError::ClientEndpoint { .. }
                )
            }
            Self::Node(kommander_raft::StartError::Config(_))
            | Self::Node(kommander_raft::StartError::Shards(HostStartError::ShardCountChanged {
                ..
            })) => true,
            Self::Join(JoinError::Invalid { .. }) => true,
            _ => false,
        }
    }
}

/// A running store node.
pub struct KvNode {
    raft: Raft,
    transport: Arc<TcpTransport>,
    store: Arc<Store>,
    http_addr: SocketAddr,
    stop_http: oneshot::Sender<()>,
    http: JoinHandle<()>,
    checkpoints: JoinHandle<()>,
}

impl KvNode {
    /// Starts a node: restores its state, joins its cluster (its `peers`), then serves HTTP.
    /// Must be called within a multi-threaded tokio runtime (the API and the checkpoints run
    /// on it).
    ///
    /// # Errors
    ///
    /// [`StartError`]: [`StartError::is_configuration`] tells a configuration to fix from a
    /// failure to retry.
    pub async fn start(config: Config) -> Result<Self, StartError> {
        config.validate()?;
        let config = Arc::new(config);
        let kv = &config.kv;
        let (files, loaded) = SnapshotFiles::open(&config.snapshot_dir(), kv.snapshot_bytes_max)?;
        for partition in &loaded {
            info!(
                partition = partition.partition.get(),
                index = partition.index,
                keys = partition.values.len(),
                "snapshot file read"
            );
        }
        let files = Arc::new(files);
        let persister = Persister::start(Arc::clone(&files), kv.snapshot_queue_max)?;
        let incarnation = getrandom::u64().map_err(|e| io::Error::other(e.to_string()))?;
        let store = Arc::new(Store::new(
            files,
            loaded,
            persister,
            incarnation,
            kv.body_bytes_max,
        ));
        let node = &config.node;
        let transport = TcpTransport::bind(&node.tcp_config(), &node.tcp_cluster())?;
        let started = Self::start_on(&config, &store, &transport).await;
        if started.is_err() {
            transport.shutdown();
            store.stop();
        }
        started
    }

    /// The steps after the transport is bound (undone by the caller when one fails).
    async fn start_on(
        config: &Arc<Config>,
        store: &Arc<Store>,
        transport: &Arc<TcpTransport>,
    ) -> Result<Self, StartError> {
        let kv = &config.kv;
        let listener = tokio::net::TcpListener::bind(&kv.http_listen)
            .await
            .map_err(|error| StartError::Http {
                address: kv.http_listen.clone(),
                error,
            })?;
        let http_addr = listener.local_addr()?;
        let advertised = kv
            .http_advertise
            .clone()
            .unwrap_or_else(|| http_addr.to_string());
        // Before the transport serves: every peer's handshake carries it.
        transport.advertise_client_endpoint(&advertised)?;
        let raft = Raft::builder(config.node.clone())
            .state_machine(store.clone())
            .state_transfer(Arc::new(Transfer::new(Arc::clone(store))))
            .transport(transport.clone())
            .start()
            .await?;
        let joined = match transport.serve(raft.inbound()) {
            Ok(()) => raft.join_cluster(None).await.map_err(StartError::from),
            Err(error) => Err(error.into()),
        };
        if let Err(error) = joined {
            raft.shutdown().await;
            return Err(error);
        }
        let api = Arc::new(Api {
            raft: raft.clone(),
            store: Arc::clone(store),
            transport: Arc::clone(transport),
            config: Arc::clone(config),
            permits: Arc::new(Semaphore::new(kv.requests_in_flight_max)),
        });
        let (stop_http, stopped) = oneshot::channel();
        let router = http::router(api);
        let http = tokio::spawn(async move {
            let serving = axum::serve(listener, router).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(error) = serving.await {
                warn!(%error, "the HTTP server stopped");
            }
        });
        let policy = CheckpointPolicy {
            entries: kv.checkpoint_interval_entries,
            bytes: kv.checkpoint_interval_bytes,
            check_interval: std::time::Duration::from_millis(kv.checkpoint_check_interval_ms),
        };
        let checkpoints = tokio::spawn(checkpoint::run(raft.clone(), Arc::clone(store), policy));
        info!(
            node = raft.local_node_id().get(),
            http = %http_addr,
            advertised = %advertised,
            "serving"
        );
        Ok(Self {
            raft,
            transport: Arc::clone(transport),
            store: Arc::clone(store),
            http_addr,
            stop_http,
            http,
            checkpoints,
        })
    }

    /// The address the HTTP API is bound to.
    #[must_use]
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The Raft node (its status, leadership, partitions).
    #[must_use]
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// Stops cleanly: requests in flight are answered, entries appended so far are durable,
    /// queued snapshot files are written.
    pub async fn shutdown(self) {
        let _ = self.stop_http.send(());
        if let Err(error) = self.http.await {
            warn!(%error, "the HTTP server task failed");
        }
        self.checkpoints.abort();
        let _ = self.checkpoints.await;
        self.raft.shutdown().await;
        self.transport.shutdown();
        let store = self.store;
        if let Err(error) = tokio::task::spawn_blocking(move || store.stop()).await {
            warn!(%error, "stopping the snapshot persister failed");
        }
    }
}
