//! The operations behind the client routes: register, read, list, change, delete, and the
//! read of a client with its decrypted secret for talking to the provider.

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tokio_postgres::{Row, types::Type};
use uuid::Uuid;

use super::{
    Error,
    model::{
        AuthMethod, Client, ClientEvent, ClientPatch, ClientSettings, NewClient, ProviderClient, check_secret,
        stored_capture,
    },
    preset,
    projection::PROJECTOR,
    stream,
};
use crate::{
    context::Context,
    crypto::{KeyRing, Owner},
    events::{ExpectedVersion, Metadata},
    outbound,
    paging::{Page, decode_cursor, encode_cursor, page_limit},
    projections,
};

const SECRET_FIELD: &str = "client_secret";

/// The address rule of DESIGN §6.13 for the URLs keyledger calls.
fn check_provider_urls(ctx: &Context, settings: &ClientSettings) -> Result<(), Error> {
    let policy = outbound::OutboundPolicy::from_config(ctx.config());
    for (field, url) in [("token_url", Some(&settings.token_url)), ("revoke_url", settings.revoke_url.as_ref())] {
        if let Some(url) = url {
            outbound::check_url_str(&policy, url)
                .map_err(|e| Error::invalid(field, format!("{field} {}", e.rule())))?;
        }
    }
    Ok(())
}

async fn keyring(ctx: &Context) -> Result<std::sync::Arc<KeyRing>, Error> {
    ctx.keyring().await.map_err(Error::Keys)
}

/// Registers a client.
pub async fn create(ctx: &Context, new: NewClient, metadata: &Metadata) -> Result<Client, Error> {
    let settings = preset::new_settings(&new)?.validate()?;
    check_provider_urls(ctx, &settings)?;
    check_secret(&new.client_secret)?;
    let keyring = keyring(ctx).await?;
    let id = Uuid::now_v7();
    let stream_id = stream(id);
    let client_secret = keyring.encrypt(Owner::new(&stream_id, SECRET_FIELD), new.client_secret.expose_secret());
    let event = ClientEvent::ClientRegistered { id, settings: settings.clone(), client_secret };
    let mut db = ctx.db().get().await?;
    let tx = db.transaction().await?;
    let recorded =
        projections::record(&tx, &PROJECTOR, &stream_id, ExpectedVersion::NoStream, &[event], metadata).await?;
    tx.commit().await?;
    let at = recorded[0].recorded_at;
    Ok(Client { id, settings, created_at: at, updated_at: at })
}

/// A client row as [`from_row`] reads it; each statement adds its `WHERE`.
const BY_ID: &str = concat!(include_str!("sql/client.sql"), include_str!("sql/client_where_id.sql"));
const LOCK: &str = concat!(include_str!("sql/client.sql"), include_str!("sql/client_lock_id.sql"));
const LIST: &str = concat!(include_str!("sql/client.sql"), include_str!("sql/client_where_list.sql"));
const LOCK_VERSION: &str = include_str!("sql/lock_version.sql");
const IN_USE: &str = include_str!("sql/in_use.sql");

fn from_row(row: &Row) -> Result<Client, Error> {
    let auth_method: String = row.get("auth_method");
    let extra: Value = row.get("extra_authorize_params");
    Ok(Client {
        id: row.get("id"),
        settings: ClientSettings {
            name: row.get("name"),
            authorize_url: row.get("authorize_url"),
            token_url: row.get("token_url"),
            revoke_url: row.get("revoke_url"),
            client_id: row.get("client_id"),
            redirect_uri: row.get("redirect_uri"),
            scopes: row.get("scopes"),
            auth_method: AuthMethod::parse(&auth_method)
                .ok_or_else(|| Error::Corrupt(format!("stored auth_method '{auth_method}'")))?,
            pkce: row.get("pkce"),
            extra_authorize_params: serde_json::from_value(extra)
                .map_err(|e| Error::Corrupt(format!("extra_authorize_params: {e}")))?,
            metadata: row.get("metadata"),
            preset: row.get("preset"),
            preset_params: serde_json::from_value(row.get("preset_params"))
                .map_err(|e| Error::Corrupt(format!("preset_params: {e}")))?,
            capture: stored_capture(&row.get("capture"))?,
            grants: serde_json::from_value(row.get("grants")).map_err(|e| Error::Corrupt(format!("grants: {e}")))?,
            quirks: serde_json::from_value(row.get("quirks")).map_err(|e| Error::Corrupt(format!("quirks: {e}")))?,
        },
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
    })
}

