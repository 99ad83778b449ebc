//! Software licenses as event-sourced streams `license-<uuid>` (DESIGN §4.2, §6.6) and their
//! projections `licenses` and `installations`.
//!
//! Owns issuing (generated or imported keys), operator changes (suspend, reinstate, extend,
//! limits, revoke, remove an installation) and the public checks an installation makes
//! (validate, activate, deactivate), with their codes and precedence. Every change of a
//! license is an event appended with the version the writer read while holding the license
//! row's lock, so parallel activations can never exceed `max_installations`.
//!
//! A license key is a credential: it is looked up by HMAC-SHA-256 under the pepper and kept
//! only as a ciphertext bound to `license-<id>`/`license_key`. It must never reach an event
//! in plain text, a projection, a log line or an error message; [`LicenseKey`] redacts itself.
//! `installations.last_seen_at` is an observation updated in place, never an event.

pub mod import;

use std::fmt;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use tokio_postgres::{GenericClient, Row, Transaction, error::SqlState, types::Type};
use uuid::Uuid;

use crate::{
    context::Context,
    crypto::{Owner, constant_time_eq, hmac_sha256, random_bytes},
    db::DbError,
    events::{EventStoreError, ExpectedVersion, Metadata, RecordedEvent},
    http::{ApiError, Page, decode_cursor, encode_cursor, page_limit},
    projections,
};

// ---------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------

/// Longest accepted license key, installation id or nonce, in characters.
pub const MAX_KEY_CHARS: usize = 128;

/// True for the characters keys and installation ids may hold: printable ASCII, no space.
/// Anything else (control characters, zero-width or bidi marks, look-alike letters) is
/// refused, so that two keys that look the same are the same.
fn printable_ascii(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_graphic())
}

fn bounded_token(raw: &str, what: &str) -> Result<String, String> {
    // Cheap bound first: a huge value is refused without scanning it.
    if raw.len() > MAX_KEY_CHARS * 4 {
        return Err(format!("{what} must be at most {MAX_KEY_CHARS} characters"));
    }
    let value = raw.trim_matches(|c: char| c.is_ascii_whitespace());
    if value.is_empty() {
        return Err(format!("{what} must not be empty"));
    }
    if value.chars().count() > MAX_KEY_CHARS {
        return Err(format!("{what} must be at most {MAX_KEY_CHARS} characters"));
    }
    if !printable_ascii(value) {
        return Err(format!(
            "{what} may contain only printable ASCII characters (no spaces, control characters or other Unicode)"
        ));
    }
    Ok(value.to_owned())
}

/// A license key as presented: 1–128 printable ASCII characters (surrounding whitespace is
/// dropped). Its `Debug` never shows it.
#[derive(Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct LicenseKey(SecretString);

impl LicenseKey {
    /// Parses a presented or imported key; the error never quotes it.
    pub fn parse(raw: &str) -> Result<Self, String> {
        bounded_token(raw, "license_key").map(|k| Self(SecretString::from(k)))
    }

    /// A new random key: 150 bits as six groups of five Crockford base-32 characters,
    /// `7KQ2M-X9D4R-...`, easy to read aloud and to type (no I, L, O, U).
    pub fn generate() -> Self {
        const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
        let bytes = random_bytes::<19>();
        let mut bits: u32 = 0;
        let mut nbits = 0;
        let mut chars = Vec::with_capacity(30);
        let mut iter = bytes.iter();
        while chars.len() < 30 {
            if nbits < 5 {
                bits = (bits << 8) | u32::from(*iter.next().unwrap_or(&0));
                nbits += 8;
            }
            nbits -= 5;
            chars.push(ALPHABET[((bits >> nbits) & 31) as usize]);
        }
        let groups: Vec<&str> =
            chars.chunks(5).map(|c| std::str::from_utf8(c).expect("the alphabet is ASCII")).collect();
        Self(SecretString::from(groups.join("-")))
    }

    /// The key itself, for encryption and for showing it to its owner.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// HMAC-SHA-256 of the key under the pepper: what the database looks keys up by.
    pub fn lookup_hash(&self, pepper: &SecretString) -> [u8; 32] {
        hmac_sha256(pepper.expose_secret().as_bytes(), self.expose().as_bytes())
    }
}

impl LicenseKey {
    /// A key as a public check presents it (DESIGN §6.6): empty or over 128 characters is
    /// refused before any lookup, but a key with characters no key has (a space,
    /// `' OR 1=1 --`, look-alike Unicode) is looked up like any other and simply not found,
    /// so malformed and unknown keys are indistinguishable to a caller.
    pub fn presented(raw: &str) -> Result<Self, String> {
        if raw.len() > MAX_KEY_CHARS * 4 || raw.trim().chars().count() > MAX_KEY_CHARS {
            return Err(format!("license_key must be at most {MAX_KEY_CHARS} characters"));
        }
        match raw.trim() {
            "" => Err("license_key must not be empty".into()),
            key => Ok(Self(SecretString::from(key.to_owned()))),
        }
    }

    fn deserialize_presented<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::presented(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl TryFrom<String> for LicenseKey {
    type Error = String;
    fn try_from(raw: String) -> Result<Self, String> {
        Self::parse(&raw)
    }
}

impl fmt::Debug for LicenseKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LicenseKey([REDACTED])")
    }
}

/// An installation's id as the product names it: 1–128 printable ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct InstallationId(String);

