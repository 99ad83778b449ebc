//! Which names are sensitive (DESIGN §6.7): JSON keys as they are, and names as forms,
//! query strings and markup carry them (percent-encoded, bracketed, namespaced). Every shape
//! of the scanner asks here; nothing here looks at a value.

use std::borrow::Cow;

const SENSITIVE_PARTS: [&str; 14] = [
    "passw",
    "secret",
    "token",
    "auth",
    "api_key",
    "apikey",
    "private_key",
    "cookie",
    "session",
    "otp",
    "cvv",
    "cvc",
    "ssn",
    "credential",
];

/// True when a value under the key `name` must never be stored: the name contains (in any
/// case) one of DESIGN §6.7's parts, or is `key`, or ends in `_key` / `-key`.
pub fn is_sensitive_key(name: &str) -> bool {
    let name = name.to_lowercase();
    SENSITIVE_PARTS.iter().any(|part| name.contains(part))
        || name == "key"
        || name.ends_with("_key")
        || name.ends_with("-key")
}

/// [`is_sensitive_key`] for names as forms, query strings and markup carry them: percent-
/// and plus-decoded, then sensitive when the whole name or any bracketed segment is
/// (`user[password]`, `user%5Bpassword%5D`, `api[key]`), the way a sensitive JSON key hides
/// its whole subtree.
pub fn is_sensitive_name(raw: &str) -> bool {
    let decoded: Cow<'_, str> = if raw.contains(['%', '+']) {
        form_urlencoded::parse(raw.as_bytes())
            .next()
            .map_or(Cow::Borrowed(raw), |(name, _)| Cow::Owned(name.into_owned()))
    } else {
        Cow::Borrowed(raw)
    };
    is_sensitive_key(&decoded)
        || (decoded.contains('[')
            && decoded.split(['[', ']']).any(|segment| !segment.is_empty() && is_sensitive_key(segment)))
        || decoded.rsplit(':').next().is_some_and(|local| local != decoded && is_sensitive_key(local))
}
