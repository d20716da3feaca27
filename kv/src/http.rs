//! The HTTP API: the routes, and the exact answer each outcome gets.
//!
//! ```text
//! PUT    /kv/{key}           body = the value            200 ok
//! DELETE /kv/{key}                                       200 ok
//! GET    /kv/{key}           linearizable (ReadIndex)    200 value | 404 absent
//! GET    /kv/{key}?stale=true  this replica, no round    200 value | 404 absent
//! POST   /cas/{key}          {"expected": "old" | null, "new": "value"}
//!                                                        200 swapped | 409 mismatch
//! POST   /append/{key}       body = an element (no \n)   200 appended | 413 list too long
//! GET    /_debug/applied     per partition: applied index and state digest (JSON)
//! ```
//!
//! Every answer carries `x-kv-outcome`: `ok` (done: the write committed, or the read saw this
//! state), `failed` (definite: nothing was written, retrying is safe) or `unknown`
//! (indeterminate: the write may have committed or may still commit); `x-kv-node` (the
//! answering node), `x-kv-index` where an index is known (a write's log index, a read's read
//! index), and `x-kv-op-id` echoing the request's, so a client can match answers to its
//! operations. Bodies other than a read's value are JSON: `{"outcome", "reason"?, "index"?,
//! "current"?}`. The status codes:
//!
//! | status | outcome | when |
//! |---|---|---|
//! | 200 | ok | written; a value read; a compare-and-set swapped |
//! | 404 | ok | a read found no value (404 `failed` is an unknown route) |
//! | 307 | failed | a write reached a follower: `Location` is the leader's URL (`x-kv-leader` its id); the client repeats the request there |
//! | 400 | failed | a bad key, query, compare-and-set body, or an element holding `\n` |
//! | 409 | failed | a compare-and-set found another value (`current`, `null` when absent); nothing changed |
//! | 413 | failed | a body over `kv.body_bytes_max`, an entry over the node's limits, or an append that would make the list longer than `kv.body_bytes_max` (decided in log order: nothing changed) |
//! | 503 | failed | no leader known, queues full, the partition restoring or moved, too many requests |
//! | 504 | failed | a read that could not confirm its read index in `kv.read_timeout_ms` |
//! | 504 | unknown | a write whose outcome is not known in `kv.write_timeout_ms`, or whose leader lost leadership before it knew |
//! | 500 | unknown | the node failed while a write was in flight |
//!
//! A write on a follower is redirected, not forwarded: the node that answers is then the one
//! whose log took the write, so a timeout means one thing (that leader did not learn the
//! outcome), a redirect writes nothing, and no node holds connections to its peers for
//! clients. Reads are never redirected: any replica serves a linearizable read by asking
//! the leader for a read index (`confirm_local_application_with`, fenced by the generation the
//! key was routed with) and reading its own state once it applied through it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::response::Response;
use axum::routing::{get, post};
use kommander_raft::transport::tcp::TcpTransport;
use kommander_raft::{
    InvalidWrite, NodeId, PartitionId, QueryError, Raft, ReplicateError, ReplicateOptions, Written,
};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::OwnedSemaphorePermit;
use tokio::sync::Semaphore;

use crate::command::{Command, LOG_TYPE, Operation};
use crate::config::Config;
use crate::store::{Outcome, Store};

/// The request header a client may set to name its operation; echoed in the answer.
pub const OPERATION_ID_HEADER: &str = "x-kv-op-id";
/// The answer's outcome: `ok`, `failed` or `unknown`.
pub const OUTCOME_HEADER: &str = "x-kv-outcome";
/// The answering node's id.
pub const NODE_HEADER: &str = "x-kv-node";
/// A write's log index, a read's read index.
pub const INDEX_HEADER: &str = "x-kv-index";
/// On a redirect: the leader's node id.
pub const LEADER_HEADER: &str = "x-kv-leader";

/// How long a request refused because its partition moved waits before it is routed again
/// (the new map reaches this node through partition 0's log).
const PARTITION_MOVED_BACKOFF: Duration = Duration::from_millis(20);

/// What the handlers share.
pub(crate) struct Api {
    pub(crate) raft: Raft,
    pub(crate) store: Arc<Store>,
    pub(crate) transport: Arc<TcpTransport>,
    pub(crate) config: Arc<Config>,
    pub(crate) permits: Arc<Semaphore>,
}

/// The outcome of a request, as the client is told it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Ok,
    Failed,
    Unknown,
}

