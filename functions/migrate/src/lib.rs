//! The `migrate` function (DESIGN §6.12): a CloudFormation custom resource and a direct
//! invoke `{"action": "status" | "up"}`.
//!
//! The rule that matters here: a custom resource must always get an answer at its
//! `ResponseURL`, before the Lambda deadline, or the stack hangs for an hour. So the work
//! runs under a timeout that leaves room to send the answer, and every failure (database
//! down, drift, a bad statement) becomes a FAILED answer with the reason.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use shared::{Context, migrations, provision, roles};

/// The function's name.
pub const FUNCTION: &str = "migrate";

/// Time kept back from the deadline to send the custom-resource answer.
const ANSWER_MARGIN: Duration = Duration::from_secs(5);
/// The physical id of the one schema this resource manages.
const PHYSICAL_ID: &str = "keyledger-schema";
/// CloudFormation refuses answers over 4 KiB; the reason is cut well below that.
const MAX_REASON: usize = 1000;

/// A CloudFormation custom-resource request (the fields used here).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CustomResourceRequest {
    /// `Create`, `Update` or `Delete`.
    pub request_type: String,
    /// Pre-signed S3 URL that receives the answer.
    #[serde(rename = "ResponseURL")]
    pub response_url: String,
    /// Stack ARN.
    pub stack_id: String,
    /// Request id.
    pub request_id: String,
    /// Logical id in the template.
    pub logical_resource_id: String,
    /// Present on Update and Delete.
    pub physical_resource_id: Option<String>,
    /// The template's properties; `SchemaHash`, when not empty, must equal this build's.
    /// Every input migrate depends on (database target, TLS mode, secret ARNs, role
    /// prefix) is a property too, so that changing one re-runs the resource.
    #[serde(default)]
    pub resource_properties: Value,
    /// On Update: the properties before the change. A rollback is an Update whose *old*
    /// properties carry this build's hash.
    #[serde(default)]
    pub old_resource_properties: Option<Value>,
}

/// The answer PUT to `ResponseURL`.
#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct CustomResourceResponse {
    /// `SUCCESS` or `FAILED`.
    pub status: String,
    /// Why, for FAILED (shown in the stack events).
    pub reason: String,
    /// The resource's physical id.
    pub physical_resource_id: String,
    /// Echoed.
    pub stack_id: String,
    /// Echoed.
    pub request_id: String,
    /// Echoed.
    pub logical_resource_id: String,
    /// `{"SchemaVersion": N}` on success.
    pub data: Value,
}

