//! The hybrid logical clock: one per node, shared by every partition and every thread.
//!
//! A timestamp is `(physical milliseconds, logical counter, node id)`. The clock's state
//! `(L, C)` is packed into one `AtomicU64` (L in the high 42 bits, C in the low 22 bits) and
//! advanced by compare-and-swap, so reading a new timestamp never takes a lock or allocates, and
//! two threads can never be handed the same timestamp: each successful CAS installs a value
//! strictly greater than the one it replaced.
//!
//! Tickets of proposals and the stamps on frames come from this clock: every frame a node sends
//! to a peer (each batch of messages, each handshake frame) carries the sender's
//! [`HybridLogicalClock::now`], and the receiver merges it with [`HybridLogicalClock::update`]
//! before it hands the frame's messages on, so a node's clock is past every timestamp it heard
//! of (see `docs/decisions/0005-iraft-parity.md` §10 for why that makes tickets unique).
//! It sits below the shards and the transports (a leaf of the layers, naming nothing else of
//! the crate): the node builds it, and its inbound side hands it to the transport.
//!
//! Election and heartbeat timing never comes from it (they count monotonic ticks), so a peer
//! with a skewed wall clock cannot freeze anyone's timeouts; a remote timestamp further ahead
//! of the local wall clock than [`HybridLogicalClock::drift_ms_max`] is refused instead of
//! dragging the clock forward (and a stamp from the network can therefore never bring the
//! clock near the end of its 42-bit millisecond range, where `advance` would refuse to go on).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

const LOGICAL_BITS: u32 = 22;
const LOGICAL_MAX: u64 = (1 << LOGICAL_BITS) - 1;
/// The largest physical time the packed state can hold (2^42 ms ≈ year 2109).
const PHYSICAL_MAX: u64 = (1 << (64 - LOGICAL_BITS)) - 1;

/// A hybrid logical clock timestamp. Ordered by physical time, then logical counter, then node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct HlcTimestamp {
    /// Milliseconds since the Unix epoch (the "L" of the HLC paper).
    pub physical_ms: u64,
    /// Events within the same millisecond (the "C" of the HLC paper); below 2^22.
    pub logical: u32,
    /// The node whose clock issued the timestamp; breaks ties between nodes.
    pub node: u32,
}

impl HlcTimestamp {
    /// The timestamp before every other one ("never").
    pub const ZERO: Self = Self {
        physical_ms: 0,
        logical: 0,
        node: 0,
    };

    /// `(physical, logical)` packed into 64 bits, ordered like the timestamps of one node.
    pub fn packed(&self) -> u64 {
        (self.physical_ms.min(PHYSICAL_MAX) << LOGICAL_BITS)
            | (u64::from(self.logical) & LOGICAL_MAX)
    }

    /// The timestamp of `node` whose packed `(physical, logical)` is `packed`.
    pub fn from_packed(node: u32, packed: u64) -> Self {
        let (physical_ms, logical) = unpack(packed);
        Self {
            physical_ms,
            logical,
            node,
        }
    }

    /// Milliseconds from `earlier` to `self` by physical time (negative if `earlier` is later).
    pub fn millis_since(&self, earlier: HlcTimestamp) -> i128 {
        i128::from(self.physical_ms) - i128::from(earlier.physical_ms)
    }
}

impl Ord for HlcTimestamp {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.physical_ms, self.logical, self.node).cmp(&(
            other.physical_ms,
            other.logical,
            other.node,
        ))
    }
}

impl PartialOrd for HlcTimestamp {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for HlcTimestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "HLC({}:{}:{})",
            self.node, self.physical_ms, self.logical
        )
    }
}

/// The wall clock an HLC follows. Tests substitute a manual one.
pub trait PhysicalClock: Send + Sync {
    /// Milliseconds since the Unix epoch. May jump backwards; the HLC stays monotonic anyway.
    fn now_ms(&self) -> u64;
}

/// The operating system's real-time clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl PhysicalClock for SystemClock {
    fn now_ms(&self) -> u64 {
        // A wall clock set before 1970 reads as 0: the HLC then runs on its logical counter.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

/// A shared physical clock (a test keeps one handle to set the time, the HLC the other).
impl<T: PhysicalClock + ?Sized> PhysicalClock for Arc<T> {
    fn now_ms(&self) -> u64 {
        (**self).now_ms()
    }
}

/// A remote timestamp was further ahead of the local wall clock than the clock accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "remote timestamp {remote} is {ahead_ms} ms ahead of the local wall clock \
     (the limit, hlc_drift_ms_max, is {drift_ms_max} ms)"
)]
pub struct ClockDriftError {
    /// The refused timestamp.
    pub remote: HlcTimestamp,
    /// How far ahead of the local wall clock it was.
    pub ahead_ms: u64,
    /// The configured limit.
    pub drift_ms_max: u64,
}