impl InstallationId {
    /// Parses an installation id.
    pub fn parse(raw: &str) -> Result<Self, String> {
        bounded_token(raw, "installation_id").map(Self)
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for InstallationId {
    type Error = String;
    fn try_from(raw: String) -> Result<Self, String> {
        Self::parse(&raw)
    }
}

impl From<InstallationId> for String {
    fn from(id: InstallationId) -> String {
        id.0
    }
}

fn plain_text(raw: &str, what: &str, max: usize) -> Result<String, String> {
    let value = raw.trim();
    if value.chars().count() > max {
        return Err(format!("{what} must be at most {max} characters"));
    }
    // Control, zero-width and bidi-override characters make a value lie about itself.
    if value.chars().any(|c| {
        c.is_control()
            || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
    }) {
        return Err(format!("{what} must not contain control or invisible formatting characters"));
    }
    Ok(value.to_owned())
}

/// A human name for an installation (`"Anna's laptop"`): up to 200 visible characters.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct InstallationName(String);

impl TryFrom<String> for InstallationName {
    type Error = String;
    fn try_from(raw: String) -> Result<Self, String> {
        plain_text(&raw, "name", 200).map(Self)
    }
}

impl From<InstallationName> for String {
    fn from(n: InstallationName) -> String {
        n.0
    }
}

/// A caller's nonce, echoed in the answer: up to 128 printable ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct Nonce(String);

impl TryFrom<String> for Nonce {
    type Error = String;
    fn try_from(raw: String) -> Result<Self, String> {
        bounded_token(&raw, "nonce").map(Self)
    }
}

impl From<Nonce> for String {
    fn from(n: Nonce) -> String {
        n.0
    }
}

/// A license holder's e-mail address (3–254 characters with one `@`, no spaces).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    /// Parses an address; the check is deliberately shallow (delivery is not our job).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let value = plain_text(raw, "email", 254)?;
        let ok = value.chars().count() >= 3
            && !value.chars().any(char::is_whitespace)
            && value.matches('@').count() == 1
            && !value.starts_with('@')
            && !value.ends_with('@');
        if ok { Ok(Self(value)) } else { Err("email must be an address like name@example.com".into()) }
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Email {
    type Error = String;
    fn try_from(raw: String) -> Result<Self, String> {
        Self::parse(&raw)
    }
}

impl From<Email> for String {
    fn from(e: Email) -> String {
        e.0
    }
}

/// A license's status. Expiry is separate: an `active` license past `expires_at` is expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LicenseStatus {
    /// Usable (unless expired).
    Active,
    /// Paused by an operator; can be reinstated.
    Suspended,
    /// Revoked for good.
    Revoked,
}

impl LicenseStatus {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Revoked => "revoked",
        }
    }

    fn from_db(s: &str) -> Self {
        match s {
            "suspended" => Self::Suspended,
            "revoked" => Self::Revoked,
            _ => Self::Active,
        }
    }
}

/// Why an installation stopped holding a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeactivationReason {
    /// Not seen for `max_inactive_days`; its slot went to a new installation.
    Inactive,
    /// Removed by an operator.
    Operator,
    /// Deactivated by the product itself (`POST /v1/licenses/deactivate`).
    Customer,
}

// ---------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------

/// Events of a `license-<uuid>` stream. The key appears only as hash and ciphertext.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type")]
pub enum LicenseEvent {
    /// A license was issued (or imported from the old license service).
    LicenseIssued {
        /// License id.
        id: Uuid,
        /// Hex HMAC-SHA-256 of the key under the pepper.
        key_hash: String,
        /// The key, encrypted for `license-<id>`/`license_key`.
        license_key: String,
        /// Holder.
        email: String,
        /// Installations that may be active at once.
        max_installations: i32,
        /// Days after which an unseen installation gives up its slot.
        max_inactive_days: Option<i32>,
        /// End of validity.
        expires_at: Option<DateTime<Utc>>,
        /// Operator's free-form data.
        metadata: Value,
        /// When the license came to be (the old service's date for imports).
        created_at: DateTime<Utc>,
        /// `api` or `import`.
        source: String,
    },
    /// Some of a license's terms changed; absent fields are unchanged, `null` clears.
    LicenseUpdated {
        /// License id.
        id: Uuid,
        /// New holder.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        email: Option<String>,
        /// New limit.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_installations: Option<i32>,
        /// New inactivity limit, or `null` for none.
        #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "double_option")]
        max_inactive_days: Option<Option<i32>>,
        /// New end of validity, or `null` for none.
        #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "double_option")]
        expires_at: Option<Option<DateTime<Utc>>>,
        /// New metadata.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        metadata: Option<Value>,
    },
    /// Paused by an operator.
    LicenseSuspended {
        /// License id.
        id: Uuid,
    },
    /// A suspension ended.
    LicenseReinstated {
        /// License id.
        id: Uuid,
    },
    /// Revoked for good (the license stays visible).
    LicenseRevoked {
        /// License id.
        id: Uuid,
    },
    /// An installation took a slot.
    InstallationActivated {
        /// License id.
        id: Uuid,
        /// The product's installation id.
        installation_id: String,
        /// Optional human name.
        name: Option<String>,
        /// When it was activated.
        activated_at: DateTime<Utc>,
    },
    /// An installation gave up its slot.
    InstallationDeactivated {
        /// License id.
        id: Uuid,
        /// The product's installation id.
        installation_id: String,
        /// Why.
        reason: DeactivationReason,
        /// When it had last been seen (the evidence for `inactive`).
        last_seen_at: Option<DateTime<Utc>>,
    },
}

fn double_option<'de, T: Deserialize<'de>, D: Deserializer<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// The stream of license `id`.
pub fn stream(id: Uuid) -> String {
    format!("license-{id}")
}

const KEY_FIELD: &str = "license_key";

// ---------------------------------------------------------------------------------------
// Views
// ---------------------------------------------------------------------------------------

/// A revealed license key in an answer; `Debug` still redacts it.
pub struct RevealedKey(SecretString);

impl Serialize for RevealedKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.expose_secret())
    }
}

impl fmt::Debug for RevealedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

/// An active installation as the operator sees it.
#[derive(Debug, Serialize)]
pub struct Installation {
    /// The product's installation id.
    pub installation_id: String,
    /// Optional human name.
    pub name: Option<String>,
    /// When it took its slot.
    pub activated_at: DateTime<Utc>,
    /// Last successful validation or activation.
    pub last_seen_at: DateTime<Utc>,
}

/// A license as the admin API answers it. The key only on creation and `GET /v1/licenses/{id}`.
#[derive(Debug, Serialize)]
pub struct License {
    /// License id.
    pub id: Uuid,
    /// The key, only where it may be revealed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub license_key: Option<RevealedKey>,
    /// Holder.
    pub email: String,
    /// `active`, `suspended` or `revoked`.
    pub status: LicenseStatus,
    /// Limit of active installations.
    pub max_installations: i32,
    /// Inactivity after which a slot may be taken over.
    pub max_inactive_days: Option<i32>,
    /// End of validity.
    pub expires_at: Option<DateTime<Utc>>,
    /// True when `expires_at` has passed.
    pub expired: bool,
    /// Active installations.
    pub installations_used: i64,
    /// Operator's data.
    pub metadata: Value,
    /// Issue time.
    pub created_at: DateTime<Utc>,
    /// Last change of its terms or status.
    pub updated_at: DateTime<Utc>,
    /// The installations, on single-license answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub installations: Option<Vec<Installation>>,
}

const LICENSE_COLUMNS: &str = "l.id, l.email, l.status, l.max_installations, l.max_inactive_days, l.expires_at, \
     l.metadata, l.created_at, l.updated_at, \
     l.installations_used::bigint AS used, \
     l.expires_at IS NOT NULL AND l.expires_at <= now() AS expired, l.license_key";

