//! [`RecallHub`]: agent memory as tools. Owner ids come from the call's trusted
//! [`ToolContext`]; arguments only pick an owner *kind* the context provides.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::{
    MemoryFilter, MemoryItem, MemoryKind, OwnerKind, Recall, Remember, TrustedOwners, Visibility,
};
use crate::app::AppStore;
use crate::error::{Error, ErrorKind, Result};
use crate::tool::{PageRequest, RiskLevel, ToolContext, ToolHub, ToolPage, ToolSpec};

/// Name of the memory hub ([`ToolSpec::hub`] of its tools).
pub const MEMORY_HUB: &str = "memory";
/// Stores an item.
pub const TOOL_STORE: &str = "memory.store";
/// Reads items by id or filter.
pub const TOOL_RETRIEVE: &str = "memory.retrieve";
/// Semantic search.
pub const TOOL_SEARCH: &str = "memory.search";
/// Deletes an item.
pub const TOOL_DELETE: &str = "memory.delete";

/// Most results a retrieve or search returns.
const MAX_RESULTS: usize = 50;

/// Agent memory as a [`ToolHub`]: `memory.store`, `memory.retrieve`, `memory.search`,
/// `memory.delete`.
///
/// Every call acts for the owners its [`ToolContext`] names (user, tenant, app, agent, run);
/// an `owner` argument only chooses among those kinds, and ids in the arguments are refused.
/// A call inside an app's run reaches only the owner kinds the app's manifest grants
/// (`scopes.memory`); an app that grants none reaches no memory.
pub struct RecallHub {
    recall: Recall,
    apps: Option<Arc<dyn AppStore>>,
}

impl std::fmt::Debug for RecallHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecallHub").finish_non_exhaustive()
    }
}

impl RecallHub {
    /// Memory tools on `recall`; runs of apps are refused until [`RecallHub::with_apps`]
    /// names where their manifests are.
    pub fn new(recall: Recall) -> Self {
        RecallHub { recall, apps: None }
    }

    /// Reads app memory scopes from `apps`.
    pub fn with_apps(mut self, apps: Arc<dyn AppStore>) -> Self {
        self.apps = Some(apps);
        self
    }

    /// The four tools' specs.
    pub fn specs() -> Vec<ToolSpec> {
        let owner = json!({"type": "string", "enum": ["user", "tenant", "app", "agent", "run"],
            "description": "Whose memory: the run's user (default), tenant, app, agent or the run itself."});
        let kind = json!({"type": "string", "enum": ["short_term", "long_term", "profile"]});
        let metadata = json!({"type": "object", "description": "Key/value pairs to match."});
        let spec = |id: &str, desc: &str, schema: Value| {
            ToolSpec::new(id, desc, schema)
                .in_toolkit("memory")
                .on_hub(MEMORY_HUB)
                .with_risk(RiskLevel::Low)
        };
        vec![
            spec(TOOL_STORE, "Remember a fact or note for later runs.", json!({
                "type": "object",
                "properties": {
                    "content": {"type": "string", "minLength": 1},
                    "type": kind, "owner": owner,
                    "visibility": {"type": "string", "enum": ["private", "tenant"]},
                    "ttl_seconds": {"type": "integer", "minimum": 1},
                    "metadata": {"type": "object"}
                },
                "required": ["content"], "additionalProperties": false
            }))
            .with_tags(["memory", "write"])
            .with_side_effects(["memory_write"]),
            spec(TOOL_RETRIEVE, "Read remembered items by id, or the newest ones matching a filter.", json!({
                "type": "object",
                "properties": {"id": {"type": "string"}, "owner": owner, "type": kind,
                    "metadata": metadata, "limit": {"type": "integer", "minimum": 1, "maximum": MAX_RESULTS}},
                "additionalProperties": false
            }))
            .with_tags(["memory", "read"])
            .idempotent(),
            spec(TOOL_SEARCH, "Find remembered items by meaning.", json!({
                "type": "object",
                "properties": {"query": {"type": "string", "minLength": 1}, "owner": owner, "type": kind,
                    "metadata": metadata, "limit": {"type": "integer", "minimum": 1, "maximum": MAX_RESULTS}},
                "required": ["query"], "additionalProperties": false
            }))
            .with_tags(["memory", "read"])
            .idempotent(),
            spec(TOOL_DELETE, "Forget a remembered item.", json!({
                "type": "object",
                "properties": {"id": {"type": "string"}, "owner": owner},
                "required": ["id"], "additionalProperties": false
            }))
            .with_tags(["memory", "write"])
            .with_side_effects(["memory_write"])
            .idempotent(),
        ]
    }

