//! The leader changes `kommander node` logs at `info`, so that an operator sees a failover
//! happen: one line per partition change, at most `--leader-changes-logged-per-sec` in a
//! second; the changes beyond it are counted and summed up in one line as soon as that second
//! is over (a node that hosts thousands of partitions elects them all at once after a restart).

use std::time::{Duration, Instant};

/// Counts the leader changes logged in the current second.
#[derive(Debug)]
pub(crate) struct LeaderLog {
    per_sec: u32,
    window_start: Instant,
    logged: u32,
    left_out: u32,
}

impl LeaderLog {
    pub(crate) fn new(per_sec: u32, now: Instant) -> Self {
        Self {
            per_sec,
            window_start: now,
            logged: 0,
            left_out: 0,
        }
    }

    /// A change at `now`: whether to log it on its own line (otherwise it is counted).
    pub(crate) fn admit(&mut self, now: Instant) -> bool {
        self.roll(now);
        if self.logged < self.per_sec {
            self.logged += 1;
            true
        } else {
            self.left_out += 1;
            false
        }
    }

    /// The changes left out of a second that is over, once (`None`: nothing to sum up yet).
    pub(crate) fn left_out(&mut self, now: Instant) -> Option<u32> {
        if now.duration_since(self.window_start) < Duration::from_secs(1) || self.left_out == 0 {
            return None;
        }
        Some(std::mem::take(&mut self.left_out))
    }

    /// When the changes left out so far are to be summed up (the end of their second), if
    /// any were left out.
    pub(crate) fn summary_due(&self) -> Option<Instant> {
        (self.left_out > 0).then(|| self.window_start + Duration::from_secs(1))
    }

    /// Starts a new second when the current one is over (its left-out count is kept until
    /// [`LeaderLog::left_out`] takes it).
    fn roll(&mut self, now: Instant) {
        if now.duration_since(self.window_start) >= Duration::from_secs(1) {
            self.window_start = now;
            self.logged = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_the_rate_is_logged_and_the_rest_is_summed_up_after_the_second() {
        let start = Instant::now();
        let mut log = LeaderLog::new(3, start);
        let admitted = (0..10).filter(|_| log.admit(start)).count();
        assert_eq!(admitted, 3);
        assert_eq!(log.left_out(start), None, "the second is not over");
        let due = start + Duration::from_secs(1);
        assert_eq!(log.summary_due(), Some(due), "due when the second ends");
        assert_eq!(log.left_out(due), Some(7));
        assert_eq!(log.summary_due(), None, "nothing left to sum up");
        assert_eq!(log.left_out(due), None, "summed up once");
        assert!(log.admit(due), "a new second");
        assert_eq!(log.summary_due(), None, "nothing was left out of it");
    }
}