fn license_from_row(row: &Row) -> License {
    License {
        id: row.get(0),
        email: row.get(1),
        status: LicenseStatus::from_db(row.get(2)),
        max_installations: row.get(3),
        max_inactive_days: row.get(4),
        expires_at: row.get(5),
        metadata: row.get(6),
        created_at: row.get(7),
        updated_at: row.get(8),
        installations_used: row.get(9),
        expired: row.get(10),
        license_key: None,
        installations: None,
    }
}

// ---------------------------------------------------------------------------------------
// Admin commands
// ---------------------------------------------------------------------------------------

/// The body of `POST /v1/licenses`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewLicense {
    /// Holder.
    pub email: Email,
    /// Limit of active installations (default 1).
    #[serde(default = "one")]
    pub max_installations: i32,
    /// End of validity; a past date is allowed (the license validates as `EXPIRED`).
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// Inactivity after which a slot may be taken over.
    #[serde(default)]
    pub max_inactive_days: Option<i32>,
    /// An existing key to import; one is generated when absent.
    #[serde(default)]
    pub license_key: Option<LicenseKey>,
    /// Operator's data (a JSON object).
    #[serde(default)]
    pub metadata: Option<Value>,
}

fn one() -> i32 {
    1
}

const MAX_INSTALLATIONS: i32 = 100_000;
const MAX_INACTIVE_DAYS: i32 = 36_500;

fn check_max_installations(n: i32) -> Result<i32, ApiError> {
    if (1..=MAX_INSTALLATIONS).contains(&n) {
        Ok(n)
    } else {
        Err(ApiError::invalid_field("max_installations", format!("max_installations must be 1 to {MAX_INSTALLATIONS}")))
    }
}

fn check_inactive_days(n: Option<i32>) -> Result<Option<i32>, ApiError> {
    match n {
        Some(d) if !(1..=MAX_INACTIVE_DAYS).contains(&d) => Err(ApiError::invalid_field(
            "max_inactive_days",
            format!("max_inactive_days must be 1 to {MAX_INACTIVE_DAYS}, or null"),
        )),
        other => Ok(other),
    }
}

fn check_metadata(m: Option<Value>) -> Result<Value, ApiError> {
    match m {
        None | Some(Value::Null) => Ok(Value::Object(Default::default())),
        Some(Value::Object(o)) if serde_json::to_vec(&o).map_or(0, |v| v.len()) <= 16 * 1024 => Ok(Value::Object(o)),
        Some(Value::Object(_)) => Err(ApiError::invalid_field("metadata", "metadata must be at most 16 KiB")),
        Some(_) => Err(ApiError::invalid_field("metadata", "metadata must be a JSON object")),
    }
}

fn not_found(id: impl fmt::Display) -> ApiError {
    ApiError::not_found("license_not_found", format!("no license '{id}'"))
}

fn key_exists() -> ApiError {
    ApiError::conflict("license_key_exists", "a license with this license_key already exists")
}

fn is_unique_violation(e: &EventStoreError) -> bool {
    matches!(e, EventStoreError::Db(db) if db.code() == Some(&SqlState::UNIQUE_VIOLATION))
}

async fn pepper_hash(ctx: &Context, key: &LicenseKey) -> Result<[u8; 32], ApiError> {
    Ok(key.lookup_hash(&*ctx.license_key_pepper().await?))
}

/// What [`issue`] needs beyond the request (imports carry their own history).
#[derive(Debug)]
pub(crate) struct Issue {
    pub email: Email,
    pub max_installations: i32,
    pub max_inactive_days: Option<i32>,
    pub expires_at: Option<DateTime<Utc>>,
    pub key: LicenseKey,
    pub metadata: Value,
    pub created_at: DateTime<Utc>,
    pub source: &'static str,
    pub status: LicenseStatus,
}

const KEY_TAKEN: &str = "SELECT 1 FROM licenses WHERE key_hash = $1";

/// Appends `LicenseIssued` (and a status event for imported suspended/revoked licenses) in
/// one transaction; `license_key_exists` when the key is already known.
pub(crate) async fn issue_license(ctx: &Context, issue: Issue, metadata: &Metadata) -> Result<Uuid, ApiError> {
    let keyring = ctx.keyring().await?;
    let hash = pepper_hash(ctx, &issue.key).await?;
    let id = Uuid::now_v7();
    let stream_id = stream(id);
    let mut events = vec![LicenseEvent::LicenseIssued {
        id,
        key_hash: hex::encode(hash),
        license_key: keyring.encrypt(Owner::new(&stream_id, KEY_FIELD), issue.key.expose()),
        email: issue.email.0,
        max_installations: issue.max_installations,
        max_inactive_days: issue.max_inactive_days,
        expires_at: issue.expires_at,
        metadata: issue.metadata,
        created_at: issue.created_at,
        source: issue.source.to_owned(),
    }];
    match issue.status {
        LicenseStatus::Active => {}
        LicenseStatus::Suspended => events.push(LicenseEvent::LicenseSuspended { id }),
        LicenseStatus::Revoked => events.push(LicenseEvent::LicenseRevoked { id }),
    }
    let mut client = ctx.db().get().await?;
    let tx = client.transaction().await?;
    let hash_param = hash.as_slice();
    if !tx.query_typed(KEY_TAKEN, &[(&hash_param, Type::BYTEA)]).await?.is_empty() {
        return Err(key_exists());
    }
    match projections::record(&tx, &PROJECTOR, &stream_id, ExpectedVersion::NoStream, &events, metadata).await {
        Ok(_) => {}
        // A concurrent import of the same key got there first.
        Err(e) if is_unique_violation(&e) => return Err(key_exists()),
        Err(e) => return Err(e.into()),
    }
    tx.commit().await?;
    Ok(id)
}

/// Issues a license (`POST /v1/licenses`); the answer carries the key.
pub async fn issue(ctx: &Context, new: NewLicense, metadata: &Metadata) -> Result<License, ApiError> {
    let max_installations = check_max_installations(new.max_installations)?;
    let max_inactive_days = check_inactive_days(new.max_inactive_days)?;
    let meta = check_metadata(new.metadata)?;
    let key = new.license_key.unwrap_or_else(LicenseKey::generate);
    let issue = Issue {
        email: new.email,
        max_installations,
        max_inactive_days,
        expires_at: new.expires_at,
        key: key.clone(),
        metadata: meta,
        created_at: Utc::now(),
        source: "api",
        status: LicenseStatus::Active,
    };
    let id = issue_license(ctx, issue, metadata).await?;
    let mut license = fetch(ctx, Find::Id(id), false).await?.ok_or_else(|| not_found(id))?;
    license.license_key = Some(RevealedKey(SecretString::from(key.expose().to_owned())));
    Ok(license)
}

enum Find {
    Id(Uuid),
    Hash([u8; 32]),
}

