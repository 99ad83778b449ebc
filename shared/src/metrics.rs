//! CloudWatch metrics as Embedded Metric Format: one JSON line on stdout that CloudWatch
//! Logs turns into metrics, so alarms need no extra API calls from the function.
//!
//! Owns the EMF shape, namespace `keyledger` and the `Function` dimension. Never blocks and
//! never fails the caller: a metric that cannot be written is dropped.

use serde_json::{Map, Value, json};

/// The namespace every keyledger metric is published under.
pub const NAMESPACE: &str = "keyledger";

/// One metric value with its CloudWatch unit (`Count`, `Seconds`, `Milliseconds`).
pub struct Metric<'a> {
    /// Metric name, e.g. `RelayLagSeconds`.
    pub name: &'a str,
    /// Value.
    pub value: f64,
    /// CloudWatch unit.
    pub unit: &'a str,
}

/// The EMF document for `metrics` of `function`, stamped `timestamp_ms`.
pub fn document(function: &str, metrics: &[Metric<'_>], timestamp_ms: i64) -> Value {
    let definitions: Vec<Value> = metrics.iter().map(|m| json!({"Name": m.name, "Unit": m.unit})).collect();
    let mut root = Map::new();
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{"Namespace": NAMESPACE, "Dimensions": [["Function"]], "Metrics": definitions}],
        }),
    );
    root.insert("Function".into(), Value::String(function.to_owned()));
    for m in metrics {
        root.insert(m.name.into(), json!(m.value));
    }
    Value::Object(root)
}

/// Writes the EMF line for `metrics` to stdout (CloudWatch Logs on Lambda).
pub fn emit(function: &str, metrics: &[Metric<'_>]) {
    let line = document(function, metrics, chrono::Utc::now().timestamp_millis());
    println!("{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_declares_every_metric_with_the_function_dimension() {
        let doc = document(
            "events-relay",
            &[Metric { name: "RelayLagSeconds", value: 2.5, unit: "Seconds" }],
            1_700_000_000_000,
        );
        assert_eq!(doc["_aws"]["CloudWatchMetrics"][0]["Namespace"], "keyledger");
        assert_eq!(doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([["Function"]]));
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Metrics"][0],
            json!({"Name": "RelayLagSeconds", "Unit": "Seconds"})
        );
        assert_eq!(doc["RelayLagSeconds"], 2.5);
        assert_eq!(doc["Function"], "events-relay");
    }
}
