//! The connection handshake. Every connection starts with it; nothing else is read before
//! it succeeds.
//!
//! ```text
//! connector                                   acceptor
//!   Hello {role, auth, node, incarnation,
//!          nonce_c, cluster}                  →   checks version, cluster, node, auth policy
//!                                             ←   Challenge {node, incarnation,
//!                                                             nonce_s, proof_a}
//!   checks the acceptor's id and proof_a
//!   Auth {proof_c}                            →   checks proof_c, then the duplicate-node rule
//!                                             ←   Welcome {client_endpoint}
//!                                                              (or Reject {code, reason})
//! ```
//!
//! Each side's `incarnation` is its data directory's (0 for a client, or a transport not
//! serving a node): with it a connector that reached its own node id tells itself (refused
//! at once) from another process (left to the acceptor's judgement), and an acceptor tells a node that reconnects (the same incarnation)
//! from another live process claiming the same node id ([`RejectCode::DuplicateNode`]). That
//! refusal is only ever sent after both sides authenticated, in place of the `Welcome`, and a
//! connector only believes it there: a party without the secret cannot make a node believe it
//! holds a duplicate id (see [`Admission`]).
//!
//! With a shared secret, `proof_a` and `proof_c` are HMAC-SHA256 over a side label, the
//! cluster name, both node ids, the role and BOTH nonces. Each side's nonce is fresh, so a
//! recorded handshake replayed on a new connection fails against the new nonce, and each side
//! proves the secret to the other. Without a secret (loopback or explicitly allowed) the
//! proofs are empty; a mismatch of auth policy between two nodes is refused with a reason.
//!
//! The `Welcome` tells the connector where clients reach the acceptor (its client port's
//! advertised endpoint, [`Identity::client_endpoint`]), so that every node can name the client
//! endpoint of a leader it is connected to ([`Welcomed::client_endpoint`]):
//!
//! ```text
//! welcome := (empty)                                   nothing advertised
//!          | format:u8 (1) length:u8 client_endpoint   UTF-8, 1 to ENDPOINT_BYTES_MAX bytes
//! ```
//!
//! The empty body is what nodes sent before the field existed (a connector of that version
//! reads no body), and a connector reads it as "nothing advertised", so nodes of both versions
//! still connect to each other. A body of another format byte is a later layout: read as
//! nothing advertised. A format-1 body that does not decode fails the handshake (`Malformed`).

use std::io::Write;
use std::net::{Shutdown, TcpStream};

use bytes::{BufMut, Bytes, BytesMut};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::duplicate;
use super::reader::{Deadlines, FrameReader};
use crate::core::NodeId;
use crate::shard::membership::ENDPOINT_BYTES_MAX;
use crate::shard::membership::roster::check_endpoint;
use crate::transport::codec::{FrameError, FrameKind, PROTOCOL_VERSION, UNSTAMPED, write_frame};

type HmacSha256 = Hmac<Sha256>;

const NONCE_BYTES: usize = 32;
const PROOF_BYTES: usize = 32;
/// Longest cluster name the handshake carries.
pub const CLUSTER_NAME_BYTES_MAX: usize = 255;
/// Largest handshake frame: what an unauthenticated connection may make this side allocate.
/// Create the [`FrameReader`] of a handshake with it.
pub const HANDSHAKE_FRAME_BYTES_MAX: usize = 4096;
/// Longest reason text a `Reject` frame carries.
const REASON_BYTES_MAX: usize = 1024;
/// The format byte of a `Welcome` body that carries the acceptor's client endpoint.
const WELCOME_FORMAT: u8 = 1;

/// What the connecting side of a connection is (not to be confused with a replica's Raft
/// role).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectionRole {
    /// Another node of the cluster (Raft messages).
    Peer,
    /// A client of the `kommander` binary's client port.
    Client,
    /// A node (a member, or one that is not: a joiner) asking for a membership call on the
    /// peer port: one `CallRequest`, one `CallAnswer`, then the connection closes.
    Call,
}

impl ConnectionRole {
    const fn code(self) -> u8 {
        match self {
            Self::Peer => 1,
            Self::Client => 2,
            Self::Call => 3,
        }
    }

    const fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Self::Peer),
            2 => Some(Self::Client),
            3 => Some(Self::Call),
            _ => None,
        }
    }
}