impl Verdict {
    fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Failed => "failed",
            Self::Unknown => "unknown",
        }
    }
}

/// An answer before the common headers are added.
struct Reply {
    status: StatusCode,
    verdict: Verdict,
    index: Option<u64>,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Body,
}

impl Reply {
    fn json(
        status: StatusCode,
        verdict: Verdict,
        index: Option<u64>,
        mut body: serde_json::Value,
    ) -> Self {
        if let Some(object) = body.as_object_mut() {
            object.insert("outcome".to_owned(), json!(verdict.as_str()));
            if let Some(index) = index {
                object.insert("index".to_owned(), json!(index));
            }
        }
        Self {
            status,
            verdict,
            index,
            headers: vec![(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body: Body::from(body.to_string()),
        }
    }

    fn ok(index: u64) -> Self {
        Self::json(StatusCode::OK, Verdict::Ok, Some(index), json!({}))
    }

    fn failed(status: StatusCode, reason: impl std::fmt::Display) -> Self {
        Self::json(
            status,
            Verdict::Failed,
            None,
            json!({ "reason": reason.to_string() }),
        )
    }

    fn unknown(status: StatusCode, reason: impl std::fmt::Display) -> Self {
        Self::json(
            status,
            Verdict::Unknown,
            None,
            json!({ "reason": reason.to_string() }),
        )
    }

    /// The common headers: outcome, node, index, and the request's operation id.
    fn finish(self, node: NodeId, request: &HeaderMap) -> Response {
        let mut response = Response::new(self.body);
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        for (name, value) in self.headers {
            headers.insert(name, value);
        }
        headers.insert(
            OUTCOME_HEADER,
            HeaderValue::from_static(self.verdict.as_str()),
        );
        headers.insert(NODE_HEADER, HeaderValue::from(node.get()));
        if let Some(index) = self.index {
            headers.insert(INDEX_HEADER, HeaderValue::from(index));
        }
        if let Some(id) = request.get(OPERATION_ID_HEADER) {
            headers.insert(OPERATION_ID_HEADER, id.clone());
        }
        response
    }
}

/// The API's routes over `api`.
pub(crate) fn router(api: Arc<Api>) -> Router {
    let body_max = api.config.kv.body_bytes_max;
    Router::new()
        .route("/kv/{*key}", get(read).put(put).delete(delete))
        .route("/cas/{*key}", post(compare_and_set))
        .route("/append/{*key}", post(append))
        .route("/_debug/applied", get(debug_applied))
        .fallback(no_route)
        .layer(DefaultBodyLimit::max(body_max))
        .with_state(api)
}

/// `?stale=true`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadOptions {
    #[serde(default)]
    stale: bool,
}

/// The body of `POST /cas/{key}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CompareAndSet {
    /// The value the key must hold (`null` or missing: the key must be absent).
    #[serde(default)]
    expected: Option<String>,
    /// The value to set.
    new: String,
}

async fn no_route(State(api): State<Arc<Api>>, headers: HeaderMap) -> Response {
    Reply::failed(
        StatusCode::NOT_FOUND,
        "no such route: /kv/{key}, /cas/{key}, /append/{key} or /_debug/applied",
    )
    .finish(api.raft.local_node_id(), &headers)
}

async fn put(
    State(api): State<Arc<Api>>,
    key: Result<Path<String>, PathRejection>,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let reply = write_with_body(&api, key, body, &uri, |value| Ok(Operation::Put(value))).await;
    reply.finish(api.raft.local_node_id(), &headers)
}

async fn delete(
    State(api): State<Arc<Api>>,
    key: Result<Path<String>, PathRejection>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let reply = match api.key(key) {
        Err(reply) => reply,
        Ok(key) => api.write(key, Operation::Delete, &uri).await,
    };
    reply.finish(api.raft.local_node_id(), &headers)
}

async fn compare_and_set(
    State(api): State<Arc<Api>>,
    key: Result<Path<String>, PathRejection>,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let reply = write_with_body(&api, key, body, &uri, |body| {
        let cas = serde_json::from_slice::<CompareAndSet>(&body).map_err(|error| {
            Reply::failed(
                StatusCode::BAD_REQUEST,
                format!(
                    "the body must be {{\"expected\": string or null, \"new\": string}}: {error}"
                ),
            )
        })?;
        Ok(Operation::CompareAndSet {
            expected: cas.expected.map(Bytes::from),
            new: Bytes::from(cas.new),
        })
    })
    .await;
    reply.finish(api.raft.local_node_id(), &headers)
}

