//! Fuzz targets for the parsers of logline-core that read user or remote data: workflow
//! definitions, policy rules, tool arguments against tool schemas, input templates, stored
//! events and error records, `Retry-After` headers and tool-name maps.
//!
//! Every target feeds structured, near-valid inputs (valid documents with structural
//! mutations, generated graphs and schemas, mangled text) and checks: no panic, and either a
//! typed error or a value that holds its invariants. Cases per target come from
//! `LOGLINE_FUZZ_CASES` (see `logline_core::testing::fuzz`); the long run is in the README.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use chrono::Utc;
use logline_core::error::{BudgetKind, ErrorKind, RecordedError, SchemaViolation};
use logline_core::event::*;
use logline_core::llm::{FinishReason, TokenUsage};
use logline_core::mapping::{lookup, resolve, scope_keys};
use logline_core::policy::{
    Effect, Policy, PolicyAction, PolicyRequest, PolicyResource, RulePolicyEngine,
};
use logline_core::retry::{parse_retry_after, parse_should_retry};
use logline_core::run::{Budget, GateSubject, RunMode, RunUsage, Subject};
use logline_core::schema::SchemaCache;
use logline_core::testing::fuzz::{self, json, mangled_text, mutated, mutation, text};
use logline_core::tool::names::{function_name, is_function_name, ToolNameMap};
use logline_core::workflow::{
    AnyRegistry, NodeType, Registry, ValidationIssue, Workflow, WorkflowDefinition,
};
use logline_core::Error;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::{json, Value};

/// Default cases per target under `cargo test`.
const CASES: u32 = 256;

fn check(ok: bool, what: impl FnOnce() -> String) -> Result<(), TestCaseError> {
    if ok {
        Ok(())
    } else {
        Err(TestCaseError::fail(what()))
    }
}

// ------------------------------------------------------------------ workflow definitions

const WORKFLOW_WORDS: &[&str] = &[
    "entry",
    "nodes",
    "edges",
    "id",
    "type",
    "config",
    "from",
    "to",
    "route",
    "condition",
    "static",
    "tool_node",
    "agent_node",
    "router",
    "human_gate",
    "tool_id",
    "agent_id",
    "router_agent_id",
    "routes",
    "target_node",
    "max_visits",
    "max_attempts",
    "timeout_ms",
    "input",
    "output",
    "handler",
    "message",
    "condition_agent_id",
    "start",
    "a",
    "b",
    "end",
    "$input.hotel_id",
    "$prev.tickets",
    "$nodes.a.out",
    "$nodes.missing",
    "$$input",
    "",
];

fn workflow_seeds() -> Vec<Value> {
    vec![
        json!({
            "entry": "start",
            "nodes": [
                {"id": "start", "type": "static", "config": {"output": {"h": "$input.hotel_id"}}},
                {"id": "a", "type": "tool_node",
                 "config": {"tool_id": "ticketing.list_open", "timeout_ms": 500,
                            "input": {"hotel_id": "$nodes.start.h"}}},
                {"id": "b", "type": "agent_node", "config": {"agent_id": "agent.triage"}}
            ],
            "edges": [{"from": "start", "to": "a"}, {"from": "a", "to": "b"}]
        }),
        json!({
            "entry": "r",
            "condition_agent_id": "agent.cond",
            "nodes": [
                {"id": "r", "type": "router", "config": {"router_agent_id": "agent.router",
                  "max_attempts": 2,
                  "routes": [{"id": "yes", "condition": "approve", "target_node": "g"},
                             {"id": "no", "target_node": "end"}]}},
                {"id": "g", "type": "human_gate", "config": {"message": "ok?", "max_visits": 3}},
                {"id": "end", "type": "static", "config": {"handler": "finish"}}
            ],
            "edges": [
                {"from": "r", "to": "g", "condition": "yes"},
                {"from": "r", "to": "end", "route": "no"},
                {"from": "g", "to": "r", "condition": "the answer is incomplete"},
                {"from": "g", "to": "end"}
            ]
        }),
        json!({
            "entry": "loop",
            "nodes": [
                {"id": "loop", "type": "agent_node",
                 "config": {"agent_id": "agent.a", "max_visits": 5, "input": ["$prev", "$$x"]}},
                {"id": "next", "type": "static"}
            ],
            "edges": [
                {"from": "loop", "to": "loop", "condition": "not done"},
                {"from": "loop", "to": "next"}
            ]
        }),
    ]
}