/// Why a side refuses a handshake (sent in a `Reject` frame).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RejectCode {
    /// Another protocol version.
    Version,
    /// Another cluster name.
    Cluster,
    /// A node id that is not a configured peer, a side's own id (a node reached itself), or
    /// the reserved id 0 where a node is expected.
    UnknownNode,
    /// Authentication failed or the auth policies differ.
    Auth,
    /// Too many connections (or membership calls) at once.
    Busy,
    /// The role is not served on this listener.
    Role,
    /// A malformed handshake frame.
    Malformed,
    /// Another live process holds the connector's node id (decision 0005, "Duplicate node
    /// ids"): the connector must stop. Sent only after both sides authenticated.
    DuplicateNode,
}

impl RejectCode {
    const fn code(self) -> u8 {
        match self {
            Self::Version => 1,
            Self::Cluster => 2,
            Self::UnknownNode => 3,
            Self::Auth => 4,
            Self::Busy => 5,
            Self::Role => 6,
            Self::Malformed => 7,
            Self::DuplicateNode => 8,
        }
    }

    const fn from_code(code: u8) -> Self {
        match code {
            1 => Self::Version,
            2 => Self::Cluster,
            3 => Self::UnknownNode,
            4 => Self::Auth,
            5 => Self::Busy,
            6 => Self::Role,
            8 => Self::DuplicateNode,
            _ => Self::Malformed,
        }
    }
}

/// A failed handshake.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ConnectionHandshakeError {
    /// This side refused the other (a `Reject` was sent to it).
    #[error("refused ({code:?}): {reason}")]
    Refused {
        /// Why.
        code: RejectCode,
        /// In words.
        reason: String,
    },
    /// The other side refused this one.
    #[error("rejected by the other side ({code:?}): {reason}")]
    Rejected {
        /// Why.
        code: RejectCode,
        /// Its words.
        reason: String,
    },
    /// The frames themselves failed (timeout, closed, bad header).
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The system's random source failed.
    #[error("no randomness for the nonce: {0}")]
    Random(String),
}

/// Who this side is.
#[derive(Clone)]
pub struct Identity {
    /// The cluster name.
    pub cluster: String,
    /// This node's id (0 for a client).
    pub node: NodeId,
    /// This node's incarnation (its data directory's; 0 for a client or a transport that
    /// serves no node: such a side is never judged a duplicate).
    pub incarnation: u64,
    /// The shared secret, if any.
    pub secret: Option<Bytes>,
    /// Where clients reach this node (its client port's advertised endpoint, `host:port`), told
    /// to every connector in this side's `Welcome` when it accepts; `None`: no client port.
    /// Never sent by a connector. One that is empty or longer than [`ENDPOINT_BYTES_MAX`]
    /// bytes is not sent (nothing is advertised).
    pub client_endpoint: Option<String>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("cluster", &self.cluster)
            .field("node", &self.node)
            .field("incarnation", &self.incarnation)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("client_endpoint", &self.client_endpoint)
            .finish()
    }
}

/// Who a connector says it is, from its `Hello`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hello {
    /// What it connects as.
    pub role: ConnectionRole,
    /// Its node id (0 for a client).
    pub node: NodeId,
    /// Its incarnation (0: none presented).
    pub incarnation: u64,
}

/// What a connector learned from a successful handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Welcomed {
    /// The acceptor's node id.
    pub acceptor: NodeId,
    /// The acceptor's advertised client endpoint, from its `Welcome` (`None`: it advertised
    /// none, or it is of a version that does not).
    pub client_endpoint: Option<String>,
}

/// The `Welcome` body advertising `client_endpoint` (empty when there is none to advertise:
/// `None`, empty, or longer than [`ENDPOINT_BYTES_MAX`] bytes).
fn encode_welcome(client_endpoint: Option<&str>) -> BytesMut {
    let mut body = BytesMut::new();
    if let Some(endpoint) = client_endpoint
        && let Ok(length) = u8::try_from(endpoint.len())
        && (1..=ENDPOINT_BYTES_MAX).contains(&endpoint.len())
    {
        body.put_u8(WELCOME_FORMAT);
        body.put_u8(length);
        body.put_slice(endpoint.as_bytes());
    }
    body
}

