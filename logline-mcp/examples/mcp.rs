//! MCP both ways with the golden run (ticket triage).
//!
//! - `cargo run -p logline-mcp --example mcp`: starts this example again as a local MCP
//!   server of the golden run's tools (`--serve-tools`), connects an `McpToolHub` to it,
//!   syncs its catalog into the engine's store and a tool search, shows what a Top-N search
//!   finds, and runs the golden workflow with its ticket tool called over MCP.
//! - `--serve-tools`: the golden run's tools as an MCP server on stdio.
//! - `--serve-logline`: the golden deployment as an MCP server on stdio (point an MCP
//!   client such as Claude Desktop at it; see the crate README), acting as
//!   `LOGLINE_TENANT` / `LOGLINE_USER`.

use std::error::Error;
use std::sync::Arc;

use logline_core::engine::{Engine, Principal, StartRun, WorkerOptions};
use logline_core::run::Subject;
use logline_core::search::{SearchRequest, ToolIndex, ToolSearch};
use logline_core::testing::golden;
use logline_core::tool::{LocalToolHub, PageRequest, ToolContext, ToolHub};
use logline_core::workflow::{Workflow, WorkflowDefinition};
use logline_mcp::{McpCatalogSync, McpServer, McpServerConfig, McpToolHub, Published};
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ErrorData, ListToolsResult, PaginatedRequestParams,
    ServerInfo,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::{ServerHandler, ServiceExt};
use serde_json::{json, Value};

/// Any LogLine tool hub's tools as an MCP server.
struct HubAsMcp(Arc<dyn ToolHub>);

impl ServerHandler for HubAsMcp {
    fn get_info(&self) -> ServerInfo {
        serde_json::from_value(json!({
            "protocolVersion": "2025-06-18",
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "golden-tools", "version": "1"},
        }))
        .unwrap_or_default()
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let page = self
            .0
            .list_tools(PageRequest::default())
            .await
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        let tools: Vec<Value> = page
            .tools
            .iter()
            .map(|t| {
                json!({"name": t.id, "description": t.description, "inputSchema": t.input_schema,
                       "annotations": {"readOnlyHint": true}})
            })
            .collect();
        serde_json::from_value(json!({"tools": tools}))
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let args = Value::Object(request.arguments.unwrap_or_default());
        let ctx = ToolContext::for_subject(Subject::tenant("mcp"));
        let out = match self.0.execute(&request.name, args, &ctx).await {
            Ok(v) => json!({"content": [{"type": "text", "text": v.to_string()}],
                            "structuredContent": v}),
            Err(e) => {
                json!({"content": [{"type": "text", "text": e.to_string()}], "isError": true})
            }
        };
        serde_json::from_value(out).map_err(|e| ErrorData::internal_error(e.to_string(), None))
    }
}

async fn serve_tools() -> Result<(), Box<dyn Error>> {
    let mut hub = LocalToolHub::new();
    let (spec, handler) = golden::list_open_tool();
    hub.register(spec, handler);
    let running = HubAsMcp(Arc::new(hub))
        .serve(rmcp::transport::stdio())
        .await?;
    running.waiting().await?;
    Ok(())
}

async fn serve_logline() -> Result<(), Box<dyn Error>> {
    let engine = golden::with_tool(Engine::builder())
        .default_llm(Arc::new(golden::scripted_llm()))
        .build()
        .await?;
    golden::install(&engine, "scripted-triage").await?;
    let _workers = engine.spawn_workers(WorkerOptions::default());
    let server = McpServer::builder(engine)
        .publish(
            Published::workflow(
                "triage_tickets",
                golden::WORKFLOW_ID,
                "Triages the open tickets of a hotel",
            )
            .input_schema(json!({
                "type": "object",
                "properties": {"hotel_id": {"type": "string"}},
                "required": ["hotel_id"]
            })),
        )
        .build()
        .await?;
    let tenant = std::env::var("LOGLINE_TENANT").unwrap_or_else(|_| "tenant:local".into());
    let user = std::env::var("LOGLINE_USER").unwrap_or_else(|_| "user:local".into());
    server.serve_stdio(Principal::user(tenant, user)).await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    match std::env::args().nth(1).as_deref() {
        Some("--serve-tools") => return serve_tools().await,
        Some("--serve-logline") => return serve_logline().await,
        _ => {}
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();

    // The golden tools, served by a local MCP server (this example, started again).
    let me = std::env::current_exe()?.display().to_string();
    let hub = McpToolHub::new([McpServerConfig::stdio("golden", me, ["--serve-tools"])])?;
    let search = Arc::new(ToolSearch::new(ToolIndex::new()));
    let engine = Engine::builder()
        .tool_hub(Arc::new(hub.clone()))
        .default_llm(Arc::new(golden::scripted_llm()))
        .build()
        .await?;
    let reports = McpCatalogSync::new(hub, engine.store().clone())
        .with_observer(search.clone())
        .sync_all()
        .await?;
    for r in &reports {
        println!(
            "synced server `{}`: {} tools added",
            r.server,
            r.report.added.len()
        );
    }

    // Discovered and searched through LogLine.
    let query = "which support tickets are still open at the hotel";
    let found = search
        .search(&SearchRequest::new(query, Subject::tenant("tenant:voulezvous")).top_n(3))
        .await?;
    println!("top tools for {query:?}:");
    for h in &found.hits {
        let t = &h.tool;
        println!(
            "  {} ({}; risk {}, toolkit {})",
            h.definition.name,
            t.id,
            t.risk_level.as_str(),
            t.toolkit.as_deref().unwrap_or("-")
        );
    }

    // The golden run, its ticket tool called over MCP.
    let mcp_tool = format!("golden.{}", golden::TOOL_ID);
    let def = WorkflowDefinition::from_json(json!({
        "entry": "start",
        "nodes": [
            {"id": "start", "type": "static"},
            {"id": "fetch_tickets", "type": "tool_node", "config": {"tool_id": mcp_tool}},
            {"id": "triage", "type": "agent_node", "config": {"agent_id": golden::AGENT_ID}}
        ],
        "edges": [{"from": "start", "to": "fetch_tickets"}, {"from": "fetch_tickets", "to": "triage"}]
    }))?;
    engine
        .register_agent(&golden::triage_agent("scripted-triage"))
        .await?;
    engine
        .register_workflow(&Workflow::new("triage_over_mcp", "Triage over MCP", def))
        .await?;
    let workers = engine.spawn_workers(WorkerOptions::default());
    let run = engine
        .run_to_completion(StartRun::new(
            "triage_over_mcp",
            json!({"hotel_id": "VV-LISBON"}),
            Subject::tenant("tenant:voulezvous").with_user("user:dan"),
        ))
        .await?;
    workers.shutdown().await;
    println!(
        "run {}: {}\n{}",
        run.id,
        run.status.as_str(),
        serde_json::to_string_pretty(&run.result)?
    );
    if run.status != logline_core::run::RunStatus::Completed {
        return Err(format!("the run did not complete: {:?}", run.error).into());
    }
    Ok(())
}
