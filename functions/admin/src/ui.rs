//! The `/admin` web UI (DESIGN §6.10): six HTML pages and their CSS/JS, embedded in the
//! binary and served with a strict Content-Security-Policy. The pages hold no data; their
//! scripts call the JSON API with the operator's key, so nothing here touches the database.
//!
//! Asset URLs in the pages carry a content hash (`?v=`), so a versioned asset may be cached
//! for a year while a page, always revalidated, names the current version.

use std::sync::LazyLock;

use axum::{
    body::Body,
    extract::Path,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use shared::http::{ApiError, Query};

/// The policy of every UI answer: only this origin's scripts, styles and API, nothing inline.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
// Pages and unversioned asset URLs are revalidated on every use (cheap with the ETag), so a
// deploy is visible at once.
const REVALIDATE: &str = "no-cache";

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $type:literal) => {
        Asset { name: $name, content_type: $type, body: include_bytes!(concat!("../assets/", $name)) }
    };
}

const ASSETS: &[Asset] = &[
    asset!("admin.css", "text/css; charset=utf-8"),
    asset!("common.js", "text/javascript; charset=utf-8"),
    asset!("hub.js", "text/javascript; charset=utf-8"),
    asset!("licenses.js", "text/javascript; charset=utf-8"),
    asset!("requests.js", "text/javascript; charset=utf-8"),
    asset!("connections.js", "text/javascript; charset=utf-8"),
    asset!("chart.js", "text/javascript; charset=utf-8"),
    asset!("clients.js", "text/javascript; charset=utf-8"),
    asset!("api-keys.js", "text/javascript; charset=utf-8"),
    asset!("icon.svg", "image/svg+xml"),
];

/// The UI's pages.
#[derive(Clone, Copy)]
pub enum Page {
    /// `/admin`.
    Hub,
    /// `/admin/connections`.
    Connections,
    /// `/admin/licenses`.
    Licenses,
    /// `/admin/requests`.
    Requests,
    /// `/admin/clients`.
    Clients,
    /// `/admin/api-keys`.
    ApiKeys,
}

/// What every page shares: head, header with the section links, sign-in form; `{{title}}`,
/// `{{scripts}}` and `{{body}}` are filled in per page.
const SHELL: &str = include_str!("../assets/shell.html");

/// Per page, in [`Page`] order: path (its link is marked current), title, scripts (asset names
/// separated by spaces, run in that order after `common.js`), body.
const PAGE_PARTS: [(&str, &str, &str, &str); 6] = [
    ("/admin", "keyledger admin", "hub.js", include_str!("../assets/pages/hub.html")),
    (
        "/admin/connections",
        "Connections · keyledger admin",
        "connections.js",
        include_str!("../assets/pages/connections.html"),
    ),
    ("/admin/licenses", "Licenses · keyledger admin", "licenses.js", include_str!("../assets/pages/licenses.html")),
    (
        "/admin/requests",
        "Requests · keyledger admin",
        "chart.js requests.js",
        include_str!("../assets/pages/requests.html"),
    ),
    ("/admin/clients", "OAuth clients · keyledger admin", "clients.js", include_str!("../assets/pages/clients.html")),
    ("/admin/api-keys", "API keys · keyledger admin", "api-keys.js", include_str!("../assets/pages/api-keys.html")),
];

/// A short content hash: the asset version in URLs and the ETag.
fn version(body: &[u8]) -> String {
    shared::crypto::sha256(body)[..8].iter().map(|b| format!("{b:02x}")).collect()
}

static VERSIONS: LazyLock<Vec<String>> = LazyLock::new(|| ASSETS.iter().map(|a| version(a.body)).collect());

/// The pages with every `/admin/assets/<name>` reference pinned to the asset's version.
static PAGES: LazyLock<Vec<(String, String)>> = LazyLock::new(|| {
    PAGE_PARTS
        .iter()
        .map(|(path, title, scripts, body)| {
            let link = format!("href=\"{path}\"");
            let scripts: Vec<String> = scripts
                .split(' ')
                .map(|name| format!("<script src=\"/admin/assets/{name}\" defer></script>"))
                .collect();
            let mut html = SHELL
                .replacen(&link, &format!("{link} aria-current=\"page\""), 1)
                .replace("{{title}}", title)
                .replace("{{scripts}}", &scripts.join("\n"))
                .replace("{{body}}", body);
            for (asset, v) in ASSETS.iter().zip(VERSIONS.iter()) {
                let plain = format!("\"/admin/assets/{}\"", asset.name);
                html = html.replace(&plain, &format!("\"/admin/assets/{}?v={v}\"", asset.name));
            }
            let etag = version(html.as_bytes());
            (html, etag)
        })
        .collect()
});

fn security_headers(headers: &mut HeaderMap) {
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

fn not_modified(request: &HeaderMap, etag: &str) -> bool {
    request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim().trim_start_matches("W/") == etag || t.trim() == "*"))
}

fn answer(request: &HeaderMap, content_type: &'static str, cache: &'static str, tag: &str, body: Body) -> Response {
    let etag = format!("\"{tag}\"");
    let (status, body) =
        if not_modified(request, &etag) { (StatusCode::NOT_MODIFIED, Body::empty()) } else { (StatusCode::OK, body) };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    security_headers(headers);
    response
}

/// Serves one page.
pub fn page(page: Page, request: &HeaderMap) -> Response {
    let (html, etag) = &PAGES[page as usize];
    answer(request, "text/html; charset=utf-8", REVALIDATE, etag, Body::from(html.clone()))
}

/// `?v=` of an asset URL.
#[derive(Deserialize)]
pub struct AssetQuery {
    v: Option<String>,
}

/// `GET /admin/assets/{file}`: long caching only when `v` names the current version.
pub async fn asset(Path(file): Path<String>, Query(query): Query<AssetQuery>, request: HeaderMap) -> Response {
    let Some(i) = ASSETS.iter().position(|a| a.name == file) else {
        let mut response = ApiError::not_found("asset_not_found", format!("no admin asset '{file}'")).into_response();
        security_headers(response.headers_mut());
        return response;
    };
    let (asset, current) = (&ASSETS[i], &VERSIONS[i]);
    let cache = if query.v.as_deref() == Some(current.as_str()) { IMMUTABLE } else { REVALIDATE };
    answer(&request, asset.content_type, cache, current, Body::from(asset.body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_pins_every_asset_it_names_to_its_version() {
        for (html, _) in PAGES.iter() {
            let mut rest = html.as_str();
            while let Some(i) = rest.find("/admin/assets/") {
                rest = &rest[i + "/admin/assets/".len()..];
                let end = rest.find('"').unwrap();
                let (name, v) = rest[..end].split_once("?v=").expect("a versioned asset URL");
                let k = ASSETS.iter().position(|a| a.name == name).expect("a known asset");
                assert_eq!(v, VERSIONS[k]);
            }
        }
    }

    #[test]
    fn etags_match_strong_weak_and_lists() {
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"a\", W/\"b\""));
        assert!(not_modified(&h, "\"b\""));
        assert!(not_modified(&h, "\"a\""));
        assert!(!not_modified(&h, "\"c\""));
        assert!(!not_modified(&HeaderMap::new(), "\"a\""));
    }
}