/// The client endpoint a `Welcome` body advertises (see the module's documentation).
///
/// # Errors
///
/// The reason, for a format-1 body that does not decode: a length that is 0, over
/// [`ENDPOINT_BYTES_MAX`] or not the rest of the body, or an endpoint that is not UTF-8 or
/// holds a control character.
fn decode_welcome(body: &[u8]) -> Result<Option<String>, String> {
    let mut fields = Fields(body);
    match fields.take::<1>() {
        None => return Ok(None),
        Some([WELCOME_FORMAT]) => {}
        Some(_) => return Ok(None),
    }
    let [length] = fields
        .take::<1>()
        .ok_or("a Welcome without its endpoint length")?;
    let endpoint = fields.rest();
    let length = usize::from(length);
    if length == 0 || length > ENDPOINT_BYTES_MAX || endpoint.len() != length {
        return Err(format!(
            "a Welcome endpoint of {} bytes, announced {length} (1 to {ENDPOINT_BYTES_MAX})",
            endpoint.len()
        ));
    }
    let endpoint = std::str::from_utf8(endpoint)
        .map_err(|_| "a Welcome endpoint that is not UTF-8".to_owned())?;
    check_endpoint(endpoint).map_err(|e| format!("a Welcome with {e}"))?;
    Ok(Some(endpoint.to_owned()))
}

/// How an acceptor decides whether a connector may stay: [`accept`] asks it twice.
///
/// A closure `Fn(&Hello) -> Result<(), (RejectCode, String)>` is an admission that decides
/// everything from the `Hello` ([`Admission::admit`]) and confirms every authenticated
/// connector.
pub trait Admission {
    /// Right after the `Hello`, before authentication: whether the connector may try (its
    /// role, its node id). Must have no effect beyond the answer: the connector is not
    /// authenticated yet.
    ///
    /// # Errors
    ///
    /// The refusal (code and words) sent to the connector.
    fn admit(&self, hello: &Hello) -> Result<(), (RejectCode, String)>;

    /// Once the connector proved the secret, in place of the `Welcome`: the last word, the
    /// only one that may act on what the connector claims (a duplicate node id). The default
    /// confirms.
    ///
    /// # Errors
    ///
    /// The refusal sent to the connector instead of the `Welcome`.
    fn confirm(&self, hello: &Hello) -> Result<(), (RejectCode, String)> {
        let _ = hello;
        Ok(())
    }
}

impl<F: Fn(&Hello) -> Result<(), (RejectCode, String)>> Admission for F {
    fn admit(&self, hello: &Hello) -> Result<(), (RejectCode, String)> {
        self(hello)
    }
}

struct Transcript<'a> {
    cluster: &'a str,
    connector: NodeId,
    acceptor: NodeId,
    role: ConnectionRole,
    nonce_c: [u8; NONCE_BYTES],
    nonce_s: [u8; NONCE_BYTES],
}

impl Transcript<'_> {
    fn mac(&self, secret: &[u8], label: &[u8]) -> Option<HmacSha256> {
        let mut mac = HmacSha256::new_from_slice(secret).ok()?;
        mac.update(label);
        mac.update(&[u8::try_from(self.cluster.len()).unwrap_or(u8::MAX)]);
        mac.update(self.cluster.as_bytes());
        mac.update(&self.connector.get().to_le_bytes());
        mac.update(&self.acceptor.get().to_le_bytes());
        mac.update(&[self.role.code()]);
        mac.update(&self.nonce_c);
        mac.update(&self.nonce_s);
        Some(mac)
    }

    fn proof(&self, secret: &[u8], label: &[u8]) -> [u8; PROOF_BYTES] {
        self.mac(secret, label)
            .map(|mac| mac.finalize().into_bytes().into())
            .unwrap_or([0; PROOF_BYTES])
    }

    /// Constant-time check of `proof`.
    fn verify(&self, secret: &[u8], label: &[u8], proof: &[u8]) -> bool {
        self.mac(secret, label)
            .is_some_and(|mac| mac.verify_slice(proof).is_ok())
    }
}

const ACCEPTOR_LABEL: &[u8] = b"kommander-raft/1 acceptor";
const CONNECTOR_LABEL: &[u8] = b"kommander-raft/1 connector";