    /// The owners this call may act as.
    async fn owners(&self, ctx: &ToolContext) -> Result<TrustedOwners> {
        let owners = TrustedOwners::from_context(ctx);
        let Some(app_id) = &ctx.subject.app_id else {
            return Ok(owners);
        };
        let Some(apps) = &self.apps else {
            return Err(Error::PolicyDenied {
                policy_id: None,
                reason: format!("app `{app_id}` has no memory scope here"),
            });
        };
        let app = match apps.get_app(app_id).await {
            Ok(app) => app,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(Error::PolicyDenied {
                    policy_id: None,
                    reason: format!("app `{app_id}` is not installed"),
                })
            }
            Err(e) => return Err(e),
        };
        Ok(owners.restrict(&app.memory_grants()))
    }
}

/// Arguments naming an owner id, tenant or user are refused, not ignored silently.
fn refuse_foreign_ids(arguments: &Value) -> Result<()> {
    const TRUSTED: [&str; 6] = [
        "owner_id",
        "owner_type",
        "tenant_id",
        "user_id",
        "app_id",
        "agent_id",
    ];
    if let Some(key) = arguments
        .as_object()
        .and_then(|m| m.keys().find(|k| TRUSTED.contains(&k.as_str())))
    {
        return Err(Error::PolicyDenied {
            policy_id: None,
            reason: format!("`{key}` comes from the run, not from arguments"),
        });
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreArgs {
    content: String,
    #[serde(default, rename = "type")]
    kind: Option<MemoryKind>,
    #[serde(default)]
    owner: Option<OwnerKind>,
    #[serde(default)]
    visibility: Option<Visibility>,
    #[serde(default)]
    ttl_seconds: Option<u64>,
    #[serde(default)]
    metadata: Option<Map<String, Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadArgs {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    query: Option<String>,
    #[serde(default)]
    owner: Option<OwnerKind>,
    #[serde(default, rename = "type")]
    kind: Option<MemoryKind>,
    #[serde(default)]
    metadata: Option<Map<String, Value>>,
    #[serde(default)]
    limit: Option<usize>,
}

fn parse<T: for<'de> Deserialize<'de>>(tool: &str, arguments: Value) -> Result<T> {
    refuse_foreign_ids(&arguments)?;
    serde_json::from_value(arguments)
        .map_err(|e| Error::InvalidInput(format!("`{tool}` arguments: {e}")))
}

fn item_id(id: &str) -> Result<Uuid> {
    Uuid::parse_str(id).map_err(|_| Error::InvalidInput(format!("`{id}` is not a memory id")))
}

/// An item as a model sees it (no vector, no ids of other principals).
fn shown(item: &MemoryItem, score: Option<f32>) -> Value {
    let mut v = json!({
        "id": item.id, "content": item.content, "type": item.kind.as_str(),
        "owner": item.owner.kind.as_str(), "visibility": item.visibility.as_str(),
        "metadata": item.metadata, "created_at": item.created_at,
    });
    if let Some(t) = item.expires_at {
        v["expires_at"] = json!(t);
    }
    if let Some(s) = score {
        v["score"] = json!(s);
    }
    v
}

fn filter_of(args: &ReadArgs) -> MemoryFilter {
    MemoryFilter {
        kinds: args.kind.into_iter().collect(),
        metadata: args.metadata.clone().unwrap_or_default(),
    }
}

#[async_trait]
impl ToolHub for RecallHub {
    fn name(&self) -> &str {
        MEMORY_HUB
    }

    async fn list_tools(&self, _page: PageRequest) -> Result<ToolPage> {
        Ok(ToolPage {
            tools: Self::specs(),
            next_cursor: None,
        })
    }

    async fn execute(&self, tool_id: &str, arguments: Value, ctx: &ToolContext) -> Result<Value> {
        match tool_id {
            TOOL_STORE => {
                let a: StoreArgs = parse(tool_id, arguments)?;
                let owners = self.owners(ctx).await?;
                let owner = owners.writer(a.owner)?;
                let what = Remember {
                    content: a.content,
                    kind: a.kind.unwrap_or_default(),
                    visibility: a.visibility.unwrap_or_default(),
                    ttl: a.ttl_seconds.map(Duration::from_secs),
                    metadata: a.metadata.unwrap_or_default(),
                };
                let item = self.recall.remember(&owners.tenant_id, owner, what).await?;
                Ok(json!({ "stored": shown(&item, None) }))
            }
            TOOL_RETRIEVE => {
                let a: ReadArgs = parse(tool_id, arguments)?;
                if a.query.is_some() {
                    return Err(Error::InvalidInput(format!(
                        "`{TOOL_RETRIEVE}` takes no query; use `{TOOL_SEARCH}`"
                    )));
                }
                let scope = self.owners(ctx).await?.reader(a.owner)?;
                let store = self.recall.store();
                let items = match &a.id {
                    Some(id) => match store.get(&scope, item_id(id)?).await {
                        Ok(item) if filter_of(&a).matches(&item) => vec![item],
                        Ok(_) => Vec::new(),
                        Err(e) if e.kind() == ErrorKind::NotFound => Vec::new(),
                        Err(e) => return Err(e),
                    },
                    None => {
                        let limit = a.limit.unwrap_or(10).clamp(1, MAX_RESULTS);
                        store.list(&scope, &filter_of(&a), limit).await?
                    }
                };
                Ok(json!({ "items": items.iter().map(|i| shown(i, None)).collect::<Vec<_>>() }))
            }
            TOOL_SEARCH => {
                let a: ReadArgs = parse(tool_id, arguments)?;
                let query = a
                    .query
                    .clone()
                    .ok_or_else(|| Error::InvalidInput(format!("`{TOOL_SEARCH}` needs a query")))?;
                if a.id.is_some() {
                    return Err(Error::InvalidInput(format!("`{TOOL_SEARCH}` takes no id")));
                }
                let scope = self.owners(ctx).await?.reader(a.owner)?;
                let limit = a.limit.unwrap_or(5).clamp(1, MAX_RESULTS);
                let found = self
                    .recall
                    .search(&scope, &query, &filter_of(&a), limit)
                    .await?;
                Ok(
                    json!({ "items": found.iter().map(|s| shown(&s.item, Some(s.score))).collect::<Vec<_>>() }),
                )
            }
            TOOL_DELETE => {
                let a: ReadArgs = parse(tool_id, arguments)?;
                let id =
                    item_id(a.id.as_deref().ok_or_else(|| {
                        Error::InvalidInput(format!("`{TOOL_DELETE}` needs an id"))
                    })?)?;
                let owners = self.owners(ctx).await?;
                let deleters = owners.deleters(a.owner)?;
                let n = self
                    .recall
                    .store()
                    .delete(
                        &owners.tenant_id,
                        &deleters,
                        &[id],
                        &MemoryFilter::default(),
                    )
                    .await?;
                Ok(json!({ "deleted": n }))
            }
            other => Err(Error::not_found("tool", other)),
        }
    }

    fn honours_idempotency_keys(&self) -> bool {
        false
    }
}
