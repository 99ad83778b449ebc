//! Cross-function integration tests against real PostgreSQL, the Secrets Manager emulator
//! and local HTTP servers. One binary; each test gets its own database.

mod helpers;

mod admin_ui;
mod api_keys;
mod cli;
mod contract;
mod db;
mod deploy;
mod deploy_lifecycle;
mod dev_reset;
mod event_store;
mod fake_provider;
mod http_plumbing;
mod lambda_local;
mod licenses;
mod licenses_checkout;
mod licenses_entitlements;
mod licenses_import;
mod licenses_public;
mod licenses_recipes;
mod licenses_rules;
mod migrate;
mod oauth_clients;
mod oauth_flow;
mod oauth_tokens;
mod oauth_world;
mod openapi_rules;
mod outbound;
mod provider_presets;
mod readme_zoho;
mod rekey;
mod relay;
mod request_log;
mod request_log_layer;
mod request_log_partitions;
mod request_log_query;
mod request_log_stats;
mod roles;
mod secrets;
mod signing;
mod tls;
mod token_refresh;
mod unknown_stored;
mod untrusted_input;
