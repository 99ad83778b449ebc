//! The template survives its own lifecycle (issue 17): parameter changes re-run migrate
//! where they matter, the connection budget holds, the alarms an on-call needs exist and
//! watch what they claim, retained secrets can be reused and are protected.
//!
//! These read `template.yaml` as YAML (short-form tags kept, see `deploy::text`); cfn-lint
//! and `sam validate --lint` (in `deploy`) check that what is read here is also valid.

use std::collections::{BTreeMap, BTreeSet};

use serde_yaml::Value;

use crate::deploy::{template, template_functions, text};

/// Environment variables of `function` as deployed: Globals, then its own.
fn environment(t: &Value, logical_id: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for scope in [
        &t["Globals"]["Function"]["Environment"]["Variables"],
        &t["Resources"][logical_id]["Properties"]["Environment"]["Variables"],
    ] {
        for (k, v) in scope.as_mapping().into_iter().flatten() {
            out.insert(text(k), text(v));
        }
    }
    out
}

/// Variables of migrate's environment that do not decide *what* it applies or *where*:
/// changing one needs no new run of the schema resource.
const MIGRATE_VARS_WITHOUT_EFFECT: [&str; 2] = ["LOG_FORMAT", "DB_POOL_MAX"];

#[test]
fn every_input_of_migrate_is_a_property_of_the_schema_resource() {
    let t = template();
    let schema = &t["Resources"]["DatabaseSchema"]["Properties"];
    // The unqualified ARN ($LATEST with this deploy's environment), not a published alias.
    assert_eq!(text(&schema["ServiceToken"]), "!GetAtt MigrateFunction.Arn");
    let properties: BTreeMap<String, String> =
        schema.as_mapping().unwrap().iter().map(|(k, v)| (text(k), text(v))).collect();
    let values: BTreeSet<&String> = properties.values().collect();
    let mut missing = Vec::new();
    for (name, value) in environment(&t, "MigrateFunction") {
        if MIGRATE_VARS_WITHOUT_EFFECT.contains(&name.as_str()) {
            continue;
        }
        if !values.contains(&value) {
            missing.push(format!("{name} = {value}"));
        }
    }
    assert!(
        missing.is_empty(),
        "DatabaseSchema lacks a property with the value of migrate's {missing:?}: changing it would not re-run migrate"
    );
    // Inputs that reach migrate through another variable's value.
    for parameter in ["DatabaseMode", "DatabaseRolePrefix", "DatabasePort", "DatabaseName", "DbSslMode"] {
        assert_eq!(properties.get(parameter).map(String::as_str), Some(format!("!Ref {parameter}").as_str()));
    }
    // The target the functions use is the one migrate provisions (the proxy aside).
    let migrate = environment(&t, "MigrateFunction");
    for f in template_functions().values() {
        let env = environment(&t, &f.logical_id);
        for var in ["DB_PORT", "DB_NAME", "DB_SSLMODE"] {
            assert_eq!(env.get(var), migrate.get(var), "{}: {var}", f.logical_id);
        }
    }
}

/// A parameter's default, as text.
fn default_of(t: &Value, parameter: &str) -> String {
    text(&t["Parameters"][parameter]["Default"])
}

/// A number in the template, `!Ref Parameter` resolved to the parameter's default.
fn number(t: &Value, v: &Value) -> u64 {
    let raw = text(v);
    let raw = match raw.strip_prefix("!Ref ") {
        Some(parameter) => default_of(t, parameter),
        None => raw,
    };
    raw.parse().unwrap_or_else(|_| panic!("not a number: {raw}"))
}

