//! Provider presets and their quirks (DESIGN §6.14): `GET /v1/providers`, clients made from
//! a preset, and each quirk played by the one fake provider (tests/it/fake_provider.rs) on a
//! local port, a preset pointed at it by explicit URL overrides.

use std::time::{Duration, SystemTime};

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use shared::{auth::Scope, oauth::Provider};

use crate::{helpers::call, oauth_world::World};

/// `POST /v1/clients` with `body`; the answer.
async fn create(w: &World, body: Value) -> crate::helpers::Answer {
    call(&w.admin, Method::POST, "/v1/clients", Some(&w.app.admin_key), Some(body)).await
}

/// A client from `preset`, its URLs pointed at the fake provider.
fn preset_body(w: &World, preset: &str, extra: Value) -> Value {
    let mut body = json!({
        "preset": preset,
        "authorize_url": w.provider.url("/authorize"),
        "token_url": w.provider.url("/token"),
        "revoke_url": w.provider.url("/revoke"),
        "client_id": "kl-client",
        "client_secret": w.client_secret,
        "redirect_uri": "http://127.0.0.1:9/oauth/callback",
        "scopes": ["read", "write"],
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

async fn register(w: &World, body: Value) -> String {
    let created = create(w, body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    created.json["id"].as_str().unwrap().to_owned()
}

async fn connection(w: &World, id: &str) -> Value {
    let got = call(&w.tokens, Method::GET, &format!("/v1/connections/{id}"), Some(&w.app.admin_key), None).await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text);
    got.json
}

#[tokio::test]
async fn providers_are_listed_and_shown_to_admin_and_connections_read_keys() {
    let w = World::new("client_secret_post").await;
    let reader = w.app.api_key(&[Scope::ConnectionsRead]).await;
    let listed = call(&w.admin, Method::GET, "/v1/providers", Some(&reader), None).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    let items = listed.json["items"].as_array().unwrap();
    let ids: Vec<&str> = items.iter().map(|i| i["id"].as_str().unwrap()).collect();
    for id in [
        "zoho",
        "google",
        "microsoft",
        "salesforce",
        "hubspot",
        "slack",
        "xero",
        "quickbooks",
        "github",
        "atlassian",
        "notion",
        "shopify",
    ] {
        assert!(ids.contains(&id), "{id} is listed");
    }
    let zoho = items.iter().find(|i| i["id"] == "zoho").unwrap();
    assert_eq!(zoho["params"]["region"]["default"], "com");
    assert!(zoho["params"]["region"]["allowed"].as_array().unwrap().contains(&json!("eu")));
    assert_eq!(zoho["grants"], json!(["authorization_code", "client_credentials"]));
    assert!(zoho["docs"].as_str().unwrap().starts_with("https://"));

    let whole = call(&w.admin, Method::GET, "/v1/providers/zoho", Some(&w.app.admin_key), None).await;
    assert_eq!(whole.status, StatusCode::OK);
    assert_eq!(whole.json["token_url"], "https://{region}/oauth/v2/token");
    assert_eq!(whole.json["errors"]["refresh_error_map"]["invalid_code"], "invalid_grant");
    assert!(whole.json["sources"].as_object().unwrap().len() >= 3);

    let missing = call(&w.admin, Method::GET, "/v1/providers/nope", Some(&reader), None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.json["code"], "provider_not_found");
    let tokens_only = w.app.api_key(&[Scope::TokensRead]).await;
    let refused = call(&w.admin, Method::GET, "/v1/providers", Some(&tokens_only), None).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_preset_fills_the_client_explicit_fields_win_and_patch_recomputes_the_urls() {
    let w = World::new("client_secret_post").await;
    let body = json!({"preset": "zoho", "preset_params": {"region": "eu"}, "client_id": "1000.ABC",
                      "client_secret": "s3cr3t-zoho", "redirect_uri": "https://api.example.com/oauth/callback",
                      "scopes": ["ZohoCRM.modules.ALL"]});
    let created = create(&w, body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let c = &created.json;
    assert_eq!(c["name"], "zoho");
    assert_eq!(c["preset"], "zoho");
    assert_eq!(c["preset_params"], json!({"region": "eu"}));
    assert_eq!(c["authorize_url"], "https://accounts.zoho.eu/oauth/v2/auth");
    assert_eq!(c["token_url"], "https://accounts.zoho.eu/oauth/v2/token");
    assert_eq!(c["revoke_url"], "https://accounts.zoho.eu/oauth/v2/token/revoke");
    assert_eq!(c["auth_method"], "client_secret_post");
    assert_eq!(c["extra_authorize_params"], json!({"access_type": "offline", "prompt": "consent"}));
    assert_eq!(c["capture"], json!({"callback": ["accounts-server", "location"], "token": ["api_domain"]}));
    assert_eq!(c["grants"], json!(["authorization_code", "client_credentials"]));
    assert_eq!(c["quirks"]["scope_separator"], "comma");
    assert_eq!(c["quirks"]["errors"]["refresh_error_map"], json!({"invalid_code": "invalid_grant"}));
    assert!(!created.text.contains("s3cr3t-zoho"));

    // PATCH preset_params renders the URLs again.
    let id = c["id"].as_str().unwrap();
    let patched = call(
        &w.admin,
        Method::PATCH,
        &format!("/v1/clients/{id}"),
        Some(&w.app.admin_key),
        Some(json!({"preset_params": {"region": "ca"}})),
    )
    .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert_eq!(patched.json["token_url"], "https://accounts.zohocloud.ca/oauth/v2/token");
    assert_eq!(patched.json["authorize_url"], "https://accounts.zohocloud.ca/oauth/v2/auth");
    assert_eq!(patched.json["preset_params"], json!({"region": "ca"}));
    let stored = call(&w.admin, Method::GET, &format!("/v1/clients/{id}"), Some(&w.app.admin_key), None).await;
    assert_eq!(stored.json["token_url"], "https://accounts.zohocloud.ca/oauth/v2/token");
    assert_eq!(stored.json["capture"], c["capture"]);

    // Explicit fields override the preset.
    let overridden = create(
        &w,
        preset_body(&w, "microsoft", json!({"preset_params": {"tenant": "contoso.onmicrosoft.com"}, "name": "ms"})),
    )
    .await;
    assert_eq!(overridden.status, StatusCode::CREATED, "{}", overridden.text);
    assert_eq!(overridden.json["name"], "ms");
    assert_eq!(overridden.json["token_url"], w.provider.url("/token"));
    assert_eq!(overridden.json["preset_params"], json!({"tenant": "contoso.onmicrosoft.com"}));
    // Required scopes are added to the requested ones.
    assert_eq!(overridden.json["scopes"], json!(["read", "write", "offline_access"]));

    // A shop in the URL.
    let shop = create(
        &w,
        json!({"preset": "shopify", "preset_params": {"shop": "acme-store"}, "client_id": "x", "client_secret": "y",
               "redirect_uri": "https://api.example.com/oauth/callback"}),
    )
    .await;
    assert_eq!(shop.status, StatusCode::CREATED, "{}", shop.text);
    assert_eq!(shop.json["token_url"], "https://acme-store.myshopify.com/admin/oauth/access_token");
    assert_eq!(shop.json["capture"]["callback"], json!(["shop"]));
}

#[tokio::test]
async fn unknown_presets_parameters_and_secret_captures_are_refused_naming_them() {
    let w = World::new("client_secret_post").await;
    let base =
        json!({"client_id": "x", "client_secret": "y", "redirect_uri": "https://api.example.com/oauth/callback"});
    let with = |extra: Value| {
        let mut b = base.clone();
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    let cases = [
        (json!({"preset": "nope"}), "preset", "nope"),
        (json!({"preset": "zoho", "preset_params": {"tenant": "x"}}), "preset_params.tenant", "tenant"),
        (json!({"preset": "zoho", "preset_params": {"region": "mars-secret-value"}}), "preset_params.region", ""),
        (json!({"preset": "shopify"}), "preset_params.shop", "shop"),
        (json!({"preset": "shopify", "preset_params": {"shop": "evil.com#"}}), "preset_params.shop", ""),
        (json!({"preset": "zoho", "capture": {"token": ["authed_user.access_token"]}}), "capture.token[0]", ""),
        (json!({"preset": "zoho", "capture": {"callback": ["code"]}}), "capture.callback[0]", ""),
        (
            json!({"preset": "zoho", "capture": {"token": [{"path": "team.id", "as": "api_key"}]}}),
            "capture.token[0]",
            "",
        ),
        (
            json!({"preset_params": {"region": "eu"}, "authorize_url": "https://a.example/a",
                "token_url": "https://a.example/t", "name": "n"}),
            "preset_params",
            "",
        ),
        (json!({"name": "n", "token_url": "https://a.example/t"}), "authorize_url", ""),
        (
            json!({"preset": "zoho", "quirks": {"token_request": {"format": "form", "headers": {"Authorization": "x"}}}}),
            "quirks.token_request.headers.Authorization",
            "",
        ),
        (
            json!({"preset": "zoho", "quirks": {"errors": {"refresh_error_map": {"x": "whatever"}}}}),
            "quirks.errors.refresh_error_map.x",
            "",
        ),
        (json!({"preset": "zoho", "grants": []}), "grants", ""),
    ];
    for (extra, field, named) in cases {
        let answer = create(&w, with(extra.clone())).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{extra}: {}", answer.text);
        assert_eq!(answer.json["field"], field, "{extra}: {}", answer.text);
        assert!(answer.json["detail"].as_str().unwrap().contains(named), "{}", answer.text);
        assert!(!answer.text.contains("mars-secret-value") && !answer.text.contains("evil.com"), "{}", answer.text);
    }
    let count: i64 = w.app.client().await.query_one("SELECT count(*) FROM clients", &[]).await.unwrap().get(0);
    assert_eq!(count, 0, "nothing half-written");
    // PATCH with params of a client that has no preset.
    let id = w.register("client_secret_post", false).await;
    let patched = call(
        &w.admin,
        Method::PATCH,
        &format!("/v1/clients/{id}"),
        Some(&w.app.admin_key),
        Some(json!({"preset_params": {"region": "eu"}})),
    )
    .await;
    // The body is well formed; the client's state refuses it (DESIGN §6.14, docs/openapi.json).
    assert_eq!(patched.status, StatusCode::CONFLICT, "{}", patched.text);
    assert_eq!(patched.json["code"], "client_has_no_preset");
    assert_eq!(patched.json["field"], "preset_params");
}

/// Zoho: errors inside HTTP 200, `invalid_code` on refresh meaning `invalid_grant`,
/// comma-separated scopes, callback values and `api_domain` captured as `provider_data`.
#[tokio::test]
async fn zoho_quirks_errors_in_200_invalid_code_comma_scopes_and_captured_values() {
    let w = World::new("client_secret_post").await;
    w.provider.set(|b| {
        b.errors_in_200 = true;
        b.dead_refresh_code = "invalid_code".into();
        b.scope_style = crate::fake_provider::ScopeStyle::Comma;
        b.callback_extra = vec![
            ("accounts-server".into(), "https://accounts.zoho.eu".into()),
            ("location".into(), "eu".into()),
            ("secret_thing".into(), "do-not-keep-me".into()),
        ];
        b.extra =
            serde_json::from_value(json!({"api_domain": "https://www.zohoapis.eu", "id_token": "jwt-x"})).unwrap();
    });
    let client = register(&w, preset_body(&w, "zoho", json!({}))).await;
    w.connect(&client, "zoho-1").await;
    let authorize = w.provider.state.last_authorize.lock().unwrap().clone();
    assert_eq!(authorize["scope"], "read,write", "Zoho joins scopes with commas");
    let expected = json!({"api_domain": "https://www.zohoapis.eu", "accounts-server": "https://accounts.zoho.eu",
                          "location": "eu"});
    assert_eq!(connection(&w, "zoho-1").await["provider_data"], expected);
    let token = w.token("zoho-1").await;
    assert_eq!(token.status, StatusCode::OK);
    assert_eq!(token.json["provider_data"], expected, "a Zoho caller learns api_domain with its token");
    assert_eq!(token.json["scopes"], json!(["read", "write"]));
    let dump = w.dump().await;
    assert!(!dump.contains("do-not-keep-me") && !dump.contains("jwt-x"), "only captured values are stored");

    // A refresh returning a new captured value updates it; callback values stay.
    w.provider.set(|b| {
        b.extra.insert("api_domain".into(), json!("https://www.zohoapis.in"));
    });
    let forced = call(&w.tokens, Method::POST, "/v1/tokens/zoho-1/refresh", Some(&w.app.admin_key), None).await;
    assert_eq!(forced.status, StatusCode::OK, "{}", forced.text);
    assert_eq!(forced.json["provider_data"]["api_domain"], "https://www.zohoapis.in");
    let after = connection(&w, "zoho-1").await;
    assert_eq!(after["provider_data"]["api_domain"], "https://www.zohoapis.in");
    assert_eq!(after["provider_data"]["accounts-server"], "https://accounts.zoho.eu");
    assert_eq!(w.token("zoho-1").await.json["provider_data"]["api_domain"], "https://www.zohoapis.in");

    // Re-authorization replaces the callback values.
    w.provider.set(|b| b.callback_extra = vec![("accounts-server".into(), "https://accounts.zoho.in".into())]);
    w.connect(&client, "zoho-1").await;
    let again = connection(&w, "zoho-1").await;
    assert_eq!(again["provider_data"]["accounts-server"], "https://accounts.zoho.in");
    assert!(again["provider_data"].get("location").is_none());

    // Zoho answers a dead refresh token with HTTP 200 {"error": "invalid_code"}: that is
    // invalid_grant, so the connection needs a new authorization.
    w.provider.set(|b| b.refuse_refresh = true);
    let refused = call(&w.tokens, Method::POST, "/v1/tokens/zoho-1/refresh", Some(&w.app.admin_key), None).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
    assert_eq!(refused.json["code"], "reauthorization_required");
    assert_eq!(w.status("zoho-1").await, "reauthorization_required");
}

/// A provider's own code for a dead refresh token means `invalid_grant` because the preset
/// says so (GitHub's `bad_refresh_token` inside an HTTP 200); without the map it is a
/// transient failure.
#[tokio::test]
async fn a_providers_own_dead_grant_code_is_mapped_by_the_preset_data() {
    let w = World::new("client_secret_post").await;
    w.provider.set(|b| {
        b.errors_in_200 = true;
        b.dead_refresh_code = "bad_refresh_token".into();
    });
    let mapped = register(&w, preset_body(&w, "github", json!({}))).await;
    let plain = register(&w, preset_body(&w, "github", json!({"quirks": {}}))).await;
    w.connect(&mapped, "gh-mapped").await;
    w.connect(&plain, "gh-plain").await;
    w.provider.set(|b| b.refuse_refresh = true);
    let refused = call(&w.tokens, Method::POST, "/v1/tokens/gh-mapped/refresh", Some(&w.app.admin_key), None).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
    assert_eq!(w.status("gh-mapped").await, "reauthorization_required");
    let failed = call(&w.tokens, Method::POST, "/v1/tokens/gh-plain/refresh", Some(&w.app.admin_key), None).await;
    assert_eq!(failed.status, StatusCode::SERVICE_UNAVAILABLE, "{}", failed.text);
    assert_eq!(w.status("gh-plain").await, "refresh_failing");
}

/// Notion: a JSON token request with HTTP Basic client authentication.
#[tokio::test]
async fn notion_sends_a_json_token_request_with_basic_auth() {
    let w = World::new("client_secret_basic").await;
    w.provider.set(|b| {
        b.json_requests_only = true;
        b.extra = serde_json::from_value(json!({"workspace_id": "ws-1", "bot_id": "bot-1",
                                                "owner": {"user": {"id": "u-1"}}}))
        .unwrap();
    });
    let client = register(&w, preset_body(&w, "notion", json!({}))).await;
    w.connect(&client, "notion-1").await;
    let (content_type, _, fields) = w.provider.state.last_token_request.lock().unwrap().clone().unwrap();
    assert!(content_type.starts_with("application/json"), "{content_type}");
    assert_eq!(fields["grant_type"], "authorization_code");
    assert!(!fields.contains_key("client_secret"), "Basic auth, not the body");
    assert_eq!(connection(&w, "notion-1").await["provider_data"], json!({"workspace_id": "ws-1", "bot_id": "bot-1"}));
    // The same provider refuses a form request: the preset's format is what made it work.
    let form = register(&w, preset_body(&w, "notion", json!({"quirks": {}}))).await;
    let started = w.start(&form, "notion-2", None).await;
    let query = w.consent(started.json["authorize_url"].as_str().unwrap()).await;
    let done = w.callback(&query, "application/json").await;
    assert_eq!(done.json["code"], "authorization_failed", "{}", done.text);
    assert!(done.json["detail"].as_str().unwrap().contains("invalid_request"), "{}", done.text);
}

/// GitHub: form-encoded answers unless `Accept: application/json`; the preset sends it.
#[tokio::test]
async fn github_gets_json_because_the_preset_asks_for_it() {
    let w = World::new("client_secret_post").await;
    w.provider.set(|b| {
        b.form_unless_accept_json = true;
        b.expires_in = None;
        b.refresh_token_on_code = false;
    });
    let client = register(&w, preset_body(&w, "github", json!({}))).await;
    w.connect(&client, "gh-1").await;
    let (_, accept, _) = w.provider.state.last_token_request.lock().unwrap().clone().unwrap();
    assert_eq!(accept, "application/json");
    let token = w.token("gh-1").await;
    assert_eq!(token.status, StatusCode::OK, "{}", token.text);
    assert!(token.json["access_token"].as_str().unwrap().starts_with("at-"));
}

/// Salesforce: no `expires_in`; the preset's assumed lifetime applies; `instance_url` and
/// `id` captured.
#[tokio::test]
async fn salesforce_without_expires_in_gets_the_assumed_lifetime_and_instance_url() {
    let w = World::new("client_secret_post").await;
    w.provider.set(|b| {
        b.expires_in = None;
        b.extra = serde_json::from_value(json!({"instance_url": "https://acme.my.salesforce.com",
            "id": "https://login.salesforce.com/id/00D/005", "signature": "sig", "issued_at": "1"}))
        .unwrap();
    });
    let client = register(&w, preset_body(&w, "salesforce", json!({}))).await;
    w.connect(&client, "sf-1").await;
    let token = w.token("sf-1").await;
    let expires_in = token.json["expires_in"].as_i64().expect("an expiry is assumed");
    assert!((3590..=3600).contains(&expires_in), "{expires_in}");
    assert_eq!(
        token.json["provider_data"],
        json!({"instance_url": "https://acme.my.salesforce.com", "id": "https://login.salesforce.com/id/00D/005"})
    );
    // Without the quirk the token has no expiry.
    let plain = register(&w, preset_body(&w, "salesforce", json!({"quirks": {}}))).await;
    w.connect(&plain, "sf-2").await;
    assert_eq!(w.token("sf-2").await.json["expires_in"], Value::Null);
}

/// Slack: nested token fields; only the captured ones are kept, and history shows no more.
#[tokio::test]
async fn slack_keeps_only_the_captured_nested_fields() {
    let w = World::new("client_secret_basic").await;
    w.provider.set(|b| {
        b.errors_in_200 = true;
        b.ok_member = true;
        b.scope_style = crate::fake_provider::ScopeStyle::Comma;
        b.extra = serde_json::from_value(json!({
            "team": {"id": "T1", "name": "Acme"}, "app_id": "A1", "bot_user_id": "B1",
            "authed_user": {"id": "U1", "access_token": "xoxp-user-secret", "refresh_token": "xoxe-user-secret"},
            "incoming_webhook": {"url": "https://hooks.slack.com/services/T/B/secret-hook"}}))
        .unwrap();
    });
    let client = register(&w, preset_body(&w, "slack", json!({}))).await;
    w.connect(&client, "slack-1").await;
    let expected = json!({"team.id": "T1", "user_id": "U1", "app_id": "A1", "bot_user_id": "B1"});
    assert_eq!(connection(&w, "slack-1").await["provider_data"], expected);
    let history = call(&w.tokens, Method::GET, "/v1/connections/slack-1/events", Some(&w.app.admin_key), None).await;
    assert_eq!(history.status, StatusCode::OK);
    assert_eq!(history.json["items"][0]["data"]["provider_data"], expected);
    let dump = w.dump().await;
    for secret in ["xoxp-user-secret", "xoxe-user-secret", "secret-hook"] {
        assert!(!dump.contains(secret) && !history.text.contains(secret), "{secret} was kept");
    }
    // Slack's {"ok": false} inside HTTP 200 is an error, not a token answer.
    w.provider.set(|b| b.fail_status = None);
    w.provider.forget_refresh_tokens();
    let forced = call(&w.tokens, Method::POST, "/v1/tokens/slack-1/refresh", Some(&w.app.admin_key), None).await;
    assert_ne!(forced.status, StatusCode::OK, "{}", forced.text);
}

/// QuickBooks' `realmId` comes back on the callback and is captured.
#[tokio::test]
async fn quickbooks_realm_id_is_captured_from_the_callback() {
    let w = World::new("client_secret_basic").await;
    w.provider.set(|b| b.callback_extra = vec![("realmId".into(), "9130-1234".into())]);
    let client = register(&w, preset_body(&w, "quickbooks", json!({}))).await;
    w.connect(&client, "qb-1").await;
    assert_eq!(w.token("qb-1").await.json["provider_data"], json!({"realmId": "9130-1234"}));
}

/// The path of a URL the API returned (a rendered preset URL).
fn path_of(url: &Value) -> String {
    url::Url::parse(url.as_str().unwrap()).unwrap().path().to_owned()
}

/// A preset renders https URLs on the provider's own host, which no test can serve: the
/// preset's rendered URLs are read from a client made from it alone, and a second client
/// from the same preset and parameters keeps their paths with the fake's origin (explicit
/// URLs override the preset, DESIGN §6.14).
async fn rendered_then_pointed_at_the_fake(w: &World, preset: &str, params: Value) -> (Value, String) {
    let real = create(
        w,
        json!({"preset": preset, "preset_params": params, "client_id": "kl-client", "client_secret": w.client_secret,
               "redirect_uri": "http://127.0.0.1:9/oauth/callback", "scopes": ["read", "write"]}),
    )
    .await;
    assert_eq!(real.status, StatusCode::CREATED, "{}", real.text);
    let body = preset_body(
        w,
        preset,
        json!({"preset_params": params,
               "authorize_url": w.provider.url(&path_of(&real.json["authorize_url"])),
               "token_url": w.provider.url(&path_of(&real.json["token_url"]))}),
    );
    (real.json, register(w, body).await)
}

/// Shopify: the shop is the host of every URL the preset renders (and so of the authorize
/// URL a user is sent to), and the `shop` Shopify sends back on the callback is captured as
/// `provider_data.shop`, on the connection and with its token.
#[tokio::test]
async fn shopify_shop_is_in_the_urls_and_captured_from_the_callback() {
    let w = World::new("client_secret_post").await;
    w.provider.set(|b| {
        b.callback_extra = vec![
            ("shop".into(), "acme-store.myshopify.com".into()),
            ("hmac".into(), "hmac-not-captured".into()),
            ("timestamp".into(), "1700000000".into()),
        ];
    });
    let (real, client) = rendered_then_pointed_at_the_fake(&w, "shopify", json!({"shop": "acme-store"})).await;
    assert_eq!(real["authorize_url"], "https://acme-store.myshopify.com/admin/oauth/authorize");
    assert_eq!(real["token_url"], "https://acme-store.myshopify.com/admin/oauth/access_token");
    assert_eq!(real["preset_params"], json!({"shop": "acme-store"}));
    let started = w.start(real["id"].as_str().unwrap(), "shop-real", None).await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.text);
    let sent_to = url::Url::parse(started.json["authorize_url"].as_str().unwrap()).unwrap();
    assert_eq!(sent_to.host_str(), Some("acme-store.myshopify.com"));
    assert_eq!(sent_to.path(), "/admin/oauth/authorize");
    let query: std::collections::HashMap<String, String> = sent_to.query_pairs().into_owned().collect();
    assert_eq!(query["scope"], "read,write", "Shopify joins scopes with commas");

    // The whole flow through the callback, at the preset's paths.
    w.connect(&client, "shop-1").await;
    assert_eq!(
        *w.provider.state.paths.lock().unwrap(),
        vec!["/admin/oauth/authorize".to_owned(), "/admin/oauth/access_token".to_owned()]
    );
    let expected = json!({"shop": "acme-store.myshopify.com"});
    assert_eq!(connection(&w, "shop-1").await["provider_data"], expected);
    let token = w.token("shop-1").await;
    assert_eq!(token.status, StatusCode::OK, "{}", token.text);
    assert_eq!(token.json["provider_data"], expected);
    assert!(!w.dump().await.contains("hmac-not-captured"), "only the captured callback value is stored");
}

/// Microsoft: the tenant is a path segment of the rendered URLs, and every request for the
/// connection (authorize, code exchange, refresh, client credentials) reaches the provider at
/// the tenant's path.
#[tokio::test]
async fn microsoft_tenant_is_in_the_path_the_provider_receives() {
    let w = World::new("client_secret_post").await;
    let tenant = "contoso.onmicrosoft.com";
    let (real, client) = rendered_then_pointed_at_the_fake(&w, "microsoft", json!({"tenant": tenant})).await;
    let token_path = format!("/{tenant}/oauth2/v2.0/token");
    assert_eq!(real["token_url"], format!("https://login.microsoftonline.com{token_path}"));
    assert_eq!(real["authorize_url"], format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/authorize"));

    w.connect(&client, "ms-1").await;
    let forced = call(&w.tokens, Method::POST, "/v1/tokens/ms-1/refresh", Some(&w.app.admin_key), None).await;
    assert_eq!(forced.status, StatusCode::OK, "{}", forced.text);
    let svc = create_cc(&w, &client, "ms-svc", json!({"scopes": ["https://graph.microsoft.com/.default"]})).await;
    assert_eq!(svc.status, StatusCode::CREATED, "{}", svc.text);
    assert_eq!((w.provider.refresh_calls(), w.provider.client_credentials_calls()), (1, 1));
    assert_eq!(
        *w.provider.state.paths.lock().unwrap(),
        vec![format!("/{tenant}/oauth2/v2.0/authorize"), token_path.clone(), token_path.clone(), token_path]
    );
}

/// `POST /v1/tokens/{id}/refresh` with the admin key.
async fn force(w: &World, id: &str) -> crate::helpers::Answer {
    call(&w.tokens, Method::POST, &format!("/v1/tokens/{id}/refresh"), Some(&w.app.admin_key), None).await
}

/// `refresh_error_map` is data: a Zoho client whose map names a code of the provider's own
/// (a made-up one here, which neither RFC 6749 nor keyledger knows) treats it as
/// `invalid_grant`; the same answer to the preset's client, whose map does not name it, is
/// a transient failure. And the map decides over keyledger's built-in reading of Zoho's
/// `invalid_code`: a client mapping it to `temporarily_unavailable` keeps retrying.
#[tokio::test]
async fn the_clients_refresh_error_map_is_what_classifies_a_providers_own_codes() {
    let w = World::new("client_secret_post").await;
    w.provider.set(|b| {
        b.errors_in_200 = true;
        b.dead_refresh_code = "grant_gone_for_good".into();
    });
    let preset = create(&w, preset_body(&w, "zoho", json!({}))).await;
    assert_eq!(preset.status, StatusCode::CREATED, "{}", preset.text);
    // The preset's own quirks, with one more code in the map.
    let mut quirks = preset.json["quirks"].clone();
    assert_eq!(quirks["errors"]["refresh_error_map"], json!({"invalid_code": "invalid_grant"}));
    quirks["errors"]["refresh_error_map"]["grant_gone_for_good"] = json!("invalid_grant");
    let mapped = register(&w, preset_body(&w, "zoho", json!({"quirks": quirks}))).await;
    let mut retrying = preset.json["quirks"].clone();
    retrying["errors"]["refresh_error_map"]["invalid_code"] = json!("temporarily_unavailable");
    let retrying = register(&w, preset_body(&w, "zoho", json!({"quirks": retrying}))).await;
    w.connect(preset.json["id"].as_str().unwrap(), "zoho-preset").await;
    w.connect(&mapped, "zoho-mapped").await;
    w.connect(&retrying, "zoho-retrying").await;
    w.provider.set(|b| b.refuse_refresh = true);

    let dead = force(&w, "zoho-mapped").await;
    assert_eq!((dead.status, dead.json["code"].as_str()), (StatusCode::CONFLICT, Some("reauthorization_required")));
    assert_eq!(w.status("zoho-mapped").await, "reauthorization_required");
    let unmapped = force(&w, "zoho-preset").await;
    assert_eq!(unmapped.status, StatusCode::SERVICE_UNAVAILABLE, "{}", unmapped.text);
    assert_eq!(w.status("zoho-preset").await, "refresh_failing");

    w.provider.set(|b| b.dead_refresh_code = "invalid_code".into());
    let kept = force(&w, "zoho-retrying").await;
    assert_eq!(kept.status, StatusCode::SERVICE_UNAVAILABLE, "{}", kept.text);
    assert_eq!(w.status("zoho-retrying").await, "refresh_failing");
}

/// A provider that refuses a refresh while the token has more than its own window left:
/// the client's expiry buffer keeps keyledger from asking early, inline and scheduled.
#[tokio::test]
async fn the_expiry_buffer_keeps_inline_and_scheduled_refreshes_inside_the_providers_window() {
    let w = World::new("client_secret_post").await;
    w.provider.set(|b| {
        b.expires_in = Some(200);
        b.refresh_window = Some(120);
    });
    // Global buffers (300 s inline, 900 s scheduled) would refresh a 200 s token at once.
    let eager = register(&w, preset_body(&w, "hubspot", json!({}))).await;
    w.connect(&eager, "early-1").await;
    let _ = w.token("early-1").await;
    assert_eq!(w.provider.state.early_refusals.load(std::sync::atomic::Ordering::SeqCst), 1, "asked too early");

    let patient = register(&w, preset_body(&w, "hubspot", json!({"quirks": {"expiry_buffer_secs": 60}}))).await;
    w.connect(&patient, "patient-1").await;
    let calls = w.provider.refresh_calls();
    let token = w.token("patient-1").await;
    assert_eq!(token.status, StatusCode::OK);
    let event: Value = serde_json::from_str(include_str!("../fixtures/eventbridge-schedule.json")).unwrap();
    let provider = Provider::from_config(w.app.ctx.config());
    token_refresh::handle(&w.app.ctx, &provider, &event, SystemTime::now() + Duration::from_secs(60)).await.unwrap();
    // `early-1` is backing off after its refusal; `patient-1` is inside no window yet.
    assert_eq!(w.provider.refresh_calls(), calls, "nobody asked the provider early");
    assert_eq!(w.provider.state.early_refusals.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(w.status("patient-1").await, "active");
    assert_eq!(w.event_types("connection-patient-1").await, vec!["ConnectionAuthorized"]);

    // Inside the client's buffer the scheduled run does refresh, and the provider accepts.
    w.provider.set(|b| b.expires_in = Some(50));
    w.connect(&patient, "patient-2").await;
    token_refresh::handle(&w.app.ctx, &provider, &event, SystemTime::now() + Duration::from_secs(60)).await.unwrap();
    assert_eq!(w.event_types("connection-patient-2").await, vec!["ConnectionAuthorized", "TokenRefreshed"]);
    assert_eq!(w.provider.state.early_refusals.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(w.event_types("connection-patient-1").await, vec!["ConnectionAuthorized"]);
}

/// A client's expiry buffer longer than `REFRESH_WINDOW_SECONDS` (900) is the scheduled
/// run's window for its connections (§6.14): a token inside that buffer is a candidate even
/// though the global window would not pick it, and one outside it is left alone (the
/// provider would refuse it). A client without a buffer keeps the global window.
#[tokio::test]
async fn a_client_buffer_longer_than_the_refresh_window_is_honoured_by_the_scheduled_run() {
    let w = World::new("client_secret_post").await;
    // The provider refreshes only in the last 2,400 s of a token's life.
    w.provider.set(|b| {
        b.expires_in = Some(1500);
        b.refresh_window = Some(2400);
    });
    let long = register(&w, preset_body(&w, "hubspot", json!({"quirks": {"expiry_buffer_secs": 2000}}))).await;
    let plain = register(&w, preset_body(&w, "hubspot", json!({}))).await;
    w.connect(&long, "long-due").await; // 1,500 s left: inside the 2,000 s buffer
    w.connect(&plain, "plain-1").await; // 1,500 s left: outside the 900 s window
    w.provider.set(|b| b.expires_in = Some(2300));
    w.connect(&long, "long-later").await; // 2,300 s left: outside the buffer

    let event: Value = serde_json::from_str(include_str!("../fixtures/eventbridge-schedule.json")).unwrap();
    let provider = Provider::from_config(w.app.ctx.config());
    let summary = token_refresh::handle(&w.app.ctx, &provider, &event, SystemTime::now() + Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!((summary["candidates"].as_u64(), summary["refreshed"].as_u64()), (Some(1), Some(1)), "{summary}");
    assert_eq!(w.event_types("connection-long-due").await, vec!["ConnectionAuthorized", "TokenRefreshed"]);
    assert_eq!(w.event_types("connection-long-later").await, vec!["ConnectionAuthorized"]);
    assert_eq!(w.event_types("connection-plain-1").await, vec!["ConnectionAuthorized"]);
    assert_eq!(w.provider.state.early_refusals.load(std::sync::atomic::Ordering::SeqCst), 0);
}

/// `GET /v1/tokens/{id}` with `provider_data` and a client's expiry buffer is still one
/// statement in one database round trip (DESIGN §6.4: the hot path).
#[tokio::test]
async fn a_token_with_provider_data_is_still_one_database_round_trip() {
    use std::sync::atomic::Ordering;
    let w = World::new("client_secret_post").await;
    w.provider.set(|b| b.extra = serde_json::from_value(json!({"api_domain": "https://www.zohoapis.eu"})).unwrap());
    let client = register(&w, preset_body(&w, "zoho", json!({"quirks": {"expiry_buffer_secs": 60}}))).await;
    w.connect(&client, "rt-1").await;
    let key = w.app.api_key(&[Scope::TokensRead]).await;
    let (proxied, round_trips) = crate::request_log::round_trip_counter(&w.app.db_url).await;
    let mut vars = w.app.vars.clone();
    vars.insert("DATABASE_URL".into(), proxied);
    vars.insert("DB_POOL_MAX".into(), "1".into());
    let ctx = shared::Context::new(crate::helpers::config_from(&vars), token_fetch::FUNCTION);
    let router = token_fetch::router(ctx);
    let warm = call(&router, Method::GET, "/v1/tokens/rt-1", Some(&key), None).await;
    assert_eq!(warm.status, StatusCode::OK, "{}", warm.text);
    for _ in 0..3 {
        let before = round_trips.load(Ordering::SeqCst);
        let token = call(&router, Method::GET, "/v1/tokens/rt-1", Some(&key), None).await;
        assert_eq!(token.json["provider_data"]["api_domain"], "https://www.zohoapis.eu");
        assert_eq!(round_trips.load(Ordering::SeqCst) - before, 1, "one round trip");
    }
}

/// `POST /v1/connections {"grant": "client_credentials"}` for `client`.
async fn create_cc(w: &World, client: &str, id: &str, extra: Value) -> crate::helpers::Answer {
    let mut body = json!({"client_id": client, "connection_id": id, "grant": "client_credentials"});
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    call(&w.tokens, Method::POST, "/v1/connections", Some(&w.app.admin_key), Some(body)).await
}

/// Client credentials with presets (DESIGN §6.14): the preset's grants decide whether a
/// client may use them (explicit `grants` still win), and the preset's quirks and captures
/// apply to that token request as to any other.
#[tokio::test]
async fn a_presets_grants_decide_client_credentials_and_its_quirks_apply_to_them() {
    let w = World::new("client_secret_post").await;
    w.provider.set(|b| {
        b.errors_in_200 = true;
        b.extra =
            serde_json::from_value(json!({"api_domain": "https://www.zohoapis.eu", "id_token": "jwt-x"})).unwrap();
    });
    let before = w.event_count().await;

    // HubSpot supports only authorization_code: its client is refused, the provider not asked.
    let hubspot = register(&w, preset_body(&w, "hubspot", json!({}))).await;
    let refused = create_cc(&w, &hubspot, "svc-h", json!({})).await;
    assert_eq!((refused.status, refused.json["field"].as_str()), (StatusCode::BAD_REQUEST, Some("grant")));
    // A Zoho client that names its own grants is held to them.
    let narrowed = register(&w, preset_body(&w, "zoho", json!({"grants": ["authorization_code"]}))).await;
    let refused = create_cc(&w, &narrowed, "svc-n", json!({})).await;
    assert_eq!((refused.status, refused.json["field"].as_str()), (StatusCode::BAD_REQUEST, Some("grant")));
    assert_eq!(w.provider.client_credentials_calls(), 0);
    assert_eq!(w.event_count().await, before + 2, "only the two ClientRegistered events");

    // Zoho supports client_credentials: allowed by the preset alone, scopes joined with
    // commas, errors inside HTTP 200 recognised, api_domain captured.
    let zoho = register(&w, preset_body(&w, "zoho", json!({}))).await;
    let secret = w.provider.state.client_secret.lock().unwrap().clone();
    *w.provider.state.client_secret.lock().unwrap() = "changed".into();
    let bad = create_cc(&w, &zoho, "svc-z", json!({})).await;
    assert_eq!(
        (bad.status, bad.json["code"].as_str()),
        (StatusCode::BAD_GATEWAY, Some("provider_error")),
        "{}",
        bad.text
    );
    assert!(bad.json["detail"].as_str().unwrap().contains("invalid_client"), "an error in a 200: {}", bad.text);
    *w.provider.state.client_secret.lock().unwrap() = secret;
    let created = create_cc(&w, &zoho, "svc-z", json!({"scopes": ["ZohoCRM.org.READ", "ZohoCRM.users.READ"]})).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.json["grant"], "client_credentials");
    assert_eq!(
        w.provider.state.last_client_credentials_scope.lock().unwrap().as_deref(),
        Some("ZohoCRM.org.READ,ZohoCRM.users.READ")
    );
    let captured = json!({"api_domain": "https://www.zohoapis.eu"});
    assert_eq!(created.json["provider_data"], captured);
    let token = w.token("svc-z").await;
    assert_eq!(token.status, StatusCode::OK, "{}", token.text);
    assert_eq!(token.json["provider_data"], captured, "the caller learns api_domain with its token");
    assert!(!w.dump().await.contains("jwt-x"), "only captured values are stored");

    // Renewal (forced here) keeps what was captured and takes a new value.
    w.provider.set(|b| {
        b.extra.insert("api_domain".into(), json!("https://www.zohoapis.in"));
    });
    let forced = call(&w.tokens, Method::POST, "/v1/tokens/svc-z/refresh", Some(&w.app.admin_key), None).await;
    assert_eq!(forced.status, StatusCode::OK, "{}", forced.text);
    assert_eq!(forced.json["provider_data"]["api_domain"], "https://www.zohoapis.in");
    assert_eq!(w.provider.refresh_calls(), 0, "renewed with the client's credentials");
    assert_eq!(w.provider.client_credentials_calls(), 3);
}

/// Salesforce client credentials send no `expires_in`: the preset's assumed lifetime makes the
/// token renewable before it dies, inline, with the client's own expiry buffer honoured;
/// and a live client-credentials token costs one database round trip like any other.
#[tokio::test]
async fn client_credentials_tokens_get_the_assumed_lifetime_and_stay_one_round_trip() {
    use std::sync::atomic::Ordering;
    let w = World::new("client_secret_post").await;
    w.provider.set(|b| {
        b.expires_in = None;
        b.extra = serde_json::from_value(json!({"instance_url": "https://acme.my.salesforce.com"})).unwrap();
    });
    let client = register(&w, preset_body(&w, "salesforce", json!({}))).await;
    let created = create_cc(&w, &client, "sf-svc", json!({})).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let token = w.token("sf-svc").await;
    let expires_in = token.json["expires_in"].as_i64().expect("an expiry is assumed");
    assert!((3590..=3600).contains(&expires_in), "{expires_in}");
    assert_eq!(token.json["provider_data"]["instance_url"], "https://acme.my.salesforce.com");

    // With a client buffer of 3,598 s that token is due two seconds later: renewed inline.
    let quirks = json!({"quirks": {"expiry_buffer_secs": 3598, "assumed_lifetime_secs": 3600}});
    let eager = register(&w, preset_body(&w, "salesforce", quirks)).await;
    assert_eq!(create_cc(&w, &eager, "sf-eager", json!({})).await.status, StatusCode::CREATED);
    let calls = w.provider.client_credentials_calls();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let renewed = w.token("sf-eager").await;
    assert_eq!(renewed.status, StatusCode::OK, "{}", renewed.text);
    assert_eq!(w.provider.client_credentials_calls(), calls + 1, "renewed inside the client's buffer");
    assert_eq!(w.event_types("connection-sf-eager").await, vec!["ConnectionAuthorized", "TokenRefreshed"]);
    let _ = w.token("sf-svc").await;
    assert_eq!(w.provider.client_credentials_calls(), calls + 1, "the other client's token was not due");

    let key = w.app.api_key(&[Scope::TokensRead]).await;
    let (proxied, round_trips) = crate::request_log::round_trip_counter(&w.app.db_url).await;
    let mut vars = w.app.vars.clone();
    vars.insert("DATABASE_URL".into(), proxied);
    vars.insert("DB_POOL_MAX".into(), "1".into());
    let router = token_fetch::router(shared::Context::new(crate::helpers::config_from(&vars), token_fetch::FUNCTION));
    let warm = call(&router, Method::GET, "/v1/tokens/sf-svc", Some(&key), None).await;
    assert_eq!(warm.status, StatusCode::OK, "{}", warm.text);
    for _ in 0..3 {
        let before = round_trips.load(Ordering::SeqCst);
        let token = call(&router, Method::GET, "/v1/tokens/sf-svc", Some(&key), None).await;
        assert_eq!(token.json["provider_data"]["instance_url"], "https://acme.my.salesforce.com");
        assert_eq!(round_trips.load(Ordering::SeqCst) - before, 1, "one round trip");
    }
}

/// The stored copies of the clients' expiry buffers, by connection (migration 0007).
async fn stored_buffers(w: &World) -> Vec<(String, Option<i32>)> {
    let rows = w
        .app
        .client()
        .await
        .query("SELECT connection_id, expiry_buffer_secs FROM connections ORDER BY 1", &[])
        .await
        .unwrap();
    rows.iter().map(|r| (r.get(0), r.get(1))).collect()
}

/// The hot path reads a client's expiry buffer off each connection row (migration 0007), so
/// the copy must follow the client: a PATCH of the buffer changes what an existing
/// connection's next fetch decides, a connection authorized later starts with the client's
/// value, removing the buffer brings back the global one, and a replay rebuilds the same.
#[tokio::test]
async fn a_patched_expiry_buffer_reaches_the_hot_path_of_existing_connections() {
    let w = World::new("client_secret_post").await;
    w.provider.set(|b| b.expires_in = Some(200));
    let client = register(&w, preset_body(&w, "hubspot", json!({"quirks": {"expiry_buffer_secs": 60}}))).await;
    w.connect(&client, "buf-1").await;
    let calls = w.provider.refresh_calls();
    assert_eq!(w.token("buf-1").await.status, StatusCode::OK);
    assert_eq!(w.provider.refresh_calls(), calls, "200 s left with a 60 s buffer: not due");

    let path = format!("/v1/clients/{client}");
    let patch = |quirks: Value| call(&w.admin, Method::PATCH, &path, Some(&w.app.admin_key), Some(quirks));
    let patched = patch(json!({"quirks": {"expiry_buffer_secs": 250}})).await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert_eq!(stored_buffers(&w).await, vec![("buf-1".to_owned(), Some(250))]);
    assert_eq!(w.token("buf-1").await.status, StatusCode::OK);
    assert_eq!(w.provider.refresh_calls(), calls + 1, "inside the new 250 s buffer: refreshed inline");

    w.connect(&client, "buf-2").await;
    assert_eq!(stored_buffers(&w).await, vec![("buf-1".into(), Some(250)), ("buf-2".into(), Some(250))]);

    // Without its own buffer the client's connections fall back to the global 300 s, inside
    // which a 200 s token is due as well; the copies are gone.
    let patched = patch(json!({"quirks": {}})).await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert_eq!(stored_buffers(&w).await, vec![("buf-1".into(), None), ("buf-2".into(), None)]);
    let calls = w.provider.refresh_calls();
    assert_eq!(w.token("buf-2").await.status, StatusCode::OK);
    assert_eq!(w.provider.refresh_calls(), calls + 1);

    let report = shared::projections::replay(&mut w.app.client().await, shared::PROJECTORS).await.unwrap();
    assert!(report.is_clean(), "{report:?}");
}
