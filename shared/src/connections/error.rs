//! What can go wrong with a connection, in the domain's words; `http::map::connections`
//! gives each outcome its status and `code` (DESIGN §6.2–§6.4, §6.14).

use crate::{auth, clients, crypto::CryptoError, db::DbError, events::EventStoreError, oauth, secrets::SecretsError};

use super::ConnectionId;

/// A connection operation that did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request field is missing, malformed or out of range; `detail` never quotes the value.
    #[error("{detail}")]
    InvalidField {
        /// The field at fault.
        field: &'static str,
        /// For people.
        detail: String,
    },
    /// No such connection (or an id no connection can have).
    #[error("no connection '{0}'")]
    NotFound(String),
    /// The id is taken by a live connection of another client.
    #[error("connection '{0}' belongs to another client; revoke it first or choose another id")]
    OwnedByAnotherClient(ConnectionId),
    /// The callback's state is unknown, expired or used.
    #[error("this authorization link is unknown, expired or already used; start the connection again")]
    InvalidState,
    /// The provider refused the grant; only a new authorization helps.
    #[error("connection '{0}' must be authorized again (its grant was refused by the provider)")]
    ReauthorizationRequired(ConnectionId),
    /// The token expired and there is nothing to refresh it with.
    #[error("connection '{0}' has expired and has no refresh token; authorize it again")]
    ExpiredWithoutRefreshToken(ConnectionId),
    /// The connection was revoked.
    #[error("connection '{0}' was revoked")]
    Revoked(ConnectionId),
    /// A forced refresh of a connection that has no refresh token.
    #[error("connection '{0}' has no refresh token; authorize it again for a new token")]
    NoRefreshToken(ConnectionId),
    /// The token expired and the provider could not refresh it (transiently).
    #[error("the token has expired and the provider could not refresh it; try again later")]
    Expired {
        /// Seconds after which trying again makes sense.
        retry_after: u64,
    },
    /// A forced refresh failed transiently.
    #[error("the provider could not refresh the token ({class})")]
    RefreshFailed {
        /// The provider error's class (`timeout`, `server_error`, …).
        class: &'static str,
        /// Seconds after which trying again makes sense.
        retry_after: u64,
    },
    /// The provider refused to issue a token (client credentials, DESIGN §6.14). Only its
    /// code is answered; its free text is logged, since it is not ours to show.
    #[error("the provider refused to issue a token ({code})")]
    Provider {
        /// The provider's OAuth error code (or our class of failure).
        code: String,
        /// Its explanation (bounded, credentials redacted), for the log.
        message: String,
    },
    /// The client does not allow the requested grant.
    #[error("client does not allow the '{0}' grant")]
    GrantNotAllowed(&'static str),
    /// Waiting for another refresher's row lock took too long.
    #[error("another refresh of this connection is taking too long; try again")]
    LockBusy,
    /// The caller is not let in.
    #[error(transparent)]
    Auth(#[from] auth::Error),
    /// A stored value this build does not know: refused rather than guessed (fails closed).
    #[error("stored {what} '{value}' is not one this build knows")]
    UnknownStored {
        /// Which column.
        what: &'static str,
        /// The value found.
        value: String,
    },
    /// Stored state that breaks an invariant (an active connection without a token).
    #[error("inconsistent connection: {0}")]
    Inconsistent(&'static str),
    /// A token ciphertext could not be decrypted.
    #[error("connection token: {0}")]
    Crypto(#[from] CryptoError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The event store refused an append (a concurrent change) or failed.
    #[error(transparent)]
    EventStore(#[from] EventStoreError),
    /// A client operation failed (not found, a bad `return_to`, its stored settings).
    #[error(transparent)]
    Client(#[from] clients::Error),
    /// The encryption key ring (tokens, PKCE verifiers) is not configured or unreadable.
    #[error("the encryption key ring is unavailable")]
    KeyRing(#[from] SecretsError),
    /// A pending authorization (`oauth_states`) could not be stored or read back.
    #[error("a pending authorization could not be stored or read")]
    PendingAuthorization(#[from] oauth::StateError),
}

impl From<tokio_postgres::Error> for Error {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Db(DbError::Query(e))
    }
}

impl Error {
    /// A 400 naming `field`.
    pub fn invalid(field: &'static str, detail: impl Into<String>) -> Self {
        Self::InvalidField { field, detail: detail.into() }
    }
}

/// A refused page request names its field (`limit`, `cursor`), as any other bad field does.
impl From<crate::paging::Error> for Error {
    fn from(e: crate::paging::Error) -> Self {
        Self::invalid(e.field(), e.to_string())
    }
}
