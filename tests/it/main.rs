//! Cross-function integration tests against real PostgreSQL, the Secrets Manager emulator
//! and local HTTP servers. One binary; each test gets its own database.

mod helpers;

mod api_keys;
mod event_store;
mod fake_provider;
mod http_plumbing;
mod migrate;
mod oauth_clients;
mod oauth_flow;
mod oauth_tokens;
mod oauth_world;
mod secrets;
mod token_refresh;
