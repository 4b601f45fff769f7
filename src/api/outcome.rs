//! How a sync attempt or a connection check ended, as the status tells it.

use serde::{Deserialize, Serialize};
use std::fmt;

/// `Succeeded` or `Failed` in `lastSyncResult.result` and
/// `lastConnectionCheck.result`.
///
/// Any other value read back counts as `Failed`: the schema leaves the field
/// an open string, and one odd status must not make its object unreadable
/// (a watch that cannot decode an object stops for every object).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(from = "String")]
pub enum Outcome {
    Succeeded,
    #[default]
    Failed,
}

impl Outcome {
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "Succeeded",
            Outcome::Failed => "Failed",
        }
    }
}

impl From<String> for Outcome {
    fn from(s: String) -> Self {
        if s == Outcome::Succeeded.as_str() {
            Outcome::Succeeded
        } else {
            Outcome::Failed
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn serializes_to_the_status_strings() {
        assert_eq!(
            serde_json::to_value(Outcome::Succeeded).unwrap(),
            json!("Succeeded")
        );
        assert_eq!(
            serde_json::to_value(Outcome::Failed).unwrap(),
            json!("Failed")
        );
        assert_eq!(Outcome::Succeeded.to_string(), "Succeeded");
        assert_eq!(Outcome::Failed.to_string(), "Failed");
    }

    #[test]
    fn reads_back_what_it_wrote_and_anything_else_as_failed() {
        for o in [Outcome::Succeeded, Outcome::Failed] {
            let back: Outcome = serde_json::from_value(serde_json::to_value(o).unwrap()).unwrap();
            assert_eq!(back, o);
        }
        for other in ["", "succeeded", "Unknown"] {
            let read: Outcome = serde_json::from_value(json!(other)).unwrap();
            assert_eq!(read, Outcome::Failed, "{other:?}");
        }
    }

    #[test]
    fn status_fields_hold_the_plain_strings() {
        let sync = crate::api::space::SyncResult {
            result: Outcome::Succeeded,
            message: "ok".into(),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&sync).unwrap(),
            json!({
                "result": "Succeeded",
                "finishedAt": null,
                "durationSeconds": 0.0,
                "fetched": 0,
                "deleted": 0,
                "unchanged": 0,
                "leftOut": null,
                "keptUnconfirmed": null,
                "message": "ok",
            })
        );
        let check = crate::api::site::ConnectionCheck {
            time: None,
            result: Outcome::Failed,
            message: "no".into(),
        };
        assert_eq!(
            serde_json::to_value(&check).unwrap(),
            json!({ "time": null, "result": "Failed", "message": "no" })
        );
        let read: crate::api::site::ConnectionCheck =
            serde_json::from_value(json!({ "result": "Succeeded", "message": "" })).unwrap();
        assert_eq!(read.result, Outcome::Succeeded);
    }
}
