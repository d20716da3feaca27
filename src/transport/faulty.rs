//! A fault-injecting wrapper around any [`Transport`], for tests: each message is dropped,
//! duplicated, delayed or reordered with seeded probabilities, and links can be cut
//! symmetrically or one way.
//!
//! One [`FaultInjector`] serves a whole test network (all nodes' [`FaultyTransport`]s share
//! it), so cuts are described once, by node pair. Delays need a timer: the injector owns one
//! helper thread with a bounded delay queue (`delay_queue_max`; a full queue drops and counts).
//! Reordering is a short random delay of one message, so later messages overtake it.
//! Decisions come from one seeded PRNG: a seed gives the same decisions for the same sequence
//! of sends (thread interleaving still varies between runs). Membership calls pass through,
//! and are lost with the drop probability (answered `Unreachable`).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::core::rng::SplitMix64;
use crate::core::{Message, NodeId};
use crate::shard::Transport;
use crate::shard::membership::{CallError, CallReply, MembershipCall};
use crate::shard::transport::PeerSetError;

/// Fault probabilities (per million messages) and bounds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultRates {
    /// Probability a message is lost.
    pub drop_per_million: u32,
    /// Probability a message is delivered twice.
    pub duplicate_per_million: u32,
    /// Probability a message is delayed by up to `delay_ms_max`.
    pub delay_per_million: u32,
    /// Longest injected delay, in milliseconds.
    pub delay_ms_max: u64,
    /// Probability a message is held back 1–3 ms so that later ones overtake it.
    pub reorder_per_million: u32,
}

/// Counts of injected faults (a test asserts faults actually happened).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Messages dropped by chance.
    pub dropped: u64,
    /// Messages dropped by a cut link.
    pub cut: u64,
    /// Messages duplicated.
    pub duplicated: u64,
    /// Messages delayed (including reorders).
    pub delayed: u64,
    /// Delayed messages dropped because the delay queue was full.
    pub delay_queue_overflow: u64,
    /// Membership calls lost by chance (answered `Unreachable`).
    pub calls_dropped: u64,
}

struct Delayed {
    due: Instant,
    seq: u64,
    inner: Arc<dyn Transport>,
    to: NodeId,
    message: Message,
}

impl PartialEq for Delayed {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl Eq for Delayed {}
impl PartialOrd for Delayed {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Delayed {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due, self.seq).cmp(&(other.due, other.seq))
    }
}

struct FaultState {
    rng: SplitMix64,
    rates: FaultRates,
    /// Directed links that carry nothing: (from, to).
    cuts: HashSet<(NodeId, NodeId)>,
    queue: BinaryHeap<Reverse<Delayed>>,
    seq: u64,
    counts: FaultCounts,
}

struct FaultShared {
    state: Mutex<FaultState>,
    wake: Condvar,
    stop: AtomicBool,
    delay_queue_max: usize,
    sent: AtomicU64,
}

impl FaultShared {
    fn lock(&self) -> MutexGuard<'_, FaultState> {
        // A panic while holding the lock leaves plain data; keep injecting.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The fault plan of one test network, shared by its [`FaultyTransport`]s.
pub struct FaultInjector {
    shared: Arc<FaultShared>,
    timer: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for FaultInjector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultInjector")
            .field("counts", &self.counts())
            .finish_non_exhaustive()
    }
}

impl FaultInjector {
    /// A fault plan with no faults yet, seeded, with at most `delay_queue_max` delayed
    /// messages held at once.
    ///
    /// # Errors
    ///
    /// The delay timer thread could not be spawned.
    pub fn new(seed: u64, delay_queue_max: usize) -> std::io::Result<Arc<Self>> {
        let shared = Arc::new(FaultShared {
            state: Mutex::new(FaultState {
                rng: SplitMix64::new(seed),
                rates: FaultRates::default(),
                cuts: HashSet::new(),
                queue: BinaryHeap::new(),
                seq: 0,
                counts: FaultCounts::default(),
            }),
            wake: Condvar::new(),
            stop: AtomicBool::new(false),
            delay_queue_max,
            sent: AtomicU64::new(0),
        });
        let timer_shared = Arc::clone(&shared);
        let timer = std::thread::Builder::new()
            .name("fault-delay".into())
            .spawn(move || run_timer(&timer_shared))?;
        Ok(Arc::new(Self {
            shared,
            timer: Mutex::new(Some(timer)),
        }))
    }

    /// Wraps node `from`'s transport.
    #[must_use]
    pub fn wrap(self: &Arc<Self>, from: NodeId, inner: Arc<dyn Transport>) -> Arc<FaultyTransport> {
        Arc::new(FaultyTransport {
            from,
            inner,
            injector: Arc::clone(self),
        })
    }

    /// Sets the fault probabilities.
    pub fn set_rates(&self, rates: FaultRates) {
        self.shared.lock().rates = rates;
    }

    /// Cuts the link between `a` and `b` in both directions.
    pub fn cut(&self, a: NodeId, b: NodeId) {
        let mut state = self.shared.lock();
        state.cuts.insert((a, b));
        state.cuts.insert((b, a));
    }

