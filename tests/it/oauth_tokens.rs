//! `GET /v1/tokens/{id}`, forced refreshes, status, history and revocation (DESIGN §6.4)
//! against the fake provider.

use std::{sync::atomic::Ordering, time::Duration};

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use shared::auth::Scope;

use crate::{
    helpers::{call, serve},
    oauth_world::World,
};

/// A world with one connection whose token is already inside the refresh buffer.
async fn due_connection(id: &str) -> (World, String) {
    let w = World::new("client_secret_post").await;
    let client = w.register("client_secret_post", true).await;
    w.provider.set(|b| b.expires_in = Some(60));
    w.connect(&client, id).await;
    w.provider.set(|b| b.expires_in = Some(3600));
    (w, client)
}

fn latest_access_token(w: &World) -> String {
    w.provider.issued().into_iter().rev().find(|t| t.starts_with("at-")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_fetches_of_a_due_token_make_one_provider_call_across_two_environments() {
    let (w, _) = due_connection("branch-42").await;
    let old = latest_access_token(&w);
    // Slow enough that every request arrives while the one refresh is in flight.
    w.provider.set(|b| b.delay = Duration::from_millis(400));
    let reader = w.app.api_key(&[Scope::TokensRead]).await;
    let first = serve(w.tokens.clone()).await;
    let second = serve(token_fetch::router(w.app.another_context("token-fetch"))).await;
    let http = reqwest::Client::new();
    let requests = (0..50).map(|i| {
        let addr = if i % 2 == 0 { first } else { second };
        let key = if i % 3 == 0 { w.app.admin_key.clone() } else { reader.clone() };
        let http = http.clone();
        tokio::spawn(async move {
            let answer = http.get(format!("http://{addr}/v1/tokens/branch-42")).bearer_auth(key).send().await.unwrap();
            let status = answer.status();
            (status, answer.json::<Value>().await.unwrap())
        })
    });
    let answers: Vec<(reqwest::StatusCode, Value)> =
        futures::future::join_all(requests).await.into_iter().map(Result::unwrap).collect();
    assert_eq!(w.provider.refresh_calls(), 1, "exactly one call to the provider");
    let new = latest_access_token(&w);
    assert_ne!(new, old);
    for (status, body) in &answers {
        assert_eq!(*status, reqwest::StatusCode::OK, "{body}");
        assert_eq!(body["access_token"], new, "every caller gets the winner's token");
    }
    assert_eq!(w.event_types("connection-branch-42").await, vec!["ConnectionAuthorized", "TokenRefreshed"]);
    let events = call(&w.tokens, Method::GET, "/v1/connections/branch-42/events", Some(&w.app.admin_key), None).await;
    assert_eq!(events.json["items"][1]["data"]["trigger"], "on_demand");
    assert_eq!(events.json["items"][1]["data"]["refresh_token_rotated"], true);
}

#[tokio::test]
async fn twenty_successive_refreshes_with_rotation_keep_the_connection_alive() {
    let (w, _) = due_connection("branch-1").await;
    // Every new token is again inside the buffer, so every fetch refreshes.
    w.provider.set(|b| b.expires_in = Some(60));
    let mut seen = std::collections::HashSet::new();
    for i in 0..20 {
        let answer = if i % 2 == 0 {
            w.token("branch-1").await
        } else {
            call(&w.tokens, Method::POST, "/v1/tokens/branch-1/refresh", Some(&w.app.admin_key), None).await
        };
        assert_eq!(answer.status, StatusCode::OK, "refresh {i}: {}", answer.text);
        let token = answer.json["access_token"].as_str().unwrap().to_owned();
        assert_eq!(token, latest_access_token(&w));
        assert!(seen.insert(token), "refresh {i} returned an old token");
    }
    assert_eq!(w.provider.refresh_calls(), 20);
    assert_eq!(w.status("branch-1").await, "active");
    let types = w.event_types("connection-branch-1").await;
    assert_eq!(types.len(), 21);
    assert!(types[1..].iter().all(|t| t == "TokenRefreshed"), "{types:?}");
    // Every refresh token but the last was retired by rotation: the provider refuses them.
    let issued: Vec<String> = w.provider.issued().into_iter().filter(|t| t.starts_with("rt-")).collect();
    assert_eq!(issued.len(), 21);
    let http = reqwest::Client::new();
    for old in &issued[..20] {
        let refused = http
            .post(w.provider.url("/token"))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", old),
                ("client_id", "kl-client"),
                ("client_secret", &w.client_secret),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), reqwest::StatusCode::BAD_REQUEST);
        assert_eq!(refused.json::<Value>().await.unwrap()["error"], "invalid_grant");
    }
    w.assert_replay_clean().await;
}

