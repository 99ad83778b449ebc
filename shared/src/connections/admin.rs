//! Status, listing, history and revocation of connections.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_postgres::{Row, types::Type};
use uuid::Uuid;

use super::{
    Connection, ConnectionEvent, ConnectionId, Error, LOCK_WAIT, Locked, PROJECTOR, Status, Tags, decrypt, lock_row,
    stored_grant,
};
use crate::{
    clients,
    context::Context,
    events::{self as event_store, ExpectedVersion, Metadata},
    oauth::{self, Provider},
    paging::{Page, decode_cursor, encode_cursor, page_limit},
    projections,
};

const GET: &str = include_str!("sql/get.sql");
const LIST: &str = include_str!("sql/list.sql");

fn view(row: &Row) -> Result<Connection, Error> {
    Ok(Connection {
        connection_id: row.get("connection_id"),
        client_id: row.get("client_id"),
        status: Status::stored(row.get("status"))?,
        expires_at: row.get("expires_at"),
        last_refreshed_at: row.get("last_refreshed_at"),
        consecutive_failures: row.get("consecutive_failures"),
        last_error: row.get("last_error"),
        scopes: row.get("scopes"),
        provider_data: row.get("provider_data"),
        tags: Tags::stored(row.get("tags"))?,
        grant: stored_grant(row.get("grant_type"))?,
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
    })
}

/// One connection's status.
pub async fn get(ctx: &Context, id: &ConnectionId) -> Result<Connection, Error> {
    let rows = ctx.db().query(GET, &[(&id.as_str(), Type::TEXT)]).await?;
    rows.first().map(view).transpose()?.ok_or_else(|| Error::NotFound(id.to_string()))
}

/// Filters of `GET /v1/connections`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Only this client's connections.
    pub client_id: Option<Uuid>,
    /// Only this status.
    pub status: Option<String>,
    /// Page size.
    pub limit: Option<i64>,
    /// Opaque cursor.
    pub cursor: Option<String>,
    /// Only connections with all these tags (`?tag.<name>=<value>`, see [`split_tag_filters`]).
    #[serde(skip)]
    pub tags: Tags,
}

/// Connections in id order.
pub async fn list(ctx: &Context, params: ListParams) -> Result<Page<Connection>, Error> {
    let limit = page_limit(params.limit)?;
    let status = params
        .status
        .as_deref()
        .map(|s| {
            Status::parse(s).ok_or_else(|| {
                Error::invalid("status", "status must be active, refresh_failing, reauthorization_required or revoked")
            })
        })
        .transpose()?
        .map(Status::as_str);
    let after: Option<String> = params.cursor.as_deref().map(decode_cursor).transpose()?;
    let fetch = limit + 1;
    // Containment (`tags @> {...}`), which the GIN index on tags serves; the keyset on
    // connection_id pages through the matches.
    let tags = (!params.tags.is_empty()).then(|| params.tags.to_json());
    let rows = ctx
        .db()
        .query(
            LIST,
            &[
                (&params.client_id, Type::UUID),
                (&status, Type::TEXT),
                (&after, Type::TEXT),
                (&fetch, Type::INT8),
                (&tags, Type::JSONB),
            ],
        )
        .await?;
    let mut items = rows.iter().map(view).collect::<Result<Vec<_>, _>>()?;
    let next_cursor = (items.len() as i64 > limit).then(|| {
        items.truncate(limit as usize);
        encode_cursor(&items.last().map(|c| c.connection_id.clone()))
    });
    Ok(Page { items, next_cursor })
}

/// The body of `PATCH /v1/connections/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagsPatch {
    /// The connection's new tags (all of them; `{}` removes every tag).
    pub tags: BTreeMap<String, String>,
}

const LOCK_TAGS: &str = include_str!("sql/lock_tags.sql");

/// `PATCH /v1/connections/{id} {"tags"}`: replaces the tags (ConnectionTagsChanged), unless
/// they are the same already; a revoked connection keeps its tags (409).
pub async fn update_tags(
    ctx: &Context,
    id: &ConnectionId,
    patch: TagsPatch,
    metadata: &Metadata,
) -> Result<Connection, Error> {
    let tags = Tags::parse("tags", patch.tags)?;
    let current = get(ctx, id).await?;
    if current.tags != tags {
        let key = id.as_str();
        projections::update(ctx.db(), &PROJECTOR, &id.stream(), LOCK_TAGS, &[(&key, Type::TEXT)], metadata, |row| {
            let row = row.ok_or_else(|| Error::NotFound(id.to_string()))?;
            if Status::stored(row.get("status"))? == Status::Revoked {
                return Err(Error::Revoked(id.clone()));
            }
            Ok(vec![ConnectionEvent::ConnectionTagsChanged { tags }])
        })
        .await?;
    }
    get(ctx, id).await
}

