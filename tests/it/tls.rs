//! `DB_SSLMODE` against the real server, which `scripts/test` runs with TLS on and whose
//! (self-signed, `localhost`) certificate it names in `KEYLEDGER_TEST_PG_CA`.

use crate::helpers::{TestApp, database_url, fresh_database};

fn ca() -> String {
    std::env::var("KEYLEDGER_TEST_PG_CA")
        .expect("KEYLEDGER_TEST_PG_CA names the server's certificate; run scripts/test")
}

async fn uses_tls(vars: &[(&str, &str)]) -> Result<bool, shared::db::DbError> {
    let app = TestApp::with_vars(vars).await;
    let client = app.ctx.db().get().await?;
    Ok(client.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).await?.get(0))
}

fn with_host(url: &str, host: &str) -> String {
    let mut parsed = url::Url::parse(url).unwrap();
    parsed.set_host(Some(host)).unwrap();
    parsed.to_string()
}

#[tokio::test]
async fn sslmode_disable_and_require_are_honoured() {
    let url = database_url(&fresh_database().await);
    assert!(!uses_tls(&[("DATABASE_URL", &url), ("DB_SSLMODE", "disable")]).await.unwrap());
    assert!(uses_tls(&[("DATABASE_URL", &url), ("DB_SSLMODE", "require")]).await.unwrap());
}

#[tokio::test]
async fn verify_full_checks_the_chain_and_the_host_name() {
    let url = database_url(&fresh_database().await);
    let ca = ca();
    let by_name = with_host(&url, "localhost");
    assert!(
        uses_tls(&[("DATABASE_URL", &by_name), ("DB_SSLMODE", "verify-full"), ("DB_CA_BUNDLE", &ca)]).await.unwrap(),
        "the server's own CA and its name must verify"
    );
    let by_ip = with_host(&url, "127.0.0.1");
    let wrong_name = uses_tls(&[("DATABASE_URL", &by_ip), ("DB_SSLMODE", "verify-full"), ("DB_CA_BUNDLE", &ca)]).await;
    assert!(wrong_name.is_err(), "a certificate for 'localhost' must not verify for 127.0.0.1");
    let unknown_ca = uses_tls(&[("DATABASE_URL", &by_name), ("DB_SSLMODE", "verify-full")]).await;
    assert!(unknown_ca.is_err(), "a self-signed certificate must not verify against the web roots");
}

#[tokio::test]
async fn on_lambda_verify_full_is_the_default_and_trusts_only_rds_unless_told_otherwise() {
    let url = with_host(&database_url(&fresh_database().await), "localhost");
    let lambda = ("AWS_LAMBDA_FUNCTION_NAME", "token-fetch");
    // No DB_SSLMODE: verified against the embedded Amazon RDS bundle, which the local
    // server's private CA is not in, so the connection is refused.
    let refused = uses_tls(&[("DATABASE_URL", &url), lambda]).await;
    let err = refused.expect_err("a certificate outside the RDS bundle must not verify by default on Lambda");
    assert!(format!("{err:#}").contains("TLS handshake"), "{err:#}");
    // The same default with the private CA named: verified and encrypted.
    let ca = ca();
    assert!(uses_tls(&[("DATABASE_URL", &url), lambda, ("DB_CA_BUNDLE", &ca)]).await.unwrap());
}
