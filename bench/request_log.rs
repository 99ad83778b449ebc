//! Request log benchmark (issue 6; method and results in docs/benchmarks.md). Not a test:
//! run it with `bench/request-log.sh`, which builds it in release mode and waits for a quiet
//! machine first.
//!
//! 1. Ingest: 100,000 records in batches of 500 through the `request-log` router (auth,
//!    parsing, validation, redaction, truncation, one INSERT per batch) into a fresh local
//!    database whose monthly partitions exist → records/s.
//! 2. The table is filled to 1,000,000 records the same way, then analysed.
//! 3. List: `GET /v1/requests?service=…&status=…` (default page of 50) through the router,
//!    one at a time, random service and status → p50/p90/p99/max, plus EXPLAIN of the SQL.
//!
//! Environment: `BENCH_DATABASE_URL` (a server where a database may be created; default
//! postgres://postgres@127.0.0.1:5432/postgres), `BENCH_CONCURRENCY` (batches in flight, 4),
//! `BENCH_POOL` (connections, 4), `BENCH_QUERIES` (list queries, 2000).

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Body,
    http::{Method, Request, StatusCode},
};
use chrono::{Duration as Days, Utc};
use serde_json::{Value, json};
use shared::{Context, api_keys, auth::Scope, config::Config, events::Metadata, migrations, request_log::partitions};
use tower::ServiceExt;

const SERVICES: usize = 20;
const BATCH: usize = 500;

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// Host CPU ticks (busy, total) and CPU ticks of this process and of every `postgres` process.
struct CpuSample {
    host_busy: u64,
    host_total: u64,
    own: u64,
    postgres: u64,
}

fn proc_ticks(stat: &str) -> u64 {
    // Fields after the `(comm)`: utime is the 14th field of the line, stime the 15th.
    let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

fn sample() -> CpuSample {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let cpu: Vec<u64> =
        stat.lines().next().unwrap_or("").split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    let total: u64 = cpu.iter().sum();
    let idle = cpu.get(3).copied().unwrap_or(0) + cpu.get(4).copied().unwrap_or(0);
    let own = proc_ticks(&std::fs::read_to_string("/proc/self/stat").unwrap_or_default());
    let mut postgres = 0;
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let path = entry.path();
            if std::fs::read_to_string(path.join("comm")).is_ok_and(|c| c.trim() == "postgres") {
                postgres += proc_ticks(&std::fs::read_to_string(path.join("stat")).unwrap_or_default());
            }
        }
    }
    CpuSample { host_busy: total - idle, host_total: total, own, postgres }
}

/// "host X% busy (of all cores): bench Y%, postgres Z%, other W%" between two samples.
fn cpu_report(a: &CpuSample, b: &CpuSample) -> String {
    let total = (b.host_total - a.host_total).max(1) as f64;
    let pct = |ticks: u64| 100.0 * ticks as f64 / total;
    let busy = b.host_busy - a.host_busy;
    let own = b.own - a.own;
    let pg = b.postgres.saturating_sub(a.postgres);
    format!(
        "host {:.0}% busy (of all cores): bench process {:.0}%, postgres {:.0}%, other {:.0}%",
        pct(busy),
        pct(own),
        pct(pg),
        pct(busy.saturating_sub(own + pg))
    )
}

fn record(i: usize, now: chrono::DateTime<Utc>) -> Value {
    // Deterministic spread: 20 services, 80% 200s, the rest 201/404/500/503; bodies of a
    // few hundred bytes with a secret to redact in some of them.
    let status = match i % 20 {
        0 => 404,
        1 => 500,
        2 => 201,
        3 if i % 40 == 3 => 503,
        _ => 200,
    };
    let at = now - Days::milliseconds(((i as i64).wrapping_mul(7919)) % (25 * 86_400_000));
    json!({
        "timestamp": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "service": format!("svc-{:02}", i % SERVICES),
        "endpoint": format!("/v1/items/{}", i % 50),
        "method": if i.is_multiple_of(3) { "POST" } else { "GET" },
        "status_code": status,
        "duration_ms": (i % 900) as i64,
        "user_identifier": format!("user-{}@example.com", i % 1000),
        "request_id": format!("req-{i}"),
        "request_body": format!("{{\"query\":\"item {i}\",\"page\":{},\"api_key\":\"sk-{i:08}\",\"filters\":{{\"colour\":\"blue\",\"size\":[1,2,3]}}}}", i % 7),
        "response_body": format!("{{\"id\":{i},\"name\":\"Item number {i}\",\"price\":{}.99,\"tags\":[\"a\",\"b\",\"c\"],\"description\":\"{}\"}}", i % 100, "lorem ipsum ".repeat(8)),
    })
}

