//! The stored form of a [`Run`]: its serde fields plus a layout version, and the upgrade of
//! older stored forms. Stores that keep runs as JSON (PostgreSQL) write and read runs
//! through it.

use serde_json::{Map, Value};

use super::Run;
use crate::error::{Error, Result};

/// Layout version of a stored run, written in it under [`RUN_STATE_VERSION_KEY`].
///
/// - 0: written before the version existed (no key); the fields of version 1.
/// - 1: the fields of [`Run`].
pub const RUN_STATE_VERSION: u32 = 1;

/// The key of the layout version in a stored run.
pub const RUN_STATE_VERSION_KEY: &str = "state_version";

impl Run {
    /// The run as stored: its serde form plus `"state_version": RUN_STATE_VERSION`.
    pub fn to_stored_json(&self) -> Result<Value> {
        let json = serde_json::to_value(self)
            .map_err(|e| Error::Internal(format!("run {} is not serializable: {e}", self.id)))?;
        let Value::Object(mut fields) = json else {
            return Err(Error::Internal(format!(
                "run {} did not serialize to an object",
                self.id
            )));
        };
        fields.insert(RUN_STATE_VERSION_KEY.into(), RUN_STATE_VERSION.into());
        Ok(Value::Object(fields))
    }

    /// Reads a stored run of any layout version up to [`RUN_STATE_VERSION`], upgrading
    /// older layouts. Fails with [`Error::Internal`] when the stored data is unreadable or
    /// was written by a newer release.
    pub fn from_stored_json(stored: Value) -> Result<Run> {
        let Value::Object(mut fields) = stored else {
            return Err(Error::Internal(
                "stored run is unreadable: not a JSON object".into(),
            ));
        };
        let id = fields
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string();
        let version = match fields.remove(RUN_STATE_VERSION_KEY) {
            None => 0,
            Some(v) => v
                .as_u64()
                .and_then(|v| u32::try_from(v).ok())
                .ok_or_else(|| Error::Internal(format!("stored run {id} has state version {v}")))?,
        };
        if version > RUN_STATE_VERSION {
            return Err(Error::Internal(format!(
                "stored run {id} has state version {version}; this release reads up to \
                 {RUN_STATE_VERSION}"
            )));
        }
        for upgrade in UPGRADES.iter().skip(version as usize) {
            upgrade(&mut fields);
        }
        serde_json::from_value(Value::Object(fields))
            .map_err(|e| Error::Internal(format!("stored run {id} is unreadable: {e}")))
    }
}

/// The upgrades of stored runs, in order: entry `n` rewrites layout `n` into `n + 1` (a new
/// layout bumps [`RUN_STATE_VERSION`] and appends its upgrade here).
const UPGRADES: [fn(&mut Map<String, Value>); RUN_STATE_VERSION as usize] = [
    // 0 → 1: only the version key is new.
    |_| {},
];

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::run::{GateSubject, RunStatus};
    use crate::ErrorKind;

    /// A paused run exactly as the PostgreSQL store and serde wrote it before the version
    /// existed.
    fn written_before_versions() -> Value {
        json!({
            "id": "0190f5a4-7c1e-7d2a-9b3c-4d5e6f708192",
            "workflow_id": "demo_ticket_triage_v1",
            "workflow_version": "1",
            "status": "paused",
            "mode": "draft",
            "input": {"hotel_id": "VV-LISBON"},
            "result": null,
            "error": null,
            "subject": {"tenant_id": "tenant:voulezvous", "user_id": "user:dan"},
            "app_action_id": null,
            "budget": {"llm_calls_limit": 4},
            "usage": {
                "llm_calls": 1, "tool_calls": 1, "input_tokens": 120,
                "cached_input_tokens": 0, "output_tokens": 30, "cost_cents": 0.5
            },
            "cursor": {
                "next_node": "triage",
                "step_index": 2,
                "last_output": {"tickets": []},
                "visits": {"gate": 1},
                "committed_step_events": 3
            },
            "pending_gate": {
                "gate_id": "tool:2:0:kv.delete",
                "subject": {
                    "kind": "tool_call", "tool_id": "kv.delete",
                    "args_digest": "ab12", "arguments": {"key": "a"}
                },
                "reason": "deletes need approval",
                "policy_id": "p-del",
                "requested_at": "2024-07-01T10:00:00.123456789Z"
            },
            "approvals": [{
                "gate_id": "run_start", "approver": "dan",
                "at": "2024-07-01T09:59:00Z"
            }],
            "version": 7,
            "created_at": "2024-07-01T09:58:00Z",
            "updated_at": "2024-07-01T10:00:00.123456789Z",
            "started_at": "2024-07-01T09:59:01Z"
        })
    }

    #[test]
    fn a_run_written_before_versions_loads() {
        let run = Run::from_stored_json(written_before_versions()).expect("loads");
        assert_eq!(run.status, RunStatus::Paused);
        assert_eq!(run.version, 7);
        assert_eq!(run.cursor.next_node.as_deref(), Some("triage"));
        assert_eq!(run.cursor.step_index, 2);
        assert_eq!(run.cursor.visits.get("gate"), Some(&1));
        assert_eq!(run.cursor.committed_step_events, 3);
        assert_eq!(run.usage.llm_calls, 1);
        assert_eq!(run.approvals.len(), 1);
        let gate = run.pending_gate.as_ref().expect("gate");
        assert!(matches!(gate.subject, GateSubject::ToolCall { .. }));
        assert_eq!(gate.requested_at.timestamp_subsec_nanos(), 123_456_789);

        // Written again it carries the version, and reads back the same.
        let stored = run.to_stored_json().expect("serializes");
        assert_eq!(stored[RUN_STATE_VERSION_KEY], json!(RUN_STATE_VERSION));
        let mut without_version = stored.clone();
        if let Value::Object(m) = &mut without_version {
            m.remove(RUN_STATE_VERSION_KEY);
        }
        assert_eq!(without_version, written_before_versions());
        assert_eq!(Run::from_stored_json(stored).ok(), Some(run));
    }

    #[test]
    fn newer_or_broken_stored_runs_are_internal_errors() {
        let mut newer = written_before_versions();
        newer[RUN_STATE_VERSION_KEY] = json!(RUN_STATE_VERSION + 1);
        let mut bad_version = written_before_versions();
        bad_version[RUN_STATE_VERSION_KEY] = json!("one");
        let mut missing = written_before_versions();
        if let Value::Object(m) = &mut missing {
            m.remove("cursor");
        }
        for stored in [newer, bad_version, missing, json!([1, 2])] {
            let err = Run::from_stored_json(stored).err().map(|e| e.kind());
            assert_eq!(err, Some(ErrorKind::Internal));
        }
    }
}
