//! The scheduled refresh (DESIGN §6.5) against the fake provider and real PostgreSQL.

use std::time::{Duration, SystemTime};

use axum::http::{Method, StatusCode};
use chrono::Utc;
use serde_json::{Value, json};
use shared::{
    Context,
    connections::ConnectionEvent,
    crypto::Owner,
    events::{ExpectedVersion, Metadata},
    oauth::Provider,
    projections,
};

use crate::{helpers::call, oauth_world::World};

const SCHEDULE_EVENT: &str = include_str!("../fixtures/eventbridge-schedule.json");

/// `n` connections of `client` (prefix `prefix`) whose tokens expire in `expires_in` seconds,
/// recorded through the event store with refresh tokens the fake provider knows.
pub(crate) async fn seed(w: &World, client: &str, prefix: &str, n: usize, expires_in: i64) -> Vec<String> {
    let keyring = w.app.ctx.keyring().await.unwrap();
    let mut db = w.app.ctx.db().get().await.unwrap();
    let tx = db.transaction().await.unwrap();
    let client_id: uuid::Uuid = client.parse().unwrap();
    let mut ids = Vec::new();
    for i in 0..n {
        let id = format!("{prefix}-{i:04}");
        let stream = format!("connection-{id}");
        let (access, refresh) = w.provider.mint();
        let event = ConnectionEvent::ConnectionAuthorized {
            client_id,
            access_token: keyring.encrypt(Owner::new(&stream, "access_token"), &access),
            refresh_token: Some(keyring.encrypt(Owner::new(&stream, "refresh_token"), &refresh)),
            token_type: "Bearer".into(),
            expires_at: Some(Utc::now() + chrono::Duration::seconds(expires_in)),
            scopes: vec!["read".into()],
            provider_data: json!({}),
            tags: None,
            grant: Default::default(),
        };
        projections::record(
            &tx,
            &shared::connections::PROJECTOR,
            &stream,
            ExpectedVersion::NoStream,
            &[event],
            &Metadata::system("test"),
        )
        .await
        .unwrap();
        ids.push(id);
    }
    tx.commit().await.unwrap();
    ids
}

fn provider(ctx: &Context) -> Provider {
    Provider::from_config(ctx.config())
}

async fn invoke(ctx: &Context, within: Duration) -> Value {
    let event: Value = serde_json::from_str(SCHEDULE_EVENT).unwrap();
    token_refresh::handle(ctx, &provider(ctx), &event, SystemTime::now() + within).await.unwrap()
}

