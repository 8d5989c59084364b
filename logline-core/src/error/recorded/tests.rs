use std::borrow::Cow;

use serde_json::{json, Value};

use super::*;

/// The variant's name; exhaustive, so a new variant must be added to [`every_variant`].
fn variant(e: &Error) -> &'static str {
    match e {
        Error::NotFound { .. } => "not_found",
        Error::Conflict(_) => "conflict",
        Error::InvalidInput(_) => "invalid_input",
        Error::InvalidWorkflow(_) => "invalid_workflow",
        Error::SchemaValidation { .. } => "schema_validation",
        Error::PolicyDenied { .. } => "policy_denied",
        Error::BudgetExceeded(_) => "budget_exceeded",
        Error::ModelOutput(_) => "model_output",
        Error::ToolFailed { .. } => "tool_failed",
        Error::EffectOutcomeUnknown { .. } => "effect_outcome_unknown",
        Error::Timeout(_) => "timeout",
        Error::Cancelled(_) => "cancelled",
        Error::Backend { .. } => "backend",
        Error::Internal(_) => "internal",
        Error::UploadRejected(_) => "upload_rejected",
    }
}

const VARIANTS: [&str; 15] = [
    "upload_rejected",
    "not_found",
    "conflict",
    "invalid_input",
    "invalid_workflow",
    "schema_validation",
    "policy_denied",
    "budget_exceeded",
    "model_output",
    "tool_failed",
    "effect_outcome_unknown",
    "timeout",
    "cancelled",
    "backend",
    "internal",
];

/// Messages that look like the formats the rebuild reads (prefixes, separators, backticks).
const TRICKY: [&str; 6] = [
    "plain",
    "",
    "conflict: nested: colons",
    "tool `x` failed: inner",
    "internal error from pg: looks like a backend",
    "unicode — ✓ and\nnew lines",
];

/// Every variant, with edge-case contents, and every kind × retryability of a backend error.
fn every_variant() -> Vec<Error> {
    let mut v = Vec::new();
    for m in TRICKY {
        v.push(Error::not_found("run", m));
        v.push(Error::NotFound {
            entity: Cow::Owned(format!("widget{m}")),
            id: m.to_string(),
        });
        v.push(Error::Conflict(m.into()));
        v.push(Error::InvalidInput(m.into()));
        v.push(Error::UploadRejected(
            crate::artifact::UploadRejection::TypeMismatch {
                declared: m.into(),
                sniffed: "text/plain".into(),
            },
        ));
        v.push(Error::ModelOutput(m.into()));
        v.push(Error::Timeout(m.into()));
        v.push(Error::Cancelled(m.into()));
        v.push(Error::Internal(m.into()));
        for policy_id in [None, Some(m.to_string())] {
            v.push(Error::PolicyDenied {
                policy_id,
                reason: m.into(),
            });
        }
        v.push(Error::EffectOutcomeUnknown {
            tool_id: format!("mail.{m}"),
            message: m.into(),
        });
        for retryable in [false, true] {
            v.push(Error::ToolFailed {
                tool_id: format!("kv.{m}"),
                message: m.into(),
                retryable,
            });
        }
    }
    v.push(Error::InvalidWorkflow(vec![
        crate::workflow::ValidationIssue::NoNodes,
        crate::workflow::ValidationIssue::MissingEntry {
            entry: "start".into(),
        },
    ]));
    v.push(Error::SchemaValidation {
        tool_id: "kv.put".into(),
        violations: vec![SchemaViolation {
            instance_path: "/key".into(),
            schema_path: "/properties/key/type".into(),
            message: "1 is not of type \"string\"".into(),
        }],
    });
    for b in BudgetKind::ALL {
        v.push(Error::BudgetExceeded(b));
    }
    for kind in ErrorKind::ALL {
        for retryable in [false, true] {
            for backend in ["postgres", "vllm: local"] {
                v.push(Error::Backend {
                    kind,
                    backend: backend.into(),
                    message: "connection reset: by peer".into(),
                    retryable,
                    hint: Default::default(),
                    source: Some("io".into()),
                });
            }
        }
        v.push(Error::backend("openai", kind, "default retryability", None));
    }
    v
}

fn assert_same(original: &Error, back: &Error, how: &str) {
    assert_eq!(
        back.kind(),
        original.kind(),
        "{how}: {original:?} → {back:?}"
    );
    assert_eq!(
        back.is_retryable(),
        original.is_retryable(),
        "{how}: {original:?} → {back:?}"
    );
    assert_eq!(
        back.to_string(),
        original.to_string(),
        "{how}: {original:?} → {back:?}"
    );
}

#[test]
fn every_variant_is_covered() {
    let seen: std::collections::BTreeSet<&str> = every_variant().iter().map(variant).collect();
    assert_eq!(seen, VARIANTS.into_iter().collect());
}

#[test]
fn every_variant_round_trips_kind_message_and_retryability() {
    for e in every_variant() {
        let recorded = e.to_recorded();
        let back = recorded.clone().into_error();
        assert_same(&e, &back, "record");
        assert_eq!(variant(&back), variant(&e), "same variant for {e:?}");
        assert_eq!(back.to_recorded(), recorded, "a fixed point for {e:?}");

        let stored = e.to_json();
        let read = Error::from_recorded_json(&stored);
        assert_same(&e, &read, "json");
        assert_eq!(read.to_json(), stored);
    }
}

