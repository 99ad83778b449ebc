//! Per-function database roles (DESIGN §6.12, issue 9): created by `migrate` from each
//! function's secret, proved by connecting as each role to the real PostgreSQL and running
//! statements that must pass and statements that must be refused.

use std::{collections::BTreeMap, time::Duration};

use axum::http::{Method, StatusCode};
use secrecy::SecretString;
use serde_json::{Value, json};
use shared::{
    crypto::random_token,
    events::{self, ExpectedVersion, Metadata},
    roles::{self, GRANTS, RoleLogin},
};
use tokio_postgres::{Client, error::SqlState};

use crate::helpers::{TestApp, call, config_from, connect, secrets_manager, server_url};

const PRIVILEGES: [&str; 5] = ["SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE"];

/// Role names unique to one test: roles are cluster-wide, tests run in parallel.
pub(crate) fn role_names() -> BTreeMap<&'static str, String> {
    let prefix = format!("kl_t_{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    GRANTS.iter().map(|g| (g.function, format!("{prefix}_{}", g.function.replace('-', "_")))).collect()
}

fn logins(names: &BTreeMap<&'static str, String>) -> Vec<RoleLogin> {
    names
        .iter()
        .map(|(function, name)| RoleLogin {
            function: (*function).into(),
            username: name.clone(),
            password: SecretString::from(random_token::<24>()),
        })
        .collect()
}

/// `app`'s database as `role` (the local server trusts loopback, so the password is not
/// checked here; the SCRAM verifiers are checked against pg_authid instead).
pub(crate) async fn connect_as(app: &TestApp, role: &str) -> Client {
    let mut url = url::Url::parse(&app.db_url).unwrap();
    url.set_username(role).unwrap();
    connect(url.as_str()).await
}

pub(crate) async fn drop_roles(app: &TestApp, names: impl IntoIterator<Item = &String>) {
    let client = app.client().await;
    for name in names {
        let _ = client.batch_execute(&format!("DROP OWNED BY {name}; DROP ROLE IF EXISTS {name}")).await;
    }
}

/// Runs `sql` in a transaction that is rolled back: `Ok` when it ran (or failed for another
/// reason than privileges), `Err` when the server refused it for lack of privilege.
async fn attempt(client: &mut Client, sql: &str) -> Result<(), String> {
    let tx = client.transaction().await.unwrap();
    let outcome = tx.batch_execute(sql).await;
    tx.rollback().await.unwrap();
    match outcome {
        Err(e) if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) => Err(e.to_string()),
        _ => Ok(()),
    }
}

/// One statement that needs exactly `privilege` on `table` (and nothing else).
fn probe(table: &str, column: &str, privilege: &str) -> String {
    match privilege {
        "SELECT" => format!("SELECT 1 FROM {table} LIMIT 0"),
        "INSERT" => format!("INSERT INTO {table} DEFAULT VALUES"),
        "UPDATE" => format!("UPDATE {table} SET {column} = NULL WHERE false"),
        "DELETE" => format!("DELETE FROM {table} WHERE false"),
        "TRUNCATE" => format!("TRUNCATE {table}"),
        other => unreachable!("{other}"),
    }
}

