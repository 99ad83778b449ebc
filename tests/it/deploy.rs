//! The deploy artefacts tell the truth about the code (issue 9): every function crate is in
//! `template.yaml` and every template function has a crate; every route the HTTP API sends to
//! a function is one its router serves, and every route a router serves is in the API; each
//! schedule and queue reaches a function that handles such events; each function reads only
//! its own secrets; the alarms watch metrics that exist; `cfn-lint` and `sam validate --lint`
//! find nothing. (`sam build` for arm64 is the last step of `scripts/test`.)
//!
//! Routes are read from the function crates' source (`.route("/path", get(..).post(..))`),
//! since an axum `Router` cannot list them.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use serde_yaml::Value;
use shared::roles;

pub(crate) fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub(crate) fn template() -> Value {
    let text = fs::read_to_string(root().join("template.yaml")).expect("template.yaml at the workspace root");
    serde_yaml::from_str(&text).expect("template.yaml is YAML")
}

/// A CloudFormation short-form tag (`!Ref X`) or plain value, as text.
pub(crate) fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Tagged(t) => format!("{} {}", t.tag, text(&t.value)),
        Value::Sequence(items) => items.iter().map(text).collect::<Vec<_>>().join(" "),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Mapping(m) => m.iter().map(|(k, v)| format!("{}={}", text(k), text(v))).collect::<Vec<_>>().join(" "),
        Value::Null => String::new(),
    }
}

#[derive(Debug, Default)]
pub(crate) struct TemplateFunction {
    pub(crate) logical_id: String,
    pub(crate) properties: Value,
    pub(crate) depends_on: Vec<String>,
    pub(crate) routes: BTreeSet<(String, String)>,
    pub(crate) schedules: Vec<String>,
    pub(crate) sqs: Vec<Value>,
}

/// Every `AWS::Serverless::Function`, by its `Binary`.
pub(crate) fn template_functions() -> BTreeMap<String, TemplateFunction> {
    let t = template();
    let mut out = BTreeMap::new();
    for (id, resource) in t["Resources"].as_mapping().unwrap() {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let id = id.as_str().unwrap().to_owned();
        assert_eq!(resource["Metadata"]["BuildMethod"].as_str(), Some("rust-cargolambda"), "{id}");
        let binary = resource["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .unwrap_or_else(|| panic!("{id}: Metadata.BuildProperties.Binary"))
            .to_owned();
        let mut f = TemplateFunction {
            logical_id: id.clone(),
            properties: resource["Properties"].clone(),
            depends_on: match &resource["DependsOn"] {
                Value::String(s) => vec![s.clone()],
                Value::Sequence(items) => items.iter().map(text).collect(),
                _ => vec![],
            },
            ..Default::default()
        };
        if let Some(events) = resource["Properties"]["Events"].as_mapping() {
            for (name, event) in events {
                let p = &event["Properties"];
                match event["Type"].as_str().unwrap() {
                    "HttpApi" => {
                        let route = (p["Method"].as_str().unwrap().to_uppercase(), p["Path"].as_str().unwrap().into());
                        assert!(f.routes.insert(route), "{id}: route {name:?} twice");
                    }
                    "Schedule" | "ScheduleV2" => {
                        f.schedules.push(p["Schedule"].as_str().or(p["ScheduleExpression"].as_str()).unwrap().into())
                    }
                    "SQS" => f.sqs.push(p.clone()),
                    other => panic!("{id}: event {name:?} of type {other} has no check here"),
                }
            }
        }
        assert!(out.insert(binary.clone(), f).is_none(), "two functions build binary {binary}");
    }
    out
}

/// Function crates in `functions/` (directory = package = binary name).
fn crates() -> BTreeSet<String> {
    fs::read_dir(root().join("functions"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.path().join("Cargo.toml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

fn sources(dir: &Path, out: &mut String) {
    for entry in fs::read_dir(dir).unwrap().filter_map(Result::ok) {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push_str(&fs::read_to_string(&path).unwrap());
            out.push('\n');
        }
    }
}

/// All Rust source of one function crate.
fn crate_source(name: &str) -> String {
    let mut out = String::new();
    sources(&root().join("functions").join(name).join("src"), &mut out);
    out
}

const METHODS: [&str; 8] = ["get", "post", "put", "patch", "delete", "head", "options", "any"];

/// `(METHOD, path)` of every `.route("/path", get(..).post(..))` in `source`.
fn routes_in(source: &str) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    let mut rest = source;
    while let Some(at) = rest.find(".route(") {
        rest = &rest[at + ".route(".len()..];
        let trimmed = rest.trim_start();
        let Some(literal) = trimmed.strip_prefix('"') else { continue };
        let Some(end) = literal.find('"') else { break };
        let path = literal[..end].to_owned();
        // The method router: up to the parenthesis that closes `.route(`.
        let body = &literal[end + 1..];
        let mut depth = 1usize;
        let mut close = body.len();
        for (i, c) in body.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        close = i;
                        break;
                    }
                }
                _ => {}
            }
        }
        let router = &body[..close];
        let bytes = router.as_bytes();
        for method in METHODS {
            let mut from = 0;
            while let Some(i) = router[from..].find(method) {
                let i = from + i;
                from = i + method.len();
                let before_ok = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
                let after_ok = router[from..].trim_start().starts_with('(');
                if before_ok && after_ok {
                    out.insert((method.to_uppercase(), path.clone()));
                }
            }
        }
    }
    out
}