const INSTALLATIONS: &str = "
SELECT installation_id, name, activated_at, last_seen_at FROM installations
WHERE license_id = $1 ORDER BY activated_at, installation_id";

async fn fetch(ctx: &Context, find: Find, reveal: bool) -> Result<Option<License>, ApiError> {
    let client = ctx.db().get().await?;
    let rows = match &find {
        Find::Id(id) => {
            client
                .query_typed(&format!("SELECT {LICENSE_COLUMNS} FROM licenses l WHERE l.id = $1"), &[(id, Type::UUID)])
                .await?
        }
        Find::Hash(hash) => {
            let hash = hash.as_slice();
            client
                .query_typed(
                    &format!("SELECT {LICENSE_COLUMNS}, l.key_hash FROM licenses l WHERE l.key_hash = $1"),
                    &[(&hash, Type::BYTEA)],
                )
                .await?
        }
    };
    let Some(row) = rows.first() else { return Ok(None) };
    if let Find::Hash(hash) = &find
        && !constant_time_eq(row.get::<_, &[u8]>(12), hash)
    {
        return Ok(None);
    }
    let mut license = license_from_row(row);
    if reveal {
        let keyring = ctx.keyring().await?;
        let stream_id = stream(license.id);
        let key = keyring.decrypt(Owner::new(&stream_id, KEY_FIELD), row.get(11)).map_err(ApiError::internal)?;
        license.license_key = Some(RevealedKey(key));
    }
    let installations = client.query_typed(INSTALLATIONS, &[(&license.id, Type::UUID)]).await?;
    license.installations = Some(
        installations
            .iter()
            .map(|r| Installation {
                installation_id: r.get(0),
                name: r.get(1),
                activated_at: r.get(2),
                last_seen_at: r.get(3),
            })
            .collect(),
    );
    Ok(Some(license))
}

/// One license with its installations and, revealed, its key (`GET /v1/licenses/{id}`).
pub async fn show(ctx: &Context, id: Uuid) -> Result<License, ApiError> {
    fetch(ctx, Find::Id(id), true).await?.ok_or_else(|| not_found(id))
}

/// The body of `POST /v1/licenses/lookup`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lookup {
    /// The key to find.
    pub license_key: LicenseKey,
}

/// The license a key belongs to, with installations but without the key.
pub async fn lookup(ctx: &Context, key: &LicenseKey) -> Result<License, ApiError> {
    let hash = pepper_hash(ctx, key).await?;
    fetch(ctx, Find::Hash(hash), false)
        .await?
        .ok_or_else(|| ApiError::not_found("license_not_found", "no license has this key"))
}

/// Filters of `GET /v1/licenses`.
#[derive(Debug, Default, Deserialize)]
pub struct ListFilter {
    /// Holder (case-insensitive, exact).
    pub email: Option<String>,
    /// `active`, `suspended` or `revoked`.
    pub status: Option<LicenseStatus>,
    /// Page size.
    pub limit: Option<i64>,
    /// Where the page starts.
    pub cursor: Option<String>,
}

const LIST: &str = "
WHERE ($1::text IS NULL OR lower(l.email) = lower($1::text))
  AND ($2::text IS NULL OR l.status = $2::text)
  AND ($3::uuid IS NULL OR l.id < $3::uuid)
ORDER BY l.id DESC LIMIT $4";

/// Licenses, newest first, never with their keys.
pub async fn list(ctx: &Context, filter: ListFilter) -> Result<Page<License>, ApiError> {
    let limit = page_limit(filter.limit)?;
    let after: Option<Uuid> = filter.cursor.as_deref().map(decode_cursor).transpose()?;
    let email = filter.email.as_deref().map(str::trim);
    let status = filter.status.map(LicenseStatus::as_str);
    let fetch = limit + 1;
    let rows = ctx
        .db()
        .query(
            &format!("SELECT {LICENSE_COLUMNS} FROM licenses l {LIST}"),
            &[(&email, Type::TEXT), (&status, Type::TEXT), (&after, Type::UUID), (&fetch, Type::INT8)],
        )
        .await?;
    let mut items: Vec<License> = rows.iter().map(license_from_row).collect();
    let next_cursor = (items.len() as i64 > limit).then(|| {
        items.truncate(limit as usize);
        encode_cursor(&items.last().map(|l| l.id))
    });
    Ok(Page { items, next_cursor })
}

/// The body of `PATCH /v1/licenses/{id}`: absent fields stay, `null` clears a nullable one.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LicensePatch {
    /// `active` (reinstate) or `suspended`; revoking is `DELETE`.
    #[serde(default)]
    pub status: Option<LicenseStatus>,
    /// New holder.
    #[serde(default)]
    pub email: Option<Email>,
    /// New limit (existing installations keep their slots when it shrinks).
    #[serde(default)]
    pub max_installations: Option<i32>,
    /// New end of validity, `null` for none.
    #[serde(default, deserialize_with = "double_option")]
    pub expires_at: Option<Option<DateTime<Utc>>>,
    /// New inactivity limit, `null` for none.
    #[serde(default, deserialize_with = "double_option")]
    pub max_inactive_days: Option<Option<i32>>,
    /// New metadata (replaces the old).
    #[serde(default)]
    pub metadata: Option<Value>,
}

const LOCK_BY_ID: &str = "
SELECT email, status, max_installations, max_inactive_days, expires_at, metadata, version
FROM licenses WHERE id = $1 FOR UPDATE";

