//! Policy effects at each check point, budgets, redaction.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::*;
use logline_core::agent::{Agent, ModelProfile};
use logline_core::engine::StartRun;
use logline_core::llm::{ModelPrice, PriceTable, TokenUsage};
use logline_core::policy::{
    Condition, ControlChanges, Effect, Logic, Operator, Policy, PolicyAction, PolicyScope,
    RuleExpr, RuleNode,
};
use logline_core::run::{Budget, GateSubject, RunMode, RunStatus};
use logline_core::testing::{FakeToolHub, ScriptedLlm};
use logline_core::tool::{RiskLevel, ToolSpec};
use logline_core::ErrorKind;
use serde_json::{json, Value};

fn cond(field: &str, operator: Operator, value: Value) -> RuleNode {
    RuleNode::Condition(Condition {
        field: field.into(),
        operator,
        value,
    })
}

fn policy(id: &str, action: PolicyAction, conditions: Vec<RuleNode>, effect: Effect) -> Policy {
    Policy {
        id: id.into(),
        name: id.into(),
        description: format!("{id} says {}", effect.as_str()),
        scope: PolicyScope::Global,
        scope_id: None,
        actions: vec![action],
        rule_expr: RuleExpr {
            conditions,
            logic: Logic::And,
        },
        effect,
        modify: None,
        priority: 10,
        enabled: true,
    }
}

fn risky_hub() -> Arc<FakeToolHub> {
    Arc::new(
        FakeToolHub::new("fake")
            .tool(
                ToolSpec::new(
                    "payments.refund",
                    "Refund a payment.",
                    object_schema(&["id"]),
                )
                .with_risk(RiskLevel::High)
                .with_tags(["money"]),
                |a| Ok(json!({ "refunded": a["id"] })),
            )
            .tool(
                ToolSpec::new("notes.read", "Read notes.", json!({"type": "object"})),
                |_| Ok(json!({"notes": []})),
            ),
    )
}

async fn tool_harness() -> Harness {
    let h = harness(
        Some(Arc::new(ScriptedLlm::new().reply_text("done"))),
        Some(risky_hub()),
    )
    .await;
    h.engine
        .register_workflow(&workflow("refund", json!({ "entry": "r", "nodes": [
            { "id": "r", "type": "tool_node", "config": { "tool_id": "payments.refund", "input": { "id": "$input.id" } } }
        ] })))
        .await
        .unwrap();
    h
}

fn high_risk_in_auto() -> Vec<RuleNode> {
    vec![
        cond("tool.risk_level", Operator::Equals, json!("high")),
        cond("run.mode", Operator::Equals, json!("auto")),
    ]
}

#[tokio::test]
async fn tool_call_deny_fails_the_step_with_the_reason() {
    let h = tool_harness().await;
    h.engine
        .put_policy(&policy(
            "no-risky-auto",
            PolicyAction::ToolCall,
            high_risk_in_auto(),
            Effect::Deny,
        ))
        .await
        .unwrap();
    let auto = h
        .engine
        .run_to_completion(
            StartRun::new("refund", json!({"id": "p1"}), subject()).mode(RunMode::Auto),
        )
        .await
        .unwrap();
    assert_eq!(auto.status, RunStatus::Failed);
    let err = auto.error.clone().unwrap();
    assert_eq!(err["kind"], "policy_denied");
    assert_eq!(err["policy_id"], "no-risky-auto");
    let events = h.events(&auto).await;
    let eval = events
        .iter()
        .find(|e| e.kind.as_str() == "policy_eval" && e.payload["action"] == "tool_call")
        .unwrap();
    assert_eq!(eval.payload["decision"], "deny");
    assert!(events.iter().any(|e| e.kind.as_str() == "error"));
    assert!(!events.iter().any(|e| e.kind.as_str() == "tool_call"));
    // Draft mode does not match the rule: allowed.
    let draft = h.run("refund", json!({"id": "p1"})).await;
    assert_eq!(draft.status, RunStatus::Completed);
}

