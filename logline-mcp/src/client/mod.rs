//! [`McpToolHub`]: MCP servers as one LogLine tool hub.

mod connection;
mod content;
pub(crate) mod convert;
mod handler;
mod sync;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use logline_core::schema::SchemaCache;
use logline_core::tool::{PageRequest, ToolContext, ToolHub, ToolPage, ToolSpec};
use logline_core::{Error, Result};
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CancelledNotificationParam, ClientRequest, Meta,
    PaginatedRequestParams, ProgressToken, RequestId, ServerResult,
};
use rmcp::service::{Peer, PeerRequestOptions, RoleClient};
use serde_json::Value;
use tokio::sync::broadcast;

use crate::config::{McpServerConfig, DEFAULT_HUB_NAME};
use crate::error::{not_sent, service_error};
use connection::Connection;
pub use handler::ToolProgress;
use handler::{CallInfo, Shared};
pub use sync::{McpCatalogSync, ServerSyncReport};

/// One configured server.
pub(crate) struct Server {
    pub config: Arc<McpServerConfig>,
    pub shared: Arc<Shared>,
    conn: Connection,
    /// Its tools as last listed, by MCP tool name.
    tools: RwLock<HashMap<String, ToolSpec>>,
}

impl Server {
    fn secrets(&self) -> Vec<&str> {
        self.config.secrets()
    }

    pub(crate) fn cached(&self, tool: &str) -> Option<ToolSpec> {
        self.tools
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(tool)
            .cloned()
    }

    pub(crate) fn remember(&self, specs: &[ToolSpec], complete: bool) {
        let mut map = self.tools.write().unwrap_or_else(|e| e.into_inner());
        if complete {
            map.clear();
        }
        for s in specs {
            if let Some((_, name)) = convert::split_id(&s.id) {
                map.insert(name.to_string(), s.clone());
            }
        }
    }
}

pub(crate) struct Inner {
    pub name: String,
    pub servers: BTreeMap<String, Server>,
    progress: broadcast::Sender<ToolProgress>,
    schemas: SchemaCache,
}

