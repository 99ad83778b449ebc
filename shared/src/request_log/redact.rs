//! Redaction and truncation of logged bodies (DESIGN §6.7).
//!
//! One tolerant scanner serves JSON and plain text alike, so that a body cut short by its
//! sender (invalid JSON) is redacted as thoroughly as a complete one:
//! - a quoted string followed by `:` is a key; when its name is sensitive, the value that
//!   follows (string, number, literal, or a whole object or array) becomes `"[REDACTED]"`;
//! - inside other strings and in bare text, `Bearer …` / `Basic …` credentials, `name=value`
//!   pairs (query strings, form bodies, cookies) and `Name: value` lines (headers) with a
//!   sensitive name lose their value.
//!
//! Only the redacted spans change: valid JSON stays valid JSON with its key order and
//! formatting, and a body without secrets is stored as it came. Every delimiter the scanner
//! acts on is ASCII, so every cut falls on a character boundary.

/// What a redacted value is replaced with.
pub const REDACTED: &str = "[REDACTED]";

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

/// `text` with every secret the rules recognise replaced by [`REDACTED`].
pub fn redact(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'"' {
            let next = b[i..].iter().position(|&c| c == b'"').map_or(b.len(), |p| i + p);
            inline(&text[i..next], false, &mut out);
            i = next;
            continue;
        }
        let (end, closed) = string_end(b, i);
        let colon = closed.then(|| skip_ws(b, end)).filter(|&j| j < b.len() && b[j] == b':');
        match colon {
            Some(colon) if is_sensitive_key(&decode_key(&text[i..end])) => {
                let value_start = skip_ws(b, colon + 1);
                out.push_str(&text[i..value_start]);
                let value_end = value_end(b, value_start);
                if value_end > value_start {
                    out.push('"');
                    out.push_str(REDACTED);
                    out.push('"');
                }
                i = value_end;
            }
            Some(_) => {
                out.push_str(&text[i..end]);
                i = end;
            }
            None => {
                out.push('"');
                let content_end = if closed { end - 1 } else { end };
                inline(&text[i + 1..content_end], true, &mut out);
                if closed {
                    out.push('"');
                }
                i = end;
            }
        }
    }
    out
}

/// Keeps the first `limit` characters of `text`; true when something was cut.
pub fn truncate(mut text: String, limit: usize) -> (String, bool) {
    match text.char_indices().nth(limit) {
        Some((cut, _)) => {
            text.truncate(cut);
            (text, true)
        }
        None => (text, false),
    }
}

/// Redacts, then truncates to `limit` characters: what is stored of a body.
pub fn redact_and_truncate(text: &str, limit: usize) -> (String, bool) {
    truncate(redact(text), limit)
}

/// The index after the string literal starting at `start` (a `"`), and whether it closed.
fn string_end(b: &[u8], start: usize) -> (usize, bool) {
    let mut i = start + 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return (i + 1, true),
            _ => i += 1,
        }
    }
    (b.len(), false)
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// The key's name with JSON escapes resolved (`"pass\u0077ord"` is a password too).
fn decode_key(quoted: &str) -> std::borrow::Cow<'_, str> {
    if quoted.contains('\\')
        && let Ok(decoded) = serde_json::from_str::<String>(quoted)
    {
        return decoded.into();
    }
    quoted.trim_matches('"').into()
}

/// The end of the JSON value starting at `start`; tolerant of values cut short.
fn value_end(b: &[u8], start: usize) -> usize {
    if start >= b.len() {
        return start;
    }
    match b[start] {
        b'"' => string_end(b, start).0,
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut i = start;
            while i < b.len() {
                match b[i] {
                    b'"' => {
                        i = string_end(b, i).0;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return i + 1;
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            b.len()
        }
        _ => {
            let mut i = start;
            while i < b.len() && !matches!(b[i], b',' | b'}' | b']') && !b[i].is_ascii_whitespace() {
                i += 1;
            }
            i
        }
    }
}

fn is_name_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.')
}

fn is_token_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=' | b'%')
}

