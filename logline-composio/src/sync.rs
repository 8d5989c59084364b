//! Catalog sync: every page of `/toolkits` and `/tools` into the store's tool catalog,
//! incremental refreshes between full ones, and a queue job that runs it.
//!
//! A **full** sync lists every tool. An **incremental** sync lists the toolkits, compares each
//! toolkit's fingerprint (`meta.updated_at` + `meta.tools_count`) with the previous sync and
//! lists only the tools of toolkits that changed, appeared or vanished. This module only lists
//! and risk-tags; core's `logline_core::tool::catalog::CatalogReconciler` diffs each page
//! against the store: only new or changed tools are written, tools gone from Composio are
//! deleted after the last page, and the observers (e.g. `logline_core::search::ToolSearch`)
//! hear exactly those changes. The first sync of a process is always full.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;
use logline_core::queue::{slot_start, Job, JobHandler, NewJob, Queue};
use logline_core::search::CatalogObserver;
use logline_core::store::DefinitionStore;
use logline_core::tool::catalog::{CatalogReconciler, CatalogScope};
use logline_core::tool::ToolSpec;
use logline_core::Result;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::catalog::{convert_tool, CatalogSnapshot, Toolkit};
use crate::config::ComposioConfig;
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

    /// Runs one sync. Concurrent calls on the same hub run one after the other. When a page
    /// fails, the pages before it stay written (and observed) and the sync returns the error.
    pub async fn run(&self, mode: SyncMode) -> Result<SyncReport> {
        let _serial = self.hub.inner.sync_lock.lock().await;
        let started = Instant::now();
        let cfg = self.hub.config().clone();
        let previous = self.hub.catalog();
        let mode = if previous.full_refreshed.is_none() {
            SyncMode::Full
        } else {
            mode
        };
        let mut pages = 0usize;
        let kits = self.list_toolkits(&cfg, &mut pages).await?;

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

        // Tools, reconciled with the store page by page.
        let scope = match mode {
            SyncMode::Full => CatalogScope::hub(&cfg.hub_name),
            SyncMode::Incremental => {
                CatalogScope::hub(&cfg.hub_name).toolkits(changed.iter().chain(&vanished).cloned())
            }
        };
        let mut reconciler = CatalogReconciler::begin(&*self.store, scope)
            .await?
            .write_batch(cfg.store_batch);
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
        let listed = self
            .list_tools(
                &cfg,
                &filters,
                &kits,
                &mut reconciler,
                &mut fetched,
                &mut pages,
            )
            .await;
        let outcome = match listed {
            Ok(()) => reconciler.finish().await,
            Err(e) => Err(e),
        };
        // Observers hear what reached the store, also when a page failed.
        let changes = reconciler.take_changes();
        if !changes.is_empty() {
            for o in &self.observers {
                o.catalog_changed(&changes.upserted, &changes.removed);
            }
        }
        let outcome = outcome?;

        // The cached copy.
        let now = Instant::now();
        let mut snap = match mode {
            SyncMode::Full => CatalogSnapshot::default(),
            SyncMode::Incremental => previous.as_ref().clone(),
        };
        for id in &outcome.removed {
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

        let report = SyncReport {
            mode,
            toolkits: toolkits_total,
            toolkits_refreshed: changed.len() + vanished.len(),
            tools_fetched: outcome.listed,
            tools_written: outcome.written(),
            tools_removed: outcome.removed.len(),
            tools_total,
            pages,
            duration_ms: started.elapsed().as_millis() as u64,
        };
        tracing::info!(?report, "composio catalog sync");
        Ok(report)
    }

    /// Every page of `/toolkits`.
    async fn list_toolkits(
        &self,
        cfg: &ComposioConfig,
        pages: &mut usize,
    ) -> Result<HashMap<String, Toolkit>> {
        let client = &self.hub.inner.client;
        let mut kits = HashMap::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = client
                .toolkits_page(cursor.as_deref(), cfg.page_limit)
                .await
                .map_err(|e| e.into_core(Op::Read))?;
            *pages += 1;
            for wire in page.items {
                let kit = Toolkit::from_wire(wire);
                kits.insert(kit.slug.clone(), kit);
            }
            match next(page.next_cursor, &cursor) {
                Some(c) => cursor = Some(c),
                None => return Ok(kits),
            }
        }
    }

    /// Every page of `/tools` for each toolkit filter, risk-tagged, into `reconciler`; the
    /// converted tools and their versions also go to `fetched` for the cached copy.
    async fn list_tools(
        &self,
        cfg: &ComposioConfig,
        filters: &[Vec<String>],
        kits: &HashMap<String, Toolkit>,
        reconciler: &mut CatalogReconciler<'_>,
        fetched: &mut Vec<(ToolSpec, Option<String>)>,
        pages: &mut usize,
    ) -> Result<()> {
        let client = &self.hub.inner.client;
        for filter in filters {
            let mut cursor: Option<String> = None;
            loop {
                let page = client
                    .tools_page(cursor.as_deref(), cfg.page_limit, filter)
                    .await
                    .map_err(|e| e.into_core(Op::Read))?;
                *pages += 1;
                let mut specs = Vec::with_capacity(page.items.len());
                let mut versions = Vec::with_capacity(page.items.len());
                for w in page.items {
                    if w.is_deprecated {
                        continue;
                    }
                    let kit = kits.get(&w.toolkit.slug);
                    let c = convert_tool(w, &cfg.hub_name, &cfg.risk_rules, kit);
                    specs.push(c.spec);
                    versions.push(c.version);
                }
                reconciler.apply_page(&specs).await?;
                fetched.extend(specs.into_iter().zip(versions));
                match next(page.next_cursor, &cursor) {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
        }
        Ok(())
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
