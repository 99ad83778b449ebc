//! Seeding shared by the benchmark examples: one OAuth client and N connections written
//! through the real code path (ConnectionAuthorized events with real ciphertexts, applied
//! by the same projection code the functions use), 500 per transaction.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use shared::{
    Context,
    clients::{self, AuthMethod, NewClient},
    connections::ConnectionEvent,
    crypto::{Owner, random_token},
    events::{ExpectedVersion, Metadata},
    projections,
};

/// Seeds `n` connections named `{prefix}-00000`… of a client whose token endpoint is
/// `token_url`, their tokens (`at_…`) expiring at `expires_at`; returns the connection ids.
pub async fn connections(
    ctx: &Context,
    meta: &Metadata,
    n: usize,
    prefix: &str,
    token_url: &str,
    expires_at: DateTime<Utc>,
) -> anyhow::Result<Vec<String>> {
    let client = clients::create(
        ctx,
        NewClient {
            name: Some("bench".into()),
            preset: None,
            preset_params: None,
            authorize_url: Some("https://provider.invalid/authorize".into()),
            token_url: Some(token_url.into()),
            revoke_url: None,
            client_id: "bench".into(),
            client_secret: SecretString::from(random_token::<16>()),
            redirect_uri: "https://keyledger.invalid/oauth/callback".into(),
            scopes: Some(vec!["read".into()]),
            auth_method: Some(AuthMethod::ClientSecretPost),
            pkce: Some(false),
            extra_authorize_params: Some(BTreeMap::new()),
            metadata: None,
            capture: None,
            grants: None,
            quirks: None,
        },
        meta,
    )
    .await?;
    let keyring = ctx.keyring().await?;
    // SEED_PROVIDER_DATA: captured values every connection carries (e.g. Zoho's
    // `{"api_domain": "https://www.zohoapis.eu"}`); none by default.
    let provider_data: serde_json::Value = match std::env::var("SEED_PROVIDER_DATA") {
        Ok(json) => serde_json::from_str(&json).map_err(|e| anyhow::anyhow!("SEED_PROVIDER_DATA: {e}"))?,
        Err(_) => serde_json::json!({}),
    };
    let ids: Vec<String> = (0..n).map(|i| format!("{prefix}-{i:05}")).collect();
    let mut db = ctx.db().get().await?;
    for chunk in ids.chunks(500) {
        let tx = db.transaction().await?;
        for id in chunk {
            let stream = format!("connection-{id}");
            let event = ConnectionEvent::ConnectionAuthorized {
                client_id: client.id,
                access_token: keyring
                    .encrypt(Owner::new(&stream, "access_token"), &format!("at_{}", random_token::<24>())),
                refresh_token: Some(keyring.encrypt(Owner::new(&stream, "refresh_token"), &random_token::<24>())),
                token_type: "Bearer".into(),
                expires_at: Some(expires_at),
                scopes: vec!["read".into()],
                provider_data: provider_data.clone(),
                tags: None,
                grant: Default::default(),
            };
            projections::record(
                &tx,
                &shared::connections::PROJECTOR,
                &stream,
                ExpectedVersion::NoStream,
                &[event],
                meta,
            )
            .await?;
        }
        tx.commit().await?;
    }
    Ok(ids)
}
