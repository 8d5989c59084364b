//! Each node type, edge conditions, gates and the golden run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use logline_core::agent::{Agent, ModelProfile};
use logline_core::engine::{Engine, EngineConfig, StartRun};
use logline_core::llm::{LlmRequest, LlmResponse, Message};
use logline_core::queue::Backoff;
use logline_core::run::{GateSubject, RunStatus};
use logline_core::testing::{golden, FakeToolHub, ScriptedLlm};
use logline_core::tool::ToolSpec;
use logline_core::ErrorKind;
use serde_json::json;

#[tokio::test]
async fn static_nodes_pass_through_apply_templates_and_handlers() {
    let b = Engine::builder().static_handler("double", |input, _run_input| {
        Ok(json!({ "n": input["n"].as_i64().unwrap_or(0) * 2 }))
    });
    let h = harness_with(b, None, None).await;
    let wf = workflow(
        "statics",
        json!({
            "entry": "a",
            "nodes": [
                { "id": "a", "type": "static" },
                { "id": "b", "type": "static", "config": { "output": { "n": "$prev.n", "hotel": "$input.hotel", "fixed": 1 } } },
                { "id": "c", "type": "static", "config": { "handler": "double" } }
            ],
            "edges": [ { "from": "a", "to": "b" }, { "from": "b", "to": "c" } ]
        }),
    );
    h.engine.register_workflow(&wf).await.unwrap();
    let run = h.run("statics", json!({ "n": 21, "hotel": "VV" })).await;
    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.error);
    assert_eq!(run.result, Some(json!({ "n": 42 })));
    let steps = h.engine.steps(run.id).await.unwrap();
    assert_eq!(steps.len(), 3);
    assert_eq!(
        steps[1].output,
        Some(json!({ "n": 21, "hotel": "VV", "fixed": 1 }))
    );
    assert_eq!(
        h.kinds(&run).await,
        [
            "run_started",
            "policy_eval",
            "step_started",
            "step_completed",
            "step_started",
            "step_completed",
            "step_started",
            "step_completed",
            "run_completed"
        ]
    );
}

#[tokio::test]
async fn templates_read_earlier_nodes_outputs_through_the_nodes_scope() {
    let hub = Arc::new(hub());
    let h = harness(None, Some(hub.clone())).await;
    let wf = workflow(
        "chain",
        json!({
            "entry": "first",
            "nodes": [
                { "id": "first", "type": "static", "config": { "output": { "key": "$input.k" } } },
                { "id": "put", "type": "tool_node",
                  "config": { "tool_id": "kv.put", "input": { "key": "$nodes.first.key", "value": "$input.v" } } },
                { "id": "last", "type": "static",
                  "config": { "output": { "from_first": "$nodes.first", "stored": "$prev.stored", "put": "$nodes.put.stored" } } }
            ],
            "edges": [ { "from": "first", "to": "put" }, { "from": "put", "to": "last" } ]
        }),
    );
    h.engine.register_workflow(&wf).await.unwrap();
    let run = h.run("chain", json!({ "k": "a", "v": "b" })).await;
    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.error);
    assert_eq!(
        run.result,
        Some(json!({ "from_first": { "key": "a" }, "stored": "a", "put": "a" }))
    );
}

