use serde_json::{json, Value};

use super::*;
use crate::error::ErrorKind;
use crate::event::{Event, NewEvent, EVENT_SCHEMA_VERSION};
use crate::policy::{ControlChanges, Decision, Effect, PolicyAction, PolicyResource};

fn usage() -> Value {
    json!({
        "llm_calls": 2, "tool_calls": 1, "input_tokens": 300, "cached_input_tokens": 0,
        "output_tokens": 40, "cost_cents": 0.25
    })
}

/// Payloads exactly as the engine wrote them before the payload types existed (copied from
/// its `json!` literals), at least one per kind and one per shape.
fn stored_before_types() -> Vec<(EventKind, Value)> {
    use EventKind::*;
    vec![
        (
            RunStarted,
            json!({
                "workflow_id": "demo_ticket_triage_v1", "workflow_version": "1", "mode": "draft",
                "input": {"hotel_id": "VV-LISBON"},
                "subject": {"tenant_id": "tenant:voulezvous", "user_id": "user:dan"},
                "budget": {"cost_limit_cents": 50.0, "llm_calls_limit": 4}
            }),
        ),
        (
            PolicyEval,
            json!({
                "action": "run_start", "resource": {"type": "workflow", "id": "demo"},
                "decision": "allow", "policy_id": null, "reason": "no policy matched",
                "matched": [], "changes": null
            }),
        ),
        (
            PolicyEval,
            json!({
                "action": "agent_call", "resource": {"type": "agent", "id": "agent.x"},
                "decision": "allow", "policy_id": "agent-auto", "reason": "auto for agents",
                "matched": ["agent-auto"], "changes": {"mode": "auto", "budget": {"llm_calls_limit": 3}}
            }),
        ),
        (
            PolicyEval,
            json!({
                "action": "budget", "decision": "deny", "reason": "budget_exceeded: llm_calls",
                "usage": usage(), "budget": {"llm_calls_limit": 1}
            }),
        ),
        (
            PolicyEval,
            json!({
                "action": "approval", "gate_id": "node:gate:1", "decision": "deny",
                "approver": "dan", "reason": "not today"
            }),
        ),
        (
            StepStarted,
            json!({"node_id": "fetch_tickets", "node_type": "tool_node", "index": 1}),
        ),
        (
            StepCompleted,
            json!({"node_id": "start", "next": "fetch_tickets"}),
        ),
        (StepCompleted, json!({"node_id": "triage", "next": null})),
        (
            StepFailed,
            json!({"node_id": "fetch", "error": {
                "kind": "tool_failed", "message": "tool `kv.put` failed: disk full", "retryable": false
            }}),
        ),
        (
            ToolCall,
            json!({
                "tool_id": "ticketing.list_open", "hub": "local", "input": {"hotel_id": "VV"},
                "output": {"tickets": []}, "error": null, "duration_ms": 3, "replayed": false
            }),
        ),
        (
            ToolCall,
            json!({
                "tool_id": "kv.put", "hub": "local", "input": {"key": "a"}, "output": null,
                "error": {"kind": "timeout", "message": "timed out: tool `kv.put` after 1s", "retryable": true},
                "duration_ms": null, "replayed": true
            }),
        ),
        (
            LlmCall,
            json!({
                "agent_id": "agent.ticket_triage", "purpose": "agent", "provider": "default",
                "model": "scripted-triage",
                "usage": {"input_tokens": 100, "cached_input_tokens": 0, "output_tokens": 20},
                "cost_cents": 0.125, "finish_reason": "tool_calls", "tool_calls": ["kv_put"],
                "text": null, "replayed": false
            }),
        ),
        (
            LlmCall,
            json!({
                "agent_id": "builtin.condition_evaluator", "purpose": "edge_condition",
                "provider": "default", "model": "gpt-4o-mini",
                "usage": {"input_tokens": 1, "cached_input_tokens": 0, "output_tokens": 1},
                "cost_cents": 0.0, "finish_reason": "stop", "tool_calls": [],
                "text": "{\"choice\": \"0\"}", "replayed": true
            }),
        ),
        (
            Error,
            json!({"error": {"kind": "policy_denied", "message": "policy denied: no", "retryable": false, "policy_id": null}}),
        ),
        (
            Error,
            json!({"tool_id": "kv.put", "error": {
                "kind": "invalid_input", "retryable": false, "tool_id": "kv.put",
                "message": "arguments of tool `kv.put` do not match its schema: /key: bad",
                "violations": [{"instance_path": "/key", "schema_path": "/type", "message": "bad"}]
            }}),
        ),
        (
            Error,
            json!({"agent_id": "router", "retrying": true, "error": {
                "kind": "model_output", "message": "invalid model output: missing `route`", "retryable": true
            }}),
        ),
        (
            RunPaused,
            json!({
                "gate_id": "tool:1:0:kv.delete", "reason": "deletes need approval", "policy_id": "p-del",
                "subject": {"kind": "tool_call", "tool_id": "kv.delete", "args_digest": "ab12", "arguments": {"key": "[REDACTED]"}}
            }),
        ),
        (
            RunPaused,
            json!({"gate_id": "run_start", "subject": {"kind": "run_start"}, "reason": "review", "policy_id": null}),
        ),
        (
            RunResumed,
            json!({"gate_id": "run_start", "decision": "approved", "approver": "dan", "reason": null}),
        ),
        (RunCancelled, json!({"reason": "user asked"})),
        (
            RunCompleted,
            json!({"result": {"summary": "two urgent tickets"}, "usage": usage()}),
        ),
        (
            RunFailed,
            json!({"error": {"kind": "budget_exceeded", "message": "budget_exceeded: cost", "retryable": false, "budget": "cost"}}),
        ),
        (
            RouteSelected,
            json!({"node_id": "classify", "route": "high_priority", "reason": "urgent", "to": "escalate"}),
        ),
        (
            RouteSelected,
            json!({"node_id": "check", "choice": "0", "condition": "the ticket is urgent", "reason": "it is", "to": "page"}),
        ),
        (
            RouteSelected,
            json!({"node_id": "check", "choice": "none", "condition": null, "reason": "none holds", "to": null}),
        ),
        (
            ChatStep,
            json!({"stage": "tools_selected", "tools": ["notes.create"]}),
        ),
        (
            ChatStep,
            json!({"stage": "awaiting_confirm", "gate_id": "tool:0:2:GMAIL_SEND_EMAIL",
                   "tool_id": "GMAIL_SEND_EMAIL", "preview": "GMAIL_SEND_EMAIL\n  to: bob",
                   "args_digest": "ab"}),
        ),
        (ChatStep, json!({"stage": "final", "text": "Done."})),
    ]
}

