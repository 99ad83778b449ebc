//! The state one execution environment builds once and every request shares: configuration,
//! the database pool, the secrets client and the cached secrets.
//!
//! Building a [`Context`] does no network I/O; secrets and connections are fetched lazily
//! by the first request that needs them and then cached (DESIGN §3).

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};

use crate::{
    config::{Config, ConfigError},
    crypto::{KeyRing, sha256},
    db::Db,
    events::Metadata,
    secrets::{CachedSecret, SecretsClient, SecretsError, parse_plain},
    signing::SigningKeys,
};

/// Shared per-environment state; cheap to clone.
#[derive(Clone)]
pub struct Context {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    function: &'static str,
    db: Db,
    secrets: SecretsClient,
    keyring: Option<CachedSecret<KeyRing>>,
    admin_key_hash: Option<CachedSecret<[u8; 32]>>,
    pepper: Option<CachedSecret<SecretString>>,
    signing_keys: Option<CachedSecret<SigningKeys>>,
}

impl Context {
    /// Reads the configuration from the environment and builds the context for `function`.
    pub fn from_env(function: &'static str) -> Result<Self, ConfigError> {
        Ok(Self::new(Config::from_env()?, function))
    }

    /// The context for `function` with `config`.
    pub fn new(config: Config, function: &'static str) -> Self {
        let secrets = SecretsClient::new();
        let ttl = config.secrets_ttl;
        let keyring = config.encryption_keys.clone().map(|source| {
            CachedSecret::new("ENCRYPTION_KEYS", source, secrets.clone(), ttl, |raw| {
                KeyRing::parse(raw).map_err(|e| e.to_string())
            })
        });
        let admin_key_hash = config.admin_api_key.clone().map(|source| {
            CachedSecret::new("ADMIN_API_KEY", source, secrets.clone(), ttl, |raw| {
                let key = parse_plain(raw)?;
                Ok(sha256(key.expose_secret().as_bytes()))
            })
        });
        let pepper = config
            .license_key_pepper
            .clone()
            .map(|source| CachedSecret::new("LICENSE_KEY_PEPPER", source, secrets.clone(), ttl, parse_plain));
        let signing_keys = config.license_signing_keys.clone().map(|source| {
            CachedSecret::new("LICENSE_SIGNING_KEYS", source, secrets.clone(), ttl, |raw| {
                SigningKeys::parse(raw).map_err(|e| e.to_string())
            })
        });
        let db = Db::new(&config, &secrets, function);
        Self { inner: Arc::new(Inner { config, function, db, secrets, keyring, admin_key_hash, pepper, signing_keys }) }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The function name (`admin`, `token-fetch`, …).
    pub fn function(&self) -> &'static str {
        self.inner.function
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    /// The secrets client, for secrets a function reads on its own.
    pub fn secrets(&self) -> &SecretsClient {
        &self.inner.secrets
    }

    /// The encryption key ring; [`SecretsError::NotConfigured`] without `ENCRYPTION_KEYS`,
    /// or why it could not be read. Each domain says what that means for it.
    pub async fn keyring(&self) -> Result<Arc<KeyRing>, SecretsError> {
        let cache = self.inner.keyring.as_ref().ok_or(SecretsError::NotConfigured("ENCRYPTION_KEYS"))?;
        cache.get().await
    }

    /// SHA-256 of the bootstrap admin key, when one is configured (`None` without
    /// `ADMIN_API_KEY`); why it could not be read otherwise.
    pub async fn admin_key_hash(&self) -> Result<Option<Arc<[u8; 32]>>, SecretsError> {
        match &self.inner.admin_key_hash {
            None => Ok(None),
            Some(cache) => cache.get().await.map(Some),
        }
    }

    /// The license-key pepper; [`SecretsError::NotConfigured`] without
    /// `LICENSE_KEY_PEPPER`, or why it could not be read.
    pub async fn license_key_pepper(&self) -> Result<Arc<SecretString>, SecretsError> {
        let cache = self.inner.pepper.as_ref().ok_or(SecretsError::NotConfigured("LICENSE_KEY_PEPPER"))?;
        cache.get().await
    }

    /// The license signing key ring; [`SecretsError::NotConfigured`] without
    /// `LICENSE_SIGNING_KEYS`, or why it could not be read.
    pub async fn signing_keys(&self) -> Result<Arc<SigningKeys>, SecretsError> {
        let cache = self.inner.signing_keys.as_ref().ok_or(SecretsError::NotConfigured("LICENSE_SIGNING_KEYS"))?;
        cache.get().await
    }

    /// Event metadata for work this function does on its own.
    pub fn system_metadata(&self) -> Metadata {
        Metadata::system(self.inner.function)
    }
}
