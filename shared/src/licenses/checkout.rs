//! `POST /v1/licenses/checkout` (DESIGN §6.15): a signed offline license file for an active
//! installation of a usable license. The file is a compact JWS (EdDSA, `kid` header) any JOSE
//! library verifies with the JWKS; its `exp` is capped by `LICENSE_FILE_MAX_TTL_SECONDS` and
//! by the license's own expiry. A checkout is a sighting (`last_seen_at`) and an event
//! (`LicenseCheckedOut`, published outbound). The private seed stays in `signing`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_postgres::types::Type;

use super::{
    CheckCode, Entitlements, Error, InstallationId, InstallationSummary, LicenseEvent, LicenseKey, LicenseStatus,
    LicenseSummary, Nonce, PROJECTOR,
    admin::pepper_hash,
    checks::{TOUCH, lock, public_metadata, validate_code},
    stream,
};
use crate::{context::Context, events::ExpectedVersion, projections, signing::SigningKeys};

/// The body of `POST /v1/licenses/checkout` (read with `http::OpenJson`: other fields are
/// ignored unread). `ttl_seconds` is 1 or more; one over the cap is capped.
#[derive(Debug, Deserialize)]
pub struct CheckoutRequest {
    /// The credential.
    #[serde(deserialize_with = "LicenseKey::deserialize_presented")]
    pub license_key: LicenseKey,
    /// The installation asking; it must hold a slot.
    pub installation_id: InstallationId,
    /// Wanted lifetime of the file; capped (default: the cap).
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
    /// Echoed in the answer.
    #[serde(default)]
    pub nonce: Option<Nonce>,
    /// Entitlements the product needs, as for validate.
    #[serde(default)]
    pub entitlements: Option<Entitlements>,
}

/// The claims of a license file.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct LicenseClaims {
    /// `LICENSE_ISSUER`.
    pub iss: String,
    /// The license id.
    pub sub: String,
    /// The installation it was checked out for.
    pub installation_id: String,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Not before (Unix seconds).
    pub nbf: i64,
    /// Expiry (Unix seconds).
    pub exp: i64,
    /// The license's status at checkout.
    pub status: LicenseStatus,
    /// Its slot limit.
    pub max_installations: i32,
    /// What it grants.
    pub entitlements: Vec<String>,
}

/// The answer of a checkout (always 200 for a well-formed request).
#[derive(Debug, Serialize)]
pub struct CheckoutAnswer {
    /// True only for `VALID`.
    pub valid: bool,
    /// The outcome.
    pub code: CheckCode,
    /// The outcome for people.
    pub detail: &'static str,
    /// The JWS, only when valid.
    pub license_file: Option<String>,
    /// The file's `exp`, only when valid.
    pub expires_at: Option<DateTime<Utc>>,
    /// Null for `NOT_FOUND`.
    pub license: Option<LicenseSummary>,
    /// The installation, when it holds a slot.
    pub installation: Option<InstallationSummary>,
    /// Server time.
    pub ts: DateTime<Utc>,
    /// The request's nonce.
    pub nonce: Option<Nonce>,
}

impl CheckoutAnswer {
    fn refused(
        code: CheckCode,
        license: Option<LicenseSummary>,
        installation: Option<InstallationSummary>,
        ts: DateTime<Utc>,
        nonce: Option<Nonce>,
    ) -> Self {
        Self {
            valid: false,
            code,
            detail: code.detail(),
            license_file: None,
            expires_at: None,
            license,
            installation,
            ts,
            nonce,
        }
    }
}

/// The file's expiry: now + the wanted TTL, at most `max_ttl`, never past the license's own
/// expiry.
pub fn file_expiry(
    now: DateTime<Utc>,
    wanted: Option<u64>,
    max_ttl: std::time::Duration,
    license_expires_at: Option<DateTime<Utc>>,
) -> DateTime<Utc> {
    let ttl = wanted.unwrap_or(u64::MAX).min(max_ttl.as_secs());
    let exp = now + chrono::Duration::seconds(i64::try_from(ttl).unwrap_or(i64::MAX).min(i64::from(i32::MAX)));
    license_expires_at.map_or(exp, |end| exp.min(end))
}

