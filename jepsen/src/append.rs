//! The append workload: clients in the host namespace append unique numbers to the lists of a
//! few keys (`POST /append/a<k>`) and read whole lists (linearizable `GET /kv/a<k>`), on
//! random nodes, each operation recorded with its invocation and completion times.
//!
//! The store holds a list as its elements, each followed by `\n`. An answer's `x-kv-outcome`
//! decides how an operation is recorded, as in the register workload: `ok` is definite;
//! `unknown`, a timeout or a connection lost after the request was sent leaves an append
//! [`AppendResult::Unknown`] (it may be in the list, at most once); any other `failed` answer
//! wrote nothing: a failed append is kept aside ([`AppendRecord::failed_values`]: it must never
//! show up), a failed read is only counted. A request is never retried (the store does not
//! deduplicate by operation id, so a retry could append twice).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use crate::client::{Exchanged, Request, Shared, exchange, micros};
use crate::cluster::{self, NODES};
use crate::rng::Rng;

/// Keys of the append workload (`a0` ..).
pub(crate) const KEYS: u64 = 8;

/// Why an `ok` read is counted as failed when its body is not a list: the checks report any
/// such read as a violation (the store answered something it never held).
pub(crate) const GARBLED: &str = "a list that does not parse";

/// The path of a linearizable read of list `key`.
pub(crate) fn key_path(key: u64) -> String {
    format!("/kv/a{key}")
}

/// What an append operation asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AppendCommand {
    /// Append `value` to `key`'s list.
    Append { key: u64, value: u64 },
    /// Read `key`'s list.
    Read { key: u64 },
}

impl AppendCommand {
    pub(crate) fn key(self) -> u64 {
        match self {
            Self::Append { key, .. } | Self::Read { key } => key,
        }
    }
}

/// How an append operation ended (failed ones are not kept as operations).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AppendResult {
    /// The append was acknowledged.
    Appended,
    /// The read returned this list.
    Read(Vec<u64>),
    /// No definite answer: the append may or may not be in the list.
    Unknown,
}

/// One recorded operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AppendOperation {
    pub(crate) client: u64,
    pub(crate) command: AppendCommand,
    /// Microseconds since the run's start.
    pub(crate) invoked_at: u64,
    /// Microseconds since the run's start (for an unknown one: when the client gave up).
    pub(crate) completed_at: u64,
    pub(crate) result: AppendResult,
}

/// What one append client did.
#[derive(Debug, Default)]
pub(crate) struct AppendRecord {
    /// The operations kept for the checks.
    pub(crate) operations: Vec<AppendOperation>,
    /// Values of appends answered `failed` (nothing written), by key.
    pub(crate) failed_values: Vec<(u64, u64)>,
    /// Operations answered definitely `failed`, by why (as the register workload counts them).
    pub(crate) failed: BTreeMap<String, u64>,
    /// Redirects followed.
    pub(crate) redirects: u64,
}

/// Parses a list as the store holds it: elements each followed by `\n`.
pub(crate) fn parse_list(body: &[u8]) -> Option<Vec<u64>> {
    let text = std::str::from_utf8(body).ok()?;
    if text.is_empty() {
        return Some(Vec::new());
    }
    let elements = text.strip_suffix('\n')?;
    elements
        .split('\n')
        .map(|element| element.parse::<u64>().ok())
        .collect()
}

/// Runs append client `client` until `shared.stop` is set.
pub(crate) fn run(client: u64, seed: u64, shared: &Shared) -> AppendRecord {
    let mut rng = Rng::new(seed ^ 0x6170_7065_6E64 ^ client.wrapping_mul(0x9E37_79B9));
    let mut record = AppendRecord::default();
    while !shared.stop.load(Ordering::Relaxed) {
        let key = rng.below(KEYS);
        let node = rng.between(1, NODES as u64) as usize;
        let command = if rng.below(10) < 6 {
            AppendCommand::Append {
                key,
                value: shared.next_value.fetch_add(1, Ordering::Relaxed),
            }
        } else {
            AppendCommand::Read { key }
        };
        let invoked_at = micros(shared.epoch);
        let (method, path, body) = match command {
            AppendCommand::Append { key, value } => {
                ("POST", format!("/append/a{key}"), value.to_string())
            }
            AppendCommand::Read { key } => ("GET", key_path(key), String::new()),
        };
        let request = Request {
            method,
            path: &path,
            body: body.as_bytes(),
            operation_id: record.operations.len() as u64 | (client << 48),
            timeout: shared.request_timeout,
        };
        let result = match exchange(cluster::http_address(node), &request, &mut record.redirects) {
            Exchanged::Answer(answer) => classify(command, &answer),
            Exchanged::Unknown => Err(None),
            Exchanged::Failed(why) => Err(Some(why)),
        };
        let result = match result {
            Ok(result) => result,
            // A read never changes anything: an unknown read is left out as a failed one.
            Err(None) if matches!(command, AppendCommand::Append { .. }) => AppendResult::Unknown,
            Err(why) => {
                let why = why.unwrap_or_else(|| "no answer".to_owned());
                *record.failed.entry(why).or_default() += 1;
                if let AppendCommand::Append { key, value } = command {
                    record.failed_values.push((key, value));
                }
                shared.think(&mut rng);
                continue;
            }
        };
        record.operations.push(AppendOperation {
            client,
            command,
            invoked_at,
            completed_at: micros(shared.epoch).max(invoked_at),
            result,
        });
        shared.think(&mut rng);
    }
    record
}

/// An answer (not a redirect) as a result of `command`: `Err(None)` unknown, `Err(Some(why))`
/// definitely failed.
fn classify(
    command: AppendCommand,
    answer: &crate::http::HttpResponse,
) -> Result<AppendResult, Option<String>> {
    match answer.header("x-kv-outcome") {
        Some("ok") => {}
        Some("failed") => return Err(Some(answer.status.to_string())),
        _ => return Err(None),
    }
    match (command, answer.status) {
        (AppendCommand::Append { .. }, 200) => Ok(AppendResult::Appended),
        (AppendCommand::Read { .. }, 404) => Ok(AppendResult::Read(Vec::new())),
        (AppendCommand::Read { .. }, 200) => parse_list(&answer.body)
            .map(AppendResult::Read)
            .ok_or_else(|| Some(GARBLED.to_owned())),
        _ => Err(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_is_its_elements_each_ending_in_a_newline() {
        assert_eq!(parse_list(b""), Some(vec![]));
        assert_eq!(parse_list(b"4\n17\n"), Some(vec![4, 17]));
        assert_eq!(parse_list(b"4\n17"), None);
        assert_eq!(parse_list(b"4\n\n"), None);
        assert_eq!(parse_list(b"x\n"), None);
    }
}