/// Handles one invocation; `deadline` is the Lambda deadline.
pub async fn handle(
    ctx: &Context,
    http: &reqwest::Client,
    event: Value,
    deadline: SystemTime,
) -> Result<Value, String> {
    if event.get("RequestType").is_some() {
        let request: CustomResourceRequest =
            serde_json::from_value(event).map_err(|e| format!("not a custom-resource request: {e}"))?;
        let response = custom_resource(ctx, &request, deadline).await;
        send_answer(http, &request.response_url, &response, deadline).await?;
        return serde_json::to_value(&response).map_err(|e| e.to_string());
    }
    match event.get("action").and_then(Value::as_str) {
        Some("status") => {
            let client = ctx.db().get().await.map_err(|e| e.to_string())?;
            let status = migrations::status(&client).await.map_err(|e| e.to_string())?;
            Ok(json!(status))
        }
        Some("up") => up(ctx).await.map(|r| json!(r)),
        _ => Err(r#"expected a CloudFormation custom-resource event or {"action": "status" | "up"}"#.into()),
    }
}

/// What `up` did: migrations, then the key ring and the per-function database roles.
#[derive(Debug, Serialize)]
pub struct UpOutcome {
    /// The migrations applied and the schema version.
    #[serde(flatten)]
    pub migrations: migrations::UpReport,
    /// The key ring secret's state.
    pub key_ring: provision::KeyRingState,
    /// The license signing-key secret's state.
    pub signing_keys: provision::KeyRingState,
    /// The roles applied; `null` when `ROLE_SECRET_IDS` is not set (local development).
    pub roles: Option<Vec<roles::AppliedRole>>,
}

async fn up(ctx: &Context) -> Result<UpOutcome, String> {
    let key_ring = provision::ensure_key_ring(ctx).await.map_err(|e| e.to_string())?;
    let signing_keys = provision::ensure_signing_keys(ctx).await.map_err(|e| e.to_string())?;
    let mut client = ctx.db().get().await.map_err(|e| e.to_string())?;
    let report = migrations::up(&mut client).await.map_err(|e| e.to_string())?;
    // After the migrations: the grants name tables they create.
    let roles = roles::apply_configured(ctx, &mut client).await.map_err(|e| e.to_string())?;
    Ok(UpOutcome { migrations: report, key_ring, signing_keys, roles })
}

/// Refuses a template that was deployed with the hash of another schema (a stale
/// `SchemaHash` parameter); an empty or absent hash is not checked.
fn check_schema_hash(properties: &Value) -> Result<(), String> {
    match properties.get("SchemaHash").and_then(Value::as_str).map(str::trim) {
        None | Some("") => Ok(()),
        Some(given) if given == roles::schema_hash() => Ok(()),
        Some(given) => Err(format!(
            "the template's SchemaHash is {given} but this migrate build applies {}; deploy with \
             SchemaHash=$(keyledger migrate hash) (scripts/deploy does)",
            roles::schema_hash()
        )),
    }
}

fn hash_of(properties: &Value) -> Option<&str> {
    properties.get("SchemaHash").and_then(Value::as_str).map(str::trim).filter(|h| !h.is_empty())
}

/// True for the Update that CloudFormation sends when it rolls a deploy of this build back:
/// the old properties name this build's schema, the new ones another (older) one. Migrations
/// only go forward, and the older code was written for a schema this build's is compatible
/// with (expand first, contract later), so the answer is SUCCESS and nothing is touched.
/// Answering FAILED here would leave the stack in `UPDATE_ROLLBACK_FAILED`.
pub fn is_rollback(request: &CustomResourceRequest) -> bool {
    let own = roles::schema_hash();
    request.request_type == "Update"
        && request.old_resource_properties.as_ref().and_then(hash_of) == Some(own.as_str())
        && hash_of(&request.resource_properties).is_some_and(|new| new != own)
}

/// The schema version as it stands, for a rollback's answer (read only; the latest this
/// build knows when the database cannot be read, since nothing was changed either way).
async fn current_version(ctx: &Context) -> i32 {
    match ctx.db().get().await {
        Ok(client) => migrations::status(&client).await.map_or(migrations::latest_version(), |s| s.schema_version),
        Err(_) => migrations::latest_version(),
    }
}

/// Runs the requested operation and builds the answer; never fails, never outlives the deadline.
pub async fn custom_resource(
    ctx: &Context,
    request: &CustomResourceRequest,
    deadline: SystemTime,
) -> CustomResourceResponse {
    let physical_resource_id = request.physical_resource_id.clone().unwrap_or_else(|| PHYSICAL_ID.to_owned());
    let outcome = match request.request_type.as_str() {
        // The schema outlives the stack: deleting the resource must never drop data.
        "Delete" => Ok(json!({})),
        "Update" if is_rollback(request) => {
            tracing::warn!("rollback to an older schema hash: migrations only go forward, nothing changed");
            Ok(json!({"SchemaVersion": current_version(ctx).await}))
        }
        "Create" | "Update" => {
            let budget = deadline.duration_since(SystemTime::now()).unwrap_or_default().saturating_sub(ANSWER_MARGIN);
            let work = async {
                check_schema_hash(&request.resource_properties)?;
                up(ctx).await
            };
            match tokio::time::timeout(budget, work).await {
                Ok(Ok(outcome)) => Ok(json!({"SchemaVersion": outcome.migrations.schema_version})),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(format!("migrations did not finish within {}s of the Lambda deadline", budget.as_secs())),
            }
        }
        other => Err(format!("unknown RequestType '{other}'")),
    };
    let (status, reason, data) = match outcome {
        Ok(data) => ("SUCCESS", String::new(), data),
        Err(reason) => {
            tracing::error!(%reason, request_type = %request.request_type, "custom resource failed");
            ("FAILED", reason.chars().take(MAX_REASON).collect(), json!({}))
        }
    };
    CustomResourceResponse {
        status: status.into(),
        reason,
        physical_resource_id,
        stack_id: request.stack_id.clone(),
        request_id: request.request_id.clone(),
        logical_resource_id: request.logical_resource_id.clone(),
        data,
    }
}

/// PUTs the answer with no content type (the pre-signed URL is signed without one).
async fn send_answer(
    http: &reqwest::Client,
    url: &str,
    response: &CustomResourceResponse,
    deadline: SystemTime,
) -> Result<(), String> {
    let body = serde_json::to_vec(response).map_err(|e| e.to_string())?;
    let budget = deadline.duration_since(SystemTime::now()).unwrap_or_default().max(Duration::from_secs(1));
    let mut last_error = String::new();
    for attempt in 0..3 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
        }
        let sent = http.put(url).body(body.clone()).timeout(budget.min(Duration::from_secs(10))).send().await;
        match sent {
            Ok(r) if r.status().is_success() => {
                tracing::info!(status = %response.status, "custom resource answered");
                return Ok(());
            }
            Ok(r) => last_error = format!("ResponseURL answered {}", r.status()),
            Err(e) => last_error = format!("ResponseURL unreachable: {e}"),
        }
    }
    tracing::error!(error = %last_error, "custom resource answer not delivered");
    Err(last_error)
}
