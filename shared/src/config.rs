//! Typed configuration, read once per execution environment from environment variables.
//!
//! Owns the names, defaults and parsing of every setting of DESIGN §7. It never fetches a
//! secret (that is `secrets`) and never reads the environment after start-up: a missing or
//! malformed setting is an error that names the variable, so a bad deploy fails at init.

use std::{collections::BTreeMap, net::SocketAddr, path::PathBuf, time::Duration};

use secrecy::SecretString;

use crate::secrets::SecretSource;

/// A setting that is missing or malformed; the message always names the variable.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {variable}: {reason}")]
pub struct ConfigError {
    /// The environment variable (or pair of alternatives) at fault.
    pub variable: String,
    /// What is wrong with it.
    pub reason: String,
}

impl ConfigError {
    fn new(variable: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { variable: variable.into(), reason: reason.into() }
    }
}

/// Where the database credentials come from.
#[derive(Debug, Clone)]
pub enum DatabaseSource {
    /// A `postgres://` connection string (local development, tests).
    Url(SecretString),
    /// The id of an RDS-style secret `{"username","password","host","port","dbname"}`.
    SecretId(String),
}

/// How the connection to PostgreSQL is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP (local only).
    Disable,
    /// TLS, encrypted but the server certificate is not verified.
    Require,
    /// TLS with the certificate chain and host name verified.
    VerifyFull,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line (CloudWatch).
    Json,
    /// Human-readable, for a terminal.
    Pretty,
}

