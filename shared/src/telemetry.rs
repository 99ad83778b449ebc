//! Log output: JSON lines for CloudWatch or a readable format for a terminal.
//!
//! Owns subscriber set-up only. Secrets never reach a log line because every secret type
//! redacts itself in `Debug`/`Display`; nothing here can undo that.

use tracing_subscriber::{filter::Targets, fmt, prelude::*};

use crate::config::LogFormat;

/// What is logged when `RUST_LOG` is unset.
const DEFAULT_FILTER: &str = "info,tokio_postgres=warn,aws_smithy_runtime=warn,hyper=warn,reqwest=warn";

/// Installs the global subscriber once; later calls are ignored (tests call it freely).
pub fn init(format: LogFormat) {
    // `RUST_LOG` as `level` and `target=level` directives (no span filters: that syntax would
    // link a regex engine into every binary); anything unreadable falls back to the default.
    let default = || DEFAULT_FILTER.parse::<Targets>().unwrap_or_default();
    let filter = match std::env::var("RUST_LOG") {
        Ok(value) if !value.trim().is_empty() => value.parse::<Targets>().unwrap_or_else(|_| default()),
        _ => default(),
    };
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
