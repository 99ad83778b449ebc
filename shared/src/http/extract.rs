//! Request extractors whose rejections are problem+json naming the offending field
//! (`records[3].service`): JSON bodies and query strings.

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Request, rejection::BytesRejection},
    http::{StatusCode, request::Parts},
};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::ApiError;

/// `Json<T>` whose rejections are problem+json naming the field (`records[3].service`).
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(body_rejection)?;
        parse_json(&bytes).map(Json)
    }
}

fn body_rejection(e: BytesRejection) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", "the request body is larger than allowed")
    } else {
        ApiError::bad_request("invalid_body", format!("the request body could not be read: {}", e.body_text()))
    }
}

/// `Json<T>` for a body that may carry fields this version does not read (the public license
/// checks: a product may send more than the route takes). Top-level fields `T` does not name
/// are dropped unread, before any check, so what is ignored can never be refused; the fields
/// `T` reads are checked as by [`Json`].
pub struct OpenJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for OpenJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(body_rejection)?;
        parse_open_json(&bytes).map(OpenJson)
    }
}

/// [`OpenJson`]'s parse: [`parse_json`] of the body without the top-level fields `T` does not
/// name.
pub fn parse_open_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut value = parse_object(bytes)?;
    let known = struct_fields::<T>();
    if let Value::Object(map) = &mut value {
        map.retain(|k, _| known.contains(&k.as_str()));
    }
    from_object(value, &|_| false)
}

/// The field names a `#[derive(Deserialize)]` struct reads (what the derive hands
/// `deserialize_struct`); empty for anything else, so nothing is kept.
fn struct_fields<T: DeserializeOwned>() -> &'static [&'static str] {
    use serde::de::{Error as _, Visitor, value::Error};

    struct Probe(&'static [&'static str]);

    impl<'de> serde::Deserializer<'de> for &mut Probe {
        type Error = Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
            Err(Error::custom("not a struct"))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Error> {
            self.0 = fields;
            Err(Error::custom("probed"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }

    let mut probe = Probe(&[]);
    let _ = T::deserialize(&mut probe);
    probe.0
}

/// Parses a JSON body, naming the path of the first offending field. Any string (or key)
/// holding U+0000 is refused, naming its path: PostgreSQL cannot store it in `text`/`jsonb`.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    parse_json_with(bytes, &|_| false)
}

/// [`parse_json`] for the one route where U+0000 is data (request-log bodies, DESIGN §6.13):
/// a string whose path `nul_allowed` accepts (`records[0].request_body`, or a path inside it)
/// has each U+0000 replaced by U+FFFD instead of being refused.
pub fn parse_json_with<T: DeserializeOwned>(bytes: &[u8], nul_allowed: &dyn Fn(&str) -> bool) -> Result<T, ApiError> {
    from_object(parse_object(bytes)?, nul_allowed)
}

/// The body as a JSON object: syntax and shape, no types yet.
fn parse_object(bytes: &[u8]) -> Result<Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("invalid_json", "the request body is empty; a JSON object is expected"));
    }
    // Syntax first, types second: through a `Value`, a wrong type (`"auth_method": 7`) is a
    // type error naming the field, never "not valid JSON" (serde_json's streaming enum
    // reader reports a number where an enum is expected as a syntax error).
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        let message = strip_position(&e.to_string());
        ApiError::bad_request("invalid_json", format!("the request body is not valid JSON: {message}"))
    })?;
    if !value.is_object() {
        // Every body keyledger takes is an object; serde would read a struct from an array
        // (`[null, null]` as a PATCH), so the shape is checked before the types.
        return Err(ApiError::invalid_field(
            ".",
            format!("the request body must be a JSON object, found {}", found_name(Some(&value))),
        ));
    }
    Ok(value)
}

/// A body object as `T`: strings, keys and numbers checked first ([`sanitize`]), then the
/// types, naming the first offending field.
fn from_object<T: DeserializeOwned>(mut value: Value, nul_allowed: &dyn Fn(&str) -> bool) -> Result<T, ApiError> {
    sanitize(&mut value, &mut String::new(), nul_allowed)?;
    let original = value.clone();
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let at = value_at(&original, &path);
        let mut message = without_value(&strip_position(&inner.to_string()), at);
        if message.starts_with("expected string or map") {
            // An enum given a number: serde only says "string or map". Asking again with an
            // empty string in its place makes serde list the variants the field takes.
            if let Some(variants) = enum_variants::<T>(&original, &path) {
                message = format!("expected {variants}, found {}", found_name(at));
            }
        }
        if path == "." || path.is_empty() {
            return ApiError::invalid_field(field_of(&message).unwrap_or_default(), message);
        }
        let field = match field_of(&message) {
            Some(missing) if message.starts_with("missing field") => format!("{path}.{missing}"),
            _ => path.clone(),
        };
        ApiError::invalid_field(field.trim_start_matches('.').to_owned(), format!("{path}: {message}"))
    })
}

