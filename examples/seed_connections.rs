//! Seeds a benchmark database through the real code path: one OAuth client and N
//! connections (ConnectionAuthorized events with real ciphertexts, applied by the same
//! projection code the functions use), plus an API key with `tokens:read`.
//!
//! `DATABASE_URL=... ENCRYPTION_KEYS=... cargo run --release --example seed_connections -- N OUT_DIR`
//! writes `OUT_DIR/api_key.txt` and `OUT_DIR/connection_ids.txt` (the files the wrk script reads).

use std::{collections::BTreeMap, fmt::Write as _};

use anyhow::Context as _;
use secrecy::SecretString;
use shared::{
    Context, api_keys,
    auth::Scope,
    clients::{self, AuthMethod, NewClient},
    config::Config,
    connections::ConnectionEvent,
    crypto::{Owner, random_token},
    events::{ExpectedVersion, Metadata},
    projections,
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().unwrap_or_else(|| "10000".into()).parse().context("N must be a number")?;
    let out = std::path::PathBuf::from(args.next().unwrap_or_else(|| "bench/out".into()));
    std::fs::create_dir_all(&out)?;
    let ctx = Context::new(Config::from_env()?, "bench-seed");
    let meta = Metadata::system("bench-seed");
    let err = |e: shared::http::ApiError| anyhow::anyhow!("{e}");
    let client = clients::create(
        &ctx,
        NewClient {
            name: "bench".into(),
            authorize_url: "https://provider.invalid/authorize".into(),
            token_url: "https://provider.invalid/token".into(),
            revoke_url: None,
            client_id: "bench".into(),
            client_secret: SecretString::from(random_token::<16>()),
            redirect_uri: "https://keyledger.invalid/oauth/callback".into(),
            scopes: vec!["read".into()],
            auth_method: AuthMethod::ClientSecretPost,
            pkce: true,
            extra_authorize_params: BTreeMap::new(),
            metadata: None,
        },
        &meta,
    )
    .await
    .map_err(err)?;
    let keyring = ctx.keyring().await.map_err(err)?;
    // Tokens a year out: the benchmark measures the warm path, never a refresh.
    let expires_at = chrono::Utc::now() + chrono::Duration::days(365);
    let mut ids = String::new();
    let mut db = ctx.db().get().await?;
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let tx = db.transaction().await?;
        for i in chunk {
            let id = format!("bench-{i:05}");
            let stream = format!("connection-{id}");
            let event = ConnectionEvent::ConnectionAuthorized {
                client_id: client.id,
                access_token: keyring
                    .encrypt(Owner::new(&stream, "access_token"), &format!("at_{}", random_token::<24>())),
                refresh_token: Some(keyring.encrypt(Owner::new(&stream, "refresh_token"), &random_token::<24>())),
                token_type: "Bearer".into(),
                expires_at: Some(expires_at),
                scopes: vec!["read".into()],
                provider_data: serde_json::json!({}),
            };
            projections::record(&tx, &stream, ExpectedVersion::NoStream, &[event], &meta).await?;
            writeln!(ids, "{id}")?;
        }
        tx.commit().await?;
    }
    let key =
        api_keys::create(&ctx, api_keys::NewApiKey { name: "bench".into(), scopes: vec![Scope::TokensRead] }, &meta)
            .await
            .map_err(err)?
            .key;
    std::fs::write(out.join("connection_ids.txt"), ids)?;
    std::fs::write(out.join("api_key.txt"), format!("{key}\n"))?;
    println!("seeded {n} connections into {}", out.display());
    Ok(())
}
