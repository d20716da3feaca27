//! The simulated network: per-message drop, delay, duplication and reordering (by random
//! delay), plus link cuts that model symmetric partitions and one-way (asymmetric) cuts.

use super::rng::SimRng;

/// Fault rates and delays of the simulated network. Times are simulated milliseconds.
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    /// Shortest one-way delay.
    pub delay_ms_min: u64,
    /// Longest ordinary one-way delay.
    pub delay_ms_max: u64,
    /// Probability (per million messages) that a message is lost.
    pub drop_per_million: u32,
    /// Probability (per million messages) that a message is delivered twice.
    pub duplicate_per_million: u32,
    /// Probability (per million messages) that a message is held back for a long delay, which
    /// reorders it behind later traffic.
    pub straggle_per_million: u32,
    /// Longest delay of a held-back message.
    pub straggle_delay_ms_max: u64,
}

impl NetworkConfig {
    /// A hostile network: loss, duplication and heavy reordering.
    pub fn hostile() -> Self {
        Self {
            delay_ms_min: 1,
            delay_ms_max: 8,
            drop_per_million: 30_000,
            duplicate_per_million: 20_000,
            straggle_per_million: 20_000,
            straggle_delay_ms_max: 400,
        }
    }

    /// A healthy network (used once the faults stop): delays only.
    pub fn healthy() -> Self {
        Self {
            delay_ms_min: 1,
            delay_ms_max: 5,
            drop_per_million: 0,
            duplicate_per_million: 0,
            straggle_per_million: 0,
            straggle_delay_ms_max: 0,
        }
    }
}

/// Delivery delays chosen for one message: none (lost), one, or two (duplicated).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Route {
    /// Delay of the first copy, if it is delivered.
    pub first: Option<u64>,
    /// Delay of the duplicate, if any.
    pub duplicate: Option<u64>,
}

/// Link state between `nodes` nodes and the fault model applied to every message.
#[derive(Debug, Clone)]
pub struct Network {
    nodes: usize,
    /// `cut[from * nodes + to]`: messages from `from` to `to` are lost.
    cut: Vec<bool>,
    config: NetworkConfig,
}

impl Network {
    /// A fully connected network of `nodes` nodes.
    pub fn new(nodes: usize, config: NetworkConfig) -> Self {
        Self {
            nodes,
            cut: vec![false; nodes * nodes],
            config,
        }
    }

    /// Replaces the fault model (e.g. healthy once the fault phase ends).
    pub fn set_config(&mut self, config: NetworkConfig) {
        self.config = config;
    }

    /// Cuts the one-way link `from → to`.
    pub fn cut_one_way(&mut self, from: usize, to: usize) {
        if from != to {
            self.cut[from * self.nodes + to] = true;
        }
    }

    /// Splits the nodes into two sides that cannot talk to each other (both directions).
    pub fn partition(&mut self, side_a: &[usize]) {
        for from in 0..self.nodes {
            for to in 0..self.nodes {
                if side_a.contains(&from) != side_a.contains(&to) {
                    self.cut_one_way(from, to);
                }
            }
        }
    }

    /// Restores every link.
    pub fn heal(&mut self) {
        self.cut.iter_mut().for_each(|cut| *cut = false);
    }

    /// `true` when messages from `from` to `to` are currently lost.
    pub fn is_cut(&self, from: usize, to: usize) -> bool {
        self.cut[from * self.nodes + to]
    }

    /// Number of cut one-way links.
    pub fn cut_links(&self) -> usize {
        self.cut.iter().filter(|cut| **cut).count()
    }

    /// Decides the fate of one message sent now from `from` to `to`.
    pub fn route(&self, from: usize, to: usize, rng: &mut SimRng) -> Route {
        let config = &self.config;
        if self.is_cut(from, to) || rng.chance(config.drop_per_million) {
            return Route::default();
        }
        let delay = |rng: &mut SimRng| {
            if rng.chance(config.straggle_per_million) {
                rng.between(config.delay_ms_max, config.straggle_delay_ms_max)
            } else {
                rng.between(config.delay_ms_min, config.delay_ms_max)
            }
        };
        let first = delay(rng);
        let duplicate = if rng.chance(config.duplicate_per_million) {
            Some(delay(rng))
        } else {
            None
        };
        Route {
            first: Some(first),
            duplicate,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Network, NetworkConfig, SimRng};

    #[test]
    fn partitions_cut_both_directions_and_one_way_cuts_only_one() {
        let mut net = Network::new(3, NetworkConfig::healthy());
        let mut rng = SimRng::new(1);
        net.partition(&[0]);
        assert!(net.is_cut(0, 1) && net.is_cut(1, 0) && net.is_cut(2, 0));
        assert!(!net.is_cut(1, 2));
        assert_eq!(net.route(0, 1, &mut rng).first, None);
        net.heal();
        assert_eq!(net.cut_links(), 0);
        net.cut_one_way(1, 2);
        assert!(net.is_cut(1, 2) && !net.is_cut(2, 1));
        assert!(net.route(2, 1, &mut rng).first.is_some());
    }

    #[test]
    fn hostile_network_drops_duplicates_and_delays() {
        let net = Network::new(2, NetworkConfig::hostile());
        let mut rng = SimRng::new(9);
        let routes: Vec<_> = (0..10_000).map(|_| net.route(0, 1, &mut rng)).collect();
        let dropped = routes.iter().filter(|r| r.first.is_none()).count();
        let duplicated = routes.iter().filter(|r| r.duplicate.is_some()).count();
        let straggling = routes.iter().filter(|r| r.first > Some(8)).count();
        assert!(dropped > 100 && duplicated > 100 && straggling > 100);
        let healthy = Network::new(2, NetworkConfig::healthy());
        assert!((0..1_000).all(|_| {
            let r = healthy.route(0, 1, &mut rng);
            r.first.is_some() && r.duplicate.is_none()
        }));
    }
}
