//! `logline-mcp-fixture`: a small MCP server (stdio, or streamable HTTP with `--http ADDR`)
//! for tests and benches of MCP clients.
//!
//! Tools: `echo`, `slow` (sleeps `ms`, reporting progress; counts cancellations), `hang`
//! (never answers), `big` (a text of `bytes` bytes), `write` (increments a counter, then
//! waits `ms`: a non-idempotent effect), `stats` (the counters and the process id),
//! `add_tool` (adds a tool and sends `tools/list_changed`), and `FIXTURE_TOOLS` synthetic
//! tools `op_0000`... `tools/list` pages hold `FIXTURE_PAGE` tools (default 50).
//! `FIXTURE_STATE` names a file keeping the `write` counter across restarts; `FIXTURE_LOG` a
//! file receiving one JSON line per call (tool, arguments, `_meta`). `conformance_echo` is
//! the echo tool of the core hub conformance suite.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResult, ErrorData, ListToolsResult, PaginatedRequestParams,
    ProgressNotificationParam, ServerInfo, Tool,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::{ServerHandler, ServiceExt};
use serde_json::{json, Value};

#[derive(Clone)]
struct Fixture {
    tools: Arc<Mutex<Vec<Tool>>>,
    page: usize,
    cancelled: Arc<AtomicU64>,
    state: Option<std::path::PathBuf>,
    writes: Arc<AtomicU64>,
}

fn tool(name: &str, description: &str, props: Value, annotations: Value) -> Tool {
    serde_json::from_value(json!({
        "name": name,
        "description": description,
        "inputSchema": {"type": "object", "properties": props},
        "annotations": annotations,
    }))
    .unwrap_or_else(|e| panic!("tool {name}: {e}"))
}

fn text(s: impl Into<String>) -> CallToolResult {
    serde_json::from_value(json!({"content": [{"type": "text", "text": s.into()}]}))
        .unwrap_or_else(|e| panic!("result: {e}"))
}

impl Fixture {
    fn new() -> Self {
        let n: usize = env_num("FIXTURE_TOOLS", 0);
        let ro = json!({"readOnlyHint": true});
        let mut tools = vec![
            tool(
                "echo",
                "Echoes the message",
                json!({"message": {"type": "string"}}),
                ro.clone(),
            ),
            tool(
                "slow",
                "Waits ms milliseconds, reporting progress",
                json!({"ms": {"type": "integer"}}),
                ro.clone(),
            ),
            tool("hang", "Never answers", json!({}), ro.clone()),
            tool(
                "big",
                "Returns a text of the given size",
                json!({"bytes": {"type": "integer"}}),
                ro.clone(),
            ),
            tool(
                "write",
                "Writes a record (not idempotent), then waits ms milliseconds",
                json!({"ms": {"type": "integer"}}),
                json!({"readOnlyHint": false, "idempotentHint": false}),
            ),
            tool("stats", "Counters of this server", json!({}), ro.clone()),
            serde_json::from_value(json!({
                "name": "conformance_echo",
                "description": "Answers with its arguments.",
                "inputSchema": {"type": "object",
                    "properties": {"text": {"type": "string"}, "fail": {"type": "boolean"}},
                    "required": ["text"]},
            }))
            .unwrap_or_else(|e| panic!("tool: {e}")),
            tool(
                "add_tool",
                "Adds a tool and announces the change",
                json!({"name": {"type": "string"}}),
                json!({}),
            ),
        ];
        for i in 0..n {
            tools.push(tool(
                &format!("op_{i:04}"),
                &format!("Synthetic operation number {i} that reads record {i}"),
                json!({"id": {"type": "string"}}),
                ro.clone(),
            ));
        }
        let state = std::env::var_os("FIXTURE_STATE").map(std::path::PathBuf::from);
        let writes = state
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        Fixture {
            tools: Arc::new(Mutex::new(tools)),
            page: env_num("FIXTURE_PAGE", 50).max(1),
            cancelled: Arc::new(AtomicU64::new(0)),
            state,
            writes: Arc::new(AtomicU64::new(writes)),
        }
    }

