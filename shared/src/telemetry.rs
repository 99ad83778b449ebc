//! Log output: JSON lines for CloudWatch or a readable format for a terminal.
//!
//! Owns subscriber set-up only. Secrets never reach a log line because every secret type
//! redacts itself in `Debug`/`Display`; nothing here can undo that.

use tracing_subscriber::{
    filter::{LevelFilter, Targets},
    fmt,
    prelude::*,
};

use crate::config::LogFormat;

/// What is logged when `RUST_LOG` is unset.
const DEFAULT_FILTER: &str = "info,tokio_postgres=warn,aws_smithy_runtime=warn,hyper=warn,reqwest=warn";

/// Installs the global subscriber once; later calls are ignored (tests call it freely).
pub fn init(format: LogFormat) {
    let filter =
        filter(std::env::var("RUST_LOG").ok().as_deref(), std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().as_deref());
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .with_writer(std::io::stderr)
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_target(false),
            )
            .try_init(),
        LogFormat::Pretty => {
            registry.with(fmt::layer().with_writer(std::io::stderr).compact().with_target(false)).try_init()
        }
    };
}

/// The filter: `RUST_LOG` as `level` and `target=level` directives (no span filters: that
/// syntax would link a regex engine into every binary); else the default, at the level of
/// Lambda's `LoggingConfig` when it sets one (`AWS_LAMBDA_LOG_LEVEL`), so lines Lambda would
/// drop are not even formatted. Anything unreadable falls back to the default.
fn filter(rust_log: Option<&str>, lambda_level: Option<&str>) -> Targets {
    let default = || DEFAULT_FILTER.parse::<Targets>().unwrap_or_default();
    if let Some(value) = rust_log.filter(|v| !v.trim().is_empty()) {
        return value.parse::<Targets>().unwrap_or_else(|_| default());
    }
    let level = match lambda_level.map(|l| l.trim().to_ascii_uppercase()).as_deref() {
        Some("TRACE") => LevelFilter::TRACE,
        Some("DEBUG") => LevelFilter::DEBUG,
        Some("WARN") => LevelFilter::WARN,
        Some("ERROR" | "FATAL") => LevelFilter::ERROR,
        _ => return default(),
    };
    // The noisy libraries stay at warn at most; everything else follows the level.
    let quiet: Vec<(String, LevelFilter)> =
        default().iter().map(|(target, quiet)| (target.to_owned(), quiet.min(level))).collect();
    Targets::new().with_default(level).with_targets(quiet)
}

#[cfg(test)]
mod tests {
    use tracing::Level;

    use super::*;

    #[test]
    fn lambdas_log_level_applies_when_rust_log_is_unset() {
        let warn = filter(None, Some("WARN"));
        assert!(!warn.would_enable("token_fetch", &Level::INFO));
        assert!(warn.would_enable("token_fetch", &Level::WARN));
        assert!(!warn.would_enable("tokio_postgres", &Level::INFO));
        let debug = filter(None, Some("debug"));
        assert!(debug.would_enable("shared::db", &Level::DEBUG));
        assert!(!debug.would_enable("hyper", &Level::INFO), "libraries stay quiet");
        assert!(!filter(None, Some("FATAL")).would_enable("x", &Level::WARN));
        let default = filter(None, None);
        assert!(default.would_enable("x", &Level::INFO) && !default.would_enable("x", &Level::DEBUG));
        assert!(filter(Some("debug"), Some("ERROR")).would_enable("x", &Level::DEBUG), "RUST_LOG wins");
        assert!(filter(None, Some("nonsense")).would_enable("x", &Level::INFO));
    }
}