/// One event of a connection's history, without secrets.
#[derive(Debug, Serialize)]
pub struct HistoryItem {
    /// Version in the stream.
    pub version: i32,
    /// Event type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// When it was recorded.
    pub recorded_at: DateTime<Utc>,
    /// Its data, token fields removed.
    pub data: Value,
}

/// Fields that never leave the service, even as ciphertexts.
const SECRET_FIELDS: &[&str] = &["access_token", "refresh_token"];

/// The capture list of the connection's client.
const CLIENT_CAPTURE: &str = include_str!("sql/client_capture.sql");

/// A connection's stream, oldest first, without token fields.
pub async fn history(
    ctx: &Context,
    id: &ConnectionId,
    limit: Option<i64>,
    cursor: Option<&str>,
) -> Result<Page<HistoryItem>, Error> {
    let limit = page_limit(limit)?;
    let after: i32 = cursor.map(decode_cursor).transpose()?.unwrap_or(0);
    let db = ctx.db().get().await?;
    let recorded = event_store::read_stream(&**db, &id.stream(), after, limit + 1).await?;
    if recorded.is_empty() && after == 0 {
        return Err(Error::NotFound(id.to_string()));
    }
    // What the connection's client captures is all history may show of `provider_data`
    // (an old event, or one written under another client, never shows more).
    let capture: Vec<oauth::CapturePath> =
        match db.query_typed(CLIENT_CAPTURE, &[(&id.as_str(), Type::TEXT)]).await?.first() {
            Some(row) => {
                let c = clients::stored_capture(&row.get("capture"))?;
                c.callback.iter().chain(&c.token).filter_map(|f| clients::capture_path(f).ok()).collect()
            }
            None => Vec::new(),
        };
    let mut items: Vec<HistoryItem> = recorded
        .into_iter()
        .map(|e| {
            let data = crate::capture::public_event_data::<ConnectionEvent>(&e, SECRET_FIELDS, &capture);
            HistoryItem { version: e.version, event_type: e.event_type, recorded_at: e.recorded_at, data }
        })
        .collect();
    let next_cursor = (items.len() as i64 > limit).then(|| {
        items.truncate(limit as usize);
        encode_cursor(&items.last().map_or(0, |i| i.version))
    });
    Ok(Page { items, next_cursor })
}

/// Revokes a connection: the provider's `revoke_url` is called when the client has one
/// (best effort; the outcome is recorded), then ConnectionRevoked wipes the tokens from the
/// projection. Revoking a revoked connection changes nothing.
pub async fn revoke(ctx: &Context, provider: &Provider, id: &ConnectionId, metadata: &Metadata) -> Result<(), Error> {
    let keyring = ctx.keyring().await?;
    let mut db = ctx.db().get().await?;
    let tx = db.transaction().await?;
    let rows = lock_row(ctx, &tx, LOCK_WAIT, id).await?;
    let row = rows.first().ok_or_else(|| Error::NotFound(id.to_string()))?;
    let c = Locked::from_row(row, &keyring)?;
    if c.status == Status::Revoked {
        return Ok(());
    }
    let stream_id = id.stream();
    let token = match (&c.refresh_token, &c.token.access_token) {
        (Some(rt), _) => Some((decrypt(&keyring, &stream_id, "refresh_token", rt)?, "refresh_token")),
        (None, Some(at)) => Some((decrypt(&keyring, &stream_id, "access_token", at)?, "access_token")),
        (None, None) => None,
    };
    let (provider_revocation, message) = match (&c.endpoint.revoke_url, token) {
        (Some(url), Some((token, hint))) => match provider.revoke(&c.endpoint, url, &token, hint).await {
            Ok(()) => ("revoked", None),
            Err(e) => {
                tracing::warn!(connection_id = %id, error = %e, "provider revocation failed");
                ("failed", Some(e.to_string()))
            }
        },
        _ => ("not_supported", None),
    };
    let event = ConnectionEvent::ConnectionRevoked { provider_revocation: provider_revocation.to_owned(), message };
    projections::record(&tx, &PROJECTOR, &stream_id, ExpectedVersion::Exact(c.version), &[event], metadata).await?;
    tx.commit().await?;
    Ok(())
}
