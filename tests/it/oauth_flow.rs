//! Starting an authorization and the callback (DESIGN §6.2, §6.3) against the fake provider.

use std::collections::HashMap;

use axum::http::{Method, StatusCode};
use serde_json::json;
use shared::auth::Scope;

use crate::{fake_provider::ScopeStyle, helpers::call, oauth_world::World};

fn query_map(url: &str) -> HashMap<String, String> {
    url::Url::parse(url).unwrap().query_pairs().into_owned().collect()
}

#[tokio::test]
async fn the_authorize_url_carries_a_random_single_use_state_pkce_and_the_extra_params() {
    let w = World::new("client_secret_post").await;
    let client = w.register("client_secret_post", true).await;
    let started = w.start(&client, "branch-42", Some("https://app.example.com/settings")).await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.text);
    let url = started.json["authorize_url"].as_str().unwrap();
    assert!(url.starts_with(&w.provider.url("/authorize?")), "{url}");
    let q = query_map(url);
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], "kl-client");
    assert_eq!(q["redirect_uri"], "http://127.0.0.1:9/oauth/callback");
    assert_eq!(q["scope"], "read write");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["code_challenge"].len(), 43);
    assert_eq!(q["access_type"], "offline");
    assert_eq!(q["prompt"], "consent");
    // ≥ 128 bits of entropy in base64url is at least 22 characters.
    let state = &q["state"];
    assert!(state.len() >= 22, "{state}");
    let second = w.start(&client, "branch-42", None).await;
    assert_ne!(query_map(second.json["authorize_url"].as_str().unwrap())["state"], *state);

    let expires_at = chrono::DateTime::parse_from_rfc3339(started.json["expires_at"].as_str().unwrap()).unwrap();
    let ttl = expires_at.signed_duration_since(chrono::Utc::now()).num_seconds();
    assert!((590..=600).contains(&ttl), "{ttl}");

    // Only the state's hash is stored, and the verifier only encrypted.
    let dump = w.dump().await;
    assert!(!dump.contains(state.as_str()));
    let stored: Vec<u8> =
        w.app.client().await.query("SELECT state_hash FROM oauth_states", &[]).await.unwrap()[0].get(0);
    assert_eq!(stored.len(), 32);
    assert_eq!(w.event_count().await, 1, "starting an authorization records no event");
    let without_pkce = w.register("client_secret_post", false).await;
    let plain = w.start(&without_pkce, "branch-43", None).await;
    assert!(!query_map(plain.json["authorize_url"].as_str().unwrap()).contains_key("code_challenge"));
}

#[tokio::test]
async fn starting_needs_a_known_client_a_valid_id_and_the_scope() {
    let w = World::new("client_secret_post").await;
    let client = w.register("client_secret_post", true).await;
    let unknown = w.start(&uuid::Uuid::now_v7().to_string(), "branch-1", None).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.json["code"], "client_not_found");
    let bad_id = w.start(&client, "branch 1/2", None).await;
    assert_eq!(bad_id.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_id.json["field"], "connection_id");
    let bad_return = w.start(&client, "branch-1", Some("http://evil.example.com/")).await;
    assert_eq!(bad_return.json["field"], "return_to");
    let bad_client = w.start("nope", "branch-1", None).await;
    assert_eq!(bad_client.json["field"], "client_id");
    let reader = w.app.api_key(&[Scope::ConnectionsRead]).await;
    let forbidden = call(
        &w.tokens,
        Method::POST,
        "/v1/connections/authorize",
        Some(&reader),
        Some(json!({"client_id": client, "connection_id": "b"})),
    )
    .await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
    let states: i64 = w.app.client().await.query_one("SELECT count(*) FROM oauth_states", &[]).await.unwrap().get(0);
    assert_eq!(states, 0);
}

