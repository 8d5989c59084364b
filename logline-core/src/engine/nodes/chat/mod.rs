//! `chat`: one chat turn as one step — rolling summary (cheap model) → router (cheap model,
//! strict JSON) → direct answer, or gate + Top-N tool search → executor (main model, only
//! the Top-N tools) → tool calls through the tool runtime, risky ones confirmed first →
//! the answer saved to the conversation.
//!
//! Every model and tool call goes through the effect ledger, so a resumed task (crash, lost
//! lease, confirmation) replays them instead of repeating them. Store writes are idempotent
//! (last-write router decision, monotonic summary, one answer per task).

mod executor;

use std::sync::Arc;

use serde_json::{json, Value};

use crate::agent::{Agent, ToolQuery};
use crate::chat::{cut, ChatScope, ChatStore, ChatTaskInput, RouterDecision};
use crate::engine::app_scope::AppTools;
use crate::engine::llm::{call_llm, check_agent_call, request_for, LlmCaller};
use crate::engine::step::{NodeResult, StepCtx};
use crate::error::{Error, Result};
use crate::event::{ChatStepPayload, ErrorPayload, LlmPurpose};
use crate::llm::{Message, OutputSchema};
use crate::tool::ToolSpec;
use crate::workflow::ChatNode;

/// Built-in instructions of the summariser.
const SUMMARY_INSTRUCTIONS: &str = "You keep a short running summary of a conversation. \
Given the current summary and newer messages, write the updated summary: facts, decisions \
and open requests only, plain text.";

/// The state one chat turn works with.
struct Turn<'n> {
    node: &'n ChatNode,
    input: ChatTaskInput,
    store: Arc<dyn ChatStore>,
    scope: ChatScope,
}

/// How a turn ended: the answer, and the cap that cut it short, if any.
pub(super) struct Answer {
    pub text: String,
    pub limit: Option<&'static str>,
}

impl Answer {
    fn limited(limit: &'static str, text: String) -> Self {
        Answer {
            text,
            limit: Some(limit),
        }
    }
}

/// Runs one chat turn on the task input; returns `{"text", "message_id", "router", "limit"}`.
pub(super) async fn run(sc: &mut StepCtx<'_>, node: &ChatNode, input: &Value) -> NodeResult<Value> {
    let input: ChatTaskInput = serde_json::from_value(input.clone())
        .map_err(|e| Error::InvalidInput(format!("chat task input: {e}")))?;
    let store = sc.exec.chat_store.clone().ok_or_else(|| {
        Error::InvalidInput("a chat node needs a chat store (EngineBuilder::chat_store)".into())
    })?;
    let scope = ChatScope::of_subject(&sc.run.subject)?;
    let turn = Turn {
        node,
        input,
        store,
        scope,
    };
    if let Some(over) = attachments_over(&turn) {
        return finish(sc, &turn, None, over).await;
    }
    let router = sc.exec.store.get_agent(&node.router_agent_id).await?;
    check_agent_call(sc, &router.id).await?;
    let summary = summarize(sc, &turn, &router).await?;
    let Some(decision) = route(sc, &turn, &router, summary.as_deref()).await? else {
        let text = format!(
            "I could not work out what to do with this message: the router gave no valid \
             answer in {} attempts. Please rephrase it.",
            node.limits.max_retries + 1
        );
        return finish(sc, &turn, None, Answer::limited("retries", text)).await;
    };
    let decision_json = decision.to_json();
    turn.store
        .set_router_output(&turn.scope, sc.run.id, &decision_json)
        .await?;
    sc.emit(ChatStepPayload::Router {
        decision: decision_json,
    });
    if !decision.needs_tools {
        if let Some(answer) = decision.answer.as_deref().filter(|a| !a.trim().is_empty()) {
            let answer = Answer {
                text: answer.to_string(),
                limit: None,
            };
            return finish(sc, &turn, Some(&decision), answer).await;
        }
    }
    let executor = sc.exec.store.get_agent(&node.executor_agent_id).await?;
    check_agent_call(sc, &executor.id).await?;
    let tools = if decision.needs_tools {
        let tools = select_tools(sc, &turn, &executor, &decision).await?;
        sc.emit(ChatStepPayload::ToolsSelected {
            tools: tools.iter().map(|t| t.id.clone()).collect(),
        });
        tools
    } else {
        Vec::new()
    };
    let history = turn.input.conversation(summary.as_deref());
    let answer = executor::run(sc, node, &executor, &decision, history, tools).await?;
    finish(sc, &turn, Some(&decision), answer).await
}

/// The attachment cap this message exceeds, as the answer that says so.
fn attachments_over(turn: &Turn<'_>) -> Option<Answer> {
    let limits = &turn.node.limits;
    let files = &turn.input.attachments;
    let total: u64 = files.iter().map(|a| a.size_bytes).sum();
    if files.len() > limits.max_attachments as usize {
        return Some(Answer::limited(
            "attachments",
            format!(
                "This message has {} attachments; at most {} can be handled per message.",
                files.len(),
                limits.max_attachments
            ),
        ));
    }
    (total > limits.max_attachment_bytes).then(|| {
        Answer::limited(
            "attachments",
            format!(
                "The attachments of this message total {total} bytes; the limit is {} bytes.",
                limits.max_attachment_bytes
            ),
        )
    })
}

