//! The node layer: everything one process needs beside the shards — the hybrid logical clock
//! (and, as the runtime lands, configuration, routing, membership and events).

pub mod hlc;

pub use hlc::{ClockDriftError, HlcTimestamp, HybridLogicalClock, PhysicalClock, SystemClock};
