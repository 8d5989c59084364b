//! `agent_node`: an agent's tool loop. Its tools come from the agent's static list or from a
//! [`crate::agent::ToolSource`], read once per step; only those tools can be called.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{json, Value};

use crate::agent::{Agent, ToolQuery};
use crate::engine::app_scope::AppTools;
use crate::engine::limits;
use crate::engine::llm::{as_text, call_llm, check_agent_call, request_for, LlmCaller};
use crate::engine::step::{Interrupt, NodeResult, StepCtx};
use crate::engine::tool_runtime::{self, Caller};
use crate::error::{Error, Result};
use crate::event::LlmPurpose;
use crate::llm::{LlmResponse, Message, OutputSchema, ToolChoice, ToolDefinition};
use crate::tool::{tool_definition, ToolNameMap, ToolSpec};
use crate::workflow::AgentNode;

/// The tools one agent step may use: the definitions shown to the model and the map back
/// from function names to the specs.
struct Offered {
    definitions: Vec<ToolDefinition>,
    names: ToolNameMap,
    specs: HashMap<String, Arc<ToolSpec>>,
}

/// Reads the agent's tools once for the step: its static list, or its tool source's Top-N
/// for the step's request; in a run of an app, only those its manifest's scopes name.
async fn offered_tools(sc: &StepCtx<'_>, agent: &Agent, request: &str) -> Result<Offered> {
    let app = AppTools::of_run(sc).await?;
    let mut specs: Vec<Arc<ToolSpec>> = match &agent.tool_search {
        None => {
            let mut specs = Vec::with_capacity(agent.allowed_tools.len());
            for tool_id in &agent.allowed_tools {
                specs.push(sc.exec.store.get_tool_spec(tool_id).await?);
            }
            specs
        }
        Some(search) => {
            let source = sc.exec.tool_sources.get(&search.source).ok_or_else(|| {
                Error::InvalidInput(format!(
                    "agent `{}` searches tool source `{}`, which is not registered",
                    agent.id, search.source
                ))
            })?;
            source
                .tools(&ToolQuery {
                    subject: &sc.run.subject,
                    agent_id: &agent.id,
                    request,
                    top_n: search.top_n,
                    intent: None,
                    candidate_apps: &[],
                    app_tools: app.as_ref().map(AppTools::ids),
                })
                .await?
        }
    };
    if let Some(app) = &app {
        app.retain(&mut specs);
    }
    let names = ToolNameMap::from_ids(specs.iter().map(|s| s.id.as_str()));
    let mut definitions = Vec::with_capacity(specs.len());
    let mut by_id = HashMap::with_capacity(specs.len());
    for spec in specs {
        if let Some(name) = names.function_name(&spec.id) {
            definitions.push(tool_definition(&spec, name.to_string()));
        }
        by_id.insert(spec.id.clone(), spec);
    }
    Ok(Offered {
        definitions,
        names,
        specs: by_id,
    })
}

/// Runs an agent's tool loop on `input`; returns its structured output or `{"text": ...}`.
pub(super) async fn run(
    sc: &mut StepCtx<'_>,
    node: &AgentNode,
    input: &Value,
) -> NodeResult<Value> {
    let agent_id = node.agent_id.as_str();
    let agent = sc.exec.store.get_agent(agent_id).await?;
    check_agent_call(sc, agent_id).await?;
    let request = as_text(input);
    let offered = offered_tools(sc, &agent, &request).await?;
    let output_schema = agent.output_schema.clone();
    let max_steps = agent
        .max_steps
        .unwrap_or(sc.exec.config.agent_max_steps)
        .max(1);
    let caller = LlmCaller {
        agent_id,
        provider: &agent.model_profile.provider,
        purpose: LlmPurpose::Agent,
    };
    let mut messages = vec![Message::user(request)];
    let mut last_problem = String::new();
    for turn in 0..max_steps {
        let mut req = request_for(&agent, messages.clone());
        req.tools = offered.definitions.clone();
        req.tool_choice = ToolChoice::Auto;
        req.output_schema = output_schema.as_ref().map(|s| OutputSchema {
            name: "agent_output".into(),
            schema: s.clone(),
            strict: true,
        });
        let resp = call_llm(sc, &caller, req).await?;
        if resp.tool_calls.is_empty() {
            let Some(schema) = &output_schema else {
                return Ok(json!({ "text": resp.text.clone().unwrap_or_default() }));
            };
            let parsed = resp
                .json()
                .and_then(|v| sc.exec.schemas.validate(agent_id, schema, &v).map(|_| v));
            match parsed {
                Ok(v) => return Ok(v),
                Err(e) => {
                    last_problem = e.to_string();
                    if turn + 1 < max_steps {
                        messages.push(Message::Assistant {
                            content: resp.text.clone(),
                            tool_calls: Vec::new(),
                        });
                        messages.push(Message::user(format!(
                            "Your answer was invalid ({last_problem}). Reply again with only JSON that matches the output schema."
                        )));
                    }
                    continue;
                }
            }
        }
        messages.push(Message::Assistant {
            content: resp.text.clone(),
            tool_calls: resp.tool_calls.clone(),
        });
        let results = run_tool_calls(sc, agent_id, &offered, &resp).await?;
        for (call, content) in resp.tool_calls.iter().zip(results) {
            messages.push(Message::Tool {
                call_id: call.id.clone(),
                content,
            });
        }
    }
    let why = if last_problem.is_empty() {
        String::new()
    } else {
        format!(": {last_problem}")
    };
    Err(Error::ModelOutput(format!(
        "agent `{agent_id}` did not produce a final answer within {max_steps} LLM turns{why}"
    ))
    .into())
}

