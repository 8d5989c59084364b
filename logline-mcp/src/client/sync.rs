//! Each server's tools into the store's catalog, as one toolkit, through the generic
//! reconciliation; and again whenever a server says its list changed (or reconnects).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use logline_core::search::CatalogObserver;
use logline_core::store::DefinitionStore;
use logline_core::tool::{CatalogPages, CatalogReconciler, CatalogReport, CatalogScope, ToolPage};
use logline_core::Result;
use tokio::task::JoinHandle;

use super::McpToolHub;

/// What one server's sync did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSyncReport {
    /// The server (toolkit).
    pub server: String,
    /// The reconciliation.
    pub report: CatalogReport,
}

/// Keeps the catalog of an [`McpToolHub`] in a store, telling observers (a search index)
/// what changed. Cheap to clone.
#[derive(Clone)]
pub struct McpCatalogSync {
    hub: McpToolHub,
    store: Arc<dyn DefinitionStore>,
    observers: Vec<Arc<dyn CatalogObserver>>,
}

struct ServerPages<'a> {
    hub: &'a McpToolHub,
    server: &'a str,
    listed: Vec<logline_core::tool::ToolSpec>,
}

#[async_trait]
impl CatalogPages for ServerPages<'_> {
    async fn list_page(&mut self, cursor: Option<String>) -> Result<ToolPage> {
        let (tools, next_cursor) = self.hub.server_page(self.server, cursor).await?;
        self.listed.extend(tools.iter().cloned());
        Ok(ToolPage { tools, next_cursor })
    }
}

impl McpCatalogSync {
    /// Syncs `hub` into `store`.
    pub fn new(hub: McpToolHub, store: Arc<dyn DefinitionStore>) -> Self {
        McpCatalogSync {
            hub,
            store,
            observers: Vec::new(),
        }
    }

    /// Also tells `observer` what each sync wrote and removed.
    pub fn with_observer(mut self, observer: Arc<dyn CatalogObserver>) -> Self {
        self.observers.push(observer);
        self
    }

    /// Lists every page of `server` and reconciles its toolkit: new and changed tools are
    /// written, tools the server no longer lists are removed.
    pub async fn sync_server(&self, server: &str) -> Result<ServerSyncReport> {
        let s = self.hub.server(server)?;
        let scope = CatalogScope::hub(self.hub.inner.name.clone()).toolkits([server]);
        let mut reconciler = CatalogReconciler::begin(self.store.as_ref(), scope).await?;
        let mut pages = ServerPages {
            hub: &self.hub,
            server,
            listed: Vec::new(),
        };
        let outcome = reconciler.run(&mut pages).await;
        let changes = reconciler.take_changes();
        if !changes.is_empty() {
            for o in &self.observers {
                o.catalog_changed(&changes.upserted, &changes.removed);
            }
        }
        let report = outcome?;
        s.remember(&pages.listed, true);
        Ok(ServerSyncReport {
            server: server.to_string(),
            report,
        })
    }

    /// Syncs every server; the first failure is returned after the others were tried.
    pub async fn sync_all(&self) -> Result<Vec<ServerSyncReport>> {
        let mut out = Vec::new();
        let mut first_error = None;
        for server in self.hub.servers() {
            match self.sync_server(&server).await {
                Ok(r) => out.push(r),
                Err(e) => {
                    tracing::warn!(server = %server, error = %e, "mcp catalog sync failed");
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) if out.is_empty() => Err(e),
            _ => Ok(out),
        }
    }

    /// Follows every server: syncs its toolkit when it connects and whenever it sends
    /// `notifications/tools/list_changed` (changes within `debounce` are synced once). Stops
    /// when the handle is aborted.
    pub fn follow(&self, debounce: Duration) -> JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tasks = tokio::task::JoinSet::new();
            for server in this.hub.servers() {
                let Ok(s) = this.hub.server(&server) else {
                    continue;
                };
                let mut changed = s.shared.list_changed.subscribe();
                let sync = this.clone();
                tasks.spawn(async move {
                    while changed.changed().await.is_ok() {
                        tokio::time::sleep(debounce).await;
                        changed.borrow_and_update();
                        match sync.sync_server(&server).await {
                            Ok(r) => tracing::info!(
                                server = %server,
                                added = r.report.added.len(),
                                changed = r.report.changed.len(),
                                removed = r.report.removed.len(),
                                "mcp catalog synced"
                            ),
                            Err(e) => {
                                tracing::warn!(server = %server, error = %e, "mcp catalog sync failed")
                            }
                        }
                    }
                });
            }
            while tasks.join_next().await.is_some() {}
        })
    }
}
