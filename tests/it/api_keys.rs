use axum::http::{Method, StatusCode};
use serde_json::json;
use shared::auth::Scope;

use crate::helpers::{TestApp, call};

#[tokio::test]
async fn the_bootstrap_key_creates_a_key_that_is_shown_once_and_stored_as_a_hash() {
    let app = TestApp::new().await;
    let router = admin::router(app.ctx.clone());
    let created = call(
        &router,
        Method::POST,
        "/v1/api-keys",
        Some(&app.admin_key),
        Some(json!({"name": "crm sync", "scopes": ["tokens:read", "connections:read"]})),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let key = created.json["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("kl_") && key.len() >= 3 + 22, "{key}");
    assert_eq!(created.json["scopes"], json!(["tokens:read", "connections:read"]));
    assert_eq!(created.headers["cache-control"], "no-store");

    let listed = call(&router, Method::GET, "/v1/api-keys", Some(&app.admin_key), None).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.json["items"].as_array().unwrap().len(), 1);
    assert!(!listed.text.contains(&key));
    assert_eq!(listed.json["next_cursor"], json!(null));

    let client = app.client().await;
    let dump: String = client
        .query_one("SELECT (SELECT string_agg(t::text, ' ') FROM api_keys t) || (SELECT string_agg(e::text, ' ') FROM events e)", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!dump.contains(&key), "the plaintext key is stored");
    assert!(!dump.contains(&key[3..]), "the plaintext key is stored");
}

#[tokio::test]
async fn missing_and_unknown_keys_are_401_and_missing_scopes_403() {
    let app = TestApp::new().await;
    let router = admin::router(app.ctx.clone());
    let none = call(&router, Method::GET, "/v1/api-keys", None, None).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(none.headers["content-type"], "application/problem+json");
    assert_eq!(none.json["code"], "unauthorized");
    assert!(none.headers.contains_key("www-authenticate"));

    let unknown = call(&router, Method::GET, "/v1/api-keys", Some("kl_not_a_real_key"), None).await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);

    let reader = app.api_key(&[Scope::TokensRead]).await;
    let forbidden = call(&router, Method::GET, "/v1/api-keys", Some(&reader), None).await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
    assert_eq!(forbidden.json["code"], "insufficient_scope");
    let forbidden =
        call(&router, Method::POST, "/v1/api-keys", Some(&reader), Some(json!({"name": "x", "scopes": ["admin"]})))
            .await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN, "a non-admin key must not mint keys");

    let admin_key = app.api_key(&[Scope::Admin]).await;
    let ok = call(&router, Method::GET, "/v1/api-keys", Some(&admin_key), None).await;
    assert_eq!(ok.status, StatusCode::OK);
}

#[tokio::test]
async fn a_revoked_key_stops_working_and_revoking_twice_is_404() {
    let app = TestApp::new().await;
    let router = admin::router(app.ctx.clone());
    let created = call(
        &router,
        Method::POST,
        "/v1/api-keys",
        Some(&app.admin_key),
        Some(json!({"name": "ops", "scopes": ["admin"]})),
    )
    .await;
    let (id, key) = (created.json["id"].as_str().unwrap().to_owned(), created.json["key"].as_str().unwrap().to_owned());
    assert_eq!(call(&router, Method::GET, "/v1/api-keys", Some(&key), None).await.status, StatusCode::OK);

    let revoked = call(&router, Method::DELETE, &format!("/v1/api-keys/{id}"), Some(&app.admin_key), None).await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    assert_eq!(call(&router, Method::GET, "/v1/api-keys", Some(&key), None).await.status, StatusCode::UNAUTHORIZED);
    let again = call(&router, Method::DELETE, &format!("/v1/api-keys/{id}"), Some(&app.admin_key), None).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert_eq!(again.json["code"], "api_key_not_found");
    let junk = call(&router, Method::DELETE, "/v1/api-keys/not-a-uuid", Some(&app.admin_key), None).await;
    assert_eq!(junk.status, StatusCode::NOT_FOUND);

    let client = app.client().await;
    let types: Vec<String> = client
        .query("SELECT type FROM events WHERE stream_id = $1 ORDER BY version", &[&format!("apikey-{id}")])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(types, vec!["ApiKeyCreated", "ApiKeyRevoked"]);
}

#[tokio::test]
async fn bad_key_requests_name_the_field_and_store_nothing() {
    let app = TestApp::new().await;
    let router = admin::router(app.ctx.clone());
    for (body, field) in [
        (json!({"scopes": ["admin"]}), "name"),
        (json!({"name": "x"}), "scopes"),
        (json!({"name": "x", "scopes": []}), "scopes"),
        (json!({"name": "x", "scopes": ["tokens:write"]}), "scopes[0]"),
        (json!({"name": "", "scopes": ["admin"]}), "name"),
        (json!({"name": 5, "scopes": ["admin"]}), "name"),
    ] {
        let answer = call(&router, Method::POST, "/v1/api-keys", Some(&app.admin_key), Some(body.clone())).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(answer.json["field"], field, "{body}: {}", answer.text);
    }
    let client = app.client().await;
    let count: i64 = client.query_one("SELECT count(*) FROM events", &[]).await.unwrap().get(0);
    assert_eq!(count, 0);
}

#[tokio::test]
async fn key_lists_page_with_a_cursor() {
    let app = TestApp::new().await;
    for _ in 0..7 {
        app.api_key(&[Scope::RequestsWrite]).await;
    }
    let router = admin::router(app.ctx.clone());
    let mut seen = Vec::new();
    let mut path = "/v1/api-keys?limit=3".to_owned();
    loop {
        let page = call(&router, Method::GET, &path, Some(&app.admin_key), None).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        seen.extend(page.json["items"].as_array().unwrap().iter().map(|k| k["id"].as_str().unwrap().to_owned()));
        match page.json["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/api-keys?limit=3&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 7);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.reverse();
    assert_eq!(seen, sorted, "newest first");
    let bad = call(&router, Method::GET, "/v1/api-keys?limit=9000", Some(&app.admin_key), None).await;
    assert_eq!((bad.status, bad.json["field"].as_str()), (StatusCode::BAD_REQUEST, Some("limit")));
    let bad = call(&router, Method::GET, "/v1/api-keys?limit=ten", Some(&app.admin_key), None).await;
    assert_eq!((bad.status, bad.json["field"].as_str()), (StatusCode::BAD_REQUEST, Some("limit")));
}
