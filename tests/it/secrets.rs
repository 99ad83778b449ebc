use serde_json::json;
use uuid::Uuid;

use crate::helpers::{TestApp, connect, secrets_manager, server_url};

#[tokio::test]
async fn the_database_password_is_fetched_again_after_the_server_rejects_it() {
    let base = TestApp::new().await;
    let sm = secrets_manager().await;
    let role = format!("kl_rot_{}", Uuid::new_v4().simple());
    let admin = connect(&server_url()).await;
    admin
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN PASSWORD 'first-password'; GRANT ALL ON DATABASE {} TO {role}",
            base.db_name
        ))
        .await
        .unwrap();

    let secret_id = format!("keyledger/test/db/{role}");
    let url = url::Url::parse(&server_url()).unwrap();
    let secret = |password: &str| {
        json!({"username": role, "password": password, "host": url.host_str().unwrap(), "port": url.port().unwrap_or(5432), "dbname": base.db_name}).to_string()
    };
    sm.create_secret().name(&secret_id).secret_string(secret("first-password")).send().await.unwrap();

    let app = TestApp::with_vars(&[("DATABASE_URL", ""), ("DB_SECRET_ID", &secret_id), ("DB_POOL_MAX", "1")]).await;
    let who = |ctx: shared::Context| async move {
        let client = ctx.db().get().await?;
        Ok::<String, shared::db::DbError>(client.query_one("SELECT current_user::text", &[]).await?.get(0))
    };
    assert_eq!(who(app.ctx.clone()).await.unwrap(), role);

    // Rotation: the password changes in the database and in the secret, and the old
    // connection goes away.
    admin.batch_execute(&format!("ALTER ROLE {role} PASSWORD 'second-password'")).await.unwrap();
    sm.put_secret_value().secret_id(&secret_id).secret_string(secret("second-password")).send().await.unwrap();
    admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", &[&role]).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    // The cached secret (TTL 300 s) holds the old password; the rejection makes it refetch.
    assert_eq!(who(app.ctx.clone()).await.unwrap(), role);
}

#[tokio::test]
async fn secrets_manager_sources_feed_the_key_ring_and_the_admin_key() {
    let sm = secrets_manager().await;
    let id = Uuid::new_v4().simple().to_string();
    let ring_id = format!("keyledger/test/keys/{id}");
    let admin_id = format!("keyledger/test/admin/{id}");
    let ring = shared::crypto::KeyRing::generate_json("k7");
    use secrecy::ExposeSecret;
    sm.create_secret().name(&ring_id).secret_string(ring.expose_secret()).send().await.unwrap();
    sm.create_secret().name(&admin_id).secret_string(format!("kl_from_sm_{id}")).send().await.unwrap();

    let app = TestApp::with_vars(&[
        ("ENCRYPTION_KEYS", ""),
        ("ENCRYPTION_KEYS_SECRET_ID", &ring_id),
        ("ADMIN_API_KEY", ""),
        ("ADMIN_API_KEY_SECRET_ID", &admin_id),
    ])
    .await;
    assert_eq!(app.ctx.keyring().await.unwrap().current_key_id(), "k7");
    let router = admin::router(app.ctx.clone());
    let listed =
        crate::helpers::call(&router, axum::http::Method::GET, "/v1/api-keys", Some(&format!("kl_from_sm_{id}")), None)
            .await;
    assert_eq!(listed.status, axum::http::StatusCode::OK, "{}", listed.text);
}

#[tokio::test]
async fn a_missing_secret_is_an_error_naming_it_not_a_hang() {
    secrets_manager().await;
    let app =
        TestApp::with_vars(&[("ENCRYPTION_KEYS", ""), ("ENCRYPTION_KEYS_SECRET_ID", "keyledger/test/does-not-exist")])
            .await;
    assert!(app.ctx.keyring().await.is_err());
    let app = TestApp::with_vars(&[("DATABASE_URL", ""), ("DB_SECRET_ID", "keyledger/test/no-db-secret")]).await;
    let err = app.ctx.db().get().await.err().expect("no secret, no connection").to_string();
    assert!(err.contains("keyledger/test/no-db-secret"), "{err}");
}