#[tokio::test]
async fn pkce_and_client_secret_basic_complete_the_flow_and_store_tokens_encrypted() {
    let w = World::new("client_secret_basic").await;
    w.provider.set(|b| {
        b.extra.insert("api_domain".into(), json!("https://www.zohoapis.eu"));
    });
    let client = w.register("client_secret_basic", true).await;
    w.connect(&client, "branch-42").await;
    // The fake provider checked the verifier against the challenge and the Basic header.
    assert_eq!(*w.provider.state.auth_seen.lock().unwrap(), vec!["basic"]);
    let token = w.token("branch-42").await;
    assert_eq!(token.status, StatusCode::OK, "{}", token.text);
    assert_eq!(token.json["access_token"], w.provider.issued()[0]);
    assert_eq!(token.json["token_type"], "Bearer");
    assert_eq!(token.json["client_id"], client);
    assert_eq!(token.json["scopes"], json!(["read", "write"]));
    let expires_in = token.json["expires_in"].as_i64().unwrap();
    assert!((3590..=3600).contains(&expires_in), "{expires_in}");
    assert_eq!(token.headers["cache-control"], "no-store");
    let conn = call(&w.tokens, Method::GET, "/v1/connections/branch-42", Some(&w.app.admin_key), None).await;
    assert_eq!(conn.json["status"], "active");
    // DESIGN §6.13: only what the client's `capture` list names is kept; this client names
    // nothing, so Zoho's `api_domain` is dropped with the rest (a Zoho preset captures it).
    assert_eq!(conn.json["provider_data"], json!({}));
    assert_eq!(w.event_types("connection-branch-42").await, vec!["ConnectionAuthorized"]);
    let dump = w.dump().await;
    for secret in w.provider.issued().iter().chain([&w.client_secret]) {
        assert!(!dump.contains(secret.as_str()), "{secret} is stored in plain text");
    }
    w.assert_replay_clean().await;
}

#[tokio::test]
async fn a_wrong_pkce_verifier_or_auth_method_fails_at_the_provider_and_is_recorded() {
    // The provider expects Basic but the client is registered with post: invalid_client.
    let w = World::new("client_secret_basic").await;
    let client = w.register("client_secret_post", true).await;
    let started = w.start(&client, "branch-7", Some("https://app.example.com/done")).await;
    let query = w.consent(started.json["authorize_url"].as_str().unwrap()).await;
    let done = w.callback(&query, "text/html").await;
    assert_eq!(done.status, StatusCode::FOUND);
    let location = done.headers["location"].to_str().unwrap();
    let q = query_map(location);
    assert_eq!(q["error"], "invalid_client");
    assert_eq!(q["connection_id"], "branch-7");
    assert_eq!(*w.provider.state.auth_seen.lock().unwrap(), vec!["post"]);
    assert_eq!(w.event_types("connection-branch-7").await, vec!["AuthorizationFailed"]);
    let conn = call(&w.tokens, Method::GET, "/v1/connections/branch-7", Some(&w.app.admin_key), None).await;
    assert_eq!(conn.status, StatusCode::NOT_FOUND, "a failed first authorization makes no connection");

    // A tampered verifier: replace the challenge the provider saw.
    let w = World::new("client_secret_post").await;
    let client = w.register("client_secret_post", true).await;
    let started = w.start(&client, "branch-8", None).await;
    let mut url = url::Url::parse(started.json["authorize_url"].as_str().unwrap()).unwrap();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .into_owned()
        .map(|(k, v)| if k == "code_challenge" { (k, "A".repeat(43)) } else { (k, v) })
        .collect();
    url.query_pairs_mut().clear().extend_pairs(pairs);
    let query = w.consent(url.as_str()).await;
    let done = w.callback(&query, "application/json").await;
    assert_eq!(done.status, StatusCode::BAD_REQUEST);
    assert_eq!(done.json["code"], "authorization_failed");
    assert!(done.text.contains("invalid_grant"), "{}", done.text);
    assert_eq!(w.event_types("connection-branch-8").await, vec!["AuthorizationFailed"]);
}

