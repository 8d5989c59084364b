//! The executor of a chat turn: the main model, shown only the Top-N tools, calls them one
//! at a time through the tool runtime within the task's caps; a call that needs
//! confirmation is previewed and pauses the task.

use std::sync::Arc;

use crate::agent::Agent;
use crate::chat::{preview, RouterDecision};
use crate::engine::gate;
use crate::engine::limits;
use crate::engine::llm::{call_llm, request_for, LlmCaller};
use crate::engine::step::{Interrupt, NodeResult, StepCtx};
use crate::engine::tool_runtime::{self, Caller};
use crate::event::{ChatStepPayload, LlmPurpose};
use crate::llm::{Message, ToolCallRequest, ToolChoice};
use crate::tool::{tool_definition, ToolNameMap, ToolSpec};
use crate::workflow::ChatNode;

use super::super::agent::ends_the_step;
use super::Answer;

/// What one tool call came to, as the executor's loop counts it.
struct CallOutcome {
    /// What the model is shown (a result, an error, a refusal).
    content: String,
    /// Whether the call was executed (counts against the tool-call cap).
    executed: bool,
    /// Whether it was executed and failed (counts against the retry cap).
    failed: bool,
}

/// Runs the executor's loop on `history`, offering `tools`.
pub(super) async fn run(
    sc: &mut StepCtx<'_>,
    node: &ChatNode,
    agent: &Agent,
    decision: &RouterDecision,
    mut history: Vec<Message>,
    tools: Vec<Arc<ToolSpec>>,
) -> NodeResult<Answer> {
    let names = ToolNameMap::from_ids(tools.iter().map(|t| t.id.as_str()));
    let definitions: Vec<_> = tools
        .iter()
        .filter_map(|t| {
            names
                .function_name(&t.id)
                .map(|n| tool_definition(t, n.to_string()))
        })
        .collect();
    let caller = LlmCaller {
        agent_id: &agent.id,
        provider: &agent.model_profile.provider,
        purpose: LlmPurpose::Agent,
    };
    let limits = &node.limits;
    let (mut executed, mut failed) = (0u32, 0u32);
    for _ in 0..limits.max_turns.max(1) {
        let mut req = request_for(agent, history.clone());
        if !definitions.is_empty() {
            req.tools = definitions.clone();
            req.tool_choice = ToolChoice::Auto;
        }
        let resp = call_llm(sc, &caller, req).await?;
        if resp.tool_calls.is_empty() {
            return Ok(Answer {
                text: resp.text.unwrap_or_default(),
                limit: None,
            });
        }
        history.push(Message::Assistant {
            content: resp.text.clone(),
            tool_calls: resp.tool_calls.clone(),
        });
        for call in &resp.tool_calls {
            if executed >= limits.max_tool_calls {
                return Ok(Answer::limited(
                    "tool_calls",
                    format!(
                        "I stopped here: this task reached its limit of {} tool calls. \
                         Ask again to continue with what is left.",
                        limits.max_tool_calls
                    ),
                ));
            }
            let spec = names
                .tool_id(&call.name)
                .and_then(|id| tools.iter().find(|t| t.id == id));
            let CallOutcome {
                content,
                executed: ran,
                failed: bad,
            } = match spec {
                Some(spec) => call_tool(sc, node, agent, decision, spec, call).await?,
                None => CallOutcome {
                    content: limits::tool_message(
                        &Err(crate::Error::InvalidInput(format!(
                            "tool `{}` is not available in this chat turn",
                            call.name
                        ))),
                        0,
                        sc.exec.config.max_error_message_bytes,
                    ),
                    executed: false,
                    failed: false,
                },
            };
            executed += u32::from(ran);
            failed += u32::from(bad);
            if failed > limits.max_retries {
                return Ok(Answer::limited(
                    "retries",
                    format!(
                        "I stopped here: tool calls failed {failed} times, more than the \
                         {} retries this task allows. The last error: {}",
                        limits.max_retries,
                        crate::text::prefix(&content, 500)
                    ),
                ));
            }
            history.push(Message::Tool {
                call_id: call.id.clone(),
                content,
            });
        }
    }
    Ok(Answer::limited(
        "turns",
        format!(
            "I stopped here: this task reached its limit of {} model turns.",
            limits.max_turns
        ),
    ))
}

/// One tool call: confirmation preview when it needs one, then policy → approval →
/// validation → hub → ledger.
async fn call_tool(
    sc: &mut StepCtx<'_>,
    node: &ChatNode,
    agent: &Agent,
    decision: &RouterDecision,
    spec: &Arc<ToolSpec>,
    call: &ToolCallRequest,
) -> NodeResult<CallOutcome> {
    let above_ceiling = spec.risk_level > sc.exec.config.agent_tool_gate.max_risk;
    let confirm = node
        .confirm
        .needs_confirmation(spec, decision.requires_confirmation);
    let spec = if confirm && !spec.requires_confirmation {
        Arc::new(ToolSpec {
            requires_confirmation: true,
            ..(**spec).clone()
        })
    } else {
        spec.clone()
    };
    if confirm || above_ceiling {
        // Emitted on every execution of the step (replays included) so the trace's event
        // count stays the same; the copy committed at the pause is not appended again.
        sc.emit(ChatStepPayload::AwaitingConfirm {
            gate_id: format!("tool:{}:{}:{}", sc.index, sc.peek_seq(), spec.id),
            tool_id: spec.id.clone(),
            preview: preview(&spec, &call.arguments),
            args_digest: gate::digest(&call.arguments),
        });
    }
    let config = &sc.exec.config;
    let (max_output, max_error) = (config.max_tool_output_bytes, config.max_error_message_bytes);
    let prepared = tool_runtime::prepare(
        sc,
        spec,
        call.arguments.clone(),
        Caller::Agent(&agent.id),
        None,
    )
    .await?;
    let prepared = match prepared {
        Ok(p) => p.with_call_id(&call.id),
        Err(e) => {
            return Ok(CallOutcome {
                content: limits::tool_message(&Err(e), max_output, max_error),
                executed: false,
                failed: false,
            })
        }
    };
    let (p, result, ms) = tool_runtime::execute(sc, prepared).await;
    let result = match tool_runtime::finish(sc, p, result, ms).result {
        Err(e) if ends_the_step(&e) => return Err(Interrupt::Fail(e)),
        result => result,
    };
    Ok(CallOutcome {
        failed: result.is_err(),
        content: limits::tool_message(&result, max_output, max_error),
        executed: true,
    })
}