/// Appends the body, one element of the key's list, then `\n`.
async fn append(
    State(api): State<Arc<Api>>,
    key: Result<Path<String>, PathRejection>,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let reply = write_with_body(&api, key, body, &uri, |element| {
        if element.contains(&b'\n') {
            return Err(Reply::failed(
                StatusCode::BAD_REQUEST,
                "an element of a list holds no `\\n` (it ends each element)",
            ));
        }
        Ok(Operation::Append(element))
    })
    .await;
    reply.finish(api.raft.local_node_id(), &headers)
}

/// `GET /_debug/applied`: this replica's applied index and state digest per partition,
/// `{"partitions": [{"partition", "applied", "digest"}]}` (the digest as 16 hex digits).
async fn debug_applied(State(api): State<Arc<Api>>, headers: HeaderMap) -> Response {
    let partitions: Vec<serde_json::Value> = api
        .store
        .applied()
        .into_iter()
        .map(|state| {
            json!({
                "partition": state.partition.0,
                "applied": state.applied,
                "digest": format!("{:016x}", state.digest),
            })
        })
        .collect();
    Reply::json(
        StatusCode::OK,
        Verdict::Ok,
        None,
        json!({ "partitions": partitions }),
    )
    .finish(api.raft.local_node_id(), &headers)
}

/// The write `operation` makes of a request's body, once its key and body are good.
async fn write_with_body(
    api: &Api,
    key: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
    uri: &Uri,
    operation: impl FnOnce(Bytes) -> Result<Operation, Reply>,
) -> Reply {
    let key = match api.key(key) {
        Ok(key) => key,
        Err(reply) => return reply,
    };
    let operation = match body {
        Ok(body) => operation(body),
        Err(rejected) => Err(body_refused(&rejected)),
    };
    match operation {
        Ok(operation) => api.write(key, operation, uri).await,
        Err(reply) => reply,
    }
}

async fn read(
    State(api): State<Arc<Api>>,
    key: Result<Path<String>, PathRejection>,
    options: Result<Query<ReadOptions>, QueryRejection>,
    headers: HeaderMap,
) -> Response {
    let reply = match (api.key(key), options) {
        (Err(reply), _) => reply,
        (Ok(_), Err(rejected)) => Reply::failed(
            StatusCode::BAD_REQUEST,
            format!("the only query is `stale=true|false`: {rejected}"),
        ),
        (Ok(key), Ok(Query(options))) => match api.permit() {
            Err(reply) => reply,
            Ok(_permit) if options.stale || api.config.kv.unsafe_local_reads => {
                api.read_stale(&key)
            }
            Ok(_permit) => api.read_linearizable(&key).await,
        },
    };
    reply.finish(api.raft.local_node_id(), &headers)
}

/// A refused body: too large (413) or unreadable (400).
fn body_refused(rejected: &BytesRejection) -> Reply {
    let status = rejected.status();
    let status = if status == StatusCode::PAYLOAD_TOO_LARGE {
        status
    } else {
        StatusCode::BAD_REQUEST
    };
    Reply::failed(status, format!("the body was refused: {rejected}"))
}

/// A value read: 200 with its bytes, or 404 when absent (both `ok`).
fn value_reply(value: Option<Bytes>, index: Option<u64>) -> Reply {
    match value {
        Some(value) => Reply {
            status: StatusCode::OK,
            verdict: Verdict::Ok,
            index,
            headers: vec![(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            )],
            body: Body::from(value),
        },
        None => Reply::json(
            StatusCode::NOT_FOUND,
            Verdict::Ok,
            index,
            json!({ "value": null }),
        ),
    }
}

impl Api {
    /// The key of the path, within `kv.key_bytes_max`.
    fn key(&self, key: Result<Path<String>, PathRejection>) -> Result<String, Reply> {
        let Path(key) = key.map_err(|rejected| {
            Reply::failed(StatusCode::BAD_REQUEST, format!("a bad key: {rejected}"))
        })?;
        let max = self.config.kv.key_bytes_max;
        if key.is_empty() || key.len() > max {
            return Err(Reply::failed(
                StatusCode::BAD_REQUEST,
                format!(
                    "a key is 1 to {max} bytes (kv.key_bytes_max); this one is {}",
                    key.len()
                ),
            ));
        }
        Ok(key)
    }

    /// A slot among `kv.requests_in_flight_max`, or 503.
    fn permit(&self) -> Result<OwnedSemaphorePermit, Reply> {
        Arc::clone(&self.permits).try_acquire_owned().map_err(|_| {
            Reply::failed(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many requests in flight (kv.requests_in_flight_max)",
            )
        })
    }

