//! `GET /v1/requests/stats` benchmark (issue 18; method and results in docs/benchmarks.md).
//! Not a test: run it with `bench/request-log-stats.sh`, which builds it in release mode and
//! waits for a quiet machine first.
//!
//! 1. A fresh database with the real migrations and monthly partitions; 1,000,000 records
//!    spread evenly over the last 30 days, inserted with SQL (`generate_series`) straight into
//!    `request_log` — the ingest route is measured by `bench/request_log.rs`, and the stats
//!    route reads only this table. 20 services, 50 endpoints, the status mix of the ingest
//!    bench, durations skewed like real traffic (most fast, a long tail). Then `VACUUM ANALYZE`.
//! 2. Through the complete `request-log` router in process (auth, parsing, the one SQL
//!    statement, JSON), one request at a time, timed from request to collected body:
//!    the latest 24 h (hour buckets), random 24-h windows in the 30 days, the latest 24 h of
//!    one service, and the whole 30 days (day buckets) with and without a service.
//!    p50/p90/p99/max per case, plus `EXPLAIN (ANALYZE, BUFFERS)` of the route's own statement
//!    (`stats::sql`, under its transaction-local settings) for 24 h and 30 days, with and
//!    without a service.
//!
//! Environment: `BENCH_DATABASE_URL` (a server where a database may be created; default
//! postgres://postgres@127.0.0.1:5432/postgres), `BENCH_QUERIES` (per 24-h case, 500),
//! `BENCH_QUERIES_30D` (per 30-day case, 100), `BENCH_POOL` (4), `BENCH_KEEP=1` keeps the
//! database.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Body,
    http::{Request, StatusCode},
};
use chrono::{DateTime, Duration as Span, SecondsFormat, Utc};
use serde_json::Value;
use shared::{
    Context, api_keys,
    auth::Scope,
    config::Config,
    events::Metadata,
    migrations,
    request_log::{partitions, stats},
};
use tokio_postgres::types::{ToSql, Type};
use tower::ServiceExt;

const DB_NAME: &str = "kl_bench_request_log_stats";
const RECORDS: i64 = 1_000_000;
const DAYS: i64 = 30;

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Fills `request_log` with `RECORDS` records evenly over `[now - DAYS, now)`, in chunks.
async fn fill(client: &tokio_postgres::Client, now: DateTime<Utc>) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let span_ms = (DAYS * 86_400_000) as f64;
    let chunk = 100_000;
    for first in (0..RECORDS).step_by(chunk as usize) {
        let last = (first + chunk).min(RECORDS) - 1;
        // i → time (oldest first), service, endpoint, status (80 % 200; 5 % each 201, 404, 500;
        // 2.5 % each 503, 429, by i / 20 so independent of the service), duration: 20–120 ms for
        // most, a tail up to ~5 s for 1 in 50 (deterministic from i).
        client
            .execute(
                "INSERT INTO request_log (id, occurred_at, received_at, service, endpoint, method, status_code,
                                          duration_ms, user_identifier, request_id)
                 SELECT gen_random_uuid(),
                        $1::timestamptz + make_interval(secs => (i * $2::float8 / $3::float8) / 1000.0),
                        now(),
                        'svc-' || lpad((i % 20)::text, 2, '0'),
                        '/v1/items/' || (i % 50),
                        CASE WHEN i % 3 = 0 THEN 'POST' ELSE 'GET' END,
                        CASE (i / 20) % 40 WHEN 0 THEN 201 WHEN 1 THEN 201 WHEN 2 THEN 404 WHEN 3 THEN 404
                             WHEN 4 THEN 500 WHEN 5 THEN 500 WHEN 6 THEN 503 WHEN 7 THEN 429 ELSE 200 END,
                        CASE WHEN (i * 7919) % 50 = 0 THEN 500 + (i * 104729) % 4500
                             ELSE 20 + ((i * 7919) % 101) END,
                        'user-' || (i % 1000) || '@example.com',
                        'req-' || i
                 FROM generate_series($4::int8, $5::int8) AS i",
                &[&(now - Span::days(DAYS)), &span_ms, &(RECORDS as f64), &first, &last],
            )
            .await?;
    }
    Ok(started.elapsed())
}

