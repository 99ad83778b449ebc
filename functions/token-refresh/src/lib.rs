//! The `token-refresh` function (DESIGN §6.5): on each EventBridge schedule event, refresh
//! every connection that is due, before the Lambda deadline. The trigger only: the rules are
//! in `shared::scheduled_refresh`.

use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use shared::{Context, config::Config, oauth::Provider, scheduled_refresh};

/// The function's name, as deployed and as logged.
pub const FUNCTION: &str = "token-refresh";

/// The configuration this function runs with: every concurrent refresh holds one pooled
/// database connection for the length of its provider call, so the pool is at least as
/// large as `REFRESH_CONCURRENCY`.
pub fn configure(mut config: Config) -> Config {
    config.db_pool_max = config.db_pool_max.max(config.refresh_concurrency);
    config
}

/// Handles one schedule event that must be answered by `deadline`; returns the summary,
/// which is also logged and emitted as an Embedded Metric Format line on stdout.
pub async fn handle(
    ctx: &Context,
    provider: &Provider,
    event: &Value,
    deadline: SystemTime,
) -> Result<Value, lambda_runtime::Error> {
    let remaining = deadline.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO);
    let trigger = shared::schedule::Trigger::of(event);
    let event_id = trigger.id();
    let summary = scheduled_refresh::run(ctx, provider, Instant::now() + remaining)
        .await
        .map_err(|e| lambda_runtime::Error::from(shared::http::cause_chain(&e)))?;
    let json = serde_json::to_value(&summary)?;
    tracing::info!(event_id, summary = %json, "scheduled refresh finished");
    println!("{}", summary.emf(FUNCTION));
    Ok(json)
}
