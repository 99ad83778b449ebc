//! The test harness: a fresh PostgreSQL database per test (cloned from a migrated
//! template), a [`Context`] configured like a function's, requests through a router in
//! process or over real HTTP, and the Secrets Manager emulator.
//!
//! Environment (set by `scripts/test`):
//! - `KEYLEDGER_TEST_DATABASE_URL`: a server where tests may create databases
//!   (default `postgres://postgres@127.0.0.1:5432/postgres`);
//! - `AWS_ENDPOINT_URL`: the moto server (only tests of the Secrets Manager path need it).

use std::{collections::HashMap, net::SocketAddr};

use axum::{
    Router,
    body::Body,
    http::{HeaderMap, Method, Request, StatusCode, header},
};
use http_body_util::BodyExt;
use secrecy::ExposeSecret;
use serde_json::Value;
use shared::{Context, config::Config, crypto::KeyRing, migrations};
use tokio::sync::OnceCell;
use tower::ServiceExt;

/// The server tests create their databases on.
pub fn server_url() -> String {
    std::env::var("KEYLEDGER_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// `server_url` with another database name.
pub fn database_url(name: &str) -> String {
    let base = server_url();
    let (prefix, rest) = base.rsplit_once('/').expect("KEYLEDGER_TEST_DATABASE_URL has a database part");
    let query = rest.split_once('?').map(|(_, q)| format!("?{q}")).unwrap_or_default();
    format!("{prefix}/{name}{query}")
}

/// A plain connection (no pool) to `url`.
pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e} (is PostgreSQL running? see scripts/test)"));
    tokio::spawn(connection);
    client
}

static TEMPLATE: OnceCell<String> = OnceCell::const_new();

/// The migrated template database for this build's migrations, created once per server.
async fn template() -> &'static str {
    TEMPLATE
        .get_or_init(|| async {
            let name = format!("keyledger_tpl_{}", &migrations::bundle_hash()[..16]);
            let admin = connect(&server_url()).await;
            // Serialise template creation across concurrently running test processes.
            admin.execute("SELECT pg_advisory_lock(4242)", &[]).await.unwrap();
            let exists =
                !admin.query("SELECT 1 FROM pg_database WHERE datname = $1", &[&name]).await.unwrap().is_empty();
            if !exists {
                let building = format!("{name}_building");
                admin.batch_execute(&format!("DROP DATABASE IF EXISTS {building}")).await.unwrap();
                admin.batch_execute(&format!("CREATE DATABASE {building}")).await.unwrap();
                {
                    let mut client = connect(&database_url(&building)).await;
                    migrations::up(&mut client).await.expect("migrations apply to an empty database");
                }
                admin.batch_execute(&format!("ALTER DATABASE {building} RENAME TO {name}")).await.unwrap();
            }
            admin.execute("SELECT pg_advisory_unlock(4242)", &[]).await.unwrap();
            name
        })
        .await
}

/// A new, migrated, empty database; returns its name.
pub async fn fresh_database() -> String {
    let template = template().await;
    let name = format!("kl_test_{}", uuid::Uuid::new_v4().simple());
    let admin = connect(&server_url()).await;
    admin.batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {template}")).await.unwrap();
    name
}

/// An empty database without any migration applied.
pub async fn empty_database() -> String {
    let name = format!("kl_test_{}", uuid::Uuid::new_v4().simple());
    connect(&server_url()).await.batch_execute(&format!("CREATE DATABASE {name}")).await.unwrap();
    name
}

/// One test's world: its own database and a context configured like a function's.
pub struct TestApp {
    /// The context a function would build.
    pub ctx: Context,
    /// The database's name.
    pub db_name: String,
    /// Its connection string.
    pub db_url: String,
    /// The bootstrap admin key.
    pub admin_key: String,
    /// The configuration's variables, for building more contexts.
    pub vars: HashMap<String, String>,
}