/// `parameter_overrides` of one `samconfig.toml` environment, as a map.
fn samconfig_overrides(env: &str) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(crate::deploy::root().join("samconfig.toml")).unwrap();
    let section = format!("[{env}.deploy.parameters]");
    let body = text.split(&section).nth(1).unwrap_or_else(|| panic!("samconfig.toml has no {section}"));
    let body = body.split("\n[").next().unwrap();
    let line = body
        .lines()
        .find_map(|l| l.trim().strip_prefix("parameter_overrides = "))
        .unwrap_or_else(|| panic!("{section} has no parameter_overrides"));
    line.trim_matches('"')
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// The alarms, by logical id.
fn alarms(t: &Value) -> BTreeMap<String, Value> {
    t["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some("AWS::CloudWatch::Alarm"))
        .map(|(id, r)| (text(id), r.clone()))
        .collect()
}

#[test]
fn every_function_has_reserved_concurrency_and_the_schedules_run_one_at_a_time() {
    let t = template();
    for (name, f) in template_functions() {
        let reserved = &f.properties["ReservedConcurrentExecutions"];
        assert!(!reserved.is_null(), "{name}: no ReservedConcurrentExecutions (the connection budget needs one)");
        let n = number(&t, reserved);
        assert!(n >= 1, "{name}: reserved concurrency 0 disables the function");
        if ["token-refresh", "events-relay", "migrate"].contains(&name.as_str()) {
            assert_eq!(n, 1, "{name}: runs must not overlap");
        }
        for sqs in &f.sqs {
            let max = number(&t, &sqs["ScalingConfig"]["MaximumConcurrency"]);
            assert!(max < n, "{name}: the queue's MaximumConcurrency {max} must leave room below the reserved {n}");
        }
    }
}

/// The rows of the budget table in docs/deploy.md: function → (concurrency, pool, connections).
fn budget_table() -> BTreeMap<String, (u64, u64, u64)> {
    let guide = std::fs::read_to_string(crate::deploy::root().join("docs/deploy.md")).unwrap();
    let start = guide.find("## Connection budget").expect("docs/deploy.md has a '## Connection budget' section");
    let mut rows = BTreeMap::new();
    for line in guide[start..].lines().skip(1).take_while(|l| !l.starts_with("## ")) {
        let cells: Vec<&str> = line.trim().trim_matches('|').split('|').map(str::trim).collect();
        if cells.len() < 4 || !cells[0].starts_with('`') {
            continue;
        }
        let n = |s: &str| s.trim_matches('*').parse::<u64>().ok();
        if let (Some(c), Some(p), Some(total)) = (n(cells[1]), n(cells[2]), n(cells[3])) {
            rows.insert(cells[0].trim_matches('`').to_owned(), (c, p, total));
        }
    }
    rows
}

#[test]
fn the_connection_budget_in_the_guide_is_the_templates_and_fits_the_default_instance() {
    let t = template();
    let pool: u64 = text(&t["Globals"]["Function"]["Environment"]["Variables"]["DB_POOL_MAX"]).parse().unwrap();
    let table = budget_table();
    let mut total = 0;
    for (name, f) in template_functions() {
        let concurrency = number(&t, &f.properties["ReservedConcurrentExecutions"]);
        let pool = match &f.properties["Environment"]["Variables"]["DB_POOL_MAX"] {
            Value::Null => pool,
            v => text(v).parse().unwrap(),
        };
        let row = table.get(&name).unwrap_or_else(|| panic!("docs/deploy.md budget table has no row `{name}`"));
        assert_eq!(*row, (concurrency, pool, concurrency * pool), "docs/deploy.md budget row for {name}");
        total += concurrency * pool;
    }
    // A db.t4g.micro (the default class) has about 80 max_connections, 3 of them reserved
    // for superusers; the rest must hold every function at its reserved concurrency.
    assert_eq!(default_of(&t, "DatabaseInstanceClass"), "db.t4g.micro");
    assert!(total <= 75, "the default environment may open {total} connections, more than a db.t4g.micro allows");
    let guide = std::fs::read_to_string(crate::deploy::root().join("docs/deploy.md")).unwrap();
    assert!(guide.contains(&format!("| **total** | | | **{total}** |")), "docs/deploy.md budget total {total}");
}

#[test]
fn rds_proxy_is_on_by_default_and_off_only_in_dev() {
    let t = template();
    assert_eq!(default_of(&t, "UseRdsProxy"), "true");
    assert_eq!(samconfig_overrides("default").get("UseRdsProxy").map(String::as_str), Some("false"));
    for env in ["staging", "prod"] {
        assert_ne!(samconfig_overrides(env).get("UseRdsProxy").map(String::as_str), Some("false"), "{env}");
    }
    // The functions connect through the proxy when there is one; migrate never does.
    let globals = text(&t["Globals"]["Function"]["Environment"]["Variables"]["DB_HOST"]);
    assert!(globals.starts_with("!If UseProxy !GetAtt DatabaseProxy.Endpoint"), "{globals}");
    let migrate = text(&t["Resources"]["MigrateFunction"]["Properties"]["Environment"]["Variables"]["DB_HOST"]);
    assert!(!migrate.contains("Proxy"), "{migrate}");
}

#[test]
fn storage_grows_by_itself_up_to_a_limit() {
    let t = template();
    let db = &t["Resources"]["Database"]["Properties"];
    assert_eq!(text(&db["MaxAllocatedStorage"]), "!Ref DatabaseMaxAllocatedStorage");
    assert!(
        number(&t, &db["MaxAllocatedStorage"]) > number(&t, &db["AllocatedStorage"]),
        "autoscaling needs a limit above the allocated storage"
    );
}

#[test]
fn the_alarms_an_on_call_needs_exist() {
    let t = template();
    let alarms = alarms(&t);
    let find = |namespace: &str, metric: &str, dimension_value: &str| -> Vec<&Value> {
        alarms
            .values()
            .filter(|a| {
                let p = &a["Properties"];
                text(&p["Namespace"]) == namespace
                    && text(&p["MetricName"]) == metric
                    && (dimension_value.is_empty() || text(&p["Dimensions"][0]["Value"]) == dimension_value)
            })
            .collect()
    };
    for a in alarms.values() {
        let p = &a["Properties"];
        assert_eq!(text(&p["AlarmActions"]), "!Ref AlarmTopic", "{}", text(&p["AlarmName"]));
    }
    let one = |namespace: &str, metric: &str, value: &str| -> Value {
        let found = find(namespace, metric, value);
        assert_eq!(found.len(), 1, "one alarm on {namespace} {metric} {value}");
        found[0]["Properties"].clone()
    };

    let storage = one("AWS/RDS", "FreeStorageSpace", "");
    assert_eq!(text(&storage["ComparisonOperator"]), "LessThanThreshold");
    for metric in ["FreeStorageSpace", "CPUUtilization", "DatabaseConnections"] {
        let id = alarms.iter().find(|(_, a)| text(&a["Properties"]["MetricName"]) == metric).unwrap().0;
        assert_eq!(text(&alarms[id]["Condition"]), "WatchDatabaseInstance", "{id}");
        assert_eq!(
            text(&alarms[id]["Properties"]["Dimensions"][0]["Value"]),
            "!If CreateDatabase !Ref Database !Ref DatabaseInstanceIdentifier"
        );
    }
    one("AWS/RDS", "CPUUtilization", "");
    let connections = one("AWS/RDS", "DatabaseConnections", "");
    assert_eq!(text(&connections["Threshold"]), "!Ref DatabaseConnectionsAlarmThreshold");
    let pinning = one("AWS/RDS", "DatabaseConnectionsCurrentlySessionPinned", "!Ref DatabaseProxy");
    assert_eq!(text(&pinning["Dimensions"][0]["Name"]), "ProxyName");
    let pinning_id = alarms.iter().find(|(_, a)| a["Properties"] == pinning).unwrap().0;
    assert_eq!(text(&alarms[pinning_id]["Condition"]), "UseProxy");

    let age = one("AWS/SQS", "ApproximateAgeOfOldestMessage", "!GetAtt RequestLogQueue.QueueName");
    assert!(number(&t, &age["Threshold"]) <= 900, "the queue-age alarm must fire long before the DLQ does");

    let functions = template_functions();
    for (name, f) in &functions {
        let duration = find("AWS/Lambda", "Duration", &format!("!Ref {}", f.logical_id));
        if f.routes.is_empty() {
            continue;
        }
        assert_eq!(duration.len(), 1, "{name} serves the API: one p99 duration alarm");
        let p = &duration[0]["Properties"];
        assert_eq!(text(&p["ExtendedStatistic"]), "p99", "{name}");
        let threshold = number(&t, &p["Threshold"]);
        let timeout_ms = f.properties["Timeout"].as_u64().unwrap() * 1000;
        assert!(
            threshold < timeout_ms / 2,
            "{name}: p99 alarm at {threshold} ms fires too late (timeout {timeout_ms} ms)"
        );
    }

    // A heartbeat for every schedule: the rule SAM generates (<Function><Event>) ran.
    let mut schedules = 0;
    for (id, resource) in t["Resources"].as_mapping().unwrap() {
        for (event, e) in resource["Properties"]["Events"].as_mapping().into_iter().flatten() {
            if e["Type"].as_str() != Some("Schedule") {
                continue;
            }
            schedules += 1;
            let rule = format!("!Ref {}{}", text(id), text(event));
            let beat = one("AWS/Events", "Invocations", &rule);
            assert_eq!(text(&beat["Dimensions"][0]["Name"]), "RuleName");
            assert_eq!(text(&beat["ComparisonOperator"]), "LessThanThreshold", "{rule}");
            assert_eq!(number(&t, &beat["Threshold"]), 1, "{rule}");
            assert_eq!(text(&beat["TreatMissingData"]), "breaching", "{rule}: a stopped schedule sends no data");
            let rate = text(&e["Properties"]["Schedule"]);
            let every = match rate.as_str() {
                "rate(1 minute)" => 60,
                "rate(5 minutes)" => 300,
                "rate(1 day)" => 86_400,
                other => panic!("{rule}: a schedule this test does not know: {other}"),
            };
            let window = number(&t, &beat["Period"]) * number(&t, &beat["EvaluationPeriods"]);
            assert!(window >= 2 * every, "{rule}: a {window} s window can miss a healthy {rate}");
        }
    }
    assert_eq!(schedules, 3);
}

/// The secrets that outlive the stack: (resource, reuse parameter, reuse condition, create condition).
const RETAINED_SECRETS: [(&str, &str, &str, &str); 3] = [
    ("EncryptionKeysSecret", "ExistingEncryptionKeysSecretArn", "ReuseEncryptionKeys", "CreateEncryptionKeys"),
    ("LicenseKeyPepperSecret", "ExistingLicenseKeyPepperSecretArn", "ReuseLicenseKeyPepper", "CreateLicenseKeyPepper"),
    (
        "LicenseSigningKeysSecret",
        "ExistingLicenseSigningKeysSecretArn",
        "ReuseLicenseSigningKeys",
        "CreateLicenseSigningKeys",
    ),
];

#[test]
fn retained_secrets_can_be_reused_by_a_new_stack() {
    let t = template();
    let raw = std::fs::read_to_string(crate::deploy::root().join("template.yaml")).unwrap();
    for (resource, parameter, reuse, create) in RETAINED_SECRETS {
        assert_eq!(default_of(&t, parameter), "", "{parameter}: empty = the stack creates the secret");
        assert_eq!(text(&t["Conditions"][create]), format!("!Equals !Ref {parameter} "), "{create}");
        assert_eq!(text(&t["Conditions"][reuse]), format!("!Not !Equals !Ref {parameter} "), "{reuse}");
        let r = &t["Resources"][resource];
        assert_eq!(text(&r["Condition"]), create, "{resource} is created only when not reused");
        assert_eq!(text(&r["DeletionPolicy"]), "Retain", "{resource}");
        assert_eq!(text(&r["UpdateReplacePolicy"]), "Retain", "{resource}");
        // Every use goes through the condition: a bare reference would break a reusing stack.
        let chosen = format!("!If [{reuse}, !Ref {parameter}, !Ref {resource}]");
        let bare = raw.matches(&format!("!Ref {resource}")).count();
        let through_if = raw.matches(&chosen).count();
        assert!(through_if > 0, "{resource} is never used");
        assert_eq!(bare, through_if, "{resource}: {} reference(s) not written as {chosen}", bare - through_if);
    }
    // What migrate provisions is the chosen secret too.
    let migrate = environment(&t, "MigrateFunction");
    assert!(migrate["ENCRYPTION_KEYS_SECRET_ID"].starts_with("!If ReuseEncryptionKeys"));
    assert!(migrate["LICENSE_SIGNING_KEYS_SECRET_ID"].starts_with("!If ReuseLicenseSigningKeys"));
}

#[test]
fn the_stack_policy_protects_what_the_stack_retains_and_scripts_deploy_sets_it() {
    let t = template();
    let root = crate::deploy::root();
    let policy: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("stack-policy.json")).unwrap()).unwrap();
    let statements = policy["Statement"].as_array().unwrap();
    let denied: BTreeSet<String> = statements
        .iter()
        .filter(|s| {
            s["Effect"] == "Deny"
                && ["Update:Replace", "Update:Delete"]
                    .iter()
                    .all(|a| s["Action"].as_array().is_some_and(|l| l.iter().any(|x| x == a)))
        })
        .flat_map(|s| s["Resource"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_owned()))
        .collect();
    let mut kept = 0;
    for (id, r) in t["Resources"].as_mapping().unwrap() {
        if ["Retain", "Snapshot"].contains(&text(&r["DeletionPolicy"]).as_str()) {
            kept += 1;
            let id = text(id);
            assert!(denied.contains(&format!("LogicalResourceId/{id}")), "stack-policy.json does not protect {id}");
        }
    }
    assert_eq!(kept, 4, "the key ring, the pepper, the signing ring and the database");
    // Everything else may still be updated.
    assert!(statements.iter().any(|s| s["Effect"] == "Allow" && s["Action"] == "Update:*" && s["Resource"] == "*"));
    let deploy = std::fs::read_to_string(root.join("scripts/deploy")).unwrap();
    assert!(deploy.contains("set_stack_policy") && deploy.contains("stack-policy.json"), "scripts/deploy sets it");
}

