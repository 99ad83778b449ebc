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

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError, Weak},
    time::Duration,
};

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio_postgres::{Row, Transaction, error::SqlState, types::Type};
use uuid::Uuid;

use crate::{
    auth::{Scope, bearer},
    clients::{self, AuthMethod},
    context::Context,
    crypto::{KeyRing, Owner, constant_time_eq, sha256},
    events::{self as event_store, EventStoreError, ExpectedVersion, Metadata, RecordedEvent},
    http::{ApiError, Page, decode_cursor, encode_cursor, page_limit},
    oauth::{self, ErrorClass, Provider, ProviderError, TokenEndpoint, TokenSet},
    projections,
};

/// After a transient failure, inline refreshes of a connection are tried at most this often.
pub const INLINE_RETRY_INTERVAL: Duration = Duration::from_secs(30);

mod admin;
mod authorize;
mod events;
mod model;
mod projection;
mod refresh;
mod token;

pub use admin::*;
pub use authorize::*;
pub use events::*;
pub use model::*;
pub use projection::*;
pub use refresh::*;
pub use token::*;

#[cfg(test)]
mod tests {
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
