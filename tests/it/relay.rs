//! The events relay against real PostgreSQL: ordering, gaps from concurrent and rolled-back
//! transactions, refused entries, a crash between publishing and saving, overlapping runs,
//! and the real EventBridge API of the moto emulator.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use shared::{
    events::{self, ExpectedVersion, Metadata},
    relay::{self, Entry, PublishError, Publisher},
};

use crate::helpers::TestApp;

/// Records what it is given; refuses the positions in `refuse` once each.
#[derive(Clone, Default)]
struct Recorder {
    published: Arc<Mutex<Vec<Entry>>>,
    refuse: Arc<Mutex<Vec<i64>>>,
    calls: Arc<Mutex<usize>>,
}

impl Recorder {
    fn positions(&self) -> Vec<i64> {
        self.published.lock().unwrap().iter().map(|e| e.position).collect()
    }
    fn types(&self) -> Vec<String> {
        self.published.lock().unwrap().iter().map(|e| e.detail_type.clone()).collect()
    }
}

impl Publisher for Recorder {
    async fn put(&self, entries: &[Entry]) -> Result<Vec<Option<String>>, PublishError> {
        assert!(entries.len() <= relay::BATCH, "PutEvents takes at most 10 entries");
        *self.calls.lock().unwrap() += 1;
        let mut refuse = self.refuse.lock().unwrap();
        Ok(entries
            .iter()
            .map(|e| {
                if let Some(i) = refuse.iter().position(|p| *p == e.position) {
                    refuse.remove(i);
                    Some("ThrottlingException: slow down".to_owned())
                } else {
                    self.published.lock().unwrap().push(e.clone());
                    None
                }
            })
            .collect())
    }
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

/// Appends raw events (the relay reads only the log) and commits; returns their positions.
async fn append(app: &TestApp, stream: &str, events: &[Value]) -> Vec<i64> {
    let mut client = app.ctx.db().get().await.unwrap();
    let tx = client.transaction().await.unwrap();
    let recorded = events::append(&tx, stream, ExpectedVersion::Any, events, &Metadata::system("test")).await.unwrap();
    tx.commit().await.unwrap();
    recorded.iter().map(|e| e.position).collect()
}

fn ev(kind: &str, data: Value) -> Value {
    let mut v = data;
    v["type"] = json!(kind);
    v
}

#[tokio::test]
async fn outside_facts_are_published_in_order_without_secrets_and_recovery_is_derived() {
    let app = TestApp::new().await;
    append(
        &app,
        "connection-b-1",
        &[ev(
            "ConnectionAuthorized",
            json!({"client_id": "c", "access_token": "v1:k1:secret", "refresh_token": "v1:k1:r", "scopes": ["crm"]}),
        )],
    )
    .await;
    append(&app, "connection-b-1", &[ev("TokenRefreshed", json!({"trigger": "scheduled"}))]).await;
    append(&app, "connection-b-1", &[ev("TokenRefreshFailed", json!({"error_class": "transient"}))]).await;
    append(&app, "connection-b-1", &[ev("TokenRefreshFailed", json!({"error_class": "transient"}))]).await;
    append(&app, "connection-b-1", &[ev("TokenRefreshed", json!({"trigger": "scheduled"}))]).await;
    append(
        &app,
        "license-l-1",
        &[ev("LicenseIssued", json!({"email": "a@example.com", "license_key": "v1:k1:key", "key_hash": "ab"}))],
    )
    .await;
    append(&app, "apikey-k-1", &[ev("ApiKeyCreated", json!({"name": "x"}))]).await;
    append(&app, "license-l-1", &[ev("LicenseSuspended", json!({}))]).await;

    let recorder = Recorder::default();
    let summary = relay::run(&app.ctx, &recorder, soon()).await.unwrap();
    assert_eq!(
        recorder.types(),
        vec!["ConnectionAuthorized", "ConnectionRecovered", "LicenseIssued", "LicenseSuspended"]
    );
    assert_eq!(summary.published, 4);
    assert_eq!(summary.read, 8);
    let positions = recorder.positions();
    assert!(positions.windows(2).all(|w| w[0] < w[1]));
    let all = serde_json::to_string(&*recorder.published.lock().unwrap()).unwrap();
    assert!(!all.contains("v1:k1"), "{all}");
    assert!(!all.contains("key_hash"), "{all}");
    let first = recorder.published.lock().unwrap()[0].detail.clone();
    assert_eq!(first["connection_id"], "b-1");
    assert_eq!(first["data"], json!({"client_id": "c", "scopes": ["crm"]}));
    assert_eq!(first["version"], 1);

    // Caught up: nothing more, and the position is at the last event.
    let again = relay::run(&app.ctx, &recorder, soon()).await.unwrap();
    assert_eq!((again.read, again.published), (0, 0));
    assert_eq!(again.position, summary.position);
    assert_eq!(again.lag_seconds, 0.0);
}

#[tokio::test]
async fn more_than_one_batch_is_sent_ten_at_a_time() {
    let app = TestApp::new().await;
    for i in 0..25 {
        append(&app, &format!("license-l-{i}"), &[ev("LicenseIssued", json!({}))]).await;
    }
    let recorder = Recorder::default();
    let summary = relay::run(&app.ctx, &recorder, soon()).await.unwrap();
    assert_eq!(summary.published, 25);
    assert_eq!(*recorder.calls.lock().unwrap(), 3);
}

#[tokio::test]
async fn a_refused_entry_is_retried_never_skipped_and_nothing_overtakes_it() {
    let app = TestApp::new().await;
    let p1 = append(&app, "license-a", &[ev("LicenseIssued", json!({}))]).await[0];
    let p2 = append(&app, "license-a", &[ev("LicenseSuspended", json!({}))]).await[0];
    let p3 = append(&app, "license-a", &[ev("LicenseRevoked", json!({}))]).await[0];
    let recorder = Recorder::default();
    recorder.refuse.lock().unwrap().push(p2);

    let first = relay::run(&app.ctx, &recorder, soon()).await.unwrap();
    assert_eq!(first.failed, 1);
    assert_eq!(first.position, p1, "the position stops before the refused entry");
    let second = relay::run(&app.ctx, &recorder, soon()).await.unwrap();
    assert_eq!(second.failed, 0);
    assert_eq!(second.position, p3);
    // p3 was accepted in the first call too (at least once), but p2 always precedes it.
    let positions = recorder.positions();
    let first_p2 = positions.iter().position(|p| *p == p2).unwrap();
    assert!(positions[first_p2..].contains(&p3));
    assert_eq!(positions.iter().filter(|p| **p == p2).count(), 1);
}

#[tokio::test]
async fn a_crash_between_publishing_and_saving_republishes_on_the_next_run() {
    let app = TestApp::new().await;
    let positions =
        append(&app, "license-c", &[ev("LicenseIssued", json!({})), ev("LicenseSuspended", json!({}))]).await;

    /// Publishes, then kills the relay's own database session before it can save.
    struct Crashing {
        inner: Recorder,
        admin_url: String,
        relay_app: &'static str,
    }
    impl Publisher for Crashing {
        async fn put(&self, entries: &[Entry]) -> Result<Vec<Option<String>>, PublishError> {
            let out = self.inner.put(entries).await;
            let admin = crate::helpers::connect(&self.admin_url).await;
            admin
                .execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
                    &[&self.relay_app],
                )
                .await
                .unwrap();
            out
        }
    }
    let crashing =
        Crashing { inner: Recorder::default(), admin_url: app.db_url.clone(), relay_app: "events-relay-crash" };
    let dying = app.another_context("events-relay-crash");
    assert!(relay::run(&dying, &crashing, soon()).await.is_err(), "the run dies before saving its position");
    assert_eq!(crashing.inner.positions(), positions);

