//! The MCP service of one client: tools/list of the published workflows, tools/call under
//! the service's own (stdio) or the request's (HTTP) principal.

use std::sync::Arc;

use logline_core::engine::{Principal, ScopedEngine, StartRun};
use logline_core::run::{RunId, Subject};
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ErrorData, ListToolsResult, PaginatedRequestParams,
    ServerInfo, Tool,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::ServerHandler;
use serde_json::{json, Value};

use super::follow::{error_result, follow};
use super::{ServerInner, RUN_STATUS_TOOL};

/// The MCP service of one client. Over HTTP the principal of each request comes from the
/// request (see [`crate::HttpAuth`]).
#[derive(Clone)]
pub struct McpService {
    inner: Arc<ServerInner>,
    principal: Option<Principal>,
}

impl McpService {
    pub(crate) fn new(inner: Arc<ServerInner>, principal: Option<Principal>) -> Self {
        McpService { inner, principal }
    }

    /// The caller: the service's own, else the one the host's authentication put on the HTTP
    /// request. Never from the request body.
    fn principal(&self, ctx: &RequestContext<RoleServer>) -> Option<Principal> {
        if let Some(p) = &self.principal {
            return Some(p.clone());
        }
        ctx.extensions
            .get::<axum::http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Principal>())
            .cloned()
    }

    fn tools(&self) -> Vec<Tool> {
        let mut out: Vec<Tool> = self
            .inner
            .published
            .iter()
            .filter_map(|p| {
                let result = p.result_schema.clone().unwrap_or_else(|| json!({}));
                serde_json::from_value(json!({
                    "name": p.tool_name,
                    "description": p.description,
                    "inputSchema": p.input_schema,
                    "outputSchema": {
                        "type": "object",
                        "properties": {
                            "run_id": {"type": "string"},
                            "status": {"type": "string"},
                            "result": result,
                            "gate": {"type": "object"},
                        },
                        "required": ["run_id", "status"],
                    },
                    "annotations": {"readOnlyHint": false, "openWorldHint": true},
                }))
                .ok()
            })
            .collect();
        if let Ok(t) = serde_json::from_value(json!({
            "name": RUN_STATUS_TOOL,
            "description": "Follows a run started by another tool: waits for it (with progress) \
                and returns its result, or its status when it is still running or paused.",
            "inputSchema": {
                "type": "object",
                "properties": {"run_id": {"type": "string", "description": "The run id"}},
                "required": ["run_id"],
            },
            "annotations": {"readOnlyHint": true, "idempotentHint": true},
        })) {
            out.push(t);
        }
        out
    }
}

impl ServerHandler for McpService {
    fn get_info(&self) -> ServerInfo {
        serde_json::from_value(json!({
            "protocolVersion": "2025-06-18",
            "capabilities": {"tools": {"listChanged": false}},
            "serverInfo": {"name": self.inner.name, "version": env!("CARGO_PKG_VERSION")},
            "instructions": "Each tool runs a LogLine workflow. Long runs answer with a run id; \
                follow them with logline_run_status.",
        }))
        .unwrap_or_default()
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        serde_json::from_value(json!({"tools": self.tools()}))
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let Some(principal) = self.principal(&context) else {
            return Err(ErrorData::invalid_request(
                "the request is not authenticated",
                None,
            ));
        };
        let scoped = self.inner.engine.scoped(principal);
        let args = Value::Object(request.arguments.clone().unwrap_or_default());
        let name = request.name.as_ref();
        if name == RUN_STATUS_TOOL {
            let run_id = args["run_id"]
                .as_str()
                .and_then(|s| s.parse::<RunId>().ok());
            let Some(run_id) = run_id else {
                return Ok(error_result("`run_id` must be a run id"));
            };
            return Ok(follow(&self.inner, &scoped, run_id, &context).await);
        }
        let Some(published) = self.inner.find(name) else {
            return Err(ErrorData::invalid_params(
                format!("unknown tool `{name}`"),
                None,
            ));
        };
        if let Err(e) = self
            .inner
            .schemas
            .validate(name, &published.input_schema, &args)
        {
            return Ok(error_result(&e.to_string()));
        }
        Ok(start_and_follow(&self.inner, &scoped, published, args, &context).await)
    }
}

async fn start_and_follow(
    inner: &ServerInner,
    scoped: &ScopedEngine,
    published: &super::Published,
    args: Value,
    context: &RequestContext<RoleServer>,
) -> CallToolResult {
    // Tenant and user are replaced by the principal's in `ScopedEngine::start_run`.
    let mut req = StartRun::new(&published.workflow_id, args, Subject::tenant(""))
        .mode(published.mode)
        .budget(published.budget);
    req.app_action_id = Some(format!("mcp:{}", published.tool_name));
    match scoped.start_run(req).await {
        Ok(run) => follow(inner, scoped, run.id, context).await,
        Err(e) => error_result(&e.to_string()),
    }
}