/// A generated graph over a few shared ids: every node type, random edges and guards.
fn generated_definition() -> BoxedStrategy<Value> {
    const IDS: &[&str] = &["start", "a", "b", "c", "end"];
    let id = proptest::sample::select(IDS);
    let node = (id.clone(), 0usize..6, id.clone(), any::<Option<u32>>()).prop_map(
        |(id, kind, target, visits)| {
            let config = match kind {
                0 => json!({"output": {"x": "$input.x"}}),
                1 => json!({"tool_id": "tool.x"}),
                2 => json!({"agent_id": "agent.x"}),
                3 => json!({"router_agent_id": "agent.r",
                            "routes": [{"id": "r1", "target_node": target}]}),
                4 => json!({"message": "approve?"}),
                _ => json!({"input": format!("$nodes.{target}.y")}),
            };
            let kind = [
                "static",
                "tool_node",
                "agent_node",
                "router",
                "human_gate",
                "static",
            ][kind];
            let mut config = config;
            if let Some(v) = visits {
                config["max_visits"] = json!(v % 4);
            }
            json!({"id": id, "type": kind, "config": config})
        },
    );
    let edge = (id.clone(), id.clone(), 0u8..3).prop_map(|(from, to, guard)| match guard {
        0 => json!({"from": from, "to": to}),
        1 => json!({"from": from, "to": to, "condition": "r1"}),
        _ => json!({"from": from, "to": to, "route": "r1"}),
    });
    (
        id,
        proptest::collection::vec(node, 0..6),
        proptest::collection::vec(edge, 0..8),
    )
        .prop_map(|(entry, nodes, edges)| json!({"entry": entry, "nodes": nodes, "edges": edges}))
        .boxed()
}

fn definition_input() -> BoxedStrategy<Value> {
    prop_oneof![
        3 => mutated(workflow_seeds(), WORKFLOW_WORDS),
        2 => (generated_definition(), proptest::collection::vec(mutation(WORKFLOW_WORDS), 0..3))
            .prop_map(|(doc, edits)| fuzz::apply(doc, &edits)),
        1 => json(WORKFLOW_WORDS),
    ]
    .boxed()
}

/// Knows the tools and agents of the seeds only.
struct SeedRegistry;

impl Registry for SeedRegistry {
    fn has_tool(&self, id: &str) -> bool {
        id == "ticketing.list_open"
    }
    fn has_agent(&self, id: &str) -> bool {
        id.starts_with("agent.")
    }
}

/// A parsed definition validates without panicking and survives its own serialisation.
fn check_definition(def: &WorkflowDefinition) -> Result<(), TestCaseError> {
    let issues = def.validate(&AnyRegistry);
    let strict = def.validate(&SeedRegistry);
    check(strict.len() >= issues.len(), || {
        format!("a stricter registry found fewer issues: {strict:?} < {issues:?}")
    })?;
    check(
        def.nodes.is_empty() == issues.contains(&ValidationIssue::NoNodes),
        || format!("NoNodes reported wrongly: {issues:?}"),
    )?;
    let _ = def.referenced_outputs();
    for n in &def.nodes {
        let _ = def.outgoing(&n.id).count();
        let _ = NodeType::parse(n.node_type().as_str());
    }
    let back = serde_json::to_value(def).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let again = WorkflowDefinition::from_json(back.clone())
        .map_err(|e| TestCaseError::fail(format!("re-reading {back} failed: {e}")))?;
    check(&again == def, || {
        format!("round trip changed the definition: {def:?} -> {again:?}")
    })
}

#[test]
fn workflow_definitions() {
    fuzz::run("workflow_definitions", CASES, definition_input(), |doc| {
        match WorkflowDefinition::from_json(doc) {
            Ok(def) => check_definition(&def),
            Err(e) => check(e.kind() == ErrorKind::InvalidInput, || format!("{e:?}")),
        }
    });
}

#[test]
fn workflow_definition_text() {
    let seeds: Vec<String> = workflow_seeds().iter().map(Value::to_string).collect();
    fuzz::run(
        "workflow_definition_text",
        CASES,
        mangled_text(seeds),
        |body| {
            if let Ok(def) = serde_json::from_str::<WorkflowDefinition>(&body) {
                check_definition(&def)?;
            }
            if let Ok(doc) = serde_json::from_str::<Value>(&body) {
                if let Ok(def) = WorkflowDefinition::from_json(doc) {
                    check_definition(&def)?;
                }
            }
            Ok(())
        },
    );
}

