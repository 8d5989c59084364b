//! Tenant-boundary checks of the engine on a backend: every run operation of a
//! [`ScopedEngine`] on another tenant's run is `NotFound`, lists are tenant-filtered by the
//! store, starts act for the principal, and gate decisions need the right person.
//!
//! Each check gets an [`EngineBuilder`] wired to fresh backends and adds what it needs. The
//! engines run no workers: runs are executed inline with [`Engine::execute`].

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::json;

use crate::agent::{Agent, ModelProfile};
use crate::engine::{Engine, EngineBuilder, EngineConfig, Principal, ScopedEngine, StartRun};
use crate::error::{Error, ErrorKind, Result};
use crate::run::{Run, RunId, RunStatus, Subject};
use crate::store::{Page, RunFilter};
use crate::testing::ScriptedLlm;
use crate::workflow::{Workflow, WorkflowDefinition};

const TENANT_A: &str = "tenant-a";
const TENANT_B: &str = "tenant-b";

/// Alice of tenant A (approver).
fn alice() -> Principal {
    Principal::user(TENANT_A, "alice").with_role("approver")
}

/// Another approver of tenant A.
fn carol() -> Principal {
    Principal::user(TENANT_A, "carol").with_role("approver")
}

/// An administrator of tenant B: every role, the wrong tenant.
fn bob() -> Principal {
    Principal::user(TENANT_B, "bob")
        .with_role("admin")
        .with_role("approver")
        .with_role("finance")
}

/// A one-gate workflow `gated` whose gate node carries `gate_config`.
async fn gated_engine(builder: EngineBuilder, gate_config: serde_json::Value) -> Engine {
    let engine = builder.build().await.expect("build");
    let def: WorkflowDefinition = serde_json::from_value(json!({
        "entry": "ask",
        "nodes": [
            {"id": "ask", "type": "human_gate", "config": gate_config},
            {"id": "done", "type": "static", "config": {"output": {"ok": true}}}
        ],
        "edges": [{"from": "ask", "to": "done"}]
    }))
    .expect("definition");
    engine
        .register_workflow(&Workflow::new("gated", "Gated", def))
        .await
        .expect("register");
    engine
}

/// Starts `gated` through `scoped` and executes it up to its gate.
async fn paused_run(engine: &Engine, scoped: &ScopedEngine) -> Run {
    let run = scoped
        .start_run(StartRun::new(
            "gated",
            json!({"amount": 120}),
            Subject::default(),
        ))
        .await
        .expect("start");
    let run = engine.execute(run.id).await.expect("execute");
    assert_eq!(run.status, RunStatus::Paused, "{:?}", run.error);
    run
}

fn gate_of(run: &Run) -> String {
    run.pending_gate
        .as_ref()
        .expect("a pending gate")
        .gate_id
        .clone()
}

/// `r` is exactly the error of a missing run `id`.
fn assert_hidden<T: std::fmt::Debug>(r: Result<T>, id: RunId, what: &str) {
    let e = r.expect_err(what);
    let missing = Error::not_found("run", id);
    assert_eq!(e.kind(), ErrorKind::NotFound, "{what}: {e}");
    assert_eq!(e.to_string(), missing.to_string(), "{what}");
}

fn assert_denied<T: std::fmt::Debug>(r: Result<T>, what: &str) {
    let e = r.expect_err(what);
    assert_eq!(e.kind(), ErrorKind::PolicyDenied, "{what}: {e}");
}

