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