/// `POST /v1/licenses/checkout`.
/// `keys` is the ring the handler read before anything else, so the file and the answer's
/// signature come from the same ring and nothing is recorded when it cannot be read.
pub async fn checkout(
    ctx: &Context,
    keys: &SigningKeys,
    request: CheckoutRequest,
    request_id: Option<String>,
) -> Result<CheckoutAnswer, Error> {
    if request.ttl_seconds == Some(0) {
        return Err(Error::invalid("ttl_seconds", "ttl_seconds must be a positive integer"));
    }
    let hash = pepper_hash(ctx, &request.license_key).await?;
    let mut client = ctx.db().get().await?;
    let tx = client.transaction().await?;
    let Some(license) = lock(&tx, &hash).await? else {
        return Ok(CheckoutAnswer::refused(CheckCode::NotFound, None, None, Utc::now(), request.nonce));
    };
    let used = license.slots.len() as i64;
    let installation_id = request.installation_id.as_str();
    let mut installation = license.slot(installation_id);
    let needed = request.entitlements.clone().unwrap_or_default();
    // The same order of codes as validate (checks::validate_code, proven against the SQL).
    let missing = !license.terms.entitlements.missing(&needed).is_empty();
    let code = validate_code(license.terms.status, license.terms.expired, missing, installation.is_some());
    if code != CheckCode::Valid {
        return Ok(CheckoutAnswer::refused(
            code,
            Some(license.summary(used)),
            installation,
            license.now,
            request.nonce,
        ));
    }
    let now = license.now;
    let exp = file_expiry(now, request.ttl_seconds, ctx.config().license_file_max_ttl, license.expires_at);
    // The file counts in whole seconds; the event and the answer say the same instant.
    let exp = DateTime::from_timestamp(exp.timestamp(), 0).unwrap_or(exp);
    let claims = LicenseClaims {
        iss: ctx.config().license_issuer.clone(),
        sub: license.id.to_string(),
        installation_id: installation_id.to_owned(),
        iat: now.timestamp(),
        nbf: now.timestamp(),
        exp: exp.timestamp(),
        status: license.terms.status,
        max_installations: license.terms.max_installations,
        entitlements: license.terms.entitlements.names().to_vec(),
    };
    let file = keys.jws(&claims).map_err(|e| Error::Internal(format!("signing a license file: {e}")))?;
    let touched = tx.query_typed(TOUCH, &[(&license.id, Type::UUID), (&installation_id, Type::TEXT)]).await?;
    if let (Some(row), Some(i)) = (touched.first(), installation.as_mut()) {
        i.last_seen_at = row.try_get("last_seen_at")?;
    }
    let event = LicenseEvent::LicenseCheckedOut {
        id: license.id,
        installation_id: installation_id.to_owned(),
        issued_at: now,
        expires_at: exp,
        key_id: keys.current_key_id().to_owned(),
    };
    projections::record(
        &tx,
        &PROJECTOR,
        &stream(license.id),
        ExpectedVersion::Exact(license.version),
        &[event],
        &public_metadata(ctx, request_id),
    )
    .await?;
    tx.commit().await?;
    Ok(CheckoutAnswer {
        valid: true,
        code: CheckCode::Valid,
        detail: CheckCode::Valid.detail(),
        license_file: Some(file),
        expires_at: Some(exp),
        license: Some(license.summary(used)),
        installation,
        ts: now,
        nonce: request.nonce,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_file_lives_the_wanted_ttl_capped_by_the_maximum_and_the_license() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let day = Duration::from_secs(86_400);
        assert_eq!(file_expiry(now, Some(60), day, None), now + chrono::Duration::seconds(60));
        assert_eq!(file_expiry(now, Some(10 * 86_400), day, None), now + chrono::Duration::days(1));
        assert_eq!(file_expiry(now, None, day, None), now + chrono::Duration::days(1));
        let end = now + chrono::Duration::hours(2);
        assert_eq!(file_expiry(now, Some(86_400), day, Some(end)), end);
        assert!(file_expiry(now, Some(u64::MAX), Duration::from_secs(u64::MAX), None) > now);
    }
}
