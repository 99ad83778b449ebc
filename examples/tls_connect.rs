//! The first database connection of a process per `DB_SSLMODE`, as a cold Lambda environment
//! makes it (docs/benchmarks.md, "TLS on the first connection"), then a second one for
//! comparison. One process per measurement; `bench/tls-first-connection.sh` runs it in a loop.
//!   cargo run --release --example tls_connect -- MODE 'postgres://…@localhost:5432/db' [CA]
//! Prints `MODE first_ms second_ms`.

use std::time::Instant;

use shared::{
    config::{Config, SslMode},
    db::{Db, DbSettings},
};

async fn connect_once(url: &str, settings: DbSettings) -> f64 {
    let db = Db::from_url(url, settings);
    let started = Instant::now();
    let rows = db.query("SELECT 1", &[]).await.expect("query");
    assert_eq!(rows.len(), 1);
    started.elapsed().as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().expect("MODE: disable, require or verify-full");
    let url = args.next().expect("a postgres:// URL");
    let ca = args.next();
    let config = Config::from_lookup(|name| (name == "DATABASE_URL").then(|| url.clone())).unwrap();
    let mut settings = DbSettings::from_config(&config, "tls-bench");
    settings.sslmode = match mode.as_str() {
        "disable" => SslMode::Disable,
        "require" => SslMode::Require,
        "verify-full" => SslMode::VerifyFull,
        other => panic!("unknown mode {other}"),
    };
    settings.ca_bundle = ca.map(Into::into);
    let first = connect_once(&url, settings.clone()).await;
    let second = connect_once(&url, settings).await;
    println!("{mode} {first:.2} {second:.2}");
}
