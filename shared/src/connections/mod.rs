//! OAuth connections as event-sourced streams `connection-<connection_id>` (DESIGN §6.2–§6.5)
//! and their projection: starting and completing authorizations, handing out valid tokens,
//! refreshing them exactly once at a time, status, history and revocation.
//!
//! Owns the rule that one connection is refreshed by one caller at a time, across execution
//! environments: the refresher holds the connection's row lock (`SELECT … FOR UPDATE`, in a
//! transaction whose timeouts bound it) while it calls the provider, stores the rotated
//! refresh token in that same transaction, and everyone who waited reads the winner's token.
//! Tokens are encrypted bound to `connection-<id>`/`access_token` and `…/refresh_token`
//! before they reach an event or a row. Nothing here formats a token into a log line or an
//! error; the only plaintext that leaves is the access token of `GET /v1/tokens/{id}`.

use std::time::Duration;

/// After a transient failure, inline refreshes of a connection are tried at most this often.
pub const INLINE_RETRY_INTERVAL: Duration = Duration::from_secs(30);

mod admin;
mod authorize;
mod error;
mod events;
#[cfg(test)]
mod fixtures;
mod grant;
mod model;
mod projection;
pub mod refresh;
mod tags;
mod token;

pub use admin::{HistoryItem, ListParams, TagsPatch, get, history, list, revoke, update_tags};
pub use authorize::{
    AuthorizeRequest, AuthorizeStart, CallbackOutcome, CallbackParams, complete_authorization, start_authorization,
};
pub use error::Error;
pub use events::ConnectionEvent;
pub use grant::{NewConnection, create};
pub use model::{
    Connection, ConnectionId, Grant, InvalidConnectionId, Refresher, Status, Token, Trigger, parse_path_id,
};
use model::{StoredToken, TokenColumns, decrypt, is_due, retry_after_throttle, stored_grant};
pub use projection::{PROJECTOR, project};
use refresh::{LOCK_WAIT, Locked, lock_row};
pub use refresh::{LockMode, RefreshOutcome, RefreshRequest, backoff, refresh};
pub use tags::{MAX_TAGS, Tags, split_tag_filters};
pub use token::{fetch_token, force_refresh};

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use secrecy::SecretString;
    use serde_json::Value;
    use uuid::Uuid;

    use super::*;

    #[test]
    fn connection_ids_follow_the_design() {
        for ok in ["branch-42", "branch-42-google", "a", "A.b_c:d-e", &"x".repeat(128)] {
            assert!(ConnectionId::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "a/b", "ä", &"x".repeat(129), "a%2F"] {
            assert!(ConnectionId::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(ConnectionId::parse("b-1").unwrap().stream(), "connection-b-1");
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_secs(60));
        assert_eq!(backoff(2), Duration::from_secs(120));
        assert_eq!(backoff(3), Duration::from_secs(240));
        assert_eq!(backoff(50), Duration::from_secs(3600));
    }

    #[test]
    fn due_means_within_the_buffer() {
        let now = Utc::now();
        let buffer = Duration::from_secs(300);
        assert!(!is_due(None, now, buffer));
        assert!(is_due(Some(now + chrono::Duration::seconds(299)), now, buffer));
        assert!(!is_due(Some(now + chrono::Duration::seconds(301)), now, buffer));
    }

    #[test]
    fn the_token_body_follows_the_design() {
        let now = Utc::now();
        let t = Token {
            connection_id: "b-42".into(),
            client_id: Uuid::nil(),
            access_token: SecretString::from("tok"),
            token_type: "Bearer".into(),
            expires_at: Some(now + chrono::Duration::seconds(100)),
            scopes: vec!["a".into()],
            provider_data: serde_json::json!({"api_domain": "https://www.zohoapis.eu"}),
        };
        let v: Value = serde_json::from_slice(&t.to_json(now)).unwrap();
        assert_eq!(v["access_token"], "tok");
        assert_eq!(v["expires_in"], 100);
        assert_eq!(v["scopes"], serde_json::json!(["a"]));
        assert_eq!(v["provider_data"]["api_domain"], "https://www.zohoapis.eu");
        assert!(!format!("{t:?}").contains("tok\""));
    }
}
