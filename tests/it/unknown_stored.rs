//! Issue 13, "unknown stored values fail closed": a connection or client row holding a value
//! this build cannot read (a status, an `auth_method` or `quirks` a later version might write)
//! makes `GET /v1/tokens/{id}` a plain 500, never a guess: no provider call, no event.

use axum::http::StatusCode;

use crate::oauth_world::World;

/// A connected, due connection `id` (its token expires inside the refresh buffer, so a fetch
/// would refresh it) whose stored rows `tamper` then changes behind the code's back.
async fn fetch_after(id: &str, tamper: &str) -> (World, crate::helpers::Answer, i64) {
    let w = World::new("client_secret_post").await;
    let client = w.register("client_secret_post", false).await;
    w.provider.set(|b| b.expires_in = Some(60));
    w.connect(&client, id).await;
    w.app.client().await.batch_execute(tamper).await.unwrap();
    let events = w.event_count().await;
    let answer = w.token(id).await;
    (w, answer, events)
}

async fn assert_plain_500_without_side_effects(w: &World, answer: &crate::helpers::Answer, events_before: i64) {
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", answer.text);
    assert_eq!(answer.json["code"], "internal_error", "{}", answer.text);
    assert_eq!(answer.json["detail"], "an internal error occurred; the request id identifies it in the logs");
    assert!(answer.json.get("access_token").is_none(), "{}", answer.text);
    assert_eq!(w.provider.refresh_calls() + w.provider.client_credentials_calls(), 0, "no provider call");
    assert_eq!(w.event_count().await, events_before, "no event");
}

#[tokio::test]
async fn an_unknown_connection_status_is_a_plain_500_without_a_provider_call_or_event() {
    let (w, answer, events) = fetch_after(
        "odd-status",
        "ALTER TABLE connections DROP CONSTRAINT connections_status_check; \
         UPDATE connections SET status = 'paused' WHERE connection_id = 'odd-status';",
    )
    .await;
    assert_plain_500_without_side_effects(&w, &answer, events).await;
    assert!(!answer.text.contains("paused"), "{}", answer.text);
}

#[tokio::test]
async fn an_unknown_client_auth_method_is_a_plain_500_without_a_provider_call_or_event() {
    let (w, answer, events) = fetch_after(
        "odd-auth",
        "ALTER TABLE clients DROP CONSTRAINT clients_auth_method_check; \
         UPDATE clients SET auth_method = 'private_key_jwt';",
    )
    .await;
    assert_plain_500_without_side_effects(&w, &answer, events).await;
    assert!(!answer.text.contains("private_key_jwt"), "{}", answer.text);
}

#[tokio::test]
async fn unreadable_client_quirks_are_a_plain_500_without_a_provider_call_or_event() {
    // A quirk this build does not know: read as "no quirks" it would call the provider the
    // RFC way, which is what quirks exist to prevent.
    let (w, answer, events) =
        fetch_after("odd-quirks", r#"UPDATE clients SET quirks = '{"refresh_signing": "jws"}'::jsonb;"#).await;
    assert_plain_500_without_side_effects(&w, &answer, events).await;
    assert!(!answer.text.contains("jws"), "{}", answer.text);
}

#[tokio::test]
async fn unreadable_client_capture_is_a_plain_500_without_a_provider_call_or_event() {
    let (w, answer, events) =
        fetch_after("odd-capture", r#"UPDATE clients SET capture = '{"token": "everything"}'::jsonb;"#).await;
    assert_plain_500_without_side_effects(&w, &answer, events).await;
}
