//! The events of a `connection-<id>` stream (token fields hold ciphertexts only).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::{Grant, Tags, Trigger};

/// Events of a `connection-<id>` stream. Token fields hold ciphertexts only.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type")]
pub enum ConnectionEvent {
    /// An authorization completed: new tokens (replacing any old ones).
    ConnectionAuthorized {
        /// keyledger's client id.
        client_id: Uuid,
        /// Ciphertext.
        access_token: String,
        /// Ciphertext, when the provider issued a refresh token.
        refresh_token: Option<String>,
        /// Usually `Bearer`.
        token_type: String,
        /// None when the provider gave no `expires_in`.
        expires_at: Option<DateTime<Utc>>,
        /// Granted scopes.
        scopes: Vec<String>,
        /// Extra fields of the token response.
        provider_data: Value,
        /// Tags given with the authorization; none keeps the connection's tags.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tags: Option<Tags>,
        /// How the tokens were obtained (absent: `authorization_code`).
        #[serde(default, skip_serializing_if = "Grant::is_authorization_code")]
        grant: Grant,
    },
    /// The caller replaced the connection's tags.
    ConnectionTagsChanged {
        /// The new tags (all of them).
        tags: Tags,
    },
    /// An authorization ended with a provider error or a failed code exchange.
    AuthorizationFailed {
        /// keyledger's client id.
        client_id: Uuid,
        /// OAuth error code.
        error: String,
        /// Explanation.
        error_description: Option<String>,
    },
    /// A refresh succeeded.
    TokenRefreshed {
        /// What caused it.
        trigger: Trigger,
        /// Expiry before.
        previous_expires_at: Option<DateTime<Utc>>,
        /// Expiry now.
        expires_at: Option<DateTime<Utc>>,
        /// Ciphertext of the new access token.
        access_token: String,
        /// Ciphertext of the rotated refresh token; None keeps the old one.
        refresh_token: Option<String>,
        /// Whether the provider rotated the refresh token.
        refresh_token_rotated: bool,
        /// Token type.
        token_type: String,
        /// Granted scopes (the old ones when the provider did not list them).
        scopes: Vec<String>,
        /// Extra fields of the answer, merged over the old ones.
        provider_data: Value,
    },
    /// A refresh failed transiently; retried later.
    TokenRefreshFailed {
        /// What caused it.
        trigger: Trigger,
        /// Expiry of the current token.
        previous_expires_at: Option<DateTime<Utc>>,
        /// Error class (`timeout`, `server_error`, …).
        error_class: String,
        /// Explanation.
        message: String,
        /// Failures in a row, this one included.
        consecutive_failures: i32,
        /// Earliest scheduled retry.
        next_attempt_at: DateTime<Utc>,
    },
    /// The grant is dead (`invalid_grant`); a new authorization is needed.
    ReauthorizationRequired {
        /// What found out.
        trigger: Trigger,
        /// Error class.
        error_class: String,
        /// Explanation.
        message: String,
    },
    /// Revoked by a caller.
    ConnectionRevoked {
        /// `revoked`, `failed` or `not_supported` (no `revoke_url`).
        provider_revocation: String,
        /// The provider's error, when revocation failed.
        message: Option<String>,
    },
}
