//! OAuth clients as event-sourced streams `client-<uuid>` (DESIGN §6.1) and their projection.
//!
//! Owns registering, listing, changing and deleting the provider settings keyledger uses to
//! authorize connections, and the rules for their URLs. The client secret is encrypted
//! bound to `client-<id>`/`client_secret` before it reaches an event; it is never returned
//! by any route and never formatted into a log line ([`SecretString`](secrecy::SecretString)
//! redacts itself). Failures are [`Error`]s (what went wrong, never an HTTP status); the
//! mapping to problem+json lives in `http::map::clients`.
//!
//! - [`model`]: the settings, events, request bodies and their validation;
//! - [`patch`]: applying a `PATCH` body to the current settings;
//! - [`preset`]: filling settings from a provider preset (DESIGN §6.14);
//! - [`admin`]: the operations behind the routes;
//! - [`projection`]: the `clients` table as a projection of the streams.

mod admin;
mod model;
mod patch;
mod preset;
mod projection;

use uuid::Uuid;

use crate::{db::DbError, events::EventStoreError};

pub use admin::{create, decrypt_secret, delete, get, list, provider, update};
pub use model::{
    AuthMethod, BodyFormat, Capture, CaptureField, Client, ClientEvent, ClientPatch, ClientSettings, ErrorRules, Grant,
    NewClient, ProviderClient, Quirks, RESERVED_AUTHORIZE_PARAMS, ScopeSeparator, TokenRequest, capture_path,
    is_loopback, parse_endpoint, stored_capture,
};
pub use projection::{PROJECTOR, project};

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A field of the request is missing, malformed or not allowed; `detail` names the field
    /// and what it expects, never the value it refused.
    #[error("{detail}")]
    InvalidField {
        /// The field at fault (`scopes[0]`, `extra_authorize_params.state`).
        field: String,
        /// For people.
        detail: String,
    },
    /// No client with this id (or it was deleted).
    #[error("no client '{0}'")]
    NotFound(String),
    /// `preset_params` for a client that was not made from a preset: the body is well formed,
    /// the client's state refuses it (named `preset_params`).
    #[error("this client was not made from a preset, so it has no preset_params")]
    NoPreset,
    /// Connections that are not revoked still use the client.
    #[error("{0} connection(s) still use this client; revoke them first")]
    InUse(i64),
    /// A stored value could not be read back (a projection row no code writes).
    #[error("stored client data is unreadable: {0}")]
    Corrupt(String),
    /// The encryption keys could not be loaded.
    #[error("the encryption keys are unavailable")]
    Keys(#[source] crate::secrets::SecretsError),
    /// The event store refused or failed (a concurrent change, the database).
    #[error(transparent)]
    Store(#[from] EventStoreError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl Error {
    /// An [`Error::InvalidField`].
    pub fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::InvalidField { field: field.into(), detail: detail.into() }
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

/// The stream of client `id`.
pub fn stream(id: Uuid) -> String {
    format!("client-{id}")
}

/// Parses a client id from a path; an id that is no UUID is simply not found.
pub fn parse_id(raw: &str) -> Result<Uuid, Error> {
    Uuid::parse_str(raw).map_err(|_| Error::NotFound(raw.to_owned()))
}