#[test]
fn stored_workflows() {
    let seeds: Vec<Value> = workflow_seeds()
        .into_iter()
        .map(|definition| {
            json!({"id": "wf", "name": "Workflow", "version": "1.0.0",
                   "definition": definition, "created_at": "2025-01-01T00:00:00Z"})
        })
        .collect();
    fuzz::run(
        "stored_workflows",
        CASES,
        mutated(seeds, WORKFLOW_WORDS),
        |doc| {
            if let Ok(wf) = serde_json::from_value::<Workflow>(doc) {
                check_definition(&wf.definition)?;
            }
            Ok(())
        },
    );
}

// ------------------------------------------------------------------ policy rules

const POLICY_WORDS: &[&str] = &[
    "id",
    "name",
    "scope",
    "scope_id",
    "actions",
    "rule_expr",
    "conditions",
    "logic",
    "AND",
    "OR",
    "field",
    "operator",
    "value",
    "effect",
    "modify",
    "priority",
    "enabled",
    "allow",
    "deny",
    "require_approval",
    "global",
    "tenant",
    "tool",
    "workflow",
    "agent",
    "app",
    "equals",
    "not_equals",
    "in",
    "not_in",
    "contains",
    "gt",
    "gte",
    "lt",
    "lte",
    "exists",
    "tool.risk_level",
    "tool.tags",
    "tool.tags.0",
    "subject.role",
    "subject.tenant_id",
    "run.mode",
    "input.amount",
    "a..b",
    ".",
    "high",
    "medium",
    "low",
    "tool_call",
    "run_start",
    "draft",
    "auto",
    "mode",
    "budget",
    "flags",
    "cost_limit_cents",
    "llm_calls_limit",
];

fn policy_seeds() -> Vec<Value> {
    vec![json!([
        {"id": "p1", "name": "no high risk", "actions": ["tool_call"], "effect": "deny",
         "priority": 10,
         "rule_expr": {"conditions": [
             {"field": "tool.risk_level", "operator": "gte", "value": "high"},
             {"logic": "OR", "conditions": [
                 {"field": "subject.role", "operator": "not_in", "value": ["admin"]},
                 {"field": "tool.tags", "operator": "contains", "value": "send"}]}]}},
        {"id": "p2", "name": "ask in draft", "scope": "tenant", "scope_id": "acme",
         "effect": "require_approval",
         "rule_expr": {"conditions": [{"field": "run.mode", "operator": "equals", "value": "draft"}]}},
        {"id": "p3", "name": "tighten", "effect": "modify", "priority": 10,
         "modify": {"mode": "draft", "budget": {"cost_limit_cents": 5.5, "llm_calls_limit": 3},
                    "flags": {"audit": true}},
         "rule_expr": {"conditions": [{"field": "input.amount", "operator": "gt", "value": 100}]}},
        {"id": "p4", "name": "tool scope", "scope": "tool", "scope_id": "GMAIL_SEND_EMAIL",
         "effect": "allow", "enabled": false,
         "rule_expr": {"conditions": [{"field": "tool.id", "operator": "exists"}]}}
    ])]
}

fn request_seeds() -> Vec<Value> {
    vec![
        json!({"action": "tool_call",
               "subject": {"tenant_id": "acme", "role": "admin", "user_id": "u1"},
               "resource": {"type": "tool", "id": "GMAIL_SEND_EMAIL"},
               "context": {"run": {"mode": "draft", "workflow_id": "wf"},
                           "tool": {"id": "GMAIL_SEND_EMAIL", "risk_level": "high",
                                    "tags": ["send", "write"]},
                           "input": {"amount": 250}}}),
        json!({"action": "run_start", "subject": {"tenant_id": "other"},
               "resource": {"type": "workflow", "id": "wf"}, "context": null}),
    ]
}

