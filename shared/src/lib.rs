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

/// "Nothing imports back up" (STYLE.md, Rooms), read off the source so that a circle cannot
/// come back unnoticed: the domains never import the HTTP layer (it maps their errors, not
/// they its answers), and `clients` never imports `oauth` (oauth reads clients).
#[cfg(test)]
mod rooms {
    use std::path::{Path, PathBuf};

    /// Rooms below `http`: each is `src/<room>.rs`, `src/<room>/**.rs`, or both.
    const BELOW_HTTP: &[&str] =
        &["api_keys", "capture", "clients", "connections", "licenses", "paging", "providers", "request_log"];

    fn sources(room: &str) -> Vec<(PathBuf, String)> {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        let single = src.join(format!("{room}.rs"));
        if single.is_file() {
            files.push(single);
        }
        let mut dirs = vec![src.join(room)];
        while let Some(dir) = dirs.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for entry in entries {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    files.push(path);
                }
            }
        }
        assert!(!files.is_empty(), "no source found for room {room}");
        files
            .into_iter()
            .map(|path| {
                let text = std::fs::read_to_string(&path).unwrap();
                (path, text)
            })
            .collect()
    }

    /// Whether `src` names `crate::<module>`, directly or as an item of a `crate::{..}` group
    /// (the form most imports here take).
    fn uses(src: &str, module: &str) -> bool {
        let ends_word = |rest: &str| !rest.starts_with(|c: char| c.is_alphanumeric() || c == '_');
        let direct = format!("crate::{module}");
        if src.match_indices(&direct).any(|(i, m)| ends_word(&src[i + m.len()..])) {
            return true;
        }
        src.match_indices("crate::{").any(|(i, m)| {
            let group = &src[i + m.len()..];
            let (mut depth, mut item_start) = (1, true);
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            return false;
                        }
                    }
                    ',' if depth == 1 => item_start = true,
                    c if c.is_whitespace() => {}
                    _ if depth == 1 && item_start => {
                        let rest = &group[j..];
                        if rest.starts_with(module) && ends_word(&rest[module.len()..]) {
                            return true;
                        }
                        item_start = false;
                    }
                    _ => {}
                }
            }
            false
        })
    }

    #[test]
    fn the_check_sees_direct_and_grouped_imports() {
        assert!(uses("use crate::http::ApiError;", "http"));
        assert!(uses("use crate::{\n    db::Db,\n    http::{Page, page_limit},\n};", "http"));
        assert!(uses("use crate::{http, db};", "http"));
        assert!(!uses("use crate::{db::Db, paging::{Page}};\nuse axum::http::StatusCode;", "http"));
        assert!(!uses("use crate::{db::{http_client, Db}};\nuse crate::https;", "http"));
    }

    #[test]
    fn domains_never_import_the_http_layer() {
        for room in BELOW_HTTP {
            for (path, text) in sources(room) {
                assert!(!uses(&text, "http"), "{} imports crate::http", path.display());
            }
        }
    }

    #[test]
    fn clients_never_import_oauth() {
        for (path, text) in sources("clients") {
            assert!(!uses(&text, "oauth"), "{} imports crate::oauth", path.display());
        }
    }
}
