//! Catalog reconciliation: a hub's listing, page by page, into the store's tool catalog.
//!
//! A hub adapter only lists its tools as pages of [`ToolSpec`]s, through [`CatalogPages`]
//! (any [`ToolHub`] does, via [`HubCatalog`]) or by handing pages to
//! [`CatalogReconciler::apply_page`] itself. The reconciler owns a [`CatalogScope`] — the
//! hub's tools, or only those of some toolkits (an incremental refresh) — and:
//!
//! - writes each page's new and changed tools as it arrives (a tool whose [`fingerprint`]
//!   matches the stored one is not written), so a failing page keeps the pages before it;
//! - after the last page, deletes the scope's stored tools the listing no longer has; a
//!   listing that stopped early deletes nothing;
//! - resumes a [`CatalogReconciler::run`] that failed from the page that failed;
//! - reports what it added, changed and removed ([`CatalogReport`]) and hands the written
//!   specs and removed ids to whoever keeps a copy, e.g. a search index
//!   ([`CatalogReconciler::take_changes`]).

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::{Hash, Hasher};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{PageRequest, ToolHub, ToolPage, ToolSpec};
use crate::error::{Error, ErrorKind, Result};
use crate::store::{DefinitionStore, Page, ToolQuery};

/// A hash of everything that affects search, exposure and execution of a tool (all but
/// `updated_at`). Equal specs hash equal within one build; the value is not meant to be
/// stored.
pub fn fingerprint(tool: &ToolSpec) -> u64 {
    let mut h = DefaultHasher::new();
    tool.id.hash(&mut h);
    tool.name.hash(&mut h);
    tool.description.hash(&mut h);
    tool.toolkit.hash(&mut h);
    tool.input_schema.to_string().hash(&mut h);
    tool.output_schema
        .as_ref()
        .map(Value::to_string)
        .hash(&mut h);
    tool.risk_level.hash(&mut h);
    tool.side_effects.hash(&mut h);
    tool.tags.hash(&mut h);
    tool.requires_confirmation.hash(&mut h);
    tool.requires_connection.hash(&mut h);
    tool.hub.hash(&mut h);
    tool.timeout_ms.hash(&mut h);
    h.finish()
}

/// Which stored tools a reconciliation owns: the ones it may delete when the listing no
/// longer has them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogScope {
    /// The hub; every listed tool must belong to it.
    pub hub: String,
    /// Only tools of these toolkits (an incremental refresh of the toolkits that changed);
    /// `None`: every tool of the hub.
    pub toolkits: Option<BTreeSet<String>>,
    /// Whether the listing has every tool of the scope. A listing of changed tools only
    /// (`updated_since`) upserts and never deletes.
    pub complete: bool,
}

impl CatalogScope {
    /// Every tool of `hub`, listed completely.
    pub fn hub(hub: impl Into<String>) -> Self {
        CatalogScope {
            hub: hub.into(),
            toolkits: None,
            complete: true,
        }
    }

    /// Only the tools of `toolkits`.
    pub fn toolkits<I, S>(mut self, toolkits: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.toolkits = Some(toolkits.into_iter().map(Into::into).collect());
        self
    }

    /// The listing has changed tools only: nothing is deleted.
    pub fn changes_only(mut self) -> Self {
        self.complete = false;
        self
    }
}

/// What a reconciliation did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogReport {
    /// Pages applied.
    pub pages: usize,
    /// Tools listed (a tool listed twice counts twice).
    pub listed: usize,
    /// Ids written that the scope did not have.
    pub added: Vec<String>,
    /// Ids written whose stored spec differed.
    pub changed: Vec<String>,
    /// Ids deleted because the listing no longer has them.
    pub removed: Vec<String>,
}

impl CatalogReport {
    /// Tools written (added or changed).
    pub fn written(&self) -> usize {
        self.added.len() + self.changed.len()
    }
}

/// Tools written and removed since the changes were last taken: what a copy of the catalog
/// (a search index) must apply.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CatalogChanges {
    /// Written (new or changed) specs.
    pub upserted: Vec<ToolSpec>,
    /// Deleted ids.
    pub removed: Vec<String>,
}

impl CatalogChanges {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.upserted.is_empty() && self.removed.is_empty()
    }
}