/// A lock-free hybrid logical clock (Kulkarni et al., 2014) for one node.
///
/// `Send + Sync`: share it behind an `Arc`; every method takes `&self`.
pub struct HybridLogicalClock {
    node: u32,
    drift_ms_max: u64,
    state: AtomicU64,
    physical: Box<dyn PhysicalClock>,
}

impl HybridLogicalClock {
    /// A clock for `node` following the system clock, refusing remote timestamps more than
    /// `drift_ms_max` milliseconds ahead of it.
    pub fn new(node: u32, drift_ms_max: u64) -> Self {
        Self::with_clock(node, drift_ms_max, SystemClock)
    }

    /// A clock for `node` following `physical` (a test's manual clock, a simulated one).
    pub fn with_clock(
        node: u32,
        drift_ms_max: u64,
        physical: impl PhysicalClock + 'static,
    ) -> Self {
        Self {
            node,
            drift_ms_max,
            state: AtomicU64::new(0),
            physical: Box::new(physical),
        }
    }

    /// The node this clock stamps its timestamps with.
    pub fn node(&self) -> u32 {
        self.node
    }

    /// The largest lead over the local wall clock a remote timestamp may have.
    pub fn drift_ms_max(&self) -> u64 {
        self.drift_ms_max
    }

    /// A new timestamp for a local or send event: greater than every timestamp this clock has
    /// issued or received, and unique even when many threads call at once.
    pub fn now(&self) -> HlcTimestamp {
        self.advance(|last| {
            let wall = self.wall();
            let (l, c) = unpack(last);
            if wall > l { pack(wall, 0) } else { tick(l, c) }
        })
    }

    /// Merges a timestamp received from another node (a receive event) and returns the new
    /// local timestamp, which is greater than both `remote` and everything issued before.
    ///
    /// # Errors
    /// [`ClockDriftError`] if `remote` is more than [`Self::drift_ms_max`] ahead of the local
    /// wall clock; the clock is then unchanged.
    pub fn update(&self, remote: HlcTimestamp) -> Result<HlcTimestamp, ClockDriftError> {
        let wall = self.wall();
        let ahead_ms = remote.physical_ms.saturating_sub(wall);
        if ahead_ms > self.drift_ms_max {
            return Err(ClockDriftError {
                remote,
                ahead_ms,
                drift_ms_max: self.drift_ms_max,
            });
        }
        let (rl, rc) = unpack(remote.packed());
        Ok(self.advance(|last| {
            let wall = self.wall();
            let (l, c) = unpack(last);
            let top = wall.max(l).max(rl);
            match (top == l, top == rl) {
                (true, true) => tick(l, c.max(rc)),
                (true, false) => tick(l, c),
                (false, true) => tick(rl, rc),
                (false, false) => pack(wall, 0),
            }
        }))
    }

    /// The latest timestamp issued or merged (without advancing the clock).
    pub fn last(&self) -> HlcTimestamp {
        HlcTimestamp::from_packed(self.node, self.state.load(Ordering::Acquire))
    }

    fn wall(&self) -> u64 {
        self.physical.now_ms().min(PHYSICAL_MAX)
    }

    /// Installs `next(last)` by compare-and-swap, retrying on contention. `next` always returns
    /// a value strictly greater than its argument, so every caller gets a distinct timestamp.
    fn advance(&self, next: impl Fn(u64) -> u64) -> HlcTimestamp {
        let mut last = self.state.load(Ordering::Acquire);
        loop {
            let candidate = next(last);
            assert!(candidate > last, "the HLC must move forward");
            match self.state.compare_exchange_weak(
                last,
                candidate,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return HlcTimestamp::from_packed(self.node, candidate),
                Err(actual) => last = actual,
            }
        }
    }
}

impl fmt::Debug for HybridLogicalClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HybridLogicalClock")
            .field("node", &self.node)
            .field("last", &self.last())
            .finish()
    }
}

fn pack(physical_ms: u64, logical: u64) -> u64 {
    (physical_ms << LOGICAL_BITS) | logical
}

fn unpack(packed: u64) -> (u64, u32) {
    // The mask keeps the counter below 2^22, so the cast is lossless.
    (packed >> LOGICAL_BITS, (packed & LOGICAL_MAX) as u32)
}