/// Tenant B tries every run operation on tenant A's paused run and gets `NotFound`, the
/// same answer as for a run that does not exist; A's run is unchanged afterwards.
pub async fn other_tenants_runs_are_not_found(builder: EngineBuilder) {
    let engine = gated_engine(builder, json!({})).await;
    let a = engine.scoped(alice());
    let b = engine.scoped(bob());
    let run = paused_run(&engine, &a).await;
    let gate = gate_of(&run);
    let events_before = engine.events(run.id).await.expect("events").len();
    let id = run.id;

    assert_hidden(b.get_run(id).await, id, "get_run");
    assert_hidden(b.events(id).await, id, "events");
    assert_hidden(b.steps(id).await, id, "steps");
    assert_hidden(b.subscribe(id, 0).await.map(|_| ()), id, "subscribe");
    assert_hidden(b.progress(id).await.map(|_| ()), id, "progress");
    assert_hidden(b.wait(id).await, id, "wait");
    assert_hidden(b.cancel(id, "mine now").await, id, "cancel");
    assert_hidden(b.approve(id, &gate, Some("sure")).await, id, "approve");
    assert_hidden(b.deny(id, &gate, "no").await, id, "deny");
    let listed = b
        .list_runs(RunFilter {
            tenant_id: Some(TENANT_A.into()),
            ..Default::default()
        })
        .await
        .expect("list");
    assert!(listed.is_empty(), "B lists none of A's runs: {listed:?}");

    let missing = RunId::now_v7();
    assert_hidden(b.get_run(missing).await, missing, "a missing run");

    let after = engine.get_run(id).await.expect("get");
    assert_eq!(after, run, "A's run is unchanged");
    assert_eq!(
        engine.events(id).await.expect("events").len(),
        events_before,
        "no event was added"
    );

    // Tenant A sees and decides its own run.
    let mine = a.list_runs(RunFilter::default()).await.expect("list");
    assert_eq!(mine.iter().map(|r| r.id).collect::<Vec<_>>(), vec![id]);
    assert_eq!(a.events(id).await.expect("events").len(), events_before);
    let approved = carol_approves(&engine, id, &gate).await;
    assert_eq!(
        approved.status,
        RunStatus::Completed,
        "{:?}",
        approved.error
    );
}

async fn carol_approves(engine: &Engine, id: RunId, gate: &str) -> Run {
    let run = engine
        .scoped(carol())
        .approve(id, gate, Some("ok"))
        .await
        .expect("approve");
    assert_eq!(
        run.approvals.last().map(|a| a.approver.as_str()),
        Some("carol")
    );
    engine.execute(id).await.expect("execute")
}

/// A start through the scoped handle acts for the principal, whatever the request's subject
/// says; a role the principal does not hold is refused.
pub async fn start_acts_for_the_principal(builder: EngineBuilder) {
    let engine = gated_engine(builder, json!({})).await;
    let a = engine.scoped(alice());
    let forged = Subject::tenant(TENANT_B).with_user("mallory");
    let run = a
        .start_run(StartRun::new("gated", json!({}), forged))
        .await
        .expect("start");
    assert_eq!(run.subject.tenant_id, TENANT_A);
    assert_eq!(run.subject.user_id.as_deref(), Some("alice"));
    assert_eq!(run.subject.role.as_deref(), Some("approver"));
    assert_eq!(
        engine.get_run(run.id).await.expect("get").subject,
        run.subject
    );

    let admin = Subject::tenant(TENANT_A).with_role("admin");
    assert_denied(
        a.start_run(StartRun::new("gated", json!({}), admin)).await,
        "a role alice does not hold",
    );
}

/// Lists through the scoped handle hold only the tenant's runs, paged after filtering.
pub async fn lists_are_tenant_filtered(builder: EngineBuilder) {
    let engine = gated_engine(builder, json!({})).await;
    let (a, b) = (engine.scoped(alice()), engine.scoped(bob()));
    let mut a_ids = Vec::new();
    for i in 0..3 {
        let ra = a.start_run(StartRun::new(
            "gated",
            json!({ "i": i }),
            Subject::default(),
        ));
        a_ids.push(ra.await.expect("start a").id);
        b.start_run(StartRun::new(
            "gated",
            json!({ "i": i }),
            Subject::default(),
        ))
        .await
        .expect("start b");
    }
    let all = a.list_runs(RunFilter::default()).await.expect("list");
    assert_eq!(all.len(), 3);
    assert!(all.iter().all(|r| r.subject.tenant_id == TENANT_A));
    let second = a
        .list_runs(RunFilter {
            page: Page {
                offset: 1,
                limit: 1,
            },
            ..Default::default()
        })
        .await
        .expect("page");
    assert_eq!(
        second.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![a_ids[1]],
        "the page is taken from the tenant's runs, newest first"
    );
    let everyone = engine.list_runs(&RunFilter::default()).await.expect("all");
    assert_eq!(everyone.len(), 6, "the unscoped engine sees every tenant");
}

