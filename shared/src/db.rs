//! The PostgreSQL connection pool: credentials, TLS, timeouts, recycling and retries.
//!
//! Owns pool construction from `DATABASE_URL` or an RDS-style secret, `DB_SSLMODE`, the
//! timeouts, and the rule for stale connections: a connection idle long enough that its
//! execution environment may have been frozen is verified before use; others are checked
//! for a closed socket only, so a warm request costs no extra round trip. It never issues
//! session-level `SET`s or long-lived prepared statements (they pin RDS Proxy connections).

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};
use deadpool_postgres::{ClientWrapper, ManagerConfig, RecyclingMethod};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::sync::RwLock;
use tokio_postgres::error::SqlState;

use crate::{
    config::{Config, DatabaseSource, SslMode},
    secrets::{CachedSecret, SecretSource, SecretsClient, SecretsError},
};

/// A pooled connection; derefs to [`tokio_postgres::Client`].
pub type Client = managed::Object<PgManager>;
type Pool = managed::Pool<PgManager>;

/// A connection that was idle this long is verified with a round trip before it is handed out.
const VERIFY_AFTER_IDLE: Duration = Duration::from_secs(30);

/// Database failures as the rest of the code sees them.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No connection could be had (server down, timeouts, credentials, TLS).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A statement failed.
    #[error("database: {0}")]
    Query(#[from] tokio_postgres::Error),
    /// The credentials could not be fetched.
    #[error(transparent)]
    Secrets(#[from] SecretsError),
}

impl DbError {
    /// The SQLSTATE of a failed statement, if any.
    pub fn code(&self) -> Option<&SqlState> {
        match self {
            Self::Query(e) => e.code(),
            _ => None,
        }
    }

    /// True for a failure of the connection itself rather than of a statement.
    pub fn is_connection_broken(&self) -> bool {
        match self {
            Self::Unavailable(_) => true,
            Self::Query(e) => is_broken(e),
            Self::Secrets(_) => false,
        }
    }
}

fn is_broken(e: &tokio_postgres::Error) -> bool {
    e.is_closed() || (e.code().is_none() && std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>()))
}

fn is_auth_failure(e: &tokio_postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::INVALID_PASSWORD || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
    )
}

/// The RDS-style secret `{"username","password","host","port","dbname"}`; `host`, `port` and
/// `dbname` may be missing (RDS-managed master secrets, per-function role secrets) when
/// `DB_HOST`, `DB_PORT`, `DB_NAME` give them.
#[derive(Deserialize)]
pub struct RdsSecret {
    username: String,
    password: SecretString,
    host: Option<String>,
    port: Option<u16>,
    dbname: Option<String>,
}

impl std::fmt::Debug for RdsSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RdsSecret")
            .field("username", &self.username)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("dbname", &self.dbname)
            .finish_non_exhaustive()
    }
}

fn parse_rds_secret(raw: &SecretString) -> Result<RdsSecret, String> {
    // serde_json's message never quotes string values, so no password leaks into it.
    serde_json::from_str(raw.expose_secret())
        .map_err(|e| format!("expected {{username,password,host,port,dbname}}: {e}"))
}

enum Credentials {
    Url(SecretString),
    Secret(CachedSecret<RdsSecret>),
}

/// Pool settings taken from [`Config`].
#[derive(Debug, Clone)]
pub struct DbSettings {
    /// TLS mode.
    pub sslmode: SslMode,
    /// CA bundle for `verify-full`.
    pub ca_bundle: Option<std::path::PathBuf>,
    /// Pool size.
    pub pool_max: usize,
    /// How many of the pool's connections [`Db::read`] shares among concurrent requests.
    pub shared_reads: usize,
    /// Connect timeout (also the pool's create timeout).
    pub connect_timeout: Duration,
    /// Server-side statement timeout.
    pub statement_timeout: Duration,
    /// `application_name` seen in `pg_stat_activity`.
    pub application_name: String,
    /// `DB_HOST`: completes or overrides the secret's host.
    pub host: Option<String>,
    /// `DB_PORT`: completes or overrides the secret's port.
    pub port: Option<u16>,
    /// `DB_NAME`: completes or overrides the secret's database name.
    pub dbname: Option<String>,
}