    let recorder = Recorder::default();
    let next = relay::run(&app.another_context("events-relay"), &recorder, soon()).await.unwrap();
    assert_eq!(recorder.positions(), positions, "published again: at least once");
    assert_eq!(next.position, positions[1]);
}

#[tokio::test]
async fn an_event_committed_late_by_a_concurrent_transaction_is_not_skipped() {
    let app = TestApp::new().await;
    let recorder = Recorder::default();
    append(&app, "license-x", &[ev("LicenseIssued", json!({}))]).await;

    // A takes the lower position and stays open; B takes the next one and commits.
    let mut slow = app.client().await;
    let slow_tx = slow.transaction().await.unwrap();
    let late = events::append(
        &slow_tx,
        "license-slow",
        ExpectedVersion::NoStream,
        &[ev("LicenseIssued", json!({}))],
        &Metadata::system("t"),
    )
    .await
    .unwrap()[0]
        .position;
    let early = append(&app, "license-fast", &[ev("LicenseIssued", json!({}))]).await[0];
    assert!(early > late);

    let first = relay::run(&app.ctx, &recorder, soon()).await.unwrap();
    assert_eq!(first.waiting_on_gap, Some(late));
    assert!(!recorder.positions().contains(&early), "must not pass the gap while its transaction runs");
    let still = relay::run(&app.ctx, &recorder, soon()).await.unwrap();
    assert_eq!(still.waiting_on_gap, Some(late));

    slow_tx.commit().await.unwrap();
    let after = relay::run(&app.ctx, &recorder, soon()).await.unwrap();
    assert_eq!(after.waiting_on_gap, None);
    let positions = recorder.positions();
    assert_eq!(&positions[positions.len() - 2..], &[late, early]);
}