    /// Cuts the link from `from` to `to` only (`to` still reaches `from`).
    pub fn cut_one_way(&self, from: NodeId, to: NodeId) {
        self.shared.lock().cuts.insert((from, to));
    }

    /// Isolates `node` from every node in `others`, both directions.
    pub fn isolate(&self, node: NodeId, others: &[NodeId]) {
        for &other in others {
            if other != node {
                self.cut(node, other);
            }
        }
    }

    /// Restores every link and sets every probability to zero.
    pub fn heal(&self) {
        let mut state = self.shared.lock();
        state.cuts.clear();
        state.rates = FaultRates::default();
    }

    /// Faults injected so far.
    #[must_use]
    pub fn counts(&self) -> FaultCounts {
        self.shared.lock().counts
    }

    /// Messages that went through the injector (before faults).
    #[must_use]
    pub fn messages_seen(&self) -> u64 {
        self.shared.sent.load(Ordering::Relaxed)
    }
}

impl Drop for FaultInjector {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.wake.notify_all();
        let timer = self
            .timer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(timer) = timer {
            let _ = timer.join();
        }
    }
}

fn run_timer(shared: &FaultShared) {
    let mut state = shared.lock();
    loop {
        if shared.stop.load(Ordering::Acquire) {
            return;
        }
        let now = Instant::now();
        let due = match state.queue.peek() {
            Some(Reverse(first)) if first.due <= now => state.queue.pop(),
            _ => None,
        };
        if let Some(Reverse(delayed)) = due {
            // Send outside the lock: the inner transport may call into a node.
            drop(state);
            delayed.inner.send(delayed.to, vec![delayed.message]);
            state = shared.lock();
            continue;
        }
        let wait = state
            .queue
            .peek()
            .map_or(Duration::from_millis(50), |Reverse(first)| {
                first.due.saturating_duration_since(now)
            });
        state = shared
            .wake
            .wait_timeout(state, wait)
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .0;
    }
}

/// One node's transport with faults injected by a shared [`FaultInjector`].
pub struct FaultyTransport {
    from: NodeId,
    inner: Arc<dyn Transport>,
    injector: Arc<FaultInjector>,
}

impl std::fmt::Debug for FaultyTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultyTransport")
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

impl Transport for FaultyTransport {
    fn send(&self, to: NodeId, messages: Vec<Message>) {
        let shared = &self.injector.shared;
        shared
            .sent
            .fetch_add(messages.len() as u64, Ordering::Relaxed);
        let mut now_batch = Vec::with_capacity(messages.len());
        let mut wake = false;
        {
            let mut state = shared.lock();
            if state.cuts.contains(&(self.from, to)) {
                state.counts.cut += messages.len() as u64;
                return;
            }
            let rates = state.rates;
            for message in messages {
                if state.rng.chance(rates.drop_per_million) {
                    state.counts.dropped += 1;
                    continue;
                }
                let copies = if state.rng.chance(rates.duplicate_per_million) {
                    state.counts.duplicated += 1;
                    2
                } else {
                    1
                };
                for _ in 0..copies {
                    let message = message.clone();
                    let delay_ms = if state.rng.chance(rates.delay_per_million) {
                        Some(state.rng.below_or_equal(rates.delay_ms_max))
                    } else if state.rng.chance(rates.reorder_per_million) {
                        Some(1 + state.rng.below_or_equal(2))
                    } else {
                        None
                    };
                    match delay_ms {
                        None => now_batch.push(message),
                        Some(_) if state.queue.len() >= shared.delay_queue_max => {
                            state.counts.delay_queue_overflow += 1;
                        }
                        Some(ms) => {
                            state.counts.delayed += 1;
                            state.seq += 1;
                            let seq = state.seq;
                            state.queue.push(Reverse(Delayed {
                                due: Instant::now() + Duration::from_millis(ms),
                                seq,
                                inner: Arc::clone(&self.inner),
                                to,
                                message,
                            }));
                            wake = true;
                        }
                    }
                }
            }
        }
        if wake {
            shared.wake.notify_one();
        }
        if !now_batch.is_empty() {
            self.inner.send(to, now_batch);
        }
    }

    /// The wrapped transport's: faults apply to messages, not to the peer set.
    fn set_peers(&self, peers: &BTreeMap<NodeId, String>) -> Result<(), PeerSetError> {
        self.inner.set_peers(peers)
    }

    /// The wrapped transport's, except that a call is lost with the drop probability: it is
    /// answered [`CallError::Unreachable`] at once and counted (`calls_dropped`). Cuts do not
    /// apply: they name node pairs, and a call names an endpoint.
    fn call(&self, endpoint: &str, call: MembershipCall, reply: CallReply) {
        let lost = {
            let mut state = self.injector.shared.lock();
            let rate = state.rates.drop_per_million;
            let lost = state.rng.chance(rate);
            state.counts.calls_dropped += u64::from(lost);
            lost
        };
        if lost {
            let _ = reply.send(Err(CallError::Unreachable {
                endpoint: endpoint.to_owned(),
                reason: "lost by the fault injector".to_owned(),
            }));
            return;
        }
        self.inner.call(endpoint, call, reply);
    }
}
