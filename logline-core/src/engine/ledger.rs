//! The effect ledger: results of LLM and tool calls recorded at `(run, step, seq)` before the
//! step goes on, and replayed instead of calling again.

use std::time::Duration;

use serde_json::Value;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::retry::Backoff;
use crate::store::{EffectRecord, EffectState, Store};

/// Effect kinds in the ledger.
pub(crate) const EFFECT_LLM: &str = "llm";
pub(crate) const EFFECT_TOOL: &str = "tool";

/// How often a completed effect's record is attempted before giving up: a call that ran is
/// never answered by calling again, so its result is worth waiting for.
const RECORD_ATTEMPTS: u32 = 6;
const RECORD_BACKOFF: Backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));

/// Records the outcome of an effect (shared by sequential and concurrent callers), retrying
/// transient store failures. Returns another execution's record when that one was stored
/// first (the caller adopts it); `None` when this outcome is the recorded one.
pub(crate) async fn record(
    store: &dyn Store,
    run_id: Uuid,
    step_index: u32,
    seq: u32,
    kind: &str,
    key: &str,
    output: &std::result::Result<Value, Error>,
) -> Result<Option<EffectRecord>> {
    let (output, error) = match output {
        Ok(v) => (v.clone(), None),
        Err(e) => (Value::Null, Some(e.to_json())),
    };
    let record = EffectRecord {
        output,
        error,
        state: EffectState::Completed,
        ..EffectRecord::intent(run_id, step_index, seq, kind, key)
    };
    let mut failures = 0;
    loop {
        match store.record_effect(&record).await {
            Ok(stored) => {
                let ours = stored.output == record.output && stored.error == record.error;
                return Ok((!ours).then_some(stored));
            }
            Err(e) if e.is_retryable() && failures + 1 < RECORD_ATTEMPTS => {
                failures += 1;
                tracing::warn!(%run_id, step_index, seq, error = %e, "recording an effect failed; retrying");
                tokio::time::sleep(RECORD_BACKOFF.delay(failures)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Turns a recorded effect back into its result.
pub(crate) fn replay(rec: &EffectRecord) -> std::result::Result<Value, Error> {
    match &rec.error {
        None => Ok(rec.output.clone()),
        Some(e) => Err(Error::from_recorded_json(e)),
    }
}
