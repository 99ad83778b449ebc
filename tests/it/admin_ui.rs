//! The `/admin` web UI as HTTP sees it (DESIGN §6.10): public pages with a strict
//! Content-Security-Policy, embedded assets with their types and caching, and no caching of
//! any JSON answer. What the pages do in a browser is tested by `scripts/e2e` (Chromium).

use axum::{
    Router,
    body::Body,
    http::{HeaderMap, Method, Request, StatusCode, header},
};
use serde_json::json;

use crate::helpers::{Answer, TestApp, call, call_raw};

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const PAGES: [&str; 4] = ["/admin", "/admin/licenses", "/admin/requests", "/admin/connections"];

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

fn assert_ui_security_headers(path: &str, answer: &Answer) {
    assert_eq!(header(&answer.headers, "content-security-policy"), CSP, "{path}");
    assert_eq!(header(&answer.headers, "x-content-type-options"), "nosniff", "{path}");
    assert_eq!(header(&answer.headers, "referrer-policy"), "no-referrer", "{path}");
}

async fn get(router: &Router, path: &str) -> Answer {
    call(router, Method::GET, path, None, None).await
}

/// The values of `attr="..."` in `html`.
fn attribute_values(html: &str, attr: &str) -> Vec<String> {
    let needle = format!(" {attr}=\"");
    let mut out = vec![];
    let mut rest = html;
    while let Some(i) = rest.find(&needle) {
        rest = &rest[i + needle.len()..];
        let end = rest.find('"').unwrap();
        out.push(rest[..end].to_owned());
    }
    out
}

#[tokio::test]
async fn admin_pages_are_public_html_with_a_strict_content_security_policy() {
    let app = TestApp::new().await;
    let router = admin::router(app.ctx.clone());
    for path in PAGES {
        let answer = get(&router, path).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.text);
        assert_eq!(header(&answer.headers, "content-type"), "text/html; charset=utf-8", "{path}");
        assert_ui_security_headers(path, &answer);
        assert_eq!(header(&answer.headers, "cache-control"), "no-cache", "{path}: always revalidated");
        assert!(header(&answer.headers, "etag").starts_with('"'), "{path}");
        let html = answer.text.to_lowercase();
        assert!(html.starts_with("<!doctype html>"), "{path}");
        // Nothing inline: every script has a src, no <style> element, no style or on* attribute.
        assert_eq!(html.matches("<script").count(), html.matches("<script src=\"/admin/assets/").count(), "{path}");
        assert!(!html.contains("<style"), "{path}");
        assert!(!html.contains(" style="), "{path}");
        assert!(!html.contains("javascript:"), "{path}");
        for attr in ["onclick", "onload", "onerror", "onsubmit", "onchange", "oninput"] {
            assert!(!html.contains(&format!(" {attr}=")), "{path} has an inline {attr} handler");
        }
        // No CDN: everything the page loads is on this origin.
        for url in attribute_values(&html, "src").into_iter().chain(attribute_values(&html, "href")) {
            assert!(url.starts_with('/') || url.starts_with('#'), "{path} links {url}");
        }
    }
    let head = call_raw(&router, Request::head("/admin").body(Body::empty()).unwrap()).await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.text.is_empty());
}

#[tokio::test]
async fn every_asset_and_page_the_pages_link_is_served_with_its_type_and_long_caching_when_versioned() {
    let app = TestApp::new().await;
    let router = keyledger::local_router(app.ctx.clone());
    let mut assets = std::collections::BTreeSet::new();
    for path in PAGES {
        let html = get(&router, path).await.text;
        for url in attribute_values(&html, "src").into_iter().chain(attribute_values(&html, "href")) {
            if url.starts_with("/admin/assets/") {
                assert!(url.contains("?v="), "{path} links {url} without a version");
                assets.insert(url);
            } else if url.starts_with("/admin") {
                assert_eq!(get(&router, &url).await.status, StatusCode::OK, "{path} links {url}");
            }
        }
    }
    let names: Vec<&str> =
        assets.iter().map(|u| u.trim_start_matches("/admin/assets/").split('?').next().unwrap()).collect();
    for expected in ["admin.css", "common.js", "hub.js", "licenses.js", "requests.js", "connections.js", "icon.svg"] {
        assert!(names.contains(&expected), "no page links {expected}: {names:?}");
    }
    for url in &assets {
        let answer = get(&router, url).await;
        assert_eq!(answer.status, StatusCode::OK, "{url}");
        let expected_type = match url.split('?').next().unwrap().rsplit('.').next().unwrap() {
            "css" => "text/css; charset=utf-8",
            "js" => "text/javascript; charset=utf-8",
            "svg" => "image/svg+xml",
            other => panic!("unexpected asset type {other}"),
        };
        assert_eq!(header(&answer.headers, "content-type"), expected_type, "{url}");
        assert_eq!(header(&answer.headers, "cache-control"), "public, max-age=31536000, immutable", "{url}");
        assert_ui_security_headers(url, &answer);
        assert!(answer.text.len() > 100, "{url} has content");
    }
}

