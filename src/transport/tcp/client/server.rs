//! The server's side of the client protocol: [`ClientListener`] takes connections,
//! [`reject_busy`](super::reject_busy) refuses those over the server's cap,
//! [`AcceptedClient`] runs the handshake and reads requests, [`write_response`] answers.
//! Threads, queues and what a request does are the server's own (the `kommander node`
//! binary's client port).

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;

use super::{ClientError, ClientRequest, ClientResponse, decode_request, encode_response};
use crate::transport::codec::{FrameError, FrameKind, UNSTAMPED, WireError, write_frame};
use crate::transport::tcp::handshake::{self, ConnectionRole, Hello, Identity, RejectCode};
use crate::transport::tcp::reader::{Deadlines, FrameReader};
use crate::transport::tcp::{TcpCluster, TcpConfig, wake_acceptor};

/// A request as [`AcceptedClient::next_request`] reads it: its id (answer with the same id)
/// and the request, or why its frame, intact, does not decode.
pub type ReceivedRequest = (u64, Result<ClientRequest, WireError>);

/// A listening socket for clients that another thread can stop while it waits.
#[derive(Debug)]
pub struct ClientListener {
    listener: TcpListener,
    local_addr: SocketAddr,
    stopped: AtomicBool,
}

impl ClientListener {
    /// Binds `address` (`host:port`; port 0 picks a free port).
    ///
    /// # Errors
    ///
    /// The socket error.
    pub fn bind(address: &str) -> std::io::Result<Self> {
        let listener = TcpListener::bind(address)?;
        let local_addr = listener.local_addr()?;
        Ok(Self {
            listener,
            local_addr,
            stopped: AtomicBool::new(false),
        })
    }

    /// The address it listens on (the real port when bound to port 0).
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Waits for the next connection; `None` once [`ClientListener::stop`] was called. Hand
    /// the connection to [`AcceptedClient::accept`] on a thread of its own: the handshake waits
    /// for the client.
    ///
    /// # Errors
    ///
    /// `Some(Err(_))` when an accept failed (out of descriptors, a connection reset before
    /// accept); later calls may succeed.
    pub fn accept(&self) -> Option<std::io::Result<TcpStream>> {
        let accepted = self.listener.accept().map(|(stream, _)| stream);
        (!self.stopped.load(Ordering::Acquire)).then_some(accepted)
    }

    /// Makes a waiting [`ClientListener::accept`], and every later one, return `None`.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        wake_acceptor(self.local_addr);
    }
}

/// One client connection whose handshake succeeded: the server reads its requests here and
/// writes the answers, in request order, with [`write_response`] on a clone of the socket
/// ([`AcceptedClient::try_clone_stream`]).
#[derive(Debug)]
pub struct AcceptedClient {
    stream: TcpStream,
    reader: FrameReader,
    deadlines: Deadlines,
}

