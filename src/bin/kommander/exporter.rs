//! `kommander node --metrics-listen ADDR`: the library's metrics in Prometheus text format.
//!
//! The exporter's own HTTP listener serves `GET /metrics` (any path answers the same text) on
//! a thread of its own; the library records through the `metrics` facade into the recorder
//! installed here. Install before the node starts (`RaftBuilder::start`): the shards take their metric handles when
//! they start.

use std::net::SocketAddr;

use kommander_raft::metrics;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use tracing::info;

/// Binds `address`, installs the Prometheus recorder as the global one, describes every
/// metric, and logs the address.
///
/// # Errors
///
/// The address cannot be bound, or a recorder is installed already (a message for the log).
pub(crate) fn serve(address: SocketAddr) -> Result<(), String> {
    let mut builder = PrometheusBuilder::new().with_http_listener(address);
    // Histograms with buckets (not summaries): they aggregate across shards and nodes.
    for (name, buckets) in metrics::HISTOGRAM_BUCKETS {
        builder = builder
            .set_buckets_for_metric(Matcher::Full(name.to_owned()), buckets)
            .map_err(|e| format!("metrics buckets of {name}: {e}"))?;
    }
    builder
        .install()
        .map_err(|e| format!("serving metrics on {address}: {e}"))?;
    metrics::describe();
    info!(%address, "serving metrics at http://{address}/metrics");
    Ok(())
}