/// The successor of `(l, c)`: the counter plus one, or the next millisecond when the counter
/// is full. At the very end of time the state saturates and the `assert!` in `advance` fires
/// rather than issuing a duplicate (unreachable before the year 2109).
fn tick(l: u64, c: u32) -> u64 {
    if u64::from(c) < LOGICAL_MAX {
        pack(l, u64::from(c) + 1)
    } else {
        pack((l + 1).min(PHYSICAL_MAX), 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicU64;

    /// A wall clock the test sets by hand.
    #[derive(Default)]
    struct ManualClock(AtomicU64);

    impl ManualClock {
        fn set(&self, ms: u64) {
            self.0.store(ms, Ordering::SeqCst);
        }
    }

    impl PhysicalClock for ManualClock {
        fn now_ms(&self) -> u64 {
            self.0.load(Ordering::SeqCst)
        }
    }

    fn manual(node: u32, start_ms: u64) -> (HybridLogicalClock, Arc<ManualClock>) {
        let wall = Arc::new(ManualClock::default());
        wall.set(start_ms);
        (
            HybridLogicalClock::with_clock(node, 1_000, wall.clone()),
            wall,
        )
    }

    #[test]
    fn follows_the_wall_clock_and_counts_within_a_millisecond() {
        let (clock, wall) = manual(7, 1_000);
        assert_eq!(
            clock.now(),
            HlcTimestamp {
                physical_ms: 1_000,
                logical: 0,
                node: 7
            }
        );
        assert_eq!(
            clock.now(),
            HlcTimestamp {
                physical_ms: 1_000,
                logical: 1,
                node: 7
            }
        );
        wall.set(1_005);
        assert_eq!(
            clock.now(),
            HlcTimestamp {
                physical_ms: 1_005,
                logical: 0,
                node: 7
            }
        );
    }

    #[test]
    fn stays_monotonic_when_the_wall_clock_jumps_back() {
        let (clock, wall) = manual(1, 50_000);
        let before = clock.now();
        wall.set(10);
        let after = clock.now();
        assert!(after > before);
        assert_eq!(after.physical_ms, 50_000);
    }

    #[test]
    fn receive_event_moves_past_the_remote_timestamp() {
        let (clock, _wall) = manual(1, 1_000);
        clock.now();
        let remote = HlcTimestamp {
            physical_ms: 1_500,
            logical: 9,
            node: 2,
        };
        let merged = clock.update(remote).expect("within drift");
        assert_eq!(
            (merged.physical_ms, merged.logical, merged.node),
            (1_500, 10, 1)
        );
        assert!(clock.now() > merged);
        // Equal physical parts: the larger counter wins, plus one.
        let same = HlcTimestamp {
            physical_ms: 1_500,
            logical: 3,
            node: 2,
        };
        assert_eq!(clock.update(same).expect("within drift").logical, 12);
    }

    #[test]
    fn refuses_a_remote_timestamp_beyond_the_drift_limit_and_stays_unchanged() {
        let (clock, _wall) = manual(1, 1_000);
        let before = clock.now();
        let remote = HlcTimestamp {
            physical_ms: 3_000,
            logical: 0,
            node: 2,
        };
        let err = clock
            .update(remote)
            .expect_err("2 s ahead with a 1 s limit");
        assert_eq!(err.ahead_ms, 2_000);
        assert!(err.to_string().contains("hlc_drift_ms_max"));
        assert_eq!(clock.last(), before);
    }

    #[test]
    fn counter_overflow_rolls_into_the_next_millisecond() {
        let (clock, _wall) = manual(1, 1_000);
        let full = HlcTimestamp {
            physical_ms: 1_000,
            logical: LOGICAL_MAX as u32,
            node: 2,
        };
        let merged = clock.update(full).expect("within drift");
        assert_eq!((merged.physical_ms, merged.logical), (1_001, 0));
    }

    #[test]
    fn packing_round_trips_and_orders_like_timestamps() {
        let a = HlcTimestamp {
            physical_ms: 1_700_000_000_000,
            logical: 5,
            node: 3,
        };
        let b = HlcTimestamp {
            physical_ms: 1_700_000_000_000,
            logical: 6,
            node: 1,
        };
        assert_eq!(HlcTimestamp::from_packed(3, a.packed()), a);
        assert!(a < b && a.packed() < b.packed());
        assert_eq!(b.millis_since(a), 0);
        assert_eq!(a.to_string(), "HLC(3:1700000000000:5)");
    }

    #[test]
    fn unique_and_increasing_under_concurrency() {
        let clock = Arc::new(HybridLogicalClock::new(9, 1_000));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let clock = clock.clone();
                std::thread::spawn(move || {
                    let stamps: Vec<u64> = (0..50_000).map(|_| clock.now().packed()).collect();
                    assert!(stamps.windows(2).all(|w| w[0] < w[1]), "per-thread order");
                    stamps
                })
            })
            .collect();
        let mut all: Vec<u64> = threads
            .into_iter()
            .flat_map(|t| t.join().expect("thread ran"))
            .collect();
        let issued = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), issued, "no timestamp was issued twice");
    }
}
