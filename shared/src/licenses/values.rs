//! The licenses domain's values, each parsed once and valid from then on: the key (a
//! credential that redacts itself), installation ids and names, nonces, e-mail addresses,
//! entitlements and the stored status. A value that exists is valid; no caller re-checks it.
//! Parse errors name the field and what it expects, never the value refused.

use std::fmt;

use chrono::{DateTime, Utc};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, Serializer};

use super::Error;
use crate::crypto::{hmac_sha256, random_bytes};

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

    pub(crate) fn deserialize_presented<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
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

/// Most entitlements a license may carry (DESIGN §6.6a).
pub const MAX_ENTITLEMENTS: usize = 64;

/// The entitlements a license grants or a product needs (`["pro", "export"]`): at most 64
/// names, each 1–64 of `[A-Za-z0-9_.:-]`; duplicates collapse and the list is kept sorted,
/// so equal sets are equal lists.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct Entitlements(Vec<String>);

impl Entitlements {
    /// The names, sorted.
    pub fn names(&self) -> &[String] {
        &self.0
    }

    /// The names of `needed` this list lacks.
    pub fn missing<'a>(&self, needed: &'a Entitlements) -> Vec<&'a str> {
        needed.0.iter().filter(|n| self.0.binary_search(n).is_err()).map(String::as_str).collect()
    }
}

impl TryFrom<Vec<String>> for Entitlements {
    type Error = String;
    fn try_from(raw: Vec<String>) -> Result<Self, String> {
        if raw.len() > MAX_ENTITLEMENTS {
            return Err(format!("entitlements must hold at most {MAX_ENTITLEMENTS} names"));
        }
        let mut names = Vec::with_capacity(raw.len());
        for name in raw {
            let ok = (1..=64).contains(&name.len())
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b));
            if !ok {
                return Err("entitlements must be names of 1 to 64 characters [A-Za-z0-9_.:-]".into());
            }
            names.push(name);
        }
        names.sort();
        names.dedup();
        Ok(Self(names))
    }
}

impl From<Entitlements> for Vec<String> {
    fn from(e: Entitlements) -> Vec<String> {
        e.0
    }
}

/// Whether a license that expires at `expires_at` has expired at `now` (the database's clock
/// where a row is read): the one Rust home of the rule. `license_validate` (migration 0003)
/// must decide it in PL/pgSQL for the one-round-trip hot path; tests/it/licenses_rules.rs
/// proves the two agree.
pub fn is_expired(expires_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    expires_at.is_some_and(|e| e <= now)
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

    /// Reads a stored status. An unknown value is an error, never `Active`: a row this
    /// version cannot read must not validate (fail closed).
    pub fn from_db(s: &str) -> Result<Self, Error> {
        match s {
            "active" => Ok(Self::Active),
            "suspended" => Ok(Self::Suspended),
            "revoked" => Ok(Self::Revoked),
            other => Err(Error::UnknownStatus(other.chars().take(32).collect())),
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

impl RevealedKey {
    /// Wraps a key that may be shown to its owner.
    pub(crate) fn new(key: SecretString) -> Self {
        Self(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_license_expires_at_its_instant_and_never_without_one() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let second = chrono::Duration::seconds(1);
        assert!(!is_expired(None, now));
        assert!(!is_expired(Some(now + second), now));
        assert!(is_expired(Some(now), now), "expires_at is the first instant it is expired");
        assert!(is_expired(Some(now - second), now));
    }

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
    fn entitlements_are_bounded_names_kept_as_a_sorted_set() {
        let e = Entitlements::try_from(vec!["pro".into(), "export".into(), "pro".into()]).unwrap();
        assert_eq!(e.names(), ["export", "pro"]);
        let needed = Entitlements::try_from(vec!["pro".into(), "sso".into()]).unwrap();
        assert_eq!(e.missing(&needed), ["sso"]);
        assert!(e.missing(&Entitlements::default()).is_empty());
        for bad in [vec![String::new()], vec!["a b".into()], vec!["x".repeat(65)], vec!["ü".into()]] {
            assert!(Entitlements::try_from(bad).unwrap_err().starts_with("entitlements"));
        }
        assert!(Entitlements::try_from((0..65).map(|i| format!("e{i}")).collect::<Vec<_>>()).is_err());
        assert!(Entitlements::try_from((0..64).map(|i| format!("e{i}")).collect::<Vec<_>>()).is_ok());
    }

    #[test]
    fn an_unknown_stored_status_fails_closed() {
        for s in ["active", "suspended", "revoked"] {
            assert_eq!(LicenseStatus::from_db(s).unwrap().as_str(), s);
        }
        for bad in ["", "Active", "enabled", "active "] {
            assert!(matches!(LicenseStatus::from_db(bad), Err(Error::UnknownStatus(_))), "{bad:?}");
        }
    }
}