/// `{id}` → `{}`, greedy `{proxy+}` / `{*rest}` → `{+}`: the shapes both sides can compare.
fn normalise(path: &str) -> String {
    path.split('/')
        .map(|seg| match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(p) if p.ends_with('+') || p.starts_with('*') => "{+}".to_owned(),
            Some(_) => "{}".to_owned(),
            None => seg.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Does route `a` (method, path) answer the concrete-or-pattern route `b`?
fn covers(a: &(String, String), b: &(String, String)) -> bool {
    let methods = a.0 == b.0 || a.0 == "ANY" || b.0 == "ANY";
    let (pa, pb) = (normalise(&a.1), normalise(&b.1));
    methods
        && (pa == pb || pa.strip_suffix("{+}").is_some_and(|prefix| pb.starts_with(prefix) && pb.len() > prefix.len()))
}

#[test]
fn route_parsing_reads_method_chains_and_ignores_look_alikes() {
    let src = r#"Router::new()
        .route("/v1/api-keys", post(create_api_key).get(list_api_keys))
        .route( "/v1/api-keys/{id}", delete(revoke).layer(x(get_limit)))
        .route("/health", axum::routing::get(shared::health::health).with_state(ctx))
        .route_service("/static", svc)"#;
    let found = routes_in(src);
    let expected: BTreeSet<(String, String)> =
        [("POST", "/v1/api-keys"), ("GET", "/v1/api-keys"), ("DELETE", "/v1/api-keys/{id}"), ("GET", "/health")]
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
    assert_eq!(found, expected);
    let r = |m: &str, p: &str| (m.to_owned(), p.to_owned());
    assert!(covers(&r("GET", "/admin/{proxy+}"), &r("GET", "/admin/licenses")));
    assert!(!covers(&r("GET", "/admin/{proxy+}"), &r("GET", "/admin")));
    assert!(covers(&r("GET", "/v1/tokens/{connection_id}"), &r("GET", "/v1/tokens/{id}")));
    assert!(!covers(&r("POST", "/v1/tokens/{id}"), &r("GET", "/v1/tokens/{id}")));
}

#[test]
fn every_template_function_has_a_crate() {
    let crates = crates();
    let missing: Vec<String> = template_functions().into_keys().filter(|name| !crates.contains(name)).collect();
    assert!(missing.is_empty(), "template.yaml builds functions with no crate in functions/: {missing:?}");
}

#[test]
fn every_function_crate_is_in_the_template_built_the_same_way() {
    let functions = template_functions();
    for name in crates() {
        let f = functions
            .get(&name)
            .unwrap_or_else(|| panic!("functions/{name} is not in template.yaml (BuildProperties.Binary: {name})"));
        let manifest: manifest::Manifest = manifest::read(&root().join("functions").join(&name));
        assert_eq!(manifest.package, name, "functions/{name}: package name = directory name");
        assert!(manifest.bins.contains(&name), "functions/{name}: a [[bin]] named {name}");
        assert_eq!(text(&f.properties["CodeUri"]), ".", "{name}: built from the workspace root");
        assert!(f.properties["Timeout"].as_u64().is_some() && f.properties["MemorySize"].as_u64().is_some(), "{name}");
    }
    let globals = &template()["Globals"]["Function"];
    assert_eq!(globals["Runtime"].as_str(), Some("provided.al2023"));
    assert_eq!(globals["Architectures"][0].as_str(), Some("arm64"));
    assert_eq!(globals["Handler"].as_str(), Some("bootstrap"));
}

/// A minimal reader of the two facts needed from a function's Cargo.toml.
mod manifest {
    use std::path::Path;

    pub struct Manifest {
        pub package: String,
        pub bins: Vec<String>,
    }

    pub fn read(dir: &Path) -> Manifest {
        let text = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        let mut section = String::new();
        let (mut package, mut bins) = (String::new(), Vec::new());
        for line in text.lines().map(str::trim) {
            if line.starts_with('[') {
                section = line.to_owned();
                continue;
            }
            if let Some(value) = line.strip_prefix("name").map(str::trim).and_then(|l| l.strip_prefix('=')) {
                let value = value.trim().trim_matches('"').to_owned();
                match section.as_str() {
                    "[package]" => package = value,
                    "[[bin]]" => bins.push(value),
                    _ => {}
                }
            }
        }
        if bins.is_empty() && dir.join("src/main.rs").is_file() {
            bins.push(package.clone());
        }
        Manifest { package, bins }
    }
}

#[test]
fn every_api_route_reaches_a_handler_and_every_handler_is_routed() {
    let functions = template_functions();
    let crates = crates();
    let mut problems = Vec::new();
    let mut seen = BTreeMap::new();
    for (name, f) in &functions {
        for route in &f.routes {
            if let Some(other) = seen.insert(route.clone(), name.clone()) {
                problems.push(format!("{} {} is routed to both {other} and {name}", route.0, route.1));
            }
        }
        if !crates.contains(name) {
            continue; // reported by every_template_function_has_a_crate
        }
        let served = routes_in(&crate_source(name));
        for route in &f.routes {
            if !served.iter().any(|s| covers(route, s)) {
                problems.push(format!(
                    "API route {} {} -> {name}: functions/{name} serves no such route",
                    route.0, route.1
                ));
            }
        }
        for route in &served {
            // Every HTTP function answers /health; the API routes it to one of them.
            if route.1 == "/health" && !f.routes.contains(route) {
                continue;
            }
            if !f.routes.iter().any(|r| covers(r, route)) {
                problems.push(format!(
                    "functions/{name} serves {} {} but the API does not route it there",
                    route.0, route.1
                ));
            }
        }
    }
    for name in crates.iter().filter(|n| !functions.contains_key(*n)) {
        problems.push(format!("functions/{name} is not in the template"));
    }
    assert!(problems.is_empty(), "{} problem(s):\n{}", problems.len(), problems.join("\n"));
}

/// Source markers of a handler for each non-HTTP event source.
const SQS_MARKERS: [&str; 3] = ["SqsEvent", "batchItemFailures", "batch_item_failures"];
const SCHEDULE_MARKERS: [&str; 6] =
    ["EventBridgeEvent", "CloudWatchEvent", "Scheduled Event", "aws.events", "ScheduledEvent", "schedule::Trigger"];

#[test]
fn every_schedule_and_queue_reaches_a_function_that_handles_it() {
    let functions = template_functions();
    let mut problems = Vec::new();
    let expected: BTreeMap<&str, (usize, usize)> =
        BTreeMap::from([("token-refresh", (1, 0)), ("request-log", (1, 1)), ("events-relay", (1, 0))]);
    for (name, f) in &functions {
        let (schedules, queues) = expected.get(name.as_str()).copied().unwrap_or((0, 0));
        if (f.schedules.len(), f.sqs.len()) != (schedules, queues) {
            problems.push(format!(
                "{name}: {} schedule(s) and {} queue(s), DESIGN §3 says {schedules} and {queues}",
                f.schedules.len(),
                f.sqs.len()
            ));
        }
        for sqs in &f.sqs {
            if !text(&sqs["FunctionResponseTypes"]).contains("ReportBatchItemFailures") {
                problems.push(format!("{name}: the SQS source must report partial batch failures"));
            }
        }
        let Some(source) = crates().contains(name).then(|| crate_source(name)) else { continue };
        let handles_sqs = SQS_MARKERS.iter().any(|m| source.contains(m));
        // A scheduled event is recognised by its shape, or taken by a handler of any JSON
        // event that has no other trigger (token-refresh, events-relay: every event is a tick).
        let takes_any_json =
            ["LambdaEvent<Value>", "LambdaEvent<serde_json::Value>"].iter().any(|m| source.contains(m))
                && f.routes.is_empty()
                && f.sqs.is_empty();
        let handles_schedule = takes_any_json || SCHEDULE_MARKERS.iter().any(|m| source.contains(m));
        if !f.sqs.is_empty() && !handles_sqs {
            problems.push(format!("{name} gets an SQS queue but its source handles no SqsEvent"));
        }
        if f.sqs.is_empty() && handles_sqs {
            problems.push(format!("functions/{name} handles SQS events but the template gives it no queue"));
        }
        if !f.schedules.is_empty() && !handles_schedule {
            problems
                .push(format!("{name} is scheduled but its source handles no scheduled event ({SCHEDULE_MARKERS:?})"));
        }
    }
    let schedules: BTreeMap<&str, Vec<String>> =
        functions.iter().map(|(n, f)| (n.as_str(), f.schedules.clone())).collect();
    assert_eq!(schedules.get("token-refresh"), Some(&vec!["rate(5 minutes)".to_owned()]));
    assert_eq!(schedules.get("events-relay"), Some(&vec!["rate(1 minute)".to_owned()]));
    assert_eq!(schedules.get("request-log"), Some(&vec!["rate(1 day)".to_owned()]));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_schema_resource_runs_migrate_before_every_other_function() {
    let t = template();
    let schema = &t["Resources"]["DatabaseSchema"];
    assert_eq!(schema["Type"].as_str(), Some("Custom::DatabaseSchema"));
    assert_eq!(text(&schema["Properties"]["ServiceToken"]), "!GetAtt MigrateFunction.Arn");
    assert_eq!(text(&schema["Properties"]["SchemaHash"]), "!Ref SchemaHash");
    assert_eq!(text(&schema["Properties"]["MigrateVersion"]), "!Ref MigrateFunction.Version");
    assert!(crate_source("migrate").contains("RequestType"), "migrate handles custom-resource events");
    for (name, f) in template_functions() {
        if name != "migrate" {
            assert!(f.depends_on.contains(&"DatabaseSchema".to_owned()), "{name} must DependsOn DatabaseSchema");
        }
    }
}

/// Names of secrets (logical ids, parameters, attributes) mentioned in `v`.
fn secret_names(v: &Value) -> BTreeSet<String> {
    text(v)
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '.'))
        .filter(|w| w.ends_with("Secret") || w.ends_with("SecretArn"))
        .map(str::to_owned)
        .collect()
}

/// Logical ids of the secrets a function's environment names.
fn secrets_in_environment(f: &TemplateFunction) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (key, value) in f.properties["Environment"]["Variables"].as_mapping().into_iter().flatten() {
        let key = key.as_str().unwrap();
        if key.ends_with("SECRET_ID") || key == "ROLE_SECRET_IDS" {
            out.extend(secret_names(value));
        }
    }
    out
}

