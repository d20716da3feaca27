//! The register workload: clients in the host namespace read, write and compare-and-set a few
//! keys on random nodes, each operation recorded with its invocation and completion times.
//!
//! Values are unique (one counter for all clients), so a read names the write it saw. An
//! answer's `x-kv-outcome` decides how it is recorded: `ok` (and a compare-and-set's 409
//! mismatch, decided in log order) is a definite answer; `unknown`, a timeout or a connection
//! lost after the request was sent is [`Completion::Unknown`]; any other `failed` answer (and a
//! connection never made) wrote nothing and is left out. A 307 is followed to the leader it
//! names, the operation keeping its invocation time.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kommander_raft::sim::linearizability::{Command, Completion, Operation, Response};

use crate::cluster::{self, NODES};
use crate::http::{self, HttpError};
use crate::rng::Rng;

/// Keys of the register workload (`r0` ..).
pub(crate) const KEYS: u64 = 5;
/// Redirects followed for one operation.
const REDIRECTS_MAX: usize = 3;

/// What the clients share.
#[derive(Debug)]
pub(crate) struct Shared {
    /// When the run started: times are microseconds since.
    pub(crate) epoch: Instant,
    /// The next unique value written.
    pub(crate) next_value: AtomicU64,
    /// Set to stop the clients.
    pub(crate) stop: Arc<AtomicBool>,
    /// The client's deadline for one request (past it: unknown).
    pub(crate) request_timeout: Duration,
    /// The longest pause of a client between two operations, in ms (drawn in `1..=` it;
    /// 0: none).
    pub(crate) think_ms_max: u64,
}

impl Shared {
    /// A client's pause between two operations.
    pub(crate) fn think(&self, rng: &mut Rng) {
        if self.think_ms_max > 0 {
            std::thread::sleep(Duration::from_millis(rng.between(1, self.think_ms_max)));
        }
    }
}

/// What one client did.
#[derive(Debug, Default)]
pub(crate) struct ClientRecord {
    /// The operations kept for the checker.
    pub(crate) operations: Vec<Operation>,
    /// Operations answered definitely `failed` (left out), by why: the status, `connect`
    /// (no connection made) or `redirects` (more than `REDIRECTS_MAX`).
    pub(crate) failed: BTreeMap<String, u64>,
    /// Operations whose outcome is unknown.
    pub(crate) unknown: u64,
    /// Redirects followed.
    pub(crate) redirects: u64,
}

/// The path of key `key`.
pub(crate) fn key_path(key: u64) -> String {
    format!("/kv/r{key}")
}

/// Runs client `client` until `shared.stop` is set.
pub(crate) fn run(client: u64, seed: u64, shared: &Shared) -> ClientRecord {
    let mut rng = Rng::new(seed ^ client.wrapping_mul(0x9E37_79B9));
    let mut record = ClientRecord::default();
    // The last value this client saw per key: what its compare-and-sets expect.
    let mut seen: Vec<Option<u64>> = vec![None; KEYS as usize];
    while !shared.stop.load(Ordering::Relaxed) {
        let key = rng.below(KEYS);
        let node = rng.between(1, NODES as u64) as usize;
        let command = match rng.below(10) {
            0..=3 => Command::Read { key },
            4..=6 => Command::Write {
                key,
                value: shared.next_value.fetch_add(1, Ordering::Relaxed),
            },
            _ => Command::CompareAndSet {
                key,
                expected: seen[key as usize],
                new: shared.next_value.fetch_add(1, Ordering::Relaxed),
            },
        };
        let invoked_at = micros(shared.epoch);
        let outcome = perform(
            cluster::http_address(node),
            &command,
            record.operations.len() as u64 | (client << 48),
            shared.request_timeout,
            &mut record.redirects,
        );
        let completion = match outcome {
            Outcome::Answer(response) => {
                match response {
                    Response::Read(value) => seen[key as usize] = value,
                    Response::CompareAndSet(true) | Response::Write => {
                        seen[key as usize] = match command {
                            Command::Write { value, .. } => Some(value),
                            Command::CompareAndSet { new, .. } => Some(new),
                            Command::Read { .. } => seen[key as usize],
                        };
                    }
                    Response::CompareAndSet(false) => {}
                }
                Completion::Returned {
                    response,
                    at: micros(shared.epoch).max(invoked_at),
                }
            }
            Outcome::Unknown => {
                record.unknown += 1;
                Completion::Unknown
            }
            Outcome::Failed(why) => {
                *record.failed.entry(why).or_default() += 1;
                shared.think(&mut rng);
                continue;
            }
        };
        record.operations.push(Operation {
            client,
            command,
            invoked_at,
            completion,
        });
        shared.think(&mut rng);
    }
    record
}

