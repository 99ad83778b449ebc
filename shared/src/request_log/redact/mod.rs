//! Redaction and truncation of logged bodies and endpoints (DESIGN §6.7).
//!
//! Redaction follows the structure a secret arrives in, not one notation. One tolerant
//! scanner walks the text once, so a body cut short by its sender (invalid JSON, an unclosed
//! tag) is redacted as thoroughly as a complete one, and only the redacted spans change:
//! - **JSON keys** with a sensitive name ([`is_sensitive_name`]): the value that follows
//!   (string, number, literal, or a whole object or array) becomes `"[REDACTED]"`;
//! - **JSON in a string**: every string value is decoded and redacted by these same rules;
//!   when something changed it is re-encoded, so a JSON body inside a JSON string loses its
//!   secrets and stays a valid string;
//! - **name/value pairs**: in an object with `"name"`, `"key"`, `"header"` (or `field`,
//!   `param`, `parameter`, `attribute`, `variable`) holding a sensitive name, the `"value"`
//!   (or `"values"`) member is redacted, whichever order the members come in; in an array, a
//!   string that is a sensitive name redacts the string after it (`["X-Api-Key", "k1"]`, raw
//!   header lists);
//! - **form and query names** (`name=value`, also in `endpoint`): percent- and plus-decoded
//!   and judged by every bracketed segment (`user[password]=`, `user%5Bpassword%5D=`), a
//!   quoted value included (`token="…"`);
//! - **XML/HTML**: the content of an element with a sensitive (local) name
//!   (`<password>x</password>`, `<ns:Token>`), attributes with a sensitive name
//!   (`<x token="…">`), and `<input name="password" value="…">` pairs;
//! - **Authorization schemes** in text ([`SCHEMES`]: `Bearer`, `Basic`, `Token`, `Digest`,
//!   `ApiKey`, `AWS4-HMAC-SHA256`, …): the credential after the scheme, or the rest of the line
//!   for parameter schemes (`Digest username="…", response="…"`);
//! - **`Name: value` lines** (headers, YAML) with a sensitive name lose the rest of the line;
//! - **URL credentials**: the password in `scheme://user:password@host`.
//!
//! Nesting deeper than [`MAX_DEPTH`] re-entries (strings in strings in strings …) is
//! redacted whole: past that point the scanner fails closed. Every delimiter the scanner acts
//! on is ASCII, so every cut falls on a character boundary.

//!
//! The rooms, one per shape: `names` (which names are sensitive), `json` (keys, strings in
//! strings, name/value pairs), `form` (`name=value`, `Name: value`, URL passwords), `markup`
//! (XML/HTML), `headers` (Authorization schemes). This file is the scanner that walks the
//! text once and hands each delimiter to its shape.

mod form;
mod headers;
mod json;
mod markup;
mod names;

pub use headers::SCHEMES;
use json::Frame;
pub use names::{is_sensitive_key, is_sensitive_name};

/// What a redacted value is replaced with.
pub const REDACTED: &str = "[REDACTED]";

/// Re-entries (decoded strings, pair values) after which the rest is redacted whole.
pub const MAX_DEPTH: usize = 16;

/// `text` with every secret the rules recognise replaced by [`REDACTED`].
pub fn redact(text: &str) -> String {
    scan(text, 0)
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

fn scan(text: &str, depth: usize) -> String {
    if depth > MAX_DEPTH {
        return if text.is_empty() { String::new() } else { REDACTED.to_owned() };
    }
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len() + 16);
    let mut frames: Vec<Frame> = Vec::new();
    // Start of the current run of plain text: name look-backs never cross a redaction.
    let mut plain = 0;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let taken = match c {
            b'"' => Some(json::string(text, i, depth, &mut frames, &mut out)),
            b'{' | b'[' => {
                frames.push(Frame::open(c));
                None
            }
            b'}' | b']' => {
                if frames.last().is_some_and(|f| f.closed_by(c)) {
                    frames.pop();
                }
                None
            }
            b'<' => markup::element(text, i, depth, &mut out),
            b':' if b[i + 1..].starts_with(b"//") => form::url_password(text, i, &mut out),
            b'=' | b':' => form::named_value(text, plain, i, &mut out),
            _ if c.is_ascii_alphabetic() && (i == 0 || !b[i - 1].is_ascii_alphanumeric()) => {
                headers::credential_after_scheme(b, i).map(|(start, stop)| {
                    out.push_str(&text[i..start]);
                    out.push_str(REDACTED);
                    stop
                })
            }
            _ => None,
        };
        if let Some(next) = taken {
            i = next;
            plain = i;
            continue;
        }
        // Copy one whole character (multi-byte ones never contain an ASCII byte).
        let len = utf8_len(c);
        out.push_str(&text[i..(i + len).min(b.len())]);
        i += len;
    }
    out
}

