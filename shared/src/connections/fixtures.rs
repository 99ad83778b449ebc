//! Values the unit tests of the refresh rule share (`refresh` and `token`): a fixed clock,
//! the default policy and an active connection's stored token.

use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{StoredToken, refresh::Policy};

/// `secs` seconds after a fixed instant.
pub fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
}

/// A 300 s expiry buffer and a 900 s scheduled window, since `at(0)`.
pub fn policy() -> Policy {
    Policy {
        expiry_buffer: Duration::from_secs(300),
        refresh_window: Duration::from_secs(900),
        keepalive: None,
        since: at(0),
    }
}

/// A stored access token expiring `expires` seconds after `at(0)` (never, with `None`).
pub fn stored_token(expires: Option<i64>) -> StoredToken {
    StoredToken {
        client_id: Uuid::nil(),
        access_token: Some("ct".into()),
        token_type: "Bearer".into(),
        expires_at: expires.map(at),
        scopes: vec![],
        provider_data: serde_json::json!({}),
    }
}