/// TokenRefreshed events per connection: every one must be exactly 1.
async fn refreshes_per_connection(w: &World) -> Vec<(String, i64)> {
    w.app
        .client()
        .await
        .query(
            "SELECT stream_id, count(*) FILTER (WHERE type = 'TokenRefreshed') FROM events
             WHERE stream_id LIKE 'connection-%' GROUP BY stream_id ORDER BY stream_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_overlapping_invocations_over_200_due_connections_refresh_each_exactly_once() {
    let w = World::with_vars("client_secret_post", &[("DB_POOL_MAX", "16"), ("REFRESH_CONCURRENCY", "16")]).await;
    let client = w.register("client_secret_post", false).await;
    seed(&w, &client, "due", 200, 120).await;
    seed(&w, &client, "later", 20, 7200).await;
    w.provider.set(|b| b.delay = Duration::from_millis(20));
    let other = w.app.another_context("token-refresh");
    let (a, b) = tokio::join!(invoke(&w.app.ctx, Duration::from_secs(120)), invoke(&other, Duration::from_secs(120)));
    assert_eq!(w.provider.refresh_calls(), 200, "{a} {b}");
    let count = |v: &Value, k: &str| v[k].as_u64().unwrap();
    assert_eq!(count(&a, "refreshed") + count(&b, "refreshed"), 200, "{a} {b}");
    assert_eq!(count(&a, "failed") + count(&b, "failed"), 0);
    assert!(count(&a, "candidates") <= 200 && count(&b, "candidates") <= 200, "tokens expiring later are not due");
    for k in ["candidates", "refreshed", "failed", "reauthorization_required", "skipped", "duration_ms"] {
        assert!(a.get(k).is_some(), "summary lacks {k}: {a}");
    }
    let per = refreshes_per_connection(&w).await;
    assert_eq!(per.iter().filter(|(_, n)| *n == 1).count(), 200);
    assert_eq!(per.iter().filter(|(_, n)| *n > 1).count(), 0, "a connection was refreshed twice");
    let active: i64 = w
        .app
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM connections WHERE status = 'active' AND expires_at > now() + interval '50 minutes'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(active, 220);
    w.assert_replay_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_inline_fetch_and_a_scheduled_run_at_the_same_time_refresh_once() {
    let w = World::new("client_secret_post").await;
    let client = w.register("client_secret_post", false).await;
    seed(&w, &client, "both", 1, 60).await;
    w.provider.set(|b| b.delay = Duration::from_millis(300));
    for order in 0..2 {
        let scheduled = async {
            if order == 1 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            invoke(&w.app.another_context("token-refresh"), Duration::from_secs(60)).await
        };
        let inline = async {
            if order == 0 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            w.token("both-0000").await
        };
        let (summary, token) = tokio::join!(scheduled, inline);
        assert_eq!(token.status, StatusCode::OK, "{}", token.text);
        assert_eq!(w.provider.refresh_calls(), order + 1, "{summary}");
        assert_eq!(token.json["access_token"], *w.provider.issued().iter().rev().nth(1).unwrap());
        // Make it due again for the second round.
        if order == 0 {
            w.app
                .client()
                .await
                .execute("UPDATE connections SET expires_at = now() + interval '60 seconds'", &[])
                .await
                .unwrap();
        }
    }
}

#[tokio::test]
async fn a_short_deadline_stops_taking_work_and_the_next_run_finishes() {
    let w = World::with_vars(
        "client_secret_post",
        &[("REFRESH_CONCURRENCY", "2"), ("PROVIDER_TIMEOUT_MS", "400"), ("DB_POOL_MAX", "4")],
    )
    .await;
    let client = w.register("client_secret_post", false).await;
    seed(&w, &client, "due", 30, 120).await;
    w.provider.set(|b| b.delay = Duration::from_millis(100));
    let started = std::time::Instant::now();
    let first = invoke(&w.app.ctx, Duration::from_millis(1500)).await;
    assert!(started.elapsed() < Duration::from_millis(1500), "the run ended after its deadline: {first}");
    let refreshed = first["refreshed"].as_u64().unwrap();
    let deferred = first["deferred"].as_u64().unwrap();
    assert!(refreshed > 0 && refreshed < 30, "{first}");
    assert_eq!(refreshed + deferred, 30, "{first}");
    assert_eq!(w.provider.refresh_calls() as u64, refreshed, "no call started that was not recorded");
    let second = invoke(&w.app.ctx, Duration::from_secs(60)).await;
    assert_eq!(second["candidates"], json!(deferred));
    assert_eq!(second["refreshed"], json!(deferred));
    assert_eq!(w.provider.refresh_calls(), 30);
    assert!(refreshes_per_connection(&w).await.iter().all(|(_, n)| *n == 1));
}

#[tokio::test]
async fn transient_failures_back_off_and_recover_while_a_dead_grant_is_never_retried() {
    let w = World::new("client_secret_post").await;
    let client = w.register("client_secret_post", false).await;
    seed(&w, &client, "flaky", 2, 120).await;
    w.provider.set(|b| b.fail_status = Some(500));
    let failed = invoke(&w.app.ctx, Duration::from_secs(60)).await;
    assert_eq!((failed["failed"].clone(), failed["refreshed"].clone()), (json!(2), json!(0)), "{failed}");
    assert_eq!(w.status("flaky-0000").await, "refresh_failing");
    let events = call(&w.tokens, Method::GET, "/v1/connections/flaky-0000/events", Some(&w.app.admin_key), None).await;
    assert_eq!(events.json["items"][1]["data"]["trigger"], "scheduled");
    assert_eq!(events.json["items"][1]["data"]["consecutive_failures"], 1);

    // Backoff: the next run does not touch them.
    let backing_off = invoke(&w.app.ctx, Duration::from_secs(60)).await;
    assert_eq!(backing_off["candidates"], 0, "{backing_off}");
    assert_eq!(w.provider.refresh_calls(), 2);

    // Later (time travel on the projection's schedule only), failing again doubles the wait.
    let client_db = w.app.client().await;
    client_db.execute("UPDATE connections SET next_attempt_at = now() - interval '1 second'", &[]).await.unwrap();
    invoke(&w.app.ctx, Duration::from_secs(60)).await;
    let wait: f64 = client_db
        .query_one(
            "SELECT extract(epoch FROM next_attempt_at - last_failed_at)::float8 FROM connections WHERE connection_id = 'flaky-0000'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!((119.0..=121.0).contains(&wait), "second backoff {wait}s");

    // Recovery puts them back to active.
    w.provider.set(|b| b.fail_status = None);
    client_db.execute("UPDATE connections SET next_attempt_at = now() - interval '1 second'", &[]).await.unwrap();
    let recovered = invoke(&w.app.ctx, Duration::from_secs(60)).await;
    assert_eq!(recovered["refreshed"], 2, "{recovered}");
    let conn = call(&w.tokens, Method::GET, "/v1/connections/flaky-0001", Some(&w.app.admin_key), None).await;
    assert_eq!(conn.json["status"], "active");
    assert_eq!(conn.json["consecutive_failures"], 0);

    // A dead grant: recorded once, never retried.
    seed(&w, &client, "dead", 1, 120).await;
    w.provider.forget_refresh_tokens();
    let calls = w.provider.refresh_calls();
    let dead = invoke(&w.app.ctx, Duration::from_secs(60)).await;
    assert_eq!(dead["reauthorization_required"], 1, "{dead}");
    assert_eq!(w.status("dead-0000").await, "reauthorization_required");
    let again = invoke(&w.app.ctx, Duration::from_secs(60)).await;
    assert_eq!(again["candidates"], 0, "{again}");
    assert_eq!(w.provider.refresh_calls(), calls + 1);
}

#[tokio::test]
async fn keep_alive_refreshes_idle_refresh_tokens_only_when_enabled() {
    let w = World::new("client_secret_post").await;
    let client = w.register("client_secret_post", false).await;
    seed(&w, &client, "idle", 1, 7200).await;
    seed(&w, &client, "busy", 1, 7200).await;
    w.app
        .client()
        .await
        .execute(
            "UPDATE connections SET refresh_token_used_at = now() - interval '3 hours' WHERE connection_id = 'idle-0000'",
            &[],
        )
        .await
        .unwrap();
    let off = invoke(&w.app.ctx, Duration::from_secs(60)).await;
    assert_eq!(off["candidates"], 0, "keep-alive is off by default: {off}");
    let keepalive = Context::new(
        crate::helpers::config_from(&{
            let mut vars = w.app.vars.clone();
            vars.insert("REFRESH_KEEPALIVE_HOURS".into(), "2".into());
            vars
        }),
        "token-refresh",
    );
    let on = invoke(&keepalive, Duration::from_secs(60)).await;
    assert_eq!((on["candidates"].clone(), on["refreshed"].clone()), (json!(1), json!(1)), "{on}");
    assert_eq!(w.event_types("connection-idle-0000").await, vec!["ConnectionAuthorized", "TokenRefreshed"]);
    assert_eq!(w.event_types("connection-busy-0000").await, vec!["ConnectionAuthorized"]);
}

#[test]
fn the_schedule_fixture_is_an_eventbridge_scheduled_event() {
    let event: Value = serde_json::from_str(SCHEDULE_EVENT).unwrap();
    assert_eq!(event["detail-type"], "Scheduled Event");
    assert_eq!(event["source"], "aws.events");
}

#[test]
fn the_pool_is_at_least_as_large_as_the_concurrency() {
    let config = crate::helpers::config_from(&std::collections::HashMap::from([
        ("DATABASE_URL".to_owned(), "postgres://x@127.0.0.1/x".to_owned()),
        ("REFRESH_CONCURRENCY".to_owned(), "64".to_owned()),
    ]));
    assert_eq!(token_refresh::configure(config).db_pool_max, 64);
}