/// A hub's catalog, page by page: what a hub adapter implements to be reconciled.
#[async_trait]
pub trait CatalogPages: Send {
    /// The page at `cursor` (`None`: the first). A page whose `next_cursor` is `None`, empty
    /// or the cursor it was asked for is the last.
    async fn list_page(&mut self, cursor: Option<String>) -> Result<ToolPage>;
}

/// The catalog of any [`ToolHub`], through [`ToolHub::list_tools`].
pub struct HubCatalog<'a> {
    hub: &'a dyn ToolHub,
    limit: Option<u32>,
    updated_since: Option<DateTime<Utc>>,
}

impl<'a> HubCatalog<'a> {
    /// Every page of `hub`'s catalog.
    pub fn new(hub: &'a dyn ToolHub) -> Self {
        HubCatalog {
            hub,
            limit: None,
            updated_since: None,
        }
    }

    /// Page size hint.
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Only tools changed after `since` (reconcile with [`CatalogScope::changes_only`]).
    pub fn updated_since(mut self, since: DateTime<Utc>) -> Self {
        self.updated_since = Some(since);
        self
    }
}

impl std::fmt::Debug for HubCatalog<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubCatalog")
            .field("hub", &self.hub.name())
            .field("limit", &self.limit)
            .field("updated_since", &self.updated_since)
            .finish()
    }
}

#[async_trait]
impl CatalogPages for HubCatalog<'_> {
    async fn list_page(&mut self, cursor: Option<String>) -> Result<ToolPage> {
        self.hub
            .list_tools(PageRequest {
                cursor,
                limit: self.limit,
                updated_since: self.updated_since,
            })
            .await
    }
}

/// Default number of tools per store write.
pub const DEFAULT_WRITE_BATCH: usize = 500;

/// Tools read per store call when loading the scope.
const READ_PAGE: u64 = 1000;

/// Reconciles one listing of a hub's catalog with the store (see the [module](self) doc).
pub struct CatalogReconciler<'a> {
    store: &'a dyn DefinitionStore,
    scope: CatalogScope,
    batch: usize,
    /// Fingerprints of the scope's stored tools, kept current as tools are written.
    stored: HashMap<String, u64>,
    /// Ids listed so far.
    listed: HashSet<String>,
    /// Cursor of the next page [`Self::run`] lists, and the cursors already listed.
    cursor: Option<String>,
    cursors: HashSet<String>,
    listing_done: bool,
    report: CatalogReport,
    pending: CatalogChanges,
}

impl std::fmt::Debug for CatalogReconciler<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CatalogReconciler")
            .field("scope", &self.scope)
            .field("stored", &self.stored.len())
            .field("listed", &self.listed.len())
            .field("cursor", &self.cursor)
            .field("report", &self.report)
            .finish()
    }
}

impl<'a> CatalogReconciler<'a> {
    /// Starts a reconciliation of `scope` into `store`: reads the scope's stored tools.
    pub async fn begin(store: &'a dyn DefinitionStore, scope: CatalogScope) -> Result<Self> {
        let stored = match &scope.toolkits {
            None => stored_fingerprints(store, &scope.hub, None).await?,
            Some(kits) => {
                let mut all = HashMap::new();
                for kit in kits {
                    all.extend(stored_fingerprints(store, &scope.hub, Some(kit)).await?);
                }
                all
            }
        };
        Ok(CatalogReconciler {
            store,
            scope,
            batch: DEFAULT_WRITE_BATCH,
            stored,
            listed: HashSet::new(),
            cursor: None,
            cursors: HashSet::new(),
            listing_done: false,
            report: CatalogReport::default(),
            pending: CatalogChanges::default(),
        })
    }

    /// Tools per store write (at least 1; default [`DEFAULT_WRITE_BATCH`]).
    pub fn write_batch(mut self, tools: usize) -> Self {
        self.batch = tools.max(1);
        self
    }

    /// The scope.
    pub fn scope(&self) -> &CatalogScope {
        &self.scope
    }

    /// What was done so far.
    pub fn report(&self) -> &CatalogReport {
        &self.report
    }