/// Redacts credentials inside one string's raw (still escaped) content or a run of bare text.
fn inline(seg: &str, in_string: bool, out: &mut String) {
    let b = seg.as_bytes();
    let mut emitted = 0;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'=' || c == b':' {
            let mut name_start = i;
            while name_start > emitted && is_name_byte(b[name_start - 1]) {
                name_start -= 1;
            }
            if name_start < i && is_sensitive_key(&seg[name_start..i]) {
                let value_start = if c == b':' {
                    let mut j = i + 1;
                    while j < b.len() && matches!(b[j], b' ' | b'\t') {
                        j += 1;
                    }
                    j
                } else {
                    i + 1
                };
                let mut value_end = value_start;
                while value_end < b.len() && !ends_value(b[value_end], c, in_string) {
                    value_end += 1;
                }
                if value_end > value_start {
                    out.push_str(&seg[emitted..value_start]);
                    out.push_str(REDACTED);
                    emitted = value_end;
                }
                i = value_end.max(i + 1);
                continue;
            }
        }
        if (c == b'b' || c == b'B')
            && (i == 0 || !b[i - 1].is_ascii_alphanumeric())
            && let Some((token_start, token_end)) = credential_after_scheme(b, i)
        {
            out.push_str(&seg[emitted..token_start]);
            out.push_str(REDACTED);
            emitted = token_end;
            i = token_end;
            continue;
        }
        i += 1;
    }
    out.push_str(&seg[emitted..]);
}

/// The span of the credential after `Bearer ` / `Basic ` starting at `i`, if there is one.
fn credential_after_scheme(b: &[u8], i: usize) -> Option<(usize, usize)> {
    ["bearer", "basic"].into_iter().find_map(|scheme| {
        let after = i + scheme.len();
        if after >= b.len() || !b[i..after].eq_ignore_ascii_case(scheme.as_bytes()) || !matches!(b[after], b' ' | b'\t')
        {
            return None;
        }
        let start = (after..b.len()).find(|&j| !matches!(b[j], b' ' | b'\t'))?;
        let end = (start..b.len()).find(|&j| !is_token_byte(b[j])).unwrap_or(b.len());
        (end > start).then_some((start, end))
    })
}

