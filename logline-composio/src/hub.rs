//! [`ComposioToolHub`]: the `ToolHub` implementation.

use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use logline_core::run::Subject;
use logline_core::tool::{Connection, PageRequest, ToolContext, ToolHub, ToolPage, ToolSpec};
use logline_core::{Error, Result};
use serde_json::Value;

use crate::body::{remote_text, MAX_ERROR_TEXT, MAX_FIELD_TEXT};
use crate::catalog::{convert_tool, CatalogSnapshot, Toolkit};
use crate::client::{Client, ExecuteBody};
use crate::config::ComposioConfig;
use crate::connections::ConnectionCache;
use crate::error::Op;

/// Composio as a LogLine tool hub: catalog listing with risk tagging, execution for a user,
/// and the user's connected accounts. Cheap to clone.
#[derive(Clone)]
pub struct ComposioToolHub {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) client: Client,
    pub(crate) catalog: RwLock<Arc<CatalogSnapshot>>,
    pub(crate) connections: ConnectionCache,
    /// Serialises catalog syncs.
    pub(crate) sync_lock: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for ComposioToolHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComposioToolHub")
            .field("config", self.config())
            .field("cached_tools", &self.catalog().len())
            .finish()
    }
}

impl ComposioToolHub {
    /// A hub with `config`.
    pub fn new(config: ComposioConfig) -> Result<Self> {
        let client = Client::new(config).map_err(|e| e.into_core(Op::Read))?;
        Ok(ComposioToolHub {
            inner: Arc::new(Inner {
                client,
                catalog: RwLock::new(Arc::new(CatalogSnapshot::default())),
                connections: ConnectionCache::default(),
                sync_lock: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// A hub configured from the environment (see [`ComposioConfig::from_env`]).
    pub fn from_env() -> Result<Self> {
        Self::new(ComposioConfig::from_env()?)
    }

    /// The settings.
    pub fn config(&self) -> &ComposioConfig {
        self.inner.client.config()
    }

    /// The cached catalog (empty until a sync ran in this process).
    pub fn catalog(&self) -> Arc<CatalogSnapshot> {
        self.inner
            .catalog
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn set_catalog(&self, snapshot: CatalogSnapshot) {
        *self
            .inner
            .catalog
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Arc::new(snapshot);
    }

    /// Every toolkit (all pages).
    pub async fn toolkits(&self) -> Result<Vec<Toolkit>> {
        let client = &self.inner.client;
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = client
                .toolkits_page(cursor.as_deref(), self.config().page_limit)
                .await
                .map_err(|e| e.into_core(Op::Read))?;
            out.extend(page.items.into_iter().map(Toolkit::from_wire));
            match next(page.next_cursor, &cursor) {
                Some(c) => cursor = Some(c),
                None => return Ok(out),
            }
        }
    }

    /// One tool, fetched and risk-tagged.
    pub async fn fetch_tool(&self, slug: &str) -> Result<ToolSpec> {
        let w = self
            .inner
            .client
            .tool(slug)
            .await
            .map_err(|e| e.into_core(Op::Execute(slug)))?;
        let catalog = self.catalog();
        let kit = catalog.toolkits.get(&w.toolkit.slug);
        Ok(convert_tool(w, &self.config().hub_name, &self.config().risk_rules, kit).spec)
    }

    /// The Composio user id `subject` acts as (see [`crate::ComposioUserIds`]): hosts create
    /// the subject's connections (OAuth) under this id. `None` when the subject has no user.
    pub fn composio_user_id(&self, subject: &Subject) -> Option<String> {
        self.config().user_ids.of(subject)
    }

    /// Forgets the cached connections of the Composio user `composio_user_id` (as
    /// [`ComposioToolHub::composio_user_id`] gives it, or a Composio webhook names it).
    pub fn invalidate_connections(&self, composio_user_id: &str) {
        self.inner.connections.invalidate(composio_user_id);
    }

    /// The connected account to use for `tool_id`: the caller's choice, else the user's
    /// first active account on the tool's toolkit (when the catalog knows the toolkit).
    async fn account_for(&self, tool_id: &str, ctx: &ToolContext) -> Result<Option<String>> {
        if let Some(id) = &ctx.connected_account_id {
            return Ok(Some(id.clone()));
        }
        let (Some(user), Some(tool)) = (
            self.composio_user_id(&ctx.subject),
            self.catalog().tool(tool_id).cloned(),
        ) else {
            return Ok(None);
        };
        let Some(kit) = tool.toolkit.as_deref().filter(|_| tool.requires_connection) else {
            return Ok(None);
        };
        let conns = self.user_connections(&user).await?;
        Ok(conns
            .iter()
            .find(|c| c.toolkit.eq_ignore_ascii_case(kit))
            .map(|c| c.account_id.clone()))
    }

    /// Connections of the Composio user `user_id`.
    async fn user_connections(&self, user_id: &str) -> Result<Arc<Vec<Connection>>> {
        if user_id.contains(',') {
            // The account listing takes a comma-separated list of users.
            return Err(Error::InvalidInput(format!(
                "composio: user id `{user_id}` contains a comma"
            )));
        }
        self.inner
            .connections
            .get(&self.inner.client, user_id, self.config().connections_ttl)
            .await
            .map_err(|e| e.into_core(Op::Read))
    }
}

pub(crate) fn next(cursor: Option<String>, previous: &Option<String>) -> Option<String> {
    cursor.filter(|c| !c.is_empty() && Some(c) != previous.as_ref())
}

#[async_trait]
impl ToolHub for ComposioToolHub {
    fn name(&self) -> &str {
        &self.config().hub_name
    }

    /// One remote page of `/tools` (the cursor is Composio's). `updated_since` is not
    /// supported by the API; use [`crate::CatalogSync`] for incremental refreshes.
    async fn list_tools(&self, page: PageRequest) -> Result<ToolPage> {
        let limit = page
            .limit
            .unwrap_or(self.config().page_limit)
            .clamp(1, 1000);
        let env = self
            .inner
            .client
            .tools_page(page.cursor.as_deref(), limit, &[])
            .await
            .map_err(|e| e.into_core(Op::Read))?;
        let catalog = self.catalog();
        let cfg = self.config();
        let tools = env
            .items
            .into_iter()
            .map(|w| {
                let kit = catalog.toolkits.get(&w.toolkit.slug);
                convert_tool(w, &cfg.hub_name, &cfg.risk_rules, kit).spec
            })
            .collect();
        Ok(ToolPage {
            tools,
            next_cursor: next(env.next_cursor, &page.cursor),
        })
    }

    /// Executes as the subject's Composio user ([`ComposioToolHub::composio_user_id`]: by
    /// default tenant-qualified) with the chosen or looked-up connected account,
    /// sending `ctx.idempotency_key` as the `Idempotency-Key` header. `successful: false`
    /// becomes [`Error::ToolFailed`] with the remote message (at most 4 KiB of it).
    async fn execute(&self, tool_id: &str, arguments: Value, ctx: &ToolContext) -> Result<Value> {
        let account = self.account_for(tool_id, ctx).await?;
        let version = self
            .catalog()
            .versions
            .get(tool_id)
            .cloned()
            .or_else(|| self.config().tool_version.clone());
        let user_id = self.composio_user_id(&ctx.subject);
        let body = ExecuteBody {
            user_id: user_id.clone(),
            connected_account_id: account,
            arguments,
            version,
        };
        let key = ctx.idempotency_key.as_deref();
        let resp = match self.inner.client.execute(tool_id, &body, key).await {
            Ok(r) => r,
            Err(e) => {
                if e.status() == Some(422) {
                    if let Some(u) = &user_id {
                        self.invalidate_connections(u);
                    }
                }
                return Err(e.into_core(Op::Execute(tool_id)));
            }
        };
        if resp.successful {
            return Ok(resp.data);
        }
        let api_key = self.config().api_key.as_str();
        let message = match resp.error {
            Value::String(s) if !s.is_empty() => remote_text(&s, api_key, MAX_ERROR_TEXT),
            Value::Null => "the tool reported failure without a message".to_string(),
            other => remote_text(&other.to_string(), api_key, MAX_ERROR_TEXT),
        };
        let message = match resp.log_id {
            Some(log) => format!(
                "{message} (log {})",
                remote_text(&log, api_key, MAX_FIELD_TEXT)
            ),
            None => message,
        };
        Err(Error::ToolFailed {
            tool_id: tool_id.to_string(),
            message,
            retryable: false,
        })
    }

    /// Active, enabled connected accounts of the subject's Composio user, cached for
    /// [`ComposioConfig::connections_ttl`]. No user, no connections.
    async fn connections(&self, subject: &Subject) -> Result<Vec<Connection>> {
        match self.composio_user_id(subject) {
            Some(u) => Ok(self.user_connections(&u).await?.as_ref().clone()),
            None => Ok(Vec::new()),
        }
    }
}
