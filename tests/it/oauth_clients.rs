//! OAuth clients (DESIGN §6.1) through the admin API.

use axum::http::{Method, StatusCode};
use serde_json::json;
use shared::auth::Scope;

use crate::{helpers::call, oauth_world::World};

#[tokio::test]
async fn clients_are_registered_listed_updated_and_deleted_and_the_secret_never_shows() {
    let w = World::new("client_secret_post").await;
    let key = Some(w.app.admin_key.as_str());
    let created =
        call(&w.admin, Method::POST, "/v1/clients", key, Some(w.client_body("client_secret_post", true))).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let id = created.json["id"].as_str().unwrap().to_owned();
    assert_eq!(created.json["name"], "fake");
    assert_eq!(created.json["pkce"], true);
    assert_eq!(created.json["scopes"], json!(["read", "write"]));
    assert_eq!(created.json["extra_authorize_params"], json!({"access_type": "offline", "prompt": "consent"}));
    assert!(created.json.get("client_secret").is_none());
    assert!(created.json["created_at"].is_string() && created.json["updated_at"].is_string());

    let got = call(&w.admin, Method::GET, &format!("/v1/clients/{id}"), key, None).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.json["token_url"], w.provider.url("/token"));
    let listed = call(&w.admin, Method::GET, "/v1/clients", key, None).await;
    assert_eq!(listed.json["items"].as_array().unwrap().len(), 1);

    let new_secret = format!("rotated-{}", uuid::Uuid::new_v4().simple());
    let patched = call(
        &w.admin,
        Method::PATCH,
        &format!("/v1/clients/{id}"),
        key,
        Some(json!({"name": "renamed", "client_secret": new_secret, "revoke_url": null, "auth_method": "client_secret_basic"})),
    )
    .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert_eq!(patched.json["name"], "renamed");
    assert_eq!(patched.json["revoke_url"], json!(null));
    assert_eq!(patched.json["auth_method"], "client_secret_basic");
    assert_eq!(
        w.event_types(&format!("client-{id}")).await,
        vec!["ClientRegistered", "ClientUpdated", "ClientSecretRotated"]
    );
    // The new secret is what keyledger now presents to the provider.
    let provider = shared::clients::provider(&w.app.ctx, id.parse().unwrap()).await.unwrap();
    assert_eq!(secrecy::ExposeSecret::expose_secret(&provider.client_secret), new_secret);

    for text in [&created.text, &got.text, &listed.text, &patched.text] {
        assert!(!text.contains(&w.client_secret) && !text.contains(&new_secret));
    }
    let dump = w.dump().await;
    assert!(!dump.contains(&w.client_secret), "the client secret is stored in plain text");
    assert!(!dump.contains(&new_secret), "the rotated secret is stored in plain text");

    let deleted = call(&w.admin, Method::DELETE, &format!("/v1/clients/{id}"), key, None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let gone = call(&w.admin, Method::GET, &format!("/v1/clients/{id}"), key, None).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.json["code"], "client_not_found");
    let again = call(&w.admin, Method::DELETE, &format!("/v1/clients/{id}"), key, None).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    let listed = call(&w.admin, Method::GET, "/v1/clients", key, None).await;
    assert_eq!(listed.json["items"], json!([]));
    w.assert_replay_clean().await;
}

#[tokio::test]
async fn token_and_revoke_urls_must_be_https_except_on_loopback() {
    let w = World::new("client_secret_post").await;
    let key = Some(w.app.admin_key.as_str());
    for (field, value) in [
        ("token_url", "http://accounts.example.com/token"),
        ("revoke_url", "http://accounts.example.com/revoke"),
        ("authorize_url", "javascript:alert(1)"),
        ("redirect_uri", "not a url"),
    ] {
        let mut body = w.client_body("client_secret_post", false);
        body[field] = json!(value);
        let answer = call(&w.admin, Method::POST, "/v1/clients", key, Some(body)).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{field}");
        assert_eq!(answer.json["field"], field);
    }
    let mut body = w.client_body("client_secret_post", false);
    body["token_url"] = json!("https://accounts.example.com/token");
    body["revoke_url"] = json!("http://localhost:8080/revoke");
    let ok = call(&w.admin, Method::POST, "/v1/clients", key, Some(body)).await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.text);
    let id = ok.json["id"].as_str().unwrap();
    let bad_patch = call(
        &w.admin,
        Method::PATCH,
        &format!("/v1/clients/{id}"),
        key,
        Some(json!({"token_url": "http://10.0.0.1/t"})),
    )
    .await;
    assert_eq!(bad_patch.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_patch.json["field"], "token_url");
    assert_eq!(w.event_types(&format!("client-{id}")).await, vec!["ClientRegistered"], "nothing half-written");
}

#[tokio::test]
async fn bad_bodies_name_the_field_and_only_admins_manage_clients() {
    let w = World::new("client_secret_post").await;
    let key = Some(w.app.admin_key.as_str());
    let mut body = w.client_body("client_secret_post", false);
    body.as_object_mut().unwrap().remove("client_secret");
    let answer = call(&w.admin, Method::POST, "/v1/clients", key, Some(body)).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.json["field"], "client_secret");
    let mut body = w.client_body("client_secret_post", false);
    body["auth_method"] = json!("private_key_jwt");
    let answer = call(&w.admin, Method::POST, "/v1/clients", key, Some(body)).await;
    assert_eq!(answer.json["field"], "auth_method");
    let mut body = w.client_body("client_secret_post", false);
    body["extra_authorize_params"] = json!({"state": "mine"});
    let answer = call(&w.admin, Method::POST, "/v1/clients", key, Some(body)).await;
    assert_eq!(answer.json["field"], "extra_authorize_params.state");

    let reader = w.app.api_key(&[Scope::ConnectionsWrite, Scope::TokensRead]).await;
    let forbidden =
        call(&w.admin, Method::POST, "/v1/clients", Some(&reader), Some(w.client_body("client_secret_post", false)))
            .await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
    let unknown = call(&w.admin, Method::GET, "/v1/clients/not-a-uuid", key, None).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(w.event_count().await, 1, "only the reader key's event");
}

#[tokio::test]
async fn a_client_with_live_connections_cannot_be_deleted() {
    let w = World::new("client_secret_post").await;
    let client = w.register("client_secret_post", false).await;
    w.connect(&client, "branch-1").await;
    let key = Some(w.app.admin_key.as_str());
    let refused = call(&w.admin, Method::DELETE, &format!("/v1/clients/{client}"), key, None).await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert_eq!(refused.json["code"], "client_in_use");
    let revoked = call(&w.tokens, Method::DELETE, "/v1/connections/branch-1", key, None).await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    let deleted = call(&w.admin, Method::DELETE, &format!("/v1/clients/{client}"), key, None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
}