/// MCP servers as a tool hub: each server's tools are the toolkit named after it, with ids
/// `<server>.<tool>`. Connections are supervised (restarted with backoff); calls are
/// validated against the server's input schema, bounded by the server's call timeout and
/// result cap, and cancelled on the server (`notifications/cancelled`) when the caller stops
/// waiting. Cheap to clone; dropping the last clone stops every connection.
#[derive(Clone)]
pub struct McpToolHub {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for McpToolHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpToolHub")
            .field("name", &self.inner.name)
            .field("servers", &self.inner.servers.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl McpToolHub {
    /// A hub named [`DEFAULT_HUB_NAME`] over `servers`; connects in the background. Must be
    /// called inside a Tokio runtime.
    pub fn new<I: IntoIterator<Item = McpServerConfig>>(servers: I) -> Result<Self> {
        Self::named(DEFAULT_HUB_NAME, servers)
    }

    /// A hub named `name` (its tools' [`ToolSpec::hub`]).
    pub fn named<I>(name: impl Into<String>, servers: I) -> Result<Self>
    where
        I: IntoIterator<Item = McpServerConfig>,
    {
        let (progress, _) = broadcast::channel(1024);
        let mut map = BTreeMap::new();
        for config in servers {
            config.validate()?;
            if map.contains_key(&config.name) {
                return Err(Error::InvalidInput(format!(
                    "mcp: two servers are named `{}`",
                    config.name
                )));
            }
            let config = Arc::new(config);
            let shared = Shared::new(&config.name, progress.clone());
            let conn = Connection::start(config.clone(), shared.clone());
            let server = Server {
                config: config.clone(),
                shared,
                conn,
                tools: RwLock::new(HashMap::new()),
            };
            map.insert(config.name.clone(), server);
        }
        Ok(McpToolHub {
            inner: Arc::new(Inner {
                name: name.into(),
                servers: map,
                progress,
                schemas: SchemaCache::new(),
            }),
        })
    }

    /// Names of the servers (the toolkits).
    pub fn servers(&self) -> Vec<String> {
        self.inner.servers.keys().cloned().collect()
    }

    /// Progress the servers report for calls of this hub, as they arrive.
    pub fn progress(&self) -> broadcast::Receiver<ToolProgress> {
        self.inner.progress.subscribe()
    }

    pub(crate) fn server(&self, name: &str) -> Result<&Server> {
        self.inner
            .servers
            .get(name)
            .ok_or_else(|| Error::not_found("mcp server", name))
    }

    /// One `tools/list` page of `server`, converted.
    pub(crate) async fn server_page(
        &self,
        server: &str,
        cursor: Option<String>,
    ) -> Result<(Vec<ToolSpec>, Option<String>)> {
        let s = self.server(server)?;
        let peer = s.conn.peer().await?;
        let params = PaginatedRequestParams::default().with_cursor(cursor.clone());
        let listed = tokio::time::timeout(s.config.connect_timeout, peer.list_tools(Some(params)))
            .await
            .map_err(|_| Error::Timeout(format!("mcp server `{server}`: tools/list")))?
            .map_err(|e| service_error(server, e, &s.secrets()))?;
        let specs: Vec<ToolSpec> = listed
            .tools
            .iter()
            .map(|t| convert::to_spec(&self.inner.name, server, t, &s.config.risk_rules))
            .collect();
        s.remember(&specs, false);
        let next = listed
            .next_cursor
            .filter(|c| !c.is_empty() && Some(c) != cursor.as_ref());
        Ok((specs, next))
    }

    /// The spec of `tool` on `server`: cached, else found by listing the server.
    async fn spec_of(&self, server: &Server, tool: &str) -> Result<ToolSpec> {
        if let Some(s) = server.cached(tool) {
            return Ok(s);
        }
        let mut cursor = None;
        loop {
            let (_, next) = self.server_page(&server.config.name, cursor).await?;
            if let Some(s) = server.cached(tool) {
                return Ok(s);
            }
            match next {
                Some(c) => cursor = Some(c),
                None => {
                    return Err(Error::not_found(
                        "tool",
                        convert::tool_id(&server.config.name, tool),
                    ))
                }
            }
        }
    }
}

/// Cursor of the hub-wide listing: the server and its own cursor.
fn encode_cursor(server: &str, cursor: Option<&str>) -> String {
    serde_json::json!({"s": server, "c": cursor}).to_string()
}

fn decode_cursor(c: &str) -> Result<(String, Option<String>)> {
    let v: Value = serde_json::from_str(c)
        .map_err(|_| Error::InvalidInput("mcp: invalid catalog cursor".into()))?;
    let s = v["s"]
        .as_str()
        .ok_or_else(|| Error::InvalidInput("mcp: invalid catalog cursor".into()))?;
    Ok((s.to_string(), v["c"].as_str().map(str::to_string)))
}

/// The `_meta` naming the caller (see [`McpServerConfig::forward_subject`]).
fn subject_meta(ctx: &ToolContext) -> Meta {
    let mut meta = serde_json::Map::new();
    meta.insert(
        "io.logline/subject".into(),
        serde_json::json!({"tenant_id": ctx.subject.tenant_id, "user_id": ctx.subject.user_id}),
    );
    if let Some(k) = &ctx.idempotency_key {
        meta.insert(
            "io.logline/idempotency_key".into(),
            Value::String(k.clone()),
        );
    }
    Meta(meta)
}

/// Forgets a call's progress token and, unless it finished, tells the server it is
/// cancelled.
struct CallGuard {
    shared: Arc<Shared>,
    peer: Peer<RoleClient>,
    token: ProgressToken,
    request: RequestId,
    finished: bool,
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.shared.calls().remove(&self.token);
        if self.finished {
            return;
        }
        let peer = self.peer.clone();
        let param: std::result::Result<CancelledNotificationParam, _> =
            serde_json::from_value(serde_json::json!({
                "requestId": self.request,
                "reason": "the caller stopped waiting (run cancelled or deadline)",
            }));
        let server = self.shared.server.clone();
        if let (Ok(param), Ok(rt)) = (param, tokio::runtime::Handle::try_current()) {
            rt.spawn(async move {
                if let Err(e) = peer.notify_cancelled(param).await {
                    tracing::debug!(server = %server, error = %e, "cancellation not sent");
                }
            });
        }
    }
}

#[async_trait]
impl ToolHub for McpToolHub {
    fn name(&self) -> &str {
        &self.inner.name
    }