/// Largest magnitude a number may have: PostgreSQL's `jsonb` keeps a number's decimal digits,
/// and one near `f64::MAX` can read back as out of range, which would make a stored row
/// unreadable. No field keyledger knows needs more.
const MAX_NUMBER: f64 = 1e300;

/// Refuses (or, where allowed, replaces) U+0000 in every string and key, depth first;
/// refuses numbers beyond [`MAX_NUMBER`]; and writes an integral float (`100.0`) as the
/// integer it is, because JSON (and JSON Schema's `integer`) does not tell them apart.
fn sanitize(value: &mut Value, path: &mut String, nul_allowed: &dyn Fn(&str) -> bool) -> Result<(), ApiError> {
    let refuse = |path: &str, rule: &str| {
        let field = if path.is_empty() { ".".to_owned() } else { path.to_owned() };
        ApiError::invalid_field(field.clone(), format!("{field}: {rule}"))
    };
    match value {
        Value::String(s) if s.contains('\0') => {
            if !nul_allowed(path) {
                return Err(refuse(path, "a text field must not contain U+0000"));
            }
            *s = s.replace('\0', "\u{FFFD}");
        }
        Value::Number(n) if n.is_f64() => {
            let x = n.as_f64().unwrap_or(f64::NAN);
            if !x.is_finite() || x.abs() > MAX_NUMBER {
                return Err(refuse(path, "a number must be between -1e300 and 1e300"));
            }
            // Exactly representable integers only (|x| < 2^53): nothing is rounded.
            if x.fract() == 0.0 && x.abs() < 9_007_199_254_740_992.0 {
                *value = Value::from(x as i64);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                sanitize(item, path, nul_allowed)?;
                path.truncate(len);
            }
        }
        Value::Object(map) => {
            if map.keys().any(|k| k.contains('\0')) {
                if !nul_allowed(path) {
                    return Err(refuse(path, "a text field must not contain U+0000"));
                }
                *map = std::mem::take(map).into_iter().map(|(k, v)| (k.replace('\0', "\u{FFFD}"), v)).collect();
            }
            for (key, item) in map.iter_mut() {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                sanitize(item, path, nul_allowed)?;
                path.truncate(len);
            }
        }
        _ => {}
    }
    Ok(())
}

fn enum_variants<T: DeserializeOwned>(original: &Value, path: &str) -> Option<String> {
    let mut probe = original.clone();
    *value_at_mut(&mut probe, path)? = Value::String(String::new());
    let err = serde_path_to_error::deserialize::<_, T>(probe).err()?;
    if err.path().to_string() != path {
        return None;
    }
    let text = err.into_inner().to_string();
    let rest = text.strip_prefix("unknown variant ``, expected ")?;
    Some(strip_position(rest))
}

/// One step of a `serde_path_to_error` path (`records[1].service`): a member, or an index
/// (`None` when it is not a number, so that nothing is found).
enum Step<'a> {
    Member(&'a str),
    Index(Option<usize>),
}

/// The steps of `path`; `.` and the empty path have none (the root).
fn steps(path: &str) -> impl Iterator<Item = Step<'_>> {
    path.split('.').flat_map(|part| {
        let (name, indexes) = part.find('[').map_or((part, ""), |i| (&part[..i], &part[i..]));
        (!name.is_empty())
            .then_some(Step::Member(name))
            .into_iter()
            .chain(indexes.split(['[', ']']).filter(|s| !s.is_empty()).map(|index| Step::Index(index.parse().ok())))
    })
}

fn value_at_mut<'a>(root: &'a mut Value, path: &str) -> Option<&'a mut Value> {
    steps(path).try_fold(root, |current, step| match step {
        Step::Member(name) => current.as_object_mut()?.get_mut(name),
        Step::Index(index) => current.as_array_mut()?.get_mut(index?),
    })
}

fn found_name(refused: Option<&Value>) -> &'static str {
    match refused {
        Some(Value::String(_)) => "a string",
        Some(Value::Number(_)) => "a number",
        Some(Value::Bool(_)) => "a boolean",
        Some(Value::Null) => "null",
        Some(Value::Array(_)) => "an array",
        Some(Value::Object(_)) => "an object",
        None => "a value",
    }
}