struct Case {
    name: &'static str,
    queries: usize,
    /// The query string of the i-th request.
    url: Box<dyn Fn(usize) -> String>,
}

async fn run(router: &Router, key: &str, case: &Case) -> anyhow::Result<String> {
    let warmup = 10;
    let mut latencies = Vec::with_capacity(case.queries);
    let mut buckets = 0usize;
    let mut records = 0i64;
    for q in 0..case.queries + warmup {
        let request = Request::builder()
            .uri((case.url)(q))
            .header("authorization", format!("Bearer {key}"))
            .body(Body::empty())?;
        let started = Instant::now();
        let response = router.clone().oneshot(request).await?;
        let status = response.status();
        let body = http_body_util::BodyExt::collect(response.into_body()).await?.to_bytes();
        let elapsed = started.elapsed();
        anyhow::ensure!(status == StatusCode::OK, "{}: {status} {}", case.name, String::from_utf8_lossy(&body));
        if q >= warmup {
            latencies.push(elapsed);
            let json: Value = serde_json::from_slice(&body)?;
            let items = json["items"].as_array().cloned().unwrap_or_default();
            buckets += items.len();
            records += items.iter().map(|i| i["count"].as_i64().unwrap_or(0)).sum::<i64>();
        }
    }
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    Ok(format!(
        "{:<44} {:>4} queries, {:>6.1} buckets and {:>9.0} records per answer: p50 {:>7.2} ms, p90 {:>7.2} ms, p99 {:>7.2} ms, max {:>7.2} ms",
        case.name,
        case.queries,
        buckets as f64 / case.queries as f64,
        records as f64 / case.queries as f64,
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.90)),
        ms(percentile(&latencies, 0.99)),
        ms(*latencies.last().unwrap_or(&Duration::ZERO)),
    ))
}