#[tokio::test]
async fn an_asset_url_without_the_current_version_is_revalidated_and_an_etag_match_is_304() {
    let app = TestApp::new().await;
    let router = admin::router(app.ctx.clone());
    for url in ["/admin/assets/admin.css", "/admin/assets/admin.css?v=0123456789abcdef"] {
        let answer = get(&router, url).await;
        assert_eq!(answer.status, StatusCode::OK, "{url}");
        assert_eq!(header(&answer.headers, "cache-control"), "no-cache", "{url}: a stale link is never pinned");
    }
    for url in ["/admin/assets/common.js", "/admin/licenses"] {
        let first = get(&router, url).await;
        let etag = header(&first.headers, "etag").to_owned();
        let again =
            call_raw(&router, Request::get(url).header(header::IF_NONE_MATCH, &etag).body(Body::empty()).unwrap())
                .await;
        assert_eq!(again.status, StatusCode::NOT_MODIFIED, "{url}");
        assert!(again.text.is_empty());
        assert_eq!(header(&again.headers, "etag"), etag);
        assert_ui_security_headers(url, &again);
        let changed = call_raw(
            &router,
            Request::get(url).header(header::IF_NONE_MATCH, "\"other\"").body(Body::empty()).unwrap(),
        )
        .await;
        assert_eq!(changed.status, StatusCode::OK, "{url}");
    }
}

#[tokio::test]
async fn an_unknown_asset_is_a_404_problem_and_never_a_file_read() {
    let app = TestApp::new().await;
    let router = admin::router(app.ctx.clone());
    for url in [
        "/admin/assets/nope.js",
        "/admin/assets/..%2Fsrc%2Flib.rs",
        "/admin/assets/index.html",
        "/admin/assets/%2Fetc%2Fpasswd",
    ] {
        let answer = get(&router, url).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{url}");
        assert_eq!(answer.json["code"], "asset_not_found", "{url}");
        assert_eq!(header(&answer.headers, "x-content-type-options"), "nosniff");
        assert_eq!(header(&answer.headers, "cache-control"), "no-store");
    }
}

#[tokio::test]
async fn json_answers_of_every_kind_are_never_cached() {
    let app = TestApp::new().await;
    let router = keyledger::local_router(app.ctx.clone());
    let key = app.admin_key.as_str();
    let cases = [
        (Method::GET, "/health", None, None, StatusCode::OK),
        (Method::GET, "/v1/licenses", Some(key), None, StatusCode::OK),
        (Method::GET, "/v1/requests", Some(key), None, StatusCode::OK),
        (Method::GET, "/v1/api-keys", Some(key), None, StatusCode::OK),
        (Method::GET, "/v1/clients", Some(key), None, StatusCode::OK),
        (Method::GET, "/v1/connections", Some(key), None, StatusCode::OK),
        (Method::GET, "/v1/connections/branch-42/events", Some(key), None, StatusCode::NOT_FOUND),
        (Method::POST, "/v1/licenses", Some(key), Some(json!({"email": "a@example.com"})), StatusCode::CREATED),
        (
            Method::POST,
            "/v1/licenses/validate",
            None,
            Some(json!({"license_key": "K", "installation_id": "i"})),
            StatusCode::OK,
        ),
        (Method::GET, "/v1/licenses", None, None, StatusCode::UNAUTHORIZED),
        (Method::POST, "/v1/licenses", Some(key), Some(json!({"email": 7})), StatusCode::BAD_REQUEST),
        (Method::PUT, "/v1/licenses", Some(key), None, StatusCode::METHOD_NOT_ALLOWED),
        (Method::GET, "/v1/nothing-here", Some(key), None, StatusCode::NOT_FOUND),
    ];
    for (method, path, key, body, status) in cases {
        let answer = call(&router, method.clone(), path, key, body).await;
        assert_eq!(answer.status, status, "{method} {path}: {}", answer.text);
        assert!(header(&answer.headers, "content-type").contains("json"), "{method} {path}");
        assert_eq!(header(&answer.headers, "cache-control"), "no-store", "{method} {path}");
        assert_eq!(header(&answer.headers, "x-content-type-options"), "nosniff", "{method} {path}");
    }
    // The Lambda routers add the same (they share `shared::app::finish`).
    let lambda = admin::router(app.ctx.clone());
    let answer = call(&lambda, Method::GET, "/v1/api-keys", Some(&app.admin_key), None).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(header(&answer.headers, "cache-control"), "no-store");
}

#[tokio::test]
async fn every_form_control_of_every_page_has_a_label_and_every_button_a_name() {
    let app = TestApp::new().await;
    let router = admin::router(app.ctx.clone());
    for path in PAGES {
        let html = get(&router, path).await.text;
        let labelled: Vec<String> = attribute_values(&html, "for");
        let mut rest = html.as_str();
        while let Some(i) = rest.find(['<']) {
            rest = &rest[i + 1..];
            let tag_end = rest.find('>').unwrap();
            let tag = &rest[..tag_end];
            if tag.starts_with("input ") || tag.starts_with("select ") {
                let id = attribute_values(&format!(" {tag}"), "id");
                let named = tag.contains("aria-label=") || id.first().is_some_and(|id| labelled.contains(id));
                assert!(named, "{path}: <{tag}> has no label");
            }
            if tag.starts_with("button") {
                let text_end = rest.find("</button>").unwrap();
                let text = &rest[tag_end + 1..text_end];
                assert!(!text.trim().is_empty() || tag.contains("aria-label="), "{path}: <{tag}> has no name");
            }
        }
    }
}

#[test]
fn scripts_put_text_into_the_page_never_html() {
    // Request bodies and provider errors come from outside: building the DOM from strings
    // would let them run as script in an operator's session.
    let scripts = ["common.js", "hub.js", "licenses.js", "requests.js", "connections.js"];
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("functions/admin/assets");
    for name in scripts {
        let source = std::fs::read_to_string(dir.join(name)).unwrap();
        for sink in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"] {
            assert!(!source.contains(sink), "{name} uses {sink}");
        }
    }
}