impl DbSettings {
    /// Settings for function `application_name` from `config`.
    pub fn from_config(config: &Config, application_name: &str) -> Self {
        Self {
            sslmode: config.db_sslmode,
            ca_bundle: config.db_ca_bundle.clone(),
            pool_max: config.db_pool_max,
            // A Lambda environment serves one request at a time: nothing to pipeline, and a
            // lent connection would make a read-then-transaction request hold two.
            shared_reads: if config.on_lambda { 0 } else { config.db_pool_max / 2 },
            connect_timeout: config.db_connect_timeout,
            statement_timeout: config.db_statement_timeout,
            application_name: application_name.to_owned(),
            host: config.db_host.clone(),
            port: config.db_port,
            dbname: config.db_name.clone(),
        }
    }
}

/// The database handle: cheap to clone, one pool per execution environment, built lazily.
#[derive(Clone)]
pub struct Db {
    inner: Arc<DbInner>,
}

struct DbInner {
    credentials: Credentials,
    settings: DbSettings,
    pool: RwLock<Option<Pool>>,
    /// Connections that concurrent [`Db::read`]s share (a few of the pool's).
    shared: Vec<SharedSlot>,
}

/// Statements in flight on one shared connection before reads spill over to the next one:
/// one connection (one warm backend) while traffic is light, all of them under load.
const PIPELINE_DEPTH: usize = 4;

#[derive(Default)]
struct SharedSlot {
    in_flight: AtomicUsize,
    connection: tokio::sync::Mutex<Option<SharedConnection>>,
}

/// Counts a read in flight on a slot for as long as it lives.
struct InFlight<'a>(&'a SharedSlot);

