//! The mapping of each domain's error enum to problem+json, one file per domain and one
//! `From<domain::Error> for ApiError` each: the only place where a domain outcome gets an
//! HTTP status, a `code` and a `field`.
mod api_keys;
mod auth;
mod clients;
mod connections;
mod licenses;
mod paging;
mod providers;
mod request_log;

/// Asserts each domain error's answer: its status, `code` and `field` (a mapping test's table).
#[cfg(test)]
fn assert_maps<E: std::fmt::Debug>(cases: Vec<(E, http::StatusCode, &str, Option<&str>)>)
where
    super::ApiError: From<E>,
{
    for (error, status, code, field) in cases {
        let shown = format!("{error:?}");
        let answer = super::ApiError::from(error);
        assert_eq!((answer.status, answer.code.as_ref(), answer.field.as_deref()), (status, code, field), "{shown}");
    }
}
