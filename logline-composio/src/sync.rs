//! Catalog sync: every page of `/toolkits` and `/tools` into the store's tool catalog,
//! incremental refreshes between full ones, and a queue job that runs it.
//!
//! A **full** sync lists every tool. An **incremental** sync lists the toolkits, compares each
//! toolkit's fingerprint (`meta.updated_at` + `meta.tools_count`) with the previous sync and
//! lists only the tools of toolkits that changed, appeared or vanished. Both diff against the
//! store: only new or changed tools are written, tools gone from Composio are deleted, and the
//! observers (e.g. `logline_core::search::ToolSearch`) hear exactly those changes. The first
//! sync of a process is always full.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;
use logline_core::queue::{slot_start, Job, JobHandler, NewJob, Queue};
use logline_core::search::index::fingerprint;
use logline_core::search::CatalogObserver;
use logline_core::store::{DefinitionStore, Page, ToolQuery};
use logline_core::tool::ToolSpec;
use logline_core::{ErrorKind, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::catalog::{convert_tool, CatalogSnapshot, Toolkit};
use crate::error::Op;
use crate::hub::{next, ComposioToolHub};

/// Queue of catalog-sync jobs.
pub const CATALOG_SYNC_QUEUE: &str = "logline.composio.catalog_sync";

/// What a sync reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncMode {
    /// Every tool.
    Full,
    /// Only tools of toolkits that changed since the last sync.
    #[default]
    Incremental,
}

/// What a sync did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncReport {
    /// The mode that ran (an incremental request runs full without a previous sync).
    pub mode: SyncMode,
    /// Toolkits listed.
    pub toolkits: usize,
    /// Toolkits whose tools were listed.
    pub toolkits_refreshed: usize,
    /// Tools listed.
    pub tools_fetched: usize,
    /// New or changed tools written to the store.
    pub tools_written: usize,
    /// Tools deleted from the store.
    pub tools_removed: usize,
    /// Tools in the cached catalog afterwards.
    pub tools_total: usize,
    /// Pages requested.
    pub pages: usize,
    /// Wall time.
    pub duration_ms: u64,
}

/// Runs catalog syncs of one hub into one store.
pub struct CatalogSync {
    hub: ComposioToolHub,
    store: Arc<dyn DefinitionStore>,
    observers: Vec<Arc<dyn CatalogObserver>>,
}

impl std::fmt::Debug for CatalogSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CatalogSync")
            .field("hub", &self.hub)
            .field("observers", &self.observers.len())
            .finish()
    }
}

impl CatalogSync {
    /// A sync of `hub` into `store`.
    pub fn new(hub: ComposioToolHub, store: Arc<dyn DefinitionStore>) -> Self {
        CatalogSync {
            hub,
            store,
            observers: Vec::new(),
        }
    }

    /// Tells `observer` about every change.
    pub fn with_observer(mut self, observer: Arc<dyn CatalogObserver>) -> Self {
        self.observers.push(observer);
        self
    }

    /// The hub.
    pub fn hub(&self) -> &ComposioToolHub {
        &self.hub
    }

    /// The cached catalog, refreshed first when it is older than the refresh interval (full
    /// when the last full refresh is older than the full interval). Returns the report of the
    /// refresh that ran, if any.
    pub async fn refresh_if_due(&self) -> Result<Option<SyncReport>> {
        let cfg = self.hub.config();
        let snap = self.hub.catalog();
        let stale = |at: Option<Instant>, every: Duration| at.is_none_or(|t| t.elapsed() >= every);
        if stale(snap.full_refreshed, cfg.full_refresh_interval) {
            return self.run(SyncMode::Full).await.map(Some);
        }
        if stale(snap.refreshed, cfg.refresh_interval) {
            return self.run(SyncMode::Incremental).await.map(Some);
        }
        Ok(None)
    }