    /// The partition `key` routes to, and its generation in this node's map.
    fn route(&self, key: &str) -> Result<(PartitionId, u64), Reply> {
        let partition = self.raft.partition_for_key(key).map_err(|error| {
            Reply::failed(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("no partition: {error}"),
            )
        })?;
        Ok((partition, self.raft.partition_generation(partition)))
    }

    fn read_stale(&self, key: &str) -> Reply {
        match self.route(key) {
            Err(reply) => reply,
            Ok((partition, _)) => value_reply(self.store.get(partition, key), None),
        }
    }

    /// A ReadIndex round through the partition's leader, fenced by the generation the key was
    /// routed with, then this replica's state once it applied the read index; routed again
    /// after `PartitionMoved` (a split or merge moved the key since this node's map routed
    /// it). The fence is judged on the partition's shard once this replica applied the read
    /// index, against the generation entries of the partition's log as well as this node's
    /// map: a read answered began before the source's generation entry committed, and the
    /// source's copy of a moved key changes no more after that entry (every write is fenced),
    /// so reading it here is linearizable even if the map moves on before the store is read.
    async fn read_linearizable(&self, key: &str) -> Reply {
        let deadline = Instant::now() + self.config.read_timeout();
        let mut moved = 0;
        loop {
            let (partition, generation) = match self.route(key) {
                Ok(route) => route,
                Err(reply) => return reply,
            };
            let options = kommander_raft::ReadOptions {
                expected_generation: generation,
                timeout: Some(deadline.saturating_duration_since(Instant::now())),
            };
            let retry = match self
                .raft
                .confirm_local_application_with(partition, options)
                .await
            {
                Ok(index) => {
                    return value_reply(self.store.get(partition, key), Some(index.get()));
                }
                Err(error @ QueryError::PartitionMoved { .. }) => error,
                Err(error) => return read_refused(&error),
            };
            moved += 1;
            if moved > self.config.kv.partition_moved_retries_max {
                return read_refused(&retry);
            }
            tokio::time::sleep(PARTITION_MOVED_BACKOFF).await;
        }
    }

    /// Proposes `operation` on `key`'s partition, fenced by the generation it was routed
    /// with; routed again after `PartitionMoved`. A compare-and-set or an append waits for
    /// its entry to apply here, where its outcome is decided.
    async fn write(&self, key: String, operation: Operation, uri: &Uri) -> Reply {
        let permit = match self.permit() {
            Ok(permit) => permit,
            Err(reply) => return reply,
        };
        let deadline = Instant::now() + self.config.write_timeout();
        let id = self.store.next_operation();
        let decided_on_apply = matches!(
            operation,
            Operation::CompareAndSet { .. } | Operation::Append(_)
        );
        let acknowledged_early = self.config.kv.unsafe_ack_before_commit
            && matches!(operation, Operation::Put(_) | Operation::Append(_));
        // Registered before the proposal: the entry may apply before the proposal returns.
        let (outcome, _waiter) = self.store.wait_for(id);
        let payload = Command {
            id,
            key: Arc::from(key.as_str()),
            operation,
        }
        .encode();
        let mut moved = 0;
        let written = loop {
            let (partition, generation) = match self.route(&key) {
                Ok(route) => route,
                Err(reply) => return reply,
            };
            let options = ReplicateOptions {
                expected_generation: generation,
                timeout: Some(deadline.saturating_duration_since(Instant::now())),
                ..ReplicateOptions::default()
            };
            if acknowledged_early && self.raft.am_i_leader_quick(partition) {
                return self.acknowledge_early(partition, payload, options, permit);
            }
            match self
                .raft
                .replicate_logs(partition, LOG_TYPE, payload.clone(), options)
                .await
            {
                Ok(written) => break written,
                Err(ReplicateError::PartitionMoved { .. })
                    if moved < self.config.kv.partition_moved_retries_max =>
                {
                    moved += 1;
                    tokio::time::sleep(PARTITION_MOVED_BACKOFF).await;
                }
                Err(error) => return self.write_refused(error, uri),
            }
        };
        if !decided_on_apply {
            return Reply::ok(written.log_index.get());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, outcome).await {
            Ok(Ok(outcome)) => decided_reply(&outcome, written),
            // Committed, but this node did not apply it in time (or is stopping).
            Ok(Err(_)) | Err(_) => Reply::json(
                StatusCode::GATEWAY_TIMEOUT,
                Verdict::Unknown,
                Some(written.log_index.get()),
                json!({ "reason": "the write committed; its outcome was not applied here in time" }),
            ),
        }
    }