#[tokio::test]
async fn tool_call_require_approval_pauses_until_approved() {
    let h = tool_harness().await;
    let rule = vec![cond("tool.tags", Operator::Contains, json!("money"))];
    h.engine
        .put_policy(&policy(
            "money-needs-approval",
            PolicyAction::ToolCall,
            rule,
            Effect::RequireApproval,
        ))
        .await
        .unwrap();
    let run = h.run("refund", json!({"id": "p9"})).await;
    assert_eq!(run.status, RunStatus::Paused);
    let gate = run.pending_gate.clone().unwrap();
    assert_eq!(gate.policy_id.as_deref(), Some("money-needs-approval"));
    assert!(
        matches!(gate.subject, GateSubject::ToolCall { ref tool_id, .. } if tool_id == "payments.refund")
    );
    h.engine
        .approve(run.id, &gate.gate_id, "admin", None)
        .await
        .unwrap();
    let done = h.wait(&run).await;
    assert_eq!(done.status, RunStatus::Completed);
    assert_eq!(done.result, Some(json!({"refunded": "p9"})));
}

#[tokio::test]
async fn modify_changes_control_fields_only() {
    let h = tool_harness().await;
    let mut force_draft = policy(
        "force-draft",
        PolicyAction::RunStart,
        vec![cond("subject.role", Operator::Equals, json!("user"))],
        Effect::Modify,
    );
    force_draft.modify = Some(ControlChanges {
        mode: Some(RunMode::Draft),
        budget: Some(Budget {
            llm_calls_limit: Some(3),
            ..Default::default()
        }),
        ..Default::default()
    });
    h.engine.put_policy(&force_draft).await.unwrap();
    let run = h
        .start(StartRun::new("refund", json!({"id": "p1"}), subject()).mode(RunMode::Auto))
        .await;
    assert_eq!(run.mode, RunMode::Draft, "the policy forced draft mode");
    assert_eq!(run.budget.llm_calls_limit, Some(3));
    assert_eq!(run.input, json!({"id": "p1"}), "business data untouched");
    let done = h.wait(&run).await;
    assert_eq!(done.status, RunStatus::Completed);
}

#[tokio::test]
async fn run_start_deny_and_require_approval() {
    let h = tool_harness().await;
    let rule = vec![cond(
        "subject.tenant_id",
        Operator::In,
        json!(["blocked-tenant"]),
    )];
    h.engine
        .put_policy(&policy(
            "block-tenant",
            PolicyAction::RunStart,
            rule,
            Effect::Deny,
        ))
        .await
        .unwrap();
    let req = StartRun::new(
        "refund",
        json!({"id": "p1"}),
        logline_core::run::Subject::tenant("blocked-tenant"),
    );
    let err = h.engine.start_run(req).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PolicyDenied);
    let failed = h
        .engine
        .store()
        .list_runs(&Default::default())
        .await
        .unwrap();
    assert_eq!(
        failed[0].status,
        RunStatus::Failed,
        "the denied run is recorded for audit"
    );

    let rule = vec![cond("run.mode", Operator::Equals, json!("auto"))];
    h.engine
        .put_policy(&policy(
            "auto-needs-ok",
            PolicyAction::RunStart,
            rule,
            Effect::RequireApproval,
        ))
        .await
        .unwrap();
    let run = h
        .start(StartRun::new("refund", json!({"id": "p2"}), subject()).mode(RunMode::Auto))
        .await;
    assert_eq!(run.status, RunStatus::Paused);
    assert_eq!(
        run.pending_gate.as_ref().unwrap().subject,
        GateSubject::RunStart
    );
    h.engine
        .approve(run.id, "run_start", "admin", Some("fine"))
        .await
        .unwrap();
    assert_eq!(h.wait(&run).await.status, RunStatus::Completed);
}

async fn agent_harness(llm: Arc<ScriptedLlm>) -> Harness {
    let h = harness(Some(llm), Some(risky_hub())).await;
    h.engine
        .register_agent(
            &Agent::new("agent.support", "Help.", ModelProfile::new("gpt-4o-mini"))
                .with_tools(["notes.read"]),
        )
        .await
        .unwrap();
    h.engine
        .register_workflow(&workflow(
            "support",
            json!({ "entry": "a", "nodes": [
            { "id": "a", "type": "agent_node", "config": { "agent_id": "agent.support" } } ] }),
        ))
        .await
        .unwrap();
    h
}