/// Where a `name=value` (`sep` `=`) or `Name: value` (`sep` `:`) value stops.
fn ends_value(c: u8, sep: u8, in_string: bool) -> bool {
    if c == b'\r' || c == b'\n' || (in_string && (c == b'\\' || c == b'"')) {
        return true;
    }
    sep == b'=' && (c.is_ascii_whitespace() || matches!(c, b'&' | b';' | b',' | b'"' | b'\'' | b'<' | b'>'))
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    #[test]
    fn key_names_follow_the_design_exactly() {
        for name in [
            "password",
            "PASSWORD_HASH",
            "passwd",
            "client_secret",
            "access_token",
            "refreshToken",
            "Authorization",
            "x_api_key",
            "apiKey",
            "private_key",
            "Set-Cookie",
            "session_id",
            "otp",
            "card_cvv",
            "cvc",
            "ssn",
            "credentials",
            "key",
            "KEY",
            "license_key",
            "x-api-key",
        ] {
            assert!(is_sensitive_key(name), "{name} must be sensitive");
        }
        for name in ["user", "email", "keys", "monkey", "keyboard", "status", "private", "message", "id"] {
            assert!(!is_sensitive_key(name), "{name} must not be sensitive");
        }
    }

    #[test]
    fn nested_json_secrets_are_redacted_at_any_depth_and_stay_valid_json() {
        let body = json!({
            "user": "a@example.com",
            "password": "hunter2",
            "profile": {"settings": [{"api_key": "k-123", "theme": "dark"}, {"deep": {"otp": 123456}}]},
            "credentials": {"user": "u", "pass": "p"},
            "license_key": "ABCD-EFGH",
            "note": "keep me"
        })
        .to_string();
        let redacted = redact(&body);
        let v: Value = serde_json::from_str(&redacted).expect("still JSON");
        assert_eq!(v["password"], REDACTED);
        assert_eq!(v["profile"]["settings"][0]["api_key"], REDACTED);
        assert_eq!(v["profile"]["settings"][0]["theme"], "dark");
        assert_eq!(v["profile"]["settings"][1]["deep"]["otp"], REDACTED);
        assert_eq!(v["credentials"], REDACTED);
        assert_eq!(v["license_key"], REDACTED);
        assert_eq!(v["user"], "a@example.com");
        assert_eq!(v["note"], "keep me");
        for secret in ["hunter2", "k-123", "123456", "ABCD-EFGH", "\"u\"", "\"p\""] {
            assert!(!redacted.contains(secret), "{secret} leaked: {redacted}");
        }
    }

    #[test]
    fn formatting_and_key_order_survive() {
        let body = "{\n  \"z\": 1,\n  \"token\" : \"abc\",\n  \"a\": [1, 2]\n}";
        assert_eq!(redact(body), "{\n  \"z\": 1,\n  \"token\" : \"[REDACTED]\",\n  \"a\": [1, 2]\n}");
        let clean = r#"{"b":1,"a":"plain text","list":["x","y"]}"#;
        assert_eq!(redact(clean), clean);
    }

    #[test]
    fn escaped_key_names_are_recognised() {
        let redacted = redact(r#"{"pass\u0077ord":"hunter2"}"#);
        assert!(!redacted.contains("hunter2"), "{redacted}");
    }

    #[test]
    fn bearer_and_basic_credentials_are_redacted_in_text_and_strings() {
        assert_eq!(redact("Authorization: Bearer abc.def-ghi"), "Authorization: [REDACTED]");
        assert_eq!(redact("sent bearer abc.def then"), "sent bearer [REDACTED] then");
        assert_eq!(redact("basic dXNlcjpwYXNz"), "basic [REDACTED]");
        assert_eq!(redact(r#"{"header":"Bearer eyJhbGciOi.x.y"}"#), r#"{"header":"Bearer [REDACTED]"}"#);
        assert_eq!(redact("Basicx stays"), "Basicx stays");
    }

    #[test]
    fn form_query_cookie_and_header_values_are_redacted() {
        assert_eq!(
            redact("grant_type=refresh_token&refresh_token=r-1&client_secret=s3&scope=a"),
            "grant_type=refresh_token&refresh_token=[REDACTED]&client_secret=[REDACTED]&scope=a"
        );
        assert_eq!(
            redact("GET /cb?code=1&access_token=xyz HTTP/1.1"),
            "GET /cb?code=1&access_token=[REDACTED] HTTP/1.1"
        );
        assert_eq!(redact("Cookie: session=abc; theme=dark"), "Cookie: [REDACTED]");
        assert_eq!(redact("x-api-key: k1\nAccept: */*"), "x-api-key: [REDACTED]\nAccept: */*");
        assert_eq!(redact(r#"{"url":"https://x/?api_key=k9&a=1"}"#), r#"{"url":"https://x/?api_key=[REDACTED]&a=1"}"#);
    }

    #[test]
    fn json_cut_short_is_still_redacted() {
        let redacted = redact(r#"{"user":"a","password":"hunter2-and-more"#);
        assert!(!redacted.contains("hunter2"), "{redacted}");
        let redacted = redact(r#"{"credentials":{"user":"u","secret":"s"#);
        assert!(!redacted.contains("\"s"), "{redacted}");
    }

    #[test]
    fn truncation_counts_characters_and_cuts_on_a_boundary() {
        let text = "é".repeat(10) + "🦀🦀";
        let (kept, cut) = truncate(text.clone(), 11);
        assert_eq!(kept, "é".repeat(10) + "🦀");
        assert!(cut);
        let (kept, cut) = truncate(text.clone(), 12);
        assert_eq!(kept, text);
        assert!(!cut, "exactly the limit is not truncated");
        assert_eq!(truncate(String::new(), 0), (String::new(), false));
    }

    #[test]
    fn multi_byte_text_around_secrets_is_intact() {
        assert_eq!(redact("çà password=ünïcode ok 東京"), "çà password=[REDACTED] ok 東京");
        assert_eq!(redact(r#"{"名前":"東京","token":"秘密"}"#), r#"{"名前":"東京","token":"[REDACTED]"}"#);
    }
}
