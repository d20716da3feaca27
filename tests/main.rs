//! The one integration-test binary: scripted scenario tests, one module per area.

mod cluster;
mod core;
mod layering;
mod node;
mod node_sim;
mod routing;
mod runtime;
mod shard;
mod sim;
mod transport;
