//! The pool's shared read connections, against the real PostgreSQL.

use std::{collections::HashSet, time::Duration};

use futures::future::join_all;
use shared::{
    config::SslMode,
    db::{Db, DbSettings},
};
use tokio_postgres::types::Type;

use crate::helpers::{TestApp, connect};

fn db(app: &TestApp, pool_max: usize, application_name: &str) -> Db {
    Db::from_url(
        &app.db_url,
        DbSettings {
            sslmode: SslMode::Disable,
            ca_bundle: None,
            pool_max,
            shared_reads: pool_max / 2,
            connect_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(10),
            application_name: application_name.to_owned(),
            host: None,
            port: None,
            dbname: None,
        },
    )
}

async fn backend_pid(db: &Db) -> i32 {
    db.read("SELECT pg_backend_pid()", &[]).await.unwrap()[0].get(0)
}

#[tokio::test]
async fn concurrent_reads_share_half_the_pool_and_leave_the_rest_for_transactions() {
    let app = TestApp::new().await;
    let db = db(&app, 4, "kl-shared-reads");
    let reads = join_all((0..64).map(|i| {
        let db = db.clone();
        async move {
            let rows = db.read("SELECT pg_backend_pid(), $1::int4", &[(&i, Type::INT4)]).await.unwrap();
            assert_eq!(rows[0].get::<_, i32>(1), i, "each read gets its own answer");
            rows[0].get::<_, i32>(0)
        }
    }))
    .await;
    let backends: HashSet<i32> = reads.into_iter().collect();
    assert_eq!(backends.len(), 2, "64 concurrent reads ran on the 2 shared connections of a pool of 4");
    let mut one_at_a_time = HashSet::new();
    for _ in 0..5 {
        one_at_a_time.insert(backend_pid(&db).await);
    }
    assert_eq!(one_at_a_time.len(), 1, "light traffic stays on one connection");
    assert!(backends.is_superset(&one_at_a_time));

    // The other half is still there for exclusive use, while the shared ones stay lent.
    let a = db.get().await.unwrap();
    let b = db.get().await.unwrap();
    let exclusive: HashSet<i32> = [a.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0), {
        b.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0)
    }]
    .into();
    assert!(exclusive.is_disjoint(&backends), "transactions never get a shared connection");
    assert_eq!(db.status().await, Some((4, 0)));
}

#[tokio::test]
async fn a_statement_error_on_a_shared_connection_fails_only_that_read() {
    let app = TestApp::new().await;
    let db = db(&app, 2, "kl-shared-errors");
    let (bad, good) = tokio::join!(db.read("SELECT 1 / 0", &[]), db.read("SELECT 2", &[]));
    assert_eq!(bad.unwrap_err().code(), Some(&tokio_postgres::error::SqlState::DIVISION_BY_ZERO));
    assert_eq!(good.unwrap()[0].get::<_, i32>(0), 2);
    assert_eq!(db.read("SELECT 3", &[]).await.unwrap()[0].get::<_, i32>(0), 3, "the connection is still usable");
}

#[tokio::test]
async fn a_shared_connection_killed_by_the_server_is_replaced_and_the_read_retried() {
    let app = TestApp::new().await;
    let db = db(&app, 2, "kl-shared-killed");
    let first = backend_pid(&db).await;
    let admin = connect(&app.db_url).await;
    admin.execute("SELECT pg_terminate_backend($1)", &[&first]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    let second = backend_pid(&db).await;
    assert_ne!(second, first, "the read ran on a new connection");
    assert_eq!(backend_pid(&db).await, second, "which is shared from then on");
}
