//! The OpenAPI document (`docs/openapi.json`) is kept true: every documented operation is
//! routed, and every route in the function crates is documented.

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::{TestApp, call};

fn document() -> Value {
    serde_json::from_str(include_str!("../../docs/openapi.json")).expect("docs/openapi.json is valid JSON")
}

fn documented() -> BTreeSet<(String, String)> {
    let doc = document();
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                ops.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    ops
}

/// `.route("/path", get(a).post(b))` calls in the function crates' sources; axum cannot list
/// its routes, so the source is the list.
fn routed_in_source() -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    let functions = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("functions");
    for entry in std::fs::read_dir(functions).unwrap() {
        let dir = entry.unwrap().path();
        let mut files = vec![];
        collect_rs(&dir.join("src"), &mut files);
        for file in files {
            let source = std::fs::read_to_string(&file).unwrap();
            let mut rest = source.as_str();
            while let Some(i) = rest.find(".route(\"") {
                rest = &rest[i + 8..];
                let end = rest.find('"').unwrap();
                let path = rest[..end].to_owned();
                // The handler expression runs to the parenthesis that closes `.route(`.
                let mut depth = 1;
                let mut j = end;
                for (k, c) in rest[end..].char_indices() {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    if depth == 0 {
                        j = end + k;
                        break;
                    }
                }
                let handlers = &rest[end..j];
                for method in ["get", "post", "put", "patch", "delete"] {
                    let needle = format!("{method}(");
                    let found = handlers
                        .match_indices(&needle)
                        .any(|(at, _)| at == 0 || !handlers[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_'));
                    if found {
                        ops.insert((method.to_uppercase(), path.clone()));
                    }
                }
            }
        }
    }
    ops
}

fn collect_rs(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_rs(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_route_in_the_code_is_documented_and_every_documented_route_is_in_the_code() {
    let documented = documented();
    let routed = routed_in_source();
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(undocumented.is_empty(), "routes missing from docs/openapi.json: {undocumented:?}");
    assert!(unrouted.is_empty(), "documented but not routed: {unrouted:?}");
}

#[tokio::test]
async fn every_documented_operation_is_answered_by_the_local_router() {
    let app = TestApp::new().await;
    let router = keyledger::local_router(app.ctx.clone());
    for (method, path) in documented() {
        let concrete = path.replace(['{', '}'], "");
        let answer = call(&router, Method::from_bytes(method.as_bytes()).unwrap(), &concrete, None, None).await;
        assert_ne!(answer.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert_ne!(answer.json["code"], "route_not_found", "{method} {path}");
    }
}

#[test]
fn every_operation_documents_its_responses_and_references_resolve() {
    let doc = document();
    let text = doc.to_string();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()), "{method} {path} has no responses");
            assert!(op["operationId"].is_string(), "{method} {path} has no operationId");
        }
    }
    let mut rest = text.as_str();
    while let Some(i) = rest.find("\"$ref\":\"#/") {
        rest = &rest[i + 10..];
        let end = rest.find('"').unwrap();
        let pointer = format!("/{}", &rest[..end]);
        assert!(doc.pointer(&pointer).is_some(), "unresolved $ref #{pointer}");
    }
}

/// `POST /v1/clients` in the document names every preset and, per preset, exactly the
/// parameters its file has (required where it has no default, closed lists as enums), so a
/// new preset or parameter cannot leave the document behind.
#[test]
fn the_new_client_schema_knows_every_preset_and_its_parameters() {
    let doc = document();
    let new_client = &doc["components"]["schemas"]["NewClient"];
    let presets = shared::providers::list();
    let mut listed: Vec<Value> = presets.iter().map(|p| Value::from(p.id.as_str())).collect();
    listed.push(Value::Null);
    assert_eq!(new_client["properties"]["preset"]["enum"].as_array().unwrap(), &listed);
    let rules = new_client["allOf"].as_array().unwrap();
    for preset in presets {
        let rule = rules
            .iter()
            .find(|r| r["if"]["properties"]["preset"]["const"] == preset.id.as_str())
            .unwrap_or_else(|| panic!("no rule for preset {}", preset.id));
        let params = &rule["then"]["properties"]["preset_params"];
        assert_eq!(params["additionalProperties"], false, "{}", preset.id);
        let documented: Vec<&String> = params["properties"].as_object().unwrap().keys().collect();
        let known: Vec<&String> = preset.params.keys().collect();
        assert_eq!(documented, known, "{}", preset.id);
        let required: Vec<&str> =
            preset.params.iter().filter(|(_, p)| p.default.is_none()).map(|(n, _)| n.as_str()).collect();
        let documented_required: Vec<&str> =
            params["required"].as_array().map_or(vec![], |r| r.iter().map(|v| v.as_str().unwrap()).collect());
        assert_eq!(documented_required, required, "{}", preset.id);
        for (name, param) in &preset.params {
            let schema = &params["properties"][name];
            match &param.allowed {
                Some(allowed) => assert_eq!(&schema["enum"], &serde_json::json!(allowed), "{}.{name}", preset.id),
                None if param.pattern.is_some() => {
                    assert_eq!(schema["allOf"][0]["pattern"].as_str(), param.pattern.as_deref(), "{}.{name}", preset.id)
                }
                None => {}
            }
        }
    }
}
