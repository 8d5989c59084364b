//! [`McpServer`]: a LogLine engine as an MCP server. Each published workflow (and agent) is
//! a tool; a call starts a run under the caller's principal and follows it.

mod follow;
mod http;
mod service;

use std::sync::Arc;
use std::time::Duration;

use logline_core::engine::{Engine, Principal};
use logline_core::run::{Budget, RunMode};
use logline_core::schema::SchemaCache;
use logline_core::workflow::{AgentNode, NodeKind, Workflow, WorkflowDefinition, WorkflowNode};
use logline_core::{Error, Result};
use serde_json::{json, Value};

pub use http::{HttpAuth, MCP_PATH};

pub use service::McpService;

/// Name of the tool that resumes following a run by id.
pub const RUN_STATUS_TOOL: &str = "logline_run_status";

/// Default time a call follows its run before answering "running" with the run id.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(300);

/// A workflow offered to MCP clients as a tool.
#[derive(Debug, Clone)]
pub struct Published {
    /// Tool name the client sees.
    pub tool_name: String,
    /// Workflow it runs.
    pub workflow_id: String,
    /// Description shown to clients.
    pub description: String,
    /// JSON Schema of the run input.
    pub input_schema: Value,
    /// JSON Schema of the run result, when known.
    pub result_schema: Option<Value>,
    /// Mode of the runs.
    pub mode: RunMode,
    /// Budget of each run.
    pub budget: Budget,
}

impl Published {
    /// `workflow_id` as tool `tool_name`, taking any object.
    pub fn workflow(
        tool_name: impl Into<String>,
        workflow_id: impl Into<String>,
        description: impl Into<String>,
    ) -> Self {
        Published {
            tool_name: tool_name.into(),
            workflow_id: workflow_id.into(),
            description: description.into(),
            input_schema: json!({"type": "object"}),
            result_schema: None,
            mode: RunMode::default(),
            budget: Budget::default(),
        }
    }

    /// Sets the input schema.
    pub fn input_schema(mut self, schema: Value) -> Self {
        self.input_schema = schema;
        self
    }

    /// Sets the result schema.
    pub fn result_schema(mut self, schema: Value) -> Self {
        self.result_schema = Some(schema);
        self
    }

    /// Sets the run mode.
    pub fn mode(mut self, mode: RunMode) -> Self {
        self.mode = mode;
        self
    }

    /// Sets the budget.
    pub fn budget(mut self, budget: Budget) -> Self {
        self.budget = budget;
        self
    }
}

pub(crate) struct ServerInner {
    pub engine: Engine,
    pub published: Vec<Published>,
    pub max_wait: Duration,
    pub schemas: SchemaCache,
    pub name: String,
}

impl ServerInner {
    pub fn find(&self, tool: &str) -> Option<&Published> {
        self.published.iter().find(|p| p.tool_name == tool)
    }
}

/// A LogLine engine as an MCP server. Serve it on stdio as one principal
/// ([`McpServer::serve_stdio`]) or over streamable HTTP, where each request's principal
/// comes from the host's authentication ([`McpServer::router`]). The engine must have
/// workers running. Cheap to clone.
#[derive(Clone)]
pub struct McpServer {
    pub(crate) inner: Arc<ServerInner>,
}

impl std::fmt::Debug for McpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tools: Vec<&str> = self
            .inner
            .published
            .iter()
            .map(|p| p.tool_name.as_str())
            .collect();
        f.debug_struct("McpServer").field("tools", &tools).finish()
    }
}

/// Builds an [`McpServer`].
pub struct McpServerBuilder {
    engine: Engine,
    published: Vec<Published>,
    agents: Vec<(String, String)>,
    max_wait: Duration,
    name: String,
}

impl McpServer {
    /// A server over `engine`, publishing nothing yet.
    pub fn builder(engine: Engine) -> McpServerBuilder {
        McpServerBuilder {
            engine,
            published: Vec::new(),
            agents: Vec::new(),
            max_wait: DEFAULT_MAX_WAIT,
            name: "logline".into(),
        }
    }

    /// The MCP service acting as `principal` (stdio, tests, in-process transports).
    pub fn service(&self, principal: Principal) -> McpService {
        McpService::new(self.inner.clone(), Some(principal))
    }

    /// Serves on this process's stdin and stdout as `principal` until the client closes.
    pub async fn serve_stdio(&self, principal: Principal) -> Result<()> {
        use rmcp::ServiceExt;
        let running = self
            .service(principal)
            .serve(rmcp::transport::stdio())
            .await
            .map_err(|e| Error::Internal(format!("mcp: handshake on stdio: {e}")))?;
        running
            .waiting()
            .await
            .map_err(|e| Error::Internal(format!("mcp: serving stdio: {e}")))?;
        Ok(())
    }
}

fn valid_tool_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

impl McpServerBuilder {
    /// Publishes a workflow.
    pub fn publish(mut self, p: Published) -> Self {
        self.published.push(p);
        self
    }

    /// Publishes agent `agent_id` as tool `tool_name`: a one-node workflow
    /// `mcp.agent.<agent_id>` (registered at build) runs it on `{"request": "..."}`.
    pub fn agent(mut self, tool_name: impl Into<String>, agent_id: impl Into<String>) -> Self {
        self.agents.push((tool_name.into(), agent_id.into()));
        self
    }

    /// How long a call follows its run before answering "running" with the run id (resume
    /// with the [`RUN_STATUS_TOOL`] tool).
    pub fn max_wait(mut self, d: Duration) -> Self {
        self.max_wait = d;
        self
    }

    /// Name the server gives itself in the handshake.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Registers the agents' workflows and checks the published names.
    pub async fn build(mut self) -> Result<McpServer> {
        for (tool, agent_id) in std::mem::take(&mut self.agents) {
            let agent = self.engine.store().get_agent(&agent_id).await?;
            let workflow_id = format!("mcp.agent.{agent_id}");
            let mut node = WorkflowNode::new(
                "agent",
                NodeKind::Agent(AgentNode {
                    agent_id: agent_id.clone(),
                }),
            );
            node.input = Some(json!("$input.request"));
            let definition = WorkflowDefinition {
                entry: "agent".into(),
                nodes: vec![node],
                edges: Vec::new(),
                condition_agent_id: None,
            };
            self.engine
                .register_workflow(&Workflow::new(&workflow_id, &agent.name, definition))
                .await?;
            let mut p = Published::workflow(tool, workflow_id, agent.description.clone())
                .input_schema(json!({
                    "type": "object",
                    "properties": {"request": {"type": "string", "description": "What to do"}},
                    "required": ["request"]
                }));
            if let Some(s) = agent.output_schema {
                p = p.result_schema(s);
            }
            self.published.push(p);
        }
        for p in &self.published {
            if !valid_tool_name(&p.tool_name) || p.tool_name == RUN_STATUS_TOOL {
                return Err(Error::InvalidInput(format!(
                    "mcp: `{}` is not a valid published tool name",
                    p.tool_name
                )));
            }
            if self
                .published
                .iter()
                .filter(|q| q.tool_name == p.tool_name)
                .count()
                > 1
            {
                return Err(Error::InvalidInput(format!(
                    "mcp: tool `{}` is published twice",
                    p.tool_name
                )));
            }
            self.engine
                .store()
                .get_workflow(&p.workflow_id, None)
                .await?;
        }
        Ok(McpServer {
            inner: Arc::new(ServerInner {
                engine: self.engine,
                published: self.published,
                max_wait: self.max_wait,
                schemas: SchemaCache::new(),
                name: self.name,
            }),
        })
    }
}