#[tokio::test]
async fn a_provider_that_omits_the_refresh_token_keeps_the_old_one() {
    let (w, _) = due_connection("branch-1").await;
    w.provider.set(|b| {
        b.rotate = false;
        b.expires_in = Some(60);
    });
    for _ in 0..3 {
        assert_eq!(w.token("branch-1").await.status, StatusCode::OK);
    }
    assert_eq!(w.provider.refresh_calls(), 3, "the kept refresh token still works");
    let events = call(&w.tokens, Method::GET, "/v1/connections/branch-1/events", Some(&w.app.admin_key), None).await;
    assert_eq!(events.json["items"][3]["data"]["refresh_token_rotated"], false);
    w.assert_replay_clean().await;
}

#[tokio::test]
async fn provider_down_but_token_unexpired_returns_the_current_token_and_throttles_retries() {
    let (w, _) = due_connection("branch-1").await;
    let current = latest_access_token(&w);
    w.provider.set(|b| b.fail_status = Some(500));
    let answer = w.token("branch-1").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.json["access_token"], current);
    assert_eq!(w.provider.refresh_calls(), 1);
    assert_eq!(w.status("branch-1").await, "refresh_failing");
    let again = w.token("branch-1").await;
    assert_eq!(again.json["access_token"], current);
    assert_eq!(w.provider.refresh_calls(), 1, "no second inline attempt within 30 s");
    let conn = call(&w.tokens, Method::GET, "/v1/connections/branch-1", Some(&w.app.admin_key), None).await;
    assert_eq!(conn.json["status"], "refresh_failing");
    assert_eq!(conn.json["consecutive_failures"], 1);
    assert!(conn.json["last_error"].as_str().unwrap().starts_with("server_error"));
    assert_eq!(w.event_types("connection-branch-1").await, vec!["ConnectionAuthorized", "TokenRefreshFailed"]);

    // The provider recovers; a forced refresh is not throttled and puts the connection back.
    w.provider.set(|b| b.fail_status = None);
    let forced = call(&w.tokens, Method::POST, "/v1/tokens/branch-1/refresh", Some(&w.app.admin_key), None).await;
    assert_eq!(forced.status, StatusCode::OK, "{}", forced.text);
    assert_eq!(forced.json["access_token"], latest_access_token(&w));
    let conn = call(&w.tokens, Method::GET, "/v1/connections/branch-1", Some(&w.app.admin_key), None).await;
    assert_eq!(conn.json["status"], "active");
    assert_eq!(conn.json["consecutive_failures"], 0);
    assert_eq!(conn.json["last_error"], json!(null));
    w.assert_replay_clean().await;
}

#[tokio::test]
async fn an_expired_token_with_a_transient_failure_is_503_with_retry_after() {
    let w = World::with_vars("client_secret_post", &[("PROVIDER_TIMEOUT_MS", "500")]).await;
    let client = w.register("client_secret_post", false).await;
    w.provider.set(|b| b.expires_in = Some(1));
    w.connect(&client, "down").await;
    w.connect(&client, "slow").await;
    tokio::time::sleep(Duration::from_millis(1200)).await;

    w.provider.set(|b| b.fail_status = Some(503));
    let down = w.token("down").await;
    assert_eq!(down.status, StatusCode::SERVICE_UNAVAILABLE, "{}", down.text);
    assert_eq!(down.json["code"], "refresh_failed");
    let retry: u64 = down.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=30).contains(&retry), "{retry}");
    let throttled = w.token("down").await;
    assert_eq!(throttled.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(throttled.headers.contains_key("retry-after"));
    assert_eq!(w.provider.refresh_calls(), 1);

    w.provider.set(|b| {
        b.fail_status = None;
        b.delay = Duration::from_secs(3);
    });
    let slow = w.token("slow").await;
    assert_eq!(slow.status, StatusCode::SERVICE_UNAVAILABLE, "{}", slow.text);
    let events = call(&w.tokens, Method::GET, "/v1/connections/slow/events", Some(&w.app.admin_key), None).await;
    assert_eq!(events.json["items"][1]["type"], "TokenRefreshFailed");
    assert_eq!(events.json["items"][1]["data"]["error_class"], "timeout");
    assert_eq!(events.json["items"][1]["data"]["trigger"], "on_demand");
    assert!(events.json["items"][1]["data"]["next_attempt_at"].is_string());
}

