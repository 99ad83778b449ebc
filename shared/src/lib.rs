//! keyledger's shared library: everything the Lambda functions have in common and every
//! domain rule. Function crates own only their trigger (routing, parsing, rendering).

pub mod api_keys;
pub mod app;
pub mod auth;
pub mod aws;
pub mod capture;
pub mod clients;
pub mod config;
pub mod connections;
pub mod context;
pub mod crypto;
pub mod db;
pub mod deadline;
pub mod events;
pub mod health;
pub mod http;
pub mod licenses;
pub mod metrics;
pub mod migrations;
pub mod oauth;
pub mod outbound;
pub mod paging;
pub mod projections;
pub mod providers;
pub mod provision;
pub mod rekey;
pub mod relay;
pub mod request_log;
pub mod roles;
pub mod schedule;
pub mod scheduled_refresh;
pub mod secrets;
pub mod signing;
pub mod telemetry;
pub mod tls;

pub use context::Context;

/// Every domain's projection, for replay (each domain records with its own).
pub const PROJECTORS: &[projections::Projector] =
    &[api_keys::PROJECTOR, licenses::PROJECTOR, clients::PROJECTOR, connections::PROJECTOR];