    /// `kv.unsafe_ack_before_commit` (TEST ONLY): answers `ok` now, while the proposal runs
    /// on in the background holding the request's permit; it may never commit.
    fn acknowledge_early(
        &self,
        partition: PartitionId,
        payload: Bytes,
        options: ReplicateOptions,
        permit: OwnedSemaphorePermit,
    ) -> Reply {
        let raft = self.raft.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _ = raft
                .replicate_logs(partition, LOG_TYPE, payload, options)
                .await;
        });
        Reply::json(
            StatusCode::OK,
            Verdict::Ok,
            None,
            json!({ "unsafe": "acknowledged before commit (kv.unsafe_ack_before_commit)" }),
        )
    }

    /// The answer to a refused write: a redirect to the leader, a definite failure, or an
    /// indeterminate outcome.
    fn write_refused(&self, error: ReplicateError, uri: &Uri) -> Reply {
        match error {
            ReplicateError::NotLeader {
                leader: Some(leader),
                ..
            } => self.redirect(leader, uri),
            ReplicateError::NotLeader { leader: None, .. } => Reply::failed(
                StatusCode::SERVICE_UNAVAILABLE,
                "no leader known for the key's partition (an election is under way)",
            ),
            ReplicateError::QueueFull
            | ReplicateError::RestoreInProgress
            | ReplicateError::PartitionMoved { .. } => {
                Reply::failed(StatusCode::SERVICE_UNAVAILABLE, error)
            }
            ReplicateError::Invalid(ref invalid) => {
                let status = match invalid {
                    InvalidWrite::Empty | InvalidWrite::TooManyEntries { .. } => {
                        StatusCode::BAD_REQUEST
                    }
                    _ => StatusCode::PAYLOAD_TOO_LARGE,
                };
                Reply::failed(status, error)
            }
            ReplicateError::Timeout { .. } | ReplicateError::LeadershipLost { .. } => {
                Reply::unknown(StatusCode::GATEWAY_TIMEOUT, error)
            }
            // A node failure (or an answer a one-phase write never gets): it may have
            // committed.
            _ => Reply::unknown(StatusCode::INTERNAL_SERVER_ERROR, error),
        }
    }

    /// 307 to the same path on `leader`'s HTTP address (as it advertised it to this node).
    fn redirect(&self, leader: NodeId, uri: &Uri) -> Reply {
        let Some(endpoint) = self.transport.client_endpoint(leader) else {
            return Reply::failed(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "the leader is node {leader}, whose HTTP address this node does not know yet"
                ),
            );
        };
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let location = format!("http://{endpoint}{path}");
        let mut reply = Reply::json(
            StatusCode::TEMPORARY_REDIRECT,
            Verdict::Failed,
            None,
            json!({ "reason": "not the leader", "leader": leader.get(), "location": location }),
        );
        if let Ok(value) = HeaderValue::try_from(location) {
            reply.headers.push((header::LOCATION, value));
        }
        reply.headers.push((
            HeaderName::from_static(LEADER_HEADER),
            HeaderValue::from(leader.get()),
        ));
        reply
    }
}

/// A compare-and-set's or an append's outcome, decided when its entry applied.
fn decided_reply(outcome: &Outcome, written: Written) -> Reply {
    let index = Some(written.log_index.get());
    match outcome {
        Outcome::TooLong { bytes } => Reply::json(
            StatusCode::PAYLOAD_TOO_LARGE,
            Verdict::Failed,
            index,
            json!({ "reason": format!("the list would be {bytes} bytes, over kv.body_bytes_max: nothing appended") }),
        ),
        Outcome::Swapped | Outcome::Written => {
            Reply::json(StatusCode::OK, Verdict::Ok, index, json!({}))
        }
        Outcome::Mismatch { current } => {
            let current = current
                .as_ref()
                .map(|value| String::from_utf8_lossy(value).into_owned());
            Reply::json(
                StatusCode::CONFLICT,
                Verdict::Failed,
                index,
                json!({ "reason": "the value is not the expected one", "current": current }),
            )
        }
    }
}

/// A read that could not be served: always definite (a read writes nothing).
fn read_refused(error: &QueryError) -> Reply {
    let status = match error {
        QueryError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        QueryError::Fatal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    Reply::failed(status, error)
}