/// `EXPLAIN (ANALYZE, BUFFERS)` of the route's own statement, under its own settings.
async fn explain(
    client: &mut tokio_postgres::Client,
    title: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    bucket: stats::Bucket,
    service: Option<&str>,
) -> anyhow::Result<()> {
    let (unit, interval) = (bucket.unit(), bucket.interval());
    let sql = format!("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {}", stats::sql(service.is_some(), false));
    let tx = client.transaction().await?;
    tx.query_typed(stats::LOCAL_SETTINGS, &[(&stats::WORK_MEM, Type::TEXT)]).await?;
    let mut params: Vec<(&(dyn ToSql + Sync), Type)> =
        vec![(&unit, Type::TEXT), (&from, Type::TIMESTAMPTZ), (&to, Type::TIMESTAMPTZ), (&interval, Type::TEXT)];
    if let Some(service) = &service {
        params.push((service, Type::TEXT));
    }
    let rows = tx.query_typed(&sql, &params).await?;
    tx.commit().await?;
    println!("EXPLAIN {title}:");
    for row in rows {
        println!("    {}", row.get::<_, String>(0));
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let server = env("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres");
    let queries: usize = env("BENCH_QUERIES", "500").parse()?;
    let queries_30d: usize = env("BENCH_QUERIES_30D", "100").parse()?;
    let pool = env("BENCH_POOL", "4");
    let (admin, conn) = tokio_postgres::connect(&server, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")).await?;
    admin.batch_execute(&format!("CREATE DATABASE {DB_NAME}")).await?;
    let (prefix, _) = server.rsplit_once('/').ok_or_else(|| anyhow::anyhow!("BENCH_DATABASE_URL needs a database"))?;
    let url = format!("{prefix}/{DB_NAME}");
    let (mut client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    migrations::up(&mut client).await?;
    let vars: HashMap<&str, String> = HashMap::from([
        ("DATABASE_URL", url.clone()),
        ("DB_POOL_MAX", pool.clone()),
        ("LOG_FORMAT", "pretty".into()),
        ("DB_STATEMENT_TIMEOUT_MS", "120000".into()),
    ]);
    let ctx = Context::new(Config::from_lookup(|n| vars.get(n).cloned())?, "bench");
    let now = Utc::now();
    // Partitions as the daily schedule keeps them, for every month the 30 days touch.
    partitions::upkeep(ctx.db(), now - Span::days(DAYS + 1), 90).await?;
    partitions::upkeep(ctx.db(), now, 90).await?;
    let key = api_keys::create(
        &ctx,
        api_keys::NewApiKey { name: "bench".into(), scopes: vec![Scope::RequestsRead] },
        &Metadata::system("bench"),
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?
    .key;

    println!("request log stats benchmark: {RECORDS} records over {DAYS} days, pool {pool}, database {DB_NAME}");
    let took = fill(&client, now).await?;
    client.batch_execute("VACUUM ANALYZE request_log").await?;
    let stored: i64 = client.query_one("SELECT count(*) FROM request_log", &[]).await?.get(0);
    let in_default: i64 = client.query_one("SELECT count(*) FROM request_log_default", &[]).await?.get(0);
    let size: String = client
        .query_one("SELECT pg_size_pretty(sum(pg_total_relation_size(inhrelid))) FROM pg_inherits WHERE inhparent = 'request_log'::regclass", &[])
        .await?
        .get(0);
    println!(
        "filled {stored} records in {:.1} s ({in_default} in the default partition; {size} with indexes)",
        took.as_secs_f64()
    );

    let (hour, day) = (stats::Bucket::Hour, stats::Bucket::Day);
    explain(&mut client, "latest 24 h, hour buckets", now - Span::hours(24), now, hour, None).await?;
    explain(&mut client, "latest 24 h of svc-03, hour buckets", now - Span::hours(24), now, hour, Some("svc-03"))
        .await?;
    explain(&mut client, "30 days, day buckets", now - Span::days(DAYS), now, day, None).await?;
    explain(&mut client, "30 days of svc-03, day buckets", now - Span::days(DAYS), now, day, Some("svc-03")).await?;

    let router = request_log::router(ctx.clone());
    let to = now;
    let day_ago = now - Span::hours(24);
    let month_ago = now - Span::days(DAYS);
    let cases = vec![
        Case {
            name: "latest 24 h (hour buckets)",
            queries,
            url: Box::new(move |_| format!("/v1/requests/stats?from={}&to={}", rfc3339(day_ago), rfc3339(to))),
        },
        Case {
            name: "random 24-h windows in the 30 days (hour)",
            queries,
            url: Box::new(move |q| {
                // Deterministic spread over the 29 whole days before `to`, on minute boundaries.
                let back = Span::minutes(((q as i64 * 7919) % (29 * 24 * 60)) + 24 * 60);
                let end = to - back + Span::hours(24);
                format!("/v1/requests/stats?from={}&to={}", rfc3339(end - Span::hours(24)), rfc3339(end))
            }),
        },
        Case {
            name: "latest 24 h of one service (hour)",
            queries,
            url: Box::new(move |q| {
                format!("/v1/requests/stats?service=svc-{:02}&from={}&to={}", q % 20, rfc3339(day_ago), rfc3339(to))
            }),
        },
        Case {
            name: "30 days (day buckets)",
            queries: queries_30d,
            url: Box::new(move |_| format!("/v1/requests/stats?from={}&to={}", rfc3339(month_ago), rfc3339(to))),
        },
        Case {
            name: "30 days of one service (day)",
            queries: queries_30d,
            url: Box::new(move |q| {
                format!("/v1/requests/stats?service=svc-{:02}&from={}&to={}", q % 20, rfc3339(month_ago), rfc3339(to))
            }),
        },
    ];
    for case in &cases {
        println!("{}", run(&router, &key, case).await?);
    }
    drop(client);
    if env("BENCH_KEEP", "0") != "1" {
        admin.batch_execute(&format!("DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")).await?;
    }
    Ok(())
}