/// Everything a keyledger function reads from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// Database credentials.
    pub database: DatabaseSource,
    /// Host that completes or overrides the DB secret's (RDS-managed master secrets and the
    /// per-function role secrets carry only `username` and `password`).
    pub db_host: Option<String>,
    /// Port that completes or overrides the DB secret's.
    pub db_port: Option<u16>,
    /// Database name that completes or overrides the DB secret's.
    pub db_name: Option<String>,
    /// TLS mode of the database connection.
    pub db_sslmode: SslMode,
    /// CA bundle (PEM) used by `verify-full`; the embedded Amazon RDS bundle when unset.
    pub db_ca_bundle: Option<PathBuf>,
    /// Connections per execution environment.
    pub db_pool_max: usize,
    /// Time allowed to open a database connection.
    pub db_connect_timeout: Duration,
    /// Server-side `statement_timeout`.
    pub db_statement_timeout: Duration,
    /// AES-256-GCM key ring (DESIGN §4.3).
    pub encryption_keys: Option<SecretSource>,
    /// Bootstrap admin API key.
    pub admin_api_key: Option<SecretSource>,
    /// HMAC key for license-key lookup.
    pub license_key_pepper: Option<SecretSource>,
    /// How long a secret fetched from Secrets Manager is trusted before it is fetched again.
    pub secrets_ttl: Duration,
    /// EventBridge bus for outbound events.
    pub event_bus_name: String,
    /// Inline refresh threshold.
    pub token_expiry_buffer: Duration,
    /// Scheduled refresh window.
    pub refresh_window: Duration,
    /// Scheduled refresh concurrency.
    pub refresh_concurrency: usize,
    /// Time allowed for one call to an OAuth provider (token exchange, refresh, revoke).
    pub provider_timeout: Duration,
    /// Loopback/private provider addresses and plain `http` allowed (`OUTBOUND_ALLOW_PRIVATE`, §6.13).
    pub outbound_allow_private: bool,
    /// Host suffixes provider URLs must end in (`PROVIDER_HOSTS`); empty: any public host.
    pub provider_hosts: Vec<String>,
    /// Idle refresh-token keep-alive, off when `None`.
    pub refresh_keepalive: Option<Duration>,
    /// Characters kept of a logged request or response body.
    pub request_body_limit: usize,
    /// Age after which request-log partitions are dropped.
    pub request_log_retention_days: u32,
    /// Whether keyledger's own HTTP functions log their requests to the request log.
    pub log_own_requests: bool,
    /// Largest accepted HTTP request body, in bytes.
    pub http_body_limit: usize,
    /// Log line format.
    pub log_format: LogFormat,
    /// Address of the plain local HTTP server when not running under a Lambda runtime.
    pub listen_addr: SocketAddr,
    /// Secrets Manager ids of the per-function database role secrets, by function name
    /// (`ROLE_SECRET_IDS`, a JSON object; read by `migrate` only, empty elsewhere).
    pub role_secret_ids: BTreeMap<String, String>,
    /// True inside a Lambda execution environment.
    pub on_lambda: bool,
    /// Ed25519 signing key ring of license answers and files (DESIGN §6.15).
    pub license_signing_keys: Option<SecretSource>,
    /// `iss` of license files.
    pub license_issuer: String,
    /// Longest lifetime of a license file.
    pub license_file_max_ttl: Duration,
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let on_lambda = get("AWS_LAMBDA_FUNCTION_NAME").is_some();

        let database = match (get("DATABASE_URL"), get("DB_SECRET_ID")) {
            (Some(url), None) => {
                if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                    return Err(ConfigError::new("DATABASE_URL", "must start with postgres:// or postgresql://"));
                }
                DatabaseSource::Url(SecretString::from(url))
            }
            (None, Some(id)) => DatabaseSource::SecretId(id),
            (Some(_), Some(_)) => {
                return Err(ConfigError::new("DATABASE_URL/DB_SECRET_ID", "set one of them, not both"));
            }
            (None, None) => {
                return Err(ConfigError::new("DATABASE_URL/DB_SECRET_ID", "one of them is required"));
            }
        };

        // On Lambda the server is RDS (or RDS Proxy), whose CAs are embedded: verify it.
        let db_sslmode = match get("DB_SSLMODE").as_deref() {
            None if on_lambda => SslMode::VerifyFull,
            None => SslMode::Disable,
            Some("disable") => SslMode::Disable,
            Some("require") => SslMode::Require,
            Some("verify-full") => SslMode::VerifyFull,
            Some(other) => {
                return Err(ConfigError::new(
                    "DB_SSLMODE",
                    format!("'{other}' is not one of disable, require, verify-full"),
                ));
            }
        };
        let db_ca_bundle = get("DB_CA_BUNDLE").map(PathBuf::from);
        if let Some(path) = &db_ca_bundle
            && !path.is_file()
        {
            return Err(ConfigError::new("DB_CA_BUNDLE", format!("no file at {}", path.display())));
        }

        let log_format = match get("LOG_FORMAT").as_deref() {
            None if on_lambda => LogFormat::Json,
            None => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some("pretty") => LogFormat::Pretty,
            Some(other) => {
                return Err(ConfigError::new("LOG_FORMAT", format!("'{other}' is not one of json, pretty")));
            }
        };

        let keepalive_hours: u64 = parse(&get, "REFRESH_KEEPALIVE_HOURS", 0)?;
        let role_secret_ids = match get("ROLE_SECRET_IDS") {
            None => BTreeMap::new(),
            Some(raw) => serde_json::from_str::<BTreeMap<String, String>>(&raw)
                .ok()
                .filter(|m| m.values().all(|id| !id.trim().is_empty()))
                .ok_or_else(|| {
                    ConfigError::new("ROLE_SECRET_IDS", "expected a JSON object of function name to secret id")
                })?,
        };
        let db_port = match get("DB_PORT") {
            None => None,
            Some(_) => Some(positive(&get, "DB_PORT", 5432u16)?),
        };

        Ok(Self {
            database,
            db_host: get("DB_HOST"),
            db_port,
            db_name: get("DB_NAME"),
            db_sslmode,
            db_ca_bundle,
            db_pool_max: positive(&get, "DB_POOL_MAX", 2)?,
            db_connect_timeout: Duration::from_millis(positive(&get, "DB_CONNECT_TIMEOUT_MS", 5000)?),
            db_statement_timeout: Duration::from_millis(positive(&get, "DB_STATEMENT_TIMEOUT_MS", 10_000)?),
            encryption_keys: secret(&get, "ENCRYPTION_KEYS")?,
            admin_api_key: secret(&get, "ADMIN_API_KEY")?,
            license_key_pepper: secret(&get, "LICENSE_KEY_PEPPER")?,
            secrets_ttl: Duration::from_secs(parse(&get, "SECRETS_CACHE_TTL_SECONDS", 300)?),
            event_bus_name: get("EVENT_BUS_NAME").unwrap_or_else(|| "default".into()),
            token_expiry_buffer: Duration::from_secs(parse(&get, "TOKEN_EXPIRY_BUFFER_SECONDS", 300)?),
            refresh_window: Duration::from_secs(positive(&get, "REFRESH_WINDOW_SECONDS", 900)?),
            refresh_concurrency: positive(&get, "REFRESH_CONCURRENCY", 16)?,
            provider_timeout: Duration::from_millis(positive(&get, "PROVIDER_TIMEOUT_MS", 10_000)?),
            outbound_allow_private: boolean(&get, "OUTBOUND_ALLOW_PRIVATE", false)?,
            provider_hosts: get("PROVIDER_HOSTS")
                .map(|raw| {
                    raw.split(',')
                        .map(|h| h.trim().trim_matches('.').to_ascii_lowercase())
                        .filter(|h| !h.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            refresh_keepalive: (keepalive_hours > 0).then(|| Duration::from_secs(keepalive_hours * 3600)),
            request_body_limit: positive(&get, "REQUEST_BODY_LIMIT", 2000)?,
            request_log_retention_days: positive(&get, "REQUEST_LOG_RETENTION_DAYS", 90)?,
            log_own_requests: boolean(&get, "LOG_OWN_REQUESTS", false)?,
            http_body_limit: positive(&get, "HTTP_BODY_LIMIT_BYTES", 1024 * 1024 + 64 * 1024)?,
            log_format,
            listen_addr: parse(&get, "LISTEN_ADDR", SocketAddr::from(([127, 0, 0, 1], 8080)))?,
            role_secret_ids,
            on_lambda,
            license_signing_keys: secret(&get, "LICENSE_SIGNING_KEYS")?,
            license_issuer: get("LICENSE_ISSUER").unwrap_or_else(|| "keyledger".into()),
            license_file_max_ttl: Duration::from_secs(positive(&get, "LICENSE_FILE_MAX_TTL_SECONDS", 2_592_000)?),
        })
    }

    /// The key ring source, or an error naming both variables when neither is set.
    pub fn require_encryption_keys(&self) -> Result<&SecretSource, ConfigError> {
        self.encryption_keys.as_ref().ok_or_else(|| missing_secret("ENCRYPTION_KEYS"))
    }

    /// The license signing key ring source, or an error naming both variables when neither is set.
    pub fn require_license_signing_keys(&self) -> Result<&SecretSource, ConfigError> {
        self.license_signing_keys.as_ref().ok_or_else(|| missing_secret("LICENSE_SIGNING_KEYS"))
    }

    /// The license-key pepper source, or an error naming both variables when neither is set.
    pub fn require_license_key_pepper(&self) -> Result<&SecretSource, ConfigError> {
        self.license_key_pepper.as_ref().ok_or_else(|| missing_secret("LICENSE_KEY_PEPPER"))
    }
}

fn missing_secret(name: &str) -> ConfigError {
    ConfigError::new(format!("{name}/{name}_SECRET_ID"), "one of them is required by this function")
}

/// `NAME` holds the secret itself, `NAME_SECRET_ID` the Secrets Manager id that holds it.
fn secret(get: &impl Fn(&str) -> Option<String>, name: &str) -> Result<Option<SecretSource>, ConfigError> {
    let id_name = format!("{name}_SECRET_ID");
    match (get(name), get(&id_name)) {
        (Some(_), Some(_)) => Err(ConfigError::new(format!("{name}/{id_name}"), "set one of them, not both")),
        (Some(value), None) => Ok(Some(SecretSource::Value(SecretString::from(value)))),
        (None, Some(id)) => Ok(Some(SecretSource::SecretsManager(id))),
        (None, None) => Ok(None),
    }
}

fn parse<T: std::str::FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: T,
) -> Result<T, ConfigError> {
    match get(name) {
        None => Ok(default),
        Some(raw) => raw.trim().parse().map_err(|_| ConfigError::new(name, format!("'{raw}' is not a valid value"))),
    }
}