/// Changes a license's terms or status; 409 `license_revoked` once it is revoked.
pub async fn update(ctx: &Context, id: Uuid, patch: LicensePatch, metadata: &Metadata) -> Result<License, ApiError> {
    if patch.status == Some(LicenseStatus::Revoked) {
        return Err(ApiError::invalid_field("status", "status must be active or suspended; revoke with DELETE"));
    }
    if let Some(n) = patch.max_installations {
        check_max_installations(n)?;
    }
    if let Some(d) = patch.max_inactive_days {
        check_inactive_days(d)?;
    }
    let new_metadata = patch.metadata.map(|m| check_metadata(Some(m))).transpose()?;

    let mut client = ctx.db().get().await?;
    let tx = client.transaction().await?;
    let rows = tx.query_typed(LOCK_BY_ID, &[(&id, Type::UUID)]).await?;
    let Some(row) = rows.first() else { return Err(not_found(id)) };
    let status = LicenseStatus::from_db(row.get(1));
    if status == LicenseStatus::Revoked {
        return Err(ApiError::conflict("license_revoked", format!("license '{id}' is revoked for good")));
    }
    let email = patch.email.map(|e| e.0).filter(|e| e != row.get::<_, &str>(0));
    let max_installations = patch.max_installations.filter(|n| *n != row.get::<_, i32>(2));
    let max_inactive_days = patch.max_inactive_days.filter(|d| *d != row.get::<_, Option<i32>>(3));
    let expires_at = patch.expires_at.filter(|e| *e != row.get::<_, Option<DateTime<Utc>>>(4));
    let new_metadata = new_metadata.filter(|m| *m != row.get::<_, Value>(5));
    let version: i32 = row.get(6);

    let mut events = Vec::new();
    if email.is_some()
        || max_installations.is_some()
        || max_inactive_days.is_some()
        || expires_at.is_some()
        || new_metadata.is_some()
    {
        events.push(LicenseEvent::LicenseUpdated {
            id,
            email,
            max_installations,
            max_inactive_days,
            expires_at,
            metadata: new_metadata,
        });
    }
    match (status, patch.status) {
        (LicenseStatus::Active, Some(LicenseStatus::Suspended)) => events.push(LicenseEvent::LicenseSuspended { id }),
        (LicenseStatus::Suspended, Some(LicenseStatus::Active)) => events.push(LicenseEvent::LicenseReinstated { id }),
        _ => {}
    }
    if !events.is_empty() {
        projections::record(&tx, &PROJECTOR, &stream(id), ExpectedVersion::Exact(version), &events, metadata).await?;
    }
    tx.commit().await?;
    drop(client);
    fetch(ctx, Find::Id(id), false).await?.ok_or_else(|| not_found(id))
}