/// The statements of a function's own IAM role.
fn role_statements(t: &Value, f: &TemplateFunction) -> Vec<Value> {
    let role = text(&f.properties["Role"]);
    let id = role
        .strip_prefix("!GetAtt ")
        .and_then(|r| r.strip_suffix(".Arn"))
        .unwrap_or_else(|| panic!("{}: Role: !GetAtt <its own role>.Arn, got {role}", f.logical_id));
    assert!(f.properties["Policies"].is_null(), "{}: permissions belong in its role", f.logical_id);
    let policies = t["Resources"][id]["Properties"]["Policies"].as_sequence().unwrap();
    assert_eq!(policies.len(), 1, "{id}: one policy");
    policies[0]["PolicyDocument"]["Statement"].as_sequence().unwrap().clone()
}

#[test]
fn each_function_has_its_own_role_that_reads_only_its_own_secrets() {
    let t = template();
    let functions = template_functions();
    let mut roles_seen = BTreeSet::new();
    let mut db_secret_owner: BTreeMap<String, String> = BTreeMap::new();
    for (name, f) in &functions {
        assert!(roles_seen.insert(text(&f.properties["Role"])), "{name} shares its role");
        let statements = role_statements(&t, f);
        let mut reads = BTreeSet::new();
        for s in &statements {
            let (sid, action, resource) = (text(&s["Sid"]), text(&s["Action"]), text(&s["Resource"]));
            // The only wildcard: Lambda's network interfaces in the VPC, which EC2 cannot scope.
            if resource.contains('*') {
                assert_eq!(sid, "VpcNetworkInterfaces", "{name}: {sid} has a wildcard resource ({resource})");
                assert!(
                    action.split(' ').all(|a| a.starts_with("ec2:") && a.contains("NetworkInterface")
                        || a == "ec2:DescribeSubnets"
                        || a.ends_with("PrivateIpAddresses")),
                    "{name}: {action}"
                );
            }
            if action.contains("logs:") {
                assert_eq!(
                    resource,
                    format!("!GetAtt {}LogGroup.Arn", f.logical_id.trim_end_matches("Function")),
                    "{name}: its own log group only"
                );
            }
            if action == "secretsmanager:GetSecretValue" {
                reads.extend(secret_names(&s["Resource"]));
            }
        }
        let given = secrets_in_environment(f);
        assert_eq!(reads, given, "{name}: may read {reads:?} but is given {given:?}");
        if name != "migrate" {
            let db = text(&f.properties["Environment"]["Variables"]["DB_SECRET_ID"]);
            let db = db.trim_start_matches("!Ref ").to_owned();
            assert!(db.ends_with("DbSecret"), "{name}: its own role secret, not the owner's: {db}");
            if let Some(other) = db_secret_owner.insert(db.clone(), name.clone()) {
                panic!("{db} is used by {other} and {name}");
            }
        }
    }
    // migrate hands each function's secret to exactly that function's role.
    let migrate = &functions["migrate"];
    let role_ids = text(&migrate.properties["Environment"]["Variables"]["ROLE_SECRET_IDS"]);
    for g in roles::GRANTS {
        assert!(role_ids.contains(&format!("\"{}\": ", g.function)), "ROLE_SECRET_IDS lacks {}", g.function);
        let owner = functions.get(g.function).map(|f| f.logical_id.trim_end_matches("Function").to_owned());
        if let Some(prefix) = owner {
            assert_eq!(db_secret_owner.get(&format!("{prefix}DbSecret")).map(String::as_str), Some(g.function));
        }
    }
}

