//! The effect ledger: results of LLM and tool calls recorded at `(run, step, seq)` before the
//! step goes on, and replayed instead of calling again.

use chrono::Utc;
use serde_json::Value;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::store::{EffectRecord, Store};

/// Effect kinds in the ledger.
pub(crate) const EFFECT_LLM: &str = "llm";
pub(crate) const EFFECT_TOOL: &str = "tool";

/// Records an effect (shared by sequential and concurrent callers).
pub(crate) async fn record(
    store: &dyn Store,
    run_id: Uuid,
    step_index: u32,
    seq: u32,
    kind: &str,
    key: &str,
    output: &std::result::Result<Value, Error>,
) -> Result<()> {
    let (output, error) = match output {
        Ok(v) => (v.clone(), None),
        Err(e) => (Value::Null, Some(e.to_json())),
    };
    store
        .record_effect(&EffectRecord {
            run_id,
            step_index,
            seq,
            kind: kind.to_string(),
            key: key.to_string(),
            output,
            error,
            recorded_at: Utc::now(),
        })
        .await?;
    Ok(())
}

/// Turns a recorded effect back into its result.
pub(crate) fn replay(rec: &EffectRecord) -> std::result::Result<Value, Error> {
    match &rec.error {
        None => Ok(rec.output.clone()),
        Some(e) => Err(error_from_json(e)),
    }
}

/// Rebuilds an error from [`Error::to_json`] output (kind and message survive).
pub(crate) fn error_from_json(e: &Value) -> Error {
    let message = e["message"]
        .as_str()
        .unwrap_or("recorded failure")
        .to_string();
    match e["kind"].as_str() {
        Some("policy_denied") => Error::PolicyDenied {
            policy_id: e["policy_id"].as_str().map(String::from),
            reason: message,
        },
        Some("invalid_input") => Error::InvalidInput(message),
        Some("not_found") => Error::InvalidInput(message),
        Some("model_output") => Error::ModelOutput(message),
        Some("timeout") => Error::Timeout(message),
        _ => Error::ToolFailed {
            tool_id: e["tool_id"].as_str().unwrap_or_default().to_string(),
            message,
            retryable: false,
        },
    }
}