/// The value at a `serde_path_to_error` path (`records[1].service`), when it can be found.
fn value_at<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    steps(path).try_fold(root, |current, step| match step {
        Step::Member(name) => current.as_object()?.get(name),
        Step::Index(index) => current.as_array()?.get(index?),
    })
}

/// serde's messages quote the refused value (`invalid type: string "sk_live_…", expected
/// u16`, ``unknown variant `…` ``); ours keep only what was expected.
fn without_value(message: &str, refused: Option<&Value>) -> String {
    for prefix in ["invalid type: ", "invalid value: ", "invalid length "] {
        if let Some(rest) = message.strip_prefix(prefix) {
            let found = found_name(refused);
            let expected = rest.rfind(", expected ").map(|i| &rest[i + ", expected ".len()..]);
            return match expected {
                // The expected text is the type's own description, never input; still, a
                // string value that somehow shows up in it is not repeated.
                Some(exp) if !mentions(exp, refused) => format!("expected {exp}, found {found}"),
                _ => format!("found {found} of the wrong type or value"),
            };
        }
    }
    if let Some(rest) = message.strip_prefix("unknown variant ")
        && let Some(i) = rest.find(", expected ")
    {
        return format!("unknown variant, expected {}", &rest[i + ", expected ".len()..]);
    }
    if mentions(message, refused) || message.starts_with("unknown variant") {
        return "the value is not valid here".to_owned();
    }
    message.to_owned()
}

fn mentions(text: &str, value: Option<&Value>) -> bool {
    matches!(value, Some(Value::String(s)) if !s.is_empty() && text.contains(s.as_str()))
}

fn strip_position(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

fn field_of(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let end = start + message[start..].find('`')?;
    Some(message[start..end].to_owned())
}

/// Query-string extractor whose rejections are problem+json naming the parameter.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        parse_query(parts.uri.query().unwrap_or("")).map(Query)
    }
}

