//! API keys as an event-sourced stream `apikey-<uuid>` (DESIGN §6.8) and their projection.
//!
//! Owns creating (the plaintext key is returned once and never stored), listing and revoking
//! keys. Only the SHA-256 of a key reaches the events and the `api_keys` table. Outcomes are
//! [`Error`]s; `http::map::api_keys` answers them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_postgres::types::Type;
use uuid::Uuid;

use crate::{
    auth::{KEY_PREFIX, Scope},
    context::Context,
    crypto::{random_token, sha256},
    db::DbError,
    events::{EventStoreError, Metadata},
    paging::{Page, decode_cursor, encode_cursor, page_limit},
    projections,
};

mod projection;

pub use projection::{PROJECTOR, project};

/// What can go wrong with API keys.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request field is missing or out of range; `detail` never quotes the value.
    #[error("{detail}")]
    InvalidField {
        /// The field at fault.
        field: &'static str,
        /// For people.
        detail: String,
    },
    /// No such key, or it is revoked already.
    #[error("no API key '{0}'")]
    NotFound(Uuid),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The event store refused an append (a concurrent change) or failed.
    #[error(transparent)]
    EventStore(#[from] EventStoreError),
}

impl Error {
    /// A 400 naming `field`.
    fn invalid(field: &'static str, detail: impl Into<String>) -> Self {
        Self::InvalidField { field, detail: detail.into() }
    }
}

/// A refused page request names its field (`limit`, `cursor`), as any other bad field does.
impl From<crate::paging::Error> for Error {
    fn from(e: crate::paging::Error) -> Self {
        Self::invalid(e.field(), e.to_string())
    }
}

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
pub async fn create(ctx: &Context, new: NewApiKey, metadata: &Metadata) -> Result<CreatedApiKey, Error> {
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(Error::invalid("name", "name must be 1 to 100 characters"));
    }
    if new.scopes.is_empty() {
        return Err(Error::invalid("scopes", "at least one scope is required"));
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
    let recorded = projections::create::<_, Error>(ctx.db(), &PROJECTOR, &stream(id), vec![event], metadata).await?;
    Ok(CreatedApiKey {
        api_key: ApiKey { id, name: name.to_owned(), scopes, created_at: recorded[0].recorded_at },
        key,
    })
}

const LIST: &str = include_str!("list.sql");

/// Unrevoked keys, newest first. A stored scope this build does not know is not listed (it
/// grants nothing either).
pub async fn list(ctx: &Context, limit: Option<i64>, cursor: Option<&str>) -> Result<Page<ApiKey>, Error> {
    let limit = page_limit(limit)?;
    let after: Option<Uuid> = cursor.map(decode_cursor).transpose()?;
    let fetch = limit + 1;
    let rows = ctx.db().query(LIST, &[(&after, Type::UUID), (&fetch, Type::INT8)]).await?;
    let mut items: Vec<ApiKey> = rows
        .iter()
        .map(|r| ApiKey {
            id: r.get("id"),
            name: r.get("name"),
            scopes: r.get::<_, Vec<String>>("scopes").iter().filter_map(|s| Scope::parse(s)).collect(),
            created_at: r.get("created_at"),
        })
        .collect();
    let next_cursor = (items.len() as i64 > limit).then(|| {
        items.truncate(limit as usize);
        encode_cursor(&items.last().map(|k| k.id))
    });
    Ok(Page { items, next_cursor })
}

const LOCK: &str = include_str!("lock.sql");

/// Revokes a key; [`Error::NotFound`] for an unknown or already revoked one.
pub async fn revoke(ctx: &Context, id: Uuid, metadata: &Metadata) -> Result<(), Error> {
    projections::update(ctx.db(), &PROJECTOR, &stream(id), LOCK, &[(&id, Type::UUID)], metadata, |row| match row {
        Some(row) if !row.get::<_, bool>("revoked") => Ok(vec![ApiKeyEvent::ApiKeyRevoked { id }]),
        _ => Err(Error::NotFound(id)),
    })
    .await?;
    Ok(())
}
