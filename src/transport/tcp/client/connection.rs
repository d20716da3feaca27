//! [`ClientConnection`]: the client's side of the client protocol (blocking, pipelined).

use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use bytes::Bytes;

use super::{ClientError, ClientRequest, ClientResponse, decode_response, encode_request};
use crate::core::NodeId;
use crate::transport::codec::{FrameError, FrameKind, UNSTAMPED, write_frame};
use crate::transport::tcp::handshake::{self, ConnectionRole, Identity};
use crate::transport::tcp::reader::{Deadlines, FrameReader};

/// A blocking client connection to a node's client port. Requests may be pipelined
/// ([`ClientConnection::send`] several, then [`ClientConnection::receive`] their answers in order).
#[derive(Debug)]
pub struct ClientConnection {
    stream: TcpStream,
    reader: FrameReader,
    next_id: u64,
    deadlines: Deadlines,
}

/// Largest response frame a client accepts.
const RESPONSE_BYTES_MAX: usize = 64 << 10;

impl ClientConnection {
    /// Connects to `address`, runs the handshake for `cluster` (with `secret` when the
    /// cluster has one), and waits at most `timeout` for each answer afterwards.
    ///
    /// # Errors
    ///
    /// [`ClientError::Connect`], [`ClientError::Handshake`].
    pub fn connect(
        address: &str,
        cluster: &str,
        secret: Option<&str>,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        let connect_error = |source| ClientError::Connect {
            address: address.to_owned(),
            source,
        };
        let addr = address
            .to_socket_addrs()
            .map_err(connect_error)?
            .next()
            .ok_or_else(|| connect_error(std::io::Error::other("resolves to nothing")))?;
        let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(connect_error)?;
        stream
            .set_nodelay(true)
            .and_then(|()| stream.set_read_timeout(Some(Duration::from_millis(50))))
            .and_then(|()| stream.set_write_timeout(Some(timeout)))
            .map_err(connect_error)?;
        let deadlines = Deadlines {
            frame_timeout: timeout,
            idle_timeout: timeout,
        };
        let mut reader = FrameReader::new(RESPONSE_BYTES_MAX, 64 << 10);
        let me = Identity {
            cluster: cluster.to_owned(),
            node: NodeId(0),
            incarnation: 0,
            secret: secret.map(|s| Bytes::copy_from_slice(s.as_bytes())),
            client_endpoint: None,
        };
        handshake::connect(
            &mut stream,
            &mut reader,
            &me,
            UNSTAMPED,
            ConnectionRole::Client,
            None,
            deadlines,
        )?;
        Ok(Self {
            stream,
            reader,
            next_id: 1,
            deadlines,
        })
    }

    /// Sends a request without waiting; returns its id.
    ///
    /// # Errors
    ///
    /// [`ClientError::Frame`] when the write fails.
    pub fn send(&mut self, request: &ClientRequest) -> Result<u64, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        write_frame(
            &mut self.stream,
            FrameKind::ClientRequest,
            UNSTAMPED,
            &encode_request(id, request),
        )
        .map_err(FrameError::Io)?;
        Ok(id)
    }

    /// Waits for the next answer.
    ///
    /// # Errors
    ///
    /// [`ClientError::Frame`] on a timeout or a closed connection;
    /// [`ClientError::BadResponse`].
    pub fn receive(&mut self) -> Result<(u64, ClientResponse), ClientError> {
        let frame = self
            .reader
            .read_frame(&mut self.stream, self.deadlines, &|| false)?;
        if frame.kind != FrameKind::ClientResponse {
            return Err(ClientError::BadResponse(format!(
                "unexpected {:?} frame",
                frame.kind
            )));
        }
        decode_response(&frame.body).map_err(|e| ClientError::BadResponse(e.to_string()))
    }

    /// Sends `request` and waits for its answer (no other request may be in flight).
    ///
    /// # Errors
    ///
    /// As [`ClientConnection::send`] and [`ClientConnection::receive`]; [`ClientError::BadResponse`] when the
    /// answer is for another request.
    pub fn call(&mut self, request: &ClientRequest) -> Result<ClientResponse, ClientError> {
        let id = self.send(request)?;
        let (answered, response) = self.receive()?;
        if answered != id {
            return Err(ClientError::BadResponse(format!(
                "answer for request {answered}, expected {id}"
            )));
        }
        Ok(response)
    }
}