/// Revokes a license for good (`DELETE /v1/licenses/{id}`); revoking again changes nothing.
pub async fn revoke(ctx: &Context, id: Uuid, metadata: &Metadata) -> Result<(), ApiError> {
    let mut client = ctx.db().get().await?;
    let tx = client.transaction().await?;
    let rows = tx.query_typed(LOCK_BY_ID, &[(&id, Type::UUID)]).await?;
    let Some(row) = rows.first() else { return Err(not_found(id)) };
    if LicenseStatus::from_db(row.get(1)) != LicenseStatus::Revoked {
        let version: i32 = row.get(6);
        projections::record(
            &tx,
            &PROJECTOR,
            &stream(id),
            ExpectedVersion::Exact(version),
            &[LicenseEvent::LicenseRevoked { id }],
            metadata,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

const INSTALLATION: &str = "SELECT last_seen_at FROM installations WHERE license_id = $1 AND installation_id = $2";

/// Frees an installation's slot (`DELETE /v1/licenses/{id}/installations/{installation_id}`).
pub async fn remove_installation(
    ctx: &Context,
    id: Uuid,
    installation_id: &str,
    metadata: &Metadata,
) -> Result<(), ApiError> {
    let mut client = ctx.db().get().await?;
    let tx = client.transaction().await?;
    let rows = tx.query_typed(LOCK_BY_ID, &[(&id, Type::UUID)]).await?;
    let Some(row) = rows.first() else { return Err(not_found(id)) };
    let version: i32 = row.get(6);
    let installation =
        tx.query_typed(INSTALLATION, &[(&id, Type::UUID), (&installation_id, Type::TEXT)]).await?.into_iter().next();
    let Some(installation) = installation else {
        return Err(ApiError::not_found(
            "installation_not_found",
            format!("license '{id}' has no active installation with that id"),
        ));
    };
    let event = LicenseEvent::InstallationDeactivated {
        id,
        installation_id: installation_id.to_owned(),
        reason: DeactivationReason::Operator,
        last_seen_at: installation.get(0),
    };
    projections::record(&tx, &PROJECTOR, &stream(id), ExpectedVersion::Exact(version), &[event], metadata).await?;
    tx.commit().await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Public checks
// ---------------------------------------------------------------------------------------

/// The body of `POST /v1/licenses/{validate,activate,deactivate}`. Unknown fields are
/// ignored so that products may send more than this version reads.
#[derive(Debug, Deserialize)]
pub struct CheckRequest {
    /// The credential.
    #[serde(deserialize_with = "LicenseKey::deserialize_presented")]
    pub license_key: LicenseKey,
    /// The installation asking.
    pub installation_id: InstallationId,
    /// A name for the installation (activation only).
    #[serde(default)]
    pub name: Option<InstallationName>,
    /// Echoed in the answer, so the caller can tell a fresh answer from a replayed one.
    #[serde(default)]
    pub nonce: Option<Nonce>,
}

/// The outcome code of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CheckCode {
    /// The installation may run.
    Valid,
    /// No license has this key.
    NotFound,
    /// The license is suspended.
    Suspended,
    /// The license is revoked.
    Revoked,
    /// The license has expired.
    Expired,
    /// This installation holds no slot of the license.
    NotActivated,
    /// Every slot is taken.
    TooManyInstallations,
    /// The installation gave up its slot.
    Deactivated,
}

impl CheckCode {
    fn detail(self) -> &'static str {
        match self {
            Self::Valid => "the license is valid for this installation",
            Self::NotFound => "no license has this key",
            Self::Suspended => "the license is suspended",
            Self::Revoked => "the license has been revoked",
            Self::Expired => "the license has expired",
            Self::NotActivated => "this installation is not activated for the license",
            Self::TooManyInstallations => "every installation slot of the license is taken",
            Self::Deactivated => "the installation was deactivated and its slot is free",
        }
    }
}

/// The license part of a check's answer.
#[derive(Debug, Serialize)]
pub struct LicenseSummary {
    /// License id.
    pub id: Uuid,
    /// `active`, `suspended` or `revoked`.
    pub status: LicenseStatus,
    /// End of validity.
    pub expires_at: Option<DateTime<Utc>>,
    /// Limit.
    pub max_installations: i32,
    /// Installations holding a slot after this check.
    pub installations_used: i64,
}

/// The installation part of a check's answer.
#[derive(Debug, Serialize)]
pub struct InstallationSummary {
    /// The product's installation id.
    pub installation_id: String,
    /// When it took its slot.
    pub activated_at: DateTime<Utc>,
    /// Last time it was seen.
    pub last_seen_at: DateTime<Utc>,
}

/// The answer of every public check (always HTTP 200 for a well-formed request).
#[derive(Debug, Serialize)]
pub struct CheckAnswer {
    /// True only for `VALID`.
    pub valid: bool,
    /// The outcome.
    pub code: CheckCode,
    /// The outcome for people.
    pub detail: &'static str,
    /// Null for `NOT_FOUND`: an unknown key learns nothing.
    pub license: Option<LicenseSummary>,
    /// The installation, when it holds (or held, for `DEACTIVATED`) a slot.
    pub installation: Option<InstallationSummary>,
    /// Server time of the answer.
    pub ts: DateTime<Utc>,
    /// The request's nonce.
    pub nonce: Option<Nonce>,
}

impl CheckAnswer {
    fn new(
        code: CheckCode,
        license: Option<LicenseSummary>,
        installation: Option<InstallationSummary>,
        ts: DateTime<Utc>,
        nonce: Option<Nonce>,
    ) -> Self {
        Self { valid: code == CheckCode::Valid, code, detail: code.detail(), license, installation, ts, nonce }
    }

    fn not_found(nonce: Option<Nonce>) -> Self {
        Self::new(CheckCode::NotFound, None, None, Utc::now(), nonce)
    }
}

/// The precedence of DESIGN §6.6 for a license that exists: revoked, suspended, expired.
fn license_code(status: LicenseStatus, expired: bool) -> Option<CheckCode> {
    match status {
        LicenseStatus::Revoked => Some(CheckCode::Revoked),
        LicenseStatus::Suspended => Some(CheckCode::Suspended),
        LicenseStatus::Active if expired => Some(CheckCode::Expired),
        LicenseStatus::Active => None,
    }
}

/// The whole validation in one statement (one round trip): `license_validate` in
/// `migrations/0001_init.sql` finds the license by key hash, touches the installation's
/// `last_seen_at` only when the license is usable (with `synchronous_commit` off for that
/// transaction alone) and reads the projection's `installations_used`. It is a PL/pgSQL function so that its
/// plans are cached in the backend; this unnamed statement itself is trivial to plan.
const VALIDATE: &str = "SELECT * FROM license_validate($1, $2)";

/// `POST /v1/licenses/validate`: one SQL statement that reads and, when valid, updates
/// `last_seen_at`.
pub async fn validate(ctx: &Context, request: CheckRequest) -> Result<CheckAnswer, ApiError> {
    let hash = pepper_hash(ctx, &request.license_key).await?;
    let hash_param = hash.as_slice();
    let installation_id = request.installation_id.as_str();
    let rows = ctx.db().read(VALIDATE, &[(&hash_param, Type::BYTEA), (&installation_id, Type::TEXT)]).await?;
    let Some(row) = rows.first().filter(|r| constant_time_eq(r.get::<_, &[u8]>(4), &hash)) else {
        return Ok(CheckAnswer::not_found(request.nonce));
    };
    let status = LicenseStatus::from_db(row.get(1));
    let license = LicenseSummary {
        id: row.get(0),
        status,
        expires_at: row.get(2),
        max_installations: row.get(3),
        installations_used: row.get(5),
    };
    let installation = row.get::<_, Option<DateTime<Utc>>>(6).map(|activated_at| InstallationSummary {
        installation_id: installation_id.to_owned(),
        activated_at,
        last_seen_at: row.get(7),
    });
    let code = license_code(status, row.get(8)).unwrap_or(if installation.is_some() {
        CheckCode::Valid
    } else {
        CheckCode::NotActivated
    });
    Ok(CheckAnswer::new(code, Some(license), installation, row.get(9), request.nonce))
}

const LOCK_BY_HASH: &str = "
SELECT id, status, expires_at, max_installations, max_inactive_days, version, key_hash,
       expires_at IS NOT NULL AND expires_at <= now(), now()
FROM licenses WHERE key_hash = $1 FOR UPDATE";

const SLOTS: &str = "
SELECT installation_id, activated_at, last_seen_at FROM installations
WHERE license_id = $1 ORDER BY last_seen_at, activated_at, installation_id";

const TOUCH: &str = "
UPDATE installations SET last_seen_at = now()
WHERE license_id = $1 AND installation_id = $2 RETURNING last_seen_at";

struct Locked {
    id: Uuid,
    status: LicenseStatus,
    expires_at: Option<DateTime<Utc>>,
    max_installations: i32,
    max_inactive_days: Option<i32>,
    version: i32,
    expired: bool,
    now: DateTime<Utc>,
    slots: Vec<InstallationSummary>,
}

impl Locked {
    fn summary(&self, used: i64) -> LicenseSummary {
        LicenseSummary {
            id: self.id,
            status: self.status,
            expires_at: self.expires_at,
            max_installations: self.max_installations,
            installations_used: used,
        }
    }

    fn take(&mut self, installation_id: &str) -> Option<InstallationSummary> {
        let i = self.slots.iter().position(|s| s.installation_id == installation_id)?;
        Some(self.slots.remove(i))
    }
}

/// Takes the license row's lock for the rest of `tx`: every writer of a license stream
/// does, so the version read here is still current when the append happens.
async fn lock(tx: &Transaction<'_>, hash: &[u8; 32]) -> Result<Option<Locked>, ApiError> {
    let hash_param = hash.as_slice();
    let rows = tx.query_typed(LOCK_BY_HASH, &[(&hash_param, Type::BYTEA)]).await?;
    let Some(row) = rows.first().filter(|r| constant_time_eq(r.get::<_, &[u8]>(6), hash)) else {
        return Ok(None);
    };
    let id: Uuid = row.get(0);
    let slots = tx
        .query_typed(SLOTS, &[(&id, Type::UUID)])
        .await?
        .iter()
        .map(|r| InstallationSummary { installation_id: r.get(0), activated_at: r.get(1), last_seen_at: r.get(2) })
        .collect();
    Ok(Some(Locked {
        id,
        status: LicenseStatus::from_db(row.get(1)),
        expires_at: row.get(2),
        max_installations: row.get(3),
        max_inactive_days: row.get(4),
        version: row.get(5),
        expired: row.get(7),
        now: row.get(8),
        slots,
    }))
}

fn public_metadata(ctx: &Context, request_id: Option<String>) -> Metadata {
    Metadata { request_id, actor: "public".into(), function: ctx.function().to_owned() }
}

/// `POST /v1/licenses/activate`: takes a slot for the installation, idempotently. When
/// every slot is taken and the license has `max_inactive_days`, the longest-unseen
/// installations past that limit give up their slots (reason `inactive`) in the same append.
pub async fn activate(
    ctx: &Context,
    request: CheckRequest,
    request_id: Option<String>,
) -> Result<CheckAnswer, ApiError> {
    let hash = pepper_hash(ctx, &request.license_key).await?;
    let mut client = ctx.db().get().await?;
    let tx = client.transaction().await?;
    let Some(mut license) = lock(&tx, &hash).await? else {
        return Ok(CheckAnswer::not_found(request.nonce));
    };
    let installation_id = request.installation_id.as_str();
    let used = license.slots.len() as i64;
    if let Some(code) = license_code(license.status, license.expired) {
        let installation = license.take(installation_id);
        return Ok(CheckAnswer::new(code, Some(license.summary(used)), installation, license.now, request.nonce));
    }
    if let Some(mut existing) = license.take(installation_id) {
        // Already active: a sign of life, not a new slot.
        let touched = tx.query_typed(TOUCH, &[(&license.id, Type::UUID), (&installation_id, Type::TEXT)]).await?;
        if let Some(row) = touched.first() {
            existing.last_seen_at = row.get(0);
        }
        tx.commit().await?;
        return Ok(CheckAnswer::new(
            CheckCode::Valid,
            Some(license.summary(used)),
            Some(existing),
            license.now,
            request.nonce,
        ));
    }
    let needed = (used + 1 - i64::from(license.max_installations)).max(0) as usize;
    let mut events = Vec::new();
    if needed > 0 {
        let stale: Vec<&InstallationSummary> = match license.max_inactive_days {
            Some(days) => {
                let cutoff = license.now - chrono::Duration::days(i64::from(days));
                // Slots are ordered by last_seen_at, longest unseen first.
                license.slots.iter().filter(|s| s.last_seen_at <= cutoff).take(needed).collect()
            }
            None => Vec::new(),
        };
        if stale.len() < needed {
            return Ok(CheckAnswer::new(
                CheckCode::TooManyInstallations,
                Some(license.summary(used)),
                None,
                license.now,
                request.nonce,
            ));
        }
        events.extend(stale.into_iter().map(|s| LicenseEvent::InstallationDeactivated {
            id: license.id,
            installation_id: s.installation_id.clone(),
            reason: DeactivationReason::Inactive,
            last_seen_at: Some(s.last_seen_at),
        }));
    }
    events.push(LicenseEvent::InstallationActivated {
        id: license.id,
        installation_id: installation_id.to_owned(),
        name: request.name.map(String::from).filter(|n| !n.is_empty()),
        activated_at: license.now,
    });
    let freed = (events.len() - 1) as i64;
    projections::record(
        &tx,
        &PROJECTOR,
        &stream(license.id),
        ExpectedVersion::Exact(license.version),
        &events,
        &public_metadata(ctx, request_id),
    )
    .await?;
    tx.commit().await?;
    let installation = InstallationSummary {
        installation_id: installation_id.to_owned(),
        activated_at: license.now,
        last_seen_at: license.now,
    };
    Ok(CheckAnswer::new(
        CheckCode::Valid,
        Some(license.summary(used + 1 - freed)),
        Some(installation),
        license.now,
        request.nonce,
    ))
}

/// `POST /v1/licenses/deactivate`: the installation gives up its slot (reason `customer`).
pub async fn deactivate(
    ctx: &Context,
    request: CheckRequest,
    request_id: Option<String>,
) -> Result<CheckAnswer, ApiError> {
    let hash = pepper_hash(ctx, &request.license_key).await?;
    let mut client = ctx.db().get().await?;
    let tx = client.transaction().await?;
    let Some(mut license) = lock(&tx, &hash).await? else {
        return Ok(CheckAnswer::not_found(request.nonce));
    };
    let installation_id = request.installation_id.as_str();
    let used = license.slots.len() as i64;
    let installation = license.take(installation_id);
    if let Some(code) = license_code(license.status, license.expired) {
        return Ok(CheckAnswer::new(code, Some(license.summary(used)), installation, license.now, request.nonce));
    }
    let Some(installation) = installation else {
        return Ok(CheckAnswer::new(
            CheckCode::NotActivated,
            Some(license.summary(used)),
            None,
            license.now,
            request.nonce,
        ));
    };
    let event = LicenseEvent::InstallationDeactivated {
        id: license.id,
        installation_id: installation_id.to_owned(),
        reason: DeactivationReason::Customer,
        last_seen_at: Some(installation.last_seen_at),
    };
    projections::record(
        &tx,
        &PROJECTOR,
        &stream(license.id),
        ExpectedVersion::Exact(license.version),
        &[event],
        &public_metadata(ctx, request_id),
    )
    .await?;
    tx.commit().await?;
    Ok(CheckAnswer::new(
        CheckCode::Deactivated,
        Some(license.summary(used - 1)),
        Some(installation),
        license.now,
        request.nonce,
    ))
}

// ---------------------------------------------------------------------------------------
// Projection
// ---------------------------------------------------------------------------------------

const INSERT_LICENSE: &str = "
INSERT INTO licenses (id, key_hash, license_key, email, status, max_installations, max_inactive_days,
                      expires_at, metadata, created_at, updated_at, version)
VALUES ($1, $2, $3, $4, 'active', $5, $6, $7, $8, $9, $10, $11)";

const UPDATE_LICENSE: &str = "
UPDATE licenses SET
    email = coalesce($2, email),
    max_installations = coalesce($3, max_installations),
    max_inactive_days = CASE WHEN $4 THEN $5 ELSE max_inactive_days END,
    expires_at = CASE WHEN $6 THEN $7 ELSE expires_at END,
    metadata = coalesce($8, metadata),
    updated_at = $9, version = $10
WHERE id = $1";

const SET_STATUS: &str = "UPDATE licenses SET status = $2, updated_at = $3, version = $4 WHERE id = $1";

const ACTIVATED: &str = "
WITH added AS (
    INSERT INTO installations (license_id, installation_id, name, activated_at, last_seen_at)
    VALUES ($1, $2, $3, $4, $4)
)
UPDATE licenses SET version = $5, installations_used = installations_used + 1 WHERE id = $1";

const DEACTIVATED: &str = "
WITH removed AS (
    DELETE FROM installations WHERE license_id = $1 AND installation_id = $2 RETURNING 1
)
UPDATE licenses SET version = $3, installations_used = installations_used - (SELECT count(*) FROM removed)
WHERE id = $1";

/// Applies one `license-` event to the `licenses` and `installations` projections.
pub async fn project(tx: &Transaction<'_>, event: &RecordedEvent) -> Result<(), EventStoreError> {
    let at = &event.recorded_at;
    let version = &event.version;
    match event.decode::<LicenseEvent>()? {
        LicenseEvent::LicenseIssued {
            id,
            key_hash,
            license_key,
            email,
            max_installations,
            max_inactive_days,
            expires_at,
            metadata,
            created_at,
            source: _,
        } => {
            let hash = hex::decode(&key_hash).map_err(|_| EventStoreError::Payload("key_hash is not hex".into()))?;
            tx.query_typed(
                INSERT_LICENSE,
                &[
                    (&id, Type::UUID),
                    (&hash, Type::BYTEA),
                    (&license_key, Type::TEXT),
                    (&email, Type::TEXT),
                    (&max_installations, Type::INT4),
                    (&max_inactive_days, Type::INT4),
                    (&expires_at, Type::TIMESTAMPTZ),
                    (&metadata, Type::JSONB),
                    (&created_at, Type::TIMESTAMPTZ),
                    (at, Type::TIMESTAMPTZ),
                    (version, Type::INT4),
                ],
            )
            .await?;
        }
        LicenseEvent::LicenseUpdated { id, email, max_installations, max_inactive_days, expires_at, metadata } => {
            let (set_days, days) = (max_inactive_days.is_some(), max_inactive_days.flatten());
            let (set_expiry, expiry) = (expires_at.is_some(), expires_at.flatten());
            tx.query_typed(
                UPDATE_LICENSE,
                &[
                    (&id, Type::UUID),
                    (&email, Type::TEXT),
                    (&max_installations, Type::INT4),
                    (&set_days, Type::BOOL),
                    (&days, Type::INT4),
                    (&set_expiry, Type::BOOL),
                    (&expiry, Type::TIMESTAMPTZ),
                    (&metadata, Type::JSONB),
                    (at, Type::TIMESTAMPTZ),
                    (version, Type::INT4),
                ],
            )
            .await?;
        }
        LicenseEvent::LicenseSuspended { id } => set_status(tx, id, LicenseStatus::Suspended, event).await?,
        LicenseEvent::LicenseReinstated { id } => set_status(tx, id, LicenseStatus::Active, event).await?,
        LicenseEvent::LicenseRevoked { id } => set_status(tx, id, LicenseStatus::Revoked, event).await?,
        LicenseEvent::InstallationActivated { id, installation_id, name, activated_at } => {
            tx.query_typed(
                ACTIVATED,
                &[
                    (&id, Type::UUID),
                    (&installation_id, Type::TEXT),
                    (&name, Type::TEXT),
                    (&activated_at, Type::TIMESTAMPTZ),
                    (version, Type::INT4),
                ],
            )
            .await?;
        }
        LicenseEvent::InstallationDeactivated { id, installation_id, .. } => {
            tx.query_typed(DEACTIVATED, &[(&id, Type::UUID), (&installation_id, Type::TEXT), (version, Type::INT4)])
                .await?;
        }
    }
    Ok(())
}

async fn set_status(
    tx: &Transaction<'_>,
    id: Uuid,
    status: LicenseStatus,
    event: &RecordedEvent,
) -> Result<(), EventStoreError> {
    let status = status.as_str();
    tx.query_typed(
        SET_STATUS,
        &[
            (&id, Type::UUID),
            (&status, Type::TEXT),
            (&event.recorded_at, Type::TIMESTAMPTZ),
            (&event.version, Type::INT4),
        ],
    )
    .await?;
    Ok(())
}

/// True when `client` sees an event of license `id` about `installation_id` (import uses it
/// so that a re-run never brings back an installation that was deactivated since).
pub(crate) async fn installation_known(
    client: &impl GenericClient,
    id: Uuid,
    installation_id: &str,
) -> Result<bool, DbError> {
    const KNOWN: &str = "
SELECT 1 FROM events WHERE stream_id = $1
  AND type IN ('InstallationActivated', 'InstallationDeactivated') AND data->>'installation_id' = $2 LIMIT 1";
    let stream_id = stream(id);
    Ok(!client.query_typed(KNOWN, &[(&stream_id, Type::TEXT), (&installation_id, Type::TEXT)]).await?.is_empty())
}

/// The licenses projection, as registered with [`projections`].
pub const PROJECTOR: projections::Projector = projections::Projector { kind: "license", project: project_boxed };

fn project_boxed<'a>(
    tx: &'a Transaction<'_>,
    event: &'a RecordedEvent,
) -> futures::future::BoxFuture<'a, Result<(), EventStoreError>> {
    Box::pin(project(tx, event))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_150_bits_in_six_readable_groups() {
        let key = LicenseKey::generate();
        let groups: Vec<&str> = key.expose().split('-').collect();
        assert_eq!(groups.len(), 6);
        assert!(groups.iter().all(|g| g.len() == 5));
        assert!(key.expose().chars().all(|c| c == '-' || "0123456789ABCDEFGHJKMNPQRSTVWXYZ".contains(c)));
        assert_ne!(LicenseKey::generate().expose(), key.expose());
        assert!(LicenseKey::parse(key.expose()).is_ok(), "generated keys pass the key rules");
    }

    #[test]
    fn keys_are_bounded_printable_ascii_and_never_echoed() {
        assert!(LicenseKey::parse("LEGACY-key_01").is_ok());
        assert_eq!(LicenseKey::parse("  ABC-123\n").unwrap().expose(), "ABC-123");
        assert!(LicenseKey::parse(&"A".repeat(128)).is_ok());
        for bad in [
            String::new(),
            "   ".into(),
            "A".repeat(129),
            "A".repeat(100_000),
            "AB C".into(),
            "ABC\u{0}".into(),
            "ÄBC".into(),
            "AB\u{200B}C".into(),
            "🔑".into(),
        ] {
            let err = LicenseKey::parse(&bad).unwrap_err();
            assert!(err.starts_with("license_key"), "{err}");
            assert!(bad.trim().is_empty() || !err.contains(bad.trim()), "{err}");
        }
        assert_eq!(format!("{:?}", LicenseKey::parse("SECRET-1").unwrap()), "LicenseKey([REDACTED])");
    }

    #[test]
    fn precedence_is_revoked_suspended_expired() {
        assert_eq!(license_code(LicenseStatus::Revoked, true), Some(CheckCode::Revoked));
        assert_eq!(license_code(LicenseStatus::Suspended, true), Some(CheckCode::Suspended));
        assert_eq!(license_code(LicenseStatus::Active, true), Some(CheckCode::Expired));
        assert_eq!(license_code(LicenseStatus::Active, false), None);
    }

    #[test]
    fn emails_and_names_refuse_odd_text() {
        assert!(Email::parse("anna@example.com").is_ok());
        for bad in ["", "anna", "@x", "x@", "a b@c.d", "a@b@c", "a\u{202E}@b.c"] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
        assert!(InstallationName::try_from("Anna's Mäc".to_owned()).is_ok());
        assert!(InstallationName::try_from("evil\u{202E}txt".to_owned()).is_err());
        assert!(InstallationName::try_from("x".repeat(201)).is_err());
    }

    #[test]
    fn update_events_tell_absent_from_null() {
        let id = Uuid::nil();
        let cleared = LicenseEvent::LicenseUpdated {
            id,
            email: None,
            max_installations: None,
            max_inactive_days: None,
            expires_at: Some(None),
            metadata: None,
        };
        let json = serde_json::to_value(&cleared).unwrap();
        assert_eq!(json, serde_json::json!({"type": "LicenseUpdated", "id": id, "expires_at": null}));
        assert_eq!(serde_json::from_value::<LicenseEvent>(json).unwrap(), cleared);
    }
}
