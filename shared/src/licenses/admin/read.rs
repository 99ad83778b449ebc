//! Reading licenses for the operator: one by id (with its key), one by key (without it), and
//! pages of them (never with keys).

use serde::Deserialize;
use tokio_postgres::types::Type;
use uuid::Uuid;

use super::{Find, License, fetch, license_from_row, pepper_hash};
use crate::{
    context::Context,
    licenses::{Error, LicenseKey, LicenseStatus},
    paging::{Page, decode_cursor, encode_cursor, page_limit},
};

const LIST: &str = concat!(include_str!("../sql/license.sql"), include_str!("../sql/license_where_list.sql"));

/// One license with its installations and, revealed, its key (`GET /v1/licenses/{id}`).
pub async fn show(ctx: &Context, id: Uuid) -> Result<License, Error> {
    fetch(ctx, Find::Id(id), true).await?.ok_or(Error::NotFound(id))
}

/// The body of `POST /v1/licenses/lookup`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lookup {
    /// The key to find. A key with characters no key has is looked up like any other and not
    /// found (404), as on the public checks; only an empty or over-long one is a 400.
    #[serde(deserialize_with = "LicenseKey::deserialize_presented")]
    pub license_key: LicenseKey,
}

/// The license a key belongs to, with installations but without the key.
pub async fn lookup(ctx: &Context, key: &LicenseKey) -> Result<License, Error> {
    let hash = pepper_hash(ctx, key).await?;
    fetch(ctx, Find::Hash(hash), false).await?.ok_or(Error::KeyNotFound)
}

/// Filters of `GET /v1/licenses`.
#[derive(Debug, Default, Deserialize)]
pub struct ListFilter {
    /// Holder (case-insensitive, exact).
    pub email: Option<String>,
    /// `active`, `suspended` or `revoked`.
    pub status: Option<LicenseStatus>,
    /// Page size.
    pub limit: Option<i64>,
    /// Where the page starts.
    pub cursor: Option<String>,
}

/// Licenses, newest first, never with their keys.
pub async fn list(ctx: &Context, filter: ListFilter) -> Result<Page<License>, Error> {
    let limit = page_limit(filter.limit)?;
    let after: Option<Uuid> = filter.cursor.as_deref().map(decode_cursor).transpose()?;
    let email = filter.email.as_deref().map(str::trim);
    let status = filter.status.map(LicenseStatus::as_str);
    let fetch = limit + 1;
    let rows = ctx
        .db()
        .query(LIST, &[(&email, Type::TEXT), (&status, Type::TEXT), (&after, Type::UUID), (&fetch, Type::INT8)])
        .await?;
    let mut items: Vec<License> = rows.iter().map(license_from_row).collect::<Result<_, _>>()?;
    let next_cursor = (items.len() as i64 > limit).then(|| {
        items.truncate(limit as usize);
        encode_cursor(&items.last().map(|l| l.id))
    });
    Ok(Page { items, next_cursor })
}