fn nonce() -> Result<[u8; NONCE_BYTES], ConnectionHandshakeError> {
    let mut nonce = [0; NONCE_BYTES];
    getrandom::fill(&mut nonce).map_err(|e| ConnectionHandshakeError::Random(e.to_string()))?;
    Ok(nonce)
}

fn send(
    stream: &mut impl Write,
    kind: FrameKind,
    stamp: u64,
    body: BytesMut,
) -> Result<(), ConnectionHandshakeError> {
    write_frame(stream, kind, stamp, &[body.freeze()]).map_err(|e| FrameError::Io(e).into())
}

/// Sends a `Reject` (best effort: the connection is closed next anyway) and returns the
/// matching [`ConnectionHandshakeError::Refused`].
pub(crate) fn refuse(
    stream: &mut impl Write,
    code: RejectCode,
    reason: String,
) -> ConnectionHandshakeError {
    let mut body = BytesMut::with_capacity(1 + reason.len());
    body.put_u8(code.code());
    let cut = reason.floor_char_boundary(REASON_BYTES_MAX);
    body.put_slice(&reason.as_bytes()[..cut]);
    // A refused connection closes next: its clock is of no use to the other side.
    let _ = send(stream, FrameKind::Reject, UNSTAMPED, body);
    ConnectionHandshakeError::Refused { code, reason }
}

/// Refuses a connection the server has no room for: sends the handshake's `Reject` with
/// code `Busy` and `reason` at once (the connecting side reads it where it expects the
/// acceptor's `Challenge`, and its handshake fails with
/// [`ConnectionHandshakeError::Rejected`] naming the rejection), then closes the connection.
/// Both ports use it: the client port over its cap, the peer port over `connections_max` or
/// `handshakes_pending_max`. It never waits (an acceptor thread calls it): the socket is
/// made non-blocking, and a `Reject` that does not fit its (fresh, empty) send buffer is not
/// sent.
pub fn reject_busy(mut stream: TcpStream, reason: String) {
    if stream.set_nonblocking(true).is_ok() {
        let _ = refuse(&mut stream, RejectCode::Busy, reason);
    }
    let _ = stream.shutdown(Shutdown::Both);
}

/// The other side's refusal (its code and its words), from the body of its `Reject` frame.
pub(crate) fn rejection(body: &Bytes) -> (RejectCode, String) {
    let code = RejectCode::from_code(body.first().copied().unwrap_or(0));
    let text = body.get(1..).unwrap_or_default();
    let cut = text.len().min(REASON_BYTES_MAX);
    (code, String::from_utf8_lossy(&text[..cut]).into_owned())
}

fn rejected(body: &Bytes) -> ConnectionHandshakeError {
    let (code, reason) = rejection(body);
    ConnectionHandshakeError::Rejected { code, reason }
}

/// A tiny reader of handshake bodies; every read is checked.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }

    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.0)
    }
}

fn expect(
    frame_kind: FrameKind,
    wanted: FrameKind,
    body: &Bytes,
) -> Result<(), ConnectionHandshakeError> {
    if frame_kind == FrameKind::Reject {
        return Err(rejected(body));
    }
    if frame_kind != wanted {
        return Err(ConnectionHandshakeError::Refused {
            code: RejectCode::Malformed,
            reason: format!("expected a {wanted:?} frame, got {frame_kind:?}"),
        });
    }
    Ok(())
}

