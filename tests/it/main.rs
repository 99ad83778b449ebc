//! Cross-function integration tests against real PostgreSQL, the Secrets Manager emulator
//! and local HTTP servers. One binary; each test gets its own database.

mod helpers;

mod api_keys;
mod cli;
mod contract;
mod deploy;
mod event_store;
mod http_plumbing;
mod migrate;
mod roles;
mod secrets;
mod tls;