#[test]
fn policy_rules() {
    let input = (
        mutated(policy_seeds(), POLICY_WORDS),
        mutated(request_seeds(), POLICY_WORDS),
        proptest::sample::select(vec![Effect::Allow, Effect::Deny]),
    );
    fuzz::run(
        "policy_rules",
        CASES,
        input,
        |(policies, request, default)| {
            let Ok(policies) = serde_json::from_value::<Vec<Policy>>(policies) else {
                return Ok(());
            };
            let Ok(request) = serde_json::from_value::<PolicyRequest>(request) else {
                return Ok(());
            };
            let engine = RulePolicyEngine::with_policies(Vec::new()).default_effect(default);
            let decision = engine.decide(&policies, &request);
            check(decision.effect != Effect::Modify, || {
                format!("modify decided alone: {decision:?}")
            })?;
            let ids: BTreeSet<&str> = policies.iter().map(|p| p.id.as_str()).collect();
            check(
                decision.matched.iter().all(|m| ids.contains(m.as_str())),
                || format!("matched an unknown policy: {decision:?}"),
            )?;
            match &decision.policy_id {
                Some(id) => {
                    let decider = policies
                        .iter()
                        .any(|p| &p.id == id && p.enabled && p.effect == decision.effect);
                    check(decider && decision.matched.contains(id), || {
                        format!("decision names a policy that did not decide it: {decision:?}")
                    })
                }
                None => check(decision.effect == default, || {
                    format!("no deciding policy but effect {:?}", decision.effect)
                }),
            }
        },
    );
}

// ------------------------------------------------------------------ tool arguments

const SCHEMA_WORDS: &[&str] = &[
    "type",
    "properties",
    "required",
    "items",
    "enum",
    "const",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "pattern",
    "format",
    "anyOf",
    "oneOf",
    "allOf",
    "not",
    "$ref",
    "$defs",
    "additionalProperties",
    "string",
    "integer",
    "number",
    "object",
    "array",
    "boolean",
    "null",
    "x",
    "y",
    "name",
    "count",
    "#",
    "#/$defs/a",
    "email",
    "date-time",
    "uri",
    "^[a-z]+$",
];

fn schema_leaf() -> BoxedStrategy<Value> {
    const TYPES: &[&str] = &[
        "string", "integer", "number", "object", "array", "boolean", "null",
    ];
    const FORMATS: &[&str] = &[
        "email",
        "date-time",
        "date",
        "uri",
        "uuid",
        "ipv4",
        "hostname",
        "regex",
        "unknown-format",
    ];
    const REFS: &[&str] = &[
        "#",
        "#/$defs/a",
        "#/properties/x",
        "#/definitions/missing",
        "other.json",
        "http://example.com/schema.json",
        "#/$defs/a/items",
        "",
    ];
    const PATTERNS: &[&str] = &[
        "^[a-z]+$", "(a+)+$", "[", "\\p{L}+", "(?<=a)b", "(x)\\1", "", ".*",
    ];
    let ty = proptest::sample::select(TYPES);
    prop_oneof![
        ty.clone().prop_map(|t| json!({"type": t})),
        (ty.clone(), ty).prop_map(|(a, b)| json!({"type": [a, b]})),
        proptest::collection::vec(json(SCHEMA_WORDS), 0..4).prop_map(|v| json!({"enum": v})),
        json(SCHEMA_WORDS).prop_map(|v| json!({"const": v})),
        (fuzz::number(), fuzz::number())
            .prop_map(|(a, b)| json!({"minimum": a, "exclusiveMaximum": b})),
        fuzz::number().prop_map(|n| json!({"multipleOf": n})),
        (fuzz::number(), fuzz::number()).prop_map(|(a, b)| json!({"minLength": a, "maxLength": b})),
        proptest::sample::select(PATTERNS).prop_map(|p| json!({"type": "string", "pattern": p})),
        proptest::sample::select(FORMATS).prop_map(|f| json!({"format": f})),
        proptest::sample::select(REFS).prop_map(|r| json!({"$ref": r})),
        Just(json!(true)),
        Just(json!(false)),
        Just(json!({})),
        json(SCHEMA_WORDS),
    ]
    .boxed()
}

/// JSON Schemas as hubs publish them: objects of typed properties, arrays, combinators,
/// references, with the occasional broken keyword.
fn schema() -> BoxedStrategy<Value> {
    let key = proptest::sample::select(&["x", "y", "name", "count", "a"][..]);
    schema_leaf()
        .prop_recursive(3, 24, 4, move |inner| {
            prop_oneof![
                (
                    proptest::collection::btree_map(key.clone(), inner.clone(), 0..4),
                    proptest::collection::vec(key.clone(), 0..3),
                    prop_oneof![Just(json!(true)), Just(json!(false)), inner.clone()],
                )
                    .prop_map(|(props, required, additional)| json!({
                        "type": "object", "properties": props, "required": required,
                        "additionalProperties": additional
                    })),
                (inner.clone(), fuzz::number(), any::<bool>()).prop_map(|(items, min, unique)| {
                    json!({"type": "array", "items": items, "minItems": min,
                           "uniqueItems": unique})
                }),
                (
                    proptest::sample::select(&["anyOf", "oneOf", "allOf"][..]),
                    proptest::collection::vec(inner.clone(), 1..3)
                )
                    .prop_map(|(k, v)| json!({ k: v })),
                inner.clone().prop_map(|s| json!({"not": s})),
                (inner.clone(), inner.clone()).prop_map(|(a, s)| {
                    json!({"$defs": {"a": a}, "allOf": [s, {"$ref": "#/$defs/a"}]})
                }),
                (inner.clone(), inner.clone(), inner)
                    .prop_map(|(i, t, e)| json!({"if": i, "then": t, "else": e})),
            ]
        })
        .boxed()
}

