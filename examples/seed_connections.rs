//! Seeds a benchmark database through the real code path: one OAuth client and N
//! connections (ConnectionAuthorized events with real ciphertexts, applied by the same
//! projection code the functions use), plus an API key with `tokens:read`.
//!
//! `DATABASE_URL=... ENCRYPTION_KEYS=... cargo run --release --example seed_connections -- N OUT_DIR`
//! writes `OUT_DIR/api_key.txt` and `OUT_DIR/connection_ids.txt` (the files the wrk script reads).

use anyhow::Context as _;
use shared::{Context, api_keys, auth::Scope, config::Config, events::Metadata};

#[path = "common/seed.rs"]
mod seed;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().unwrap_or_else(|| "10000".into()).parse().context("N must be a number")?;
    let out = std::path::PathBuf::from(args.next().unwrap_or_else(|| "bench/out".into()));
    std::fs::create_dir_all(&out)?;
    let ctx = Context::new(Config::from_env()?, "bench-seed");
    let meta = Metadata::system("bench-seed");
    // Tokens a year out: the benchmark measures the warm path, never a refresh.
    let expires_at = chrono::Utc::now() + chrono::Duration::days(365);
    let ids = seed::connections(&ctx, &meta, n, "bench", "https://provider.invalid/token", expires_at).await?;
    let key =
        api_keys::create(&ctx, api_keys::NewApiKey { name: "bench".into(), scopes: vec![Scope::TokensRead] }, &meta)
            .await?
            .key;
    std::fs::write(out.join("connection_ids.txt"), ids.iter().map(|id| format!("{id}\n")).collect::<String>())?;
    std::fs::write(out.join("api_key.txt"), format!("{key}\n"))?;
    println!("seeded {n} connections into {}", out.display());
    Ok(())
}
