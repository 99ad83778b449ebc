//! `request_log::Error` as problem+json: 400 `invalid_request` naming the field, 400
//! `invalid_json`, 413 `body_too_large` / `too_many_records`, 404 `request_not_found`.

use axum::http::StatusCode;

use crate::{http::ApiError, request_log::Error};

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::InvalidField { field, detail } => ApiError::invalid_field(field, detail),
            Error::InvalidJson(_) => ApiError::bad_request("invalid_json", e.to_string()),
            Error::BodyTooLarge => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", e.to_string()),
            Error::TooManyRecords(_) => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_many_records", e.to_string()),
            Error::NotFound(_) => ApiError::not_found("request_not_found", e.to_string()),
            Error::Db(db) => db.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::request_log::{MAX_BATCH_BYTES, parse_batch};

    #[test]
    fn each_outcome_has_the_status_and_code_the_design_names() {
        let cases: Vec<(Error, StatusCode, &str, Option<&str>)> = vec![
            (
                Error::InvalidField { field: "records[3].status_code".into(), detail: "x".into() },
                StatusCode::BAD_REQUEST,
                "invalid_request",
                Some("records[3].status_code"),
            ),
            (Error::InvalidJson("eof".into()), StatusCode::BAD_REQUEST, "invalid_json", None),
            (Error::BodyTooLarge, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", None),
            (Error::TooManyRecords(1001), StatusCode::PAYLOAD_TOO_LARGE, "too_many_records", None),
            (Error::NotFound("r1".into()), StatusCode::NOT_FOUND, "request_not_found", None),
        ];
        super::super::assert_maps(cases);
    }

    // How `parse_batch`'s refusals are answered: the field, the detail and the status.

    fn now() -> chrono::DateTime<chrono::Utc> {
        "2026-11-22T13:00:00Z".parse().unwrap()
    }

    fn parse(body: serde_json::Value) -> Result<Vec<crate::request_log::Record>, ApiError> {
        parse_batch(&serde_json::to_vec(&body).unwrap(), "w-1", 2000, now()).map_err(ApiError::from)
    }

    fn good() -> serde_json::Value {
        json!({"service": "llm", "endpoint": "/v1/chat", "method": "post", "status_code": 200})
    }

    #[test]
    fn integral_floats_are_integers_and_fractions_are_refused() {
        let mut r = good();
        r["status_code"] = json!(201.0);
        r["duration_ms"] = json!(12.0);
        let got = parse(r.clone()).unwrap();
        assert_eq!((got[0].status_code, got[0].duration_ms), (201, Some(12)));
        r["duration_ms"] = json!(12.5);
        let err = parse(r).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("duration_ms"));
        assert!(err.detail.contains("expected i64"), "{}", err.detail);
    }

    #[test]
    fn text_length_counts_the_text_as_sent() {
        let mut r = good();
        r["service"] = json!(format!(" {} ", "s".repeat(99)));
        assert_eq!(parse(r.clone()).unwrap_err().field.as_deref(), Some("service"));
        r["service"] = json!(format!("{} ", "s".repeat(99)));
        assert_eq!(parse(r).unwrap()[0].service, "s".repeat(99));
    }

    #[test]
    fn an_invalid_record_is_named_by_its_index() {
        let mut bad = good();
        bad["status_code"] = json!("two hundred");
        let err = parse(json!({"records": [good(), good(), good(), bad]})).unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert_eq!(err.field.as_deref(), Some("records[3].status_code"));

        let mut missing = good();
        missing.as_object_mut().unwrap().remove("service");
        let err = parse(json!({"records": [good(), missing]})).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("records[1].service"));

        let mut out_of_range = good();
        out_of_range["status_code"] = json!(600);
        let err = parse(json!({"records": [out_of_range]})).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("records[0].status_code"));

        let mut bad_time = good();
        bad_time["timestamp"] = json!("yesterday");
        let err = parse(json!({"records": [good(), bad_time]})).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("records[1].timestamp"));

        let err = parse(json!({"records": [good(), 7]})).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("records[1]"));

        let mut no_method = good();
        no_method["method"] = json!(" ");
        assert_eq!(parse(no_method).unwrap_err().field.as_deref(), Some("method"));
    }

    #[test]
    fn limits_are_413() {
        let err = parse(json!({"records": vec![good(); 1001]})).unwrap_err();
        assert_eq!(err.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(err.code, "too_many_records");
        let big = vec![b' '; MAX_BATCH_BYTES + 1];
        assert_eq!(
            ApiError::from(parse_batch(&big, "w-1", 2000, now()).unwrap_err()).status,
            StatusCode::PAYLOAD_TOO_LARGE
        );
    }

    #[test]
    fn wrong_types_name_the_field_and_the_expected_type_but_never_the_value() {
        let mut bad = good();
        bad["status_code"] = json!("sk_live_never_echoed");
        let err = parse(json!({"records": [good(), bad]})).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("records[1].status_code"));
        assert!(err.detail.contains("expected i64"), "{}", err.detail);
        assert!(!err.detail.contains("sk_live"), "{}", err.detail);
        let mut bad = good();
        bad["service"] = json!(["sk_live_never_echoed"]);
        let err = parse(bad).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("service"));
        assert!(!err.detail.contains("sk_live"), "{}", err.detail);
    }

    #[test]
    fn u0000_is_a_400_naming_the_field_except_in_bodies_where_it_becomes_ufffd() {
        for name in ["service", "endpoint", "user_identifier", "request_id"] {
            let mut bad = good();
            bad[name] = json!("a\u{0}b");
            let err = parse(json!({"records": [good(), good(), bad]})).unwrap_err();
            assert_eq!(err.status, StatusCode::BAD_REQUEST, "{name}");
            assert_eq!(err.field.as_deref(), Some(format!("records[2].{name}").as_str()));
            assert!(err.detail.contains("U+0000"), "{}", err.detail);
        }
        let mut record = good();
        record["request_body"] = json!("a\u{0}b");
        record["response_body"] = json!({"x": "c\u{0}d"});
        let r = &parse(record).unwrap()[0];
        assert_eq!(r.request_body.as_deref(), Some("a\u{FFFD}b"));
        assert!(!r.response_body.as_deref().unwrap().contains('\0'));
    }
}