#[test]
fn the_alarms_watch_metrics_that_are_emitted() {
    let t = template();
    let mut watched = BTreeMap::new();
    for (_, r) in t["Resources"].as_mapping().unwrap() {
        if r["Type"].as_str() == Some("AWS::CloudWatch::Alarm") {
            let p = &r["Properties"];
            watched.insert(
                text(&p["MetricName"]),
                (text(&p["Namespace"]), text(&p["Dimensions"][0]["Name"]), text(&p["Dimensions"][0]["Value"])),
            );
        }
    }
    for (metric, function) in [
        ("RefreshFailed", "token-refresh"),
        ("ReauthorizationRequired", "token-refresh"),
        ("RelayLagSeconds", "events-relay"),
    ] {
        assert_eq!(
            watched.get(metric),
            Some(&("keyledger".to_owned(), "Function".to_owned(), function.to_owned())),
            "{metric}"
        );
        if crates().contains(function) {
            let source = crate_source(function) + &shared_source();
            assert!(source.contains(metric), "nothing emits {metric} (namespace keyledger, dimension Function)");
        }
    }
    assert!(watched.contains_key("ApproximateNumberOfMessagesVisible"), "DLQ depth");
    for (name, f) in template_functions() {
        for metric in ["Errors", "Throttles"] {
            let id = format!("{}{metric}Alarm", f.logical_id.trim_end_matches("Function"));
            assert!(t["Resources"][id.as_str()].is_mapping(), "{name}: no {metric} alarm ({id})");
        }
    }
}