#[tokio::test]
async fn agent_call_deny_allow_and_require_approval() {
    let h = agent_harness(Arc::new(ScriptedLlm::from_fn(|_| {
        Ok(logline_core::llm::LlmResponse::text("hi"))
    })))
    .await;
    let allowed = h.run("support", json!({})).await;
    assert_eq!(allowed.status, RunStatus::Completed);
    let evals: Vec<_> = h
        .events(&allowed)
        .await
        .into_iter()
        .filter(|e| e.kind.as_str() == "policy_eval")
        .collect();
    assert!(evals
        .iter()
        .any(|e| e.payload["action"] == "agent_call" && e.payload["decision"] == "allow"));

    let rule = vec![
        cond("agent.id", Operator::Equals, json!("agent.support")),
        cond("subject.role", Operator::NotEquals, json!("admin")),
    ];
    let mut gate = policy(
        "agent-approval",
        PolicyAction::AgentCall,
        rule.clone(),
        Effect::RequireApproval,
    );
    h.engine.put_policy(&gate).await.unwrap();
    let paused = h.run("support", json!({})).await;
    assert_eq!(paused.status, RunStatus::Paused);
    let g = paused.pending_gate.clone().unwrap();
    assert_eq!(
        g.subject,
        GateSubject::AgentCall {
            agent_id: "agent.support".into()
        }
    );
    h.engine
        .approve(paused.id, &g.gate_id, "admin", None)
        .await
        .unwrap();
    assert_eq!(h.wait(&paused).await.status, RunStatus::Completed);

    gate.effect = Effect::Deny;
    gate.priority = 20;
    gate.id = "agent-deny".into();
    h.engine.put_policy(&gate).await.unwrap();
    let denied = h.run("support", json!({})).await;
    assert_eq!(denied.status, RunStatus::Failed);
    assert_eq!(
        denied.error.unwrap()["policy_id"],
        "agent-deny",
        "higher priority decides"
    );
}

#[tokio::test]
async fn nested_rules_and_operators() {
    use logline_core::policy::{PolicyRequest, PolicyResource, RulePolicyEngine};
    use logline_core::run::Subject;
    let rule = RuleExpr {
        logic: Logic::Or,
        conditions: vec![
            RuleNode::Group(RuleExpr {
                logic: Logic::And,
                conditions: vec![
                    cond("tool.risk_level", Operator::Gte, json!("medium")),
                    cond("tool.tags", Operator::NotIn, json!(["read"])),
                ],
            }),
            cond("run.cost", Operator::Gt, json!(100)),
            cond("subject.role", Operator::Exists, json!(false)),
        ],
    };
    let mut p = policy("nested", PolicyAction::ToolCall, vec![], Effect::Deny);
    p.rule_expr = rule;
    let policies = vec![p];
    let engine = RulePolicyEngine::with_policies(policies.clone());
    let req = |risk: &str, tags: Value, cost: i64, role: Option<&str>| PolicyRequest {
        action: PolicyAction::ToolCall,
        subject: Subject {
            role: role.map(String::from),
            ..Subject::tenant("t")
        },
        resource: PolicyResource {
            kind: "tool".into(),
            id: "x".into(),
        },
        context: json!({"tool": {"risk_level": risk, "tags": tags}, "run": {"cost": cost}}),
    };
    let decide = |r: PolicyRequest| engine.decide(&policies, &r).effect;
    assert_eq!(
        decide(req("high", json!(["write"]), 0, Some("user"))),
        Effect::Deny
    );
    assert_eq!(
        decide(req("high", json!(["read"]), 0, Some("user"))),
        Effect::Allow
    );
    assert_eq!(
        decide(req("low", json!(["write"]), 0, Some("user"))),
        Effect::Allow
    );
    assert_eq!(
        decide(req("low", json!([]), 101, Some("user"))),
        Effect::Deny
    );
    assert_eq!(decide(req("low", json!([]), 0, None)), Effect::Deny);
}

#[tokio::test]
async fn budget_llm_calls_is_enforced() {
    let llm = Arc::new(ScriptedLlm::from_fn(|_| {
        Ok(logline_core::llm::LlmResponse {
            tool_calls: vec![logline_core::llm::ToolCallRequest {
                id: "c".into(),
                name: "notes_read".into(),
                arguments: json!({}),
            }],
            ..Default::default()
        })
    }));
    let h = agent_harness(llm.clone()).await;
    let req = StartRun::new("support", json!({}), subject()).budget(Budget {
        llm_calls_limit: Some(2),
        ..Default::default()
    });
    let run = h.engine.run_to_completion(req).await.unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(
        run.error.clone().unwrap()["message"],
        "budget_exceeded: llm_calls"
    );
    assert_eq!(llm.calls(), 2, "the third call is never made");
    let events = h.events(&run).await;
    assert!(events
        .iter()
        .any(|e| e.kind.as_str() == "policy_eval"
            && e.payload["reason"] == "budget_exceeded: llm_calls"));
}