#[test]
fn payloads_written_before_the_types_decode_and_encode_identically() {
    for (kind, stored) in stored_before_types() {
        let p =
            EventPayload::decode(kind, &stored).unwrap_or_else(|e| panic!("{kind} {stored}: {e}"));
        assert_eq!(p.kind(), kind);
        assert_eq!(p.to_json().ok(), Some(stored.clone()), "{kind}");
        let event = Event {
            run_id: uuid::Uuid::nil(),
            seq: 1,
            step_id: None,
            kind,
            payload: stored,
            ts: chrono::Utc::now(),
            schema_version: 1,
        };
        assert_eq!(event.decode().ok(), Some(p));
    }
}

#[test]
fn every_kind_has_a_payload_type() {
    let covered: std::collections::BTreeSet<&str> = stored_before_types()
        .iter()
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(covered.len(), EventKind::ALL.len());
    for kind in EventKind::ALL {
        assert!(covered.contains(kind.as_str()), "{kind}");
        assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
    }
}

#[test]
fn the_two_route_shapes_decode_to_their_selection() {
    let all = stored_before_types();
    let routes: Vec<RouteSelection> = all
        .iter()
        .filter(|(k, _)| *k == EventKind::RouteSelected)
        .filter_map(|(k, v)| match EventPayload::decode(*k, v) {
            Ok(EventPayload::RouteSelected(r)) => Some(r.selection),
            _ => None,
        })
        .collect();
    assert_eq!(
        routes,
        [
            RouteSelection::Route {
                route: "high_priority".into()
            },
            RouteSelection::Condition {
                choice: "0".into(),
                condition: Some("the ticket is urgent".into())
            },
            RouteSelection::Condition {
                choice: "none".into(),
                condition: None
            },
        ]
    );
}