#[tokio::test]
async fn forged_expired_and_replayed_states_store_nothing() {
    let w = World::new("client_secret_post").await;
    let client = w.register("client_secret_post", true).await;
    let before = w.event_count().await;

    let forged = w.callback("code=abc&state=forged-state-value", "application/json").await;
    assert_eq!(forged.status, StatusCode::BAD_REQUEST);
    assert_eq!(forged.json["code"], "invalid_state");
    assert_eq!(forged.headers["content-type"], "application/problem+json");
    let missing = w.callback("code=abc", "text/html").await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert!(missing.headers["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(missing.text.contains("<html"));

    // Expired: a real pending state whose ten minutes are over.
    let started = w.start(&client, "branch-exp", None).await;
    let query = w.consent(started.json["authorize_url"].as_str().unwrap()).await;
    w.app
        .client()
        .await
        .execute("UPDATE oauth_states SET expires_at = now() - interval '1 second'", &[])
        .await
        .unwrap();
    let expired = w.callback(&query, "application/json").await;
    assert_eq!(expired.json["code"], "invalid_state");

    // Replayed: the second use of a state that worked once.
    let started = w.start(&client, "branch-rep", None).await;
    let query = w.consent(started.json["authorize_url"].as_str().unwrap()).await;
    let first = w.callback(&query, "application/json").await;
    assert_eq!(first.status, StatusCode::OK);
    let after_first = w.event_count().await;
    let replayed = w.callback(&query, "application/json").await;
    assert_eq!(replayed.status, StatusCode::BAD_REQUEST);
    assert_eq!(replayed.json["code"], "invalid_state");

    assert_eq!(after_first, before + 1, "only the good callback recorded an event");
    assert_eq!(w.event_count().await, after_first);
    assert_eq!(
        w.provider.state.code_calls.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "no code exchanged for bad states"
    );
    assert_eq!(w.event_types("connection-branch-exp").await, Vec::<String>::new());
    let rows: i64 = w.app.client().await.query_one("SELECT count(*) FROM connections", &[]).await.unwrap().get(0);
    assert_eq!(rows, 1);
}

#[tokio::test]
async fn a_provider_error_consumes_the_state_and_redirects_to_return_to() {
    let w = World::new("client_secret_post").await;
    let client = w.register("client_secret_post", false).await;
    let started = w.start(&client, "branch-9", Some("https://app.example.com/settings?tab=crm")).await;
    let state = query_map(started.json["authorize_url"].as_str().unwrap())["state"].clone();
    let query = format!("error=access_denied&error_description=User+said+no&state={state}");
    let denied = w.callback(&query, "text/html").await;
    assert_eq!(denied.status, StatusCode::FOUND);
    let location = url::Url::parse(denied.headers["location"].to_str().unwrap()).unwrap();
    assert_eq!(location.host_str(), Some("app.example.com"));
    let q: HashMap<String, String> = location.query_pairs().into_owned().collect();
    assert_eq!(q["tab"], "crm");
    assert_eq!(q["error"], "access_denied");
    assert_eq!(q["connection_id"], "branch-9");
    assert_eq!(denied.headers["referrer-policy"], "no-referrer");
    let events = call(&w.tokens, Method::GET, "/v1/connections/branch-9/events", Some(&w.app.admin_key), None).await;
    assert_eq!(events.json["items"][0]["type"], "AuthorizationFailed");
    assert_eq!(events.json["items"][0]["data"]["error"], "access_denied");
    assert_eq!(events.json["items"][0]["data"]["error_description"], "User said no");
    let again = w.callback(&query, "text/html").await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST, "the state was consumed");

    // Without return_to: a 400 page, or problem+json.
    let started = w.start(&client, "branch-10", None).await;
    let state = query_map(started.json["authorize_url"].as_str().unwrap())["state"].clone();
    let page = w.callback(&format!("error=access_denied&state={state}"), "text/html").await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.text.contains("access_denied"));
}