/// Runs the connector's side on a fresh connection to the node `expected` (or any node for
/// `None`, but never this side's own id nor the reserved 0: a node that reached itself, or an
/// acceptor that is not a node, is refused). Returns the acceptor's node id. This side's frames
/// carry `stamp` (its clock's, [`UNSTAMPED`] for a
/// client); the acceptor's last stamp is then the reader's
/// [`last_stamp`](FrameReader::last_stamp), to merge once the handshake succeeded.
///
/// # Errors
///
/// [`ConnectionHandshakeError`]: the connection must be closed.
pub fn connect<S: std::io::Read + Write>(
    stream: &mut S,
    reader: &mut FrameReader,
    me: &Identity,
    stamp: u64,
    role: ConnectionRole,
    expected: Option<NodeId>,
    deadlines: Deadlines,
) -> Result<Welcomed, ConnectionHandshakeError> {
    let nonce_c = nonce()?;
    let mut hello = BytesMut::with_capacity(72 + me.cluster.len());
    hello.put_u8(role.code());
    hello.put_u8(u8::from(me.secret.is_some()));
    hello.put_u64_le(me.node.get());
    hello.put_u64_le(me.incarnation);
    hello.put_slice(&nonce_c);
    hello.put_u8(u8::try_from(me.cluster.len()).unwrap_or(u8::MAX));
    hello.put_slice(me.cluster.as_bytes());
    send(stream, FrameKind::Hello, stamp, hello)?;

    let frame = reader.read_frame(stream, deadlines, &|| false)?;
    match expect(frame.kind, FrameKind::Challenge, &frame.body) {
        // Before the acceptor proved the secret, a duplicate-node refusal is not believed:
        // anyone could answer a connection with it.
        Err(ConnectionHandshakeError::Rejected {
            code: RejectCode::DuplicateNode,
            reason,
        }) => {
            return Err(ConnectionHandshakeError::Rejected {
                code: RejectCode::Malformed,
                reason: format!("a duplicate-node refusal before authentication: {reason}"),
            });
        }
        result => result?,
    }
    let mut fields = Fields(&frame.body);
    let malformed = || ConnectionHandshakeError::Refused {
        code: RejectCode::Malformed,
        reason: "malformed Challenge".to_owned(),
    };
    let acceptor = NodeId(u64::from_le_bytes(fields.take().ok_or_else(malformed)?));
    let acceptor_incarnation = u64::from_le_bytes(fields.take().ok_or_else(malformed)?);
    let nonce_s: [u8; NONCE_BYTES] = fields.take().ok_or_else(malformed)?;
    let proof_a = fields.rest();
    if let Some(expected) = expected
        && acceptor != expected
    {
        return Err(refuse(
            stream,
            RejectCode::UnknownNode,
            format!("connected to {expected}'s address but {acceptor} answered"),
        ));
    }
    // Another process with this node's id is judged by the acceptor, once authenticated.
    let another_process =
        acceptor == me.node && duplicate::conflict(me.incarnation, acceptor_incarnation);
    if (acceptor == me.node && !another_process) || acceptor == NodeId::ZERO {
        return Err(refuse(
            stream,
            RejectCode::UnknownNode,
            format!(
                "{acceptor} answered: {}",
                if acceptor == me.node {
                    "this node reached itself"
                } else {
                    "the reserved id 0 is no node"
                }
            ),
        ));
    }
    let transcript = Transcript {
        cluster: &me.cluster,
        connector: me.node,
        acceptor,
        role,
        nonce_c,
        nonce_s,
    };
    let proof_c = match &me.secret {
        Some(secret) => {
            if !transcript.verify(secret, ACCEPTOR_LABEL, proof_a) {
                return Err(refuse(
                    stream,
                    RejectCode::Auth,
                    format!("{acceptor} did not prove the shared secret"),
                ));
            }
            transcript.proof(secret, CONNECTOR_LABEL).to_vec()
        }
        None if !proof_a.is_empty() => {
            return Err(refuse(
                stream,
                RejectCode::Auth,
                format!("{acceptor} authenticates but this side has no auth_secret"),
            ));
        }
        None => Vec::new(),
    };
    send(stream, FrameKind::Auth, stamp, BytesMut::from(&proof_c[..]))?;
    let frame = reader.read_frame(stream, deadlines, &|| false)?;
    expect(frame.kind, FrameKind::Welcome, &frame.body)?;
    let client_endpoint =
        decode_welcome(&frame.body).map_err(|reason| ConnectionHandshakeError::Refused {
            code: RejectCode::Malformed,
            reason,
        })?;
    Ok(Welcomed {
        acceptor,
        client_endpoint,
    })
}