pub(crate) fn micros(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// How one operation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Answer(Response),
    Unknown,
    /// Nothing was written; why (see [`ClientRecord::failed`]).
    Failed(String),
}

/// Sends `command` to `address`, following redirects.
fn perform(
    address: SocketAddr,
    command: &Command,
    operation_id: u64,
    timeout: Duration,
    redirects: &mut u64,
) -> Outcome {
    let path = key_path(command.key());
    let (method, path, body) = match *command {
        Command::Read { .. } => ("GET", path, String::new()),
        Command::Write { value, .. } => ("PUT", path, value.to_string()),
        Command::CompareAndSet { expected, new, .. } => {
            let expected = expected.map_or("null".to_owned(), |value| format!("\"{value}\""));
            (
                "POST",
                format!("/cas/r{}", command.key()),
                format!("{{\"expected\": {expected}, \"new\": \"{new}\"}}"),
            )
        }
    };
    let request = Request {
        method,
        path: &path,
        body: body.as_bytes(),
        operation_id,
        timeout,
    };
    match exchange(address, &request, redirects) {
        Exchanged::Answer(answer) => classify(command, &answer),
        Exchanged::Unknown => Outcome::Unknown,
        Exchanged::Failed(why) => Outcome::Failed(why),
    }
}

/// One request of a workload.
pub(crate) struct Request<'a> {
    pub(crate) method: &'a str,
    pub(crate) path: &'a str,
    pub(crate) body: &'a [u8],
    pub(crate) operation_id: u64,
    pub(crate) timeout: Duration,
}

/// How a request's exchange ended, redirects followed.
#[derive(Debug)]
pub(crate) enum Exchanged {
    /// An answer that is not a redirect.
    Answer(http::HttpResponse),
    /// The request may have been served (sent, then no complete answer).
    Unknown,
    /// Nothing was served: no connection, a redirect without a leader, too many redirects.
    Failed(String),
}

/// Sends `request` to `address`, following up to [`REDIRECTS_MAX`] redirects to the leader
/// they name (counted in `redirects`).
pub(crate) fn exchange(
    mut address: SocketAddr,
    request: &Request<'_>,
    redirects: &mut u64,
) -> Exchanged {
    for _ in 0..=REDIRECTS_MAX {
        let answer = match http::request(
            address,
            request.method,
            request.path,
            request.body,
            request.operation_id,
            request.timeout,
        ) {
            Ok(answer) => answer,
            Err(HttpError::Connect(_)) => return Exchanged::Failed("connect".to_owned()),
            Err(HttpError::Exchange(_) | HttpError::Malformed(_)) => return Exchanged::Unknown,
        };
        if answer.status == 307 {
            match answer.header("location").and_then(location_address) {
                Some(leader) => {
                    *redirects += 1;
                    address = leader;
                    continue;
                }
                None => return Exchanged::Failed("307 without a Location".to_owned()),
            }
        }
        return Exchanged::Answer(answer);
    }
    Exchanged::Failed("redirects".to_owned())
}

/// `http://host:port/...` → `host:port`.
fn location_address(location: &str) -> Option<SocketAddr> {
    let rest = location.strip_prefix("http://")?;
    let authority = rest.split('/').next()?;
    authority.parse().ok()
}

/// An answer (not a redirect) as an outcome of `command`.
fn classify(command: &Command, answer: &http::HttpResponse) -> Outcome {
    match answer.header("x-kv-outcome") {
        Some("ok") => {}
        Some("failed") => {
            // A compare-and-set's mismatch is decided in log order: a definite "no".
            return if answer.status == 409 && matches!(command, Command::CompareAndSet { .. }) {
                Outcome::Answer(Response::CompareAndSet(false))
            } else {
                Outcome::Failed(answer.status.to_string())
            };
        }
        // `unknown`, or an answer that does not say: it may have been written.
        _ => return Outcome::Unknown,
    }
    match (command, answer.status) {
        (Command::Write { .. }, 200) => Outcome::Answer(Response::Write),
        (Command::CompareAndSet { .. }, 200) => Outcome::Answer(Response::CompareAndSet(true)),
        (Command::Read { .. }, 404) => Outcome::Answer(Response::Read(None)),
        (Command::Read { .. }, 200) => std::str::from_utf8(&answer.body)
            .ok()
            .and_then(|text| text.parse::<u64>().ok())
            .map_or(Outcome::Unknown, |value| {
                Outcome::Answer(Response::Read(Some(value)))
            }),
        _ => Outcome::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_location_names_the_leader() {
        assert_eq!(
            location_address("http://10.213.77.3:8000/kv/r1"),
            Some("10.213.77.3:8000".parse().expect("an address"))
        );
        // This client speaks plain HTTP only.
        assert_eq!(location_address("https://10.213.77.3:8000/kv/r1"), None);
    }
}
