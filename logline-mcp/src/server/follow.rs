//! Following a run for an MCP call: step progress as `notifications/progress`, a human gate
//! as an elicitation (or a "paused, awaiting approval" answer), the result as
//! `structuredContent`.

use futures::StreamExt;
use logline_core::engine::ScopedEngine;
use logline_core::event::{Event, EventKind};
use logline_core::run::{Run, RunId, RunStatus};
use rmcp::model::{
    CallToolResult, ElicitRequestParams, ElicitationAction, ProgressNotificationParam,
    ProgressToken,
};
use rmcp::service::{RequestContext, RoleServer};
use serde_json::{json, Value};

use super::ServerInner;

/// An `isError` result with `message`.
pub(crate) fn error_result(message: &str) -> CallToolResult {
    serde_json::from_value(json!({
        "content": [{"type": "text", "text": message}],
        "isError": true,
    }))
    .unwrap_or_else(|_| CallToolResult::error(Vec::new()))
}

/// A result with `structured` as `structuredContent` and its JSON as text.
fn structured_result(structured: Value, is_error: bool) -> CallToolResult {
    let text = structured.to_string();
    serde_json::from_value(json!({
        "content": [{"type": "text", "text": text}],
        "structuredContent": structured,
        "isError": is_error,
    }))
    .unwrap_or_else(|_| CallToolResult::error(Vec::new()))
}

/// What the client gets for `run` as it stands.
fn run_result(run: &Run) -> CallToolResult {
    let status = run.status.as_str();
    match run.status {
        RunStatus::Completed => structured_result(
            json!({"run_id": run.id, "status": status, "result": run.result}),
            false,
        ),
        RunStatus::Failed | RunStatus::Cancelled => structured_result(
            json!({"run_id": run.id, "status": status, "error": run.error}),
            true,
        ),
        RunStatus::Paused => {
            let gate = run.pending_gate.as_ref().map(|g| {
                json!({"gate_id": g.gate_id, "reason": g.reason, "required_role": g.required_role})
            });
            structured_result(
                json!({"run_id": run.id, "status": "paused, awaiting approval", "gate": gate}),
                false,
            )
        }
        RunStatus::Pending | RunStatus::Running => {
            structured_result(json!({"run_id": run.id, "status": status}), false)
        }
    }
}

/// Follows `run_id` until it ends, pauses at a gate nobody decides here, the call's wait
/// runs out (the answer then says `running`: resume with the run-status tool) or the client
/// cancels the call (the run is cancelled).
pub(crate) async fn follow(
    inner: &ServerInner,
    scoped: &ScopedEngine,
    run_id: RunId,
    ctx: &RequestContext<RoleServer>,
) -> CallToolResult {
    let deadline = tokio::time::Instant::now() + inner.max_wait;
    let mut events = match scoped.subscribe(run_id, 0).await {
        Ok(s) => s,
        Err(e) => return error_result(&e.to_string()),
    };
    let token = ctx.meta.get_progress_token();
    let mut seen = 0u64;
    loop {
        let waited = {
            let wait = scoped.wait(run_id);
            tokio::pin!(wait);
            loop {
                tokio::select! {
                    run = &mut wait => break Some(run),
                    ev = events.next() => {
                        if let Some(Ok(ev)) = ev {
                            notify_step(&ev, &mut seen, token.as_ref(), ctx).await;
                        }
                    }
                    _ = tokio::time::sleep_until(deadline) => break None,
                    _ = ctx.ct.cancelled() => {
                        let _ = scoped.cancel(run_id, "the MCP client cancelled the call").await;
                        return error_result("cancelled by the client");
                    }
                }
            }
        };
        // Steps the stream had not delivered yet when the wait ended.
        if let Ok(all) = scoped.events(run_id).await {
            for ev in &all {
                notify_step(ev, &mut seen, token.as_ref(), ctx).await;
            }
        }
        let run = match waited {
            None => match scoped.get_run(run_id).await {
                Ok(run) => return run_result(&run),
                Err(e) => return error_result(&e.to_string()),
            },
            Some(Ok(run)) => run,
            Some(Err(e)) => return error_result(&e.to_string()),
        };
        if run.status != RunStatus::Paused {
            return run_result(&run);
        }
        match ask_approval(scoped, &run, ctx).await {
            Decision::Decided => continue,
            Decision::Undecided(note) => {
                let mut r = run_result(&run);
                if let Some(note) = note {
                    if let Some(Value::Object(s)) = &mut r.structured_content {
                        s.insert("note".into(), Value::String(note));
                    }
                }
                return r;
            }
        }
    }
}

/// Reports a completed step as progress (the count of completed steps).
async fn notify_step(
    ev: &Event,
    seen: &mut u64,
    token: Option<&ProgressToken>,
    ctx: &RequestContext<RoleServer>,
) {
    if ev.seq <= *seen {
        return;
    }
    *seen = ev.seq;
    if ev.kind != EventKind::StepCompleted {
        return;
    }
    let Some(t) = token else { return };
    let node = ev.payload["node_id"].as_str().unwrap_or_default();
    let p = ProgressNotificationParam::new(t.clone(), ev.seq as f64)
        .with_message(format!("{node} done"));
    let _ = ctx.peer.notify_progress(p).await;
}

enum Decision {
    /// Approved or denied: the run goes on.
    Decided,
    /// Left paused, with why.
    Undecided(Option<String>),
}

/// Asks the client to decide the gate `run` is paused at, when it supports elicitation;
/// the decision is the principal's (roles and self-approval rules apply).
async fn ask_approval(
    scoped: &ScopedEngine,
    run: &Run,
    ctx: &RequestContext<RoleServer>,
) -> Decision {
    let Some(gate) = &run.pending_gate else {
        return Decision::Undecided(None);
    };
    if ctx.peer.supported_elicitation_modes().is_empty() {
        return Decision::Undecided(None);
    }
    let params: ElicitRequestParams = match serde_json::from_value(json!({
        "mode": "form",
        "message": format!("Approve? {}", gate.reason),
        "requestedSchema": {
            "type": "object",
            "properties": {
                "approve": {"type": "boolean", "title": "Approve", "description": "Approve the step"},
                "reason": {"type": "string", "title": "Reason"},
            },
            "required": ["approve"],
        },
    })) {
        Ok(p) => p,
        Err(e) => return Decision::Undecided(Some(format!("elicitation: {e}"))),
    };
    let answer = match ctx.peer.create_elicitation(params).await {
        Ok(a) => a,
        Err(e) => return Decision::Undecided(Some(format!("elicitation failed: {e}"))),
    };
    // `decline` is the user saying no; `cancel` (dismissed) leaves the gate to someone else.
    let content = match answer.action {
        ElicitationAction::Accept => answer.content.unwrap_or(Value::Null),
        ElicitationAction::Decline => {
            json!({"approve": false, "reason": "declined by the MCP client"})
        }
        _ => return Decision::Undecided(Some("the client did not answer".into())),
    };
    let reason = content["reason"].as_str().filter(|s| !s.is_empty());
    let decided = if content["approve"] == json!(true) {
        scoped.approve(run.id, &gate.gate_id, reason).await
    } else {
        scoped
            .deny(
                run.id,
                &gate.gate_id,
                reason.unwrap_or("denied by the MCP client"),
            )
            .await
    };
    match decided {
        Ok(_) => Decision::Decided,
        Err(e) => Decision::Undecided(Some(e.to_string())),
    }
}
