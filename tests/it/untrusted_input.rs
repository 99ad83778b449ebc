//! DESIGN §6.13 through the real routes: what a provider returns is data (nothing but the
//! standard and captured fields is kept, and history reads the same way), the public callback
//! page never shows provider text, and hostile input is a 400 naming the field, never echoed,
//! never a 5xx, including under the Lambda request path.

use axum::{
    body::Body,
    http::{Method, Request, StatusCode, header},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use serde_json::{Value, json};
use shared::{
    connections::{ConnectionEvent, Trigger},
    events::{ExpectedVersion, Metadata},
    projections,
};

use crate::{
    helpers::{TestApp, call, call_raw},
    oauth_world::World,
};

/// A Slack `oauth.v2.access`-shaped answer: tokens nested where no deny-list looks.
fn slack_extra() -> serde_json::Map<String, Value> {
    let Value::Object(map) = json!({
        "ok": true,
        "app_id": "A0KRD7HC3",
        "team": {"id": "T9TK3CUKW", "name": "Slack Softwares"},
        "enterprise": null,
        "authed_user": {"id": "U1234", "scope": "chat:write", "access_token": "xoxp-LEAK-USER",
                        "refresh_token": "xoxe-LEAK-USER-REFRESH", "token_type": "user"},
        "bot": {"bot_user_id": "UBOT", "bot_access_token": "xoxb-LEAK-BOT"},
        "incoming_webhook": {"url": "https://hooks.slack.com/services/LEAK-HOOK", "channel": "#general"},
        "id_token": "eyJLEAK.ID.TOKEN"
    }) else {
        unreachable!()
    };
    map
}

async fn get(w: &World, path: &str) -> crate::helpers::Answer {
    call(&w.tokens, Method::GET, path, Some(&w.app.admin_key), None).await
}

#[tokio::test]
async fn a_slack_shaped_token_response_leaves_nothing_but_standard_fields_anywhere() {
    let w = World::new("client_secret_post").await;
    w.provider.set(|b| b.extra = slack_extra());
    let client = w.register("client_secret_post", false).await;
    w.connect(&client, "slack-1").await;
    let forced = call(&w.tokens, Method::POST, "/v1/tokens/slack-1/refresh", Some(&w.app.admin_key), None).await;
    assert_eq!(forced.status, StatusCode::OK, "{}", forced.text);
    assert_eq!(w.event_types("connection-slack-1").await, vec!["ConnectionAuthorized", "TokenRefreshed"]);

    let connection = get(&w, "/v1/connections/slack-1").await;
    assert_eq!(connection.json["provider_data"], json!({}));
    let history = get(&w, "/v1/connections/slack-1/events").await;
    assert_eq!(history.status, StatusCode::OK);
    let token = w.token("slack-1").await;
    for (what, text) in [
        ("the database", w.dump().await),
        ("GET /v1/connections/{id}", connection.text),
        ("/events", history.text),
        ("GET /v1/tokens/{id} beyond the token", token.text.replace(token.json["access_token"].as_str().unwrap(), "")),
    ] {
        for leak in ["LEAK", "xox", "T9TK3CUKW", "hooks.slack.com", "app_id"] {
            assert!(!text.contains(leak), "{leak} reached {what}: {text}");
        }
    }
    let authorized: Value = w
        .app
        .client()
        .await
        .query_one("SELECT data FROM events WHERE stream_id = 'connection-slack-1' AND version = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(authorized["provider_data"], json!({}));
}

#[tokio::test]
async fn history_shows_an_old_event_no_more_than_a_new_one() {
    let w = World::new("client_secret_post").await;
    let client = w.register("client_secret_post", false).await;
    w.connect(&client, "old-1").await;
    // An event as code before this rule wrote it: a whole nested answer in provider_data.
    let keyring = w.app.ctx.keyring().await.unwrap();
    let stream = "connection-old-1";
    let old = ConnectionEvent::TokenRefreshed {
        trigger: Trigger::Scheduled,
        previous_expires_at: None,
        expires_at: None,
        access_token: keyring.encrypt(shared::crypto::Owner::new(stream, "access_token"), "at"),
        refresh_token: None,
        refresh_token_rotated: false,
        token_type: "Bearer".into(),
        scopes: vec!["read".into()],
        provider_data: json!({"authed_user": {"access_token": "xoxp-OLD-LEAK", "id": "U1"},
                              "bot": {"bot_access_token": "xoxb-OLD-LEAK"}, "api_domain": "https://x"}),
    };
    let mut db = w.app.ctx.db().get().await.unwrap();
    let tx = db.transaction().await.unwrap();
    projections::record(
        &tx,
        &shared::connections::PROJECTOR,
        stream,
        ExpectedVersion::Exact(1),
        &[old],
        &Metadata::system("test"),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    // And one written by hand, with members no event type has.
    w.app
        .client()
        .await
        .execute(
            "INSERT INTO events (stream_id, version, type, data) VALUES ($1, 3, 'AuthorizationFailed', $2)",
            &[
                &stream,
                &json!({"client_id": client, "error": "access_denied", "error_description": null,
                        "id_token": "eyJ-HAND-LEAK", "raw": {"refresh_token": "HAND-LEAK"}}),
            ],
        )
        .await
        .unwrap();

    let history = get(&w, "/v1/connections/old-1/events").await;
    assert_eq!(history.status, StatusCode::OK, "{}", history.text);
    assert!(!history.text.contains("LEAK"), "{}", history.text);
    let items = history.json["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(items[1]["data"]["provider_data"], json!({}));
    assert_eq!(items[1]["data"]["scopes"], json!(["read"]));
    assert!(items[1]["data"].get("access_token").is_none());
    assert_eq!(items[2]["data"], json!({"client_id": client, "error": "access_denied", "error_description": null}));
}

#[tokio::test]
async fn the_public_callback_page_shows_the_provider_code_never_its_text() {
    let w = World::new("client_secret_post").await;
    let client = w.register("client_secret_post", false).await;
    for accept in ["text/html", "application/json"] {
        let started = w.start(&client, &format!("c-{}", accept.len()), None).await;
        let query = w.consent(started.json["authorize_url"].as_str().unwrap()).await;
        let state = query.split('&').find_map(|p| p.strip_prefix("state=")).unwrap().to_owned();
        let hostile = "<a href=https://phish.example>Your account is locked, call +1 555 LEAK</a>\u{7}";
        let q = format!(
            "error=access_denied&state={state}&error_description={}",
            url::form_urlencoded::byte_serialize(hostile.as_bytes()).collect::<String>()
        );
        let page = w.callback(&q, accept).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.text);
        assert!(page.text.contains("access_denied"), "{}", page.text);
        assert!(!page.text.contains("LEAK") && !page.text.contains("phish"), "{accept}: {}", page.text);
    }
    // The text is kept for the operator: bounded and without control characters.
    let description: String = w
        .app
        .client()
        .await
        .query_one("SELECT data->>'error_description' FROM events WHERE type = 'AuthorizationFailed' LIMIT 1", &[])
        .await
        .unwrap()
        .get(0);
    assert!(description.contains("LEAK") && !description.chars().any(char::is_control), "{description}");
}

#[tokio::test]
async fn a_provider_error_text_from_the_code_exchange_is_not_on_the_page_either() {
    let w = World::new("client_secret_post").await;
    let client = w.register("client_secret_post", false).await;
    let started = w.start(&client, "x-1", None).await;
    let query = w.consent(started.json["authorize_url"].as_str().unwrap()).await;
    // The provider now refuses the client: its answer carries an `error_description`.
    *w.provider.state.client_secret.lock().unwrap() = "another-secret".into();
    let page = w.callback(&query, "text/html").await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.text);
    assert!(page.text.contains("invalid_client"), "{}", page.text);
    let kept: Option<String> = w
        .app
        .client()
        .await
        .query_one("SELECT data->>'error_description' FROM events WHERE type = 'AuthorizationFailed'", &[])
        .await
        .unwrap()
        .get(0);
    let kept = kept.unwrap_or_default();
    assert!(kept.is_empty() || !page.text.contains(&kept), "the provider's text is on the page: {}", page.text);
}

const NUL: &str = "a\u{0}b";

#[tokio::test]
async fn u0000_in_any_text_field_is_a_400_naming_it_on_every_route() {
    let w = World::new("client_secret_post").await;
    let key = Some(w.app.admin_key.as_str());
    let client = w.register("client_secret_post", false).await;
    let mut cases: Vec<(&axum::Router, Method, String, Value, &str)> = Vec::new();
    for (field, value) in [
        ("name", json!(NUL)),
        ("client_id", json!(NUL)),
        ("metadata.workspace.deep[0]", json!({"workspace": {"deep": [NUL]}})),
        ("extra_authorize_params.k", json!({"k": NUL})),
    ] {
        let mut body = w.client_body("client_secret_post", false);
        body[field.split('.').next().unwrap()] = value;
        cases.push((&w.admin, Method::POST, "/v1/clients".into(), body, field));
    }
    cases.push((&w.admin, Method::PATCH, format!("/v1/clients/{client}"), json!({"name": NUL}), "name"));
    cases.push((
        &w.admin,
        Method::PATCH,
        format!("/v1/clients/{client}"),
        json!({"metadata": {"a": NUL}}),
        "metadata.a",
    ));
    cases.push((&w.admin, Method::POST, "/v1/api-keys".into(), json!({"name": NUL, "scopes": ["admin"]}), "name"));
    cases.push((
        &w.admin,
        Method::POST,
        "/v1/licenses".into(),
        json!({"email": "a@example.com", "metadata": {"k": NUL}}),
        "metadata.k",
    ));
    cases.push((
        &w.tokens,
        Method::POST,
        "/v1/connections/authorize".into(),
        json!({"client_id": client, "connection_id": "c", "return_to": format!("https://app.example/{NUL}")}),
        "return_to",
    ));
    let before = w.event_count().await;
    for (router, method, path, body, field) in cases {
        let answer = call(router, method.clone(), &path, key, Some(body)).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{method} {path} {field}: {}", answer.text);
        assert_eq!(answer.json["field"], field, "{method} {path}: {}", answer.text);
        assert_eq!(answer.headers["content-type"], "application/problem+json");
    }
    assert_eq!(w.event_count().await, before, "nothing half-written");
    let query = call(&w.tokens, Method::GET, "/v1/connections?client_id=a%00b", key, None).await;
    assert_eq!(query.status, StatusCode::BAD_REQUEST, "{}", query.text);
    assert_eq!(query.json["field"], "client_id");
}

#[tokio::test]
async fn wrong_types_name_the_field_and_the_expected_type_and_never_echo_the_value() {
    let w = World::new("client_secret_post").await;
    let key = Some(w.app.admin_key.as_str());
    let secret = "sk_live_51HyperSecretValue";
    for (field, value, expected) in [
        ("auth_method", json!(7), "client_secret_post"),
        ("auth_method", json!(secret), "client_secret_post"),
        ("pkce", json!(secret), "a boolean"),
        ("scopes", json!(secret), "a sequence"),
        ("client_id", json!({"nested": secret}), "a string"),
        ("name", json!(12345678), "a string"),
    ] {
        let mut body = w.client_body("client_secret_post", false);
        body[field] = value.clone();
        let answer = call(&w.admin, Method::POST, "/v1/clients", key, Some(body)).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{field}={value}: {}", answer.text);
        assert_eq!(answer.json["code"], "invalid_request", "{field}={value}: {}", answer.text);
        assert_eq!(answer.json["field"], field, "{}", answer.text);
        let detail = answer.json["detail"].as_str().unwrap();
        assert!(detail.contains(expected), "{field}={value}: {detail}");
        assert!(!detail.contains("sk_live") && !detail.contains("12345678"), "echoed: {detail}");
        assert!(!detail.contains("not valid JSON"), "{detail}");
    }
}

#[tokio::test]
async fn malformed_license_keys_are_not_found_like_unknown_ones() {
    let w = crate::licenses::World::new().await;
    w.issue(json!({"email": "a@example.com"})).await;
    for route in ["validate", "activate", "deactivate"] {
        let unknown = w.check(route, "ZZZZZ-ZZZZZ-ZZZZZ", "pc").await;
        for malformed in ["ABC DEF", "' OR 1=1 --", "KEY\u{202E}", "ＫＥＹ", "🔑🔑", "a;DROP TABLE licenses"] {
            let answer = w.check(route, malformed, "pc").await;
            assert_eq!(answer["code"], "NOT_FOUND", "{route} {malformed:?}: {answer}");
            assert_eq!(answer["valid"], unknown["valid"]);
            let mut a = answer.as_object().unwrap().clone();
            let mut u = unknown.as_object().unwrap().clone();
            for k in ["ts", "nonce"] {
                a.remove(k);
                u.remove(k);
            }
            assert_eq!(a, u, "{route} {malformed:?}: same answer as an unknown key");
        }
        let too_long = call(
            &w.public,
            Method::POST,
            &format!("/v1/licenses/{route}"),
            None,
            Some(json!({"license_key": "K".repeat(129), "installation_id": "pc"})),
        )
        .await;
        assert_eq!(too_long.status, StatusCode::BAD_REQUEST);
        assert_eq!(too_long.json["field"], "license_key");
    }
}

fn apigw_event(body: &str, base64: bool, key: &str) -> Value {
    let raw = include_str!("../fixtures/apigw-v2-requests-post.json").replace("KEY_PLACEHOLDER", key);
    let mut event: Value = serde_json::from_str(&raw).unwrap();
    event["body"] = json!(body);
    event["isBase64Encoded"] = json!(base64);
    event
}

#[tokio::test]
async fn bodies_that_are_not_utf8_or_not_base64_are_400_through_the_lambda_request_path() {
    let app = TestApp::new().await;
    let writer = app.api_key(&[shared::auth::Scope::RequestsWrite]).await;
    let router = request_log::router(app.ctx.clone());
    for (body, base64) in [
        // What API Gateway (and `cargo lambda watch` for a non-text content type) sends for
        // bytes that are not UTF-8: base64 of them.
        (STANDARD.encode([b'{', 0xff, 0xfe, b'"', 0xc3, b'}']), true),
        (STANDARD.encode(b"{\"service\": \"\xed\xa0\x80\"}"), true),
        // Flagged base64 but not base64: lambda_http's own conversion would panic.
        ("%%% not base64 %%%".to_owned(), true),
    ] {
        let event = apigw_event(&body, base64, &writer);
        let answer = request_log::handle(&app.ctx, router.clone(), event, Default::default()).await.unwrap();
        assert_eq!(answer["statusCode"], 400, "{body}: {answer}");
        let problem: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
        assert!(problem["code"].is_string(), "{problem}");
    }
    // The same path through another function's router (what `serve` runs under Lambda).
    let admin = admin::router(app.ctx.clone());
    let mut event = apigw_event(&STANDARD.encode([0xff, 0xfe]), true, &app.admin_key);
    event["rawPath"] = json!("/v1/clients");
    event["requestContext"]["http"]["path"] = json!("/v1/clients");
    let answer = shared::http::lambda::invoke(admin.clone(), event, Default::default()).await.unwrap();
    assert_eq!(answer["statusCode"], 400, "{answer}");
    let mut event = apigw_event("!!", true, &app.admin_key);
    event["rawPath"] = json!("/v1/clients");
    let answer = shared::http::lambda::invoke(admin, event, Default::default()).await.unwrap();
    assert_eq!(answer["statusCode"], 400, "{answer}");
}

#[tokio::test]
async fn non_utf8_bytes_straight_to_a_router_are_400_on_every_json_route() {
    let w = World::new("client_secret_post").await;
    for (router, path) in
        [(&w.admin, "/v1/clients"), (&w.admin, "/v1/api-keys"), (&w.tokens, "/v1/connections/authorize")]
    {
        let request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {}", w.app.admin_key))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(vec![b'{', b'"', b'n', 0xff, b'"', b':', b'1', b'}']))
            .unwrap();
        let answer = call_raw(router, request).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{path}: {}", answer.text);
    }
}

#[tokio::test]
async fn a_database_error_is_logged_with_its_sqlstate_and_message_not_just_db_error() {
    let app = TestApp::new().await;
    let client = app.client().await;
    let err = client.query("SELECT 1 / (SELECT 0)", &[]).await.unwrap_err();
    assert_eq!(err.to_string(), "db error", "what the log said before");
    let db_error = shared::db::DbError::Query(err);
    let line = shared::http::cause_chain(&db_error);
    assert!(line.contains("22012") && line.contains("division by zero"), "{line}");
    let answered = shared::http::ApiError::from(db_error);
    assert_eq!(answered.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(!answered.detail.contains("division"), "{}", answered.detail);
}