#[test]
fn tool_arguments() {
    let cache = SchemaCache::new();
    let input = (
        (
            schema(),
            proptest::collection::vec(mutation(SCHEMA_WORDS), 0..3),
        )
            .prop_map(|(s, edits)| fuzz::apply(s, &edits)),
        json(SCHEMA_WORDS),
    );
    fuzz::run("tool_arguments", CASES, input, |(schema, args)| match cache
        .violations(&schema, &args)
    {
        Ok(violations) => {
            let again = cache.violations(&schema, &args);
            check(again.as_ref().ok() == Some(&violations), || {
                format!("cached validator answered differently: {again:?}")
            })?;
            match cache.validate("tool.x", &schema, &args) {
                Ok(()) => check(violations.is_empty(), || {
                    format!("valid but violations {violations:?}")
                }),
                Err(Error::SchemaValidation {
                    tool_id,
                    violations: v,
                }) => check(tool_id == "tool.x" && v == violations, || {
                    format!("{tool_id}: {v:?} != {violations:?}")
                }),
                Err(e) => Err(TestCaseError::fail(format!("unexpected error {e:?}"))),
            }
        }
        Err(e) => check(e.kind() == ErrorKind::InvalidInput, || format!("{e:?}")),
    });
}

// ------------------------------------------------------------------ input templates

const TEMPLATE_WORDS: &[&str] = &[
    "$input",
    "$input.a",
    "$input.a.0",
    "$input..a",
    "$input.",
    "$prev.items.0.id",
    "$prev.items.99",
    "$nodes.fetch.tickets",
    "$nodes.",
    "$$input",
    "$$",
    "$",
    "$.a",
    "$unknown.x",
    "a",
    "items",
    "id",
    "fetch",
    "tickets",
    "0",
    "18446744073709551616",
];

/// `resolved` keeps the shape of `template`: only `$` strings change, `$$x` becomes `$x`.
fn same_shape(template: &Value, resolved: &Value) -> bool {
    match (template, resolved) {
        (Value::String(t), r) if t.starts_with("$$") => r == &Value::String(t[1..].to_string()),
        (Value::String(t), _) if t.starts_with('$') => true,
        (Value::Array(t), Value::Array(r)) => {
            t.len() == r.len() && t.iter().zip(r).all(|(a, b)| same_shape(a, b))
        }
        (Value::Object(t), Value::Object(r)) => {
            t.len() == r.len()
                && t.iter()
                    .all(|(k, v)| r.get(k).is_some_and(|rv| same_shape(v, rv)))
        }
        (t, r) => t == r,
    }
}

#[test]
fn templates() {
    let input = (
        json(TEMPLATE_WORDS),
        json(TEMPLATE_WORDS),
        json(TEMPLATE_WORDS),
        text(TEMPLATE_WORDS),
    );
    fuzz::run(
        "templates",
        CASES,
        input,
        |(template, input, prev, path)| {
            let resolved = resolve(&template, &[("input", &input), ("prev", &prev)]);
            check(same_shape(&template, &resolved), || {
                format!("{template} resolved to {resolved}")
            })?;
            if let Some(found) = lookup(&input, &path) {
                check(!found.is_null(), || "lookup found null".into())?;
            }
            let mut keys = BTreeSet::new();
            scope_keys(&template, "nodes", &mut keys);
            check(keys.iter().all(|k| !k.is_empty()), || format!("{keys:?}"))
        },
    );
}

// ------------------------------------------------------------------ stored events and errors