/// `to_json` of the previous release: no `tool_id` on tool failures, no `backend`, `entity`
/// or `id`.
fn previous_release_json(e: &Error) -> Value {
    let mut v = e.to_json();
    if let Value::Object(m) = &mut v {
        if !matches!(e, Error::SchemaValidation { .. }) {
            m.remove("tool_id");
        }
        m.remove("backend");
        m.remove("entity");
        m.remove("id");
    }
    v
}

#[test]
fn records_of_the_previous_release_rebuild() {
    for e in every_variant() {
        let back = Error::from_recorded_json(&previous_release_json(&e));
        assert_eq!(back.kind(), e.kind(), "{e:?}");
        assert_eq!(back.is_retryable(), e.is_retryable(), "{e:?}");
        let parseable = match &e {
            // The old record of a backend named with ": " is ambiguous; kind and retryability
            // still survive.
            Error::Backend { backend, .. } => !backend.contains(": "),
            Error::NotFound { id, .. } => !id.contains(" not found: "),
            Error::ToolFailed { tool_id, .. } => !tool_id.contains("` failed: "),
            Error::EffectOutcomeUnknown { tool_id, .. } => !tool_id.contains("` unknown: "),
            _ => true,
        };
        if parseable {
            assert_eq!(back.to_string(), e.to_string(), "{e:?}");
        }
    }
}

#[test]
fn literal_records_of_the_previous_release() {
    let cases = [
        (
            json!({"kind": "not_found", "message": "tool not found: kv.get", "retryable": false}),
            "tool not found: kv.get",
        ),
        (
            json!({"kind": "unavailable", "message": "unavailable error from composio: 503", "retryable": true}),
            "unavailable error from composio: 503",
        ),
        (
            json!({"kind": "tool_failed", "message": "tool `kv.put` failed: disk full", "retryable": false}),
            "tool `kv.put` failed: disk full",
        ),
        (
            json!({"kind": "policy_denied", "message": "policy denied: no deletes", "retryable": false, "policy_id": "p1"}),
            "policy denied: no deletes",
        ),
        (
            json!({"kind": "budget_exceeded", "message": "budget_exceeded: cost", "retryable": false, "budget": "cost"}),
            "budget_exceeded: cost",
        ),
    ];
    for (stored, display) in cases {
        let r = RecordedError::from_json(&stored).expect("reads");
        let e = r.clone().into_error();
        assert_eq!(e.to_string(), display);
        assert_eq!(e.kind(), r.kind);
        assert_eq!(e.is_retryable(), r.retryable);
    }
    let denied = Error::from_recorded_json(&cases_policy());
    assert!(matches!(
        denied,
        Error::PolicyDenied { policy_id: Some(ref p), ref reason } if p == "p1" && reason == "no deletes"
    ));
}

fn cases_policy() -> Value {
    json!({"kind": "policy_denied", "message": "policy denied: no deletes", "retryable": false, "policy_id": "p1"})
}

#[test]
fn json_keeps_the_fields_of_the_previous_release() {
    let e = Error::PolicyDenied {
        policy_id: None,
        reason: "r".into(),
    };
    assert_eq!(
        e.to_json(),
        json!({"kind": "policy_denied", "message": "policy denied: r", "retryable": false, "policy_id": null})
    );
    assert_eq!(
        Error::BudgetExceeded(BudgetKind::LlmCalls).to_json(),
        json!({"kind": "budget_exceeded", "message": "budget_exceeded: llm_calls", "retryable": false, "budget": "llm_calls"})
    );
    assert_eq!(
        Error::Timeout("slow".into()).to_json(),
        json!({"kind": "timeout", "message": "timed out: slow", "retryable": true})
    );
}

#[test]
fn inconsistent_records_keep_kind_and_retryability() {
    // No variant is a retryable cancellation: it comes back as a backend error.
    let r = RecordedError::new(ErrorKind::Cancelled, "cancelled: stop", true);
    let e = r.into_error();
    assert_eq!(e.kind(), ErrorKind::Cancelled);
    assert!(e.is_retryable());
    let r = RecordedError::new(ErrorKind::BudgetExceeded, "over", false);
    let e = r.into_error();
    assert_eq!(e.kind(), ErrorKind::BudgetExceeded);
    assert!(!e.is_retryable());
}

#[test]
fn unreadable_records_are_internal_errors() {
    for bad in [
        json!(null),
        json!("boom"),
        json!({"kind": "exploded", "message": "m", "retryable": false}),
        json!({"kind": "timeout"}),
    ] {
        let e = Error::from_recorded_json(&bad);
        assert_eq!(e.kind(), ErrorKind::Internal, "{bad}");
        assert!(RecordedError::from_json(&bad).is_err());
    }
}

#[test]
fn error_kinds_serialize_by_name() {
    for k in ErrorKind::ALL {
        let v = serde_json::to_value(k).expect("serializes");
        assert_eq!(v, json!(k.as_str()));
        assert_eq!(serde_json::from_value::<ErrorKind>(v).ok(), Some(k));
    }
}