#[tokio::test]
async fn tool_node_validates_input_and_executes() {
    let hub = Arc::new(hub());
    let h = harness(None, Some(hub.clone())).await;
    let wf = workflow(
        "put",
        json!({
            "entry": "put",
            "nodes": [ { "id": "put", "type": "tool_node",
                         "config": { "tool_id": "kv.put", "input": { "key": "$input.k", "value": "$input.v" } } } ]
        }),
    );
    h.engine.register_workflow(&wf).await.unwrap();
    let ok = h.run("put", json!({ "k": "a", "v": "b" })).await;
    assert_eq!(ok.status, RunStatus::Completed);
    assert_eq!(ok.result, Some(json!({ "stored": "a" })));
    let events = h.events(&ok).await;
    let call = events
        .iter()
        .find(|e| e.kind.as_str() == "tool_call")
        .expect("tool_call event");
    assert_eq!(call.payload["tool_id"], "kv.put");
    assert_eq!(call.payload["input"], json!({ "key": "a", "value": "b" }));

    // Missing `value` (null from the template) fails validation with the failing path named.
    let bad = h.run("put", json!({ "k": "a" })).await;
    assert_eq!(bad.status, RunStatus::Failed);
    let err = bad.error.expect("error");
    assert_eq!(err["kind"], "invalid_input");
    assert!(
        err["violations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["instance_path"] == "/value"),
        "{err}"
    );
    assert_eq!(
        hub.executions_of("kv.put"),
        1,
        "invalid input never reaches the tool"
    );
}

#[tokio::test]
async fn idempotent_tool_timeouts_are_retried_then_fail_the_run() {
    let hub = Arc::new(
        FakeToolHub::new("fake")
            .with_delay(Duration::from_secs(5))
            .tool(
                ToolSpec::new("sleepy", "Sleeps.", json!({"type": "object"})).idempotent(),
                |_| Ok(json!({})),
            ),
    );
    let config = EngineConfig {
        run_job_attempts: 2,
        ..EngineConfig::default()
    };
    let engine = Engine::builder()
        .config(config)
        .tool_hub(hub.clone())
        .build()
        .await
        .unwrap();
    engine.register_tools(&hub.specs()).await.unwrap();
    let mut opts = worker_options();
    opts.backoff = Backoff::new(Duration::from_millis(20), Duration::from_millis(40));
    let _pool = engine.spawn_workers(opts);
    let wf = workflow(
        "slow",
        json!({ "entry": "s", "nodes": [ { "id": "s", "type": "tool_node",
        "config": { "tool_id": "sleepy", "timeout_ms": 100 } } ] }),
    );
    engine.register_workflow(&wf).await.unwrap();
    let run = engine
        .run_to_completion(StartRun::new("slow", json!({}), subject()))
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    let msg = run.error.unwrap()["message"].as_str().unwrap().to_string();
    assert!(
        msg.contains("after 2 attempts") && msg.contains("timed out"),
        "{msg}"
    );
    assert_eq!(hub.max_concurrency(), 1);
    let dead = engine
        .queue()
        .dead_letters(logline_core::engine::RUN_QUEUE, 10)
        .await
        .unwrap();
    assert_eq!(
        dead.len(),
        1,
        "the run job was dead-lettered after its attempts"
    );
}

fn triage_like_agent(tools: &[&str]) -> Agent {
    Agent::new(
        "agent.helper",
        "Use tools, then answer.",
        ModelProfile::new("m"),
    )
    .with_tools(tools.iter().copied())
}

#[tokio::test]
async fn agent_node_runs_a_tool_loop_with_parallel_calls() {
    let hub = Arc::new(
        FakeToolHub::new("fake")
            .with_delay(Duration::from_millis(300))
            .tool(
                ToolSpec::new("ticketing.get", "Get a ticket.", object_schema(&["id"])),
                |a| Ok(json!({ "id": a["id"], "subject": "No hot water" })),
            ),
    );
    let llm = Arc::new(
        ScriptedLlm::new()
            .reply_tool_calls(&[
                ("ticketing_get", json!({"id": "T-1"})),
                ("ticketing_get", json!({"id": "T-2"})),
                ("ticketing_get", json!({"id": "T-3"})),
            ])
            .reply_text("All three tickets are about hot water."),
    );
    let h = harness(Some(llm.clone()), Some(hub.clone())).await;
    h.engine
        .register_agent(&triage_like_agent(&["ticketing.get"]))
        .await
        .unwrap();
    let wf = workflow(
        "agent",
        json!({ "entry": "a", "nodes": [ { "id": "a", "type": "agent_node",
        "config": { "agent_id": "agent.helper" } } ] }),
    );
    h.engine.register_workflow(&wf).await.unwrap();
    let run = h
        .run("agent", json!({ "question": "what are T-1..3 about?" }))
        .await;
    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.error);
    assert_eq!(
        run.result,
        Some(json!({ "text": "All three tickets are about hot water." }))
    );
    assert_eq!(hub.executions_of("ticketing.get"), 3);
    assert_eq!(
        hub.max_concurrency(),
        3,
        "the three calls of one turn run concurrently"
    );
    let reqs = llm.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(
        reqs[0].tools[0].name, "ticketing_get",
        "tool ids become valid function names"
    );
    let results: Vec<&Message> = reqs[1]
        .messages
        .iter()
        .filter(|m| matches!(m, Message::Tool { .. }))
        .collect();
    assert_eq!(
        results.len(),
        3,
        "every call's result goes back to the model"
    );
    let events = h.events(&run).await;
    let llm_calls: Vec<_> = events
        .iter()
        .filter(|e| e.kind.as_str() == "llm_call")
        .collect();
    assert_eq!(llm_calls.len(), 2);
    assert_eq!(llm_calls[0].payload["agent_id"], "agent.helper");
    assert_eq!(llm_calls[0].payload["usage"]["input_tokens"], 100);
    assert_eq!(run.usage.llm_calls, 2);
    assert_eq!(run.usage.tool_calls, 3);
}

