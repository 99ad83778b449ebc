//! The tag filter at scale (DESIGN §6.14, migrations/0005_connection_tags.sql): on thousands
//! of tagged connections the exact statement behind `GET /v1/connections?tag.<name>=<value>`
//! is served by the GIN index on `tags`, and keyset pages through the matches return each
//! exactly once.

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_postgres::types::Type;
use uuid::Uuid;

use crate::{helpers::call, oauth_world::World};

/// The statement `shared::connections::list` runs, byte for byte.
const LIST: &str = include_str!("../../shared/src/connections/sql/list.sql");
const CONNECTIONS: i32 = 5_000;
/// Connection `n` has `org = org-(n % ORGS)`: 100 connections per org.
const ORGS: i32 = 50;

fn bulk_id(n: i32) -> String {
    format!("bulk-{n:05}")
}

/// The plan of LIST for a tag filter (and, when given, a cursor), planned with the values
/// bound as the service binds them (an unnamed statement, so a plan for these values).
async fn plan(db: &tokio_postgres::Client, tags: &Value, after: Option<&str>) -> String {
    let none_uuid: Option<Uuid> = None;
    let none_text: Option<String> = None;
    let fetch: i64 = 51;
    let rows = db
        .query_typed(
            &format!("EXPLAIN (FORMAT JSON) {LIST}"),
            &[
                (&none_uuid, Type::UUID),
                (&none_text, Type::TEXT),
                (&after, Type::TEXT),
                (&fetch, Type::INT8),
                (tags, Type::JSONB),
            ],
        )
        .await
        .unwrap();
    let plan: Value = rows[0].get(0);
    plan.to_string()
}

#[tokio::test]
async fn the_tag_filter_uses_the_gin_index_and_keyset_pages_return_every_match_once() {
    let w = World::new("client_secret_post").await;
    let client: Uuid = w.register("client_secret_post", false).await.parse().unwrap();
    let db = w.app.client().await;
    // Rows straight into the projection: the filter reads only this table, and 5,000
    // authorizations through the fake provider would prove nothing more.
    db.execute(
        "INSERT INTO connections (connection_id, client_id, status, tags, created_at, updated_at, version)
         SELECT format('bulk-%s', lpad(n::text, 5, '0')), $1, 'active',
                jsonb_build_object('org', 'org-' || (n % $3), 'user', 'u-' || n), now(), now(), 1
         FROM generate_series(1, $2) AS n",
        &[&client, &CONNECTIONS, &ORGS],
    )
    .await
    .unwrap();
    db.batch_execute("ANALYZE connections").await.unwrap();

    // A selective filter (one end user among 5,000, or a cursor page of one) is served by
    // the index with the planner left to itself.
    let uses_index = |plan: &str| plan.contains(r#""Index Name":"connections_tags""#);
    let user = plan(&db, &json!({"user": "u-3000"}), None).await;
    assert!(uses_index(&user), "one end user: {user}");
    let later = plan(&db, &json!({"user": "u-3000"}), Some(&bulk_id(2_507))).await;
    assert!(uses_index(&later), "a page after a cursor: {later}");
    let two = plan(&db, &json!({"org": "org-7", "user": "u-7"}), None).await;
    assert!(uses_index(&two), "two tags at once: {two}");
    // For a broad value (2% of the rows) the planner prefers, at this size, walking the
    // primary key in keyset order until LIMIT matches, or else reading the whole table
    // (5,000 small rows). Only to show the index can serve that query too, plain index scans
    // and sequential scans are switched off for one transaction (GIN is read by bitmap scans,
    // which stay on); the assertions above need no setting.
    db.batch_execute("BEGIN; SET LOCAL enable_indexscan = off; SET LOCAL enable_seqscan = off").await.unwrap();
    let broad = plan(&db, &json!({"org": "org-7"}), None).await;
    db.batch_execute("ROLLBACK").await.unwrap();
    assert!(uses_index(&broad), "a broad value: {broad}");

    // Keyset pages through the API: every match once, in id order, nothing else.
    let expected: Vec<String> = (1..=CONNECTIONS).filter(|n| n % ORGS == 7).map(bulk_id).collect();
    assert_eq!(expected.len(), 100);
    let key = Some(w.app.admin_key.as_str());
    let mut seen: Vec<String> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            None => "/v1/connections?tag.org=org-7&limit=7".to_owned(),
            Some(c) => format!("/v1/connections?tag.org=org-7&limit=7&cursor={c}"),
        };
        let page = call(&w.tokens, Method::GET, &path, key, None).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        let items = page.json["items"].as_array().unwrap();
        assert!(items.len() <= 7);
        for item in items {
            assert_eq!(item["tags"]["org"], "org-7", "{item}");
            seen.push(item["connection_id"].as_str().unwrap().to_owned());
        }
        pages += 1;
        match page.json["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
        assert!(pages <= 20, "pagination does not end");
    }
    assert_eq!(pages, 15, "100 matches in pages of 7");
    assert_eq!(seen.iter().collect::<BTreeSet<_>>().len(), seen.len(), "a connection came twice");
    assert_eq!(seen, expected);
}
