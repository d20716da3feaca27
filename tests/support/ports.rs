//! Ports for test nodes whose addresses must be known before they start and that bind them
//! again after a restart. Shared by the root tests (`tests/cli`) and `kv/tests` through
//! `#[path]`.
//!
//! The kernel hands the ports of `ip_local_port_range` to every `bind(0)` and to the local end
//! of every outgoing connection. A node's port taken from that range and released by a stop
//! can be given to another node's client listener or to a connection before the node restarts,
//! whose bind then fails with `AddrInUse` (seen in CI: a peer's restart found another node's
//! HTTP listener on its port). These ports come from just below that range, which the kernel
//! never hands out by itself; each is checked free when given and given once per process,
//! starting at an offset drawn from the process id so that concurrent test processes (nextest)
//! walk different ports.

use std::net::TcpListener;
use std::sync::{Mutex, PoisonError};

/// How many ports below the kernel's ephemeral range the picker walks.
const SPAN: u16 = 16_384;

/// The lowest port the picker gives (below it are the privileged, well-known ports).
const FLOOR: u16 = 1_024;

/// Where the picker stands: the span's first port and length (read from `/proc` once), the
/// next offset in it to try and how many were tried.
struct Walk {
    base: u16,
    span: u16,
    offset: u16,
    tried: u16,
}

/// A port below the ephemeral range that was free a moment ago and never given before by
/// this process. Panics (a test setup failure) when every port of the span was tried.
pub(crate) fn free_port() -> u16 {
    static WALK: Mutex<Option<Walk>> = Mutex::new(None);
    let mut walk = WALK.lock().unwrap_or_else(PoisonError::into_inner);
    let walk = walk.get_or_insert_with(|| {
        let (base, span) = span();
        let offset = u16::try_from(std::process::id() % u32::from(span)).unwrap_or(0);
        Walk {
            base,
            span,
            offset,
            tried: 0,
        }
    });
    while walk.tried < walk.span {
        let port = walk.base + walk.offset;
        walk.offset = (walk.offset + 1) % walk.span;
        walk.tried += 1;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!(
        "no free port left in {}..{}",
        walk.base,
        u32::from(walk.base) + u32::from(walk.span)
    );
}

/// The first port of the span and its length: the `SPAN` ports below the ephemeral range's
/// first port (32768 when `/proc` does not say), never below `FLOOR`.
fn span() -> (u16, u16) {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    let base = low.saturating_sub(SPAN).max(FLOOR);
    assert!(
        low > base,
        "the ephemeral range starts at {low}: no port below it to give"
    );
    (base, low - base)
}