impl<'a> InFlight<'a> {
    fn enter(slot: &'a SharedSlot) -> Self {
        slot.in_flight.fetch_add(1, Ordering::Relaxed);
        Self(slot)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A pooled connection lent to every concurrent read until it breaks or idles.
struct SharedConnection {
    client: Arc<Client>,
    last_used: Instant,
}

impl Db {
    /// A handle for `config`'s database; connects on first use only.
    pub fn new(config: &Config, secrets: &SecretsClient, application_name: &str) -> Self {
        let credentials = match &config.database {
            DatabaseSource::Url(url) => Credentials::Url(url.clone()),
            DatabaseSource::SecretId(id) => Credentials::Secret(CachedSecret::new(
                "DB_SECRET_ID",
                SecretSource::SecretsManager(id.clone()),
                secrets.clone(),
                config.secrets_ttl,
                parse_rds_secret,
            )),
        };
        Self::with_credentials(credentials, DbSettings::from_config(config, application_name))
    }

    /// A handle for a plain connection string (tools and tests).
    pub fn from_url(url: &str, settings: DbSettings) -> Self {
        Self::with_credentials(Credentials::Url(SecretString::from(url.to_owned())), settings)
    }

    fn with_credentials(credentials: Credentials, settings: DbSettings) -> Self {
        // At least one connection stays exclusive for transactions.
        let lent = settings.shared_reads.min(settings.pool_max.saturating_sub(1));
        let shared = (0..lent).map(|_| SharedSlot::default()).collect();
        Self { inner: Arc::new(DbInner { credentials, settings, pool: RwLock::new(None), shared }) }
    }

    /// A connection from the pool. When the server rejects the password of a secret from
    /// Secrets Manager (rotation), the secret is fetched again and the pool rebuilt once.
    pub async fn get(&self) -> Result<Client, DbError> {
        let pool = self.pool().await?;
        match pool.get().await {
            Ok(client) => Ok(client),
            Err(managed::PoolError::Backend(e))
                if is_auth_failure(&e)
                    && matches!(&self.inner.credentials, Credentials::Secret(s) if s.is_remote()) =>
            {
                tracing::warn!("database rejected the credentials; fetching the secret again");
                if let Credentials::Secret(secret) = &self.inner.credentials {
                    secret.invalidate().await;
                }
                let fresh = self.rebuild(&pool).await?;
                fresh.get().await.map_err(pool_error)
            }
            Err(e) => Err(pool_error(e)),
        }
    }

    /// Runs one statement (`query_typed`: unnamed, one round trip, nothing left prepared on
    /// the server), once more on a fresh connection if the first one turns out to be broken
    /// (a socket closed while the environment was frozen). Only for statements that are safe
    /// to repeat: reads, or a single idempotent write.
    pub async fn query(
        &self,
        sql: &str,
        params: &[(&(dyn tokio_postgres::types::ToSql + Sync), tokio_postgres::types::Type)],
    ) -> Result<Vec<tokio_postgres::Row>, DbError> {
        let client = self.get().await?;
        match client.query_typed(sql, params).await {
            Err(e) if is_broken(&e) => {
                tracing::info!("database connection broken; retrying once on a new one");
                drop(managed::Object::take(client));
                let client = self.get().await?;
                Ok(client.query_typed(sql, params).await?)
            }
            other => Ok(other?),
        }
    }

    /// Runs one statement on a connection shared with other concurrent reads:
    /// tokio-postgres pipelines their statements on it, so PostgreSQL serves a batch per
    /// wake-up instead of one statement per round trip (the hot paths under concurrency;
    /// in Lambda, one request per environment, nothing is shared: an exclusive one). Each
    /// statement is still its own implicit transaction. For reads, and for writes that do
    /// not wait for a commit's flush (`synchronous_commit` off, as `license_validate` does):
    /// a statement that waits holds up the ones queued behind it. Retried like [`Db::query`].
    pub async fn read(
        &self,
        sql: &str,
        params: &[(&(dyn tokio_postgres::types::ToSql + Sync), tokio_postgres::types::Type)],
    ) -> Result<Vec<tokio_postgres::Row>, DbError> {
        let slots = &self.inner.shared;
        let load = |s: &SharedSlot| s.in_flight.load(Ordering::Relaxed);
        let Some(slot) =
            slots.iter().find(|s| load(s) < PIPELINE_DEPTH).or_else(|| slots.iter().min_by_key(|s| load(s)))
        else {
            return self.query(sql, params).await;
        };
        let _in_flight = InFlight::enter(slot);
        let client = self.shared_connection(slot).await?;
        match client.query_typed(sql, params).await {
            Err(e) if is_broken(&e) => {
                tracing::info!("shared database connection broken; retrying once on a new one");
                self.forget_shared(&client).await;
                self.query(sql, params).await
            }
            other => Ok(other?),
        }
    }

    /// The slot's connection, replaced when it is closed or has idled long enough to need
    /// verifying (the pool verifies it again when it is handed out after that).
    async fn shared_connection(&self, slot: &SharedSlot) -> Result<Arc<Client>, DbError> {
        let mut held = slot.connection.lock().await;
        if let Some(shared) = held.as_mut()
            && !shared.client.is_closed()
            && shared.last_used.elapsed() < VERIFY_AFTER_IDLE
        {
            shared.last_used = Instant::now();
            return Ok(shared.client.clone());
        }
        // Dropping the last handle returns the connection to the pool.
        *held = None;
        let client = Arc::new(self.get().await?);
        *held = Some(SharedConnection { client: client.clone(), last_used: Instant::now() });
        Ok(client)
    }

    async fn forget_shared(&self, broken: &Arc<Client>) {
        for slot in &self.inner.shared {
            let mut held = slot.connection.lock().await;
            if held.as_ref().is_some_and(|s| Arc::ptr_eq(&s.client, broken)) {
                *held = None;
            }
        }
    }

    /// Pool statistics: (size, available).
    pub async fn status(&self) -> Option<(usize, usize)> {
        self.inner.pool.read().await.as_ref().map(|p| {
            let s = p.status();
            (s.size, s.available)
        })
    }

    async fn pool(&self) -> Result<Pool, DbError> {
        if let Some(pool) = self.inner.pool.read().await.as_ref() {
            return Ok(pool.clone());
        }
        let mut slot = self.inner.pool.write().await;
        if let Some(pool) = slot.as_ref() {
            return Ok(pool.clone());
        }
        let pool = self.build_pool().await?;
        *slot = Some(pool.clone());
        Ok(pool)
    }

    async fn rebuild(&self, stale: &Pool) -> Result<Pool, DbError> {
        let mut slot = self.inner.pool.write().await;
        if let Some(current) = slot.as_ref()
            && !same_pool(current, stale)
        {
            return Ok(current.clone());
        }
        stale.close();
        let pool = self.build_pool().await?;
        *slot = Some(pool.clone());
        Ok(pool)
    }

    async fn build_pool(&self) -> Result<Pool, DbError> {
        let s = &self.inner.settings;
        let mut pg = match &self.inner.credentials {
            Credentials::Url(url) => url
                .expose_secret()
                .parse::<tokio_postgres::Config>()
                .map_err(|e| DbError::Unavailable(format!("DATABASE_URL is not a valid connection string: {e}")))?,
            Credentials::Secret(secret) => {
                let rds = secret.get().await?;
                // The environment wins: it names where this function must connect (an RDS
                // Proxy endpoint, say), the secret only who it is.
                let host = s.host.as_ref().or(rds.host.as_ref()).ok_or_else(|| {
                    DbError::Unavailable("DB_SECRET_ID: the secret has no 'host' and DB_HOST is not set".into())
                })?;
                let mut pg = tokio_postgres::Config::new();
                pg.user(&rds.username)
                    .password(rds.password.expose_secret())
                    .host(host)
                    .port(s.port.or(rds.port).unwrap_or(5432))
                    .dbname(s.dbname.as_deref().or(rds.dbname.as_deref()).unwrap_or("postgres"));
                pg
            }
        };
        pg.application_name(&s.application_name)
            .connect_timeout(s.connect_timeout)
            .tcp_user_timeout(s.connect_timeout)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30))
            .options(format!("-c statement_timeout={}", s.statement_timeout.as_millis()));
        let manager_config = ManagerConfig { recycling_method: RecyclingMethod::Verified };
        let inner = match s.sslmode {
            SslMode::Disable => {
                pg.ssl_mode(tokio_postgres::config::SslMode::Disable);
                deadpool_postgres::Manager::from_config(pg, tokio_postgres::NoTls, manager_config)
            }
            SslMode::Require | SslMode::VerifyFull => {
                pg.ssl_mode(tokio_postgres::config::SslMode::Require);
                let tls =
                    crate::tls::postgres_connector(s.sslmode, s.ca_bundle.as_deref()).map_err(DbError::Unavailable)?;
                deadpool_postgres::Manager::from_config(pg, tls, manager_config)
            }
        };
        managed::Pool::builder(PgManager { inner, verify_after_idle: VERIFY_AFTER_IDLE })
            .max_size(s.pool_max)
            .runtime(deadpool::Runtime::Tokio1)
            .wait_timeout(Some(s.connect_timeout))
            .create_timeout(Some(s.connect_timeout))
            .recycle_timeout(Some(Duration::from_secs(2)))
            .build()
            .map_err(|e| DbError::Unavailable(e.to_string()))
    }
}