/// Tables of the schema (partitions excluded: they are reached through their parent) with a
/// column that an UPDATE may name.
async fn tables(client: &Client) -> Vec<(String, String)> {
    client
        .query(
            "SELECT c.relname::text,
                    (SELECT a.attname::text FROM pg_attribute a
                      WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                        AND a.attidentity = '' AND a.attgenerated = '' ORDER BY a.attnum LIMIT 1)
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
              ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

fn granted(function: &str, table: &str, privilege: &str) -> bool {
    roles::grants_of(function)
        .unwrap()
        .tables
        .iter()
        .any(|(t, privileges)| *t == table && privileges.split(',').any(|p| p.trim() == privilege))
}

#[tokio::test]
async fn every_table_is_in_the_grants_matrix() {
    let app = TestApp::new().await;
    let client = app.client().await;
    for (table, _) in tables(&client).await {
        let listed = GRANTS.iter().any(|g| g.tables.iter().any(|(t, _)| *t == table));
        assert!(
            listed || roles::OWNER_ONLY.contains(&table.as_str()),
            "table '{table}' is neither granted to a function nor in OWNER_ONLY: classify it in shared/src/roles.rs"
        );
    }
    let all: Vec<String> = client
        .query(
            "SELECT relname::text FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p')",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for g in GRANTS {
        for (table, _) in g.tables {
            assert!(all.contains(&table.to_string()), "{}: no table '{table}'", g.function);
        }
    }
}

#[tokio::test]
async fn each_role_can_do_exactly_what_the_matrix_grants() {
    let app = TestApp::new().await;
    let names = role_names();
    roles::apply(&mut app.client().await, &logins(&names)).await.unwrap();
    let schema = tables(&app.client().await).await;
    for (function, role) in &names {
        let mut client = connect_as(&app, role).await;
        let who: String = client.query_one("SELECT current_user::text", &[]).await.unwrap().get(0);
        assert_eq!(&who, role);
        for (table, column) in &schema {
            for privilege in PRIVILEGES {
                let expected = granted(function, table, privilege);
                let outcome = attempt(&mut client, &probe(table, column, privilege)).await;
                assert_eq!(
                    outcome.is_ok(),
                    expected,
                    "{function} ({role}): {privilege} on {table}: expected {}, got {outcome:?}",
                    if expected { "allowed" } else { "refused" }
                );
            }
        }
        // A column-level grant (`UPDATE (a, b)`) allows those columns (and the probe above
        // proved it allows no other).
        for (table, privileges) in roles::grants_of(function).unwrap().tables {
            for p in privileges.split(',').map(str::trim) {
                let Some((privilege, columns)) = p.split_once(" (") else { continue };
                for column in columns.trim_end_matches(')').split(' ').map(|c| c.trim_matches(',')) {
                    let outcome = attempt(&mut client, &probe(table, column, privilege)).await;
                    assert!(outcome.is_ok(), "{function} ({role}): {privilege} ({column}) on {table}: {outcome:?}");
                }
            }
        }
    }
    drop_roles(&app, names.values()).await;
}

#[tokio::test]
async fn no_role_can_change_the_schema_or_the_event_log() {
    let app = TestApp::new().await;
    let names = role_names();
    roles::apply(&mut app.client().await, &logins(&names)).await.unwrap();
    // Something to update or delete, so the trigger is not what stops it.
    let owner = app.client().await;
    owner
        .batch_execute(
            "INSERT INTO events (stream_id, version, type) VALUES ('probe-1', 1, 'Probed');
             INSERT INTO api_keys (id, name, key_hash, scopes, created_at, version)
             VALUES (gen_random_uuid(), 'probe', sha256('probe'), '{admin}', now(), 1)",
        )
        .await
        .unwrap();
    let refused = [
        "CREATE TABLE intruder (id int)",
        "CREATE VIEW intruder AS SELECT 1",
        "CREATE FUNCTION intruder() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "ALTER TABLE events ADD COLUMN intruder int",
        "ALTER TABLE api_keys DISABLE TRIGGER ALL",
        "DROP TRIGGER events_no_update_delete ON events",
        "DROP TABLE api_keys",
        "CREATE INDEX intruder ON events (type)",
        "CREATE TABLE request_log_2099_01 PARTITION OF request_log FOR VALUES FROM ('2099-01-01') TO ('2099-02-01')",
        "UPDATE events SET type = 'Forged'",
        "DELETE FROM events",
        "TRUNCATE events",
        "CREATE ROLE intruder",
        "SELECT request_log_drop_partition('request_log_default')",
    ];
    for (function, role) in &names {
        let mut client = connect_as(&app, role).await;
        for sql in refused {
            if function == &"request-log" && sql.starts_with("SELECT request_log_drop_partition") {
                continue; // its own function; refusing the default partition is tested below
            }
            let outcome = attempt(&mut client, sql).await;
            assert!(outcome.is_err(), "{function} ({role}) was allowed: {sql}");
        }
    }
    drop_roles(&app, names.values()).await;
}

#[tokio::test]
async fn roles_that_append_events_go_through_the_event_store() {
    let app = TestApp::new().await;
    let names = role_names();
    roles::apply(&mut app.client().await, &logins(&names)).await.unwrap();
    #[derive(serde::Serialize)]
    #[serde(tag = "type")]
    enum Probe {
        Probed,
    }
    for (function, role) in &names {
        let mut client = connect_as(&app, role).await;
        let tx = client.transaction().await.unwrap();
        let stream = format!("probe-{}", uuid::Uuid::new_v4());
        let appended =
            events::append(&tx, &stream, ExpectedVersion::NoStream, &[Probe::Probed], &Metadata::system(function))
                .await;
        assert_eq!(appended.is_ok(), granted(function, "events", "INSERT"), "{function}: {appended:?}");
    }
    drop_roles(&app, names.values()).await;
}

#[tokio::test]
async fn request_log_partitions_only_through_the_owner_functions() {
    let app = TestApp::new().await;
    let names = role_names();
    roles::apply(&mut app.client().await, &logins(&names)).await.unwrap();
    let client = connect_as(&app, &names["request-log"]).await;
    let create = "SELECT request_log_create_partition($1, $2::text::timestamptz, $3::text::timestamptz)";
    let args = ["request_log_2031_01", "2031-01-01T00:00:00Z", "2031-02-01T00:00:00Z"];
    let made: Option<i64> = client.query_one(create, &[&args[0], &args[1], &args[2]]).await.unwrap().get(0);
    assert_eq!(made, Some(0), "created, nothing to move");
    let again: Option<i64> = client.query_one(create, &[&args[0], &args[1], &args[2]]).await.unwrap().get(0);
    assert_eq!(again, None, "creating an existing partition is a no-op");
    client
        .batch_execute(
            "INSERT INTO request_log (id, occurred_at, service, endpoint, method, status_code)
             VALUES (gen_random_uuid(), '2031-01-15T12:00:00Z', 'svc', '/x', 'GET', 200),
                    (gen_random_uuid(), '2031-03-15T12:00:00Z', 'svc', '/x', 'GET', 200)",
        )
        .await
        .unwrap();
    let owner = app.client().await;
    let rows: i64 = owner.query_one("SELECT count(*) FROM request_log_2031_01", &[]).await.unwrap().get(0);
    assert_eq!(rows, 1, "the row went to the new partition");
    // A month whose rows wait in the default partition: they move into the new one.
    let march = ["request_log_2031_03", "2031-03-01T00:00:00Z", "2031-04-01T00:00:00Z"];
    let moved: Option<i64> = client.query_one(create, &[&march[0], &march[1], &march[2]]).await.unwrap().get(0);
    assert_eq!(moved, Some(1));
    let (in_march, in_default): (i64, i64) = {
        let r = owner
            .query_one(
                "SELECT (SELECT count(*) FROM request_log_2031_03), (SELECT count(*) FROM request_log_default)",
                &[],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!((in_march, in_default), (1, 0));

    for bad in ["events", "request_log_default", "request_log_keys", "request_log_2031_02"] {
        let err = client.query_one("SELECT request_log_drop_partition($1)", &[&bad]).await.unwrap_err();
        assert_eq!(err.code(), Some(&SqlState::INVALID_PARAMETER_VALUE), "{bad}: {err}");
    }
    let err = client.query_one(create, &[&"events_x; DROP TABLE events", &args[1], &args[2]]).await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::INVALID_PARAMETER_VALUE));
    let dropped: bool = client.query_one("SELECT request_log_drop_partition($1)", &[&args[0]]).await.unwrap().get(0);
    assert!(dropped);
    let gone: bool = owner.query_one("SELECT to_regclass('request_log_2031_01') IS NULL", &[]).await.unwrap().get(0);
    assert!(gone);

    let other = connect_as(&app, &names["admin"]).await;
    let err = other.query_one(create, &[&"request_log_2032_01", &args[1], &args[2]]).await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE));
    drop_roles(&app, names.values()).await;
}

#[tokio::test]
async fn scram_verifiers_match_the_ones_postgresql_computes() {
    let admin = connect(&server_url()).await;
    let role = format!("kl_t_{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let password = random_token::<24>();
    admin
        .batch_execute(&format!(
            "SET password_encryption = 'scram-sha-256'; CREATE ROLE {role} LOGIN PASSWORD '{password}'"
        ))
        .await
        .unwrap();
    let stored = stored_verifier(&admin, &role).await;
    let (salt, iterations) = salt_of(&stored);
    assert_eq!(roles::scram_sha256_verifier(&password, &salt, iterations), stored);
    admin.batch_execute(&format!("DROP ROLE {role}")).await.unwrap();
}

async fn stored_verifier(admin: &Client, role: &str) -> String {
    admin.query_one("SELECT rolpassword FROM pg_authid WHERE rolname = $1", &[&role]).await.unwrap().get(0)
}

fn salt_of(verifier: &str) -> (Vec<u8>, u32) {
    use base64::Engine;
    let params = verifier.strip_prefix("SCRAM-SHA-256$").unwrap().split('$').next().unwrap();
    let (iterations, salt) = params.split_once(':').unwrap();
    (base64::engine::general_purpose::STANDARD.decode(salt).unwrap(), iterations.parse().unwrap())
}

/// Stores each function's role secret in the emulator, the way the template's generated
/// secrets look (`username` and `password` only); returns `ROLE_SECRET_IDS` and the passwords.
pub(crate) async fn role_secrets(names: &BTreeMap<&'static str, String>) -> (String, BTreeMap<&'static str, String>) {
    let sm = secrets_manager().await;
    let mut ids = BTreeMap::new();
    let mut passwords = BTreeMap::new();
    for (function, role) in names {
        let id = format!("keyledger/test/roles/{role}");
        let password = random_token::<24>();
        sm.create_secret()
            .name(&id)
            .secret_string(json!({"username": role, "password": password}).to_string())
            .send()
            .await
            .unwrap();
        ids.insert(*function, id);
        passwords.insert(*function, password);
    }
    (serde_json::to_string(&ids).unwrap(), passwords)
}

fn with(app: &TestApp, extra: &[(&str, &str)]) -> shared::Context {
    let mut vars = app.vars.clone();
    for (k, v) in extra {
        if v.is_empty() {
            vars.remove(*k);
        } else {
            vars.insert((*k).into(), (*v).into());
        }
    }
    shared::Context::new(config_from(&vars), "migrate")
}

fn deadline() -> std::time::SystemTime {
    std::time::SystemTime::now() + Duration::from_secs(60)
}

#[tokio::test]
async fn migrate_up_creates_each_role_from_its_secret_and_each_function_logs_in_with_it() {
    let app = TestApp::new().await;
    let names = role_names();
    let (ids, passwords) = role_secrets(&names).await;
    let migrate_ctx = with(&app, &[("ROLE_SECRET_IDS", &ids)]);
    let http = reqwest::Client::new();
    let up = migrate::handle(&migrate_ctx, &http, json!({"action": "up"}), deadline()).await.unwrap();
    let applied = up["roles"].as_array().unwrap();
    assert_eq!(applied.len(), GRANTS.len(), "{up}");
    assert!(applied.iter().all(|r| r["created"] == json!(true)));

    let admin = connect(&server_url()).await;
    for (function, role) in &names {
        let stored = stored_verifier(&admin, role).await;
        let (salt, iterations) = salt_of(&stored);
        assert_eq!(roles::scram_sha256_verifier(&passwords[function], &salt, iterations), stored, "{function}");
        assert_ne!(roles::scram_sha256_verifier("another password!", &salt, iterations), stored);
    }

    // Each function as deployed: its own secret (no host in it) plus DB_HOST/DB_PORT/DB_NAME.
    let url = url::Url::parse(&app.db_url).unwrap();
    let port = url.port().unwrap_or(5432).to_string();
    let ids: BTreeMap<String, String> = serde_json::from_str(&ids).unwrap();
    for (function, role) in &names {
        let ctx = with(
            &app,
            &[
                ("DATABASE_URL", ""),
                ("DB_SECRET_ID", &ids[*function]),
                ("DB_HOST", url.host_str().unwrap()),
                ("DB_PORT", &port),
                ("DB_NAME", &app.db_name),
            ],
        );
        let who: String =
            ctx.db().get().await.unwrap().query_one("SELECT current_user::text", &[]).await.unwrap().get(0);
        assert_eq!(&who, role, "{function}");
        let health = call(&admin::router(ctx), Method::GET, "/health", None, None).await;
        assert_eq!(health.status, StatusCode::OK, "{function}: {}", health.text);
        assert_eq!(health.json["schema_version"], json!(shared::migrations::latest_version()));
    }

    // A new password in a secret: the next run updates the role, creates nothing.
    let sm = secrets_manager().await;
    let new_password = random_token::<24>();
    sm.put_secret_value()
        .secret_id(&ids["token-fetch"])
        .secret_string(json!({"username": names["token-fetch"], "password": new_password}).to_string())
        .send()
        .await
        .unwrap();
    let again = migrate::handle(&migrate_ctx, &http, json!({"action": "up"}), deadline()).await.unwrap();
    assert!(again["roles"].as_array().unwrap().iter().all(|r| r["created"] == json!(false)), "{again}");
    let stored = stored_verifier(&admin, &names["token-fetch"]).await;
    let (salt, iterations) = salt_of(&stored);
    assert_eq!(roles::scram_sha256_verifier(&new_password, &salt, iterations), stored);
    drop_roles(&app, names.values()).await;
}

#[tokio::test]
async fn the_admin_function_serves_its_routes_as_its_role() {
    let app = TestApp::new().await;
    let names = role_names();
    roles::apply(&mut app.client().await, &logins(&names)).await.unwrap();
    let as_role = |function: &str| {
        let mut url = url::Url::parse(&app.db_url).unwrap();
        url.set_username(&names[function]).unwrap();
        with(&app, &[("DATABASE_URL", url.as_str())])
    };
    let router = admin::router(as_role("admin"));
    let created = call(
        &router,
        Method::POST,
        "/v1/api-keys",
        Some(&app.admin_key),
        Some(json!({"name": "ops", "scopes": ["requests:read"]})),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let key = created.json["key"].as_str().unwrap().to_owned();
    let listed = call(&router, Method::GET, "/v1/api-keys", Some(&app.admin_key), None).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);

    // The functions with authenticated routes can look keys up; the public ones cannot.
    for function in ["token-fetch", "request-log", "admin"] {
        let principal =
            shared::auth::authenticate(&as_role(function), Some(&format!("Bearer {key}")), "r".into()).await;
        assert!(principal.is_ok(), "{function}: {:?}", principal.err());
    }
    for function in ["oauth", "license-validate", "token-refresh", "events-relay"] {
        let principal =
            shared::auth::authenticate(&as_role(function), Some(&format!("Bearer {key}")), "r".into()).await;
        assert!(principal.is_err(), "{function} must not read api_keys");
    }

    let id = created.json["id"].as_str().unwrap();
    let revoked = call(&router, Method::DELETE, &format!("/v1/api-keys/{id}"), Some(&app.admin_key), None).await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{}", revoked.text);
    drop_roles(&app, names.values()).await;
}

#[tokio::test]
async fn a_missing_role_secret_or_an_overpowered_role_fails_migrate_with_the_name() {
    let app = TestApp::new().await;
    let names = role_names();
    let (ids, _) = role_secrets(&names).await;
    let mut partial: BTreeMap<String, String> = serde_json::from_str(&ids).unwrap();
    partial.remove("admin");
    let ctx = with(&app, &[("ROLE_SECRET_IDS", &serde_json::to_string(&partial).unwrap())]);
    let err = migrate::handle(&ctx, &reqwest::Client::new(), json!({"action": "up"}), deadline()).await.unwrap_err();
    assert!(err.contains("ROLE_SECRET_IDS") && err.contains("admin"), "{err}");

    // A role that already exists with more power than a function may have is not adopted.
    let owner = app.client().await;
    owner.batch_execute(&format!("CREATE ROLE {} CREATEDB", names["oauth"])).await.unwrap();
    let ctx = with(&app, &[("ROLE_SECRET_IDS", &ids)]);
    let err = migrate::handle(&ctx, &reqwest::Client::new(), json!({"action": "up"}), deadline()).await.unwrap_err();
    assert!(err.contains("oauth") && err.contains("CREATEDB"), "{err}");
    let created: i64 = owner
        .query_one("SELECT count(*) FROM pg_roles WHERE rolname = ANY($1)", &[&names.values().collect::<Vec<_>>()])
        .await
        .unwrap()
        .get(0);
    assert_eq!(created, 1, "nothing else was created: the run is one transaction");
    drop_roles(&app, names.values()).await;
}

#[tokio::test]
async fn a_template_with_another_schema_hash_gets_failed_not_migrated() {
    use axum::{Router, body::Bytes, extract::State, routing::put};
    use std::sync::{Arc, Mutex};
    type Sink = Arc<Mutex<Vec<Value>>>;
    async fn receive(State(sink): State<Sink>, body: Bytes) -> &'static str {
        sink.lock().unwrap().push(serde_json::from_slice(&body).unwrap());
        ""
    }
    let db = crate::helpers::empty_database().await;
    let app = TestApp::with_vars(&[("DATABASE_URL", &crate::helpers::database_url(&db))]).await;
    let sink: Sink = Arc::default();
    let addr = crate::helpers::serve(Router::new().route("/r", put(receive)).with_state(sink.clone())).await;
    let mut event: Value = serde_json::from_str(include_str!("../fixtures/cfn-create.json")).unwrap();
    event["ResponseURL"] = json!(format!("http://{addr}/r"));
    event["ResourceProperties"]["SchemaHash"] = json!("0".repeat(64));
    let answer = migrate::handle(&app.ctx, &reqwest::Client::new(), event.clone(), deadline()).await.unwrap();
    assert_eq!(answer["Status"], "FAILED");
    assert!(answer["Reason"].as_str().unwrap().contains("SchemaHash"), "{answer}");
    let status = shared::migrations::status(&connect(&crate::helpers::database_url(&db)).await).await.unwrap();
    assert_eq!(status.schema_version, 0, "nothing was applied");

    event["ResourceProperties"]["SchemaHash"] = json!(roles::schema_hash());
    let answer = migrate::handle(&app.ctx, &reqwest::Client::new(), event, deadline()).await.unwrap();
    assert_eq!(answer["Status"], "SUCCESS", "{answer}");
    assert_eq!(sink.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn the_key_ring_placeholder_is_replaced_once_and_a_real_ring_never() {
    use shared::provision::{self, KEY_RING_PLACEHOLDER, KeyRingState};
    let sm = secrets_manager().await;
    let id = format!("keyledger/test/keyring/{}", uuid::Uuid::new_v4().simple());
    sm.create_secret().name(&id).secret_string(KEY_RING_PLACEHOLDER).send().await.unwrap();
    let app = TestApp::with_vars(&[("ENCRYPTION_KEYS", ""), ("ENCRYPTION_KEYS_SECRET_ID", &id)]).await;
    assert_eq!(provision::ensure_key_ring(&app.ctx).await.unwrap(), KeyRingState::Generated);
    assert_eq!(app.ctx.keyring().await.unwrap().current_key_id(), "k1");
    let ring = sm.get_secret_value().secret_id(&id).send().await.unwrap().secret_string.unwrap();
    assert_eq!(provision::ensure_key_ring(&app.ctx).await.unwrap(), KeyRingState::Present);
    let still = sm.get_secret_value().secret_id(&id).send().await.unwrap().secret_string.unwrap();
    assert_eq!(ring, still, "a real ring is never replaced");

    // Reset to the placeholder while the previous version holds a ring: refused.
    sm.put_secret_value().secret_id(&id).secret_string(KEY_RING_PLACEHOLDER).send().await.unwrap();
    let err = provision::ensure_key_ring(&app.ctx).await.unwrap_err().to_string();
    assert!(err.contains("AWSPREVIOUS"), "{err}");

    // Anything else is refused and left alone.
    let other = format!("keyledger/test/keyring/{}", uuid::Uuid::new_v4().simple());
    sm.create_secret().name(&other).secret_string("not a ring").send().await.unwrap();
    let app = TestApp::with_vars(&[("ENCRYPTION_KEYS", ""), ("ENCRYPTION_KEYS_SECRET_ID", &other)]).await;
    let err = provision::ensure_key_ring(&app.ctx).await.unwrap_err().to_string();
    assert!(err.contains(&other) && !err.contains("not a ring"), "{err}");
    let value = sm.get_secret_value().secret_id(&other).send().await.unwrap().secret_string.unwrap();
    assert_eq!(value, "not a ring");
}

#[tokio::test]
async fn the_signing_ring_placeholder_is_replaced_once_by_an_ed25519_ring() {
    use shared::provision::{self, KEY_RING_PLACEHOLDER, KeyRingState};
    let sm = secrets_manager().await;
    let id = format!("keyledger/test/signing/{}", uuid::Uuid::new_v4().simple());
    sm.create_secret().name(&id).secret_string(KEY_RING_PLACEHOLDER).send().await.unwrap();
    let app = TestApp::with_vars(&[("LICENSE_SIGNING_KEYS", ""), ("LICENSE_SIGNING_KEYS_SECRET_ID", &id)]).await;
    assert_eq!(provision::ensure_signing_keys(&app.ctx).await.unwrap(), KeyRingState::Generated);
    let ring = sm.get_secret_value().secret_id(&id).send().await.unwrap().secret_string.unwrap();
    let parsed = shared::signing::SigningKeys::parse(&secrecy::SecretString::from(ring.clone())).unwrap();
    assert_eq!(parsed.current_key_id(), "s1");
    assert_eq!(provision::ensure_signing_keys(&app.ctx).await.unwrap(), KeyRingState::Present);
    let still = sm.get_secret_value().secret_id(&id).send().await.unwrap().secret_string.unwrap();
    assert_eq!(ring, still, "a real ring is never replaced");
    sm.put_secret_value().secret_id(&id).secret_string(KEY_RING_PLACEHOLDER).send().await.unwrap();
    let err = provision::ensure_signing_keys(&app.ctx).await.unwrap_err().to_string();
    assert!(err.contains("LICENSE_SIGNING_KEYS_SECRET_ID") && err.contains("AWSPREVIOUS"), "{err}");
}

/// Accepts every entry, like a healthy EventBridge.
struct AcceptAll;

impl shared::relay::Publisher for AcceptAll {
    async fn put(&self, entries: &[shared::relay::Entry]) -> Result<Vec<Option<String>>, shared::relay::PublishError> {
        Ok(entries.iter().map(|_| None).collect())
    }
}

#[tokio::test]
async fn each_function_runs_its_own_code_as_its_role() {
    use shared::auth::Scope;
    let app = TestApp::new().await;
    let names = role_names();
    roles::apply(&mut app.client().await, &logins(&names)).await.unwrap();
    let as_role = |function: &str| {
        let mut url = url::Url::parse(&app.db_url).unwrap();
        url.set_username(&names[function]).unwrap();
        with(&app, &[("DATABASE_URL", url.as_str())])
    };
    let admin_key = app.admin_key.as_str();
    let key =
        app.api_key(&[Scope::RequestsRead, Scope::RequestsWrite, Scope::TokensRead, Scope::ConnectionsRead]).await;

    // admin: an event appended (an API key), licenses and clients listed.
    let router = admin::router(as_role("admin"));
    let created = call(
        &router,
        Method::POST,
        "/v1/api-keys",
        Some(admin_key),
        Some(json!({"name": "x", "scopes": ["tokens:read"]})),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "admin: {}", created.text);
    let issued =
        call(&router, Method::POST, "/v1/licenses", Some(admin_key), Some(json!({"email": "a@example.com"}))).await;
    assert_eq!(issued.status, StatusCode::CREATED, "admin: {}", issued.text);
    for path in ["/v1/clients", "/v1/licenses", "/v1/api-keys"] {
        let listed = call(&router, Method::GET, path, Some(admin_key), None).await;
        assert_eq!(listed.status, StatusCode::OK, "admin {path}: {}", listed.text);
    }
    let license_key = issued.json["license_key"].as_str().unwrap().to_owned();

    // license-validate: its one-statement validate and an activation, never the tokens.
    let router = license_validate::router(as_role("license-validate"));
    let body = json!({"license_key": license_key, "installation_id": "laptop-1"});
    let activated = call(&router, Method::POST, "/v1/licenses/activate", None, Some(body.clone())).await;
    assert_eq!(
        (activated.status, activated.json["code"].clone()),
        (StatusCode::OK, json!("VALID")),
        "{}",
        activated.text
    );
    let validated = call(&router, Method::POST, "/v1/licenses/validate", None, Some(body)).await;
    assert_eq!(validated.json["code"], "VALID", "{}", validated.text);

    // token-fetch: the token lookup and the connection list.
    let router = token_fetch::router(as_role("token-fetch"));
    let missing = call(&router, Method::GET, "/v1/tokens/branch-1", Some(&key), None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "token-fetch: {}", missing.text);
    let listed = call(&router, Method::GET, "/v1/connections", Some(&key), None).await;
    assert_eq!(listed.status, StatusCode::OK, "token-fetch: {}", listed.text);

    // oauth: a forged state is looked up and refused.
    let router = oauth::router(as_role("oauth"));
    let forged = call(&router, Method::GET, "/oauth/callback?code=c&state=forged", None, None).await;
    assert_eq!(forged.status, StatusCode::BAD_REQUEST, "oauth: {}", forged.text);

    // request-log: ingest, query, and the daily upkeep (partitions through the owner's functions).
    let ctx = as_role("request-log");
    let router = request_log::router(ctx.clone());
    let record = json!({"service": "svc", "endpoint": "/x", "method": "GET", "status_code": 200, "request_id": "r-1"});
    let posted = call(&router, Method::POST, "/v1/requests", Some(&key), Some(record)).await;
    assert_eq!(posted.status, StatusCode::ACCEPTED, "request-log: {}", posted.text);
    let listed = call(&router, Method::GET, "/v1/requests", Some(&key), None).await;
    assert_eq!(listed.json["items"].as_array().map(Vec::len), Some(1), "request-log: {}", listed.text);
    let upkeep = request_log::handle_schedule(&ctx, chrono::Utc::now()).await;
    assert!(upkeep.as_ref().is_ok_and(|r| !r.created.is_empty()), "request-log upkeep: {upkeep:?}");

    // token-refresh: a scheduled run over the connections.
    let provider = shared::oauth::Provider::new(
        Duration::from_secs(5),
        shared::outbound::OutboundPolicy { allow_private: true, provider_hosts: vec![] },
    );
    let refreshed = token_refresh::handle(&as_role("token-refresh"), &provider, &json!({}), deadline()).await;
    assert!(refreshed.is_ok(), "token-refresh: {refreshed:?}");

    // events-relay: publishes what admin and license-validate appended, and moves its position.
    let relayed = events_relay::handle(
        &as_role("events-relay"),
        &AcceptAll,
        &serde_json::json!({}),
        std::time::Instant::now() + Duration::from_secs(20),
    )
    .await;
    assert!(relayed.is_ok(), "events-relay: {relayed:?}");
    let position: i64 = app.client().await.query_one("SELECT position FROM relay_state", &[]).await.unwrap().get(0);
    assert!(position > 0, "the relay advanced");
    drop_roles(&app, names.values()).await;
}
