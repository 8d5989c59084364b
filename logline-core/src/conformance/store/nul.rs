//! NUL characters in stored JSON.

use std::sync::Arc;

use chrono::Utc;
use serde_json::json;

use super::{sample_run, step};
use crate::event::{EventKind, NewEvent};
use crate::run::RunStatus;
use crate::store::{Checkpoint, EffectRecord, Store};

/// U+0000 in any JSON the engine writes (run input and result, step, events, effects) is
/// stored as U+FFFD — on every backend, so they return the same data — instead of failing
/// the write.
pub async fn nul_characters_are_stored_replaced(store: Arc<dyn Store>) {
    let dirty = json!({"text": "a\u{0}b", "k\u{0}": ["\u{0}"]});
    let clean = json!({"text": "a\u{FFFD}b", "k\u{FFFD}": ["\u{FFFD}"]});
    let mut run = sample_run("t", "wf");
    run.input = dirty.clone();
    let created = store
        .create_run(&run, &[NewEvent::run(EventKind::RunStarted, dirty.clone())])
        .await
        .expect("create with NUL");
    run.version = created.version;
    let effect = EffectRecord {
        run_id: run.id,
        step_index: 0,
        seq: 0,
        kind: "tool".into(),
        key: "t".into(),
        output: dirty.clone(),
        error: Some(json!({"kind": "tool_failed", "message": "x\u{0}"})),
        state: crate::store::EffectState::Completed,
        recorded_at: Utc::now(),
    };
    store.record_effect(&effect).await.expect("record with NUL");
    let mut s = step(&run, 0);
    s.input = dirty.clone();
    s.output = Some(dirty.clone());
    run.status = RunStatus::Completed;
    run.result = Some(dirty.clone());
    run.cursor.last_output = dirty.clone();
    let ev = NewEvent::run(EventKind::RunCompleted, dirty.clone());
    store
        .commit(Checkpoint {
            run: &run,
            step: Some(s),
            events: vec![ev],
        })
        .await
        .expect("commit with NUL");

    let stored = store.get_run(run.id).await.expect("run");
    assert_eq!(stored.input, clean);
    assert_eq!(stored.result, Some(clean.clone()));
    assert_eq!(stored.cursor.last_output, clean);
    let steps = store.steps(run.id).await.expect("steps");
    assert_eq!(
        (&steps[0].input, &steps[0].output),
        (&clean, &Some(clean.clone()))
    );
    let events = store.events(run.id, 0, 10).await.expect("events");
    assert!(events.iter().all(|e| e.payload == clean), "{events:?}");
    let effects = store.effects(run.id, 0).await.expect("effects");
    assert_eq!(effects[0].output, clean);
    assert_eq!(
        effects[0].error,
        Some(json!({"kind": "tool_failed", "message": "x\u{FFFD}"}))
    );
}
