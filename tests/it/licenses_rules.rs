//! One rule, two homes: `license_validate` (PL/pgSQL, the one-round-trip hot path) decides
//! on its own whether a check is usable and touches `last_seen_at`; `licenses::validate_code`
//! decides the code. These tests prove the two agree on generated cases: every status ×
//! expired or not × slot limit × slots used × whether the asking installation holds one ×
//! entitlements asked for (none, granted, missing).

use axum::http::{Method, StatusCode};
use serde_json::json;
use shared::licenses::{CheckCode, LicenseKey, LicenseStatus, is_expired, validate_code};

use crate::licenses::World;

struct Case {
    status: LicenseStatus,
    expired: bool,
    max: i32,
    used: i32,
    activated: bool,
}

fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    for status in [LicenseStatus::Active, LicenseStatus::Suspended, LicenseStatus::Revoked] {
        for expired in [false, true] {
            for max in 1..=2 {
                for used in 0..=max {
                    for activated in [false, true] {
                        if activated && used == 0 {
                            continue;
                        }
                        out.push(Case { status, expired, max, used, activated });
                    }
                }
            }
        }
    }
    out
}

/// Builds the case through the API: issue, activate `used` installations (the asking one
/// among them when `activated`), then expire, suspend or revoke.
async fn build(w: &World, case: &Case) -> (String, String) {
    let (id, key) =
        w.issue(json!({"email": "rules@example.com", "max_installations": case.max, "entitlements": ["pro"]})).await;
    for n in 0..case.used {
        let installation = if case.activated && n == 0 { "asking".to_owned() } else { format!("other-{n}") };
        assert_eq!(w.check("activate", &key, &installation).await["code"], "VALID");
    }
    if case.expired {
        let patch = json!({"expires_at": "2001-01-01T00:00:00Z"});
        let answer = w.admin_call(Method::PATCH, &format!("/v1/licenses/{id}"), Some(patch)).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    }
    match case.status {
        LicenseStatus::Active => {}
        LicenseStatus::Suspended => {
            let patch = json!({"status": "suspended"});
            let answer = w.admin_call(Method::PATCH, &format!("/v1/licenses/{id}"), Some(patch)).await;
            assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        }
        LicenseStatus::Revoked => {
            let answer = w.admin_call(Method::DELETE, &format!("/v1/licenses/{id}"), None).await;
            assert_eq!(answer.status, StatusCode::NO_CONTENT, "{}", answer.text);
        }
    }
    (id, key)
}

#[tokio::test]
async fn the_plpgsql_hot_path_and_the_rust_rules_agree_on_every_case() {
    let w = World::new().await;
    let pepper = w.app.ctx.license_key_pepper().await.unwrap();
    let client = w.app.client().await;
    let cases = cases();
    assert_eq!(cases.len(), 48);
    for case in &cases {
        let (_, key) = build(&w, case).await;
        let hash = LicenseKey::parse(&key).unwrap().lookup_hash(&pepper).to_vec();
        for needed in [vec![], vec!["pro".to_owned()], vec!["pro".to_owned(), "sso".to_owned()]] {
            let what = format!(
                "{:?} expired={} max={} used={} activated={}",
                case.status, case.expired, case.max, case.used, case.activated
            ) + &format!(" needed={needed:?}");

            let before: Option<chrono::DateTime<chrono::Utc>> = client
                .query_opt(
                    "SELECT i.last_seen_at FROM installations i JOIN licenses l ON l.id = i.license_id
                 WHERE l.key_hash = $1 AND i.installation_id = 'asking'",
                    &[&hash],
                )
                .await
                .unwrap()
                .map(|r| r.get(0));
            let row =
                client.query_one("SELECT * FROM license_validate($1, 'asking', $2)", &[&hash, &needed]).await.unwrap();
            let sql_status = LicenseStatus::from_db(row.get("status")).unwrap();
            let sql_expired: bool = row.get("expired");
            let activated_at: Option<chrono::DateTime<chrono::Utc>> = row.get("activated_at");
            let last_seen: Option<chrono::DateTime<chrono::Utc>> = row.get("last_seen_at");
            let checked_at: chrono::DateTime<chrono::Utc> = row.get("checked_at");
            assert_eq!(
                (sql_status, sql_expired, activated_at.is_some()),
                (case.status, case.expired, case.activated),
                "{what}"
            );
            assert_eq!(row.get::<_, i64>("installations_used"), i64::from(case.used), "{what}");
            // The PL/pgSQL's expiry is the Rust rule's, at the same instant.
            assert_eq!(sql_expired, is_expired(row.get("expires_at"), checked_at), "{what}");

            let missing: bool = row.get("entitlements_missing");
            assert_eq!(missing, needed.iter().any(|n| n == "sso"), "{what}");
            assert_eq!(row.get::<_, Vec<String>>("entitlements"), ["pro"], "{what}");
            let code = validate_code(sql_status, sql_expired, missing, activated_at.is_some());
            // The SQL touched last_seen_at exactly when the Rust rule says VALID.
            let touched = last_seen.is_some() && last_seen == Some(checked_at) && before != last_seen;
            assert_eq!(
                touched,
                code == CheckCode::Valid,
                "{what}: code {code:?}, before {before:?}, after {last_seen:?}"
            );
            let expected = match (case.status, case.expired, case.activated) {
                (LicenseStatus::Revoked, ..) => CheckCode::Revoked,
                (LicenseStatus::Suspended, ..) => CheckCode::Suspended,
                (_, true, _) => CheckCode::Expired,
                _ if missing => CheckCode::EntitlementsMissing,
                (_, false, false) => CheckCode::NotActivated,
                (_, false, true) => CheckCode::Valid,
            };
            assert_eq!(code, expected, "{what}");

            // And the public route answers the same code.
            let answer = crate::helpers::call(
                &w.public,
                Method::POST,
                "/v1/licenses/validate",
                None,
                Some(json!({"license_key": key, "installation_id": "asking", "entitlements": needed})),
            )
            .await
            .json;
            assert_eq!(answer["code"], serde_json::to_value(expected).unwrap(), "{what}");
            assert_eq!(answer["valid"], expected == CheckCode::Valid, "{what}");
            assert_eq!(answer["license"]["entitlements"], json!(["pro"]), "{what}");
        }
    }
}

#[tokio::test]
async fn an_unknown_stored_status_fails_closed_on_every_check() {
    let w = World::new().await;
    let (id, key) = w.issue(json!({"email": "odd@example.com"})).await;
    assert_eq!(w.check("activate", &key, "i-1").await["code"], "VALID");
    // A status a later version might write; this version must not treat it as active.
    let client = w.app.client().await;
    client.batch_execute("ALTER TABLE licenses DROP CONSTRAINT licenses_status_check").await.unwrap();
    client.execute("UPDATE licenses SET status = 'frozen' WHERE id = $1::text::uuid", &[&id]).await.unwrap();
    for route in ["validate", "activate", "deactivate"] {
        let answer = crate::helpers::call(
            &w.public,
            Method::POST,
            &format!("/v1/licenses/{route}"),
            None,
            Some(json!({"license_key": key, "installation_id": "i-1"})),
        )
        .await;
        assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR, "{route}: {}", answer.text);
        assert!(!answer.text.contains("VALID"), "{route}: {}", answer.text);
    }
    let shown = w.admin_call(Method::GET, &format!("/v1/licenses/{id}"), None).await;
    assert_eq!(shown.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", shown.text);
}
