//! A tiny deterministic PRNG (splitmix64) for the crate's seeded choices (election timeouts,
//! injected network faults): no clock, no OS entropy.

/// splitmix64 (Steele, Lea, Flood 2014): passes BigCrush, one u64 of state.
#[derive(Clone, Debug)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `[low, high)`; `high > low` is required.
    pub(crate) fn range(&mut self, low: u32, high: u32) -> u32 {
        assert!(high > low, "empty range");
        let span = u64::from(high - low);
        // The bias of a modulo over 2^64 is below 2^-32 for any u32 span: negligible here.
        low + u32::try_from(self.next_u64() % span).unwrap_or(0)
    }

    /// True with probability `per_million` / 1 000 000.
    #[cfg(feature = "sim")]
    pub(crate) fn chance(&mut self, per_million: u32) -> bool {
        per_million > 0 && self.next_u64() % 1_000_000 < u64::from(per_million)
    }

    /// Uniform in `0..=max`.
    #[cfg(feature = "sim")]
    pub(crate) fn below_or_equal(&mut self, max: u64) -> u64 {
        self.next_u64() % max.saturating_add(1).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_in_range() {
        let mut a = SplitMix64::new(7);
        let mut b = SplitMix64::new(7);
        for _ in 0..1000 {
            let x = a.range(10, 20);
            assert_eq!(x, b.range(10, 20));
            assert!((10..20).contains(&x));
        }
        assert_ne!(SplitMix64::new(1).next_u64(), SplitMix64::new(2).next_u64());
    }
}