#[tokio::test]
async fn a_rolled_back_gap_is_passed_once_every_transaction_that_could_fill_it_has_ended() {
    let app = TestApp::new().await;
    let recorder = Recorder::default();
    // A rolled-back append burns a position.
    {
        let mut client = app.client().await;
        let tx = client.transaction().await.unwrap();
        events::append(
            &tx,
            "license-gone",
            ExpectedVersion::NoStream,
            &[ev("LicenseIssued", json!({}))],
            &Metadata::system("t"),
        )
        .await
        .unwrap();
        tx.rollback().await.unwrap();
    }
    // An unrelated writer is running (it has a transaction id) when the gap is first seen.
    let mut other = app.client().await;
    let other_tx = other.transaction().await.unwrap();
    other_tx.execute("SELECT pg_current_xact_id()", &[]).await.unwrap();
    let after_gap = append(&app, "license-y", &[ev("LicenseIssued", json!({}))]).await[0];

    let first = relay::run(&app.ctx, &recorder, soon()).await.unwrap();
    assert_eq!(first.waiting_on_gap, Some(after_gap - 1), "a writer that could hold the gap is running");
    other_tx.rollback().await.unwrap();

    // A newer writer starting now cannot hold the old gap and must not block it.
    let mut newer = app.client().await;
    let newer_tx = newer.transaction().await.unwrap();
    newer_tx.execute("SELECT pg_current_xact_id()", &[]).await.unwrap();
    // Transaction ids are cluster-wide: other tests' (or benchmarks') transactions that
    // were running when the gap was first seen also hold it back, so allow time for them.
    let mut passed = false;
    for _ in 0..600 {
        if relay::run(&app.ctx, &recorder, soon()).await.unwrap().waiting_on_gap.is_none() {
            passed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(passed, "the gap must be passed while only newer writers run");
    assert_eq!(recorder.positions(), vec![after_gap]);
    newer_tx.rollback().await.unwrap();
}

#[tokio::test]
async fn two_runs_at_once_never_publish_the_same_range() {
    let app = TestApp::new().await;
    for i in 0..30 {
        append(&app, &format!("license-p{i}"), &[ev("LicenseIssued", json!({}))]).await;
    }
    /// Slow publisher, so the runs overlap for real.
    #[derive(Clone, Default)]
    struct Slow(Recorder);
    impl Publisher for Slow {
        async fn put(&self, entries: &[Entry]) -> Result<Vec<Option<String>>, PublishError> {
            tokio::time::sleep(Duration::from_millis(100)).await;
            self.0.put(entries).await
        }
    }
    let shared = Slow::default();
    let (a, b) = (app.another_context("events-relay"), app.another_context("events-relay"));
    let (ra, rb) = tokio::join!(relay::run(&a, &shared, soon()), relay::run(&b, &shared, soon()));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert!(ra.skipped_run != rb.skipped_run, "exactly one run works: {ra:?} {rb:?}");
    let mut positions = shared.0.positions();
    let n = positions.len();
    positions.dedup();
    assert_eq!(positions.len(), n, "no position published twice");
    assert_eq!(n, 30);
}

#[tokio::test]
async fn lag_is_reported_while_behind() {
    let app = TestApp::new().await;
    append(&app, "license-old", &[ev("LicenseIssued", json!({}))]).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    append(&app, "license-new", &[ev("LicenseIssued", json!({}))]).await;
    let recorder = Recorder::default();
    recorder.refuse.lock().unwrap().push(i64::MAX); // nothing refused; keeps the type simple
    // Stop after the first event by refusing the second.
    let second = {
        let client = app.client().await;
        client.query_one("SELECT max(position) FROM events", &[]).await.unwrap().get::<_, i64>(0)
    };
    recorder.refuse.lock().unwrap().push(second);
    let behind = relay::run(&app.ctx, &recorder, soon()).await.unwrap();
    assert!(behind.lag_seconds >= 1.0, "{behind:?}");
    let caught_up = relay::run(&app.ctx, &recorder, soon()).await.unwrap();
    assert_eq!(caught_up.lag_seconds, 0.0);
}

/// A fresh bus on the moto emulator with a rule sending every `source: keyledger` entry to
/// a fresh SQS queue, so what EventBridge accepted can be read back.
struct Bus {
    name: String,
    sqs: aws_sdk_sqs::Client,
    queue: String,
}

impl Bus {
    async fn new() -> Self {
        use aws_sdk_eventbridge::types::Target;
        crate::helpers::secrets_manager().await; // asserts the emulator is configured
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let eb = aws_sdk_eventbridge::Client::new(&config);
        let sqs = aws_sdk_sqs::Client::new(&config);
        let id = uuid::Uuid::new_v4().simple().to_string();
        let bus = format!("keyledger-{id}");
        eb.create_event_bus().name(&bus).send().await.unwrap();
        let queue = sqs.create_queue().queue_name(format!("kl-{id}")).send().await.unwrap().queue_url.unwrap();
        let arn = sqs
            .get_queue_attributes()
            .queue_url(&queue)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
            .clone();
        eb.put_rule()
            .name("all")
            .event_bus_name(&bus)
            .event_pattern(r#"{"source": ["keyledger"]}"#)
            .send()
            .await
            .unwrap();
        eb.put_targets()
            .rule("all")
            .event_bus_name(&bus)
            .targets(Target::builder().id("q").arn(arn).build().unwrap())
            .send()
            .await
            .unwrap();
        Self { name: bus, sqs, queue }
    }

    /// The raw bodies of at least `n` delivered entries (fewer if they never come).
    async fn receive(&self, n: usize) -> Vec<String> {
        let mut received = Vec::new();
        for _ in 0..10 {
            let out =
                self.sqs.receive_message().queue_url(&self.queue).max_number_of_messages(10).send().await.unwrap();
            received.extend(out.messages.unwrap_or_default().into_iter().filter_map(|m| m.body));
            if received.len() >= n {
                break;
            }
        }
        received
    }
}

#[tokio::test]
async fn entries_reach_a_real_eventbridge_bus() {
    let bus = Bus::new().await;
    let app = TestApp::new().await;
    let positions = append(
        &app,
        "connection-branch-42",
        &[
            ev("ConnectionAuthorized", json!({"access_token": "v1:k1:zzz", "scopes": ["a"]})),
            ev("ReauthorizationRequired", json!({"error": "invalid_grant"})),
        ],
    )
    .await;
    let summary = events_relay::handle(
        &app.ctx,
        &relay::EventBridge::new(bus.name.clone()),
        &serde_json::from_str(include_str!("../fixtures/schedule.json")).unwrap(),
        soon(),
    )
    .await
    .unwrap();
    assert_eq!(summary["published"], 2, "{summary}");

    let received = bus.receive(2).await;
    let mut bodies: Vec<Value> = received.iter().map(|b| serde_json::from_str(b).unwrap()).collect();
    bodies.sort_by_key(|b| b["detail"]["position"].as_i64());
    assert_eq!(bodies.len(), 2, "{received:?}");
    assert_eq!(bodies[0]["source"], "keyledger");
    assert_eq!(bodies[0]["detail-type"], "ConnectionAuthorized");
    assert_eq!(bodies[0]["detail"]["position"], positions[0]);
    assert_eq!(bodies[0]["detail"]["connection_id"], "branch-42");
    assert!(!received.concat().contains("v1:k1"));
    assert_eq!(bodies[1]["detail-type"], "ReauthorizationRequired");
}

/// Publishes through the moto bus what the log holds after `publish` has run, and returns
/// the delivered entries ordered by position, with their raw bodies joined.
async fn publish_all(app: &TestApp, bus: &Bus, expected: usize) -> (Vec<Value>, String) {
    let summary = events_relay::handle(
        &app.ctx,
        &relay::EventBridge::new(bus.name.clone()),
        &serde_json::from_str(include_str!("../fixtures/schedule.json")).unwrap(),
        soon(),
    )
    .await
    .unwrap();
    assert_eq!(summary["published"], expected, "{summary}");
    let received = bus.receive(expected).await;
    let mut bodies: Vec<Value> = received.iter().map(|b| serde_json::from_str(b).unwrap()).collect();
    bodies.sort_by_key(|b| b["detail"]["position"].as_i64());
    assert_eq!(bodies.len(), expected, "{received:?}");
    (bodies, received.concat())
}

/// DESIGN §6.14: every entry of a connection carries the connection's tags and its captured
/// `provider_data` as they were at that event; ConnectionTagsChanged is published; nothing
/// a provider answered besides the captured fields, and no token, reaches the bus.
#[tokio::test]
async fn connection_entries_carry_tags_and_captured_provider_data_and_tag_changes_are_published() {
    use axum::http::{Method, StatusCode};

    use crate::{helpers::call, oauth_world::World};

    let bus = Bus::new().await;
    let w = World::new("client_secret_post").await;
    w.provider.set(|b| {
        b.errors_in_200 = true;
        b.dead_refresh_code = "invalid_code".into();
        b.scope_style = crate::fake_provider::ScopeStyle::Comma;
        b.callback_extra = vec![
            ("accounts-server".into(), "https://accounts.zoho.eu".into()),
            ("secret_thing".into(), "do-not-keep-me".into()),
        ];
        b.extra =
            serde_json::from_value(json!({"api_domain": "https://www.zohoapis.eu", "id_token": "jwt-x"})).unwrap();
    });
    let key = Some(w.app.admin_key.as_str());
    let mut body = json!({
        "preset": "zoho",
        "authorize_url": w.provider.url("/authorize"),
        "token_url": w.provider.url("/token"),
        "revoke_url": w.provider.url("/revoke"),
        "client_id": "kl-client",
        "client_secret": w.client_secret,
        "redirect_uri": "http://127.0.0.1:9/oauth/callback",
        "scopes": ["read", "write"],
    });
    let created = call(&w.admin, Method::POST, "/v1/clients", key, Some(body.take())).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let client = created.json["id"].as_str().unwrap().to_owned();

    // Authorized with tags, through the browser.
    let tags = json!({"end_user_id": "u-7", "organization_id": "acme"});
    let start = json!({"client_id": client, "connection_id": "zoho-7", "tags": tags});
    let started = call(&w.tokens, Method::POST, "/v1/connections/authorize", key, Some(start)).await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.text);
    let query = w.consent(started.json["authorize_url"].as_str().unwrap()).await;
    assert_eq!(w.callback(&query, "application/json").await.status, StatusCode::OK);
    let token = w.token("zoho-7").await.json["access_token"].as_str().unwrap().to_owned();
    // The tags change; a refresh fails, then succeeds with a new captured value (recovered);
    // the grant dies; the connection is revoked.
    let new_tags = json!({"end_user_id": "u-7", "organization_id": "globex"});
    let patched = call(&w.tokens, Method::PATCH, "/v1/connections/zoho-7", key, Some(json!({"tags": new_tags}))).await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    w.provider.set(|b| b.fail_status = Some(503));
    // Transient: recorded as TokenRefreshFailed (the answer may still be the current token).
    call(&w.tokens, Method::POST, "/v1/tokens/zoho-7/refresh", key, None).await;
    w.provider.set(|b| {
        b.fail_status = None;
        b.extra.insert("api_domain".into(), json!("https://www.zohoapis.in"));
    });
    let refreshed = call(&w.tokens, Method::POST, "/v1/tokens/zoho-7/refresh", key, None).await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.text);
    let refreshed_token = refreshed.json["access_token"].as_str().unwrap().to_owned();
    w.provider.set(|b| b.refuse_refresh = true);
    let dead = call(&w.tokens, Method::POST, "/v1/tokens/zoho-7/refresh", key, None).await;
    assert_eq!(dead.status, StatusCode::CONFLICT, "{}", dead.text);
    let revoked = call(&w.tokens, Method::DELETE, "/v1/connections/zoho-7", key, None).await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{}", revoked.text);
    assert_eq!(
        w.event_types("connection-zoho-7").await,
        vec![
            "ConnectionAuthorized",
            "ConnectionTagsChanged",
            "TokenRefreshFailed",
            "TokenRefreshed",
            "ReauthorizationRequired",
            "ConnectionRevoked"
        ]
    );

    let (bodies, all) = publish_all(&w.app, &bus, 5).await;
    let types: Vec<&str> = bodies.iter().map(|b| b["detail-type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        vec![
            "ConnectionAuthorized",
            "ConnectionTagsChanged",
            "ConnectionRecovered",
            "ReauthorizationRequired",
            "ConnectionRevoked"
        ]
    );
    let first_data = json!({"api_domain": "https://www.zohoapis.eu", "accounts-server": "https://accounts.zoho.eu"});
    let later_data = json!({"api_domain": "https://www.zohoapis.in", "accounts-server": "https://accounts.zoho.eu"});
    let expected = [
        (&tags, &first_data),
        (&new_tags, &first_data),
        (&new_tags, &later_data),
        (&new_tags, &later_data),
        (&new_tags, &later_data),
    ];
    for (body, (tags, provider_data)) in bodies.iter().zip(expected) {
        let detail = &body["detail"];
        assert_eq!(detail["connection_id"], "zoho-7");
        assert_eq!(&detail["tags"], tags, "{detail}");
        assert_eq!(&detail["provider_data"], provider_data, "{detail}");
    }
    assert_eq!(bodies[0]["detail"]["data"]["provider_data"], first_data);
    assert_eq!(bodies[0]["detail"]["data"]["tags"], tags);
    assert_eq!(bodies[1]["detail"]["data"], json!({"tags": new_tags}));
    assert!(bodies[1]["detail"]["actor"].as_str().is_some_and(|a| a.starts_with("admin")), "{}", bodies[1]);
    for secret in [token.as_str(), refreshed_token.as_str(), &w.client_secret, "jwt-x", "do-not-keep-me", "v1:"] {
        assert!(!all.contains(secret), "{secret} reached the bus: {all}");
    }
    for field in ["\"access_token\"", "\"refresh_token\"", "id_token", "secret_thing"] {
        assert!(!all.contains(field), "{field} reached the bus: {all}");
    }
}

/// An event written before capture lists existed may hold a whole provider answer in
/// `provider_data`: only flat values under names the capture rule accepts are published.
#[tokio::test]
async fn a_whole_provider_answer_in_an_old_event_is_cut_to_what_the_capture_rule_accepts() {
    let bus = Bus::new().await;
    let app = TestApp::new().await;
    let answer = json!({
        "api_domain": "https://www.zohoapis.com", "team.id": "T1", "ok": true,
        "id_token": "jwt-sekrit", "bot_access_token": "xoxb-sekrit", "session_state": "sess-sekrit",
        "authed_user": {"id": "U1", "access_token": "xoxp-sekrit"}, "scopes": ["a"], "note": "v1:k1:zzz",
    });
    append(
        &app,
        "connection-legacy-1",
        &[ev(
            "ConnectionAuthorized",
            json!({"client_id": "c", "access_token": "v1:k1:at", "scopes": ["a"], "provider_data": answer}),
        )],
    )
    .await;
    append(&app, "connection-legacy-1", &[ev("ConnectionTagsChanged", json!({"tags": {"org": "acme"}}))]).await;
    append(&app, "connection-legacy-1", &[ev("ConnectionRevoked", json!({"provider_revocation": "not_supported"}))])
        .await;

    let (bodies, all) = publish_all(&app, &bus, 3).await;
    let kept = json!({"api_domain": "https://www.zohoapis.com", "team.id": "T1", "ok": true});
    assert_eq!(bodies[0]["detail"]["data"]["provider_data"], kept);
    assert_eq!(bodies[0]["detail"]["tags"], json!({}), "untagged until the change");
    for (body, tags) in bodies.iter().zip([json!({}), json!({"org": "acme"}), json!({"org": "acme"})]) {
        assert_eq!(body["detail"]["provider_data"], kept, "{body}");
        assert_eq!(body["detail"]["tags"], tags, "{body}");
    }
    for secret in ["sekrit", "v1:", "xox"] {
        assert!(!all.contains(secret), "{secret} reached the bus: {all}");
    }
}
