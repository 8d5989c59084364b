//! Human gates: deterministic gate ids, approvals bound to the exact gate and arguments.

use chrono::Utc;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::run::{GateSubject, PendingGate, Run};

/// SHA-256 (hex) of the canonical JSON of `v` (object keys sorted, no whitespace).
pub fn digest(v: &Value) -> String {
    let mut out = String::new();
    canonical(v, &mut out);
    hex::encode(Sha256::digest(out.as_bytes()))
}

fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push(':');
                canonical(&m[k.as_str()], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// Whether `run` holds an approval for `gate_id` (and, for tool calls, these arguments).
pub(crate) fn approved(run: &Run, gate_id: &str, args_digest: Option<&str>) -> bool {
    run.approvals
        .iter()
        .any(|a| !a.refused && a.gate_id == gate_id && a.args_digest.as_deref() == args_digest)
}

/// Whether a person refused the call at `gate_id` (with these arguments): the run goes on
/// and the call is answered as refused.
pub(crate) fn refused(run: &Run, gate_id: &str, args_digest: &str) -> bool {
    run.approvals
        .iter()
        .any(|a| a.refused && a.gate_id == gate_id && a.args_digest.as_deref() == Some(args_digest))
}

/// A gate to pause at.
pub(crate) fn pending(
    gate_id: String,
    subject: GateSubject,
    reason: String,
    policy_id: Option<String>,
) -> PendingGate {
    PendingGate {
        gate_id,
        subject,
        reason,
        policy_id,
        required_role: None,
        forbid_self_approval: false,
        requested_at: Utc::now(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn digest_ignores_key_order_but_not_values() {
        assert_eq!(
            digest(&json!({"a": 1, "b": [1, {"y": 2, "x": 1}]})),
            digest(&json!({"b": [1, {"x": 1, "y": 2}], "a": 1}))
        );
        assert_ne!(digest(&json!({"a": 1})), digest(&json!({"a": 2})));
    }
}
