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
/// The shortest provider call worth starting in a run shorter than the provider timeout.
pub const MIN_PROVIDER_CALL: Duration = Duration::from_secs(1);

/// How long the provider call for the next candidate may take, or `None`: defer it.
///
/// The invariant: a call that starts can end (by its own timeout) [`DEADLINE_RESERVE`]
/// before the deadline, so its outcome is always recorded and a token the provider issued
/// is never dropped. A run long enough for full calls (`full_calls`: the whole run had the
/// provider timeout plus the reserve) starts them while one still fits and then defers the
/// rest, so a slow provider near the end is deferred, not failed. A shorter run (a local
/// `cargo lambda invoke`, a function configured with a short timeout) refreshes what fits:
/// each call is bounded by the time left, while at least [`MIN_PROVIDER_CALL`] is left.
pub fn call_budget(left: Duration, provider_timeout: Duration, full_calls: bool) -> Option<Duration> {
    let usable = left.checked_sub(DEADLINE_RESERVE)?;
    if full_calls {
        (usable >= provider_timeout).then_some(provider_timeout)
    } else {
        (usable >= MIN_PROVIDER_CALL).then_some(usable.min(provider_timeout))
    }
}

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

/// Due connections. A client's own expiry buffer (`quirks.expiry_buffer_secs`, §6.14: a
/// provider that refuses early refreshes) replaces the window for its connections, as
/// the refresh itself decides, so a buffer longer than the window is not missed and one
/// shorter does not select what would only be skipped. The index on `expires_at` is scanned
/// up to the longest of the window and every client's buffer (an init plan over the few
/// clients that set one); the per-connection bound is then checked on the connection's own
/// copy of its client's buffer (migration 0007, the one the token path reads too).
const CANDIDATES: &str = "
SELECT c.connection_id FROM connections c
WHERE c.status IN ('active', 'refresh_failing')
  AND (c.next_attempt_at IS NULL OR c.next_attempt_at <= now())
  AND ((c.expires_at <= now() + make_interval(secs => (
            SELECT greatest($1, max((b.quirks->>'expiry_buffer_secs')::float8)) FROM clients b
            WHERE b.quirks ? 'expiry_buffer_secs'))
        AND c.expires_at <= now() + make_interval(secs => coalesce(c.expiry_buffer_secs::float8, $1))
        -- A client-credentials connection is renewed with the client's credentials (§6.14).
        AND (c.refresh_token IS NOT NULL OR c.grant_type = 'client_credentials'))
       OR (c.refresh_token IS NOT NULL AND $2::float8 IS NOT NULL
           AND (c.refresh_token_used_at IS NULL OR c.refresh_token_used_at <= now() - make_interval(secs => $2))))
ORDER BY c.expires_at NULLS LAST, c.connection_id
LIMIT $3";

enum Tally {
    Refreshed,
    Failed,
    Reauthorization,
    Skipped,
    Deferred,
}

/// Runs one scheduled refresh that must be done by `deadline`: each provider call starts
/// only when it can end before the deadline ([`call_budget`]), so everything in flight is
/// recorded in time and what is left waits for the next run.
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
    let full_calls = deadline.saturating_duration_since(started) >= config.provider_timeout + DEADLINE_RESERVE;
    let metadata = ctx.system_metadata();
    let tallies: Vec<Tally> = futures::stream::iter(ids.iter())
        .map(|raw| {
            let metadata = &metadata;
            async move {
                let left = deadline.saturating_duration_since(Instant::now());
                let Some(limit) = call_budget(left, config.provider_timeout, full_calls) else {
                    return Tally::Deferred;
                };
                let bounded;
                let provider = if limit < config.provider_timeout {
                    bounded = provider.with_call_timeout(limit);
                    &bounded
                } else {
                    provider
                };
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
    fn a_call_starts_only_when_it_can_end_before_the_deadline() {
        let timeout = Duration::from_secs(10);
        let s = Duration::from_secs;
        // A full-length run: full calls while they fit, then deferral.
        assert_eq!(call_budget(s(120), timeout, true), Some(timeout));
        assert_eq!(call_budget(timeout + DEADLINE_RESERVE, timeout, true), Some(timeout));
        assert_eq!(call_budget(s(10), timeout, true), None);
        // A short run (3 s left of the whole): what fits, bounded by the time left.
        assert_eq!(call_budget(s(3), timeout, false), Some(s(3) - DEADLINE_RESERVE));
        assert_eq!(call_budget(s(60), timeout, false), Some(timeout));
        assert_eq!(call_budget(MIN_PROVIDER_CALL + DEADLINE_RESERVE, timeout, false), Some(MIN_PROVIDER_CALL));
        assert_eq!(call_budget(s(1), timeout, false), None);
        assert_eq!(call_budget(Duration::ZERO, timeout, false), None);
        // Never beyond the deadline: the budget plus the reserve fits in what is left.
        for ms in (0..15_000).step_by(250) {
            let left = Duration::from_millis(ms);
            for full in [true, false] {
                if let Some(b) = call_budget(left, timeout, full) {
                    assert!(b + DEADLINE_RESERVE <= left && b <= timeout, "{ms} ms, full {full}: {b:?}");
                }
            }
        }
    }

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