/// A query string as `T`, with [`Query`]'s problems: 400 naming the parameter, never
/// quoting its value. For handlers that take some parameters apart first (tag filters).
pub fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    if let Some((name, _)) =
        form_urlencoded::parse(query.as_bytes()).find(|(k, v)| k.contains('\0') || v.contains('\0'))
    {
        let field = name.replace('\0', "");
        return Err(ApiError::invalid_field(
            field.clone(),
            format!("query parameter '{field}' must not contain U+0000"),
        ));
    }
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        let field = if path == "." { field_of(&message).unwrap_or_default() } else { path };
        let refused = form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| *k == field)
            .map(|(_, v)| Value::String(v.into_owned()));
        let message = without_value(&message, refused.as_ref());
        ApiError::invalid_field(field.clone(), format!("query parameter '{field}': {message}"))
    })
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Record {
        service: String,
        status_code: u16,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Batch {
        records: Vec<Record>,
    }

    #[test]
    fn a_missing_field_is_named_with_its_path() {
        let err =
            parse_json::<Batch>(br#"{"records":[{"service":"a","status_code":200},{"status_code":1}]}"#).unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert_eq!(err.field.as_deref(), Some("records[1].service"));
        let err = parse_json::<Record>(br#"{"status_code":1}"#).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("service"));
    }

    #[test]
    fn a_wrong_type_is_named() {
        let err = parse_json::<Record>(br#"{"service":"a","status_code":"two hundred"}"#).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("status_code"));
        assert!(err.detail.contains("status_code"), "{}", err.detail);
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "snake_case")]
    #[allow(dead_code)]
    enum Method {
        ClientSecretPost,
        ClientSecretBasic,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Client {
        name: String,
        auth_method: Option<Method>,
        metadata: Option<Value>,
    }

    #[test]
    fn u0000_anywhere_is_refused_naming_the_field() {
        for (body, field) in [
            (r#"{"name":"a\u0000b"}"#, "name"),
            (r#"{"name":"a","metadata":{"x":[1,{"y":"\u0000"}]}}"#, "metadata.x[1].y"),
            (r#"{"name":"a","metadata":{"k\u0000":"v"}}"#, "metadata"),
            (
                r#"{"records":[{"service":"a","status_code":1},{"service":"\u0000","status_code":1}]}"#,
                "records[1].service",
            ),
        ] {
            let err = parse_json::<Value>(body.as_bytes()).unwrap_err();
            assert_eq!((err.status, err.field.as_deref()), (StatusCode::BAD_REQUEST, Some(field)), "{body}");
            assert!(err.detail.contains("U+0000"), "{}", err.detail);
        }
    }

    #[test]
    fn u0000_where_allowed_becomes_u_fffd() {
        let body = br#"{"records":[{"request_body":{"a":"x\u0000y"}}],"service":"s"}"#;
        let allowed = |p: &str| p.contains(".request_body");
        let v: Value = parse_json_with(body, &allowed).unwrap();
        assert_eq!(v["records"][0]["request_body"]["a"], "x\u{FFFD}y");
        assert_eq!(
            parse_json_with::<Value>(br#"{"service":"\u0000"}"#, &allowed).unwrap_err().field.as_deref(),
            Some("service")
        );
    }

    #[test]
    fn a_wrong_type_names_field_and_expected_type_without_echoing_the_value() {
        let err = parse_json::<Record>(br#"{"service":"a","status_code":"sk_live_abcdef123"}"#).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("status_code"));
        assert!(!err.detail.contains("sk_live"), "{}", err.detail);
        assert!(err.detail.contains("expected u16"), "{}", err.detail);
        let err = parse_json::<Client>(br#"{"name":"a","auth_method":"sk_live_abcdef123"}"#).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("auth_method"));
        assert!(!err.detail.contains("sk_live"), "{}", err.detail);
        assert!(err.detail.contains("client_secret_post"), "{}", err.detail);
        let err = parse_json::<Client>(br#"{"name":{"sk_live_x":1}}"#).unwrap_err();
        assert!(!err.detail.contains("sk_live"), "{}", err.detail);
    }

    #[test]
    fn a_number_where_an_enum_belongs_is_a_type_error_not_invalid_json() {
        let err = parse_json::<Client>(br#"{"name":"a","auth_method":7}"#).unwrap_err();
        assert_eq!(err.code, "invalid_request");
        assert!(err.detail.contains("client_secret_post"), "{}", err.detail);
        assert_eq!(err.field.as_deref(), Some("auth_method"));
        assert!(!err.detail.contains("not valid JSON"), "{}", err.detail);
    }

    #[test]
    fn an_open_body_drops_the_fields_it_does_not_read_before_any_check() {
        let body = br#"{"service":"a","status_code":200,"extra":{"x":1.7976931348623157e308},"name":"\u0000"}"#;
        let record: Record = parse_open_json(body).unwrap();
        assert_eq!(record.service, "a");
        assert!(parse_json::<Record>(body).is_err(), "a closed parse checks every field");
        let err = parse_open_json::<Record>(br#"{"service":"\u0000","status_code":1,"x":2}"#).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("service"));
        let err = parse_open_json::<Record>(br#"{"service":"a","status_code":1e301}"#).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("status_code"));
        let err = parse_open_json::<Record>(br#"{"status_code":1,"x":2}"#).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("service"));
        assert_eq!(struct_fields::<Record>(), ["service", "status_code"]);
        assert!(struct_fields::<Value>().is_empty());
    }

    #[test]
    fn the_body_must_be_an_object() {
        for body in [&b"[null,null]"[..], b"[]", b"7", b"\"x\"", b"null"] {
            let err = parse_json::<Record>(body).unwrap_err();
            assert_eq!((err.status, err.field.as_deref()), (StatusCode::BAD_REQUEST, Some(".")), "{body:?}");
            assert!(err.detail.contains("must be a JSON object"), "{}", err.detail);
        }
    }

    #[test]
    fn an_integral_float_is_an_integer() {
        let r: Record = parse_json(br#"{"service":"a","status_code":200.0}"#).unwrap();
        assert_eq!(r.status_code, 200);
        let err = parse_json::<Record>(br#"{"service":"a","status_code":200.5}"#).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("status_code"));
        let v: Value = parse_json(br#"{"m":{"x":1.5,"y":-3.0}}"#).unwrap();
        assert_eq!(v["m"]["x"], 1.5);
        assert!(v["m"]["y"].is_i64());
    }

    #[test]
    fn a_number_too_large_to_store_is_refused_naming_its_path() {
        let err = parse_json::<Value>(br#"{"metadata":{"n":[1.7976931348623157e308]}}"#).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("metadata.n[0]"));
        assert!(!err.detail.contains("1.79"), "{}", err.detail);
        parse_json::<Value>(br#"{"metadata":{"n":1e299}}"#).unwrap();
    }

    #[test]
    fn malformed_json_is_invalid_json() {
        for body in [&b"{"[..], b"", b"nope", b"{\"service\":}"] {
            let err = parse_json::<Record>(body).unwrap_err();
            assert_eq!(err.code, "invalid_json", "{body:?}");
        }
    }
}