const RECORD_WORDS: &[&str] = &[
    "kind",
    "message",
    "retryable",
    "tool_id",
    "policy_id",
    "budget",
    "violations",
    "issues",
    "backend",
    "entity",
    "id",
    "error",
    "payload",
    "node_id",
    "node_type",
    "index",
    "next",
    "not_found",
    "conflict",
    "invalid_input",
    "policy_denied",
    "budget_exceeded",
    "rate_limited",
    "unavailable",
    "timeout",
    "cancelled",
    "model_output",
    "tool_failed",
    "unauthorized",
    "internal",
    "cost",
    "llm_calls",
    "latency",
    "run not found: r-1",
    "tool `t` failed: boom",
    "rate_limited error from openai: slow down",
    "invalid input: bad",
    "policy denied: no",
    "conflict: lost",
    "` failed: ",
    " not found: ",
    " error from ",
    "route",
    "choice",
    "condition",
    "action",
    "tool_call",
    "approval",
];

fn sample_errors() -> Vec<Error> {
    vec![
        Error::not_found("run", "r-1"),
        Error::Conflict("lost the race".into()),
        Error::InvalidInput("bad".into()),
        Error::InvalidWorkflow(vec![ValidationIssue::MissingEntry { entry: "x".into() }]),
        Error::SchemaValidation {
            tool_id: "t".into(),
            violations: vec![SchemaViolation {
                instance_path: "/a".into(),
                schema_path: "/properties/a/type".into(),
                message: "\"x\" is not an integer".into(),
            }],
        },
        Error::PolicyDenied {
            policy_id: Some("p1".into()),
            reason: "no".into(),
        },
        Error::BudgetExceeded(BudgetKind::Cost),
        Error::ModelOutput("not JSON".into()),
        Error::ToolFailed {
            tool_id: "GMAIL_SEND_EMAIL".into(),
            message: "quota".into(),
            retryable: true,
        },
        Error::Timeout("tool".into()),
        Error::Cancelled("by user".into()),
        Error::Internal("bug".into()),
        Error::backend("openai", ErrorKind::RateLimited, "slow down", None),
        Error::backend("postgres", ErrorKind::Unavailable, "gone", None),
    ]
}

fn payload_seeds() -> Vec<Value> {
    let error = Error::ToolFailed {
        tool_id: "t".into(),
        message: "boom".into(),
        retryable: false,
    }
    .to_recorded();
    let subject = Subject::tenant("acme").with_user("u1");
    let payloads: Vec<EventPayload> = vec![
        RunStartedPayload {
            workflow_id: "wf".into(),
            workflow_version: "1.0.0".into(),
            mode: RunMode::Draft,
            input: json!({"hotel_id": "VV-LISBON"}),
            subject: subject.clone(),
            budget: Budget {
                cost_limit_cents: Some(10.0),
                llm_calls_limit: Some(3),
                latency_slo_ms: None,
            },
        }
        .into(),
        StepStartedPayload {
            node_id: "a".into(),
            node_type: NodeType::ToolNode,
            index: 1,
        }
        .into(),
        StepCompletedPayload {
            node_id: "a".into(),
            next: Some("b".into()),
        }
        .into(),
        StepFailedPayload {
            node_id: "a".into(),
            error: error.clone(),
        }
        .into(),
        ToolCallPayload {
            tool_id: "t".into(),
            hub: "local".into(),
            input: json!({"x": 1}),
            output: json!([1, "two"]),
            error: Some(error.clone()),
            duration_ms: Some(12),
            replayed: false,
        }
        .into(),
        LlmCallPayload {
            agent_id: "agent.a".into(),
            purpose: LlmPurpose::Agent,
            provider: "openai".into(),
            model: "gpt".into(),
            usage: TokenUsage {
                input_tokens: 10,
                cached_input_tokens: 2,
                output_tokens: 5,
            },
            cost_cents: 0.25,
            finish_reason: FinishReason::ToolCalls,
            tool_calls: vec!["t".into()],
            text: None,
            replayed: true,
        }
        .into(),
        PolicyEvalPayload::approval_denied("g1", "alice", "no").into(),
        PolicyEvalPayload::budget_exceeded(
            BudgetKind::LlmCalls,
            RunUsage::default(),
            Budget::default(),
        )
        .into(),
        PolicyEvalPayload::decided(
            PolicyAction::ToolCall,
            PolicyResource {
                kind: "tool".into(),
                id: "t".into(),
            },
            &logline_core::policy::Decision::allow_default(),
        )
        .into(),
        ErrorPayload::agent_retry("agent.a", error.clone()).into(),
        RunPausedPayload {
            gate_id: "g1".into(),
            subject: GateSubject::ToolCall {
                tool_id: "t".into(),
                args_digest: "ab".into(),
                arguments: json!({"to": "x"}),
            },
            reason: "confirm".into(),
            policy_id: None,
        }
        .into(),
        RunResumedPayload::approved("g1", "alice", Some("fine".into())).into(),
        RunCompletedPayload {
            result: json!({"ok": true}),
            usage: RunUsage::default(),
        }
        .into(),
        RunFailedPayload { error }.into(),
        RunCancelledPayload {
            reason: "user".into(),
        }
        .into(),
        RouteSelectedPayload {
            node_id: "r".into(),
            selection: RouteSelection::Condition {
                choice: "b".into(),
                condition: Some("done".into()),
            },
            reason: "because".into(),
            to: Some("b".into()),
        }
        .into(),
        RouteSelectedPayload {
            node_id: "r".into(),
            selection: RouteSelection::Route { route: "r1".into() },
            reason: "because".into(),
            to: None,
        }
        .into(),
    ];
    payloads
        .iter()
        .filter_map(|p| Some(json!({"kind": p.kind(), "payload": p.to_json().ok()?})))
        .collect()
}