fn positive<T>(get: &impl Fn(&str) -> Option<String>, name: &str, default: T) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + Default,
{
    let value = parse(get, name, default)?;
    if value <= T::default() {
        return Err(ConfigError::new(name, "must be greater than zero"));
    }
    Ok(value)
}

fn boolean(get: &impl Fn(&str) -> Option<String>, name: &str, default: bool) -> Result<bool, ConfigError> {
    match get(name).map(|v| v.to_ascii_lowercase()).as_deref() {
        None => Ok(default),
        Some("1" | "true" | "yes" | "on") => Ok(true),
        Some("0" | "false" | "no" | "off") => Ok(false),
        Some(other) => Err(ConfigError::new(name, format!("'{other}' is not a boolean"))),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    const URL: (&str, &str) = ("DATABASE_URL", "postgres://postgres@127.0.0.1/keyledger");

    #[test]
    fn defaults_follow_the_design() {
        let c = config(&[URL]).unwrap();
        assert_eq!(c.db_pool_max, 2);
        assert_eq!(c.token_expiry_buffer, Duration::from_secs(300));
        assert_eq!(c.refresh_window, Duration::from_secs(900));
        assert_eq!(c.refresh_concurrency, 16);
        assert_eq!(c.request_body_limit, 2000);
        assert_eq!(c.request_log_retention_days, 90);
        assert_eq!(c.event_bus_name, "default");
        assert_eq!(c.db_sslmode, SslMode::Disable);
        assert_eq!(c.log_format, LogFormat::Pretty);
        assert!(c.refresh_keepalive.is_none());
    }

    #[test]
    fn lambda_defaults_to_verified_tls_and_json_logs() {
        let c = config(&[URL, ("AWS_LAMBDA_FUNCTION_NAME", "admin")]).unwrap();
        assert_eq!(c.db_sslmode, SslMode::VerifyFull);
        assert_eq!(c.log_format, LogFormat::Json);
    }

    #[test]
    fn a_missing_database_names_both_variables() {
        let err = config(&[]).unwrap_err();
        assert_eq!(err.variable, "DATABASE_URL/DB_SECRET_ID");
        assert!(err.to_string().contains("DATABASE_URL"));
    }

    #[test]
    fn malformed_values_name_the_variable() {
        for (name, value) in [
            ("DB_POOL_MAX", "many"),
            ("DB_POOL_MAX", "0"),
            ("DB_SSLMODE", "prefer"),
            ("REFRESH_CONCURRENCY", "-3"),
            ("REQUEST_BODY_LIMIT", "2k"),
            ("LOG_FORMAT", "xml"),
            ("LOG_OWN_REQUESTS", "perhaps"),
            ("TOKEN_EXPIRY_BUFFER_SECONDS", "soon"),
            ("DB_PORT", "0"),
            ("ROLE_SECRET_IDS", "admin=x"),
            ("ROLE_SECRET_IDS", r#"{"admin": ""}"#),
        ] {
            let err = config(&[URL, (name, value)]).unwrap_err();
            assert_eq!(err.variable, name, "{name}={value}");
            assert!(err.to_string().contains(name));
        }
    }

    #[test]
    fn a_bad_database_url_is_named() {
        let err = config(&[("DATABASE_URL", "mysql://x")]).unwrap_err();
        assert_eq!(err.variable, "DATABASE_URL");
    }

    #[test]
    fn a_secret_comes_from_a_value_or_an_id_but_not_both() {
        let c = config(&[URL, ("ENCRYPTION_KEYS_SECRET_ID", "keyledger/keys")]).unwrap();
        assert!(matches!(c.encryption_keys, Some(SecretSource::SecretsManager(ref id)) if id == "keyledger/keys"));
        let err = config(&[URL, ("ADMIN_API_KEY", "kl_x"), ("ADMIN_API_KEY_SECRET_ID", "id")]).unwrap_err();
        assert_eq!(err.variable, "ADMIN_API_KEY/ADMIN_API_KEY_SECRET_ID");
        let err = config(&[URL]).unwrap().require_encryption_keys().unwrap_err();
        assert!(err.to_string().contains("ENCRYPTION_KEYS_SECRET_ID"));
    }

    #[test]
    fn role_secret_ids_and_database_location_are_read() {
        let c = config(&[
            URL,
            ("ROLE_SECRET_IDS", r#"{"admin": "arn:aws:secretsmanager:eu-west-1:1:secret:kl-admin"}"#),
            ("DB_HOST", "db.internal"),
            ("DB_PORT", "6432"),
        ])
        .unwrap();
        assert_eq!(c.role_secret_ids["admin"], "arn:aws:secretsmanager:eu-west-1:1:secret:kl-admin");
        assert_eq!((c.db_host.as_deref(), c.db_port, c.db_name.as_deref()), (Some("db.internal"), Some(6432), None));
        assert!(config(&[URL]).unwrap().role_secret_ids.is_empty());
    }

    #[test]
    fn license_file_settings_default_and_are_checked() {
        let c = config(&[URL]).unwrap();
        assert_eq!(c.license_issuer, "keyledger");
        assert_eq!(c.license_file_max_ttl, Duration::from_secs(2_592_000));
        assert!(c.require_license_signing_keys().unwrap_err().to_string().contains("LICENSE_SIGNING_KEYS_SECRET_ID"));
        let err = config(&[URL, ("LICENSE_FILE_MAX_TTL_SECONDS", "0")]).unwrap_err();
        assert_eq!(err.variable, "LICENSE_FILE_MAX_TTL_SECONDS");
        let c = config(&[URL, ("LICENSE_SIGNING_KEYS_SECRET_ID", "kl/signing")]).unwrap();
        assert!(matches!(c.license_signing_keys, Some(SecretSource::SecretsManager(ref id)) if id == "kl/signing"));
    }

    #[test]
    fn a_missing_ca_bundle_file_is_named() {
        let err = config(&[URL, ("DB_CA_BUNDLE", "/nonexistent/ca.pem")]).unwrap_err();
        assert_eq!(err.variable, "DB_CA_BUNDLE");
    }
}
