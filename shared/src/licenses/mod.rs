//! Software licenses as event-sourced streams `license-<uuid>` (DESIGN §4.2, §6.6) and their
//! projections `licenses` and `installations`.
//!
//! The rooms: `values` (parsed values: key, ids, e-mail, status), `events` (the stream's
//! events), `admin` (issue, show, list, lookup, update, revoke, remove an installation),
//! `checks` (the public validate, activate, deactivate with their codes and precedence, and
//! the pure decision core `plan_activation`), `projection` (how events change the tables),
//! [`import`] (the old license service's SQLite file). Every change of a license is an event
//! appended with the version the writer read while holding the license row's lock, so
//! parallel activations can never exceed `max_installations`.
//!
//! A license key is a credential: it is looked up by HMAC-SHA-256 under the pepper and kept
//! only as a ciphertext bound to `license-<id>`/`license_key`. It must never reach an event
//! in plain text, a projection, a log line or an error message; [`LicenseKey`] redacts itself.
//! Functions here return [`Error`], never an HTTP status: `http::map::licenses` maps it.

mod admin;
mod answer;
mod checkout;
mod checks;
mod events;
pub mod import;
mod projection;
mod values;

use uuid::Uuid;

pub use admin::{
    Installation, License, LicensePatch, ListFilter, Lookup, NewLicense, issue, list, lookup, remove_installation,
    revoke, show, update,
};
pub(crate) use admin::{Issue, issue_license};
pub use answer::{
    ActivateRequest, CheckAnswer, CheckCode, DeactivateRequest, InstallationSummary, LicenseSummary, ValidateRequest,
};
pub use checkout::{CheckoutAnswer, CheckoutRequest, LicenseClaims, checkout, file_expiry};
pub use checks::{
    Plan, Terms, activate, deactivate, license_code, plan_activation, plan_deactivation, validate, validate_code,
};
pub use events::{LicenseEvent, stream};
pub(crate) use projection::installation_known;
pub use projection::{PROJECTOR, project};
pub use values::{
    DeactivationReason, Email, Entitlements, InstallationId, InstallationName, LicenseKey, LicenseStatus,
    MAX_KEY_CHARS, Nonce, RevealedKey, is_expired,
};

use crate::{db::DbError, events::EventStoreError, secrets::SecretsError};

/// What can go wrong in the licenses domain, by meaning. The HTTP layer gives each a status
/// and a `code`; messages never quote a key.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request field is out of range or of the wrong shape; `detail` names the field and
    /// what it expects, never the value refused.
    #[error("{detail}")]
    InvalidField {
        /// The field at fault.
        field: &'static str,
        /// For people.
        detail: String,
    },
    /// No license has this id.
    #[error("no license '{0}'")]
    NotFound(Uuid),
    /// No license has this key (lookup).
    #[error("no license has this key")]
    KeyNotFound,
    /// An imported key is already known.
    #[error("a license with this license_key already exists")]
    KeyExists,
    /// The license is revoked for good; its status cannot change any more.
    #[error("license '{0}' is revoked for good")]
    Revoked(Uuid),
    /// The license has no active installation with that id.
    #[error("license '{0}' has no active installation with that id")]
    InstallationNotFound(Uuid),
    /// A stored status this version does not know (the row fails closed).
    #[error("stored license status '{0}' is unknown")]
    UnknownStatus(String),
    /// A stored key could not be decrypted, or a signing step failed.
    #[error("{0}")]
    Internal(String),
    /// The encryption key ring is not configured or could not be read.
    #[error("the encryption key ring is unavailable")]
    KeyRing(#[source] SecretsError),
    /// The license-key pepper (how a key is looked up) is not configured or could not be read.
    #[error("the license-key pepper is unavailable")]
    Pepper(#[source] SecretsError),
    /// The license signing keys are not configured or could not be read.
    #[error("the license signing keys are unavailable")]
    SigningKeys(#[source] SecretsError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The event store refused or failed (a concurrent append is `Conflict`).
    #[error(transparent)]
    Store(#[from] EventStoreError),
}

impl Error {
    /// A 400 naming `field`.
    pub(crate) fn invalid(field: &'static str, detail: impl Into<String>) -> Self {
        Self::InvalidField { field, detail: detail.into() }
    }
}

/// A refused page request names its field (`limit`, `cursor`), as any other bad field does.
impl From<crate::paging::Error> for Error {
    fn from(e: crate::paging::Error) -> Self {
        Self::invalid(e.field(), e.to_string())
    }
}

impl From<tokio_postgres::Error> for Error {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Db(DbError::Query(e))
    }
}