#[test]
fn stored_events() {
    let input = (
        mutated(payload_seeds(), RECORD_WORDS),
        proptest::sample::select(EventKind::ALL.to_vec()),
        any::<bool>(),
        prop_oneof![4 => Just(1u16), 1 => any::<u16>()],
    );
    fuzz::run(
        "stored_events",
        CASES,
        input,
        |(doc, other_kind, keep_kind, schema_version)| {
            // The API form (`{"kind", "payload"}`) must read or fail without panicking.
            let _ = serde_json::from_value::<EventPayload>(doc.clone());
            let kind = match doc
                .get("kind")
                .and_then(Value::as_str)
                .and_then(EventKind::parse)
            {
                Some(k) if keep_kind => k,
                _ => other_kind,
            };
            let event = Event {
                run_id: uuid::Uuid::nil(),
                seq: 1,
                step_id: None,
                kind,
                payload: doc.get("payload").cloned().unwrap_or(doc),
                ts: Utc::now(),
                schema_version,
            };
            match event.decode() {
                Ok(payload) => {
                    check(payload.kind() == kind && schema_version == 1, || {
                        format!("{kind:?} v{schema_version} decoded as {payload:?}")
                    })?;
                    let stored = payload
                        .to_json()
                        .map_err(|e| TestCaseError::fail(e.to_string()))?;
                    let again = EventPayload::decode(kind, &stored)
                        .map_err(|e| TestCaseError::fail(format!("{stored}: {e}")))?;
                    check(again == payload, || {
                        format!("round trip changed {payload:?} into {again:?}")
                    })
                }
                Err(e) => check(e.kind() == ErrorKind::Internal, || format!("{e:?}")),
            }
        },
    );
}

#[test]
fn recorded_errors() {
    let seeds: Vec<Value> = sample_errors().iter().map(Error::to_json).collect();
    fuzz::run(
        "recorded_errors",
        CASES,
        mutated(seeds, RECORD_WORDS),
        |doc| match RecordedError::from_json(&doc) {
            Ok(record) => {
                let error = record.clone().into_error();
                check(
                    error.kind() == record.kind && error.is_retryable() == record.retryable,
                    || format!("{record:?} rebuilt as {error:?}"),
                )?;
                let _ = error.to_string();
                let again = Error::from_recorded_json(&error.to_json());
                check(
                    again.kind() == error.kind()
                        && again.is_retryable() == error.is_retryable()
                        && again.to_string() == error.to_string(),
                    || format!("{error:?} -> {again:?}"),
                )
            }
            Err(e) => check(e.kind() == ErrorKind::Internal, || format!("{e:?}")),
        },
    );
}

/// Errors with arbitrary texts survive being recorded: same kind, retryability and message.
#[test]
fn error_records_round_trip() {
    let strings = || text(RECORD_WORDS);
    let error = (
        0usize..9,
        strings(),
        strings(),
        any::<bool>(),
        proptest::sample::select(ErrorKind::ALL.to_vec()),
    )
        .prop_map(|(variant, a, b, retryable, kind)| match variant {
            0 => Error::not_found(a, b),
            1 => Error::Conflict(a),
            2 => Error::InvalidInput(a),
            3 => Error::PolicyDenied {
                policy_id: retryable.then_some(b),
                reason: a,
            },
            4 => Error::ModelOutput(a),
            5 => Error::ToolFailed {
                tool_id: a,
                message: b,
                retryable,
            },
            6 => Error::Timeout(a),
            7 => Error::Internal(a),
            _ => Error::backend(a, kind, b, None),
        });
    fuzz::run("error_records_round_trip", CASES, error, |error| {
        let again = Error::from_recorded_json(&error.to_json());
        check(
            again.kind() == error.kind()
                && again.is_retryable() == error.is_retryable()
                && again.to_string() == error.to_string(),
            || format!("{error:?} -> {again:?}"),
        )
    });
}

