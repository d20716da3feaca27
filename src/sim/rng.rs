//! The simulator's seeded pseudo-random generator.
//!
//! Built on the crate's own SplitMix64 (`core::rng`) rather than a `rand` generator on purpose:
//! a seed printed by a failing run must replay the same trace forever, and this stream cannot
//! change under us with a dependency upgrade. Statistical quality is more than enough for fault
//! scheduling.

use crate::core::rng::SplitMix64;

/// How long a simulated durable write takes: between `min_ms` and `max_ms`, or, with
/// probability `slow_per_million / 1_000_000` (a stalled disk), between `max_ms` and
/// `slow_max_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskLatency {
    /// Shortest durable write.
    pub min_ms: u64,
    /// Longest ordinary durable write.
    pub max_ms: u64,
    /// Probability that a durable write is slow.
    pub slow_per_million: u32,
    /// Longest slow write.
    pub slow_max_ms: u64,
}

/// A small, fast, deterministic generator (SplitMix64). Same seed, same stream.
#[derive(Debug, Clone)]
pub struct SimRng {
    inner: SplitMix64,
}

impl SimRng {
    /// A generator whose stream is fully determined by `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            inner: SplitMix64::new(seed),
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.inner.next_u64()
    }

    /// A uniform value in `0..bound` (`0` when `bound` is `0`).
    pub fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            return 0;
        }
        // Multiply-shift: unbiased enough for simulation and free of division.
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }

    /// A uniform value in `low..=high` (`low` when `high < low`).
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        if high <= low {
            return low;
        }
        low + self.below(high - low + 1)
    }

    /// A uniform index into a slice of `len` elements.
    pub fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    /// `true` with probability `per_million / 1_000_000`.
    pub fn chance(&mut self, per_million: u32) -> bool {
        self.below(1_000_000) < u64::from(per_million)
    }

    /// A durable write's latency under `disk`.
    pub fn latency(&mut self, disk: &DiskLatency) -> u64 {
        if self.chance(disk.slow_per_million) {
            self.between(disk.max_ms, disk.slow_max_ms)
        } else {
            self.between(disk.min_ms, disk.max_ms)
        }
    }

    /// A child generator for an independent stream (per node, per component), so that adding
    /// draws in one component does not shift every other component's stream.
    pub fn fork(&mut self) -> Self {
        Self::new(self.next_u64())
    }
}

#[cfg(test)]
mod tests {
    use super::SimRng;

    #[test]
    fn same_seed_same_stream_different_seed_different_stream() {
        let mut a = SimRng::new(7);
        let mut b = SimRng::new(7);
        let mut c = SimRng::new(8);
        let xs: Vec<u64> = (0..16).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..16).map(|_| b.next_u64()).collect();
        let zs: Vec<u64> = (0..16).map(|_| c.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
    }

    #[test]
    fn bounded_draws_stay_in_range_and_cover_it() {
        let mut rng = SimRng::new(1);
        let mut seen = [false; 10];
        for _ in 0..1_000 {
            let v = rng.between(5, 14);
            assert!((5..=14).contains(&v));
            seen[(v - 5) as usize] = true;
        }
        assert!(seen.iter().all(|s| *s));
        assert_eq!(rng.below(0), 0);
        assert_eq!(rng.between(3, 3), 3);
    }

    #[test]
    fn chance_is_roughly_calibrated() {
        let mut rng = SimRng::new(3);
        let hits = (0..100_000).filter(|_| rng.chance(250_000)).count();
        assert!((23_000..27_000).contains(&hits), "hits {hits}");
    }
}