/// Runs the acceptor's side on a fresh inbound connection. `admission` decides whether a
/// connector is allowed here, before authentication and after (`Err` carries the refusal).
/// Returns the connector's [`Hello`]. This side's frames carry `stamp`; the connector's last stamp
/// is then the reader's [`last_stamp`](FrameReader::last_stamp), to merge once the handshake
/// succeeded (a stamp read before authentication is never merged).
///
/// # Errors
///
/// [`ConnectionHandshakeError`] (a `Reject` with the reason was sent when this side refused): the
/// connection must be closed.
pub fn accept<S: std::io::Read + Write>(
    stream: &mut S,
    reader: &mut FrameReader,
    me: &Identity,
    stamp: u64,
    admission: &dyn Admission,
    deadlines: Deadlines,
) -> Result<Hello, ConnectionHandshakeError> {
    let frame = match reader.read_frame(stream, deadlines, &|| false) {
        Ok(frame) => frame,
        Err(FrameError::Version { found }) => {
            return Err(refuse(
                stream,
                RejectCode::Version,
                format!(
                    "protocol version {found} is not spoken here (this node speaks {})",
                    PROTOCOL_VERSION
                ),
            ));
        }
        Err(error) => return Err(error.into()),
    };
    if frame.kind != FrameKind::Hello {
        return Err(refuse(
            stream,
            RejectCode::Malformed,
            format!("expected Hello, got {:?}", frame.kind),
        ));
    }
    let hello = (|| {
        let mut fields = Fields(&frame.body);
        let [role] = fields.take::<1>()?;
        let [auth] = fields.take::<1>()?;
        let node = NodeId(u64::from_le_bytes(fields.take()?));
        let incarnation = u64::from_le_bytes(fields.take()?);
        let nonce_c: [u8; NONCE_BYTES] = fields.take()?;
        let [len] = fields.take::<1>()?;
        let cluster = fields.rest();
        (cluster.len() == usize::from(len)).then_some((
            role,
            auth,
            node,
            incarnation,
            nonce_c,
            cluster,
        ))
    })();
    let Some((role, auth, node, incarnation, nonce_c, cluster)) = hello else {
        return Err(refuse(
            stream,
            RejectCode::Malformed,
            "malformed Hello".to_owned(),
        ));
    };
    let Some(role) = ConnectionRole::from_code(role) else {
        return Err(refuse(
            stream,
            RejectCode::Malformed,
            format!("unknown role {role}"),
        ));
    };
    if cluster != me.cluster.as_bytes() {
        return Err(refuse(
            stream,
            RejectCode::Cluster,
            format!(
                "cluster `{}` is not this node's cluster `{}`",
                String::from_utf8_lossy(cluster),
                me.cluster
            ),
        ));
    }
    let hello = Hello {
        role,
        node,
        incarnation,
    };
    if let Err((code, reason)) = admission.admit(&hello) {
        return Err(refuse(stream, code, reason));
    }
    match (auth, &me.secret) {
        (0, Some(_)) => {
            return Err(refuse(
                stream,
                RejectCode::Auth,
                format!("{node} sent no authentication; this node requires transport.auth_secret"),
            ));
        }
        (1, None) => {
            return Err(refuse(
                stream,
                RejectCode::Auth,
                format!("{node} authenticates but this node has no transport.auth_secret"),
            ));
        }
        (0 | 1, _) => {}
        (other, _) => {
            return Err(refuse(
                stream,
                RejectCode::Malformed,
                format!("invalid auth flag {other}"),
            ));
        }
    }
    let nonce_s = nonce()?;
    let transcript = Transcript {
        cluster: &me.cluster,
        connector: node,
        acceptor: me.node,
        role,
        nonce_c,
        nonce_s,
    };
    let mut challenge = BytesMut::with_capacity(16 + NONCE_BYTES + PROOF_BYTES);
    challenge.put_u64_le(me.node.get());
    challenge.put_u64_le(me.incarnation);
    challenge.put_slice(&nonce_s);
    if let Some(secret) = &me.secret {
        challenge.put_slice(&transcript.proof(secret, ACCEPTOR_LABEL));
    }
    send(stream, FrameKind::Challenge, stamp, challenge)?;

    let frame = reader.read_frame(stream, deadlines, &|| false)?;
    expect(frame.kind, FrameKind::Auth, &frame.body)?;
    let authentic = match &me.secret {
        Some(secret) => transcript.verify(secret, CONNECTOR_LABEL, &frame.body),
        None => frame.body.is_empty(),
    };
    if !authentic {
        return Err(refuse(
            stream,
            RejectCode::Auth,
            format!("{node} failed authentication (wrong secret or a replayed handshake)"),
        ));
    }
    if let Err((code, reason)) = admission.confirm(&hello) {
        return Err(refuse(stream, code, reason));
    }
    let welcome = encode_welcome(me.client_endpoint.as_deref());
    send(stream, FrameKind::Welcome, stamp, welcome)?;
    Ok(hello)
}