// ------------------------------------------------------------------ Retry-After

const HEADER_WORDS: &[&str] = &[
    "1",
    "0",
    "1.5",
    "1e3",
    "1e20",
    "1e300",
    "1e400",
    "-1",
    "NaN",
    "inf",
    "infinity",
    "+5",
    "0x10",
    " ",
    "Mon, 01 Jan 2024 00:00:00 GMT",
    "Sunday, 06-Nov-94 08:49:37 GMT",
    "Sun Nov  6 08:49:37 1994",
    "Fri, 31 Dec 9999 23:59:59 GMT",
    "true",
    "false",
];

fn header_value() -> BoxedStrategy<String> {
    prop_oneof![
        text(HEADER_WORDS),
        any::<f64>().prop_map(|f| f.to_string()),
        any::<f64>().prop_map(|f| format!("{f:e}")),
        any::<u128>().prop_map(|n| n.to_string()),
        (
            "[ \t]{0,2}",
            "[0-9]{1,25}",
            "(\\.[0-9]{0,20})?",
            "([eE][+-]?[0-9]{1,4})?",
            "[ \t]{0,2}"
        )
            .prop_map(|(a, i, f, e, z)| format!("{a}{i}{f}{e}{z}")),
        (0u64..253_402_300_800).prop_map(|s| {
            httpdate::fmt_http_date(SystemTime::UNIX_EPOCH + Duration::from_secs(s))
        }),
        mangled_text(HEADER_WORDS.iter().map(|s| s.to_string()).collect()),
    ]
    .boxed()
}

#[test]
fn retry_after_headers() {
    let input = (
        proptest::option::of(header_value()),
        proptest::option::of(header_value()),
        0u64..=3_600_000,
        0u64..=253_402_300_799,
    );
    fuzz::run(
        "retry_after_headers",
        CASES,
        input,
        |(ms, secs, max_ms, now_secs)| {
            let max = Duration::from_millis(max_ms);
            let now = SystemTime::UNIX_EPOCH + Duration::from_secs(now_secs);
            let wait = parse_retry_after(ms.as_deref(), secs.as_deref(), now, max);
            check(wait.is_none_or(|w| w <= max), || {
                format!("{wait:?} > {max:?}")
            })?;
            if let Some(n) = ms.as_deref().and_then(|v| v.parse::<u64>().ok()) {
                let expected = Duration::from_millis(n).min(max);
                check(wait == Some(expected), || {
                    format!("{wait:?} != {expected:?}")
                })?;
            }
            let _ = parse_should_retry(secs.as_deref());
            Ok(())
        },
    );
}

// ------------------------------------------------------------------ tool names

const NAME_WORDS: &[&str] = &[
    "ticketing.list_open",
    "GMAIL_SEND_EMAIL",
    "Kick.com API::Get Clips",
    "a",
    "_",
    "-",
    "...",
    "ツール",
    "x_0123abcd",
    "tool_0123abcd",
];

#[test]
fn tool_names() {
    let ids = proptest::collection::vec(text(NAME_WORDS), 0..8);
    let stored = json(NAME_WORDS);
    fuzz::run("tool_names", CASES, (ids, stored), |(ids, stored)| {
        let _ = serde_json::from_value::<ToolNameMap>(stored);
        let map = ToolNameMap::from_ids(&ids);
        for id in &ids {
            check(is_function_name(&function_name(id)), || {
                format!("{id:?} -> {:?}", function_name(id))
            })?;
            let name = map
                .function_name(id)
                .ok_or_else(|| TestCaseError::fail(format!("{id:?} has no name")))?;
            check(
                is_function_name(name) && map.tool_id(name) == Some(id.as_str()),
                || format!("{id:?} -> {name:?} -> {:?}", map.tool_id(name)),
            )?;
        }
        let back: ToolNameMap = serde_json::from_value(
            serde_json::to_value(&map).map_err(|e| TestCaseError::fail(e.to_string()))?,
        )
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
        check(back == map, || "name map round trip".into())
    });
}