#[test]
fn log_levels_are_parameters_and_prod_logs_warnings_only() {
    let t = template();
    let logging = &t["Globals"]["Function"]["LoggingConfig"];
    assert_eq!(text(&logging["ApplicationLogLevel"]), "!Ref ApplicationLogLevel");
    assert_eq!(text(&logging["SystemLogLevel"]), "!Ref SystemLogLevel");
    // Lambda filters by level only for JSON logs.
    assert_eq!(text(&logging["LogFormat"]), "JSON");
    for (name, f) in template_functions() {
        let own = &f.properties["LoggingConfig"];
        assert_eq!(text(&own["LogGroup"]), format!("!Ref {}LogGroup", f.logical_id.trim_end_matches("Function")));
        assert!(own["ApplicationLogLevel"].is_null() && own["SystemLogLevel"].is_null(), "{name}: levels from Globals");
        assert!(own["LogFormat"].is_null() || text(&own["LogFormat"]) == "JSON", "{name}");
    }
    let prod = samconfig_overrides("prod");
    assert_eq!(prod.get("ApplicationLogLevel").map(String::as_str), Some("WARN"));
    assert_eq!(prod.get("SystemLogLevel").map(String::as_str), Some("WARN"));
}

#[test]
fn functions_that_call_providers_refuse_private_addresses_and_honour_provider_hosts() {
    let t = template();
    let callers = ["oauth", "token-fetch", "token-refresh", "admin"];
    for (name, f) in template_functions() {
        let env = environment(&t, &f.logical_id);
        if callers.contains(&name.as_str()) {
            assert_eq!(env.get("OUTBOUND_ALLOW_PRIVATE").map(String::as_str), Some("false"), "{name}");
            assert_eq!(env.get("PROVIDER_HOSTS").map(String::as_str), Some("!Ref ProviderHosts"), "{name}");
        } else {
            assert!(env.get("OUTBOUND_ALLOW_PRIVATE").is_none_or(|v| v == "false"), "{name}");
        }
    }
    assert_eq!(default_of(&t, "ProviderHosts"), "");
}