async fn send(router: &Router, request: Request<Body>) -> StatusCode {
    router.clone().oneshot(request).await.map(|r| r.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// Posts `bodies` with `concurrency` in flight; returns the wall time.
async fn ingest(router: &Router, key: &str, bodies: Vec<Vec<u8>>, concurrency: usize) -> Duration {
    let queue = std::sync::Arc::new(tokio::sync::Mutex::new(bodies));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (router, key, queue) = (router.clone(), key.to_owned(), queue.clone());
            tokio::spawn(async move {
                loop {
                    let Some(body) = queue.lock().await.pop() else { break };
                    let request = Request::builder()
                        .method(Method::POST)
                        .uri("/v1/requests")
                        .header("authorization", format!("Bearer {key}"))
                        .header("content-type", "application/json")
                        .body(Body::from(body))
                        .unwrap();
                    let status = send(&router, request).await;
                    assert_eq!(status, StatusCode::ACCEPTED, "ingest failed");
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    started.elapsed()
}

fn batches(from: usize, to: usize, now: chrono::DateTime<Utc>) -> Vec<Vec<u8>> {
    (from..to)
        .step_by(BATCH)
        .map(|start| {
            let records: Vec<Value> = (start..(start + BATCH).min(to)).map(|i| record(i, now)).collect();
            serde_json::to_vec(&json!({"records": records})).unwrap()
        })
        .collect()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let server = env("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres");
    let concurrency: usize = env("BENCH_CONCURRENCY", "4").parse()?;
    let pool = env("BENCH_POOL", "4");
    let queries: usize = env("BENCH_QUERIES", "2000").parse()?;
    let db_name = "kl_bench_request_log";
    let (admin, conn) = tokio_postgres::connect(&server, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {db_name} WITH (FORCE); CREATE DATABASE {db_name}")).await?;
    let (prefix, _) = server.rsplit_once('/').ok_or_else(|| anyhow::anyhow!("BENCH_DATABASE_URL needs a database"))?;
    let url = format!("{prefix}/{db_name}");
    {
        let (mut client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        migrations::up(&mut client).await?;
    }
    let vars: HashMap<&str, String> = HashMap::from([
        ("DATABASE_URL", url.clone()),
        ("DB_POOL_MAX", pool.clone()),
        ("LOG_FORMAT", "pretty".into()),
        ("DB_STATEMENT_TIMEOUT_MS", "120000".into()),
    ]);
    let ctx = Context::new(Config::from_lookup(|n| vars.get(n).cloned())?, "bench");
    let now = Utc::now();
    // Partitions for the last 25 days and ahead, as the daily schedule keeps them.
    partitions::upkeep(ctx.db(), now - Days::days(31), 90).await?;
    partitions::upkeep(ctx.db(), now, 90).await?;
    let key = api_keys::create(
        &ctx,
        api_keys::NewApiKey { name: "bench".into(), scopes: vec![Scope::RequestsWrite, Scope::RequestsRead] },
        &Metadata::system("bench"),
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?
    .key;
    let router = request_log::router(ctx.clone());

    println!("request log benchmark: batches of {BATCH}, {concurrency} in flight, pool {pool}, database {db_name}");
    // Warm-up: connections, caches, the allocator (its records count towards the million).
    let warm = 10_000;
    ingest(&router, &key, batches(0, warm, now), concurrency).await;

    let n = 100_000;
    let bodies = batches(warm, warm + n, now);
    let bytes: usize = bodies.iter().map(Vec::len).sum();
    let before = sample();
    let took = ingest(&router, &key, bodies, concurrency).await;
    let after = sample();
    println!(
        "ingest: {n} records ({:.1} MB of JSON) in {:.2} s = {:.0} records/s ({:.1} ms per batch of {BATCH} per worker)",
        bytes as f64 / 1e6,
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64(),
        took.as_secs_f64() * 1000.0 * concurrency as f64 / (n / BATCH) as f64
    );
    println!("  cpu during ingest: {}", cpu_report(&before, &after));

    let total = 1_000_000;
    let fill_started = Instant::now();
    let mut done = warm + n;
    while done < total {
        let next = (done + 100_000).min(total);
        ingest(&router, &key, batches(done, next, now), concurrency).await;
        done = next;
    }
    println!("fill to {total} records: {:.1} s", fill_started.elapsed().as_secs_f64());
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    client.batch_execute("VACUUM ANALYZE request_log").await?;
    let stored: i64 = client.query_one("SELECT count(*) FROM request_log", &[]).await?.get(0);
    let in_default: i64 = client.query_one("SELECT count(*) FROM request_log_default", &[]).await?.get(0);
    println!("stored: {stored} records ({in_default} in the default partition)");

    let explain = client
        .query(
            "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT id, occurred_at, received_at, service, endpoint, method, \
             status_code, duration_ms, user_identifier, request_id, request_body_truncated, response_body_truncated \
             FROM request_log WHERE service = 'svc-07' AND status_code = 503 ORDER BY occurred_at DESC, id DESC LIMIT 51",
            &[],
        )
        .await?;
    println!("EXPLAIN service + status (rare status 503):");
    for row in explain {
        println!("    {}", row.get::<_, String>(0));
    }

    let statuses = [200, 404, 500, 503, 201];
    let mut latencies = Vec::with_capacity(queries);
    let mut items = 0usize;
    let before = sample();
    for q in 0..queries + 100 {
        let service = format!("svc-{:02}", (q * 7) % SERVICES);
        let status = statuses[q % statuses.len()];
        let request = Request::builder()
            .uri(format!("/v1/requests?service={service}&status={status}"))
            .header("authorization", format!("Bearer {key}"))
            .body(Body::empty())
            .unwrap();
        let started = Instant::now();
        let response = router.clone().oneshot(request).await?;
        let status_code = response.status();
        let body = http_body_util::BodyExt::collect(response.into_body()).await?.to_bytes();
        let elapsed = started.elapsed();
        assert_eq!(status_code, StatusCode::OK);
        if q >= 100 {
            latencies.push(elapsed);
            items += serde_json::from_slice::<Value>(&body)?["items"].as_array().map_or(0, Vec::len);
        }
    }
    let after = sample();
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "list service+status over {stored} records: {queries} queries (after 100 warm-up), {:.1} items/page: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        items as f64 / queries as f64,
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.90)),
        ms(percentile(&latencies, 0.99)),
        ms(*latencies.last().unwrap_or(&Duration::ZERO)),
    );
    println!("  cpu during queries: {}", cpu_report(&before, &after));
    drop(client);
    if env("BENCH_KEEP", "0") != "1" {
        admin.batch_execute(&format!("DROP DATABASE IF EXISTS {db_name} WITH (FORCE)")).await?;
    }
    Ok(())
}