#[tokio::test]
async fn budget_cost_is_enforced_from_usage_and_prices() {
    let llm = Arc::new(
        ScriptedLlm::from_fn(|_| Ok(logline_core::llm::LlmResponse::text("hello"))).with_usage(
            TokenUsage {
                input_tokens: 1_000_000,
                cached_input_tokens: 500_000,
                output_tokens: 100_000,
            },
        ),
    );
    let prices = PriceTable::default().with(
        "gpt-4o-mini",
        ModelPrice {
            input_per_mtok: 0.15,
            cached_input_per_mtok: 0.075,
            output_per_mtok: 0.60,
        },
    );
    // 0.5M·0.15 + 0.5M·0.075 + 0.1M·0.60 = 0.075 + 0.0375 + 0.06 = $0.1725 = 17.25 cents.
    let b = logline_core::engine::Engine::builder().prices(prices);
    let h = harness_with(b, Some(llm), Some(risky_hub())).await;
    h.engine
        .register_agent(&Agent::new(
            "agent.support",
            "Help.",
            ModelProfile::new("gpt-4o-mini"),
        ))
        .await
        .unwrap();
    h.engine
        .register_workflow(&workflow(
            "support",
            json!({ "entry": "a", "nodes": [
            { "id": "a", "type": "agent_node", "config": { "agent_id": "agent.support" } } ] }),
        ))
        .await
        .unwrap();
    let ok = h
        .engine
        .run_to_completion(
            StartRun::new("support", json!({}), subject()).budget(Budget {
                cost_limit_cents: Some(20.0),
                ..Default::default()
            }),
        )
        .await
        .unwrap();
    assert_eq!(ok.status, RunStatus::Completed);
    assert!(
        (ok.usage.cost_cents - 17.25).abs() < 1e-9,
        "{}",
        ok.usage.cost_cents
    );
    let over = h
        .engine
        .run_to_completion(
            StartRun::new("support", json!({}), subject()).budget(Budget {
                cost_limit_cents: Some(10.0),
                ..Default::default()
            }),
        )
        .await
        .unwrap();
    assert_eq!(over.status, RunStatus::Failed);
    assert_eq!(over.error.unwrap()["message"], "budget_exceeded: cost");
}

#[tokio::test]
async fn budget_latency_is_enforced() {
    let hub = Arc::new(
        FakeToolHub::new("fake")
            .with_delay(std::time::Duration::from_millis(150))
            .tool(
                ToolSpec::new("slow", "Slow.", json!({"type": "object"})),
                |_| Ok(json!({})),
            ),
    );
    let h = harness(None, Some(hub.clone())).await;
    let nodes: Vec<Value> = (0..5)
        .map(|i| json!({"id": format!("s{i}"), "type": "tool_node", "config": {"tool_id": "slow"}}))
        .collect();
    let edges: Vec<Value> = (1..5)
        .map(|i| json!({"from": format!("s{}", i - 1), "to": format!("s{i}")}))
        .collect();
    h.engine
        .register_workflow(&workflow(
            "slow",
            json!({"entry": "s0", "nodes": nodes, "edges": edges}),
        ))
        .await
        .unwrap();
    let req = StartRun::new("slow", json!({}), subject()).budget(Budget {
        latency_slo_ms: Some(200),
        ..Default::default()
    });
    let run = h.engine.run_to_completion(req).await.unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(run.error.unwrap()["message"], "budget_exceeded: latency");
    assert!(hub.executions() < 5, "the run stopped early");
}

/// The events of a run of a one-node workflow calling `tool` (answered by `answer`) with
/// `input`, on an engine whose redactor also knows the literal secret `hunter2-very-secret`.
async fn one_tool_run_events<F>(
    tool: &str,
    answer: F,
    input: Value,
    status: RunStatus,
) -> Vec<logline_core::event::Event>
where
    F: Fn(&Value) -> logline_core::Result<Value> + Send + Sync + 'static,
{
    let spec = ToolSpec::new(tool, "A tool.", json!({"type": "object"}));
    let hub = Arc::new(FakeToolHub::new("fake").tool(spec, answer));
    let b = logline_core::engine::Engine::builder()
        .redactor(logline_core::redact::Redactor::default().secret("hunter2-very-secret"));
    let h = harness_with(b, None, Some(hub)).await;
    let nodes = json!([{"id": "t", "type": "tool_node", "config": {"tool_id": tool}}]);
    h.engine
        .register_workflow(&workflow("one", json!({"entry": "t", "nodes": nodes})))
        .await
        .unwrap();
    let run = h.run("one", input).await;
    assert_eq!(run.status, status);
    h.events(&run).await
}