impl AcceptedClient {
    /// Runs the acceptor's side of the handshake on `stream`: the client must present
    /// `cluster`'s name and prove `config.auth_secret` (when set); a node connecting here is
    /// refused with a reason. Limits and deadlines are `config`'s: the handshake must finish
    /// within `handshake_timeout_ms`, a request frame within `frame_read_timeout_ms` of its
    /// first byte, some request must arrive every `idle_timeout_ms`, requests are at most
    /// `frame_bytes_max` bytes, and a write that makes no progress for `write_timeout_ms`
    /// fails.
    ///
    /// # Errors
    ///
    /// [`ClientError::Handshake`] (a `Reject` with the reason was sent when this side
    /// refused), [`ClientError::Frame`] for a socket error: close the connection.
    pub fn accept(
        mut stream: TcpStream,
        config: &TcpConfig,
        cluster: &TcpCluster,
    ) -> Result<Self, ClientError> {
        let frame_read_timeout = Duration::from_millis(config.frame_read_timeout_ms);
        let handshake_timeout = Duration::from_millis(config.handshake_timeout_ms);
        // The socket read timeout: how often a blocked read checks its deadlines and `stop`.
        let poll_interval =
            (frame_read_timeout / 4).clamp(Duration::from_millis(5), Duration::from_millis(100));
        stream
            .set_nodelay(true)
            .and_then(|()| stream.set_read_timeout(Some(poll_interval)))
            .and_then(|()| stream.set_write_timeout(Some(handshake_timeout)))
            .map_err(FrameError::Io)?;
        let mut reader = FrameReader::new(config.frame_bytes_max, config.read_chunk_bytes);
        let identity = Identity {
            cluster: cluster.cluster_name.clone(),
            node: cluster.node_id,
            incarnation: 0,
            secret: config
                .auth_secret
                .as_ref()
                .map(|s| Bytes::copy_from_slice(s.as_bytes())),
            // The client port does not advertise itself to clients.
            client_endpoint: None,
        };
        let admit = |hello: &Hello| {
            if hello.role == ConnectionRole::Client {
                Ok(())
            } else {
                Err((
                    RejectCode::Role,
                    "this is the client port; nodes connect to the peer port".to_owned(),
                ))
            }
        };
        let handshake_deadlines = Deadlines {
            frame_timeout: handshake_timeout,
            idle_timeout: handshake_timeout,
        };
        handshake::accept(
            &mut stream,
            &mut reader,
            &identity,
            UNSTAMPED,
            &admit,
            handshake_deadlines,
        )?;
        stream
            .set_write_timeout(Some(Duration::from_millis(config.write_timeout_ms)))
            .map_err(FrameError::Io)?;
        Ok(Self {
            stream,
            reader,
            deadlines: Deadlines {
                frame_timeout: frame_read_timeout,
                idle_timeout: Duration::from_millis(config.idle_timeout_ms),
            },
        })
    }

    /// Another handle to the connection's socket: write the answers with it (from another
    /// thread), or shut the connection down.
    ///
    /// # Errors
    ///
    /// The socket error.
    pub fn try_clone_stream(&self) -> std::io::Result<TcpStream> {
        self.stream.try_clone()
    }

    /// Waits for the next request: `Ok(None)` when the client closed the connection between
    /// requests or `stop()` returned `true` (checked a few times per
    /// `frame_read_timeout_ms`). A request frame that arrived intact but does not decode
    /// gives its id (0 when too short to have one) and the decoding error: answer it with
    /// [`ClientResponse::Failed`] and read on.
    ///
    /// # Errors
    ///
    /// [`ClientError::Frame`] (a deadline, a bad frame, a broken connection) and
    /// [`ClientError::BadRequest`] for a frame of another kind: close the connection.
    pub fn next_request(
        &mut self,
        stop: &dyn Fn() -> bool,
    ) -> Result<Option<ReceivedRequest>, ClientError> {
        let frame = match self
            .reader
            .read_frame(&mut self.stream, self.deadlines, stop)
        {
            Ok(frame) => frame,
            Err(FrameError::Shutdown | FrameError::Closed { mid_frame: false }) => return Ok(None),
            Err(error) => return Err(error.into()),
        };
        if frame.kind != FrameKind::ClientRequest {
            return Err(ClientError::BadRequest(frame.kind));
        }
        Ok(Some(match decode_request(&frame.body) {
            Ok((id, request)) => (id, Ok(request)),
            Err(error) => {
                let id = frame
                    .body
                    .first_chunk::<8>()
                    .map_or(0, |b| u64::from_le_bytes(*b));
                (id, Err(error))
            }
        }))
    }
}

/// Writes the answer to request `id` as one `ClientResponse` frame (buffer `out` to batch
/// several).
///
/// # Errors
///
/// The socket's error (a write timeout included): close the connection.
pub fn write_response(
    out: &mut impl Write,
    id: u64,
    response: &ClientResponse,
) -> std::io::Result<()> {
    write_frame(
        out,
        FrameKind::ClientResponse,
        UNSTAMPED,
        &[encode_response(id, response)],
    )
}
