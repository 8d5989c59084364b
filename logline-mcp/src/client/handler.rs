//! What the hub's MCP client does with what a server sends on its own: progress of a call
//! goes to the hub's progress stream and to the run's, `tools/list_changed` triggers a
//! catalog sync.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use logline_core::run::RunId;
use logline_core::tool::ProgressSink;
use rmcp::model::{
    ClientCapabilities, ClientInfo, Implementation, ProgressNotificationParam, ProgressToken,
};
use rmcp::service::{NotificationContext, RoleClient};
use rmcp::ClientHandler;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};
use uuid::Uuid;

/// Progress of a tool call a server reported (`notifications/progress`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolProgress {
    /// Run of the call, when it was made inside one.
    pub run_id: Option<RunId>,
    /// Step of the call.
    pub step_id: Option<Uuid>,
    /// The tool.
    pub tool_id: String,
    /// Progress so far (grows with each notification).
    pub progress: f64,
    /// Total, when the server knows it.
    pub total: Option<f64>,
    /// The server's message.
    pub message: Option<String>,
}

/// The call a progress token belongs to.
#[derive(Debug, Clone)]
pub(crate) struct CallInfo {
    pub run_id: Option<RunId>,
    pub step_id: Option<Uuid>,
    pub tool_id: String,
    /// The run's progress stream, when the call was made inside a run.
    pub sink: Option<ProgressSink>,
}

/// State shared by every connection of one server and the hub.
pub(crate) struct Shared {
    pub server: String,
    pub progress: broadcast::Sender<ToolProgress>,
    pub calls: Mutex<HashMap<ProgressToken, CallInfo>>,
    /// Bumped when the server's tool list may have changed (a notification, a reconnect).
    pub list_changed: watch::Sender<u64>,
}

impl Shared {
    pub fn new(server: &str, progress: broadcast::Sender<ToolProgress>) -> Arc<Self> {
        Arc::new(Shared {
            server: server.to_string(),
            progress,
            calls: Mutex::new(HashMap::new()),
            list_changed: watch::channel(0).0,
        })
    }

    pub fn calls(&self) -> std::sync::MutexGuard<'_, HashMap<ProgressToken, CallInfo>> {
        self.calls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn bump_list(&self) {
        self.list_changed.send_modify(|n| *n += 1);
    }
}

/// The MCP client of one server connection.
#[derive(Clone)]
pub(crate) struct Handler {
    pub shared: Arc<Shared>,
}

impl ClientHandler for Handler {
    fn get_info(&self) -> ClientInfo {
        // Roots are supported (and empty): servers may then offer the tools that need them.
        let caps: ClientCapabilities = serde_json::from_value(serde_json::json!({
            "roots": {"listChanged": false}
        }))
        .unwrap_or_default();
        ClientInfo::new(
            caps,
            Implementation::new("logline-mcp", env!("CARGO_PKG_VERSION")),
        )
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        let call = self.shared.calls().get(&params.progress_token).cloned();
        let Some(call) = call else {
            tracing::debug!(server = %self.shared.server, "progress of an unknown call");
            return;
        };
        let message = params
            .message
            .map(|m| logline_core::text::prefix(&m, 1024).to_string());
        if let Some(sink) = &call.sink {
            sink.report(params.progress, params.total, message.as_deref());
        }
        let _ = self.shared.progress.send(ToolProgress {
            run_id: call.run_id,
            step_id: call.step_id,
            tool_id: call.tool_id,
            progress: params.progress,
            total: params.total,
            message,
        });
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        tracing::debug!(server = %self.shared.server, "tools/list_changed");
        self.shared.bump_list();
    }
}
