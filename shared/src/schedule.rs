//! The EventBridge "Scheduled Event" that triggers keyledger's periodic functions
//! (`token-refresh`, `events-relay`, the request-log upkeep).
//!
//! Owns only recognising and describing the trigger for the logs: a scheduled run needs
//! nothing from its payload, and a manual invoke (`{}` from `cargo lambda invoke` or the
//! console) must work the same way.

use serde_json::Value;

/// What started a periodic run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// An EventBridge schedule (`source: aws.events`, `detail-type: Scheduled Event`), by event id.
    Schedule(String),
    /// Anything else: a manual or test invoke.
    Manual,
}

impl Trigger {
    /// Recognises the scheduled event in a raw Lambda payload.
    pub fn of(event: &Value) -> Self {
        let scheduled = event.get("source").and_then(Value::as_str) == Some("aws.events")
            && event.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event");
        match event.get("id").and_then(Value::as_str) {
            Some(id) if scheduled => Self::Schedule(id.to_owned()),
            _ => Self::Manual,
        }
    }

    /// The event id of a scheduled run, `-` otherwise (for log fields).
    pub fn id(&self) -> &str {
        match self {
            Self::Schedule(id) => id,
            Self::Manual => "-",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_fixture_is_a_schedule_and_anything_else_is_manual() {
        let fixture: Value = serde_json::from_str(include_str!("../../tests/fixtures/schedule.json")).unwrap();
        assert_eq!(Trigger::of(&fixture), Trigger::Schedule("53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa".into()));
        assert_eq!(Trigger::of(&serde_json::json!({})), Trigger::Manual);
        assert_eq!(Trigger::of(&serde_json::json!({"source": "aws.events", "id": "x"})), Trigger::Manual);
    }
}