impl TestApp {
    /// A fresh database and default configuration.
    pub async fn new() -> Self {
        Self::with_vars(&[]).await
    }

    /// A fresh database and the default configuration overridden by `vars`.
    pub async fn with_vars(vars: &[(&str, &str)]) -> Self {
        let db_name = fresh_database().await;
        let db_url = database_url(&db_name);
        let admin_key = format!("kl_admin_{}", uuid::Uuid::new_v4().simple());
        let mut map: HashMap<String, String> = HashMap::from([
            ("DATABASE_URL".into(), db_url.clone()),
            ("ENCRYPTION_KEYS".into(), KeyRing::generate_json("k1").expose_secret().to_owned()),
            ("ADMIN_API_KEY".into(), admin_key.clone()),
            ("LICENSE_KEY_PEPPER".into(), format!("pepper-{}", uuid::Uuid::new_v4())),
            ("DB_POOL_MAX".into(), "8".into()),
            (
                "LICENSE_SIGNING_KEYS".into(),
                shared::signing::SigningKeys::generate_json("s1").expose_secret().to_owned(),
            ),
            // The fake providers listen on loopback over plain http; the template sets false.
            ("OUTBOUND_ALLOW_PRIVATE".into(), "true".into()),
        ]);
        for (k, v) in vars {
            if v.is_empty() {
                map.remove(*k);
            } else {
                map.insert((*k).into(), (*v).into());
            }
        }
        let ctx = Context::new(config_from(&map), "test");
        Self { ctx, db_name, db_url, admin_key, vars: map }
    }

    /// Another context on the same database and configuration (a second execution environment).
    pub fn another_context(&self, function: &'static str) -> Context {
        Context::new(config_from(&self.vars), function)
    }

    /// A plain connection to this test's database.
    pub async fn client(&self) -> tokio_postgres::Client {
        connect(&self.db_url).await
    }

    /// Creates an API key with `scopes` through the real code path; returns the key.
    pub async fn api_key(&self, scopes: &[shared::auth::Scope]) -> String {
        shared::api_keys::create(
            &self.ctx,
            shared::api_keys::NewApiKey { name: "test".into(), scopes: scopes.to_vec() },
            &shared::events::Metadata::system("test"),
        )
        .await
        .unwrap()
        .key
    }
}

/// A configuration from explicit variables (the process environment is not read).
pub fn config_from(vars: &HashMap<String, String>) -> Config {
    Config::from_lookup(|name| vars.get(name).cloned()).expect("test configuration is valid")
}

/// An answer from a router.
#[derive(Debug)]
pub struct Answer {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body as JSON (`Value::Null` when empty or not JSON).
    pub json: Value,
    /// Body as text.
    pub text: String,
}

/// Sends one request through `router` in process.
pub async fn call(router: &Router, method: Method, path: &str, key: Option<&str>, body: Option<Value>) -> Answer {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(key) = key {
        request = request.header(header::AUTHORIZATION, format!("Bearer {key}"));
    }
    let body = match body {
        Some(json) => {
            request = request.header(header::CONTENT_TYPE, "application/json");
            Body::from(serde_json::to_vec(&json).unwrap())
        }
        None => Body::empty(),
    };
    call_raw(router, request.body(body).unwrap()).await
}

/// Sends a prepared request through `router` in process.
pub async fn call_raw(router: &Router, request: Request<Body>) -> Answer {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    Answer { status, headers, json: serde_json::from_slice(&bytes).unwrap_or(Value::Null), text }
}

/// Serves `router` over real HTTP on a random loopback port.
pub async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// The Secrets Manager emulator's SDK client (moto, started by `scripts/test`).
pub async fn secrets_manager() -> aws_sdk_secretsmanager::Client {
    assert!(
        std::env::var("AWS_ENDPOINT_URL").is_ok(),
        "AWS_ENDPOINT_URL must point at the moto server; run the suite with scripts/test"
    );
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    aws_sdk_secretsmanager::Client::new(&config)
}