#[tokio::test]
async fn secrets_never_reach_events() {
    let events = one_tool_run_events(
        "crm.login",
        |_| Ok(json!({"session": "ok", "access_token": "tok_123456789", "note": "key sk-abcdefghijklmnopqrstuv"})),
        json!({"user": "dan", "password": "pw", "api_key": "k", "memo": "hunter2-very-secret"}),
        RunStatus::Completed,
    )
    .await;
    let all = serde_json::to_string(&events).unwrap();
    for secret in [
        "tok_123456789",
        "sk-abcdefghijklmnopqrstuv",
        "hunter2-very-secret",
        "\"pw\"",
    ] {
        assert!(!all.contains(secret), "{secret} leaked into events");
    }
    assert!(all.contains("[REDACTED]"));
    assert!(
        all.contains("\"session\":\"ok\""),
        "non-secret data is kept"
    );
}

/// Short payloads are serialized straight to text and kept as they are only when the
/// redactor finds nothing in the text: secrets in a short error still never reach events.
#[tokio::test]
async fn secrets_in_short_event_payloads_are_redacted() {
    let events = one_tool_run_events(
        "crm.ping",
        |_| {
            Err(logline_core::Error::Internal(
                "no hunter2-very-secret".into(),
            ))
        },
        json!({}),
        RunStatus::Failed,
    )
    .await;
    let short_failures: Vec<String> = events
        .iter()
        .map(|e| e.payload.to_string())
        .filter(|p| p.len() <= 1024 && p.contains("error"))
        .collect();
    assert!(!short_failures.is_empty(), "a short error event is written");
    for p in &short_failures {
        assert!(!p.contains("hunter2-very-secret"), "leaked: {p}");
    }
    assert!(short_failures.iter().any(|p| p.contains("[REDACTED]")));
}

#[tokio::test]
async fn modify_at_tool_and_agent_calls_changes_control_fields_of_the_run() {
    // Agent call: `modify` switches the run to auto mode; the run goes on.
    let llm = Arc::new(ScriptedLlm::new().reply_text("fine"));
    let h = agent_harness(llm).await;
    let mut to_auto = policy(
        "agent-auto",
        PolicyAction::AgentCall,
        vec![],
        Effect::Modify,
    );
    to_auto.modify = Some(ControlChanges {
        mode: Some(RunMode::Auto),
        ..Default::default()
    });
    h.engine.put_policy(&to_auto).await.unwrap();
    let run = h.run("support", json!({})).await;
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(run.mode, RunMode::Auto);
    let events = h.events(&run).await;
    let eval = events
        .iter()
        .find(|e| e.kind.as_str() == "policy_eval" && e.payload["action"] == "agent_call")
        .unwrap();
    assert_eq!(eval.payload["changes"]["mode"], "auto");
    assert_eq!(eval.payload["matched"], json!(["agent-auto"]));

    // Tool call: `modify` tightens the LLM-call budget mid-run; the next model call is refused.
    let llm = Arc::new(
        ScriptedLlm::new()
            .reply_tool_calls(&[("notes_read", json!({}))])
            .reply_text("never reached"),
    );
    let h = agent_harness(llm.clone()).await;
    let mut cap = policy(
        "cap-after-read",
        PolicyAction::ToolCall,
        vec![],
        Effect::Modify,
    );
    cap.modify = Some(ControlChanges {
        budget: Some(Budget {
            llm_calls_limit: Some(1),
            ..Default::default()
        }),
        ..Default::default()
    });
    h.engine.put_policy(&cap).await.unwrap();
    let run = h.run("support", json!({})).await;
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(run.error.unwrap()["message"], "budget_exceeded: llm_calls");
    assert_eq!(
        run.budget.llm_calls_limit,
        Some(1),
        "the tightened budget is recorded on the run"
    );
    assert_eq!(llm.calls(), 1);
}
