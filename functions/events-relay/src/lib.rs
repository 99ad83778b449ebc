//! The `events-relay` function: on each schedule event, one relay run (`shared::relay`),
//! its summary returned and logged, and the lag and counts emitted as EMF metrics.

use std::time::{Duration, Instant};

use serde_json::Value;
use shared::{
    Context,
    metrics::{self, Metric},
    relay::{self, Publisher},
};

/// The function's name.
pub const FUNCTION: &str = "events-relay";

/// Time kept back from the Lambda deadline to save the position.
pub const SAVE_MARGIN: Duration = Duration::from_secs(3);

/// One invocation: relay until caught up or `deadline`, then report.
pub async fn handle(ctx: &Context, publisher: &impl Publisher, deadline: Instant) -> Result<Value, relay::RelayError> {
    let summary = relay::run(ctx, publisher, deadline).await?;
    tracing::info!(summary = %serde_json::to_string(&summary).unwrap_or_default(), "relay run");
    if !summary.skipped_run {
        metrics::emit(
            FUNCTION,
            &[
                Metric { name: "RelayLagSeconds", value: summary.lag_seconds, unit: "Seconds" },
                Metric { name: "RelayPublished", value: summary.published as f64, unit: "Count" },
                Metric { name: "RelayFailed", value: summary.failed as f64, unit: "Count" },
            ],
        );
    }
    Ok(serde_json::to_value(&summary).unwrap_or_default())
}