fn shared_source() -> String {
    let mut out = String::new();
    sources(&root().join("shared/src"), &mut out);
    out
}

#[test]
fn the_deploy_guide_documents_every_parameter_and_the_grants() {
    let guide = fs::read_to_string(root().join("docs/deploy.md")).expect("docs/deploy.md");
    for (name, _) in template()["Parameters"].as_mapping().unwrap() {
        let name = name.as_str().unwrap();
        assert!(guide.contains(&format!("`{name}`")), "docs/deploy.md does not explain parameter `{name}`");
    }
    assert!(
        guide.contains(&roles::markdown_table()),
        "docs/deploy.md's grants table differs from shared/src/roles.rs; paste `keyledger roles show`:\n{}",
        roles::markdown_table()
    );
}

#[test]
fn the_cli_prints_the_schema_hash_migrate_checks() {
    let out = Command::new(env!("CARGO_BIN_EXE_keyledger")).args(["migrate", "hash"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), roles::schema_hash());
}

/// A tool installed by `scripts/test` into the deploy virtualenv (`KEYLEDGER_DEPLOY_BIN`).
pub(crate) fn deploy_tool(name: &str) -> Command {
    let bin = std::env::var("KEYLEDGER_DEPLOY_BIN").unwrap_or_else(|_| {
        panic!("KEYLEDGER_DEPLOY_BIN is not set: run the suite with scripts/test, which installs {name}")
    });
    let mut cmd = Command::new(Path::new(&bin).join(name));
    cmd.current_dir(root())
        .env("SAM_CLI_TELEMETRY", "0")
        .env("AWS_DEFAULT_REGION", "eu-west-1")
        .env("AWS_REGION", "eu-west-1");
    cmd
}