    /// One page of one server's `tools/list`; the servers are listed one after another.
    async fn list_tools(&self, page: PageRequest) -> Result<ToolPage> {
        let (server, cursor) = match page.cursor.as_deref() {
            Some(c) if !c.is_empty() => decode_cursor(c)?,
            _ => match self.inner.servers.keys().next() {
                Some(first) => (first.clone(), None),
                None => return Ok(ToolPage::default()),
            },
        };
        let (tools, next) = self.server_page(&server, cursor).await?;
        let next_cursor = match next {
            Some(c) => Some(encode_cursor(&server, Some(&c))),
            None => self
                .inner
                .servers
                .range::<String, _>((
                    std::ops::Bound::Excluded(&server),
                    std::ops::Bound::Unbounded,
                ))
                .next()
                .map(|(s, _)| encode_cursor(s, None)),
        };
        Ok(ToolPage { tools, next_cursor })
    }

    /// Calls the tool on its server. Nothing is retried here: a connection that ends
    /// mid-call is a retryable `Unavailable` error (the engine re-sends only idempotent
    /// tools); a server that cannot be reached before sending is marked not executed.
    async fn execute(&self, tool_id: &str, arguments: Value, ctx: &ToolContext) -> Result<Value> {
        let (server_name, tool) =
            convert::split_id(tool_id).ok_or_else(|| Error::not_found("tool", tool_id))?;
        let server = self.server(server_name)?;
        let spec = self.spec_of(server, tool).await?;
        let arguments = match arguments {
            Value::Null => Value::Object(Default::default()),
            v => v,
        };
        self.inner
            .schemas
            .validate(tool_id, &spec.input_schema, &arguments)?;
        let Value::Object(args) = arguments else {
            return Err(Error::InvalidInput(format!(
                "arguments of `{tool_id}` must be an object"
            )));
        };
        let peer = server.conn.peer().await?;
        let request = ClientRequest::CallToolRequest(CallToolRequest::new(
            CallToolRequestParams::new(tool.to_string()).with_arguments(args),
        ));
        let mut options = PeerRequestOptions::no_options();
        if server.config.forward_subject {
            options.meta = Some(subject_meta(ctx));
        }
        let handle = peer
            .send_request_with_option(request, options)
            .await
            .map_err(|e| not_sent(server_name, e.to_string()))?;
        let mut guard = CallGuard {
            shared: server.shared.clone(),
            peer: peer.clone(),
            token: handle.progress_token.clone(),
            request: handle.id.clone(),
            finished: false,
        };
        server.shared.calls().insert(
            handle.progress_token.clone(),
            CallInfo {
                run_id: ctx.run_id,
                step_id: ctx.step_id,
                tool_id: tool_id.to_string(),
                sink: ctx.progress.clone(),
            },
        );
        let timeout = server.config.call_timeout;
        let response = match tokio::time::timeout(timeout, handle.rx).await {
            Err(_) => {
                return Err(Error::Timeout(format!(
                    "mcp tool `{tool_id}` after {timeout:?}"
                )))
            }
            Ok(Err(_closed)) => Err(rmcp::service::ServiceError::TransportClosed),
            Ok(Ok(r)) => r,
        };
        guard.finished = true;
        drop(guard);
        let secrets = server.secrets();
        match response.map_err(|e| service_error(server_name, e, &secrets))? {
            ServerResult::CallToolResult(r) => {
                content::to_output(tool_id, &r, server.config.max_result_bytes, &secrets)
            }
            _ => Err(crate::error::backend(
                server_name,
                logline_core::ErrorKind::Internal,
                "unexpected response to tools/call",
            )),
        }
    }
}
