//! Secrets: where each one comes from, fetching from Secrets Manager, and caching with a TTL.
//!
//! Owns the Secrets Manager client (built lazily, so start-up does no network I/O) and the
//! per-execution-environment cache. A secret value never leaves this module except wrapped
//! in `SecretString` or in a parsed type whose `Debug` redacts it; nothing here logs a value.

use std::{
    fmt,
    sync::Arc,
    time::{Duration, Instant},
};

use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{Mutex, OnceCell};

/// Where one secret comes from.
#[derive(Clone)]
pub enum SecretSource {
    /// The value itself, from an environment variable (local development).
    Value(SecretString),
    /// A Secrets Manager secret id or ARN.
    SecretsManager(String),
}

impl fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Value(_) => f.write_str("Value([REDACTED])"),
            Self::SecretsManager(id) => f.debug_tuple("SecretsManager").field(id).finish(),
        }
    }
}

/// Fetching a secret failed.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// Secrets Manager could not be reached or refused the request.
    #[error("secrets manager: fetching '{id}' failed: {message}")]
    Fetch {
        /// The secret id.
        id: String,
        /// The SDK's description of the failure.
        message: String,
    },
    /// The secret has no string value.
    #[error("secrets manager: '{id}' has no SecretString")]
    Empty {
        /// The secret id.
        id: String,
    },
    /// The secret's variable is not set (neither the value nor its Secrets Manager id).
    #[error("{0} is not configured")]
    NotConfigured(&'static str),
    /// The value exists but does not have the expected shape.
    #[error("secret '{name}' is malformed: {reason}")]
    Malformed {
        /// Which secret (variable or id), never its value.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Reads secret values; one per execution environment, shared by every cache.
#[derive(Clone, Default)]
pub struct SecretsClient {
    client: Arc<OnceCell<aws_sdk_secretsmanager::Client>>,
}

impl SecretsClient {
    /// A client that connects to Secrets Manager on first use only.
    pub fn new() -> Self {
        Self::default()
    }

    async fn sdk(&self) -> &aws_sdk_secretsmanager::Client {
        self.client
            // Honours AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_SECRETS_MANAGER, so tests and local
            // runs can point at an emulator.
            .get_or_init(|| async { crate::aws::secrets_manager() })
            .await
    }

    /// The current value of `source`, fetched from Secrets Manager when it names an id.
    pub async fn fetch(&self, source: &SecretSource) -> Result<SecretString, SecretsError> {
        match source {
            SecretSource::Value(value) => Ok(value.clone()),
            SecretSource::SecretsManager(id) => {
                let out = self.sdk().await.get_secret_value().secret_id(id).send().await.map_err(|e| {
                    SecretsError::Fetch {
                        id: id.clone(),
                        message: aws_sdk_secretsmanager::error::DisplayErrorContext(&e).to_string(),
                    }
                })?;
                let value = out.secret_string.ok_or_else(|| SecretsError::Empty { id: id.clone() })?;
                tracing::debug!(secret_id = %id, "fetched secret");
                Ok(SecretString::from(value))
            }
        }
    }
}

impl SecretsClient {
    /// The value of Secrets Manager secret `id` at version stage `stage` (`AWSPREVIOUS`…);
    /// `None` when the secret has no version in that stage.
    pub async fn fetch_stage(&self, id: &str, stage: &str) -> Result<Option<SecretString>, SecretsError> {
        match self.sdk().await.get_secret_value().secret_id(id).version_stage(stage).send().await {
            Ok(out) => Ok(out.secret_string.map(SecretString::from)),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_resource_not_found_exception()) => Ok(None),
            Err(e) => Err(SecretsError::Fetch {
                id: id.to_owned(),
                message: aws_sdk_secretsmanager::error::DisplayErrorContext(&e).to_string(),
            }),
        }
    }

    /// Stores a new current value of secret `id` (provisioning by `migrate`; functions never write).
    pub async fn put(&self, id: &str, value: &SecretString) -> Result<(), SecretsError> {
        self.sdk().await.put_secret_value().secret_id(id).secret_string(value.expose_secret()).send().await.map_err(
            |e| SecretsError::Fetch {
                id: id.to_owned(),
                message: aws_sdk_secretsmanager::error::DisplayErrorContext(&e).to_string(),
            },
        )?;
        Ok(())
    }
}

type Parser<T> = dyn Fn(&SecretString) -> Result<T, String> + Send + Sync;

/// One secret, parsed into `T` and cached for a TTL; fetched again after the TTL or after
/// [`CachedSecret::invalidate`] (for example when the database rejected its password).
pub struct CachedSecret<T> {
    name: String,
    source: SecretSource,
    client: SecretsClient,
    ttl: Duration,
    parse: Box<Parser<T>>,
    slot: Mutex<Option<(Arc<T>, Instant)>>,
}

impl<T> CachedSecret<T> {
    /// A cache for `source`; `name` is what errors call it (a variable name, never the value).
    pub fn new(
        name: impl Into<String>,
        source: SecretSource,
        client: SecretsClient,
        ttl: Duration,
        parse: impl Fn(&SecretString) -> Result<T, String> + Send + Sync + 'static,
    ) -> Self {
        Self { name: name.into(), source, client, ttl, parse: Box::new(parse), slot: Mutex::new(None) }
    }

    /// The cached value, fetched and parsed when missing or older than the TTL.
    ///
    /// The lock is held across the fetch so that concurrent callers of a cold cache cause one
    /// Secrets Manager call, not one each.
    pub async fn get(&self) -> Result<Arc<T>, SecretsError> {
        let mut slot = self.slot.lock().await;
        if let Some((value, at)) = slot.as_ref() {
            let fixed = matches!(self.source, SecretSource::Value(_));
            if fixed || at.elapsed() < self.ttl {
                return Ok(value.clone());
            }
        }
        let raw = self.client.fetch(&self.source).await?;
        let value =
            Arc::new((self.parse)(&raw).map_err(|reason| SecretsError::Malformed { name: self.name.clone(), reason })?);
        *slot = Some((value.clone(), Instant::now()));
        Ok(value)
    }

    /// Forgets the cached value so that the next [`get`](Self::get) fetches it again.
    pub async fn invalidate(&self) {
        *self.slot.lock().await = None;
    }

    /// True when the value comes from Secrets Manager and so can change while we run.
    pub fn is_remote(&self) -> bool {
        matches!(self.source, SecretSource::SecretsManager(_))
    }
}

/// A plain string secret, trimmed; the parser for single-value secrets.
pub fn parse_plain(raw: &SecretString) -> Result<SecretString, String> {
    let value = raw.expose_secret().trim();
    if value.is_empty() {
        return Err("empty".into());
    }
    Ok(SecretString::from(value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_a_value() {
        let source = SecretSource::Value(SecretString::from("hunter2".to_owned()));
        assert_eq!(format!("{source:?}"), "Value([REDACTED])");
    }

    #[tokio::test]
    async fn a_value_source_is_parsed_once_and_kept() {
        let cache = CachedSecret::new(
            "ADMIN_API_KEY",
            SecretSource::Value(SecretString::from("  kl_abc \n".to_owned())),
            SecretsClient::new(),
            Duration::ZERO,
            parse_plain,
        );
        let a = cache.get().await.unwrap();
        let b = cache.get().await.unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(a.expose_secret(), "kl_abc");
    }

    #[tokio::test]
    async fn a_malformed_value_names_the_secret_not_the_value() {
        let cache = CachedSecret::new(
            "LICENSE_KEY_PEPPER",
            SecretSource::Value(SecretString::from("   ".to_owned())),
            SecretsClient::new(),
            Duration::ZERO,
            parse_plain,
        );
        let err = cache.get().await.unwrap_err().to_string();
        assert!(err.contains("LICENSE_KEY_PEPPER"), "{err}");
    }
}
