//! Rows written by earlier releases load through PgStore: runs whose state has no layout
//! version, events with the payloads written before the typed payloads existed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use chrono::{DateTime, Utc};
use logline_core::event::{EventKind, EventPayload, RouteSelection};
use logline_core::run::{GateSubject, RunStatus, RUN_STATE_VERSION, RUN_STATE_VERSION_KEY};
use logline_core::store::{Checkpoint, RunStore};
use logline_postgres::PgStore;
use serde_json::{json, Value};
use uuid::Uuid;

/// A paused run as the previous release stored it: the `state` column is the serde form of
/// the run without `input`, `result`, `error` and `version`, and without a layout version.
async fn insert_run_of_previous_release(store: &PgStore) -> Uuid {
    let id = Uuid::now_v7();
    let at: DateTime<Utc> = "2024-07-01T10:00:00.123456789Z".parse().unwrap();
    let state = json!({
        "id": id,
        "workflow_id": "demo_ticket_triage_v1",
        "workflow_version": "1",
        "status": "paused",
        "mode": "draft",
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
        "approvals": [{"gate_id": "run_start", "approver": "dan", "at": "2024-07-01T09:59:00Z"}],
        "created_at": "2024-07-01T09:58:00Z",
        "updated_at": "2024-07-01T10:00:00.123456789Z",
        "started_at": "2024-07-01T09:59:01Z"
    });
    sqlx::query(
        "INSERT INTO runs (id, workflow_id, workflow_version, status, mode, tenant_id, user_id,
                           input, state, version, last_seq, created_at, updated_at, started_at)
         VALUES ($1, 'demo_ticket_triage_v1', '1', 'paused', 'draft', 'tenant:voulezvous',
                 'user:dan', $2, $3, 4, 0, $4, $4, $4)",
    )
    .bind(id)
    .bind(json!({"hotel_id": "VV-LISBON"}))
    .bind(state)
    .bind(at)
    .execute(store.pool())
    .await
    .unwrap();
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_row_of_the_previous_release_loads_and_is_rewritten_with_its_version() {
    let (store, _g) = support::guarded_store().await;
    let id = insert_run_of_previous_release(&store).await;

    let run = store.get_run(id).await.unwrap();
    assert_eq!(run.status, RunStatus::Paused);
    assert_eq!(run.version, 4);
    assert_eq!(run.input, json!({"hotel_id": "VV-LISBON"}));
    assert_eq!(run.cursor.next_node.as_deref(), Some("triage"));
    assert_eq!(run.cursor.visits.get("gate"), Some(&1));
    assert_eq!(run.cursor.committed_step_events, 3);
    assert_eq!(run.approvals.len(), 1);
    let gate = run.pending_gate.as_ref().unwrap();
    assert!(matches!(gate.subject, GateSubject::ToolCall { .. }));
    assert_eq!(gate.requested_at.timestamp_subsec_nanos(), 123_456_789);
    let listed = store.list_runs(&Default::default()).await.unwrap();
    assert_eq!(listed, vec![run.clone()]);

    // The next checkpoint stores the current layout version; the run reads back the same.
    store
        .commit(Checkpoint {
            run: &run,
            step: None,
            events: Vec::new(),
        })
        .await
        .unwrap();
    let state: Value = sqlx::query_scalar("SELECT state FROM runs WHERE id = $1")
        .bind(id)
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(state[RUN_STATE_VERSION_KEY], json!(RUN_STATE_VERSION));
    let again = store.get_run(id).await.unwrap();
    assert_eq!(again.version, 5);
    assert_eq!(again.cursor, run.cursor);
    assert_eq!(again.pending_gate, run.pending_gate);
    assert_eq!(again.approvals, run.approvals);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_rows_of_the_previous_release_decode() {
    let (store, _g) = support::guarded_store().await;
    let id = insert_run_of_previous_release(&store).await;
    let payloads = [
        (
            "policy_eval",
            json!({
                "action": "run_start", "resource": {"type": "workflow", "id": "demo"},
                "decision": "allow", "policy_id": null, "reason": "no policy matched",
                "matched": [], "changes": null
            }),
        ),
        (
            "tool_call",
            json!({
                "tool_id": "kv.put", "hub": "local", "input": {"key": "a"}, "output": null,
                "error": {"kind": "tool_failed", "message": "tool `kv.put` failed: disk full", "retryable": false},
                "duration_ms": 12, "replayed": false
            }),
        ),
        (
            "route_selected",
            json!({"node_id": "check", "choice": "none", "condition": null, "reason": "none holds", "to": null}),
        ),
    ];
    for (seq, (kind, payload)) in payloads.iter().enumerate() {
        sqlx::query(
            "INSERT INTO events (run_id, seq, kind, payload, ts, schema_version)
             VALUES ($1, $2, $3, $4, now(), 1)",
        )
        .bind(id)
        .bind(seq as i64 + 1)
        .bind(kind)
        .bind(payload)
        .execute(store.pool())
        .await
        .unwrap();
    }
    sqlx::query("UPDATE runs SET last_seq = 3 WHERE id = $1")
        .bind(id)
        .execute(store.pool())
        .await
        .unwrap();

    let events = store.events(id, 0, 10).await.unwrap();
    let decoded: Vec<EventPayload> = events.iter().map(|e| e.decode().unwrap()).collect();
    assert_eq!(
        decoded.iter().map(EventPayload::kind).collect::<Vec<_>>(),
        [
            EventKind::PolicyEval,
            EventKind::ToolCall,
            EventKind::RouteSelected
        ]
    );
    match &decoded[1] {
        EventPayload::ToolCall(call) => {
            let error = call.error.clone().unwrap().into_error();
            assert_eq!(error.to_string(), "tool `kv.put` failed: disk full");
            assert_eq!(call.duration_ms, Some(12));
        }
        other => panic!("{other:?}"),
    }
    match &decoded[2] {
        EventPayload::RouteSelected(r) => assert!(matches!(
            r.selection,
            RouteSelection::Condition {
                condition: None,
                ..
            }
        )),
        other => panic!("{other:?}"),
    }
    for (e, (_, payload)) in events.iter().zip(&payloads) {
        assert_eq!(e.decode().unwrap().to_json().unwrap(), *payload);
    }
}