#[tokio::test]
async fn success_redirects_to_return_to_or_answers_html_or_json() {
    let w = World::new("client_secret_post").await;
    let client = w.register("client_secret_post", true).await;
    let started = w.start(&client, "branch-r", Some("https://app.example.com/settings")).await;
    let query = w.consent(started.json["authorize_url"].as_str().unwrap()).await;
    let done = w.callback(&query, "text/html").await;
    assert_eq!(done.status, StatusCode::FOUND);
    assert_eq!(
        done.headers["location"].to_str().unwrap(),
        "https://app.example.com/settings?connection_id=branch-r&status=connected"
    );
    let started = w.start(&client, "branch-h", None).await;
    let query = w.consent(started.json["authorize_url"].as_str().unwrap()).await;
    let page = w.callback(&query, "text/html,application/xhtml+xml,*/*;q=0.8").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text.contains("Connected") && page.text.contains("close this window"), "{}", page.text);
    assert!(page.headers.contains_key("content-security-policy"));
}

#[tokio::test]
async fn providers_without_expires_in_or_refresh_token_and_every_scope_shape_work() {
    let w = World::new("client_secret_post").await;
    let client = w.register("client_secret_post", false).await;
    for (id, style, expected) in [
        ("space", ScopeStyle::Space, json!(["read", "write"])),
        ("comma", ScopeStyle::Comma, json!(["read", "write"])),
        ("array", ScopeStyle::Array, json!(["read", "write"])),
        ("omitted", ScopeStyle::Omit, json!(["read", "write"])),
    ] {
        w.provider.set(|b| b.scope_style = style);
        w.connect(&client, id).await;
        let token = w.token(id).await;
        assert_eq!(token.json["scopes"], expected, "{id}");
    }
    w.provider.set(|b| {
        b.expires_in = None;
        b.refresh_token_on_code = false;
    });
    w.connect(&client, "forever").await;
    let token = w.token("forever").await;
    assert_eq!(token.status, StatusCode::OK);
    assert_eq!(token.json["expires_at"], json!(null));
    assert_eq!(token.json["expires_in"], json!(null));
    let refreshed = w.provider.refresh_calls();
    assert_eq!(w.token("forever").await.json["access_token"], token.json["access_token"]);
    assert_eq!(w.provider.refresh_calls(), refreshed, "a token without expiry is never refreshed");
    let conn = call(&w.tokens, Method::GET, "/v1/connections/forever", Some(&w.app.admin_key), None).await;
    assert_eq!(conn.json["expires_at"], json!(null));
    w.assert_replay_clean().await;
}

#[tokio::test]
async fn reauthorizing_replaces_tokens_and_clears_reauthorization_required() {
    let w = World::new("client_secret_post").await;
    let client = w.register("client_secret_post", false).await;
    w.provider.set(|b| b.expires_in = Some(60));
    w.connect(&client, "branch-1").await;
    w.provider.set(|b| b.refuse_refresh = true);
    let refused = w.token("branch-1").await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert_eq!(refused.json["code"], "reauthorization_required");
    w.provider.set(|b| {
        b.refuse_refresh = false;
        b.expires_in = Some(3600);
    });
    w.connect(&client, "branch-1").await;
    let token = w.token("branch-1").await;
    assert_eq!(token.status, StatusCode::OK);
    assert_eq!(token.json["access_token"], *w.provider.issued().iter().rev().nth(1).unwrap());
    assert_eq!(w.status("branch-1").await, "active");

    // Another client cannot take over a live connection id.
    let other = w.register("client_secret_post", false).await;
    let taken = w.start(&other, "branch-1", None).await;
    assert_eq!(taken.status, StatusCode::CONFLICT);
    assert_eq!(taken.json["code"], "connection_exists");
}
