//! The scheduled refresh (DESIGN §6.5): every `active` or `refresh_failing` connection whose
//! token expires within the window (or whose refresh token has been idle too long, with
//! keep-alive on) is refreshed, with bounded concurrency, before the Lambda deadline.
//!
//! Owns candidate selection, the concurrency bound, the deadline rule and the run summary
//! (returned, logged, and emitted as CloudWatch Embedded Metric Format). Each refresh is
//! [`connections::refresh`] with `SKIP LOCKED`: a connection another invocation or an inline
//! fetch holds is skipped, and one refreshed since this run started is skipped after its
//! lock is taken, so no connection is ever refreshed twice. Backoff after transient failures
//! is the `next_attempt_at` the failure recorded; a dead grant leaves the candidates for good.

use std::time::{Duration, Instant};

use chrono::Utc;
use futures::StreamExt;
use serde::Serialize;
use serde_json::json;
use tokio_postgres::types::Type;

use crate::{
    connections::{self, ConnectionId, LockMode, RefreshOutcome, RefreshRequest, Trigger},
    context::Context,
    http::cause_chain,
    oauth::Provider,
};

/// Most candidates one run takes; the rest wait for the next run.
pub const MAX_CANDIDATES: i64 = 50_000;
/// Time kept in reserve after the last provider call may have ended, to record and answer.
pub const DEADLINE_RESERVE: Duration = Duration::from_millis(500);

/// What one run did (DESIGN §6.5), plus `deferred`: candidates left for the next run
/// because the deadline came near.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Connections selected as due.
    pub candidates: usize,
    /// Refreshed successfully.
    pub refreshed: usize,
    /// Failed transiently (recorded as TokenRefreshFailed) or could not be attempted.
    pub failed: usize,
    /// Found with a dead grant (recorded as ReauthorizationRequired).
    pub reauthorization_required: usize,
    /// Held by another refresher, or already refreshed by somebody else.
    pub skipped: usize,
    /// Not started before the deadline; the next run picks them up.
    pub deferred: usize,
    /// Wall time of the run.
    pub duration_ms: u64,
}

impl Summary {
    /// One CloudWatch Embedded Metric Format line with the same counts, for alarms.
    pub fn emf(&self, function: &str) -> String {
        let names = ["Candidates", "Refreshed", "Failed", "ReauthorizationRequired", "Skipped", "Deferred"];
        let mut metrics: Vec<serde_json::Value> = names.iter().map(|n| json!({"Name": n, "Unit": "Count"})).collect();
        metrics.push(json!({"Name": "DurationMs", "Unit": "Milliseconds"}));
        json!({
            "_aws": {
                "Timestamp": Utc::now().timestamp_millis(),
                "CloudWatchMetrics": [{"Namespace": "keyledger", "Dimensions": [["Function"]], "Metrics": metrics}],
            },
            "Function": function,
            "Candidates": self.candidates,
            "Refreshed": self.refreshed,
            "Failed": self.failed,
            "ReauthorizationRequired": self.reauthorization_required,
            "Skipped": self.skipped,
            "Deferred": self.deferred,
            "DurationMs": self.duration_ms,
        })
        .to_string()
    }
}

const CANDIDATES: &str = "
SELECT connection_id FROM connections
WHERE status IN ('active', 'refresh_failing')
  AND (next_attempt_at IS NULL OR next_attempt_at <= now())
  AND ((refresh_token IS NOT NULL
        AND (expires_at <= now() + make_interval(secs => $1)
             OR ($2::float8 IS NOT NULL
                 AND (refresh_token_used_at IS NULL OR refresh_token_used_at <= now() - make_interval(secs => $2)))))
       -- A client-credentials connection is renewed with the client's credentials (§6.14).
       OR (grant_type = 'client_credentials' AND expires_at <= now() + make_interval(secs => $1)))
ORDER BY expires_at NULLS LAST, connection_id
LIMIT $3";

enum Tally {
    Refreshed,
    Failed,
    Reauthorization,
    Skipped,
    Deferred,
}

/// Runs one scheduled refresh that must be done by `deadline`: no provider call starts
/// later than `deadline - PROVIDER_TIMEOUT - reserve`, so everything in flight is recorded
/// in time and what is left waits for the next run.
pub async fn run(ctx: &Context, provider: &Provider, deadline: Instant) -> Result<Summary, connections::Error> {
    let started = Instant::now();
    let since = Utc::now();
    let config = ctx.config();
    let window = config.refresh_window.as_secs_f64();
    let keepalive = config.refresh_keepalive.map(|d| d.as_secs_f64());
    let rows = ctx
        .db()
        .query(CANDIDATES, &[(&window, Type::FLOAT8), (&keepalive, Type::FLOAT8), (&MAX_CANDIDATES, Type::INT8)])
        .await?;
    let ids: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    let cutoff = deadline.checked_sub(config.provider_timeout + DEADLINE_RESERVE).unwrap_or(started);
    let metadata = ctx.system_metadata();
    let tallies: Vec<Tally> = futures::stream::iter(ids.iter())
        .map(|raw| {
            let metadata = &metadata;
            async move {
                if Instant::now() >= cutoff {
                    return Tally::Deferred;
                }
                let Ok(id) = ConnectionId::parse(raw) else { return Tally::Skipped };
                let request = RefreshRequest {
                    connection_id: &id,
                    trigger: Trigger::Scheduled,
                    lock: LockMode::SkipLocked,
                    since,
                    metadata,
                };
                match connections::refresh(ctx, provider, request).await {
                    Ok(RefreshOutcome::Refreshed(_)) => Tally::Refreshed,
                    Ok(RefreshOutcome::Failed { .. }) => Tally::Failed,
                    Ok(RefreshOutcome::ReauthorizationRequired) => Tally::Reauthorization,
                    Ok(_) => Tally::Skipped,
                    Err(e) => {
                        tracing::error!(connection_id = %id, error = %cause_chain(&e), "scheduled refresh could not run");
                        Tally::Failed
                    }
                }
            }
        })
        .buffer_unordered(config.refresh_concurrency)
        .collect()
        .await;
    let mut summary = Summary { candidates: ids.len(), ..Summary::default() };
    for tally in tallies {
        match tally {
            Tally::Refreshed => summary.refreshed += 1,
            Tally::Failed => summary.failed += 1,
            Tally::Reauthorization => summary.reauthorization_required += 1,
            Tally::Skipped => summary.skipped += 1,
            Tally::Deferred => summary.deferred += 1,
        }
    }
    summary.duration_ms = started.elapsed().as_millis() as u64;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_names_every_count() {
        let s = Summary { candidates: 3, refreshed: 2, failed: 1, duration_ms: 40, ..Summary::default() };
        let line: serde_json::Value = serde_json::from_str(&s.emf("token-refresh")).unwrap();
        assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Namespace"], "keyledger");
        assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Metrics"].as_array().unwrap().len(), 7);
        assert_eq!(line["Refreshed"], 2);
        assert_eq!(line["Function"], "token-refresh");
        assert!(line["_aws"]["Timestamp"].is_i64());
    }
}