/// A client by id; [`Error::NotFound`] for unknown or deleted ones.
pub async fn get(ctx: &Context, id: Uuid) -> Result<Client, Error> {
    let rows = ctx.db().query(BY_ID, &[(&id, Type::UUID)]).await?;
    rows.first().map(from_row).transpose()?.ok_or_else(|| Error::NotFound(id.to_string()))
}

/// A client with its decrypted secret, for an authorization or a token exchange.
pub async fn provider(ctx: &Context, id: Uuid) -> Result<ProviderClient, Error> {
    let rows = ctx.db().query(BY_ID, &[(&id, Type::UUID)]).await?;
    let row = rows.first().ok_or_else(|| Error::NotFound(id.to_string()))?;
    let client = from_row(row)?;
    let keyring = keyring(ctx).await?;
    let client_secret = decrypt_secret(&keyring, id, row.get("client_secret"))?;
    Ok(ProviderClient { id, settings: client.settings, client_secret })
}

/// Decrypts a stored client secret of client `id`.
pub fn decrypt_secret(keyring: &KeyRing, id: Uuid, stored: &str) -> Result<SecretString, Error> {
    keyring
        .decrypt(Owner::new(&stream(id), SECRET_FIELD), stored)
        .map_err(|e| Error::Corrupt(format!("client secret: {e}")))
}

/// Clients, newest first.
pub async fn list(ctx: &Context, limit: Option<i64>, cursor: Option<&str>) -> Result<Page<Client>, Error> {
    let limit = page_limit(limit)?;
    let after: Option<Uuid> = cursor.map(decode_cursor).transpose()?;
    let fetch = limit + 1;
    let rows = ctx.db().query(LIST, &[(&after, Type::UUID), (&fetch, Type::INT8)]).await?;
    let mut items = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
    let next_cursor = (items.len() as i64 > limit).then(|| {
        items.truncate(limit as usize);
        encode_cursor(&items.last().map(|c| c.id))
    });
    Ok(Page { items, next_cursor })
}

/// Changes any field of a client; a new secret is its own event.
pub async fn update(ctx: &Context, id: Uuid, patch: ClientPatch, metadata: &Metadata) -> Result<Client, Error> {
    if let Some(secret) = &patch.client_secret {
        check_secret(secret)?;
    }
    let mut db = ctx.db().get().await?;
    let tx = db.transaction().await?;
    let rows = tx.query_typed(LOCK, &[(&id, Type::UUID)]).await?;
    let row = rows.first().ok_or_else(|| Error::NotFound(id.to_string()))?;
    let current = from_row(row)?;
    let version: i32 = row.get("version");
    let settings = patch.apply(&current.settings)?.validate()?;
    check_provider_urls(ctx, &settings)?;
    let stream_id = stream(id);
    let mut events = Vec::new();
    if settings != current.settings {
        events.push(ClientEvent::ClientUpdated { id, settings: settings.clone() });
    }
    if let Some(secret) = patch.client_secret {
        let keyring = keyring(ctx).await?;
        let client_secret = keyring.encrypt(Owner::new(&stream_id, SECRET_FIELD), secret.expose_secret());
        events.push(ClientEvent::ClientSecretRotated { id, client_secret });
    }
    let recorded =
        projections::record(&tx, &PROJECTOR, &stream_id, ExpectedVersion::Exact(version), &events, metadata).await?;
    tx.commit().await?;
    let updated_at = recorded.last().map_or(current.updated_at, |e| e.recorded_at);
    Ok(Client { id, settings, created_at: current.created_at, updated_at })
}

/// Deletes a client; [`Error::InUse`] while connections that are not revoked use it.
pub async fn delete(ctx: &Context, id: Uuid, metadata: &Metadata) -> Result<(), Error> {
    let mut db = ctx.db().get().await?;
    let tx = db.transaction().await?;
    let rows = tx.query_typed(LOCK_VERSION, &[(&id, Type::UUID)]).await?;
    let version: i32 = rows.first().ok_or_else(|| Error::NotFound(id.to_string()))?.get("version");
    let in_use: i64 = tx.query_typed(IN_USE, &[(&id, Type::UUID)]).await?[0].get("in_use");
    if in_use > 0 {
        return Err(Error::InUse(in_use));
    }
    projections::record(
        &tx,
        &PROJECTOR,
        &stream(id),
        ExpectedVersion::Exact(version),
        &[ClientEvent::ClientDeleted { id }],
        metadata,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
