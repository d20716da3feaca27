//! The deterministic cluster simulator: the seed sweep, replay of one seed, determinism and
//! harness sensitivity (every injected bug must be caught).
//!
//! Environment:
//! - `KOMMANDER_SIM_SEEDS` — seeds in the sweep (default 500; the long campaign uses 50 000);
//! - `KOMMANDER_SIM_SEED_START` — first seed of the sweep (default 0);
//! - `KOMMANDER_SIM_WORKERS` — threads running seeds (default 2);
//! - `KOMMANDER_SIM_SEED` (+ `KOMMANDER_SIM_BUG`) — the seed `sim::replay` runs.

mod determinism;
mod linearizability;
mod replay;
mod sensitivity;
mod sweep;

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Reads a numeric environment variable, or `default` when unset.
pub(crate) fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(value) => value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value} is not a number")),
        Err(_) => default,
    }
}

/// Runs `run(seed)` for every seed of `seeds` on `workers` threads, each seed once, and returns
/// the results in seed order. With `stop_early`, workers stop taking new seeds once `run`
/// returned `Err` for some seed (every seed below that one still completes, so the smallest
/// failing seed is reported deterministically).
pub(crate) fn run_seeds<T: Send, E: Send>(
    seeds: std::ops::Range<u64>,
    workers: u64,
    stop_early: bool,
    run: impl Fn(u64) -> Result<T, E> + Sync,
) -> Vec<(u64, Result<T, E>)> {
    let next = AtomicU64::new(seeds.start);
    // Smallest failing seed so far (u64::MAX: none); only set with `stop_early`.
    let failed_at = AtomicU64::new(u64::MAX);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..workers.max(1) {
            scope.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= seeds.end || seed > failed_at.load(Ordering::Relaxed) {
                        break;
                    }
                    let result = run(seed);
                    if result.is_err() && stop_early {
                        failed_at.fetch_min(seed, Ordering::Relaxed);
                    }
                    results
                        .lock()
                        .expect("a worker panicked")
                        .push((seed, result));
                }
            });
        }
    });
    let mut results = results.into_inner().expect("a worker panicked");
    results.sort_by_key(|(seed, _)| *seed);
    results
}