#[tokio::test]
async fn agent_tool_loop_is_capped_by_max_steps() {
    let hub = Arc::new(hub());
    let llm = Arc::new(ScriptedLlm::from_fn(|_| {
        Ok(LlmResponse {
            tool_calls: vec![logline_core::llm::ToolCallRequest {
                id: "c".into(),
                name: "echo".into(),
                arguments: json!({}),
            }],
            ..Default::default()
        })
    }));
    let h = harness(Some(llm.clone()), Some(hub)).await;
    let mut agent = triage_like_agent(&["echo"]);
    agent.max_steps = Some(3);
    h.engine.register_agent(&agent).await.unwrap();
    h.engine
        .register_workflow(&workflow(
            "loop",
            json!({ "entry": "a", "nodes": [ { "id": "a", "type": "agent_node",
        "config": { "agent_id": "agent.helper" } } ] }),
        ))
        .await
        .unwrap();
    let run = h.run("loop", json!({})).await;
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(run.error.unwrap()["kind"], "model_output");
    assert_eq!(llm.calls(), 3);
}

#[tokio::test]
async fn agent_structured_output_is_validated_and_retried() {
    let llm = Arc::new(
        ScriptedLlm::new()
            .reply_text("not json")
            .reply_json(json!({ "answer": 42 })),
    );
    let h = harness(Some(llm.clone()), None).await;
    let agent = Agent::new("agent.json", "Answer in JSON.", ModelProfile::new("m"))
        .with_output_schema(json!({"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}));
    h.engine.register_agent(&agent).await.unwrap();
    h.engine
        .register_workflow(&workflow(
            "json",
            json!({ "entry": "a", "nodes": [ { "id": "a", "type": "agent_node",
        "config": { "agent_id": "agent.json" } } ] }),
        ))
        .await
        .unwrap();
    let run = h.run("json", json!({})).await;
    assert_eq!(run.result, Some(json!({ "answer": 42 })));
    let reqs = llm.requests();
    assert_eq!(reqs[0].output_schema.as_ref().unwrap().name, "agent_output");
    assert!(reqs[0].output_schema.as_ref().unwrap().strict);
}

fn router_workflow() -> logline_core::workflow::Workflow {
    workflow(
        "routing",
        json!({
            "entry": "start",
            "nodes": [
                { "id": "start", "type": "static" },
                { "id": "route", "type": "router", "config": { "router_agent_id": "agent.router", "routes": [
                    { "id": "high_priority", "condition": "if ticket priority is high or urgent", "target_node": "escalate" },
                    { "id": "normal", "condition": "if ticket priority is normal or low", "target_node": "auto_resolve" }
                ] } },
                { "id": "escalate", "type": "static", "config": { "output": { "handled_by": "human" } } },
                { "id": "auto_resolve", "type": "static", "config": { "output": { "handled_by": "bot" } } }
            ],
            "edges": [
                { "from": "start", "to": "route" },
                { "from": "route", "to": "escalate", "condition": "high_priority" },
                { "from": "route", "to": "auto_resolve", "condition": "normal" }
            ]
        }),
    )
}

async fn router_harness(llm: Arc<ScriptedLlm>) -> Harness {
    let h = harness(Some(llm), None).await;
    h.engine
        .register_agent(&Agent::new(
            "agent.router",
            "Route tickets.",
            ModelProfile::new("cheap"),
        ))
        .await
        .unwrap();
    h.engine
        .register_workflow(&router_workflow())
        .await
        .unwrap();
    h
}

#[tokio::test]
async fn router_picks_a_route_with_strict_output() {
    let llm = Arc::new(
        ScriptedLlm::new().reply_json(json!({ "route": "high_priority", "reason": "urgent" })),
    );
    let h = router_harness(llm.clone()).await;
    let run = h.run("routing", json!({ "priority": "urgent" })).await;
    assert_eq!(run.result, Some(json!({ "handled_by": "human" })));
    let req = &llm.requests()[0];
    let schema = &req.output_schema.as_ref().expect("strict schema").schema;
    assert_eq!(
        schema["properties"]["route"]["enum"],
        json!(["high_priority", "normal"])
    );
    let events = h.events(&run).await;
    let sel = events
        .iter()
        .find(|e| e.kind.as_str() == "route_selected")
        .unwrap();
    assert_eq!(sel.payload["route"], "high_priority");
}

#[tokio::test]
async fn router_retries_invalid_choices_then_succeeds() {
    let llm = Arc::new(
        ScriptedLlm::new()
            .reply_json(json!({ "route": "maybe", "reason": "?" }))
            .reply_text("{broken")
            .reply_json(json!({ "route": "normal", "reason": "low" })),
    );
    let h = router_harness(llm.clone()).await;
    let run = h.run("routing", json!({ "priority": "low" })).await;
    assert_eq!(run.result, Some(json!({ "handled_by": "bot" })));
    assert_eq!(llm.calls(), 3);
}

#[tokio::test]
async fn router_fails_the_run_after_bounded_invalid_choices() {
    let llm = Arc::new(ScriptedLlm::from_fn(|_| {
        Ok(LlmResponse::text(r#"{"route": "nowhere", "reason": "x"}"#))
    }));
    let h = router_harness(llm.clone()).await;
    let run = h.run("routing", json!({})).await;
    assert_eq!(run.status, RunStatus::Failed);
    let err = run.error.unwrap();
    assert_eq!(err["kind"], "model_output");
    assert!(
        err["message"].as_str().unwrap().contains("nowhere"),
        "{err}"
    );
    assert_eq!(llm.calls(), 3, "default bound is 3 attempts");
}

#[tokio::test]
async fn natural_language_edge_conditions_are_evaluated_by_an_agent() {
    let llm = Arc::new(ScriptedLlm::from_fn(|req: &LlmRequest| {
        // The evaluator sees the previous output and the numbered conditions.
        let Message::User { content } = &req.messages[0] else {
            unreachable!()
        };
        let v: serde_json::Value = serde_json::from_str(content).unwrap();
        let amount = v["output"]["amount"].as_i64().unwrap();
        let choice = if amount < 1000 { "0" } else { "1" };
        Ok(LlmResponse::text(
            json!({ "choice": choice, "reason": "amount" }).to_string(),
        ))
    }));
    let h = harness(Some(llm), None).await;
    let wf = workflow(
        "conds",
        json!({
            "entry": "check_status",
            "nodes": [
                { "id": "check_status", "type": "static" },
                { "id": "approve", "type": "static", "config": { "output": { "decision": "approved" } } },
                { "id": "reject", "type": "static", "config": { "output": { "decision": "rejected" } } }
            ],
            "edges": [
                { "from": "check_status", "to": "approve", "condition": "if status is approved and amount is less than 1000" },
                { "from": "check_status", "to": "reject", "condition": "if status is rejected or amount is greater than 1000" }
            ]
        }),
    );
    h.engine.register_workflow(&wf).await.unwrap();
    let small = h
        .run("conds", json!({ "status": "approved", "amount": 10 }))
        .await;
    assert_eq!(small.result, Some(json!({ "decision": "approved" })));
    let big = h
        .run("conds", json!({ "status": "approved", "amount": 5000 }))
        .await;
    assert_eq!(big.result, Some(json!({ "decision": "rejected" })));
    let kinds = h.kinds(&big).await;
    assert!(kinds.contains(&"route_selected".to_string()));
}

fn gate_workflow() -> logline_core::workflow::Workflow {
    workflow(
        "gated",
        json!({
            "entry": "prepare",
            "nodes": [
                { "id": "prepare", "type": "static", "config": { "output": { "refund": 120 } } },
                { "id": "approval", "type": "human_gate", "config": { "message": "Refund 120 EUR?" } },
                { "id": "done", "type": "static", "config": { "output": { "refunded": "$prev.refund" } } }
            ],
            "edges": [ { "from": "prepare", "to": "approval" }, { "from": "approval", "to": "done" } ]
        }),
    )
}

#[tokio::test]
async fn human_gate_pauses_and_approval_resumes() {
    let h = harness(None, None).await;
    h.engine.register_workflow(&gate_workflow()).await.unwrap();
    let run = h.run("gated", json!({})).await;
    assert_eq!(run.status, RunStatus::Paused);
    let gate = run.pending_gate.clone().expect("gate");
    assert_eq!(gate.gate_id, "node:approval:1");
    assert_eq!(
        gate.subject,
        GateSubject::Node {
            node_id: "approval".into()
        }
    );
    assert_eq!(gate.reason, "Refund 120 EUR?");
    // Only the exact gate opens it.
    let wrong = h
        .engine
        .approve(run.id, "node:other:1", "boss", None)
        .await
        .unwrap_err();
    assert_eq!(wrong.kind(), ErrorKind::InvalidInput);
    h.engine
        .approve(run.id, &gate.gate_id, "boss", Some("ok"))
        .await
        .unwrap();
    let done = h.wait(&run).await;
    assert_eq!(done.status, RunStatus::Completed);
    assert_eq!(done.result, Some(json!({ "refunded": 120 })));
    let kinds = h.kinds(&done).await;
    let paused = kinds.iter().position(|k| k == "run_paused").unwrap();
    let resumed = kinds.iter().position(|k| k == "run_resumed").unwrap();
    assert!(paused < resumed);
    // Approving again is a conflict: the run is not paused any more.
    assert_eq!(
        h.engine
            .approve(run.id, &gate.gate_id, "boss", None)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::Conflict
    );
}

#[tokio::test]
async fn human_gate_denial_fails_the_run_with_the_reason() {
    let h = harness(None, None).await;
    h.engine.register_workflow(&gate_workflow()).await.unwrap();
    let run = h.run("gated", json!({})).await;
    let gate = run.pending_gate.clone().unwrap();
    let denied = h
        .engine
        .deny(run.id, &gate.gate_id, "boss", "too expensive")
        .await
        .unwrap();
    assert_eq!(denied.status, RunStatus::Failed);
    assert!(denied.error.unwrap()["message"]
        .as_str()
        .unwrap()
        .contains("too expensive"));
    assert_eq!(
        h.engine.get_run(run.id).await.unwrap().status,
        RunStatus::Failed
    );
    assert_eq!(h.kinds(&run).await.last().unwrap(), "run_failed");
}

#[tokio::test]
async fn confirmed_tool_calls_pause_and_approval_is_bound_to_the_arguments() {
    let hub = Arc::new(
        FakeToolHub::new("fake").tool(
            ToolSpec::new("email.send", "Send an email.", object_schema(&["to"]))
                .with_tags(["send"])
                .confirmed(),
            |a| Ok(json!({ "sent_to": a["to"] })),
        ),
    );
    let llm = Arc::new(
        ScriptedLlm::new()
            .reply_tool_calls(&[("email_send", json!({ "to": "guest@example.com" }))])
            .reply_text("Sent."),
    );
    let h = harness(Some(llm.clone()), Some(hub.clone())).await;
    h.engine
        .register_agent(&triage_like_agent(&["email.send"]))
        .await
        .unwrap();
    h.engine
        .register_workflow(&workflow(
            "mail",
            json!({ "entry": "a", "nodes": [ { "id": "a", "type": "agent_node",
        "config": { "agent_id": "agent.helper" } } ] }),
        ))
        .await
        .unwrap();
    let run = h.run("mail", json!({})).await;
    assert_eq!(run.status, RunStatus::Paused);
    let gate = run.pending_gate.clone().unwrap();
    let GateSubject::ToolCall {
        tool_id,
        args_digest,
        arguments,
    } = &gate.subject
    else {
        panic!("{gate:?}")
    };
    assert_eq!(tool_id, "email.send");
    assert_eq!(arguments, &json!({ "to": "guest@example.com" }));
    assert_eq!(
        args_digest,
        &logline_core::engine::args_digest(&json!({ "to": "guest@example.com" }))
    );
    assert_eq!(hub.executions(), 0, "nothing is sent before approval");
    h.engine
        .approve(run.id, &gate.gate_id, "dan", None)
        .await
        .unwrap();
    let done = h.wait(&run).await;
    assert_eq!(done.status, RunStatus::Completed, "{:?}", done.error);
    assert_eq!(hub.executions(), 1);
    // The first LLM turn was replayed from the ledger, not asked again.
    assert_eq!(llm.calls(), 2);
    let events = h.events(&done).await;
    assert_eq!(
        events
            .iter()
            .filter(|e| e.kind.as_str() == "llm_call")
            .count(),
        2,
        "no duplicate trace after resume"
    );
    let approval = &done.approvals[0];
    assert_eq!(approval.args_digest.as_deref(), Some(args_digest.as_str()));
}

#[tokio::test]
async fn golden_run_produces_the_expected_result_and_events() {
    let llm = Arc::new(golden::scripted_llm());
    let engine = golden::with_tool(Engine::builder().default_llm(llm))
        .build()
        .await
        .unwrap();
    golden::install(&engine, "gpt-4o-mini").await.unwrap();
    let pool = engine.spawn_workers(worker_options());
    let run = engine
        .run_to_completion(StartRun::new(
            golden::WORKFLOW_ID,
            json!({ "hotel_id": "VV-LISBON" }),
            subject(),
        ))
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.error);
    let result = run.result.clone().unwrap();
    assert_eq!(result["summary"], "4 tickets triaged");
    let t1 = &result["tickets"][0];
    assert_eq!(
        t1,
        &json!({ "id": "T-1", "subject": "No hot water in room 305", "status": "open",
                             "priority": "urgent", "action": "escalate_to_human" })
    );
    for t in result["tickets"].as_array().unwrap() {
        for k in ["id", "subject", "status", "priority", "action"] {
            assert!(t.get(k).is_some(), "ticket lacks {k}: {t}");
        }
    }
    let events = engine.events(run.id).await.unwrap();
    assert!(golden::has_minimum_events(&events), "{:?}", kinds(&events));
    assert!(
        events.windows(2).all(|w| w[1].seq == w[0].seq + 1),
        "gap-free sequence"
    );
    pool.shutdown().await;
}