    /// Runs one sync. Concurrent calls on the same hub run one after the other.
    pub async fn run(&self, mode: SyncMode) -> Result<SyncReport> {
        let _serial = self.hub.inner.sync_lock.lock().await;
        let started = Instant::now();
        let cfg = self.hub.config().clone();
        let client = &self.hub.inner.client;
        let previous = self.hub.catalog();
        let mode = if previous.full_refreshed.is_none() {
            SyncMode::Full
        } else {
            mode
        };
        let mut pages = 0usize;

        // Toolkits.
        let mut toolkits: Vec<Toolkit> = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = client
                .toolkits_page(cursor.as_deref(), cfg.page_limit)
                .await
                .map_err(|e| e.into_core(Op::Read))?;
            pages += 1;
            toolkits.extend(page.items.into_iter().map(Toolkit::from_wire));
            match next(page.next_cursor, &cursor) {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        let kits: HashMap<String, Toolkit> =
            toolkits.into_iter().map(|t| (t.slug.clone(), t)).collect();

        // Which toolkits to re-read.
        let changed: BTreeSet<String> = match mode {
            SyncMode::Full => kits.keys().cloned().collect(),
            SyncMode::Incremental => kits
                .values()
                .filter(|k| {
                    let old = previous
                        .toolkits
                        .get(&k.slug)
                        .and_then(Toolkit::fingerprint);
                    k.fingerprint().is_none() || old != k.fingerprint()
                })
                .map(|k| k.slug.clone())
                .collect(),
        };
        let vanished: BTreeSet<String> = previous
            .toolkits
            .keys()
            .filter(|k| !kits.contains_key(*k))
            .cloned()
            .collect();

        // Tools.
        let mut fetched: Vec<(ToolSpec, Option<String>)> = Vec::new();
        let filters: Vec<Vec<String>> = match mode {
            SyncMode::Full => vec![Vec::new()],
            SyncMode::Incremental => changed
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .chunks(cfg.toolkits_per_request)
                .map(<[String]>::to_vec)
                .collect(),
        };
        for filter in &filters {
            let mut cursor: Option<String> = None;
            loop {
                let page = client
                    .tools_page(cursor.as_deref(), cfg.page_limit, filter)
                    .await
                    .map_err(|e| e.into_core(Op::Read))?;
                pages += 1;
                for w in page.items {
                    if w.is_deprecated {
                        continue;
                    }
                    let kit = kits.get(&w.toolkit.slug);
                    let c = convert_tool(w, &cfg.hub_name, &cfg.risk_rules, kit);
                    fetched.push((c.spec, c.version));
                }
                match next(page.next_cursor, &cursor) {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
        }
        let tools_fetched = fetched.len();

        // Diff against the store (an incremental sync reads only the toolkits it re-read).
        let existing = match mode {
            SyncMode::Full => self.stored_tools(&cfg.hub_name, None).await?,
            SyncMode::Incremental => {
                let mut all = HashMap::new();
                for kit in changed.iter().chain(&vanished) {
                    all.extend(self.stored_tools(&cfg.hub_name, Some(kit)).await?);
                }
                all
            }
        };
        let in_scope = |t: &ToolSpec| match mode {
            SyncMode::Full => true,
            SyncMode::Incremental => t.toolkit.as_ref().is_some_and(|k| {
                changed.contains(k) || vanished.contains(k) || !kits.contains_key(k)
            }),
        };
        let fetched_ids: HashSet<&str> = fetched.iter().map(|(t, _)| t.id.as_str()).collect();
        let to_write: Vec<ToolSpec> = fetched
            .iter()
            .filter(|(t, _)| {
                existing
                    .get(&t.id)
                    .is_none_or(|old| fingerprint(old) != fingerprint(t))
            })
            .map(|(t, _)| t.clone())
            .collect();
        let to_remove: Vec<String> = existing
            .values()
            .filter(|t| in_scope(t) && !fetched_ids.contains(t.id.as_str()))
            .map(|t| t.id.clone())
            .collect();
        for batch in to_write.chunks(cfg.store_batch) {
            self.store.put_tools(batch).await?;
        }
        for id in &to_remove {
            match self.store.delete_tool(id).await {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }

        // The cached copy.
        let now = Instant::now();
        let mut snap = match mode {
            SyncMode::Full => CatalogSnapshot::default(),
            SyncMode::Incremental => previous.as_ref().clone(),
        };
        for id in &to_remove {
            snap.tools.remove(id);
            snap.versions.remove(id);
        }
        if mode == SyncMode::Incremental {
            let stale: Vec<String> = snap
                .tools
                .values()
                .filter(|t| t.toolkit.as_ref().is_some_and(|k| vanished.contains(k)))
                .map(|t| t.id.clone())
                .collect();
            for id in stale {
                snap.tools.remove(&id);
                snap.versions.remove(&id);
            }
        }
        for (spec, version) in fetched {
            if let Some(v) = version {
                snap.versions.insert(spec.id.clone(), v);
            }
            snap.tools.insert(spec.id.clone(), Arc::new(spec));
        }
        snap.toolkits = kits.into_iter().collect();
        snap.refreshed = Some(now);
        snap.full_refreshed = match mode {
            SyncMode::Full => Some(now),
            SyncMode::Incremental => previous.full_refreshed,
        };
        let tools_total = snap.tools.len();
        let toolkits_total = snap.toolkits.len();
        self.hub.set_catalog(snap);

        for o in &self.observers {
            o.catalog_changed(&to_write, &to_remove);
        }
        let report = SyncReport {
            mode,
            toolkits: toolkits_total,
            toolkits_refreshed: changed.len() + vanished.len(),
            tools_fetched,
            tools_written: to_write.len(),
            tools_removed: to_remove.len(),
            tools_total,
            pages,
            duration_ms: started.elapsed().as_millis() as u64,
        };
        tracing::info!(?report, "composio catalog sync");
        Ok(report)
    }

    async fn stored_tools(
        &self,
        hub: &str,
        toolkit: Option<&str>,
    ) -> Result<HashMap<String, ToolSpec>> {
        const PAGE: u64 = 1000;
        let mut out = HashMap::new();
        let mut offset = 0;
        loop {
            let q = ToolQuery {
                toolkit: toolkit.map(str::to_string),
                hub: Some(hub.to_string()),
                page: Page {
                    offset,
                    limit: PAGE,
                },
            };
            let tools = self.store.list_tools(&q).await?;
            let n = tools.len() as u64;
            // A store that ignores a filter must not make us delete tools of others.
            out.extend(
                tools
                    .into_iter()
                    .filter(|t| {
                        t.hub == hub && (toolkit.is_none() || t.toolkit.as_deref() == toolkit)
                    })
                    .map(|t| (t.id.clone(), t)),
            );
            if n < PAGE {
                return Ok(out);
            }
            offset += n;
        }
    }
}

/// A sync job for [`CATALOG_SYNC_QUEUE`], eligible at `at` (now when `None`). The
/// idempotency key is per mode and time slot, so workers scheduling the same refresh agree.
pub fn sync_job(mode: SyncMode, at: Option<chrono::DateTime<Utc>>) -> NewJob {
    let at = at.unwrap_or_else(Utc::now);
    let mode_name = match mode {
        SyncMode::Full => "full",
        SyncMode::Incremental => "incremental",
    };
    let mut job = NewJob::new(CATALOG_SYNC_QUEUE, json!({ "mode": mode }))
        .idempotency_key(format!(
            "composio-catalog-sync:{mode_name}:{}",
            at.timestamp()
        ))
        .max_attempts(3);
    job.run_at = Some(at);
    job
}

#[derive(Debug, Deserialize)]
struct SyncPayload {
    #[serde(default)]
    mode: SyncMode,
}

/// The queue handler of catalog-sync jobs: runs the sync, then (with a queue) schedules the
/// next incremental refresh one interval later.
pub struct CatalogSyncJob {
    sync: Arc<CatalogSync>,
    queue: Option<Arc<dyn Queue>>,
}

impl CatalogSyncJob {
    /// A handler running `sync`.
    pub fn new(sync: Arc<CatalogSync>) -> Self {
        CatalogSyncJob { sync, queue: None }
    }

    /// Re-enqueues the next refresh on `queue` after each run.
    pub fn rescheduling_on(mut self, queue: Arc<dyn Queue>) -> Self {
        self.queue = Some(queue);
        self
    }
}

#[async_trait]
impl JobHandler for CatalogSyncJob {
    async fn handle(&self, job: &Job, cancel: CancellationToken) -> Result<()> {
        let payload = SyncPayload::deserialize(&job.payload).map_err(|e| {
            logline_core::Error::Internal(format!("catalog sync job payload is unreadable: {e}"))
        })?;
        let report = tokio::select! {
            r = self.sync.run(payload.mode) => r?,
            _ = cancel.cancelled() => {
                return Err(logline_core::Error::Cancelled("catalog sync".into()));
            }
        };
        if let Some(q) = &self.queue {
            let every = self.sync.hub().config().refresh_interval;
            let at = Utc::now()
                + chrono::Duration::from_std(every).unwrap_or_else(|_| chrono::Duration::hours(1));
            // The slot after the one holding `at`: concurrent schedulers pick the same one.
            let secs = every.as_secs().max(1) as i64;
            let slot = slot_start(at, every) + chrono::Duration::seconds(secs);
            q.enqueue(sync_job(SyncMode::Incremental, Some(slot)))
                .await?;
        }
        tracing::debug!(?report, job = %job.id, "catalog sync job done");
        Ok(())
    }
}
