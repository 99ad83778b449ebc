use futures::future::join_all;
use serde::{Deserialize, Serialize};
use shared::{
    events::{self, EventStoreError, ExpectedVersion, Metadata},
    projections,
};

use crate::helpers::TestApp;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type")]
enum Probe {
    Happened { n: u32 },
}

#[tokio::test]
async fn concurrent_appends_at_the_same_version_let_exactly_one_win() {
    let app = TestApp::new().await;
    let meta = Metadata::system("test");
    let attempts = (0..20).map(|n| {
        let ctx = app.ctx.clone();
        let meta = meta.clone();
        async move {
            let mut client = ctx.db().get().await.unwrap();
            let tx = client.transaction().await.unwrap();
            let result =
                events::append(&tx, "probe-1", ExpectedVersion::NoStream, &[Probe::Happened { n }], &meta).await;
            if result.is_ok() {
                tx.commit().await.unwrap();
            }
            result
        }
    });
    let results = join_all(attempts).await;
    let winners = results.iter().filter(|r| r.is_ok()).count();
    let conflicts = results.iter().filter(|r| matches!(r, Err(EventStoreError::Conflict { .. }))).count();
    assert_eq!((winners, conflicts), (1, 19), "{results:?}");

    let client = app.client().await;
    let stream = events::read_stream(&client, "probe-1", 0, 100).await.unwrap();
    assert_eq!(stream.len(), 1);
    assert_eq!(stream[0].version, 1);
}

#[tokio::test]
async fn a_stale_expected_version_is_a_typed_conflict_and_nothing_is_written() {
    let app = TestApp::new().await;
    let meta = Metadata::system("test");
    let mut client = app.ctx.db().get().await.unwrap();
    let tx = client.transaction().await.unwrap();
    let first = events::append(
        &tx,
        "probe-2",
        ExpectedVersion::NoStream,
        &[Probe::Happened { n: 1 }, Probe::Happened { n: 2 }],
        &meta,
    )
    .await
    .unwrap();
    assert_eq!(first.iter().map(|e| e.version).collect::<Vec<_>>(), vec![1, 2]);
    tx.commit().await.unwrap();

    for expected in [ExpectedVersion::Exact(1), ExpectedVersion::Exact(5), ExpectedVersion::NoStream] {
        let tx = client.transaction().await.unwrap();
        let err = events::append(&tx, "probe-2", expected, &[Probe::Happened { n: 9 }], &meta).await.unwrap_err();
        match err {
            EventStoreError::Conflict { stream_id, actual, .. } => {
                assert_eq!(stream_id, "probe-2");
                assert_eq!(actual, 2);
            }
            other => panic!("expected a conflict, got {other:?}"),
        }
        tx.rollback().await.unwrap();
    }
    let tx = client.transaction().await.unwrap();
    let third =
        events::append(&tx, "probe-2", ExpectedVersion::Exact(2), &[Probe::Happened { n: 3 }], &meta).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(third[0].version, 3);
    let stream = events::read_stream(&**client, "probe-2", 0, 100).await.unwrap();
    assert_eq!(stream.len(), 3);
    assert_eq!(stream[2].metadata["actor"], "system:test");
    assert!(matches!(stream[2].decode::<Probe>().unwrap(), Probe::Happened { n: 3 }));
}

#[tokio::test]
async fn the_database_refuses_update_delete_and_truncate_on_events() {
    let app = TestApp::new().await;
    app.api_key(&[shared::auth::Scope::TokensRead]).await;
    // Connected as the superuser that owns the table: only the triggers stand in the way.
    let client = app.client().await;
    for statement in
        ["UPDATE events SET type = 'Forged'", "DELETE FROM events", "TRUNCATE events", "TRUNCATE events CASCADE"]
    {
        let err = client.batch_execute(statement).await.expect_err(statement);
        let db = err.as_db_error().expect("a database error");
        assert!(db.message().contains("append-only"), "{statement}: {}", db.message());
    }
    let count: i64 = client.query_one("SELECT count(*) FROM events", &[]).await.unwrap().get(0);
    assert_eq!(count, 1);
}

#[tokio::test]
async fn replay_rebuilds_projections_equal_to_the_live_tables() {
    let app = TestApp::new().await;
    let meta = Metadata::system("test");
    let mut ids = Vec::new();
    for i in 0..5 {
        let created = shared::api_keys::create(
            &app.ctx,
            shared::api_keys::NewApiKey { name: format!("key {i}"), scopes: vec![shared::auth::Scope::RequestsWrite] },
            &meta,
        )
        .await
        .unwrap();
        ids.push(created.api_key.id);
    }
    shared::api_keys::revoke(&app.ctx, ids[1], &meta).await.unwrap();

    let mut client = app.client().await;
    let report = projections::replay(&mut client, shared::PROJECTORS).await.unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.events, 6);
    let api_keys = report.tables.iter().find(|t| t.table == "api_keys").unwrap();
    assert_eq!((api_keys.live_rows, api_keys.rebuilt_rows), (5, 5));

    // A projection edited behind the log's back is reported, by key.
    client.execute("UPDATE api_keys SET name = 'tampered' WHERE id = $1", &[&ids[3]]).await.unwrap();
    client.execute("UPDATE api_keys SET revoked_at = NULL WHERE id = $1", &[&ids[1]]).await.unwrap();
    let report = projections::replay(&mut client, shared::PROJECTORS).await.unwrap();
    assert!(!report.is_clean());
    let api_keys = report.tables.iter().find(|t| t.table == "api_keys").unwrap();
    let mut expected = vec![ids[1].to_string(), ids[3].to_string()];
    expected.sort();
    assert_eq!(api_keys.only_live, expected);
    assert_eq!(api_keys.only_rebuilt, expected);

    // Replay changed nothing live.
    let name: String = client.query_one("SELECT name FROM api_keys WHERE id = $1", &[&ids[3]]).await.unwrap().get(0);
    assert_eq!(name, "tampered");
}

#[tokio::test]
async fn a_projection_failure_rolls_back_the_append() {
    let app = TestApp::new().await;
    let mut client = app.ctx.db().get().await.unwrap();
    let tx = client.transaction().await.unwrap();
    // No projection knows the "probe" stream kind, so recording must fail as a whole.
    let err = projections::record(
        &tx,
        &shared::api_keys::PROJECTOR,
        "probe-3",
        ExpectedVersion::NoStream,
        &[Probe::Happened { n: 1 }],
        &Metadata::system("t"),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, EventStoreError::Payload(_)));
    drop(tx);
    let count: i64 =
        client.query_one("SELECT count(*) FROM events WHERE stream_id = 'probe-3'", &[]).await.unwrap().get(0);
    assert_eq!(count, 0);
}