/// Folds the messages the summary does not cover yet into it (one cheap-model call) and
/// saves it; returns the summary the turn uses.
async fn summarize(
    sc: &mut StepCtx<'_>,
    turn: &Turn<'_>,
    router: &Agent,
) -> NodeResult<Option<String>> {
    let input = &turn.input;
    let Some(last) = input.to_summarize.last() else {
        return Ok(input.summary.clone());
    };
    let agent = match &turn.node.summary_agent_id {
        Some(id) => sc.exec.store.get_agent(id).await?,
        None => {
            let mut a = router.clone();
            a.instructions = SUMMARY_INSTRUCTIONS.into();
            a
        }
    };
    let prompt = format!(
        "Current summary: {}\n\nNewer messages:\n{}\n\nWrite the updated summary in at most {} characters.",
        input.summary.as_deref().unwrap_or("(none)"),
        input.unsummarized_transcript(),
        input.max_summary_bytes
    );
    let caller = LlmCaller {
        agent_id: &agent.id,
        provider: &agent.model_profile.provider,
        purpose: LlmPurpose::Summary,
    };
    let resp = call_llm(
        sc,
        &caller,
        request_for(&agent, vec![Message::user(prompt)]),
    )
    .await?;
    let text = cut(
        resp.text.as_deref().unwrap_or_default().trim(),
        input.max_summary_bytes,
    );
    if text.is_empty() {
        return Ok(input.summary.clone());
    }
    turn.store
        .set_summary(&turn.scope, input.conversation_id, &text, last.seq)
        .await?;
    Ok(Some(text))
}

/// Asks the router (strict JSON), retrying invalid answers up to the retry cap; `None` when
/// every attempt was invalid.
async fn route(
    sc: &mut StepCtx<'_>,
    turn: &Turn<'_>,
    router: &Agent,
    summary: Option<&str>,
) -> NodeResult<Option<RouterDecision>> {
    let caller = LlmCaller {
        agent_id: &router.id,
        provider: &router.model_profile.provider,
        purpose: LlmPurpose::Router,
    };
    let mut messages = turn.input.conversation(summary);
    for _ in 0..=turn.node.limits.max_retries {
        let mut req = request_for(router, messages.clone());
        req.output_schema = Some(OutputSchema {
            name: "router_decision".into(),
            schema: crate::chat::router_schema(),
            strict: true,
        });
        let resp = call_llm(sc, &caller, req).await?;
        match resp.json().and_then(|v| RouterDecision::parse(&v)) {
            Ok(d) => return Ok(Some(d)),
            Err(e) => {
                sc.emit(ErrorPayload::agent_retry(&router.id, e.to_recorded()));
                messages.push(Message::Assistant {
                    content: resp.text.clone(),
                    tool_calls: Vec::new(),
                });
                messages.push(Message::user(format!(
                    "That answer was invalid ({e}). Reply with only JSON matching the schema."
                )));
            }
        }
    }
    Ok(None)
}

/// The Top-N tools for the request from the node's tool source (which applies the gate),
/// steered by the router's intent and candidate apps; in a run of an app, only those its
/// manifest's scopes name.
async fn select_tools(
    sc: &StepCtx<'_>,
    turn: &Turn<'_>,
    executor: &Agent,
    decision: &RouterDecision,
) -> Result<Vec<Arc<ToolSpec>>> {
    let name = &turn.node.tool_source;
    let source = sc.exec.tool_sources.get(name).ok_or_else(|| {
        Error::InvalidInput(format!("chat tool source `{name}` is not registered"))
    })?;
    let request = turn.input.request();
    let app = AppTools::of_run(sc).await?;
    let mut specs = source
        .tools(&ToolQuery {
            subject: &sc.run.subject,
            agent_id: &executor.id,
            request: &request,
            top_n: Some(turn.node.top_n),
            intent: Some(&decision.intent),
            candidate_apps: &decision.candidate_apps,
            app_tools: app.as_ref().map(AppTools::ids),
        })
        .await?;
    if let Some(app) = &app {
        app.retain(&mut specs);
    }
    Ok(specs)
}

/// Saves the answer to the conversation (once per task) and ends the turn.
async fn finish(
    sc: &mut StepCtx<'_>,
    turn: &Turn<'_>,
    decision: Option<&RouterDecision>,
    answer: Answer,
) -> NodeResult<Value> {
    let message = turn
        .store
        .add_assistant_message(&turn.scope, sc.run.id, &answer.text)
        .await?;
    sc.emit(ChatStepPayload::Final {
        text: answer.text.clone(),
        limit: answer.limit.map(String::from),
    });
    Ok(json!({
        "text": answer.text,
        "message_id": message.id,
        "router": decision.map(RouterDecision::to_json),
        "limit": answer.limit,
    }))
}