#[test]
fn one_policy_decision_constructor_for_every_action() {
    let decision = Decision {
        effect: Effect::Allow,
        policy_id: Some("agent-auto".into()),
        reason: "auto for agents".into(),
        changes: Some(ControlChanges {
            mode: Some(crate::run::RunMode::Auto),
            ..Default::default()
        }),
        matched: vec!["agent-auto".into()],
    };
    for action in [
        PolicyAction::RunStart,
        PolicyAction::ToolCall,
        PolicyAction::AgentCall,
        PolicyAction::ToolExposure,
    ] {
        let resource = PolicyResource {
            kind: "agent".into(),
            id: "agent.x".into(),
        };
        let p = PolicyEvalPayload::decided(action, resource, &decision);
        assert_eq!(p.action(), action.as_str());
        assert_eq!(p.decision(), Effect::Allow);
        let json = EventPayload::from(p).to_json().ok();
        assert_eq!(
            json,
            Some(json!({
                "action": action.as_str(), "resource": {"type": "agent", "id": "agent.x"},
                "decision": "allow", "policy_id": "agent-auto", "reason": "auto for agents",
                "matched": ["agent-auto"], "changes": {"mode": "auto"}
            }))
        );
    }
    let budget = PolicyEvalPayload::budget_exceeded(
        crate::error::BudgetKind::Cost,
        Default::default(),
        Default::default(),
    );
    assert_eq!(
        (budget.action(), budget.decision()),
        ("budget", Effect::Deny)
    );
    let denied = PolicyEvalPayload::approval_denied("g", "dan", "no");
    assert_eq!(
        (denied.action(), denied.decision()),
        ("approval", Effect::Deny)
    );
}

#[test]
fn constructors_write_the_stored_shapes() {
    let err = crate::Error::PolicyDenied {
        policy_id: None,
        reason: "no".into(),
    };
    let cases: Vec<(EventPayload, Value)> = vec![
        (
            ErrorPayload::new(err.to_recorded()).into(),
            json!({"error": err.to_json()}),
        ),
        (
            ErrorPayload::tool("kv.put", err.to_recorded()).into(),
            json!({"tool_id": "kv.put", "error": err.to_json()}),
        ),
        (
            ErrorPayload::agent_retry("router", err.to_recorded()).into(),
            json!({"agent_id": "router", "error": err.to_json(), "retrying": true}),
        ),
        (
            RunResumedPayload::approved("g", "dan", None).into(),
            json!({"gate_id": "g", "decision": "approved", "approver": "dan", "reason": null}),
        ),
    ];
    for (p, expected) in cases {
        assert_eq!(p.to_json().ok(), Some(expected));
    }
}

#[test]
fn new_events_carry_kind_and_serialized_payload() {
    let sid = uuid::Uuid::now_v7();
    let e = NewEvent::new(
        Some(sid),
        StepCompletedPayload {
            node_id: "a".into(),
            next: None,
        },
    );
    assert_eq!(e.kind, EventKind::StepCompleted);
    assert_eq!(e.step_id, Some(sid));
    assert_eq!(e.payload.to_value(), json!({"node_id": "a", "next": null}));
    let run_level = NewEvent::new(
        None,
        RunCancelledPayload {
            reason: "stop".into(),
        },
    );
    assert_eq!(run_level.step_id, None);
    let stored = Event::from_new(uuid::Uuid::nil(), 7, run_level);
    assert_eq!(stored.schema_version, EVENT_SCHEMA_VERSION);
    assert!(matches!(
        stored.decode(),
        Ok(EventPayload::RunCancelled(RunCancelledPayload { ref reason })) if reason == "stop"
    ));
}

#[test]
fn payload_serializes_with_its_kind_on_its_own() {
    let p = EventPayload::from(RunCancelledPayload {
        reason: "stop".into(),
    });
    let v = serde_json::to_value(&p).ok();
    assert_eq!(
        v,
        Some(json!({"kind": "run_cancelled", "payload": {"reason": "stop"}}))
    );
    let back: Option<EventPayload> = v.and_then(|v| serde_json::from_value(v).ok());
    assert_eq!(back, Some(p));
}

#[test]
fn unreadable_or_newer_payloads_are_internal_errors() {
    let mut e = Event::from_new(
        uuid::Uuid::nil(),
        1,
        NewEvent::run(EventKind::StepStarted, json!({"node_id": 5})),
    );
    let err = e.decode().err().map(|e| e.kind());
    assert_eq!(err, Some(ErrorKind::Internal));
    e.payload = json!({"node_id": "a", "node_type": "static", "index": 0});
    assert!(e.decode().is_ok());
    e.schema_version = EVENT_SCHEMA_VERSION + 1;
    let err = e.decode().err();
    assert_eq!(err.as_ref().map(|e| e.kind()), Some(ErrorKind::Internal));
    assert!(err.is_some_and(|e| e.to_string().contains("schema version 2")));
}