    /// Writes the page's new and changed tools. On error the tools written before it stay
    /// written (and reported); applying the page again is safe.
    pub async fn apply_page(&mut self, tools: &[ToolSpec]) -> Result<()> {
        if let Some(other) = tools.iter().find(|t| t.hub != self.scope.hub) {
            return Err(Error::InvalidInput(format!(
                "tool `{}` of hub `{}` listed while reconciling hub `{}`",
                other.id, other.hub, self.scope.hub
            )));
        }
        // The last listing of an id in the page wins.
        let mut latest: HashMap<&str, (u64, &ToolSpec)> = HashMap::new();
        let mut order: Vec<&str> = Vec::new();
        for tool in tools {
            self.listed.insert(tool.id.clone());
            let print = fingerprint(tool);
            if self.stored.get(&tool.id) == Some(&print) {
                latest.remove(tool.id.as_str());
                continue;
            }
            if latest.insert(&tool.id, (print, tool)).is_none() {
                order.push(&tool.id);
            }
        }
        let to_write: Vec<(u64, &ToolSpec)> =
            order.iter().filter_map(|id| latest.remove(id)).collect();
        for chunk in to_write.chunks(self.batch) {
            let specs: Vec<ToolSpec> = chunk.iter().map(|(_, t)| (*t).clone()).collect();
            self.store.put_tools(&specs).await?;
            for (print, spec) in chunk {
                match self.stored.insert(spec.id.clone(), *print) {
                    Some(_) => self.report.changed.push(spec.id.clone()),
                    None => self.report.added.push(spec.id.clone()),
                }
            }
            self.pending.upserted.extend(specs);
        }
        self.report.pages += 1;
        self.report.listed += tools.len();
        Ok(())
    }

    /// Lists every remaining page of `pages`, applies each, then [`finish`](Self::finish)es.
    /// After an error, calling it again resumes at the page that failed.
    pub async fn run<P: CatalogPages + ?Sized>(&mut self, pages: &mut P) -> Result<CatalogReport> {
        while !self.listing_done {
            let page = pages.list_page(self.cursor.clone()).await?;
            self.apply_page(&page.tools).await?;
            let next = page
                .next_cursor
                .filter(|c| !c.is_empty() && Some(c) != self.cursor.as_ref());
            match next {
                // The cursor stays: a retry lists this page again and fails the same way.
                Some(c) if self.cursors.contains(&c) => {
                    return Err(Error::backend(
                        self.scope.hub.clone(),
                        ErrorKind::Internal,
                        format!("the catalog listing came back to cursor `{c}`"),
                        None,
                    ));
                }
                Some(c) => {
                    if let Some(done) = self.cursor.replace(c) {
                        self.cursors.insert(done);
                    }
                }
                None => self.listing_done = true,
            }
        }
        self.finish().await
    }

    /// Ends the listing: deletes the scope's stored tools it did not have (unless the scope
    /// lists changes only) and returns the report. Call it only after the last page was
    /// applied. After an error, calling it again deletes the rest.
    pub async fn finish(&mut self) -> Result<CatalogReport> {
        self.listing_done = true;
        if self.scope.complete {
            let mut gone: Vec<String> = self
                .stored
                .keys()
                .filter(|id| !self.listed.contains(*id))
                .cloned()
                .collect();
            gone.sort();
            for id in gone {
                match self.store.delete_tool(&id).await {
                    Ok(()) => {}
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
                self.stored.remove(&id);
                self.report.removed.push(id.clone());
                self.pending.removed.push(id);
            }
        }
        Ok(self.report.clone())
    }

    /// The tools written and removed since the last call.
    pub fn take_changes(&mut self) -> CatalogChanges {
        std::mem::take(&mut self.pending)
    }
}

/// Fingerprints of the stored tools of `hub` (and `toolkit`).
async fn stored_fingerprints(
    store: &dyn DefinitionStore,
    hub: &str,
    toolkit: Option<&str>,
) -> Result<HashMap<String, u64>> {
    let mut out = HashMap::new();
    let mut offset = 0;
    loop {
        let query = ToolQuery {
            toolkit: toolkit.map(str::to_string),
            hub: Some(hub.to_string()),
            page: Page {
                offset,
                limit: READ_PAGE,
            },
        };
        let tools = store.list_tools(&query).await?;
        let n = tools.len() as u64;
        // A store that ignores a filter must not make us delete tools of others.
        out.extend(
            tools
                .iter()
                .filter(|t| t.hub == hub && (toolkit.is_none() || t.toolkit.as_deref() == toolkit))
                .map(|t| (t.id.clone(), fingerprint(t))),
        );
        if n < READ_PAGE {
            return Ok(out);
        }
        offset += n;
    }
}
