//! The public checks' request and answer shapes (DESIGN §6.6): the body products send, the
//! codes, and the answer every check gives (always HTTP 200 for a well-formed request, the
//! signature over its bytes is added by the function that renders it).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Entitlements, InstallationId, InstallationName, LicenseKey, LicenseStatus, Nonce};

/// The body of `POST /v1/licenses/validate` (DESIGN §6.6, §6.6a). Each check has its own
/// body type, read with `http::OpenJson`: fields a route does not take (`ttl_seconds`
/// anywhere but checkout, `entitlements` on deactivate) are ignored unread, so that products
/// may send more than this version reads.
#[derive(Debug, Deserialize)]
pub struct ValidateRequest {
    /// The credential.
    #[serde(deserialize_with = "LicenseKey::deserialize_presented")]
    pub license_key: LicenseKey,
    /// The installation asking.
    pub installation_id: InstallationId,
    /// A name for the installation: used by activate; checked, not used, by validate.
    #[serde(default)]
    pub name: Option<InstallationName>,
    /// Echoed in the answer, so the caller can tell a fresh answer from a replayed one.
    #[serde(default)]
    pub nonce: Option<Nonce>,
    /// Entitlements the product needs; a license lacking one answers `ENTITLEMENTS_MISSING`.
    #[serde(default)]
    pub entitlements: Option<Entitlements>,
}

/// The body of `POST /v1/licenses/activate`: the same fields as validate's, and only
/// activate uses `name` (it names the installation).
pub type ActivateRequest = ValidateRequest;

/// The body of `POST /v1/licenses/deactivate`: the key, the installation, a name (checked,
/// unused) and a nonce.
#[derive(Debug, Deserialize)]
pub struct DeactivateRequest {
    /// The credential.
    #[serde(deserialize_with = "LicenseKey::deserialize_presented")]
    pub license_key: LicenseKey,
    /// The installation giving up its slot.
    pub installation_id: InstallationId,
    /// Checked as on activate, not used.
    #[serde(default)]
    pub name: Option<InstallationName>,
    /// Echoed in the answer.
    #[serde(default)]
    pub nonce: Option<Nonce>,
}

/// The outcome code of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CheckCode {
    /// The installation may run.
    Valid,
    /// No license has this key.
    NotFound,
    /// The license is suspended.
    Suspended,
    /// The license is revoked.
    Revoked,
    /// The license has expired.
    Expired,
    /// The license lacks an entitlement the product asked for.
    EntitlementsMissing,
    /// This installation holds no slot of the license.
    NotActivated,
    /// Every slot is taken.
    TooManyInstallations,
    /// The installation gave up its slot.
    Deactivated,
}

impl CheckCode {
    /// The outcome for people.
    pub fn detail(self) -> &'static str {
        match self {
            Self::Valid => "the license is valid for this installation",
            Self::NotFound => "no license has this key",
            Self::Suspended => "the license is suspended",
            Self::Revoked => "the license has been revoked",
            Self::Expired => "the license has expired",
            Self::EntitlementsMissing => "the license lacks an entitlement the product needs",
            Self::NotActivated => "this installation is not activated for the license",
            Self::TooManyInstallations => "every installation slot of the license is taken",
            Self::Deactivated => "the installation was deactivated and its slot is free",
        }
    }
}

/// The license part of a check's answer.
#[derive(Debug, Serialize)]
pub struct LicenseSummary {
    /// License id.
    pub id: Uuid,
    /// `active`, `suspended` or `revoked`.
    pub status: LicenseStatus,
    /// End of validity.
    pub expires_at: Option<DateTime<Utc>>,
    /// Limit.
    pub max_installations: i32,
    /// Installations holding a slot after this check.
    pub installations_used: i64,
    /// What the license grants, sorted.
    pub entitlements: Vec<String>,
}

/// The installation part of a check's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstallationSummary {
    /// The product's installation id.
    pub installation_id: String,
    /// When it took its slot.
    pub activated_at: DateTime<Utc>,
    /// Last time it was seen.
    pub last_seen_at: DateTime<Utc>,
}

/// The answer of every public check (always HTTP 200 for a well-formed request).
#[derive(Debug, Serialize)]
pub struct CheckAnswer {
    /// True only for `VALID`.
    pub valid: bool,
    /// The outcome.
    pub code: CheckCode,
    /// The outcome for people.
    pub detail: &'static str,
    /// Null for `NOT_FOUND`: an unknown key learns nothing.
    pub license: Option<LicenseSummary>,
    /// The installation, when it holds (or held, for `DEACTIVATED`) a slot.
    pub installation: Option<InstallationSummary>,
    /// Server time of the answer.
    pub ts: DateTime<Utc>,
    /// The request's nonce.
    pub nonce: Option<Nonce>,
}

impl CheckAnswer {
    pub(super) fn new(
        code: CheckCode,
        license: Option<LicenseSummary>,
        installation: Option<InstallationSummary>,
        ts: DateTime<Utc>,
        nonce: Option<Nonce>,
    ) -> Self {
        Self { valid: code == CheckCode::Valid, code, detail: code.detail(), license, installation, ts, nonce }
    }

    pub(super) fn not_found(nonce: Option<Nonce>) -> Self {
        Self::new(CheckCode::NotFound, None, None, Utc::now(), nonce)
    }
}