/// Prepares every call in order, executes them concurrently, then records events in order.
/// Returns the tool message content of each call (see [`limits::tool_message`]). Calls
/// beyond [`crate::engine::EngineConfig::max_parallel_tool_calls`] are answered with an
/// error and not executed.
async fn run_tool_calls(
    sc: &mut StepCtx<'_>,
    agent_id: &str,
    offered: &Offered,
    resp: &LlmResponse,
) -> NodeResult<Vec<String>> {
    let max_calls = sc.exec.config.max_parallel_tool_calls;
    let mut prepared = Vec::with_capacity(resp.tool_calls.len());
    for (i, call) in resp.tool_calls.iter().enumerate() {
        if i >= max_calls {
            prepared.push(Err(Error::InvalidInput(format!(
                "tool call `{}` was not executed: at most {max_calls} tool calls run per turn; \
                 call it again in a later turn",
                call.name
            ))));
            continue;
        }
        let spec = offered
            .names
            .tool_id(&call.name)
            .and_then(|id| offered.specs.get(id));
        let Some(spec) = spec else {
            prepared.push(Err(Error::InvalidInput(format!(
                "tool `{}` is not available to this agent",
                call.name
            ))));
            continue;
        };
        prepared.push(
            tool_runtime::prepare(
                sc,
                spec.clone(),
                call.arguments.clone(),
                Caller::Agent(agent_id),
                None,
            )
            .await?
            .map(|p| p.with_call_id(&call.id)),
        );
    }
    let shared: &StepCtx<'_> = sc;
    let runs = prepared.into_iter().map(|p| async move {
        match p {
            Ok(p) => {
                let (p, r, ms) = tool_runtime::execute(shared, p).await;
                Ok((p, r, ms))
            }
            Err(e) => Err(e),
        }
    });
    let outcomes = futures::future::join_all(runs).await;
    let config = &sc.exec.config;
    let (max_output, max_error) = (config.max_tool_output_bytes, config.max_error_message_bytes);
    let mut contents = Vec::with_capacity(outcomes.len());
    for o in outcomes {
        let content = match o {
            Ok((p, r, ms)) => {
                let result = tool_runtime::finish(sc, p, r, ms).result;
                match result {
                    Err(e) if ends_the_step(&e) => return Err(Interrupt::Fail(e)),
                    result => limits::tool_message(&result, max_output, max_error),
                }
            }
            Err(e) => limits::tool_message(&Err(e), max_output, max_error),
        };
        contents.push(content);
    }
    Ok(contents)
}

/// Whether a failed call ends the step instead of being shown to the model: a cancelled
/// call, one whose outcome is unknown, and a transient failure of a call that may have run
/// (the retried job sends it again with the same idempotency key; the model must not call it
/// again under a new one).
pub(super) fn ends_the_step(e: &Error) -> bool {
    use crate::ErrorKind::{Cancelled, EffectOutcomeUnknown};
    matches!(e.kind(), Cancelled | EffectOutcomeUnknown)
        || (e.is_retryable() && !e.did_not_execute())
}
