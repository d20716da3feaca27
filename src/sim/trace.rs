//! The trace hash: every simulated event is folded into one 64-bit value, so two runs of the
//! same seed can be compared cheaply (the determinism self-check).

/// An order-sensitive running hash of the event trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceHash {
    state: u64,
    events: u64,
}

impl Default for TraceHash {
    fn default() -> Self {
        Self::new()
    }
}

impl TraceHash {
    /// An empty trace.
    pub fn new() -> Self {
        Self {
            state: 0xCBF2_9CE4_8422_2325,
            events: 0,
        }
    }

    /// Folds one event, described by a tag and a few words, into the trace.
    pub fn event(&mut self, tag: u8, words: &[u64]) {
        self.events += 1;
        self.word(u64::from(tag) | (self.events << 8));
        for word in words {
            self.word(*word);
        }
    }

    fn word(&mut self, word: u64) {
        // FNV-style multiply per 64-bit word, then a rotation so that low bits spread.
        self.state = (self.state ^ word).wrapping_mul(0x0000_0100_0000_01B3);
        self.state = self.state.rotate_left(29) ^ (self.state >> 17);
    }

    /// The hash of everything folded so far.
    pub fn value(&self) -> u64 {
        self.state
    }

    /// How many events were folded.
    pub fn events(&self) -> u64 {
        self.events
    }
}

#[cfg(test)]
mod tests {
    use super::TraceHash;

    #[test]
    fn order_and_content_change_the_hash() {
        let mut a = TraceHash::new();
        a.event(1, &[1, 2]);
        a.event(2, &[3]);
        let mut b = TraceHash::new();
        b.event(2, &[3]);
        b.event(1, &[1, 2]);
        let mut c = TraceHash::new();
        c.event(1, &[1, 2]);
        c.event(2, &[3]);
        assert_ne!(a.value(), b.value());
        assert_eq!(a, c);
        let mut d = c.clone();
        d.event(0, &[]);
        assert_ne!(c.value(), d.value());
    }
}