fn same_pool(a: &Pool, b: &Pool) -> bool {
    // Pools have no identity of their own; the address of the shared inner state is one.
    std::ptr::eq(a.manager(), b.manager())
}

fn pool_error(e: managed::PoolError<tokio_postgres::Error>) -> DbError {
    match e {
        managed::PoolError::Backend(e) => DbError::Unavailable(e.to_string()),
        other => DbError::Unavailable(other.to_string()),
    }
}

/// deadpool-postgres's manager with recycling that costs a round trip only when it can matter.
pub struct PgManager {
    inner: deadpool_postgres::Manager,
    verify_after_idle: Duration,
}

impl managed::Manager for PgManager {
    type Type = ClientWrapper;
    type Error = tokio_postgres::Error;

    async fn create(&self) -> Result<ClientWrapper, tokio_postgres::Error> {
        self.inner.create().await
    }

    async fn recycle(&self, client: &mut ClientWrapper, metrics: &Metrics) -> RecycleResult<tokio_postgres::Error> {
        if client.is_closed() {
            return Err(RecycleError::message("connection closed"));
        }
        if metrics.last_used() < self.verify_after_idle {
            return Ok(());
        }
        // Idle long enough that the environment may have been frozen: verify it for real.
        self.inner.recycle(client, metrics).await
    }

    fn detach(&self, client: &mut ClientWrapper) {
        self.inner.detach(client);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(vars: &[(&str, &str)]) -> DbSettings {
        let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let lookup = |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        DbSettings::from_config(&Config::from_lookup(lookup).unwrap(), "test")
    }

    #[test]
    fn reads_share_half_the_pool_except_in_lambda() {
        let url = ("DATABASE_URL", "postgres://postgres@127.0.0.1/keyledger");
        assert_eq!(settings(&[url, ("DB_POOL_MAX", "8")]).shared_reads, 4);
        assert_eq!(settings(&[url]).shared_reads, 1);
        assert_eq!(settings(&[url, ("DB_POOL_MAX", "1")]).shared_reads, 0);
        assert_eq!(settings(&[url, ("DB_POOL_MAX", "8"), ("AWS_LAMBDA_FUNCTION_NAME", "token-fetch")]).shared_reads, 0);
    }
}