#[test]
fn cfn_lint_finds_nothing() {
    let out = deploy_tool("cfn-lint").arg("template.yaml").output().unwrap();
    assert!(
        out.status.success(),
        "cfn-lint template.yaml:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn sam_validate_lint_finds_nothing() {
    let out = deploy_tool("sam").args(["validate", "--lint", "--template-file", "template.yaml"]).output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.contains("is a valid SAM Template"), "sam validate --lint:\n{said}");
}

#[test]
fn only_license_validate_and_migrate_can_read_the_signing_ring() {
    // Signing keys never leave license-validate (DESIGN §6.15); migrate creates the ring once.
    let t = template();
    let functions = template_functions();
    let names_ring = |v: &Value| secret_names(v).iter().any(|s| s.contains("LicenseSigningKeys"));
    let function_of_role: BTreeMap<String, String> = functions
        .iter()
        .map(|(name, f)| {
            let role = text(&f.properties["Role"]);
            (role.trim_start_matches("!GetAtt ").trim_end_matches(".Arn").to_owned(), name.clone())
        })
        .collect();
    // Every IAM resource of the template, not only the functions' roles: a grant elsewhere
    // (a policy attached later, another role) must show up here too.
    let mut readers = BTreeSet::new();
    for (id, resource) in t["Resources"].as_mapping().unwrap() {
        let id = id.as_str().unwrap();
        if !resource["Type"].as_str().unwrap_or_default().starts_with("AWS::IAM::") {
            continue;
        }
        let p = &resource["Properties"];
        let documents = p["Policies"].as_sequence().into_iter().flatten().map(|p| &p["PolicyDocument"]);
        for document in documents.chain(std::iter::once(&p["PolicyDocument"])) {
            for s in document["Statement"].as_sequence().into_iter().flatten() {
                let action = text(&s["Action"]);
                let reads = action
                    .split(' ')
                    .any(|a| a == "*" || a == "secretsmanager:*" || a == "secretsmanager:GetSecretValue");
                if reads && names_ring(&s["Resource"]) {
                    readers.insert(function_of_role.get(id).cloned().unwrap_or_else(|| id.to_owned()));
                }
            }
        }
        assert!(!text(&p["ManagedPolicyArns"]).contains("SecretsManagerReadWrite"), "{id}");
    }
    let expected = BTreeSet::from(["license-validate".to_owned(), "migrate".to_owned()]);
    assert_eq!(readers, expected, "roles that can read the signing ring");
    let given: BTreeSet<String> = functions
        .iter()
        .filter(|(_, f)| secrets_in_environment(f).iter().any(|s| s.contains("LicenseSigningKeys")))
        .map(|(name, _)| name.clone())
        .collect();
    assert_eq!(given, expected, "functions whose environment names the signing ring");
    assert!(!names_ring(&t["Globals"]), "the ring is no global setting");
    // And no function gets the ring itself in its environment.
    for (name, f) in &functions {
        assert!(f.properties["Environment"]["Variables"]["LICENSE_SIGNING_KEYS"].is_null(), "{name}");
    }
}