fn utf8_len(first: u8) -> usize {
    match first {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    }
}

/// The index of the first byte at or after `i` that is no space or tab.
fn skip_blanks(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\t') {
        i += 1;
    }
    i
}

/// The index of the end of the line at `i` (its `\r` or `\n`, or the end).
fn line_end(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && !matches!(b[i], b'\r' | b'\n') {
        i += 1;
    }
    i
}

/// Bytes of a header, key or element name.
fn is_name_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.')
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

    /// One `#[test]` per shape: the input as a writer sends it, exactly what is stored.
    macro_rules! shapes {
        ($($name:ident: $input:expr => $expected:expr;)*) => {
            $(#[test]
            fn $name() {
                assert_eq!(redact($input), $expected);
            })*
            /// Every shape above, for the corpus count.
            const SHAPE_INPUTS: &[&str] = &[$($input),*];
        };
    }

    shapes! {
        shape_json_key: r#"{"password":"s3cr3t-1"}"# => r#"{"password":"[REDACTED]"}"#;
        shape_json_key_nested_in_arrays: r#"{"a":[{"b":[{"api_key":"s3cr3t-1"}]}]}"# => r#"{"a":[{"b":[{"api_key":"[REDACTED]"}]}]}"#;
        shape_json_number_and_literal: r#"{"otp":123456,"cvv":true}"# => r#"{"otp":"[REDACTED]","cvv":"[REDACTED]"}"#;
        shape_json_object_under_sensitive_key: r#"{"credentials":{"user":"u","pass":"p"}}"# => r#"{"credentials":"[REDACTED]"}"#;
        shape_json_escaped_key: r#"{"pass\u0077ord":"s3cr3t-1"}"# => r#"{"pass\u0077ord":"[REDACTED]"}"#;
        shape_json_in_a_string: r#"{"body":"{\"token\":\"s3cr3t-1\",\"q\":1}"}"# => r#"{"body":"{\"token\":\"[REDACTED]\",\"q\":1}"}"#;
        shape_json_in_a_string_in_a_string: r#"{"a":"{\"b\":\"{\\\"secret\\\":\\\"s3cr3t-1\\\"}\"}"}"# => r#"{"a":"{\"b\":\"{\\\"secret\\\":\\\"[REDACTED]\\\"}\"}"}"#;
        shape_json_string_body_whole: "\"{\\\"client_secret\\\":\\\"s3cr3t-1\\\"}\"" => "\"{\\\"client_secret\\\":\\\"[REDACTED]\\\"}\"";
        shape_header_array_name_value: r#"[{"name":"Authorization","value":"s3cr3t-1"},{"name":"Accept","value":"*/*"}]"# => r#"[{"name":"Authorization","value":"[REDACTED]"},{"name":"Accept","value":"*/*"}]"#;
        shape_header_array_value_first: r#"[{"value":"s3cr3t-1","name":"X-Api-Key"}]"# => r#"[{"value":"[REDACTED]","name":"X-Api-Key"}]"#;
        shape_key_value_pair: r#"{"key":"DB_PASSWORD","value":"s3cr3t-1"}"# => r#"{"key":"[REDACTED]","value":"[REDACTED]"}"#;
        shape_header_value_pair: r#"{"header":"x-session-id","value":"s3cr3t-1"}"# => r#"{"header":"x-session-id","value":"[REDACTED]"}"#;
        shape_ecs_style_pair: r#"{"Name":"STRIPE_SECRET","Value":"s3cr3t-1"}"# => r#"{"Name":"STRIPE_SECRET","Value":"[REDACTED]"}"#;
        shape_flat_header_list: r#"["Content-Type","json","X-Api-Key","s3cr3t-1"]"# => r#"["Content-Type","json","X-Api-Key","[REDACTED]"]"#;
        shape_header_tuples: r#"[["authorization","s3cr3t-1"]]"# => r#"[["authorization","[REDACTED]"]]"#;
        shape_form_body: "user=a&password=s3cr3t-1&x=1" => "user=a&password=[REDACTED]&x=1";
        shape_form_bracket: "user[name]=a&user[password]=s3cr3t-1" => "user[name]=a&user[password]=[REDACTED]";
        shape_form_bracket_percent_encoded: "user%5Bpassword%5D=s3cr3t-1&a=1" => "user%5Bpassword%5D=[REDACTED]&a=1";
        shape_form_bracket_lower_percent: "user%5bapi_key%5d=s3cr3t-1" => "user%5bapi_key%5d=[REDACTED]";
        shape_form_percent_encoded_name: "pass%77ord=s3cr3t-1" => "pass%77ord=[REDACTED]";
        shape_form_bracket_key_segment: "api[key]=s3cr3t-1&api[v]=2" => "api[key]=[REDACTED]&api[v]=2";
        shape_form_array_under_sensitive: "tokens[]=s3cr3t-1" => "tokens[]=[REDACTED]";
        shape_query_string: "/cb?code=1&access_token=s3cr3t-1#x" => "/cb?code=1&access_token=[REDACTED]#x";
        shape_query_bracket_encoded: "/v1/x?user%5Btoken%5D=s3cr3t-1" => "/v1/x?user%5Btoken%5D=[REDACTED]";
        shape_quoted_assignment: r#"Token token="s3cr3t-1", realm="x""# => "Token [REDACTED]";
        shape_xml_element: "<login><user>a</user><password>s3cr3t-1</password></login>" => "<login><user>a</user><password>[REDACTED]</password></login>";
        shape_xml_namespaced_element: "<ns:Token>s3cr3t-1</ns:Token>" => "<ns:Token>[REDACTED]</ns:Token>";
        shape_xml_element_with_children: "<credentials><u>a</u><p>s3cr3t-1</p></credentials>" => "<credentials>[REDACTED]</credentials>";
        shape_xml_cdata: "<secret><![CDATA[s3cr3t-1]]></secret>" => "<secret>[REDACTED]</secret>";
        shape_xml_unclosed: "<apiKey>s3cr3t-1" => "<apiKey>[REDACTED]";
        shape_xml_attribute: r#"<auth-config token="s3cr3t-1" mode="x"/>"# => r#"<auth-config token="[REDACTED]" mode="x"/>"#;
        shape_xml_attribute_single_quotes: "<x api_key='s3cr3t-1'>" => "<x api_key='[REDACTED]'>";
        shape_html_input_pair: r#"<input type="password" name="password" value="s3cr3t-1">"# => r#"<input type="password" name="password" value="[REDACTED]">"#;
        shape_bearer: "Authorization: Bearer s3cr3t-1" => "Authorization: [REDACTED]";
        shape_bearer_in_text: "sent bearer s3cr3t-1 then" => "sent bearer [REDACTED] then";
        shape_basic: "basic czNjcjN0LTE=" => "basic [REDACTED]";
        shape_token_scheme: r#"{"h":"Token s3cr3t-1"}"# => r#"{"h":"Token [REDACTED]"}"#;
        shape_digest_scheme: r#"Digest username="a", realm="r", response="s3cr3t-1""# => "Digest [REDACTED]";
        shape_apikey_scheme: "ApiKey s3cr3t-1" => "ApiKey [REDACTED]";
        shape_aws4_scheme: "AWS4-HMAC-SHA256 Credential=AKIA/20260101/eu/s3/aws4_request, SignedHeaders=host, Signature=s3cr3t-1" => "AWS4-HMAC-SHA256 [REDACTED]";
        shape_aws_v2_scheme: "AWS AKIAEXAMPLE:s3cr3t-1" => "AWS [REDACTED]";
        shape_ssws_scheme: "SSWS s3cr3t-1" => "SSWS [REDACTED]";
        shape_header_line: "X-Api-Key: s3cr3t-1\nAccept: */*" => "X-Api-Key: [REDACTED]\nAccept: */*";
        shape_cookie_header: "Cookie: theme=dark; session=s3cr3t-1" => "Cookie: [REDACTED]";
        shape_set_cookie_header: "Set-Cookie: sid=s3cr3t-1; HttpOnly" => "Set-Cookie: [REDACTED]";
        shape_http_message_dump: "POST /x HTTP/1.1\r\nProxy-Authorization: Basic czNjcjN0\r\n\r\n{\"pin\":1,\"otp\":\"s3cr3t-1\"}" => "POST /x HTTP/1.1\r\nProxy-Authorization: [REDACTED]\r\n\r\n{\"pin\":1,\"otp\":\"[REDACTED]\"}";
        shape_yaml_line: "db:\n  password: s3cr3t-1\n  host: h" => "db:\n  password: [REDACTED]\n  host: h";
        shape_url_credentials: "postgres://app:s3cr3t-1@db:5432/x" => "postgres://app:[REDACTED]@db:5432/x";
        shape_header_line_in_json_string: r#"{"raw":"Host: x\r\nAuthorization: s3cr3t-1\r\n"}"# => r#"{"raw":"Host: x\r\nAuthorization: [REDACTED]\r\n"}"#;
    }

    #[test]
    fn no_shape_of_the_corpus_keeps_its_secret() {
        for input in SHAPE_INPUTS {
            let redacted = redact(input);
            assert!(!redacted.contains("s3cr3t-1") && !redacted.contains("czNjcjN0"), "{input} -> {redacted}");
        }
        assert!(SHAPE_INPUTS.len() >= 38, "{} shapes", SHAPE_INPUTS.len());
    }

    #[test]
    fn deep_nesting_fails_closed_and_never_overflows() {
        let mut body = r#"{"token":"s3cr3t-1"}"#.to_owned();
        for _ in 0..(MAX_DEPTH + 2) {
            body = serde_json::to_string(&json!({"wrapped": body})).unwrap();
        }
        assert!(!redact(&body).contains("s3cr3t-1"));
        let brackets = "[".repeat(200_000) + "\"password\", \"s3cr3t-1\"";
        assert!(!redact(&brackets).contains("s3cr3t-1"));
    }

    #[test]
    fn prose_keeps_its_common_words() {
        let text = "the bot answered a basic question with digest mode";
        assert_eq!(redact(text), "the bot answered a basic [REDACTED] with digest mode");
        assert_eq!(redact("the keyboard monkey"), "the keyboard monkey");
    }

    mod property {
        use proptest::prelude::*;

        use super::super::*;

        /// A name the rule calls sensitive, in the spellings writers use.
        fn sensitive_name() -> impl Strategy<Value = String> {
            let part = prop::sample::select(vec![
                "password",
                "passwd",
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
                "key",
            ]);
            let prefix = prop::sample::select(vec!["", "x_", "user_", "X-", "client_", "my-"]);
            let suffix = prop::sample::select(vec!["", "_id", "s", "Hash", "_value", "-key"]);
            (prefix, part, suffix, any::<bool>()).prop_map(|(p, part, s, upper)| {
                let part = if upper { part.to_uppercase() } else { part.to_owned() };
                // `key` is sensitive alone or as a suffix; with a suffix it must end the name.
                if part.eq_ignore_ascii_case("key") {
                    format!("{p}{part}").replace("x_key", "x_key")
                } else {
                    format!("{p}{part}{s}")
                }
            })
        }

        /// Writes `secret` under `name` in shape `shape`, with neutral text around it.
        fn render(shape: usize, name: &str, secret: &str, depth: usize) -> String {
            let mut json = serde_json::json!({ name: secret, "note": "n" });
            for level in 0..depth {
                json = if level % 2 == 0 { serde_json::json!({"l": [json]}) } else { serde_json::json!([1, json]) };
            }
            match shape {
                0 => json.to_string(),
                1 => serde_json::to_string(&serde_json::json!({"body": json.to_string()})).unwrap(),
                2 => serde_json::json!([{"name": name, "value": secret}]).to_string(),
                3 => serde_json::json!({"value": secret, "key": name}).to_string(),
                4 => format!("a=1&{name}={secret}&b=2"),
                5 => format!("user[{name}]={secret}"),
                6 => format!("user%5B{name}%5D={secret}&z=1"),
                7 => format!("/v1/x?q=1&{name}={secret}"),
                8 => format!("<r><{name}>{secret}</{name}></r>"),
                9 => format!("<r {name}=\"{secret}\"/>"),
                10 => format!("Host: x\r\n{name}: {secret}\r\n"),
                11 => format!("Authorization: Bearer {secret}"),
                12 => format!("call with Token {secret} now"),
                13 => format!("x ApiKey {secret}"),
                14 => serde_json::json!(["Accept", "*/*", name, secret]).to_string(),
                15 => format!("https://u:{secret}@h/p"),
                _ => format!("<input name=\"{name}\" value=\"{secret}\">"),
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]
            #[test]
            fn a_generated_secret_never_survives_any_shape(
                shape in 0usize..17,
                name in sensitive_name(),
                secret in "[A-Za-z0-9._~+/-]{4,12}[0-9][A-Za-z0-9._~+/-]{4,20}",
                depth in 0usize..5,
            ) {
                prop_assume!(is_sensitive_name(&name));
                let body = render(shape, &name, &secret, depth);
                let redacted = redact(&body);
                prop_assert!(!redacted.contains(&secret), "shape {} leaked: {} -> {}", shape, body, redacted);
            }
        }
    }
}
