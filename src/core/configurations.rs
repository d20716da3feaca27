//! The configurations a replica's log holds: the one in force at the floor and one per
//! configuration entry above it. The last one governs the replica, committed or not (Raft
//! thesis §4.1); a truncation that removes it brings back the one before.

use super::configuration::Configuration;
use super::types::LogIndex;

/// Invariant: never empty; indices strictly increase; the first one is at or below the log's
/// floor (the configuration in force there), every other one is a configuration entry's index.
#[derive(Debug)]
pub(crate) struct Configurations {
    history: Vec<(LogIndex, Configuration)>,
    /// The last one's index, kept beside the list (read at every membership look and
    /// campaign check without touching the list's memory).
    current_at: LogIndex,
}

impl Configurations {
    /// The configuration `base` in force at `floor`, nothing above it yet.
    pub(crate) fn new(floor: LogIndex, base: Configuration) -> Self {
        Self {
            history: vec![(floor, base)],
            current_at: floor,
        }
    }

    /// The configuration in force: the latest in the log.
    pub(crate) fn current(&self) -> &Configuration {
        // Never empty (see the invariant).
        &self.history[self.history.len() - 1].1
    }

    /// The index of the latest configuration entry (or of the floor, when none is above it).
    pub(crate) fn current_index(&self) -> LogIndex {
        self.current_at
    }

    /// The configuration in force at `index`: the latest at or below it. `None` below the
    /// floor, which this replica no longer knows.
    pub(crate) fn at(&self, index: LogIndex) -> Option<&Configuration> {
        let after = self.history.partition_point(|(at, _)| *at <= index);
        after.checked_sub(1).map(|k| &self.history[k].1)
    }

    /// A configuration entry was appended at `index` (above every one known).
    pub(crate) fn push(&mut self, index: LogIndex, configuration: Configuration) {
        debug_assert!(index > self.current_index(), "configurations in log order");
        self.history.push((index, configuration));
        self.current_at = index;
    }

    /// The log lost every entry from `index` on; returns whether the configuration in force
    /// changed. The floor's configuration is never removed (truncation stays above the commit
    /// index, which is at or above the floor).
    pub(crate) fn truncate_from(&mut self, index: LogIndex) -> bool {
        let before = self.history.len();
        while self.history.len() > 1 && self.history[self.history.len() - 1].0 >= index {
            self.history.pop();
        }
        self.current_at = self.history[self.history.len() - 1].0;
        self.history.len() != before
    }

    /// The log's floor moved to `floor`: the configuration in force there becomes the base and
    /// older ones are forgotten.
    pub(crate) fn compact_to(&mut self, floor: LogIndex) {
        let keep_from = self
            .history
            .partition_point(|(at, _)| *at <= floor)
            .saturating_sub(1);
        self.history.drain(..keep_from);
    }

    /// The log restarts at `floor` with `configuration` in force there (an installed
    /// snapshot); the configuration entries above it that the log keeps stay.
    pub(crate) fn restart_at(&mut self, floor: LogIndex, configuration: Configuration) {
        self.history.retain(|(at, _)| *at > floor);
        self.history.insert(0, (floor, configuration));
        self.current_at = self.history[self.history.len() - 1].0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::NodeId;

    fn config(voters: &[u64]) -> Configuration {
        Configuration::new(voters.iter().copied().map(NodeId).collect(), Vec::new()).expect("valid")
    }

    #[test]
    fn the_latest_governs_and_truncation_brings_back_the_one_before() {
        let mut configs = Configurations::new(LogIndex(0), config(&[1]));
        configs.push(LogIndex(3), config(&[1, 2]));
        configs.push(LogIndex(7), config(&[1, 2, 3]));
        assert_eq!(configs.current(), &config(&[1, 2, 3]));
        assert_eq!(configs.at(LogIndex(5)), Some(&config(&[1, 2])));
        assert!(!configs.truncate_from(LogIndex(8)));
        assert_eq!(configs.current_index(), LogIndex(7));
        assert!(configs.truncate_from(LogIndex(4)));
        assert_eq!(configs.current(), &config(&[1, 2]));
        assert_eq!(configs.current_index(), LogIndex(3));
        assert!(configs.truncate_from(LogIndex(1)));
        assert!(!configs.truncate_from(LogIndex(0)), "the base stays");
        assert_eq!(configs.current(), &config(&[1]));
        assert_eq!(configs.current_index(), LogIndex(0));
    }

    #[test]
    fn compaction_keeps_the_configuration_in_force_at_the_floor() {
        let mut configs = Configurations::new(LogIndex(0), config(&[1]));
        configs.push(LogIndex(3), config(&[1, 2]));
        configs.push(LogIndex(7), config(&[1, 2, 3]));
        configs.compact_to(LogIndex(5));
        assert_eq!(
            configs.at(LogIndex(2)),
            None,
            "below the floor's configuration"
        );
        assert_eq!(configs.at(LogIndex(5)), Some(&config(&[1, 2])));
        assert_eq!(configs.current_index(), LogIndex(7));
        configs.restart_at(LogIndex(9), config(&[4]));
        assert_eq!(configs.current(), &config(&[4]));
        assert_eq!(configs.current_index(), LogIndex(9));
    }
}
