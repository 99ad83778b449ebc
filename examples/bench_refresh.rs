//! Benchmark of the scheduled refresh (docs/benchmarks.md, `bench/refresh.sh`).
//!
//! `bench_refresh provider PORT` serves a fake token endpoint that answers every refresh
//! after `DELAY_MS` (50) and counts the calls (`GET /calls`).
//! `bench_refresh run N TOKEN_URL` seeds N connections due within the window through the
//! event store (real ciphertexts), then runs one scheduled refresh exactly as the
//! `token-refresh` function does and prints the summary, the provider's call count and this
//! process's peak resident memory. Configuration comes from the environment
//! (`DATABASE_URL`, `ENCRYPTION_KEYS`, `REFRESH_CONCURRENCY`, ...).

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use anyhow::Context as _;
use axum::{Router, extract::State, routing::get, routing::post};
use shared::{Context, config::Config, crypto::random_token, events::Metadata, oauth::Provider};

#[path = "common/seed.rs"]
mod seed;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("provider") => provider(args.get(1).context("PORT")?.parse()?).await,
        Some("run") => run(args.get(1).context("N")?.parse()?, args.get(2).context("TOKEN_URL")?).await,
        _ => anyhow::bail!("usage: bench_refresh provider PORT | bench_refresh run N TOKEN_URL"),
    }
}

async fn provider(port: u16) -> anyhow::Result<()> {
    let delay = Duration::from_millis(std::env::var("DELAY_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(50));
    let calls = Arc::new(AtomicU64::new(0));
    let app = Router::new()
        .route(
            "/token",
            post(move |State(calls): State<Arc<AtomicU64>>| async move {
                let n = calls.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(delay).await;
                axum::Json(serde_json::json!({
                    "access_token": format!("at_{n}_{}", random_token::<16>()),
                    "refresh_token": format!("rt_{n}_{}", random_token::<16>()),
                    "token_type": "bearer", "expires_in": 3600, "scope": "read"
                }))
            }),
        )
        .route(
            "/calls",
            get(|State(calls): State<Arc<AtomicU64>>| async move { calls.load(Ordering::Relaxed).to_string() }),
        )
        .with_state(calls);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    axum::serve(listener, app).await?;
    Ok(())
}

/// CPU seconds (user + system) this process has used.
fn cpu_seconds() -> f64 {
    let ticks = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let fields: Vec<u64> = s.rsplit(')').next()?.split_whitespace().filter_map(|f| f.parse().ok()).collect();
            // After the command name: state is not numeric, so utime and stime are 11 and 12 here.
            Some(fields.get(10)? + fields.get(11)?)
        })
        .unwrap_or(0);
    ticks as f64 / 100.0
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

async fn run(n: usize, token_url: &str) -> anyhow::Result<()> {
    let config = token_refresh::configure(Config::from_env()?);
    let ctx = Context::new(config, token_refresh::FUNCTION);
    let meta = Metadata::system("bench-seed");
    let expires_at = chrono::Utc::now() + chrono::Duration::seconds(120);
    seed::connections(&ctx, &meta, n, "due", token_url, expires_at).await?;
    let before_rss = peak_rss_kib();
    let provider = Provider::from_config(ctx.config());
    let event = serde_json::json!({"detail-type": "Scheduled Event", "source": "aws.events", "id": "bench"});
    // A Lambda allows 15 minutes at most; the run must finish well within that.
    let deadline = SystemTime::now() + Duration::from_secs(900);
    let started = Instant::now();
    let cpu_before = cpu_seconds();
    let summary = token_refresh::handle(&ctx, &provider, &event, deadline).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let wall = started.elapsed();
    let cpu = cpu_seconds() - cpu_before;
    let calls: u64 = reqwest::get(token_url.replace("/token", "/calls")).await?.text().await?.parse()?;
    let concurrency = ctx.config().refresh_concurrency as f64;
    let bound = n as f64 * 0.050 / concurrency;
    println!(
        "RESULT connections={n} concurrency={concurrency} wall_s={:.2} bound_s={bound:.2} ratio={:.2} provider_calls={calls} cpu_s={cpu:.2} peak_rss_mib={:.1} rss_after_seed_mib={:.1} summary={summary}",
        wall.as_secs_f64(),
        wall.as_secs_f64() / bound,
        peak_rss_kib() as f64 / 1024.0,
        before_rss as f64 / 1024.0,
    );
    Ok(())
}