    fn tools(&self) -> std::sync::MutexGuard<'_, Vec<Tool>> {
        self.tools.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn env_num(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn arg_u64(args: &Option<serde_json::Map<String, Value>>, key: &str, default: u64) -> u64 {
    args.as_ref()
        .and_then(|a| a.get(key))
        .and_then(Value::as_u64)
        .unwrap_or(default)
}

impl ServerHandler for Fixture {
    fn get_info(&self) -> ServerInfo {
        serde_json::from_value(json!({
            "protocolVersion": "2025-06-18",
            "capabilities": {"tools": {"listChanged": true}},
            "serverInfo": {"name": "logline-mcp-fixture", "version": "1"},
        }))
        .unwrap_or_else(|e| panic!("info: {e}"))
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let start: usize = request
            .and_then(|r| r.cursor)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let tools = self.tools();
        let end = (start + self.page).min(tools.len());
        let page: Vec<Tool> = tools.get(start..end).unwrap_or_default().to_vec();
        let next = (end < tools.len()).then(|| end.to_string());
        serde_json::from_value(json!({"tools": page, "nextCursor": next}))
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let args = &request.arguments;
        if let Some(log) = std::env::var_os("FIXTURE_LOG") {
            let line = json!({"tool": request.name, "arguments": args, "meta": context.meta});
            use std::io::Write;
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
            {
                let _ = writeln!(f, "{line}");
            }
        }
        match request.name.as_ref() {
            "conformance_echo" => {
                let args = Value::Object(args.clone().unwrap_or_default());
                if args["fail"] == json!(true) {
                    return Ok(serde_json::from_value(json!({
                        "content": [{"type": "text", "text": "asked to fail"}],
                        "isError": true
                    }))
                    .unwrap_or_else(|e| panic!("result: {e}")));
                }
                serde_json::from_value(json!({
                    "content": [],
                    "structuredContent": {"echo": args}
                }))
                .map_err(|e| ErrorData::internal_error(e.to_string(), None))
            }
            "echo" => {
                let m = args
                    .as_ref()
                    .and_then(|a| a.get("message"))
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                Ok(text(format!("echo: {m}")))
            }
            "slow" => {
                let ms = arg_u64(args, "ms", 1000);
                let token = context.meta.get_progress_token();
                let steps = (ms / 50).max(1);
                for i in 1..=steps {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(ms / steps)) => {}
                        _ = context.ct.cancelled() => {
                            self.cancelled.fetch_add(1, Ordering::SeqCst);
                            return Err(ErrorData::internal_error("cancelled", None));
                        }
                    }
                    if let Some(t) = &token {
                        let p = ProgressNotificationParam::new(t.clone(), i as f64)
                            .with_total(steps as f64);
                        let _ = context.peer.notify_progress(p).await;
                    }
                }
                Ok(text(format!("slept {ms} ms")))
            }
            "hang" => {
                context.ct.cancelled().await;
                self.cancelled.fetch_add(1, Ordering::SeqCst);
                Err(ErrorData::internal_error("cancelled", None))
            }
            "big" => Ok(text("x".repeat(arg_u64(args, "bytes", 1024) as usize))),
            "write" => {
                let n = self.writes.fetch_add(1, Ordering::SeqCst) + 1;
                if let Some(p) = &self.state {
                    let _ = std::fs::write(p, n.to_string());
                }
                tokio::time::sleep(Duration::from_millis(arg_u64(args, "ms", 0))).await;
                Ok(text(format!("record {n} written")))
            }
            "stats" => serde_json::from_value(json!({
                "content": [],
                "structuredContent": {
                    "writes": self.writes.load(Ordering::SeqCst),
                    "cancelled": self.cancelled.load(Ordering::SeqCst),
                    "pid": std::process::id(),
                }
            }))
            .map_err(|e| ErrorData::internal_error(e.to_string(), None)),
            "add_tool" => {
                let name = args
                    .as_ref()
                    .and_then(|a| a.get("name"))
                    .and_then(Value::as_str)
                    .unwrap_or("added")
                    .to_string();
                self.tools()
                    .push(tool(&name, "Added at run time", json!({}), json!({})));
                let _ = context.peer.notify_tool_list_changed().await;
                Ok(text(format!("added {name}")))
            }
            other if other.starts_with("op_") => Ok(text(format!("{other} done"))),
            other => Ok(serde_json::from_value(json!({
                "content": [{"type": "text", "text": format!("unknown tool {other}")}],
                "isError": true
            }))
            .unwrap_or_else(|e| panic!("result: {e}"))),
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let fixture = Fixture::new();
    if let Some(addr) = args
        .iter()
        .position(|a| a == "--http")
        .and_then(|i| args.get(i + 1))
    {
        use rmcp::transport::streamable_http_server::{
            session::local::LocalSessionManager, StreamableHttpServerConfig, StreamableHttpService,
        };
        let service = StreamableHttpService::new(
            move || Ok(fixture.clone()),
            Arc::new(LocalSessionManager::default()),
            StreamableHttpServerConfig::default(),
        );
        let router = axum::Router::new().nest_service("/mcp", service);
        let listener = tokio::net::TcpListener::bind(addr).await?;
        eprintln!("listening on {}", listener.local_addr()?);
        axum::serve(listener, router).await?;
        return Ok(());
    }
    let running = fixture.serve(rmcp::transport::stdio()).await?;
    running.waiting().await?;
    Ok(())
}
