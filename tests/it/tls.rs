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

/// The first-request TLS stall (docs/benchmarks.md, "TLS on the first connection"): AWS-LC
/// seeded from CPU jitter entropy on the first random number of a process, ~45 ms inside
/// every cold start's first handshake. `.cargo/config.toml` turns it off for every build of
/// the workspace; `sam build` runs `cargo lambda build` in the workspace root (CodeUri `.`,
/// checked in tests/it/deploy.rs), so the functions get it too.
#[test]
fn aws_lc_is_built_without_jitter_entropy() {
    let config = std::fs::read_to_string(crate::deploy::root().join(".cargo/config.toml")).unwrap();
    let mut section = "";
    let mut set = false;
    for line in config.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line;
        } else if section == "[env]" && line == r#"AWS_LC_SYS_NO_JITTER_ENTROPY = "1""# {
            set = true;
        }
    }
    assert!(set, ".cargo/config.toml: [env] AWS_LC_SYS_NO_JITTER_ENTROPY = \"1\"");

    // And it reached the build: this test binary was built by the same cargo configuration
    // and is not stripped. An AWS-LC built with jitter entropy links jitterentropy, whose
    // `jent_read_entropy` seeds the DRBG (checked on an executable linked against aws-lc-sys
    // 0.47's libcrypto built with and without the setting: `aws_lc_0_47_0_jent_read_entropy`
    // and ~30 more `jent_` symbols, or none). The release Lambda binaries are stripped, so
    // carry no such name either way: this binary is the witness.
    // The names are spelt backwards here: written forwards, this test's own string literals
    // would put them into the binary it searches.
    let name = |backwards: &str| backwards.chars().rev().collect::<String>();
    // `/proc/self/exe` still opens when a later build in the same target directory has
    // replaced this binary on disk (its path then names a file that no longer exists).
    let exe = std::fs::read("/proc/self/exe").or_else(|_| std::fs::read(std::env::current_exe().unwrap())).unwrap();
    let exe = String::from_utf8_lossy(&exe);
    assert!(
        exe.contains(&name("setyb_DNAR_")),
        "this binary links AWS-LC with its symbols (else the check below proves nothing)"
    );
    assert!(
        !exe.contains(&name("yportne_daer_tnej")),
        "AWS-LC was built with CPU jitter entropy: AWS_LC_SYS_NO_JITTER_ENTROPY did not reach aws-lc-sys's build"
    );
}