#[tokio::test]
async fn invalid_grant_records_reauthorization_required_and_every_later_call_is_409() {
    let (w, _) = due_connection("branch-1").await;
    // The provider no longer knows the refresh token (reused elsewhere, or access revoked).
    w.provider.forget_refresh_tokens();
    let refused = w.token("branch-1").await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
    assert_eq!(refused.json["code"], "reauthorization_required");
    assert_eq!(w.provider.refresh_calls(), 1);
    assert_eq!(w.event_types("connection-branch-1").await, vec!["ConnectionAuthorized", "ReauthorizationRequired"]);
    for _ in 0..3 {
        assert_eq!(w.token("branch-1").await.json["code"], "reauthorization_required");
    }
    let forced = call(&w.tokens, Method::POST, "/v1/tokens/branch-1/refresh", Some(&w.app.admin_key), None).await;
    assert_eq!(forced.status, StatusCode::CONFLICT);
    assert_eq!(forced.json["code"], "reauthorization_required");
    assert_eq!(w.provider.refresh_calls(), 1, "a dead grant is never tried again");
    let tokens: (Option<String>, Option<String>) = {
        let row = w
            .app
            .client()
            .await
            .query_one("SELECT access_token, refresh_token FROM connections WHERE connection_id = 'branch-1'", &[])
            .await
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!(tokens, (None, None), "dead tokens are wiped from the projection");
    w.assert_replay_clean().await;
}

#[tokio::test]
async fn revocation_calls_the_revoke_url_and_later_fetches_are_409() {
    let w = World::new("client_secret_basic").await;
    let client = w.register("client_secret_basic", false).await;
    w.connect(&client, "branch-1").await;
    let refresh_token = w.provider.issued().into_iter().find(|t| t.starts_with("rt-")).unwrap();
    let key = Some(w.app.admin_key.as_str());
    let revoked = call(&w.tokens, Method::DELETE, "/v1/connections/branch-1", key, None).await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{}", revoked.text);
    assert_eq!(*w.provider.state.revoked.lock().unwrap(), vec![(refresh_token, "refresh_token".to_owned())]);
    let fetch = w.token("branch-1").await;
    assert_eq!(fetch.status, StatusCode::CONFLICT);
    assert_eq!(fetch.json["code"], "connection_revoked");
    let conn = call(&w.tokens, Method::GET, "/v1/connections/branch-1", key, None).await;
    assert_eq!(conn.json["status"], "revoked");
    let events = call(&w.tokens, Method::GET, "/v1/connections/branch-1/events", key, None).await;
    assert_eq!(events.json["items"][1]["type"], "ConnectionRevoked");
    assert_eq!(events.json["items"][1]["data"]["provider_revocation"], "revoked");
    let again = call(&w.tokens, Method::DELETE, "/v1/connections/branch-1", key, None).await;
    assert_eq!(again.status, StatusCode::NO_CONTENT);
    assert_eq!(w.provider.state.revoke_calls.load(Ordering::SeqCst), 1);
    assert_eq!(w.event_types("connection-branch-1").await.len(), 2);
    let missing = call(&w.tokens, Method::DELETE, "/v1/connections/nope", key, None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    // A provider that is down does not block the revocation; the outcome is recorded.
    w.connect(&client, "branch-2").await;
    *w.provider.state.auth_method.lock().unwrap() = "client_secret_post".into();
    let revoked = call(&w.tokens, Method::DELETE, "/v1/connections/branch-2", key, None).await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    let events = call(&w.tokens, Method::GET, "/v1/connections/branch-2/events", key, None).await;
    assert_eq!(events.json["items"][1]["data"]["provider_revocation"], "failed");
    w.assert_replay_clean().await;
}

#[tokio::test]
async fn the_token_route_answers_401_403_404_in_that_order() {
    let (w, _) = due_connection("branch-1").await;
    let none = call(&w.tokens, Method::GET, "/v1/tokens/branch-1", None, None).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(none.headers["content-type"], "application/problem+json");
    let unknown = call(&w.tokens, Method::GET, "/v1/tokens/branch-1", Some("kl_unknown"), None).await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    let unknown_and_missing = call(&w.tokens, Method::GET, "/v1/tokens/nope", Some("kl_unknown"), None).await;
    assert_eq!(unknown_and_missing.status, StatusCode::UNAUTHORIZED);
    let wrong_scope = w.app.api_key(&[Scope::ConnectionsRead]).await;
    let forbidden = call(&w.tokens, Method::GET, "/v1/tokens/branch-1", Some(&wrong_scope), None).await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
    assert_eq!(forbidden.json["code"], "insufficient_scope");
    let reader = w.app.api_key(&[Scope::TokensRead]).await;
    let missing = call(&w.tokens, Method::GET, "/v1/tokens/nope", Some(&reader), None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.json["code"], "connection_not_found");
    let impossible = call(&w.tokens, Method::GET, "/v1/tokens/a%20b", Some(&reader), None).await;
    assert_eq!(impossible.status, StatusCode::NOT_FOUND);
    let ok = call(&w.tokens, Method::GET, "/v1/tokens/branch-1", Some(&reader), None).await;
    assert_eq!(ok.status, StatusCode::OK);
    let refresher = call(&w.tokens, Method::POST, "/v1/tokens/branch-1/refresh", Some(&reader), None).await;
    assert_eq!(refresher.status, StatusCode::FORBIDDEN, "forced refresh needs tokens:refresh");
}

#[tokio::test]
async fn connections_are_listed_and_their_history_carries_no_secrets() {
    let w = World::new("client_secret_post").await;
    let a = w.register("client_secret_post", false).await;
    let b = w.register("client_secret_post", false).await;
    for id in ["c-1", "c-2", "c-3"] {
        w.connect(&a, id).await;
    }
    w.connect(&b, "d-1").await;
    call(&w.tokens, Method::POST, "/v1/tokens/c-1/refresh", Some(&w.app.admin_key), None).await;
    w.provider.forget_refresh_tokens();
    call(&w.tokens, Method::POST, "/v1/tokens/c-2/refresh", Some(&w.app.admin_key), None).await;

    let reader = w.app.api_key(&[Scope::ConnectionsRead]).await;
    let key = Some(reader.as_str());
    let page = call(&w.tokens, Method::GET, "/v1/connections?limit=2", key, None).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    let ids: Vec<&str> =
        page.json["items"].as_array().unwrap().iter().map(|c| c["connection_id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec!["c-1", "c-2"]);
    let cursor = page.json["next_cursor"].as_str().unwrap();
    let rest = call(&w.tokens, Method::GET, &format!("/v1/connections?limit=2&cursor={cursor}"), key, None).await;
    let ids: Vec<&str> =
        rest.json["items"].as_array().unwrap().iter().map(|c| c["connection_id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec!["c-3", "d-1"]);
    assert_eq!(rest.json["next_cursor"], json!(null));
    let of_b = call(&w.tokens, Method::GET, &format!("/v1/connections?client_id={b}"), key, None).await;
    assert_eq!(of_b.json["items"].as_array().unwrap().len(), 1);
    let failing = call(&w.tokens, Method::GET, "/v1/connections?status=reauthorization_required", key, None).await;
    assert_eq!(failing.json["items"][0]["connection_id"], "c-2");
    let bad = call(&w.tokens, Method::GET, "/v1/connections?status=broken", key, None).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.json["field"], "status");

    let one = call(&w.tokens, Method::GET, "/v1/connections/c-1", key, None).await;
    for field in [
        "connection_id",
        "client_id",
        "status",
        "expires_at",
        "last_refreshed_at",
        "consecutive_failures",
        "scopes",
        "created_at",
        "updated_at",
    ] {
        assert!(one.json.get(field).is_some(), "{field} missing from {}", one.text);
    }
    assert!(one.json["last_refreshed_at"].is_string());
    let history = call(&w.tokens, Method::GET, "/v1/connections/c-1/events", key, None).await;
    let types: Vec<&str> =
        history.json["items"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, vec!["ConnectionAuthorized", "TokenRefreshed"]);
    assert_eq!(history.json["items"][0]["version"], 1);
    let texts = [page.text, rest.text, one.text, history.text];
    for text in &texts {
        assert!(!text.contains("v1:k1:"), "a ciphertext leaked: {text}");
        for secret in w.provider.issued() {
            assert!(!text.contains(&secret), "a token leaked: {text}");
        }
    }
    let tokens_only = w.app.api_key(&[Scope::TokensRead]).await;
    let forbidden = call(&w.tokens, Method::GET, "/v1/connections", Some(&tokens_only), None).await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
    let unknown = call(&w.tokens, Method::GET, "/v1/connections/nope/events", key, None).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_dump_of_connections_clients_states_and_events_holds_no_plain_token_or_secret() {
    let (w, client) = due_connection("branch-1").await;
    w.token("branch-1").await;
    call(&w.tokens, Method::POST, "/v1/tokens/branch-1/refresh", Some(&w.app.admin_key), None).await;
    w.start(&client, "branch-2", None).await;
    w.connect(&client, "branch-3").await;
    call(&w.tokens, Method::DELETE, "/v1/connections/branch-3", Some(&w.app.admin_key), None).await;
    let issued = w.provider.issued();
    assert!(issued.len() >= 8, "{issued:?}");
    let dump = w.dump().await;
    assert!(dump.contains("v1:k1:"), "tokens are stored as ciphertexts");
    for secret in issued.iter().chain([&w.client_secret]) {
        assert!(!dump.contains(secret.as_str()), "{secret} is stored in plain text");
    }
    w.assert_replay_clean().await;
}

// ---- tags (DESIGN §6.14) ----

/// Authorizes `id` through the browser with `tags` (or none).
async fn connect_tagged(w: &World, client: &str, id: &str, tags: Option<Value>) {
    let mut body = json!({"client_id": client, "connection_id": id});
    if let Some(tags) = tags {
        body["tags"] = tags;
    }
    let started = call(&w.tokens, Method::POST, "/v1/connections/authorize", Some(&w.app.admin_key), Some(body)).await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.text);
    let query = w.consent(started.json["authorize_url"].as_str().unwrap()).await;
    let done = w.callback(&query, "application/json").await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
}

fn ids(page: &Value) -> Vec<String> {
    page["items"].as_array().unwrap().iter().map(|c| c["connection_id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn tags_are_kept_shown_changed_by_patch_and_filtered_with_keyset_pages() {
    let w = World::new("client_secret_post").await;
    let client = w.register("client_secret_post", false).await;
    connect_tagged(&w, &client, "c-1", Some(json!({"org": "acme", "user": "u-1"}))).await;
    connect_tagged(&w, &client, "c-2", Some(json!({"org": "acme"}))).await;
    connect_tagged(&w, &client, "c-3", Some(json!({"org": "other"}))).await;
    connect_tagged(&w, &client, "c-4", None).await;
    let key = Some(w.app.admin_key.as_str());

    let one = call(&w.tokens, Method::GET, "/v1/connections/c-1", key, None).await;
    assert_eq!(one.json["tags"], json!({"org": "acme", "user": "u-1"}), "{}", one.text);
    assert_eq!(one.json["grant"], "authorization_code");
    let untagged = call(&w.tokens, Method::GET, "/v1/connections/c-4", key, None).await;
    assert_eq!(untagged.json["tags"], json!({}));

    // Keyset pages through the matches only.
    let first = call(&w.tokens, Method::GET, "/v1/connections?tag.org=acme&limit=1", key, None).await;
    assert_eq!((first.status, ids(&first.json)), (StatusCode::OK, vec!["c-1".to_owned()]), "{}", first.text);
    let cursor = first.json["next_cursor"].as_str().unwrap();
    let second =
        call(&w.tokens, Method::GET, &format!("/v1/connections?limit=1&tag.org=acme&cursor={cursor}"), key, None).await;
    assert_eq!(ids(&second.json), vec!["c-2"]);
    assert_eq!(second.json["next_cursor"], Value::Null);
    let both = call(&w.tokens, Method::GET, "/v1/connections?tag.org=acme&tag.user=u-1", key, None).await;
    assert_eq!(ids(&both.json), vec!["c-1"], "every tag must match");
    let spaced = call(&w.tokens, Method::GET, "/v1/connections?tag.org=nobody&status=active", key, None).await;
    assert_eq!(ids(&spaced.json), Vec::<String>::new());

    // PATCH replaces the tags with an event; the filter follows.
    let patched =
        call(&w.tokens, Method::PATCH, "/v1/connections/c-3", key, Some(json!({"tags": {"org": "acme"}}))).await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert_eq!(patched.json["tags"], json!({"org": "acme"}));
    assert_eq!(w.event_types("connection-c-3").await, vec!["ConnectionAuthorized", "ConnectionTagsChanged"]);
    let all = call(&w.tokens, Method::GET, "/v1/connections?tag.org=acme", key, None).await;
    assert_eq!(ids(&all.json), vec!["c-1", "c-2", "c-3"]);
    let history = call(&w.tokens, Method::GET, "/v1/connections/c-3/events", key, None).await;
    assert_eq!(history.json["items"][1]["data"]["tags"], json!({"org": "acme"}));
    // The same tags again change nothing.
    call(&w.tokens, Method::PATCH, "/v1/connections/c-3", key, Some(json!({"tags": {"org": "acme"}}))).await;
    assert_eq!(w.event_types("connection-c-3").await.len(), 2);

    // Re-authorizing without tags keeps them; with tags replaces them.
    connect_tagged(&w, &client, "c-1", None).await;
    let kept = call(&w.tokens, Method::GET, "/v1/connections/c-1", key, None).await;
    assert_eq!(kept.json["tags"], json!({"org": "acme", "user": "u-1"}));
    connect_tagged(&w, &client, "c-1", Some(json!({"org": "new"}))).await;
    let replaced = call(&w.tokens, Method::GET, "/v1/connections/c-1", key, None).await;
    assert_eq!(replaced.json["tags"], json!({"org": "new"}));

    // A reader may filter but not change.
    let reader = w.app.api_key(&[Scope::ConnectionsRead]).await;
    let denied = call(&w.tokens, Method::PATCH, "/v1/connections/c-2", Some(&reader), Some(json!({"tags": {}}))).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    w.assert_replay_clean().await;
}

#[tokio::test]
async fn bad_tags_are_400s_naming_the_field_and_store_nothing() {
    let w = World::new("client_secret_post").await;
    let client = w.register("client_secret_post", false).await;
    connect_tagged(&w, &client, "c-1", Some(json!({"org": "acme"}))).await;
    let key = Some(w.app.admin_key.as_str());
    let before = w.event_count().await;
    let eleven: serde_json::Map<String, Value> = (0..11).map(|i| (format!("t{i}"), json!("v"))).collect();
    for (tags, field) in [
        (Value::Object(eleven), "tags"),
        (json!({"a b": "secret-name"}), "tags"),
        (json!({"n": "line\nbreak"}), "tags"),
        (json!({"n": ""}), "tags"),
        (json!({"n": 7}), "tags.n"),
        (json!(["org"]), "tags"),
    ] {
        let body = json!({"client_id": client, "connection_id": "c-9", "tags": tags});
        let started = call(&w.tokens, Method::POST, "/v1/connections/authorize", key, Some(body)).await;
        assert_eq!(started.status, StatusCode::BAD_REQUEST, "{tags}: {}", started.text);
        assert_eq!(started.json["field"], field, "{tags}: {}", started.text);
        assert!(!started.text.contains("secret-name") && !started.text.contains("line\\nbreak"), "{}", started.text);
        let patched = call(&w.tokens, Method::PATCH, "/v1/connections/c-1", key, Some(json!({"tags": tags}))).await;
        assert_eq!(patched.status, StatusCode::BAD_REQUEST, "{tags}: {}", patched.text);
        assert_eq!(patched.json["field"], field, "{tags}: {}", patched.text);
    }
    let unknown = call(&w.tokens, Method::PATCH, "/v1/connections/nope", key, Some(json!({"tags": {}}))).await;
    assert_eq!((unknown.status, unknown.json["code"].as_str()), (StatusCode::NOT_FOUND, Some("connection_not_found")));
    let extra =
        call(&w.tokens, Method::PATCH, "/v1/connections/c-1", key, Some(json!({"tags": {}, "status": "x"}))).await;
    assert_eq!(extra.status, StatusCode::BAD_REQUEST, "{}", extra.text);
    for (query, field) in [("tag.a%20b=x", "tag"), ("tag.a=", "tag"), ("tag.a=x&tag.a=y", "tag"), ("bogus=1", "bogus")]
    {
        let listed = call(&w.tokens, Method::GET, &format!("/v1/connections?{query}"), key, None).await;
        assert_eq!(listed.status, StatusCode::BAD_REQUEST, "{query}: {}", listed.text);
        assert_eq!(listed.json["field"], field, "{query}: {}", listed.text);
    }
    assert_eq!(w.event_count().await, before, "nothing was recorded");
    let one = call(&w.tokens, Method::GET, "/v1/connections/c-1", key, None).await;
    assert_eq!(one.json["tags"], json!({"org": "acme"}));
}

// ---- client credentials (DESIGN §6.14) ----

/// Lets `client` use the client-credentials grant (`PATCH /v1/clients/{id} {"grants"}`).
async fn allow_client_credentials(w: &World, client: &str) {
    let grants = json!(["authorization_code", "client_credentials"]);
    let patched = call(
        &w.admin,
        Method::PATCH,
        &format!("/v1/clients/{client}"),
        Some(&w.app.admin_key),
        Some(json!({"grants": grants})),
    )
    .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert_eq!(patched.json["grants"], grants, "{}", patched.text);
}

/// The projections equal a rebuild from the log.
async fn assert_connections_replay(w: &World) {
    let mut client = w.app.client().await;
    let report = shared::projections::replay(&mut client, shared::PROJECTORS).await.unwrap();
    for table in &report.tables {
        assert!(table.only_live.is_empty() && table.only_rebuilt.is_empty(), "{report:?}");
    }
}

async fn create_cc(w: &World, client: &str, id: &str, extra: Value) -> crate::helpers::Answer {
    let mut body = json!({"client_id": client, "connection_id": id, "grant": "client_credentials"});
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    call(&w.tokens, Method::POST, "/v1/connections", Some(&w.app.admin_key), Some(body)).await
}

#[tokio::test]
async fn a_client_credentials_connection_is_created_at_once_and_renewed_inline_forced_and_by_the_schedule() {
    let w = World::new("client_secret_basic").await;
    let client = w.register("client_secret_basic", false).await;
    allow_client_credentials(&w, &client).await;

    let created = create_cc(&w, &client, "svc-1", json!({"scopes": ["reports"], "tags": {"org": "acme"}})).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.json["status"], "active");
    assert_eq!(created.json["grant"], "client_credentials");
    assert_eq!(created.json["tags"], json!({"org": "acme"}));
    assert_eq!(created.json["scopes"], json!(["reports"]));
    assert_eq!(w.provider.client_credentials_calls(), 1);
    assert_eq!(w.provider.state.last_client_credentials_scope.lock().unwrap().as_deref(), Some("reports"));
    assert_eq!(w.provider.state.auth_seen.lock().unwrap().last().map(String::as_str), Some("basic"));
    let first = latest_access_token(&w);
    let token = w.token("svc-1").await;
    assert_eq!((token.status, token.json["access_token"].as_str()), (StatusCode::OK, Some(first.as_str())));
    assert_eq!(w.provider.client_credentials_calls(), 1, "a live token is handed out as it is");

    // Within the buffer: renewed inline, once, with the same scopes.
    w.provider.set(|b| b.expires_in = Some(60));
    assert_eq!(create_cc(&w, &client, "svc-2", json!({})).await.status, StatusCode::CREATED);
    w.provider.set(|b| b.expires_in = Some(3600));
    let due = latest_access_token(&w);
    let renewed = w.token("svc-2").await;
    assert_eq!(renewed.status, StatusCode::OK, "{}", renewed.text);
    assert_ne!(renewed.json["access_token"], due);
    assert_eq!(renewed.json["access_token"], latest_access_token(&w));
    assert!(renewed.json["expires_in"].as_i64().unwrap() > 3500, "{}", renewed.text);
    assert_eq!(w.provider.client_credentials_calls(), 3);
    assert_eq!(w.provider.refresh_calls(), 0, "never a refresh-token grant");
    assert_eq!(w.event_types("connection-svc-2").await, vec!["ConnectionAuthorized", "TokenRefreshed"]);

    // Within the schedule's window (but not the buffer): the schedule renews it.
    w.provider.set(|b| b.expires_in = Some(600));
    assert_eq!(create_cc(&w, &client, "svc-3", json!({})).await.status, StatusCode::CREATED);
    w.provider.set(|b| b.expires_in = Some(3600));
    let provider = shared::oauth::Provider::from_config(w.app.ctx.config());
    let summary =
        shared::scheduled_refresh::run(&w.app.ctx, &provider, std::time::Instant::now() + Duration::from_secs(60))
            .await
            .unwrap();
    assert_eq!((summary.candidates, summary.refreshed), (1, 1), "{summary:?}");
    assert_eq!(w.event_types("connection-svc-3").await, vec!["ConnectionAuthorized", "TokenRefreshed"]);
    let events = call(&w.tokens, Method::GET, "/v1/connections/svc-3/events", Some(&w.app.admin_key), None).await;
    assert_eq!(events.json["items"][1]["data"]["trigger"], "scheduled");

    // Forced.
    let before = w.provider.client_credentials_calls();
    let forced = call(&w.tokens, Method::POST, "/v1/tokens/svc-1/refresh", Some(&w.app.admin_key), None).await;
    assert_eq!(forced.status, StatusCode::OK, "{}", forced.text);
    assert_eq!(forced.json["access_token"], latest_access_token(&w));
    assert_eq!(w.provider.client_credentials_calls(), before + 1);
    assert!(!w.dump().await.contains(&latest_access_token(&w)), "tokens are stored encrypted");
    assert_connections_replay(&w).await;
}

#[tokio::test]
async fn client_credentials_refusals_are_answered_and_invalid_client_needs_reauthorization() {
    let w = World::new("client_secret_post").await;
    let client = w.register("client_secret_post", false).await;
    let before = w.event_count().await;
    let refused = create_cc(&w, &client, "svc-1", json!({})).await;
    assert_eq!(
        (refused.status, refused.json["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("grant")),
        "{}",
        refused.text
    );
    assert_eq!(w.provider.client_credentials_calls(), 0, "a client that does not allow it is not asked");
    assert_eq!(w.event_count().await, before, "nothing recorded");
    allow_client_credentials(&w, &client).await;
    let before = w.event_count().await;
    for (body, field) in [
        (json!({"client_id": client, "connection_id": "svc-1", "grant": "authorization_code"}), "grant"),
        (json!({"client_id": client, "connection_id": "a b", "grant": "client_credentials"}), "connection_id"),
        (
            json!({"client_id": client, "connection_id": "svc-1", "grant": "client_credentials", "scopes": ["a b"]}),
            "scopes",
        ),
        (
            json!({"client_id": client, "connection_id": "svc-1", "grant": "client_credentials", "tags": {"": "x"}}),
            "tags",
        ),
        (json!({"client_id": client, "connection_id": "svc-1"}), "grant"),
    ] {
        let answer = call(&w.tokens, Method::POST, "/v1/connections", Some(&w.app.admin_key), Some(body.clone())).await;
        assert_eq!(
            (answer.status, answer.json["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some(field)),
            "{body}: {}",
            answer.text
        );
    }
    let unknown = create_cc(&w, &uuid::Uuid::new_v4().to_string(), "svc-1", json!({})).await;
    assert_eq!((unknown.status, unknown.json["code"].as_str()), (StatusCode::NOT_FOUND, Some("client_not_found")));

    // The provider refuses: 502 with its code, nothing stored.
    let secret = w.provider.state.client_secret.lock().unwrap().clone();
    *w.provider.state.client_secret.lock().unwrap() = "changed".into();
    let bad = create_cc(&w, &client, "svc-1", json!({})).await;
    assert_eq!(
        (bad.status, bad.json["code"].as_str()),
        (StatusCode::BAD_GATEWAY, Some("provider_error")),
        "{}",
        bad.text
    );
    assert!(bad.json["detail"].as_str().unwrap().contains("invalid_client"), "{}", bad.text);
    assert_eq!(w.event_count().await, before, "nothing stored");
    let missing = call(&w.tokens, Method::GET, "/v1/connections/svc-1", Some(&w.app.admin_key), None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    // Created, then the provider stops accepting the client: reauthorization required.
    *w.provider.state.client_secret.lock().unwrap() = secret;
    w.provider.set(|b| b.expires_in = Some(60));
    assert_eq!(create_cc(&w, &client, "svc-1", json!({})).await.status, StatusCode::CREATED);
    *w.provider.state.client_secret.lock().unwrap() = "rotated-at-the-provider".into();
    let dead = w.token("svc-1").await;
    assert_eq!(
        (dead.status, dead.json["code"].as_str()),
        (StatusCode::CONFLICT, Some("reauthorization_required")),
        "{}",
        dead.text
    );
    assert_eq!(w.status("svc-1").await, "reauthorization_required");
    assert_eq!(w.event_types("connection-svc-1").await, vec!["ConnectionAuthorized", "ReauthorizationRequired"]);
    let again = w.token("svc-1").await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(w.provider.client_credentials_calls(), 3, "a dead grant is not tried again");

    // Another client may not take the id.
    let other = w.register("client_secret_post", false).await;
    allow_client_credentials(&w, &other).await;
    let taken = create_cc(&w, &other, "svc-1", json!({})).await;
    assert_eq!((taken.status, taken.json["code"].as_str()), (StatusCode::CONFLICT, Some("connection_exists")));
    assert_connections_replay(&w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_fetches_of_a_due_client_credentials_token_make_one_provider_call_across_two_environments() {
    let w = World::new("client_secret_post").await;
    let client = w.register("client_secret_post", false).await;
    allow_client_credentials(&w, &client).await;
    w.provider.set(|b| b.expires_in = Some(60));
    assert_eq!(create_cc(&w, &client, "svc-1", json!({})).await.status, StatusCode::CREATED);
    w.provider.set(|b| {
        b.expires_in = Some(3600);
        b.delay = Duration::from_millis(400);
    });
    let before = w.provider.client_credentials_calls();
    let first = serve(w.tokens.clone()).await;
    let second = serve(token_fetch::router(w.app.another_context("token-fetch"))).await;
    let http = reqwest::Client::new();
    let requests = (0..20).map(|i| {
        let addr = if i % 2 == 0 { first } else { second };
        let (http, key) = (http.clone(), w.app.admin_key.clone());
        tokio::spawn(async move {
            let answer = http.get(format!("http://{addr}/v1/tokens/svc-1")).bearer_auth(key).send().await.unwrap();
            (answer.status(), answer.json::<Value>().await.unwrap())
        })
    });
    let answers: Vec<(reqwest::StatusCode, Value)> =
        futures::future::join_all(requests).await.into_iter().map(Result::unwrap).collect();
    assert_eq!(w.provider.client_credentials_calls(), before + 1, "exactly one call to the provider");
    let new = latest_access_token(&w);
    for (status, body) in &answers {
        assert_eq!(*status, reqwest::StatusCode::OK, "{body}");
        assert_eq!(body["access_token"], new, "every caller gets the winner's token");
    }
    assert_eq!(w.event_types("connection-svc-1").await, vec!["ConnectionAuthorized", "TokenRefreshed"]);
    assert_connections_replay(&w).await;
}

#[tokio::test]
async fn an_authorization_code_token_without_a_refresh_token_is_handed_out_until_it_expires() {
    let w = World::new("client_secret_post").await;
    let client = w.register("client_secret_post", false).await;
    w.provider.set(|b| {
        b.expires_in = Some(2);
        b.refresh_token_on_code = false;
    });
    w.connect(&client, "short").await;
    let issued = latest_access_token(&w);
    let due = w.token("short").await;
    assert_eq!(
        (due.status, due.json["access_token"].as_str()),
        (StatusCode::OK, Some(issued.as_str())),
        "{}",
        due.text
    );
    assert_eq!(w.provider.refresh_calls() + w.provider.client_credentials_calls(), 0, "nothing to renew it with");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let expired = w.token("short").await;
    assert_eq!(
        (expired.status, expired.json["code"].as_str()),
        (StatusCode::CONFLICT, Some("reauthorization_required"))
    );
    assert_eq!(w.provider.refresh_calls() + w.provider.client_credentials_calls(), 0);
    assert_eq!(w.event_types("connection-short").await, vec!["ConnectionAuthorized"]);
}
