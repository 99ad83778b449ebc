//! Authorization credentials in text (`Authorization: Bearer …`, `Digest username="…"`, a
//! token in a log line): the credential after a known scheme. Schemes that are also English
//! words must be followed by something that looks like a credential.

use super::{line_end, skip_blanks};

/// Authorization schemes whose credential follows them in text (IANA HTTP Authentication
/// Scheme Registry, plus common vendor schemes: `Token` (GitHub, DRF), `ApiKey`, `Bot`
/// (Discord), `SSWS` (Okta), `AWS` (S3 v2 signatures)). Matched case-insensitively as words.
pub const SCHEMES: [&str; 25] = [
    "bearer",
    "basic",
    "token",
    "digest",
    "apikey",
    "api-key",
    "aws4-hmac-sha256",
    "aws",
    "hmac",
    "hmac-sha256",
    "hawk",
    "hoba",
    "mutual",
    "negotiate",
    "ntlm",
    "oauth",
    "scram-sha-1",
    "scram-sha-256",
    "vapid",
    "dpop",
    "gnap",
    "privatetoken",
    "signature",
    "ssws",
    "bot",
];

/// Schemes that are also English words: matched only before a credential-looking token.
const WORD_SCHEMES: [&str; 9] = ["aws", "hmac", "hawk", "mutual", "oauth", "signature", "bot", "digest", "hoba"];

fn is_token_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=' | b'%' | b':')
}

/// The span of the credential after an Authorization scheme starting at `i`: the token, or
/// the rest of the line when auth-params follow (`Digest username="…", response="…"`).
pub(super) fn credential_after_scheme(b: &[u8], i: usize) -> Option<(usize, usize)> {
    SCHEMES.into_iter().find_map(|scheme| {
        let after = i + scheme.len();
        if after >= b.len() || !b[i..after].eq_ignore_ascii_case(scheme.as_bytes()) || !matches!(b[after], b' ' | b'\t')
        {
            return None;
        }
        let start = skip_blanks(b, after);
        let word_end = (start..b.len())
            .find(|&j| !(b[j].is_ascii_alphanumeric() || matches!(b[j], b'_' | b'-')))
            .unwrap_or(b.len());
        let params = word_end > start
            && word_end + 1 < b.len()
            && b[word_end] == b'='
            && (b[word_end + 1] == b'"' || b[word_end + 1].is_ascii_alphanumeric());
        let end = if params {
            line_end(b, start)
        } else {
            (start..b.len()).find(|&j| !is_token_byte(b[j])).unwrap_or(b.len())
        };
        // Schemes that are also common words (`the bot answered`) need a credential-looking
        // token: long, with a digit or base64's symbols; auth-params always count.
        let credential = &b[start..end];
        let looks_like_one = credential.len() >= 8
            && credential.iter().any(|c| c.is_ascii_digit() || matches!(c, b'=' | b'+' | b'/' | b':'));
        let word = WORD_SCHEMES.contains(&scheme);
        (end > start && (params || !word || looks_like_one)).then_some((start, end))
    })
}