/// A gate names the role its approver needs; without one, the engine's approver roles
/// decide. Approvals and denials need an authenticated user.
pub async fn gate_decisions_need_the_role(builder: EngineBuilder) {
    let engine = gated_engine(builder, json!({"required_role": "finance"})).await;
    let a = engine.scoped(alice());
    let run = paused_run(&engine, &a).await;
    let gate = gate_of(&run);
    assert_denied(
        a.approve(run.id, &gate, None).await,
        "approver without finance",
    );
    assert_denied(a.deny(run.id, &gate, "no").await, "deny without finance");
    let service = engine.scoped(Principal::service(TENANT_A).with_role("finance"));
    assert_denied(service.approve(run.id, &gate, None).await, "no user");
    assert_eq!(
        engine.get_run(run.id).await.expect("get"),
        run,
        "still paused"
    );

    let finance = engine.scoped(Principal::user(TENANT_A, "fiona").with_role("finance"));
    let approved = finance.approve(run.id, &gate, Some("budget ok")).await;
    let approved = approved.expect("finance approves");
    assert_eq!(approved.approvals[0].approver, "fiona");

    // Without a role on the gate: `admin` or `approver`.
    register_plain_gate(&engine).await;
    let user = engine.scoped(Principal::user(TENANT_A, "uma").with_role("user"));
    let run = paused_run(&engine, &user).await;
    let gate = gate_of(&run);
    assert_denied(user.approve(run.id, &gate, None).await, "a plain user");
    let denied = engine
        .scoped(Principal::user(TENANT_A, "ada").with_role("admin"))
        .deny(run.id, &gate, "not now")
        .await
        .expect("an admin denies");
    assert_eq!(denied.status, RunStatus::Failed);
}

/// Registers `gated` again without a role requirement (version 2.0.0, the latest).
async fn register_plain_gate(engine: &Engine) {
    let def: WorkflowDefinition = serde_json::from_value(json!({
        "entry": "ask",
        "nodes": [{"id": "ask", "type": "human_gate"}]
    }))
    .expect("definition");
    engine
        .register_workflow(&Workflow::new("gated", "Gated", def).with_version("2.0.0"))
        .await
        .expect("register");
}

/// A gate (or the engine) that forbids self-approval refuses the run's own user; another
/// approver may approve, and the run's user may still deny.
pub async fn self_approval_is_refused_where_forbidden(builder: EngineBuilder) {
    let engine = gated_engine(builder, json!({"forbid_self_approval": true})).await;
    let a = engine.scoped(alice());
    let run = paused_run(&engine, &a).await;
    let gate = gate_of(&run);
    assert_denied(a.approve(run.id, &gate, None).await, "self-approval");
    let run = carol_approves(&engine, run.id, &gate).await;
    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.error);

    let run = paused_run(&engine, &a).await;
    let denied = a.deny(run.id, &gate_of(&run), "changed my mind").await;
    assert_eq!(denied.expect("self-denial").status, RunStatus::Failed);
}

/// With `ApprovalRules::forbid_self_approval` on the engine, no gate is self-approved.
pub async fn engine_rule_forbids_self_approval(builder: EngineBuilder) {
    let mut config = EngineConfig::default();
    config.approvals.forbid_self_approval = true;
    let engine = gated_engine(builder.config(config), json!({})).await;
    let a = engine.scoped(alice());
    let run = paused_run(&engine, &a).await;
    let gate = gate_of(&run);
    assert_denied(a.approve(run.id, &gate, None).await, "self-approval");
    let run = carol_approves(&engine, run.id, &gate).await;
    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.error);
}

/// Progress through the scoped handle carries only that run's deltas.
pub async fn progress_is_per_run(builder: EngineBuilder) {
    let llm = ScriptedLlm::new()
        .reply_text("words of b")
        .reply_text("words of a");
    let engine = builder
        .default_llm(Arc::new(llm))
        .build()
        .await
        .expect("build");
    engine
        .register_agent(&Agent::new("agent.s", "Say it.", ModelProfile::new("m")))
        .await
        .expect("agent");
    let def: WorkflowDefinition = serde_json::from_value(json!({
        "entry": "a",
        "nodes": [{"id": "a", "type": "agent_node", "config": {"agent_id": "agent.s"}}]
    }))
    .expect("definition");
    engine
        .register_workflow(&Workflow::new("say", "Say", def))
        .await
        .expect("register");
    let (a, b) = (engine.scoped(alice()), engine.scoped(bob()));
    let start = |s: &ScopedEngine| {
        let s = s.clone();
        async move {
            s.start_run(StartRun::new("say", json!({}), Subject::default()))
                .await
                .expect("start")
        }
    };
    let (run_a, run_b) = (start(&a).await, start(&b).await);
    let mut progress = a.progress(run_a.id).await.expect("progress");
    engine.execute(run_b.id).await.expect("execute b");
    engine.execute(run_a.id).await.expect("execute a");
    let first = tokio::time::timeout(Duration::from_secs(10), progress.next())
        .await
        .expect("a delta of run A arrives")
        .expect("the stream is open");
    assert_eq!(
        (first.run_id, first.delta.as_str()),
        (run_a.id, "words of a"),
        "run B's delta, broadcast first, is not shown"
    );
}
