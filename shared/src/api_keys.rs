//! API keys as an event-sourced stream `apikey-<uuid>` (DESIGN §6.8) and their projection.
//!
//! Owns creating (the plaintext key is returned once and never stored), listing and revoking
//! keys. Only the SHA-256 of a key reaches the events and the `api_keys` table.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_postgres::{Transaction, types::Type};
use uuid::Uuid;

use crate::{
    auth::{KEY_PREFIX, Scope},
    context::Context,
    crypto::{random_token, sha256},
    events::{EventStoreError, ExpectedVersion, Metadata, RecordedEvent},
    http::{ApiError, Page, decode_cursor, encode_cursor, page_limit},
    projections,
};

/// Events of an `apikey-<uuid>` stream.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type")]
pub enum ApiKeyEvent {
    /// A key was created; only its hash is recorded.
    ApiKeyCreated {
        /// Key id.
        id: Uuid,
        /// Operator-chosen name.
        name: String,
        /// Hex SHA-256 of the key.
        key_hash: String,
        /// Granted scopes.
        scopes: Vec<Scope>,
    },
    /// A key was revoked for good.
    ApiKeyRevoked {
        /// Key id.
        id: Uuid,
    },
}

/// The request body of `POST /v1/api-keys`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewApiKey {
    /// 1–100 characters.
    pub name: String,
    /// At least one scope.
    pub scopes: Vec<Scope>,
}

/// An API key as listed (never the key itself).
#[derive(Debug, Serialize)]
pub struct ApiKey {
    /// Key id.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// Scopes.
    pub scopes: Vec<Scope>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// A freshly created key: the only time the plaintext key is shown.
#[derive(Debug, Serialize)]
pub struct CreatedApiKey {
    /// The key's metadata.
    #[serde(flatten)]
    pub api_key: ApiKey,
    /// The key, `kl_…`.
    pub key: String,
}

fn stream(id: Uuid) -> String {
    format!("apikey-{id}")
}

/// Creates a key with a random secret of 192 bits.
pub async fn create(ctx: &Context, new: NewApiKey, metadata: &Metadata) -> Result<CreatedApiKey, ApiError> {
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::invalid_field("name", "name must be 1 to 100 characters"));
    }
    if new.scopes.is_empty() {
        return Err(ApiError::invalid_field("scopes", "at least one scope is required"));
    }
    let mut scopes = new.scopes;
    scopes.sort();
    scopes.dedup();
    let key = format!("{KEY_PREFIX}{}", random_token::<24>());
    let id = Uuid::now_v7();
    let event = ApiKeyEvent::ApiKeyCreated {
        id,
        name: name.to_owned(),
        key_hash: hex::encode(sha256(key.as_bytes())),
        scopes: scopes.clone(),
    };
    let mut client = ctx.db().get().await?;
    let tx = client.transaction().await?;
    let recorded =
        projections::record(&tx, &PROJECTOR, &stream(id), ExpectedVersion::NoStream, &[event], metadata).await?;
    tx.commit().await?;
    Ok(CreatedApiKey {
        api_key: ApiKey { id, name: name.to_owned(), scopes, created_at: recorded[0].recorded_at },
        key,
    })
}

const LIST: &str = "
SELECT id, name, scopes, created_at FROM api_keys
WHERE revoked_at IS NULL AND ($1::uuid IS NULL OR id < $1::uuid)
ORDER BY id DESC LIMIT $2";

/// Unrevoked keys, newest first.
pub async fn list(ctx: &Context, limit: Option<i64>, cursor: Option<&str>) -> Result<Page<ApiKey>, ApiError> {
    let limit = page_limit(limit)?;
    let after: Option<Uuid> = cursor.map(decode_cursor).transpose()?;
    let fetch = limit + 1;
    let rows = ctx.db().query(LIST, &[(&after, Type::UUID), (&fetch, Type::INT8)]).await?;
    let mut items: Vec<ApiKey> = rows
        .iter()
        .map(|r| ApiKey {
            id: r.get(0),
            name: r.get(1),
            scopes: r.get::<_, Vec<String>>(2).iter().filter_map(|s| Scope::parse(s)).collect(),
            created_at: r.get(3),
        })
        .collect();
    let next_cursor = (items.len() as i64 > limit).then(|| {
        items.truncate(limit as usize);
        encode_cursor(&items.last().map(|k| k.id))
    });
    Ok(Page { items, next_cursor })
}

const CURRENT: &str = "SELECT version, revoked_at IS NOT NULL FROM api_keys WHERE id = $1";

/// Revokes a key; 404 `api_key_not_found` for an unknown or already revoked one.
pub async fn revoke(ctx: &Context, id: Uuid, metadata: &Metadata) -> Result<(), ApiError> {
    let mut client = ctx.db().get().await?;
    let tx = client.transaction().await?;
    let row = tx.query_typed(CURRENT, &[(&id, Type::UUID)]).await?;
    let not_found = || ApiError::not_found("api_key_not_found", format!("no API key '{id}'"));
    let Some(row) = row.first() else { return Err(not_found()) };
    if row.get::<_, bool>(1) {
        return Err(not_found());
    }
    let version: i32 = row.get(0);
    projections::record(
        &tx,
        &PROJECTOR,
        &stream(id),
        ExpectedVersion::Exact(version),
        &[ApiKeyEvent::ApiKeyRevoked { id }],
        metadata,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

const INSERT: &str = "
INSERT INTO api_keys (id, name, key_hash, scopes, created_at, version)
VALUES ($1, $2, $3, $4, $5, $6)";
const REVOKE: &str = "UPDATE api_keys SET revoked_at = $2, version = $3 WHERE id = $1";

/// Applies one `apikey-` event to the `api_keys` projection.
pub async fn project(tx: &Transaction<'_>, event: &RecordedEvent) -> Result<(), EventStoreError> {
    match event.decode::<ApiKeyEvent>()? {
        ApiKeyEvent::ApiKeyCreated { id, name, key_hash, scopes } => {
            let hash = hex::decode(&key_hash).map_err(|_| EventStoreError::Payload("key_hash is not hex".into()))?;
            let scopes: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
            tx.query_typed(
                INSERT,
                &[
                    (&id, Type::UUID),
                    (&name, Type::TEXT),
                    (&hash, Type::BYTEA),
                    (&scopes, Type::TEXT_ARRAY),
                    (&event.recorded_at, Type::TIMESTAMPTZ),
                    (&event.version, Type::INT4),
                ],
            )
            .await?;
        }
        ApiKeyEvent::ApiKeyRevoked { id } => {
            tx.query_typed(
                REVOKE,
                &[(&id, Type::UUID), (&event.recorded_at, Type::TIMESTAMPTZ), (&event.version, Type::INT4)],
            )
            .await?;
        }
    }
    Ok(())
}

/// The api_keys projection, as registered with [`projections`].
pub const PROJECTOR: projections::Projector = projections::Projector { kind: "apikey", project: project_boxed };

fn project_boxed<'a>(
    tx: &'a Transaction<'_>,
    event: &'a RecordedEvent,
) -> futures::future::BoxFuture<'a, Result<(), EventStoreError>> {
    Box::pin(project(tx, event))
}
