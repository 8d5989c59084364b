//! What the zero-configuration server runs with: a deterministic demo model (which also
//! plays the chat's router and executor, see [`chat`]), local `echo`, `wait` and demo
//! `email.send` tools, and a demo agent and workflow shared with every tenant.

pub mod chat;

use async_trait::async_trait;
use logline_core::agent::{Agent, ModelProfile};
use logline_core::chat::ChatConfig;
use logline_core::engine::{Engine, EngineBuilder};
use logline_core::llm::{LlmProvider, LlmRequest, LlmResponse};
use logline_core::tool::{handler, ToolSpec};
use logline_core::workflow::{AgentNode, NodeKind, Workflow, WorkflowDefinition, WorkflowNode};
use logline_core::Result;
use serde_json::json;

use crate::server::{kinds, Server};

/// Id of the demo workflow.
pub const DEMO_WORKFLOW: &str = "demo";
/// Id of the demo agent.
pub const DEMO_AGENT: &str = "demo-assistant";
/// Id of the local echo tool.
pub const ECHO_TOOL: &str = "echo";

/// A model that answers without a network: chat requests by the rules of [`chat`]; other
/// requests by repeating the last user message (`"You said: …"`), or `{}` where structured
/// output is asked for.
#[derive(Debug, Default, Clone, Copy)]
pub struct DemoModel;

#[async_trait]
impl LlmProvider for DemoModel {
    fn name(&self) -> &str {
        "demo"
    }

    async fn complete(&self, request: &LlmRequest) -> Result<LlmResponse> {
        if let Some(answer) = chat::answer(request) {
            return Ok(answer);
        }
        if request.output_schema.is_some() {
            return Ok(LlmResponse::text("{}"));
        }
        Ok(LlmResponse::text(format!(
            "You said: {}",
            chat::latest_user_text(request)
        )))
    }
}

/// Id of the local wait tool.
pub const WAIT_TOOL: &str = "wait";
/// Longest wait of the `wait` tool, in milliseconds.
pub const MAX_WAIT_MS: u64 = 60_000;

/// Adds the local tools: `echo` (returns its arguments) and `wait` (sleeps `ms`
/// milliseconds, at most a minute, then returns `{"waited_ms": ms}`; idempotent).
pub fn with_local_tools(builder: EngineBuilder) -> EngineBuilder {
    let echo = ToolSpec::new(
        ECHO_TOOL,
        "Returns its arguments unchanged.",
        json!({"type": "object", "additionalProperties": true}),
    );
    let wait = ToolSpec::new(
        WAIT_TOOL,
        "Waits the given milliseconds (at most 60000).",
        json!({
            "type": "object",
            "properties": {"ms": {"type": "integer", "minimum": 0, "maximum": MAX_WAIT_MS}},
            "required": ["ms"]
        }),
    )
    .idempotent();
    builder
        .tool(echo, handler(|args, _ctx| async move { Ok(args) }))
        .tool(
            wait,
            handler(|args, _ctx| async move {
                let ms = args["ms"].as_u64().unwrap_or(0).min(MAX_WAIT_MS);
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                Ok(json!({"waited_ms": ms}))
            }),
        )
}

/// The chat's settings on the demo model (its model names are `demo`).
pub fn demo_chat_config() -> ChatConfig {
    let mut config = ChatConfig::default();
    config.cheap_model.model = "demo".into();
    config.main_model.model = "demo".into();
    config
}

/// Adds the demo `email.send` tool ([`chat::email_send_spec`]): it answers
/// `{"sent": true, "to": …}` and sends nothing.
pub fn with_demo_email(builder: EngineBuilder) -> EngineBuilder {
    builder.tool(
        chat::email_send_spec(),
        handler(|args, _ctx| async move { Ok(json!({"sent": true, "to": args["to"]})) }),
    )
}

/// Registers the demo agent and workflow and shares them (and the echo tool) with every
/// tenant.
pub async fn register_demo(engine: &Engine, server: &Server) -> Result<()> {
    let agent = Agent::new(
        DEMO_AGENT,
        "Answer the user's message briefly.",
        ModelProfile {
            provider: logline_core::llm::DEFAULT_PROVIDER.to_string(),
            model: "demo".into(),
            temperature: None,
            max_output_tokens: None,
        },
    );
    engine.register_agent(&agent).await?;
    let node = WorkflowNode::new(
        "answer",
        NodeKind::Agent(AgentNode {
            agent_id: DEMO_AGENT.into(),
        }),
    );
    let wf = Workflow::new(
        DEMO_WORKFLOW,
        "Demo: one agent answers",
        WorkflowDefinition {
            entry: "answer".into(),
            nodes: vec![node],
            edges: vec![],
            condition_agent_id: None,
        },
    );
    if engine
        .store()
        .get_workflow(DEMO_WORKFLOW, Some(&wf.version))
        .await
        .is_err()
    {
        engine.register_workflow(&wf).await?;
    }
    server.share(kinds::AGENT, DEMO_AGENT).await?;
    server.share(kinds::WORKFLOW, DEMO_WORKFLOW).await?;
    server.share(kinds::TOOL, ECHO_TOOL).await?;
    server.share(kinds::TOOL, WAIT_TOOL).await
}
